//! From raw bytes to the parsed view an agent reads: addresses, subject, bodies, attachments and
//! every header, with `mail-parser` doing the MIME work.
//!
//! Parsing never fails: a message that is not valid MIME still gets a view (possibly empty) and a
//! warning saying what was wrong. The raw bytes are kept elsewhere, untouched.
//!
//! Work is bounded by the message's size, whatever its shape: every step is linear, and a
//! structure past the limits (parts, multipart depth, nested messages) is not parsed past the
//! limit; the view says so (`limited`), and the raw message stays whole.

use crate::ingest::risk::AttachmentText;
use crabmail_api::{Attachment, Header, Mailbox, ParsedMessage, SummaryContent};
use mail_parser::{Address, HeaderValue, Message, MessageParser, MimeHeaders, PartType};
use std::sync::LazyLock;

/// Characters of text shown in a list summary.
const PREVIEW_CHARS: usize = 200;

pub struct Parsed {
    pub view: ParsedMessage,
    pub summary: SummaryContent,
    /// Whether `view.text` is a text/plain part as sent (false: mail-parser derived it from HTML,
    /// hidden parts included).
    pub has_plain_text: bool,
    /// Text and HTML attachments as text, for risk scoring.
    pub attachment_texts: Vec<AttachmentText>,
    /// Why parsing stopped short of the whole structure, if it did.
    pub limited: Option<String>,
    /// What it reports about mail we sent (`bounce`), if anything.
    pub report: Option<crate::bounce::Report>,
}

/// Characters of an attachment read for scoring.
const ATTACHMENT_TEXT_LIMIT: usize = 256 * 1024;
/// Characters of all attachments together read for scoring, and how many attachments at most.
const ATTACHMENT_TEXT_TOTAL: usize = 1024 * 1024;
const ATTACHMENTS_SCORED: usize = 100;

/// MIME parts parsed at most; the rest stays in the raw message, unparsed.
pub const MAX_PARTS: usize = 1000;
/// Deepest multipart nesting parsed.
pub const MAX_DEPTH: usize = 50;
/// Most `message/rfc822`, `message/global` or `multipart/digest` declarations before parsing
/// stops: each can open a nested message, and mail-parser builds (and drops) nested messages
/// recursively, so a few hundred thousand levels (a 25 MB message) would overflow the stack.
pub const MAX_NESTED_MESSAGES: usize = 50;

/// Anything that can open a nested message, wherever it appears (an over-estimate: body text
/// counts too, which only makes the cut earlier).
static NESTING: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
    regex::bytes::RegexBuilder::new(r"message/(rfc822|global)|multipart/digest")
        .case_insensitive(true)
        .build()
        .expect("nesting pattern compiles")
});

pub fn parse(raw: &[u8]) -> Parsed {
    let (message, limited) = match parse_within_limits(raw) {
        (Some(message), limited) => (message, limited),
        (None, limited) => {
            let mut warnings = vec!["the message has no header section; stored as received".into()];
            warnings.extend(limited.clone());
            let view = ParsedMessage {
                parse_warnings: warnings,
                ..Default::default()
            };
            return Parsed {
                summary: summarize(&view),
                view,
                has_plain_text: false,
                attachment_texts: Vec::new(),
                limited,
                report: None,
            };
        }
    };
    let warnings = warnings(&message, raw, limited.as_deref());
    let attachments = attachments(&message);
    let headers = headers(&message);
    let mut view = ParsedMessage {
        from: message
            .from()
            .and_then(|a| mailboxes(Some(a)).into_iter().next()),
        to: mailboxes(message.to()),
        cc: mailboxes(message.cc()),
        reply_to: mailboxes(message.reply_to()),
        subject: message.subject().map(str::to_owned),
        date: message.date().map(|d| d.to_rfc3339()),
        message_id: message.message_id().map(str::to_owned),
        in_reply_to: text_list(message.in_reply_to()),
        references: text_list(message.references()),
        text: message.body_text(0).map(|t| t.into_owned()),
        // Only an HTML part the sender wrote: mail-parser would render a plain-text body as
        // HTML, which the message never had.
        html: match message.html_part(0).map(|p| &p.body) {
            Some(PartType::Html(html)) => Some(html.to_string()),
            _ => None,
        },
        attachments,
        headers,
        parse_warnings: warnings,
        ..Default::default()
    };
    let report = crate::bounce::analyse_message(&message);
    if let Some(report) = &report {
        (view.bounce, view.complaint, view.auto_reply) = report.clone().into_view();
    }
    let has_plain_text = matches!(
        message.text_part(0).map(|p| &p.body),
        Some(PartType::Text(_))
    );
    let attachment_texts = attachment_texts(&message);
    Parsed {
        summary: summarize(&view),
        view,
        has_plain_text,
        attachment_texts,
        limited,
        report,
    }
}

/// What a reader should know about how the message was read: limits reached, a missing From,
/// undecodable parts, multipart boundaries never closed.
fn warnings(message: &Message<'_>, raw: &[u8], limited: Option<&str>) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(why) = limited {
        warnings.push(why.to_owned());
    }
    if message.from().is_none() {
        warnings.push("no From header".to_owned());
    }
    let closed = closing_delimiters(raw);
    for (i, part) in message.parts.iter().enumerate() {
        if part.is_encoding_problem {
            warnings.push(format!(
                "part {i}: content could not be decoded with its transfer encoding; kept as sent"
            ));
        }
        if let PartType::Multipart(_) = part.body
            && let Some(boundary) = part.content_type().and_then(|ct| ct.attribute("boundary"))
            && !closed.contains(boundary.as_bytes())
        {
            warnings.push(format!(
                "part {i}: multipart boundary \"{boundary}\" is never closed"
            ));
        }
    }
    warnings
}

fn attachments(message: &Message<'_>) -> Vec<Attachment> {
    message
        .attachments()
        .enumerate()
        .map(|(index, part)| Attachment {
            index,
            filename: part.attachment_name().map(str::to_owned),
            content_type: part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
                    None => ct.ctype().to_ascii_lowercase(),
                })
                .unwrap_or_else(|| "application/octet-stream".to_owned()),
            size: part.contents().len(),
            content_id: part.content_id().map(str::to_owned),
        })
        .collect()
}

/// Every header as sent, decoded where mail-parser understood it, else unfolded.
fn headers(message: &Message<'_>) -> Vec<Header> {
    message
        .headers()
        .iter()
        .zip(message.headers_raw())
        .map(|(header, (name, raw_value))| Header {
            name: name.to_owned(),
            value: match header.value() {
                HeaderValue::Text(text) => text.to_string(),
                _ => unfold(raw_value),
            },
        })
        .collect()
}

/// Parses `raw`, or the longest prefix of it within the limits, saying why it stopped short.
pub(crate) fn parse_within_limits(raw: &[u8]) -> (Option<Message<'_>>, Option<String>) {
    let mut limited = None;
    let mut raw = raw;
    if let Some(found) = NESTING.find_iter(raw).nth(MAX_NESTED_MESSAGES) {
        let line_start = raw[..found.start()]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        raw = &raw[..line_start];
        limited = Some(format!(
            "more than {MAX_NESTED_MESSAGES} nested message declarations: not parsed past byte {line_start}; the raw message is kept whole"
        ));
    }
    let Some(message) = MessageParser::default().parse(raw) else {
        return (None, limited);
    };
    let Some((cut, why)) = structure_cut(&message) else {
        return (Some(message), limited);
    };
    drop(message);
    let why = format!("{why}: not parsed past byte {cut}; the raw message is kept whole");
    (MessageParser::default().parse(&raw[..cut]), Some(why))
}

/// Where the flat part list first goes past `MAX_PARTS` or `MAX_DEPTH`, and which.
fn structure_cut(message: &Message<'_>) -> Option<(usize, String)> {
    // Children always follow their parent in the list, so one forward pass knows every depth;
    // whichever limit is reached first, in document order, is the one reported.
    let mut depth = vec![0usize; message.parts.len()];
    for (i, part) in message.parts.iter().enumerate() {
        if i == MAX_PARTS {
            return Some((
                part.offset_header as usize,
                format!("more than {MAX_PARTS} MIME parts"),
            ));
        }
        if depth[i] > MAX_DEPTH {
            return Some((
                part.offset_header as usize,
                format!("MIME parts nested deeper than {MAX_DEPTH}"),
            ));
        }
        if let PartType::Multipart(children) = &part.body {
            let child_depth = depth[i] + 1;
            for &child in children {
                if let Some(d) = depth.get_mut(child as usize) {
                    *d = child_depth;
                }
            }
        }
    }
    None
}

fn attachment_texts(message: &mail_parser::Message<'_>) -> Vec<AttachmentText> {
    let mut budget = ATTACHMENT_TEXT_TOTAL;
    message
        .attachments()
        .take(ATTACHMENTS_SCORED)
        .enumerate()
        .filter_map(|(i, part)| {
            let name = part
                .attachment_name()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("#{i}"));
            let (text, is_html) = match &part.body {
                PartType::Text(t) => (t.to_string(), false),
                PartType::Html(h) => (h.to_string(), true),
                PartType::Binary(b) | PartType::InlineBinary(b)
                    if part
                        .content_type()
                        .is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("text")) =>
                {
                    let html = part
                        .content_type()
                        .and_then(|ct| ct.subtype())
                        .is_some_and(|s| s.eq_ignore_ascii_case("html"));
                    (String::from_utf8_lossy(b).into_owned(), html)
                }
                _ => return None,
            };
            if budget == 0 {
                return None;
            }
            let text: String = text
                .chars()
                .take(ATTACHMENT_TEXT_LIMIT.min(budget))
                .collect();
            budget = budget.saturating_sub(text.len());
            Some(AttachmentText {
                name,
                text,
                is_html,
            })
        })
        .collect()
}

/// The decoded bytes and content type of attachment `index`, as listed in the parsed view.
pub fn attachment(raw: &[u8], index: usize) -> Option<(String, Vec<u8>)> {
    let message = parse_within_limits(raw).0?;
    let part = message.attachment(u32::try_from(index).ok()?)?;
    let content_type = part
        .content_type()
        .map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        })
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    Some((content_type, part.contents().to_vec()))
}

pub fn summarize(view: &ParsedMessage) -> SummaryContent {
    SummaryContent {
        from: view.from.clone(),
        to: view.to.clone(),
        subject: view.subject.clone(),
        preview: preview(view.text.as_deref().unwrap_or("")),
        has_attachments: !view.attachments.is_empty(),
        security: view.security.clone(),
        extracted: view.extracted.clone(),
    }
}

fn preview(text: &str) -> String {
    let mut out = String::new();
    for (n, word) in text.split_whitespace().enumerate() {
        if n > 0 {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() >= PREVIEW_CHARS {
            break;
        }
    }
    match out.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &out[..cut]),
        None => out,
    }
}

fn mailboxes(address: Option<&Address<'_>>) -> Vec<Mailbox> {
    address
        .map(|a| {
            a.iter()
                .map(|addr| Mailbox {
                    name: addr.name().map(str::to_owned),
                    address: addr.address().map(str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn text_list(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => vec![t.to_string()],
        HeaderValue::TextList(list) => list.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// RFC 5322 2.2.3: unfolding removes the CRLF before folding whitespace.
fn unfold(raw: &str) -> String {
    raw.replace("\r\n", "").replace('\n', "").trim().to_owned()
}

/// Every boundary that some line closes (`--boundary--`), found in one pass, so checking each
/// multipart part is a lookup rather than a search of the whole message (which made a message of
/// many nested parts quadratic).
fn closing_delimiters(raw: &[u8]) -> std::collections::HashSet<&[u8]> {
    raw.split(|&b| b == b'\n')
        .filter_map(|line| {
            let line = line.trim_ascii_end();
            let inner = line.strip_prefix(b"--")?.strip_suffix(b"--")?;
            (!inner.is_empty()).then_some(inner)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_text_message_has_no_html() {
        let plain = parse(b"From: a@example.test\r\nSubject: hi\r\n\r\nJust text.\r\n");
        assert_eq!(plain.view.text.as_deref(), Some("Just text.\r\n"));
        assert_eq!(plain.view.html, None);
        let html = parse(b"From: a@example.test\r\nContent-Type: text/html\r\n\r\n<p>Hi</p>\r\n");
        assert_eq!(html.view.html.as_deref(), Some("<p>Hi</p>\r\n"));
    }

    const MULTIPART: &[u8] = b"From: \"Ann Example\" <ann@example.test>\r\n\
To: bot@crabmail.localhost, Bob <bob@example.test>\r\n\
Cc: carol@example.test\r\n\
Reply-To: replies@example.test\r\n\
Subject: =?UTF-8?B?SGVsbG8g8J+mgA==?=\r\n\
Date: Thu, 26 Nov 2026 10:00:00 +0100\r\n\
Message-ID: <m1@example.test>\r\n\
In-Reply-To: <m0@example.test>\r\n\
References: <a@example.test> <m0@example.test>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Caf=E9 at   noon.\r\n\
--b1\r\n\
Content-Type: application/pdf; name=\"plan.pdf\"\r\n\
Content-Disposition: attachment; filename=\"plan.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-ID: <plan@example.test>\r\n\
\r\n\
JVBERi0xLjQK\r\n\
--b1--\r\n";

    #[test]
    fn parses_addresses_bodies_and_attachments() {
        let parsed = parse(MULTIPART);
        let v = &parsed.view;
        assert_eq!(
            v.from,
            Some(Mailbox {
                name: Some("Ann Example".into()),
                address: Some("ann@example.test".into())
            })
        );
        assert_eq!(v.to.len(), 2);
        assert_eq!(v.cc[0].address.as_deref(), Some("carol@example.test"));
        assert_eq!(
            v.reply_to[0].address.as_deref(),
            Some("replies@example.test")
        );
        assert_eq!(v.subject.as_deref(), Some("Hello 🦀"));
        assert_eq!(v.date.as_deref(), Some("2026-11-26T10:00:00+01:00"));
        assert_eq!(v.message_id.as_deref(), Some("m1@example.test"));
        assert_eq!(v.in_reply_to, vec!["m0@example.test"]);
        assert_eq!(v.references, vec!["a@example.test", "m0@example.test"]);
        assert_eq!(v.text.as_deref().map(str::trim), Some("Café at   noon."));
        assert_eq!(v.attachments.len(), 1);
        let a = &v.attachments[0];
        assert_eq!(a.filename.as_deref(), Some("plan.pdf"));
        assert_eq!(a.content_type, "application/pdf");
        assert_eq!(a.size, 9);
        assert_eq!(a.content_id.as_deref(), Some("plan@example.test"));
        assert!(
            v.headers
                .iter()
                .any(|h| h.name == "Subject" && h.value == "Hello 🦀")
        );
        assert!(v.parse_warnings.is_empty(), "{:?}", v.parse_warnings);
        assert_eq!(parsed.summary.preview, "Café at noon.");
        assert!(parsed.summary.has_attachments);
        let (ct, bytes) = attachment(MULTIPART, 0).unwrap();
        assert_eq!(ct, "application/pdf");
        assert_eq!(bytes, b"%PDF-1.4\n");
        assert!(attachment(MULTIPART, 1).is_none());
    }

    #[test]
    fn broken_mime_gets_a_view_and_warnings() {
        let raw = b"From: a@example.test\r\nSubject: broken\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@not base64@@@\r\n";
        let parsed = parse(raw);
        assert_eq!(parsed.view.subject.as_deref(), Some("broken"));
        assert!(
            parsed
                .view
                .parse_warnings
                .iter()
                .any(|w| w.contains("never closed")),
            "{:?}",
            parsed.view.parse_warnings
        );
        let no_headers = parse(b"");
        assert!(!no_headers.view.parse_warnings.is_empty());
        let no_from = parse(b"Subject: x\r\n\r\nbody\r\n");
        assert!(
            no_from
                .view
                .parse_warnings
                .iter()
                .any(|w| w.contains("From"))
        );
    }

    fn siblings(n: usize) -> Vec<u8> {
        let mut m = b"From: a@example.test\r\nSubject: many\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
        for i in 0..n {
            m.extend_from_slice(
                format!("--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=p{i}.txt\r\n\r\npart {i}\r\n").as_bytes(),
            );
        }
        m.extend_from_slice(b"--b--\r\n");
        m
    }

    #[test]
    fn many_parts_are_parsed_up_to_the_limit_and_flagged() {
        let parsed = parse(&siblings(20_000));
        assert_eq!(parsed.view.subject.as_deref(), Some("many"));
        let why = parsed.limited.expect("limited");
        assert!(why.contains("more than 1000 MIME parts"), "{why}");
        assert!(parsed.view.parse_warnings.contains(&why));
        // Part 0 is the multipart itself: 999 attachments are listed, none past the cut.
        assert_eq!(parsed.view.attachments.len(), MAX_PARTS - 1);
        assert!(parsed.attachment_texts.len() <= ATTACHMENTS_SCORED);
        let small = parse(&siblings(10));
        assert!(small.limited.is_none(), "{:?}", small.limited);
        assert_eq!(small.view.attachments.len(), 10);
    }

    #[test]
    fn deep_multipart_nesting_stops_at_the_depth_limit() {
        let n = 20_000;
        let mut m = b"From: a@example.test\r\nSubject: deep\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n".to_vec();
        for i in 1..n {
            m.extend_from_slice(
                format!(
                    "--b{}\r\nContent-Type: multipart/mixed; boundary=b{i}\r\n\r\n",
                    i - 1
                )
                .as_bytes(),
            );
        }
        m.extend_from_slice(format!("--b{}\r\n\r\ndeep\r\n", n - 1).as_bytes());
        for i in (0..n).rev() {
            m.extend_from_slice(format!("--b{i}--\r\n").as_bytes());
        }
        let parsed = parse(&m);
        assert_eq!(parsed.view.subject.as_deref(), Some("deep"));
        let why = parsed.limited.expect("limited");
        assert!(why.contains("nested deeper than 50"), "{why}");
    }

    #[test]
    fn half_a_million_nested_messages_do_not_overflow_a_small_stack() {
        let mut m = Vec::new();
        for _ in 0..500_000 {
            m.extend_from_slice(b"From: a@example.test\r\nContent-Type: message/rfc822\r\n\r\n");
        }
        m.extend_from_slice(b"From: a@example.test\r\nSubject: bottom\r\n\r\nbody\r\n");
        // The stack of a blocking-pool thread; the whole tree would need far more.
        let parsed = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let parsed = parse(&m);
                let first = attachment(&m, 0).map(|(ct, _)| ct);
                (parsed.limited, parsed.view.from, first)
            })
            .unwrap()
            .join()
            .expect("no stack overflow");
        let why = parsed.0.expect("limited");
        assert!(why.contains("nested message"), "{why}");
        assert!(parsed.1.is_some());
        assert_eq!(parsed.2.as_deref(), Some("message/rfc822"));
    }

    #[test]
    fn a_forwarded_message_is_not_limited() {
        let raw = b"From: a@example.test\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nsee below\r\n--x\r\nContent-Type: message/rfc822\r\n\r\nFrom: b@example.test\r\nSubject: inner\r\n\r\ninner body\r\n--x--\r\n";
        let parsed = parse(raw);
        assert!(parsed.limited.is_none());
        assert!(
            parsed.view.parse_warnings.is_empty(),
            "{:?}",
            parsed.view.parse_warnings
        );
        assert_eq!(parsed.view.attachments.len(), 1);
    }

    #[test]
    fn previews_are_short_and_collapse_whitespace() {
        let long = "word ".repeat(100);
        let p = preview(&long);
        assert_eq!(p.chars().count(), PREVIEW_CHARS + 1);
        assert!(p.ends_with('…'));
        assert_eq!(preview("a\r\n\r\n  b"), "a b");
    }
}
