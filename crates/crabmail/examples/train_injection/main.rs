//! Trains the injection model from `train/injection/build_corpus.py`'s corpus, and validates it.
//!
//!   cargo run --release --example train_injection -- train CORPUS OUT.model [--holdout FAM,..]
//!   cargo run --release --example train_injection -- lofo CORPUS [--holdout FAM,..]
//!   cargo run --release --example train_injection -- eval CORPUS MODEL --families FAM,.. [--benign DIR,..]
//!   cargo run --release --example train_injection -- opinions CORPUS MODEL --families FAM,.. [--benign DIR,..]
//!
//! `opinions` prints the whole scorer's two opinions (rules, model) per row as TSV, for
//! `bench/injection/whole.py`.
//!
//! Windows and features come from `crabmail::ingest::risk` itself, so the model is trained on what the
//! server scores. Everything is deterministic (fixed shuffle seed, one thread): the same corpus
//! gives the same model file, byte for byte.
//!
//! Experiments: `TRAIN_EPOCHS`, `TRAIN_RATE`, `TRAIN_L2` override the hyper-parameters and
//! `TRAIN_MEDIUM_Q`, `TRAIN_HIGH_Q` the calibration quantiles; `TRAIN_DUMP=FILE` appends per-row
//! logits (relative to the medium threshold) of the calibration rows (train), the left-out rows
//! (lofo) or the chosen families (eval); `TRAIN_WHY=1` prints the window that put a held-out
//! benign message at medium. `lofo --benign DIR,..` also measures every left-out family against
//! mail outside the corpus (`TRAIN_POOL=SOURCE,..` pools only those sources' families), and
//! `TRAIN_BALANCE=0..1` weighs families toward equal. With `--features encoder`, `stage2` trains
//! stage two's head and `stage2-lofo` measures it (`stage_two.rs`; `TRAIN_HOLDOUT_ONLY=1` scores
//! only the `--holdout` families).
//!
//! Never trained on: a fifth of the generated and prose rows and half of the real messages (by a
//! hash of their id). The real messages and the list posts among them set the thresholds for
//! `medium` (99th percentile of their scores), `high` (99.8th, but no further beyond `medium` than
//! half the way up from their median) and typical mail (the median, risk 0.05).

use crabmail::ingest::insight;
use crabmail::ingest::risk::{self, Content, Policy, model};
use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;

#[cfg(feature = "encoder")]
mod stage_two;

const EPOCHS: usize = 6;
const LEARNING_RATE: f32 = 0.2;
const L2: f32 = 1e-6;

/// A hyper-parameter, overridable by the environment for experiments (`TRAIN_EPOCHS`, ...). The
/// shipped model is trained with the defaults above.
fn param<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
const MEDIUM_QUANTILE: f64 = 0.99;
const HIGH_QUANTILE: f64 = 0.998;

struct Row {
    id: String,
    family: String,
    label: u8,
    windows: Vec<model::Window>,
    /// Per window: Some(true) holds the attack, Some(false) is carrier or benign, None unsure.
    labels: Vec<Option<bool>>,
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Real mail (crates' and CPython's test messages, HyperKitty's list mail, half the bounce
/// corpus): half of it calibrates, half is trained on. Generated mail is easier than real mail,
/// so thresholds set on it alone flag far more than 1 in 100 real messages (measured: about 1 in
/// 5 of the repo's own benign mail); and a model that never saw real mail's headers, digests and
/// quoted text scores them as strange.
const REAL_MAIL: &[&str] = &[
    "benign:crates",
    "benign:bounces",
    "benign:pymail",
    "benign:hyperkitty",
];

/// Benign mail that sets the thresholds: real mail and list posts of technical prose, the mail
/// the 1-in-100 target is about. Generated notifications and literary prose are easier; counted
/// in, they would pull the thresholds down below what real mail needs.
const CALIBRATES: &[&str] = &["benign:manpages", "benign:pydoc"];

/// Held out of training and sets the thresholds.
fn calibrates(row: &Row) -> bool {
    held_out(row)
        && (REAL_MAIL.contains(&row.family.as_str()) || CALIBRATES.contains(&row.family.as_str()))
}

/// Held out of training (and the benign side of the leave-one-out figures).
fn held_out(row: &Row) -> bool {
    let share = if REAL_MAIL.contains(&row.family.as_str()) {
        2
    } else {
        5
    };
    row.label == 0 && fnv(&row.id).is_multiple_of(share)
}

fn load(path: &str) -> anyhow::Result<Vec<Row>> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let policy = Policy::default();
    let mut rows = Vec::new();
    for line in file.lines() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
        let (segments, facts) = match s("eml") {
            // Whole messages go through ingest's own parse.
            Some(raw) => insight::model_input(raw.as_bytes()),
            None => risk::model_input(&Fields::of(&v).content(), &policy),
        };
        let windows = model::windows(&segments, facts);
        let label = v.get("label").and_then(|x| x.as_u64()).unwrap_or(0) as u8;
        let labels = match s("attack") {
            Some(attack) if label == 1 => {
                let attack: HashSet<String> = model::tokens(&attack.replace('\u{200b}', ""))
                    .into_iter()
                    .collect();
                windows
                    .iter()
                    .map(|w| {
                        let toks: HashSet<String> = model::tokens(&w.text).into_iter().collect();
                        let shared = toks.intersection(&attack).count() as f64;
                        let coverage = shared / attack.len().max(1) as f64;
                        let purity = shared / toks.len().max(1) as f64;
                        if coverage >= 0.7 || purity >= 0.7 {
                            Some(true)
                        } else if coverage < 0.15 && purity < 0.3 {
                            Some(false)
                        } else {
                            None
                        }
                    })
                    .collect()
            }
            _ => vec![Some(false); windows.len()],
        };
        rows.push(Row {
            id: s("id").unwrap_or_default(),
            family: s("family").unwrap_or_default(),
            label,
            windows,
            labels,
        });
    }
    Ok(rows)
}

/// The parts of a corpus row given as fields rather than as a whole message.
struct Fields {
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
}

impl Fields {
    fn of(v: &serde_json::Value) -> Fields {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
        Fields {
            subject: s("subject"),
            text: s("text"),
            html: s("html"),
        }
    }

    fn content(&self) -> Content<'_> {
        Content {
            subject: self.subject.as_deref(),
            text: self.text.as_deref(),
            html: self.html.as_deref(),
            ..Default::default()
        }
    }
}

/// xorshift64*: a fixed, portable shuffle.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Logistic regression by AdaGrad over every labelled window of the chosen rows, the two classes
/// weighted to count equally.
fn train(rows: &[Row], keep: impl Fn(&Row) -> bool) -> model::Model {
    let dim = 1usize << model::BITS;
    let mut w = vec![0f32; dim];
    let mut g2 = vec![1e-6f32; dim];
    let mut examples: Vec<(usize, usize, bool)> = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        if !keep(row) || held_out(row) {
            continue;
        }
        for (i, l) in row.labels.iter().enumerate() {
            if let Some(l) = l {
                examples.push((r, i, *l));
            }
        }
    }
    // Each family's windows weigh count^-balance together (0: every window alike; 1: every family
    // alike), then the two classes are scaled to count equally.
    let balance: f32 = param("TRAIN_BALANCE", 0.0);
    let mut per_family: BTreeMap<&str, usize> = BTreeMap::new();
    for &(r, _, _) in &examples {
        *per_family.entry(rows[r].family.as_str()).or_default() += 1;
    }
    // Per row, looked up once here rather than in the training loop.
    let row_weight: Vec<f32> = rows
        .iter()
        .map(|row| {
            per_family
                .get(row.family.as_str())
                .map_or(0.0, |&n| (n as f32).powf(-balance))
        })
        .collect();
    let class_sum = |positive: bool| -> f32 {
        examples
            .iter()
            .filter(|e| e.2 == positive)
            .map(|e| row_weight[e.0])
            .sum::<f32>()
            .max(1e-9)
    };
    let (pos, neg) = (class_sum(true), class_sum(false));
    let n = examples.len() as f32;
    let (wp, wn) = (n / (2.0 * pos), n / (2.0 * neg));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (epochs, rate, l2) = (
        param("TRAIN_EPOCHS", EPOCHS),
        param("TRAIN_RATE", LEARNING_RATE),
        param("TRAIN_L2", L2),
    );
    for _ in 0..epochs {
        for i in (1..examples.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            examples.swap(i, j);
        }
        for &(r, i, label) in &examples {
            let feats = &rows[r].windows[i].features;
            let z: f32 = feats.iter().map(|&(k, v)| w[k as usize] * v).sum();
            let p = 1.0 / (1.0 + (-z.clamp(-30.0, 30.0)).exp());
            let y = if label { 1.0 } else { 0.0 };
            let cw = if label { wp } else { wn } * row_weight[r];
            let err = (p - y) * cw;
            for &(k, v) in feats {
                let k = k as usize;
                let g = err * v + l2 * w[k];
                g2[k] += g * g;
                w[k] -= rate * g / g2[k].sqrt();
            }
        }
    }
    let m = model::Model {
        weights: w,
        medium_at: 0.0,
        high_at: 1.0,
        typical_at: -1.0,
    }
    .quantized();
    calibrate(m, rows)
}

/// The index of a row's window the model finds most suspicious, and its logit.
fn best_window(m: &model::Model, row: &Row) -> Option<(usize, f32)> {
    row.windows
        .iter()
        .enumerate()
        .map(|(i, w)| (i, m.logit(&w.features)))
        .fold(None, |best: Option<(usize, f32)>, (i, l)| match best {
            Some((_, b)) if b >= l => best,
            _ => Some((i, l)),
        })
}

fn message_logit(m: &model::Model, row: &Row) -> f32 {
    best_window(m, row).map_or(f32::MIN, |(_, l)| l)
}

fn quantile(sorted: &[f32], q: f64) -> f32 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn calibrate(mut m: model::Model, rows: &[Row]) -> model::Model {
    let mut benign: Vec<f32> = rows
        .iter()
        .filter(|r| calibrates(r))
        .map(|r| message_logit(&m, r))
        .collect();
    benign.sort_by(f32::total_cmp);
    (m.medium_at, m.high_at, m.typical_at) = thresholds(&benign);
    m
}

/// `medium`, `high` and typical mail from the sorted logits of the calibration rows.
fn thresholds(benign: &[f32]) -> (f32, f32, f32) {
    let medium = quantile(benign, param("TRAIN_MEDIUM_Q", MEDIUM_QUANTILE));
    let typical = quantile(benign, 0.5).min(medium - 1.0);
    // The top 0.2% of a few hundred messages is one or two of them: `high` is not left to one
    // odd message, but sits no further beyond `medium` than half the way up from typical mail.
    let high = quantile(benign, param("TRAIN_HIGH_Q", HIGH_QUANTILE))
        .min(medium + (medium - typical) / 2.0)
        .max(medium + 1.0);
    (medium, high, typical)
}

/// ROC-AUC of attack scores against benign scores (ties count half).
fn auc(attacks: &[f32], benign: &[f32]) -> f64 {
    let mut all: Vec<(f32, bool)> = attacks
        .iter()
        .map(|&s| (s, true))
        .chain(benign.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut rank_sum, mut i) = (0f64, 0usize);
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let avg = (i + j + 1) as f64 / 2.0;
        rank_sum += avg * all[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let (p, n) = (attacks.len() as f64, benign.len() as f64);
    (rank_sum - p * (p + 1.0) / 2.0) / (p * n)
}

fn tpr_at_fpr(attacks: &[f32], benign: &[f32], fpr: f64) -> f64 {
    let mut b = benign.to_vec();
    b.sort_by(f32::total_cmp);
    let t = quantile(&b, 1.0 - fpr);
    attacks.iter().filter(|&&s| s > t).count() as f64 / attacks.len().max(1) as f64
}

fn parse_list(args: &[String], flag: &str) -> Vec<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_owned).collect())
        .unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: train_injection train CORPUS OUT.model | lofo CORPUS | eval CORPUS MODEL --families F,..";
    let (cmd, corpus) = match (args.get(1), args.get(2)) {
        (Some(c), Some(p)) => (c.as_str(), p.as_str()),
        _ => anyhow::bail!(usage),
    };
    let holdout = parse_list(&args, "--holdout");
    eprintln!("reading {corpus}");
    let rows = load(corpus)?;
    let families: Vec<String> = rows
        .iter()
        .filter(|r| r.label == 1)
        .map(|r| r.family.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    eprintln!(
        "{} rows, {} windows, {} attack families",
        rows.len(),
        rows.iter().map(|r| r.windows.len()).sum::<usize>(),
        families.len()
    );
    match cmd {
        "train" => {
            let out = args.get(3).ok_or_else(|| anyhow::anyhow!(usage))?;
            let m = train(&rows, |r| !holdout.contains(&r.family));
            std::fs::write(out, m.to_bytes())?;
            // The calibration rows' logits, to see what sets the thresholds.
            dump_rows(&m, rows.iter().filter(|r| held_out(r)))?;
            benign_dirs(&m, &parse_list(&args, "--benign"))?;
        }
        "eval" => {
            let path = args.get(3).ok_or_else(|| anyhow::anyhow!(usage))?;
            let m = model::Model::from_bytes(&std::fs::read(path)?)
                .ok_or_else(|| anyhow::anyhow!("{path}: not a model"))?;
            let wanted = parse_list(&args, "--families");
            dump_rows(&m, rows.iter().filter(|r| wanted.contains(&r.family)))?;
            let benign: Vec<f32> = rows
                .iter()
                .filter(|r| held_out(r))
                .map(|r| message_logit(&m, r))
                .collect();
            let all = report(&m, &rows, &wanted, &benign);
            // And against mail outside the corpus (`--benign DIRS`).
            let outside: Vec<f32> = messages(&parse_list(&args, "--benign"))?
                .iter()
                .map(|(_, (segments, facts))| model::judge(&m, segments, *facts).logit)
                .collect();
            if !outside.is_empty() {
                println!(
                    "together: ROC-AUC {:.4}, TPR at 1% FPR {:.3} against {} messages outside the corpus",
                    auc(&all, &outside),
                    tpr_at_fpr(&all, &outside, 0.01),
                    outside.len()
                );
            }
        }
        "lofo" => {
            // Leave one family out, then one source out (every family of a source together: a
            // family's siblings share its goals and carriers, so this is the harder test).
            let mut units: Vec<(String, Vec<String>)> = families
                .iter()
                .filter(|f| !holdout.contains(f))
                .map(|f| (f.clone(), vec![f.clone()]))
                .collect();
            let mut sources: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for f in families.iter().filter(|f| !holdout.contains(f)) {
                let source = f.split(':').next().unwrap_or(f).to_owned();
                sources.entry(source).or_default().push(f.clone());
            }
            for (s, fams) in sources {
                if fams.len() > 1 {
                    units.push((format!("{s}:*"), fams));
                }
            }
            // `TRAIN_POOL=PREFIX,..` pools only the families of those sources: comparing corpora
            // with different families on the families they share.
            let pool_only: Vec<String> = std::env::var("TRAIN_POOL")
                .map(|v| v.split(',').map(str::to_owned).collect())
                .unwrap_or_default();
            let pools = |family: &str| {
                pool_only.is_empty() || pool_only.iter().any(|p| family.starts_with(p.as_str()))
            };
            let mut pooled: Vec<f32> = Vec::new();
            let mut pooled_benign: Vec<f32> = Vec::new();
            // Mail outside the corpus (`--benign DIRS`), the same for every corpus version.
            let outside = messages(&parse_list(&args, "--benign"))?;
            let mut pooled_outside: Vec<f32> = Vec::new();
            println!(
                "{:<40} {:>6} {:>9} {:>9}",
                "left out", "rows", "medium+", "high"
            );
            for (name, fams) in &units {
                let m = train(&rows, |r| {
                    !holdout.contains(&r.family) && !fams.contains(&r.family)
                });
                let scores: Vec<f32> = rows
                    .iter()
                    .filter(|r| fams.contains(&r.family))
                    .map(|r| message_logit(&m, r))
                    .collect();
                family_line(&m, name, &scores);
                if fams.len() == 1 {
                    dump_rows(&m, rows.iter().filter(|r| fams.contains(&r.family)))?;
                }
                if fams.len() == 1 && pools(name) {
                    // Pooled over single families: each score measured by a model that never
                    // saw its family, each against that model's own calibration benign scores
                    // (shifted so thresholds line up).
                    pooled.extend(scores.iter().map(|s| s - m.medium_at));
                    pooled_benign.extend(
                        rows.iter()
                            .filter(|r| held_out(r))
                            .map(|r| message_logit(&m, r) - m.medium_at),
                    );
                    pooled_outside.extend(
                        outside.iter().map(|(_, input)| {
                            model::judge(&m, &input.0, input.1).logit - m.medium_at
                        }),
                    );
                }
            }
            println!(
                "pooled over left-out families: ROC-AUC {:.4}, TPR at 1% FPR {:.3} (benign: calibration fifth, never trained on)",
                auc(&pooled, &pooled_benign),
                tpr_at_fpr(&pooled, &pooled_benign, 0.01)
            );
            if !outside.is_empty() {
                println!(
                    "pooled over left-out families: ROC-AUC {:.4}, TPR at 1% FPR {:.3} (benign: {} messages outside the corpus)",
                    auc(&pooled, &pooled_outside),
                    tpr_at_fpr(&pooled, &pooled_outside, 0.01),
                    outside.len()
                );
            }
        }
        "opinions" => {
            // opinions CORPUS MODEL --families F,.. [--benign DIRS]: the whole scorer's two
            // opinions (rules, model) per row of the families, per calibration row and per
            // outside message, as TSV, to compare ways of combining them.
            let path = args.get(3).ok_or_else(|| anyhow::anyhow!(usage))?;
            let m = model::Model::from_bytes(&std::fs::read(path)?)
                .ok_or_else(|| anyhow::anyhow!("{path}: not a model"))?;
            let wanted = parse_list(&args, "--families");
            let calibration: HashSet<&str> = rows
                .iter()
                .filter(|r| held_out(r))
                .map(|r| r.id.as_str())
                .collect();
            opinions(&m, corpus, |family, id| {
                if wanted.iter().any(|w| w == family) {
                    Some("attack")
                } else if calibration.contains(id) {
                    Some("calibration")
                } else {
                    None
                }
            })?;
            for (p, _) in messages(&parse_list(&args, "--benign"))? {
                let (rules, verdict) = insight::opinions(&std::fs::read(&p)?, &m);
                println!(
                    "outside\t{}\tbenign\t{rules:.4}\t{:.4}\t{:.4}",
                    p.display(),
                    verdict.risk,
                    verdict.logit - m.medium_at
                );
            }
        }
        #[cfg(feature = "encoder")]
        "stage2" => {
            // stage2 CORPUS STAGE_ONE.model ENCODER_DIR OUT.head [--holdout FAM,..]
            let (Some(path), Some(dir), Some(out)) = (args.get(3), args.get(4), args.get(5)) else {
                anyhow::bail!(
                    "usage: train_injection stage2 CORPUS STAGE_ONE.model ENCODER_DIR OUT.head"
                );
            };
            let m = model::Model::from_bytes(&std::fs::read(path)?)
                .ok_or_else(|| anyhow::anyhow!("{path}: not a model"))?;
            let encoder = stage_two::load_encoder(dir)?;
            let mut emb = stage_two::Embeddings::new(&encoder);
            let head = stage_two::train_head(&m, &rows, &holdout, &mut emb)?;
            std::fs::write(out, head.to_bytes())?;
            let c = &head.calibration;
            println!(
                "head: gate {:.2}, usual {:.2}, medium {:.2}, high {:.2}, typical {:.2}",
                head.gate, head.usual, c.medium_at, c.high_at, c.typical_at
            );
        }
        #[cfg(feature = "encoder")]
        "stage2-lofo" => {
            let dir = args.get(3).ok_or_else(|| {
                anyhow::anyhow!("usage: train_injection stage2-lofo CORPUS ENCODER_DIR")
            })?;
            let encoder = stage_two::load_encoder(dir)?;
            let mut emb = stage_two::Embeddings::new(&encoder);
            let outside = messages(&parse_list(&args, "--benign"))?;
            let kept: Vec<String> = families
                .iter()
                .filter(|f| !holdout.contains(f))
                .cloned()
                .collect();
            if std::env::var("TRAIN_HOLDOUT_ONLY").is_err() {
                stage_two::lofo(&rows, &kept, &holdout, &outside, &mut emb)?;
            }
            if !holdout.is_empty() {
                stage_two::holdout(&rows, &holdout, &mut emb)?;
            }
        }
        _ => anyhow::bail!(usage),
    }
    Ok(())
}

/// Prints `set, id, family, rules' risk, model's risk, logit - medium` for the corpus rows `pick`
/// names a set for (by family and id), read again from the corpus as the scorer reads them.
fn opinions(
    m: &model::Model,
    corpus: &str,
    pick: impl Fn(&str, &str) -> Option<&'static str>,
) -> anyhow::Result<()> {
    let policy = Policy::default();
    for line in std::io::BufReader::new(std::fs::File::open(corpus)?).lines() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
        let (id, family) = (s("id").unwrap_or_default(), s("family").unwrap_or_default());
        let Some(set) = pick(&family, &id) else {
            continue;
        };
        let (rules, verdict) = match s("eml") {
            Some(raw) => insight::opinions(raw.as_bytes(), m),
            None => risk::opinions(m, &Fields::of(&v).content(), &policy),
        };
        println!(
            "{set}\t{id}\t{family}\t{rules:.4}\t{:.4}\t{:.4}",
            verdict.risk,
            verdict.logit - m.medium_at
        );
    }
    Ok(())
}

/// One line of a recall table: rows, and the share at medium and at high.
fn family_line(m: &model::Model, name: &str, scores: &[f32]) {
    let share =
        |t: f32| scores.iter().filter(|&&s| s >= t).count() as f64 / scores.len().max(1) as f64;
    println!(
        "{:<40} {:>6} {:>9.3} {:>9.3}",
        name,
        scores.len(),
        share(m.medium_at),
        share(m.high_at)
    );
}

/// With `TRAIN_DUMP=FILE`: appends `id, family, logit - medium_at, high_at - medium_at` per row.
fn dump<'a>(
    m: &model::Model,
    rows: impl IntoIterator<Item = (String, &'a str, f32)>,
) -> anyhow::Result<()> {
    let Ok(path) = std::env::var("TRAIN_DUMP") else {
        return Ok(());
    };
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    for (id, family, logit) in rows {
        writeln!(
            f,
            "{id}\t{family}\t{:.4}\t{:.4}",
            logit - m.medium_at,
            m.high_at - m.medium_at
        )?;
    }
    Ok(())
}

fn dump_rows<'a>(m: &model::Model, rows: impl Iterator<Item = &'a Row>) -> anyhow::Result<()> {
    dump(
        m,
        rows.map(|r| (r.id.clone(), r.family.as_str(), message_logit(m, r))),
    )
}

type ModelInput = (Vec<model::Segment>, model::MessageFacts);

/// The .eml and .txt messages of directories, read as the model reads them, in name order.
fn messages(dirs: &[String]) -> anyhow::Result<Vec<(std::path::PathBuf, ModelInput)>> {
    let mut out = Vec::new();
    for dir in dirs {
        let mut paths: Vec<_> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "eml" || e == "txt"))
            .collect();
        paths.sort();
        for p in paths {
            let input = insight::model_input(&std::fs::read(&p)?);
            out.push((p, input));
        }
    }
    Ok(out)
}

/// Mail never trained on (directories of .eml or .txt messages): the share at medium or above.
fn benign_dirs(m: &model::Model, dirs: &[String]) -> anyhow::Result<()> {
    for dir in dirs {
        let paths = messages(std::slice::from_ref(dir))?;
        let mut flagged = Vec::new();
        for (p, (segments, facts)) in &paths {
            let verdict = model::judge(m, segments, *facts);
            let logit = verdict.logit;
            if logit >= m.medium_at
                && std::env::var("TRAIN_WHY").is_ok()
                && let Some(w) = &verdict.best
            {
                eprintln!(
                    "{}: {:.2} {:?} {:?}",
                    p.display(),
                    logit,
                    w.text,
                    model::top_words(m, &w.text, 8)
                );
            }
            dump(m, [(p.display().to_string(), "benign", logit)])?;
            if logit >= m.medium_at {
                flagged.push(
                    p.file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                );
            }
        }
        println!(
            "benign {dir}: {} of {} at medium or above {:?}",
            flagged.len(),
            paths.len(),
            flagged.iter().take(8).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// Prints each family's recall and the families together against `benign`; returns their
/// scores.
fn report(m: &model::Model, rows: &[Row], families: &[String], benign: &[f32]) -> Vec<f32> {
    let mut all: Vec<f32> = Vec::new();
    println!(
        "{:<40} {:>6} {:>9} {:>9}",
        "family", "rows", "medium+", "high"
    );
    for f in families {
        let scores: Vec<f32> = rows
            .iter()
            .filter(|r| &r.family == f)
            .map(|r| message_logit(m, r))
            .collect();
        family_line(m, f, &scores);
        all.extend(scores);
    }
    println!(
        "together: ROC-AUC {:.4}, TPR at 1% FPR {:.3} against the calibration fifth",
        auc(&all, benign),
        tpr_at_fpr(&all, benign, 0.01)
    );
    all
}
