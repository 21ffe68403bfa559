//! Stage two's head (feature `encoder`): logistic regression over the all-MiniLM-L6-v2 embedding
//! of windows, added to stage one's logit with weight `BETA`, calibrated like stage one.
//!
//!   train_injection stage2 CORPUS STAGE_ONE.model ENCODER_DIR OUT.head   # train the head
//!   train_injection stage2-lofo CORPUS ENCODER_DIR [--benign DIRS]       # leave one family out
//!
//! Examples: the windows labelled as the attack in attack rows (at most `PER_FAMILY` a family),
//! their carrier windows (`CARRIERS` a family), stage one's two most suspicious windows of
//! trained-on benign rows (`BENIGN_ROWS` a family), and the best window of benign rows near the
//! gate (what stage two is shown; `BENIGN_ROWS` a family), each chosen by a hash of its id: the same
//! corpus gives the same head, byte for byte (embeddings are deterministic on one thread, the
//! regression is full-batch gradient descent from zero).

use super::*;
use crabmail::ingest::risk::encoder::{self, Encoder, Head};
use std::collections::HashMap;

const PER_FAMILY: usize = 150;
const CARRIERS: usize = 60;
const BENIGN_ROWS: usize = 250;
/// Benign rows whose stage-one logit is at most this far below the gate are also examples.
const NEAR_GATE: f32 = 1.0;
/// Weight of the head's answer beside stage one's logit (`TRAIN_BETA` for experiments). A
/// prototype's leave-one-out figures gained at 0.25 and 0.5 and lost at 1 and above; at 0.5 the
/// whole scorer put 4 of the repo's 33 own newsletters and notifications at medium (0 at 0.25).
const BETA: f32 = 0.25;
const STEPS: usize = 3000;
const STEP: f32 = 2.0;
const L2: f32 = 1e-4;

/// Embeddings by text: every window is read once.
pub struct Embeddings<'e> {
    encoder: &'e Encoder,
    cache: HashMap<String, Vec<f32>>,
}

impl<'e> Embeddings<'e> {
    pub fn new(encoder: &'e Encoder) -> Self {
        Embeddings {
            encoder,
            cache: HashMap::new(),
        }
    }

    pub fn of(&mut self, text: &str) -> anyhow::Result<&[f32]> {
        if !self.cache.contains_key(text) {
            let e = self.encoder.embed(text)?;
            self.cache.insert(text.to_owned(), e);
        }
        Ok(&self.cache[text])
    }
}

/// Up to `n` items, in the order of a hash of their key (a fixed sample).
fn sample<T>(mut items: Vec<(String, T)>, n: usize) -> Vec<T> {
    items.sort_by_key(|(k, _)| fnv(k));
    items.into_iter().take(n).map(|(_, t)| t).collect()
}

/// The head's training examples, without the families in `skip`. Each: the window's text, whether it is an attack, and whether it is a benign window near the
/// gate.
fn examples<'r>(m: &model::Model, rows: &'r [Row], skip: &[String]) -> Vec<(&'r str, bool, bool)> {
    let mut by_family: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| !held_out(r) && !skip.contains(&r.family))
    {
        by_family.entry(&r.family).or_default().push(r);
    }
    let mut out = Vec::new();
    for (_, family) in by_family {
        if family[0].label == 1 {
            let labelled = |want: bool| -> Vec<(String, &'r str)> {
                family
                    .iter()
                    .flat_map(|r| {
                        r.windows
                            .iter()
                            .zip(&r.labels)
                            .enumerate()
                            .filter(move |(_, (_, l))| **l == Some(want))
                            .map(move |(i, (w, _))| (format!("{}#{i}", r.id), w.text.as_str()))
                    })
                    .collect()
            };
            out.extend(
                sample(labelled(true), PER_FAMILY)
                    .into_iter()
                    .map(|t| (t, true, false)),
            );
            out.extend(
                sample(labelled(false), CARRIERS)
                    .into_iter()
                    .map(|t| (t, false, false)),
            );
        } else {
            let chosen = sample(
                family.iter().map(|r| (r.id.clone(), *r)).collect(),
                BENIGN_ROWS,
            );
            for r in chosen {
                let mut scored: Vec<(f32, &str)> = r
                    .windows
                    .iter()
                    .map(|w| (m.logit(&w.features), w.text.as_str()))
                    .collect();
                scored.sort_by(|a, b| b.0.total_cmp(&a.0));
                out.extend(scored.into_iter().take(2).map(|(_, t)| (t, false, false)));
            }
            // The mail stage two is shown: benign messages at or near the gate, whose best
            // window is what the head must not mistake for an attack.
            let near = sample(
                family
                    .iter()
                    .filter_map(|r| Some((r, best_window(m, r)?)))
                    .filter(|(_, (_, l))| *l >= gate(m) - NEAR_GATE)
                    .map(|(r, (i, _))| (r.id.clone(), r.windows[i].text.as_str()))
                    .collect(),
                BENIGN_ROWS,
            );
            out.extend(near.into_iter().map(|t| (t, false, true)));
        }
    }
    out
}

/// Stage two reads messages halfway from typical mail to `medium` and above.
fn gate(m: &model::Model) -> f32 {
    m.typical_at + (m.medium_at - m.typical_at) / 2.0
}

/// Full-batch gradient descent on the class-balanced logistic loss with L2.
fn regress(xs: &[&[f32]], ys: &[bool]) -> (Vec<f32>, f32) {
    let pos = ys.iter().filter(|&&y| y).count().max(1) as f32;
    let neg = ys.iter().filter(|&&y| !y).count().max(1) as f32;
    let (wp, wn) = (0.5 / pos, 0.5 / neg);
    let mut w = vec![0f32; encoder::DIM];
    let mut b = 0f32;
    for _ in 0..STEPS {
        let mut gw = vec![0f32; encoder::DIM];
        let mut gb = 0f32;
        for (x, &y) in xs.iter().zip(ys) {
            let z = b + w.iter().zip(x.iter()).map(|(a, c)| a * c).sum::<f32>();
            let p = 1.0 / (1.0 + (-z.clamp(-30.0, 30.0)).exp());
            let err = (p - if y { 1.0 } else { 0.0 }) * if y { wp } else { wn };
            gw.iter_mut().zip(x.iter()).for_each(|(g, c)| *g += err * c);
            gb += err;
        }
        w.iter_mut()
            .zip(&gw)
            .for_each(|(wi, g)| *wi -= STEP * (g + L2 * *wi));
        b -= STEP * gb;
    }
    (w, b)
}

/// Trains a head over stage one `m`, without the families in `skip`, and calibrates it.
pub fn train_head(
    m: &model::Model,
    rows: &[Row],
    skip: &[String],
    emb: &mut Embeddings<'_>,
) -> anyhow::Result<Head> {
    let ex = examples(m, rows, skip);
    for (t, _, _) in &ex {
        emb.of(t)?;
    }
    let xs: Vec<&[f32]> = ex
        .iter()
        .map(|(t, _, _)| emb.cache[*t].as_slice())
        .collect();
    let ys: Vec<bool> = ex.iter().map(|e| e.1).collect();
    let (weights, bias) = regress(&xs, &ys);
    let mut head = Head {
        weights,
        bias,
        beta: param("TRAIN_BETA", BETA),
        gate: gate(m),
        usual: 0.0,
        calibration: m.clone(),
    };
    // Below the gate the head's answer on benign mail near it stands in, so crossing the gate
    // moves ordinary mail neither up nor down on the whole.
    let mut near: Vec<f32> = ex
        .iter()
        .zip(&xs)
        .filter(|((_, _, near), _)| *near)
        .map(|(_, x)| head.answer(x))
        .collect();
    near.sort_by(f32::total_cmp);
    head.usual = quantile(&near, 0.5);
    let mut z: Vec<f32> = Vec::new();
    for r in rows.iter().filter(|r| calibrates(r)) {
        z.push(combined(m, &head, r, emb)?);
    }
    z.sort_by(f32::total_cmp);
    let (medium, high, typical) = thresholds(&z);
    head.calibration = model::Model {
        weights: Vec::new(),
        medium_at: medium,
        high_at: high,
        typical_at: typical,
    };
    Ok(head)
}

/// A row's logit after stage two, as the server computes it.
pub fn combined(
    m: &model::Model,
    head: &Head,
    row: &Row,
    emb: &mut Embeddings<'_>,
) -> anyhow::Result<f32> {
    let Some((i, s1)) = best_window(m, row) else {
        return Ok(f32::MIN);
    };
    let answer = head.read(s1, || emb.of(&row.windows[i].text))?;
    Ok(head.combine(s1, answer))
}

pub fn load_encoder(dir: &str) -> anyhow::Result<Encoder> {
    Ok(Encoder::load(std::path::Path::new(dir))?)
}

/// Logits with stage one alone and with stage two, each relative to its own `medium`.
#[derive(Default)]
struct Both {
    one: Vec<f32>,
    two: Vec<f32>,
}

impl Both {
    fn extend(&mut self, other: Both) {
        self.one.extend(other.one);
        self.two.extend(other.two);
    }

    /// The rows' logits under stage one `m` and with `head` on top.
    fn of<'r>(
        m: &model::Model,
        head: &Head,
        rows: impl Iterator<Item = &'r Row>,
        emb: &mut Embeddings<'_>,
    ) -> anyhow::Result<Both> {
        let mut out = Both::default();
        for r in rows {
            out.one.push(message_logit(m, r) - m.medium_at);
            out.two
                .push(combined(m, head, r, emb)? - head.calibration.medium_at);
        }
        Ok(out)
    }

    /// A table line: the share at medium or above, with stage one and with stage two.
    fn line(&self, name: &str) {
        let share =
            |s: &[f32]| s.iter().filter(|&&x| x >= 0.0).count() as f64 / s.len().max(1) as f64;
        println!(
            "{:<40} {:>6} {:>12.3} {:>12.3}",
            name,
            self.one.len(),
            share(&self.one),
            share(&self.two)
        );
    }

    /// Attack logits (self) against benign ones: ROC-AUC and TPR at 1% FPR, both ways.
    fn pooled(&self, benign: &Both, what: &str) {
        println!(
            "{what}, stage one: ROC-AUC {:.4}, TPR at 1% FPR {:.3}; with stage two: ROC-AUC {:.4}, TPR at 1% FPR {:.3}",
            auc(&self.one, &benign.one),
            tpr_at_fpr(&self.one, &benign.one, 0.01),
            auc(&self.two, &benign.two),
            tpr_at_fpr(&self.two, &benign.two, 0.01)
        );
    }
}

fn table_head(first: &str) {
    println!(
        "{:<40} {:>6} {:>12} {:>12}",
        first, "rows", "stage one", "with two"
    );
}

/// Leave one family out for stage one and the head together; pooled figures with and without
/// stage two, against the calibration rows (never trained on) and mail outside the corpus.
pub fn lofo(
    rows: &[Row],
    families: &[String],
    holdout: &[String],
    outside: &[(std::path::PathBuf, ModelInput)],
    emb: &mut Embeddings<'_>,
) -> anyhow::Result<()> {
    let (mut attacks, mut benign, mut benign_outside) =
        (Both::default(), Both::default(), Both::default());
    table_head("left out");
    for f in families {
        let mut skip = holdout.to_vec();
        skip.push(f.clone());
        let m = train(rows, |r| !skip.contains(&r.family));
        let head = train_head(&m, rows, &skip, emb)?;
        let family = Both::of(&m, &head, rows.iter().filter(|r| &r.family == f), emb)?;
        benign.extend(Both::of(
            &m,
            &head,
            rows.iter().filter(|r| calibrates(r)),
            emb,
        )?);
        for (_, (segments, facts)) in outside {
            let verdict = model::judge(&m, segments, *facts);
            let answer = match &verdict.best {
                Some(best) => head.read(verdict.logit, || emb.of(&best.text))?,
                None => None,
            };
            benign_outside.one.push(verdict.logit - m.medium_at);
            benign_outside
                .two
                .push(head.combine(verdict.logit, answer) - head.calibration.medium_at);
        }
        family.line(f);
        attacks.extend(family);
    }
    attacks.pooled(
        &benign,
        "pooled (benign: calibration rows, never trained on)",
    );
    if !outside.is_empty() {
        let what = format!(
            "pooled (benign: {} messages outside the corpus)",
            outside.len()
        );
        attacks.pooled(&benign_outside, &what);
    }
    Ok(())
}

/// The families kept out of all development (`--holdout`), scored by a stage one and a head that
/// never saw them: recall at medium and the pooled figures against the calibration rows.
pub fn holdout(rows: &[Row], holdout: &[String], emb: &mut Embeddings<'_>) -> anyhow::Result<()> {
    let m = train(rows, |r| !holdout.contains(&r.family));
    let head = train_head(&m, rows, holdout, emb)?;
    let mut attacks = Both::default();
    table_head("held out of development");
    for f in holdout {
        let family = Both::of(&m, &head, rows.iter().filter(|r| &r.family == f), emb)?;
        family.line(f);
        attacks.extend(family);
    }
    let benign = Both::of(&m, &head, rows.iter().filter(|r| calibrates(r)), emb)?;
    attacks.pooled(&benign, "held-out families (benign: calibration rows)");
    Ok(())
}
