//! Reading a message part by part: each part's text becomes a segment for the model, and what
//! the analyses find in it (invisible characters, instruction rules, task requests, encoded
//! forms, hidden HTML) becomes findings with their evidence.

use super::{AttachmentText, Finding, cap, decode, found, html, model, rules, tasks, unicode};
use crabmail_api::{Header, HiddenContent};

#[derive(Default)]
pub(super) struct Scanner {
    pub findings: Vec<Finding>,
    pub hidden: Vec<HiddenContent>,
    pub segments: Vec<model::Segment>,
}

impl Scanner {
    /// One part: invisible characters, instruction rules, task requests (judged against
    /// `context` when given), encoded forms.
    pub fn part(
        &mut self,
        raw: &str,
        (location, kind): (&str, model::Kind),
        context: Option<&str>,
    ) {
        let scan = unicode::scan(raw);
        let text = scan.cleaned.as_str();
        let seg = self.segments.len();
        self.segments.push(model::Segment {
            kind,
            location: location.to_owned(),
            text: text.to_owned(),
            marks: Vec::new(),
        });
        self.characters(&scan, location);
        if !scan.tag_text.trim().is_empty() {
            self.tag_text(&scan.tag_text, location);
        }
        self.homoglyphs(&scan, location);
        let plain = rules::scan(text);
        let plain_rules: Vec<&str> = plain.iter().map(|h| h.rule).collect();
        self.segments[seg].marks = model::marks(&plain);
        for hit in plain {
            self.findings.push(found(hit, location));
        }
        if let Some(context) = context {
            let task_hits = tasks::scan(text, context);
            self.segments[seg].marks.extend(model::marks(&task_hits));
            for hit in task_hits {
                self.findings.push(found(hit, location));
            }
        }
        self.decoded(text, &plain_rules, location);
    }

    /// Characters a reader does not see: invisible ones and bidirectional controls.
    fn characters(&mut self, scan: &unicode::Scan, location: &str) {
        if scan.invisible >= 3 || scan.selectors > 0 {
            self.findings.push(Finding {
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
            self.findings.push(Finding {
                rule: "bidi_control",
                weight: 0.2,
                excerpt: format!("{} bidirectional control characters", scan.bidi),
                location: location.to_owned(),
            });
        }
    }

    /// Words that mix scripts, as look-alikes of other words do.
    fn homoglyphs(&mut self, scan: &unicode::Scan, location: &str) {
        if !scan.mixed_words.is_empty() {
            self.findings.push(Finding {
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
    }

    /// Text spelled in Unicode tag characters: invisible, so written for a machine.
    fn tag_text(&mut self, tag_text: &str, location: &str) {
        self.findings.push(Finding {
            rule: "unicode_tags",
            weight: 0.6,
            excerpt: rules::excerpt(tag_text),
            location: location.to_owned(),
        });
        let tag_hits = rules::scan(tag_text);
        self.segments.push(model::Segment {
            kind: model::Kind::Hidden,
            location: location.to_owned(),
            text: tag_text.to_owned(),
            marks: model::marks(&tag_hits),
        });
        for hit in tag_hits {
            self.findings.push(Finding {
                rule: "hidden_instruction",
                weight: hit.weight.max(0.9),
                excerpt: format!("in Unicode tag characters: {}", hit.excerpt),
                location: location.to_owned(),
            });
        }
        self.hidden.push(HiddenContent {
            location: location.to_owned(),
            reason: "unicode tag characters".into(),
            text: tag_text.to_owned(),
        });
    }

    /// Base64, hex, reversed and de-leeted forms of the text, read again.
    fn decoded(&mut self, text: &str, plain_rules: &[&str], location: &str) {
        for decoded in decode::candidates(text) {
            let strong = rules::scan_strong(&decoded.text);
            self.segments.push(model::Segment {
                kind: model::Kind::Decoded,
                location: location.to_owned(),
                text: decoded.text.clone(),
                marks: model::marks(&strong),
            });
            // Reversed and de-leeted forms keep the plain words: what the plain text already
            // showed is not news.
            for hit in strong
                .into_iter()
                .filter(|h| !plain_rules.contains(&h.rule))
            {
                self.findings.push(Finding {
                    rule: "encoded_instruction",
                    weight: hit.weight.max(0.8),
                    excerpt: format!("{} ({}): {}", decoded.encoding, hit.rule, hit.excerpt),
                    location: location.to_owned(),
                });
            }
            if decoded.encoding == "base64" || decoded.encoding == "hex" {
                self.findings.push(Finding {
                    rule: "encoded_payload",
                    weight: 0.2,
                    excerpt: format!("{}: {}", decoded.encoding, rules::excerpt(&decoded.text)),
                    location: location.to_owned(),
                });
            }
        }
    }

    /// What an HTML part hides from its reader, each item read and kept as evidence.
    pub fn hidden_html(&mut self, items: &[html::Hidden], location: &str) {
        for item in items {
            self.hidden_item(item, location);
            self.hidden.push(HiddenContent {
                location: location.to_owned(),
                reason: item.reason.into(),
                text: item.text.clone(),
            });
        }
    }

    /// Hidden text is weak evidence alone (preheaders, tracking comments) and strong with an
    /// instruction in it: a person cannot see it, so it was written for a machine.
    ///
    /// Only instruction rules make hidden text an instruction: a task-shaped sentence there (a
    /// preheader asking "Why are bond prices falling?") counts as an ordinary task sentence,
    /// since newsletters hide teasers of what they say openly.
    ///
    /// An image's `alt` and `title` text is shown when images are off or on hover, and
    /// newsletters fill it with calls to action: it is read like the visible text, at each rule's
    /// own weight. An HTML comment without an instruction is template markup, not a signal.
    fn hidden_item(&mut self, item: &html::Hidden, location: &str) {
        let text = unicode::scan(&item.text).cleaned;
        let hits = rules::scan(&text);
        let task_hits = tasks::scan(&text, "");
        let mut marks = model::marks(&hits);
        marks.extend(model::marks(&task_hits));
        let shown = item.shown_on_request();
        self.segments.push(model::Segment {
            kind: if shown {
                model::Kind::Html
            } else {
                model::Kind::Hidden
            },
            location: location.to_owned(),
            text: text.clone(),
            marks,
        });
        for hit in task_hits {
            self.findings.push(found(hit, location));
        }
        if !shown && (!item.is_comment() || !hits.is_empty()) {
            let words = text.split_whitespace().count();
            let weight = if words >= 30 { 0.15 } else { 0.05 };
            self.findings.push(Finding {
                rule: "hidden_content",
                weight,
                excerpt: format!("{}: {}", item.reason, rules::excerpt(&item.text)),
                location: location.to_owned(),
            });
        }
        for hit in hits {
            self.findings.push(if shown {
                Finding {
                    rule: hit.rule,
                    weight: hit.weight,
                    excerpt: format!("{}: {}", item.reason, hit.excerpt),
                    location: location.to_owned(),
                }
            } else {
                Finding {
                    rule: "hidden_instruction",
                    weight: (hit.weight + 0.3).min(0.95),
                    excerpt: format!("{} ({}): {}", item.reason, hit.rule, hit.excerpt),
                    location: location.to_owned(),
                }
            });
        }
    }

    /// An attachment's text (HTML rendered first, its hidden parts read as hidden).
    pub fn attachment(&mut self, attachment: &AttachmentText, context: &str) {
        let location = format!("attachment:{}", attachment.name);
        if attachment.is_html {
            let r = html::render(cap(&attachment.text));
            self.part(
                &r.visible,
                (&location, model::Kind::Attachment),
                Some(context),
            );
            self.hidden_html(&r.hidden, &location);
        } else {
            self.part(
                cap(&attachment.text),
                (&location, model::Kind::Attachment),
                Some(context),
            );
        }
    }

    /// From, Reply-To and X- headers: strong instruction rules only, and long X- headers as
    /// segments of their own.
    pub fn headers(&mut self, headers: &[Header]) {
        for header in headers {
            let name = header.name.to_ascii_lowercase();
            if name.starts_with("x-") || name == "from" || name == "reply-to" {
                let location = format!("header:{}", header.name);
                for hit in rules::scan_strong(&header.value) {
                    self.findings.push(found(hit, &location));
                }
                if name.starts_with("x-") && header.value.split_whitespace().count() >= 4 {
                    self.segments.push(model::Segment {
                        kind: model::Kind::Header,
                        location,
                        text: unicode::scan(&header.value).cleaned,
                        marks: Vec::new(),
                    });
                }
            }
        }
    }
}
