//! From raw bytes to the parsed view an agent reads: addresses, subject, bodies, attachments and
//! every header, with `mail-parser` doing the MIME work.
//!
//! Parsing never fails: a message that is not valid MIME still gets a view (possibly empty) and a
//! warning saying what was wrong. The raw bytes are kept elsewhere, untouched.

use crate::risk::AttachmentText;
use crabmail_api::{Attachment, Header, Mailbox, ParsedMessage, SummaryContent};
use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders, PartType};

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
}

/// Characters of an attachment read for scoring.
const ATTACHMENT_TEXT_LIMIT: usize = 256 * 1024;

pub fn parse(raw: &[u8]) -> Parsed {
    let Some(message) = MessageParser::default().parse(raw) else {
        let view = ParsedMessage {
            parse_warnings: vec!["the message has no header section; stored as received".into()],
            ..Default::default()
        };
        return Parsed {
            summary: summarize(&view),
            view,
            has_plain_text: false,
            attachment_texts: Vec::new(),
        };
    };
    let mut warnings = Vec::new();
    if message.from().is_none() {
        warnings.push("no From header".to_owned());
    }
    for (i, part) in message.parts.iter().enumerate() {
        if part.is_encoding_problem {
            warnings.push(format!(
                "part {i}: content could not be decoded with its transfer encoding; kept as sent"
            ));
        }
        if let PartType::Multipart(_) = part.body
            && let Some(boundary) = part.content_type().and_then(|ct| ct.attribute("boundary"))
            && !contains(raw, format!("--{boundary}--").as_bytes())
        {
            warnings.push(format!(
                "part {i}: multipart boundary \"{boundary}\" is never closed"
            ));
        }
    }
    let attachments = message
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
        .collect();
    let headers = message
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
        .collect();
    let view = ParsedMessage {
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
        html: message.body_html(0).map(|h| h.into_owned()),
        attachments,
        headers,
        parse_warnings: warnings,
        ..Default::default()
    };
    Parsed {
        summary: summarize(&view),
        view,
        has_plain_text: matches!(
            message.text_part(0).map(|p| &p.body),
            Some(PartType::Text(_))
        ),
        attachment_texts: attachment_texts(&message),
    }
}

fn attachment_texts(message: &mail_parser::Message<'_>) -> Vec<AttachmentText> {
    message
        .attachments()
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
            let text: String = text.chars().take(ATTACHMENT_TEXT_LIMIT).collect();
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
    let message = MessageParser::default().parse(raw)?;
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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn previews_are_short_and_collapse_whitespace() {
        let long = "word ".repeat(100);
        let p = preview(&long);
        assert_eq!(p.chars().count(), PREVIEW_CHARS + 1);
        assert!(p.ends_with('…'));
        assert_eq!(preview("a\r\n\r\n  b"), "a b");
    }
}
