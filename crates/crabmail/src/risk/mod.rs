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
//! The score combines evidence as independent signals (noisy-or): instructions count fully;
//! hidden content, invisible characters and sender signals count a little on their own and more
//! when an instruction is present. An optional external classifier (`classifier`) can raise it.

pub mod classifier;
pub mod decode;
pub mod html;
pub mod rules;
pub mod safe;
pub mod sender;
pub mod tasks;
pub mod unicode;

use crabmail_api::{AuthResults, Evidence, Header, HiddenContent, Mailbox, Security};
use rules::Hit;

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
    let mut findings = Vec::new();
    let mut hidden = Vec::new();
    let rendered = content.html.map(|h| html::render(cap(h)));
    let visible_text = match (content.text, &rendered) {
        (Some(t), _) if !t.trim().is_empty() => t.to_owned(),
        (_, Some(r)) => r.visible.clone(),
        (Some(t), None) => t.to_owned(),
        (None, None) => String::new(),
    };
    // A sentence is judged off-topic against its own part's other sentences and the subject.
    let context = content.subject.unwrap_or("").to_owned();

    if let Some(subject) = content.subject {
        scan_part(subject, "subject", None, &mut findings, &mut hidden);
    }
    if let Some(text) = content.text {
        scan_part(
            cap(text),
            "text",
            Some(&context),
            &mut findings,
            &mut hidden,
        );
    }
    if let Some(rendered) = &rendered {
        // The HTML alternative mostly repeats the text part: scan only what it says that the
        // text part does not.
        let html_only = match content.text {
            Some(text) => lines_not_in(&rendered.visible, text),
            None => rendered.visible.clone(),
        };
        scan_part(
            &html_only,
            "html",
            Some(&context),
            &mut findings,
            &mut hidden,
        );
        for item in &rendered.hidden {
            scan_hidden(item, &mut findings);
            hidden.push(HiddenContent {
                location: "hidden_html".into(),
                reason: item.reason.into(),
                text: item.text.clone(),
            });
        }
    }
    for attachment in content.attachments {
        let location = format!("attachment:{}", attachment.name);
        if attachment.is_html {
            let r = html::render(cap(&attachment.text));
            scan_part(
                &r.visible,
                &location,
                Some(&context),
                &mut findings,
                &mut hidden,
            );
            for item in &r.hidden {
                scan_hidden(item, &mut findings);
                hidden.push(HiddenContent {
                    location: location.clone(),
                    reason: item.reason.into(),
                    text: item.text.clone(),
                });
            }
        } else {
            scan_part(
                cap(&attachment.text),
                &location,
                Some(&context),
                &mut findings,
                &mut hidden,
            );
        }
    }
    for header in content.headers {
        let name = header.name.to_ascii_lowercase();
        if name.starts_with("x-") || name == "from" || name == "reply-to" {
            for hit in rules::scan_strong(&header.value) {
                findings.push(found(hit, &format!("header:{}", header.name)));
            }
        }
    }
    for s in sender::signals(
        content.from,
        content.auth,
        &policy.operator_names,
        &policy.operator_addresses,
    ) {
        findings.push(Finding {
            rule: s.rule,
            weight: s.weight,
            excerpt: s.excerpt,
            location: s.location,
        });
    }
    // Newsletters and list mail ask their readers questions and give them tips as a matter of
    // course; a task-shaped sentence there is much weaker evidence than in a receipt.
    if is_bulk(content, &visible_text) {
        for f in findings.iter_mut().filter(|f| f.rule == "task_injection") {
            f.weight *= BULK_TASK_FACTOR;
        }
    }
    Assessment {
        security: summarise(findings),
        visible_text,
        hidden,
        links: rendered.map(|r| r.links).unwrap_or_default(),
    }
}

/// How much a task-shaped sentence counts in bulk mail.
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

/// One part: invisible characters, instruction rules, task requests, encoded forms.
fn scan_part(
    raw: &str,
    location: &str,
    context: Option<&str>,
    findings: &mut Vec<Finding>,
    hidden: &mut Vec<HiddenContent>,
) {
    let scan = unicode::scan(raw);
    let text = scan.cleaned.as_str();
    if scan.invisible >= 3 || scan.selectors > 0 {
        findings.push(Finding {
            rule: "invisible_unicode",
            // Newsletters pad preheaders with zero-width joiners: weak on its own.
            weight: if scan.selectors > 0 { 0.3 } else { 0.05 },
            excerpt: format!(
                "{} invisible characters, {} variation selectors",
                scan.invisible, scan.selectors
            ),
            location: location.to_owned(),
        });
    }
    if scan.bidi > 0 {
        findings.push(Finding {
            rule: "bidi_control",
            weight: 0.2,
            excerpt: format!("{} bidirectional control characters", scan.bidi),
            location: location.to_owned(),
        });
    }
    if !scan.tag_text.trim().is_empty() {
        findings.push(Finding {
            rule: "unicode_tags",
            weight: 0.6,
            excerpt: rules::excerpt(&scan.tag_text),
            location: location.to_owned(),
        });
        for hit in rules::scan(&scan.tag_text) {
            findings.push(Finding {
                rule: "hidden_instruction",
                weight: hit.weight.max(0.9),
                excerpt: format!("in Unicode tag characters: {}", hit.excerpt),
                location: location.to_owned(),
            });
        }
        hidden.push(HiddenContent {
            location: location.to_owned(),
            reason: "unicode tag characters".into(),
            text: scan.tag_text.clone(),
        });
    }
    if !scan.mixed_words.is_empty() {
        findings.push(Finding {
            rule: "homoglyph",
            weight: 0.25,
            excerpt: scan
                .mixed_words
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
            location: location.to_owned(),
        });
    }
    let plain = rules::scan(text);
    let plain_rules: Vec<&str> = plain.iter().map(|h| h.rule).collect();
    for hit in plain {
        findings.push(found(hit, location));
    }
    if let Some(context) = context {
        for hit in tasks::scan(text, context) {
            findings.push(found(hit, location));
        }
    }
    for decoded in decode::candidates(text) {
        // Reversed and de-leeted forms keep the plain words: what the plain text already
        // showed is not news.
        for hit in rules::scan_strong(&decoded.text)
            .into_iter()
            .filter(|h| !plain_rules.contains(&h.rule))
        {
            findings.push(Finding {
                rule: "encoded_instruction",
                weight: hit.weight.max(0.8),
                excerpt: format!("{} ({}): {}", decoded.encoding, hit.rule, hit.excerpt),
                location: location.to_owned(),
            });
        }
        if decoded.encoding == "base64" || decoded.encoding == "hex" {
            findings.push(Finding {
                rule: "encoded_payload",
                weight: 0.2,
                excerpt: format!("{}: {}", decoded.encoding, rules::excerpt(&decoded.text)),
                location: location.to_owned(),
            });
        }
    }
}

/// Hidden text is weak evidence alone (preheaders, tracking comments) and strong with an
/// instruction in it: a person cannot see it, so it was written for a machine.
///
/// Only instruction rules make hidden text an instruction: a task-shaped sentence there (a
/// preheader asking "Why are bond prices falling?") counts as an ordinary task sentence, since
/// newsletters hide teasers of what they say openly.
fn scan_hidden(item: &html::Hidden, findings: &mut Vec<Finding>) {
    let text = unicode::scan(&item.text).cleaned;
    let hits = rules::scan(&text);
    for hit in tasks::scan(&text, "") {
        findings.push(found(hit, "hidden_html"));
    }
    let words = text.split_whitespace().count();
    let weight = if words >= 30 { 0.15 } else { 0.05 };
    findings.push(Finding {
        rule: "hidden_content",
        weight,
        excerpt: format!("{}: {}", item.reason, rules::excerpt(&item.text)),
        location: "hidden_html".into(),
    });
    for hit in hits {
        findings.push(Finding {
            rule: "hidden_instruction",
            weight: (hit.weight + 0.3).min(0.95),
            excerpt: format!("{} ({}): {}", item.reason, hit.rule, hit.excerpt),
            location: "hidden_html".into(),
        });
    }
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

/// Combines findings into the score, level, flags and evidence.
fn summarise(mut findings: Vec<Finding>) -> Security {
    // The same rule in the same place counts once: the strongest instance.
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
    let mut instruction = 0.0_f64;
    let mut signals = 0.0_f64;
    let mut seen_rules: Vec<&str> = Vec::new();
    for f in &kept {
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
    let risk = if instruction >= 0.3 {
        // Signals make an instruction more credible: up to half of the remaining distance.
        instruction + (1.0 - instruction) * (signals * 2.0).min(0.5)
    } else {
        noisy_or(instruction, signals)
    };
    let risk = (risk * 1000.0).round() / 1000.0;
    let mut flags: Vec<String> = Vec::new();
    for f in &kept {
        if !flags.iter().any(|x| x == f.rule) {
            flags.push(f.rule.to_owned());
        }
    }
    Security {
        injection_risk: risk,
        level: level(risk).to_owned(),
        flags,
        evidence: kept
            .into_iter()
            .take(MAX_EVIDENCE)
            .map(|f| Evidence {
                rule: f.rule.to_owned(),
                excerpt: f.excerpt,
                location: f.location,
            })
            .collect(),
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
