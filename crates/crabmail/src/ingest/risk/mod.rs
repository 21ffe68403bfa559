//! Injection risk: how likely a received message is to carry instructions aimed at the AI that
//! will read it, with the evidence, and the safe view that AI should read instead of the raw mail.
//!
//! Every part a model might read is scanned (subject, text, the visible and the hidden text of the
//! HTML, text and HTML attachments, the From display name and `X-` headers). Each is first
//! cleaned of invisible Unicode (`unicode`), then matched against instruction rules (`rules`) and
//! task-request shapes (`tasks`), and decoded forms of it (`decode`) against the strong rules.
//! Sender signals (`sender`) amplify what was found. Everything is deterministic: the same message
//! always gets the same score and the same evidence.
//!
//! The score is the mean of two opinions. The rules' combines the findings as independent signals
//! (noisy-or): instructions count fully; hidden content, invisible characters and sender signals
//! count a little on their own and more when an instruction is present. The learned model's
//! (`model`) reads sentence windows of every segment, with the rule hits among its features, and
//! judges the most suspicious one. An optional external classifier (`classifier`) can raise it.

pub mod classifier;
pub mod decode;
#[cfg(feature = "encoder")]
pub mod encoder;
pub mod html;
pub mod model;
pub mod rules;
pub mod safe;
mod scan;
pub mod sender;
pub mod tasks;
pub mod unicode;

use crabmail_api::{AuthResults, Evidence, Header, HiddenContent, Mailbox, Security};
use rules::Hit;
use scan::Scanner;

/// Risk at and above which a message is `medium`, and `high`.
pub const MEDIUM: f64 = 0.4;
pub const HIGH: f64 = 0.7;
/// Evidence entries kept per message (the strongest).
const MAX_EVIDENCE: usize = 24;
/// Text scanned per part: beyond this, mail is not read by a model whole anyway.
const MAX_SCAN: usize = 256 * 1024;

/// Rules whose hits are instructions (the rest are signals that amplify them).
const INSTRUCTION_RULES: &[&str] = &[
    "instruction_override",
    "role_reassignment",
    "fake_system_message",
    "fake_boundary",
    "ai_addressed",
    "tool_request",
    "exfiltration",
    "secrecy",
    "prompt_leak",
    "output_manipulation",
    "user_manipulation",
    "task_injection",
    "hidden_instruction",
    "encoded_instruction",
];

/// What the scorer reads of a message.
#[derive(Debug, Default, Clone, Copy)]
pub struct Content<'a> {
    pub subject: Option<&'a str>,
    /// The text/plain body as sent (None when the message has only HTML).
    pub text: Option<&'a str>,
    pub html: Option<&'a str>,
    pub attachments: &'a [AttachmentText],
    pub headers: &'a [Header],
    pub from: Option<&'a Mailbox>,
    pub auth: Option<&'a AuthResults>,
}

/// The readable text of a text or HTML attachment.
#[derive(Debug, Clone)]
pub struct AttachmentText {
    pub name: String,
    pub text: String,
    pub is_html: bool,
}

/// Who the agent's operator is, for impersonation checks.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub operator_names: Vec<String>,
    pub operator_addresses: Vec<String>,
}

/// The scorer's verdict and what the safe view needs.
#[derive(Debug, Clone, Default)]
pub struct Assessment {
    pub security: Security,
    /// The text a person sees: text/plain, or the visible HTML when there is none.
    pub visible_text: String,
    pub hidden: Vec<HiddenContent>,
    pub links: Vec<html::Link>,
}

#[derive(Debug, Clone)]
struct Finding {
    rule: &'static str,
    weight: f64,
    excerpt: String,
    location: String,
}

pub fn assess(content: &Content<'_>, policy: &Policy) -> Assessment {
    let reading = read(content, policy);
    #[allow(unused_mut)] // stage two (feature `encoder`) may move it
    let mut verdict = model::judge(model::embedded(), &reading.segments, reading.facts);
    #[cfg(feature = "encoder")]
    encoder::rejudge(&mut verdict);
    Assessment {
        security: summarise(reading.findings, &verdict, &reading.segments),
        visible_text: reading.visible_text,
        hidden: reading.hidden,
        links: reading.links,
    }
}

/// The two opinions the score averages (the rules' risk, the model's verdict), with a given
/// stage-one model: validation measures the whole scorer with models trained without the family
/// it scores (`train/injection`).
pub fn opinions(
    model: &model::Model,
    content: &Content<'_>,
    policy: &Policy,
) -> (f64, model::Verdict) {
    let reading = read(content, policy);
    let verdict = model::judge(model, &reading.segments, reading.facts);
    (rules_risk(&strongest(reading.findings)), verdict)
}

/// What the model reads of a message: its segments and the facts about it (for training, which
/// must see exactly what scoring sees).
pub fn model_input(
    content: &Content<'_>,
    policy: &Policy,
) -> (Vec<model::Segment>, model::MessageFacts) {
    let reading = read(content, policy);
    (reading.segments, reading.facts)
}

/// Everything the analyses found in a message, before the model judges it.
struct Reading {
    findings: Vec<Finding>,
    hidden: Vec<HiddenContent>,
    segments: Vec<model::Segment>,
    facts: model::MessageFacts,
    visible_text: String,
    links: Vec<html::Link>,
}

fn read(content: &Content<'_>, policy: &Policy) -> Reading {
    let rendered = content.html.map(|h| html::render(cap(h)));
    let visible_text = match (content.text, &rendered) {
        (Some(t), _) if !t.trim().is_empty() => t.to_owned(),
        (_, Some(r)) => r.visible.clone(),
        (Some(t), None) => t.to_owned(),
        (None, None) => String::new(),
    };
    // A sentence is judged off-topic against its own part's other sentences and the subject.
    let context = content.subject.unwrap_or("").to_owned();
    let mut scan = Scanner::default();
    if let Some(subject) = content.subject {
        scan.part(subject, ("subject", model::Kind::Subject), None);
    }
    if let Some(text) = content.text {
        scan.part(cap(text), ("text", model::Kind::Text), Some(&context));
    }
    if let Some(rendered) = &rendered {
        // The HTML alternative mostly repeats the text part: scan only what it says that the
        // text part does not.
        let html_only = match content.text {
            Some(text) => lines_not_in(&rendered.visible, text),
            None => rendered.visible.clone(),
        };
        scan.part(&html_only, ("html", model::Kind::Html), Some(&context));
        scan.hidden_html(&rendered.hidden, "hidden_html");
    }
    for attachment in content.attachments {
        scan.attachment(attachment, &context);
    }
    scan.headers(content.headers);
    let Scanner {
        mut findings,
        hidden,
        segments,
    } = scan;
    findings.extend(
        sender::signals(
            content.from,
            content.auth,
            &policy.operator_names,
            &policy.operator_addresses,
        )
        .into_iter()
        .map(|s| Finding {
            rule: s.rule,
            weight: s.weight,
            excerpt: s.excerpt,
            location: s.location,
        }),
    );
    let bulk = is_bulk(content, &visible_text);
    // Newsletters and list mail ask their readers questions and give them tips as a matter of
    // course; a task-shaped sentence there is much weaker evidence than in a receipt.
    if bulk {
        for f in findings.iter_mut().filter(|f| f.rule == "task_injection") {
            f.weight *= BULK_TASK_FACTOR;
        }
    }
    let facts = model::MessageFacts {
        bulk,
        invisible: findings
            .iter()
            .any(|f| matches!(f.rule, "invisible_unicode" | "unicode_tags")),
    };
    Reading {
        findings,
        hidden,
        segments,
        facts,
        visible_text,
        links: rendered.map(|r| r.links).unwrap_or_default(),
    }
}

/// How much a task-shaped sentence counts in bulk mail (in the rules' half of the score).
const BULK_TASK_FACTOR: f64 = 0.6;

/// Mail sent to a list: List-Id or List-Unsubscribe (RFC 2919, 2369), Precedence bulk or list,
/// or an unsubscribe offer in what the reader sees.
fn is_bulk(content: &Content<'_>, visible_text: &str) -> bool {
    content.headers.iter().any(|h| {
        let name = h.name.to_ascii_lowercase();
        name == "list-id"
            || name == "list-unsubscribe"
            || (name == "precedence"
                && matches!(
                    h.value.trim().to_ascii_lowercase().as_str(),
                    "bulk" | "list"
                ))
    }) || visible_text.to_ascii_lowercase().contains("unsubscribe")
}

/// The lines of `html_text` (whitespace collapsed) that `text` does not contain.
fn lines_not_in(html_text: &str, text: &str) -> String {
    let norm = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    let known: std::collections::HashSet<String> = text.lines().map(norm).collect();
    html_text
        .lines()
        .filter(|l| !known.contains(&norm(l)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn found(hit: Hit, location: &str) -> Finding {
    Finding {
        rule: hit.rule,
        weight: hit.weight,
        excerpt: hit.excerpt,
        location: location.to_owned(),
    }
}

fn cap(text: &str) -> &str {
    if text.len() <= MAX_SCAN {
        return text;
    }
    let mut end = MAX_SCAN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The score is the mean of two opinions: the learned model's (`model`, over n-grams of the most
/// suspicious window, with the rule hits among its features) and the rules' (instructions found,
/// raised by signals such as hidden text or a spoofed sender). Measured on attack families each
/// model never saw and on real mail, the mean beat either alone (bench/injection/README.md).
fn summarise(
    findings: Vec<Finding>,
    verdict: &model::Verdict,
    segments: &[model::Segment],
) -> Security {
    let kept = strongest(findings);
    let risk = (rules_risk(&kept) + verdict.risk) / 2.0;
    let risk = (risk * 1000.0).round() / 1000.0;
    let mut evidence: Vec<Evidence> = Vec::new();
    let mut flags: Vec<String> = Vec::new();
    // The model's own opinion, when it is at least medium: the window that set it and the words
    // that weighed most.
    if let Some(window) = &verdict.best
        && verdict.risk >= MEDIUM
    {
        let mut words = model::top_words(model::embedded(), &window.text, 6);
        if let Some(answer) = verdict.stage_two {
            words.push(format!("encoder {answer:+.1}"));
        }
        flags.push("model".into());
        evidence.push(Evidence {
            rule: "model".into(),
            excerpt: format!("{} [{}]", rules::excerpt(&window.text), words.join(", ")),
            location: segments
                .get(window.segment)
                .map(|s| s.location.clone())
                .unwrap_or_default(),
        });
    }
    for f in &kept {
        if !flags.iter().any(|x| x == f.rule) {
            flags.push(f.rule.to_owned());
        }
    }
    evidence.extend(kept.into_iter().map(|f| Evidence {
        rule: f.rule.to_owned(),
        excerpt: f.excerpt,
        location: f.location,
    }));
    evidence.truncate(MAX_EVIDENCE);
    Security {
        injection_risk: risk,
        level: level(risk).to_owned(),
        flags,
        evidence,
    }
}

/// The same rule in the same place counts once: the strongest instance.
fn strongest(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by(|a, b| b.weight.total_cmp(&a.weight));
    let mut kept: Vec<Finding> = Vec::new();
    for f in findings {
        if !kept
            .iter()
            .any(|k| k.rule == f.rule && k.location == f.location)
        {
            kept.push(f);
        }
    }
    kept
}

/// The rules' opinion: instructions count fully, the other findings are signals that count a
/// little alone and raise an instruction by up to half of the remaining distance.
fn rules_risk(kept: &[Finding]) -> f64 {
    let mut instruction = 0.0_f64;
    let mut signals = 0.0_f64;
    let mut seen_rules: Vec<&str> = Vec::new();
    for f in kept {
        // Across locations a rule adds a little, not fully: plain and HTML bodies repeat each other.
        let w = if seen_rules.contains(&f.rule) {
            f.weight * 0.25
        } else {
            f.weight
        };
        seen_rules.push(f.rule);
        if INSTRUCTION_RULES.contains(&f.rule) {
            instruction = noisy_or(instruction, w);
        } else {
            signals = noisy_or(signals, w);
        }
    }
    if instruction >= 0.3 {
        instruction + (1.0 - instruction) * (signals * 2.0).min(0.5)
    } else {
        noisy_or(instruction, signals)
    }
}

pub fn level(risk: f64) -> &'static str {
    if risk >= HIGH {
        "high"
    } else if risk >= MEDIUM {
        "medium"
    } else {
        "low"
    }
}

fn noisy_or(a: f64, b: f64) -> f64 {
    1.0 - (1.0 - a) * (1.0 - b)
}

#[cfg(test)]
mod tests;
