//! Turning an API send request into a message (mail-builder does the MIME): addresses parsed and
//! checked, headers vetted, a Message-ID and Date of ours, threading headers for replies.
//!
//! Every problem names the request field it is in (`to[1]`, `attachments[0].content_base64`),
//! because the caller is a program that has to fix exactly that.

use crate::account::address::validate_domain;
use base64::Engine;
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;

/// A field of the request and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// An address as written in a request: `a@x.test` or `Ann <a@x.test>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressee {
    pub name: Option<String>,
    /// Local part as given, domain lowercased.
    pub address: String,
}

impl Addressee {
    pub fn domain(&self) -> &str {
        self.address.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

/// Parses and checks one address of `field`.
pub fn parse_addressee(text: &str, field: &str) -> Result<Addressee, Invalid> {
    let text = text.trim();
    if text.chars().any(char::is_control) {
        return Err(invalid(
            field,
            "control characters (such as line breaks) are not allowed",
        ));
    }
    let (name, address) = match (text.rfind('<'), text.ends_with('>')) {
        (Some(open), true) => {
            let name = text[..open].trim().trim_matches('"').trim();
            (
                (!name.is_empty()).then(|| name.to_owned()),
                &text[open + 1..text.len() - 1],
            )
        }
        _ => (None, text),
    };
    let (local, domain) = address
        .rsplit_once('@')
        .ok_or_else(|| invalid(field, format!("`{address}` is not an email address")))?;
    let bad_local = local.is_empty()
        || local.len() > 64
        || local
            .chars()
            .any(|c| c.is_whitespace() || "<>()[]\\,;:\"@".contains(c));
    if bad_local {
        return Err(invalid(
            field,
            format!("`{address}` is not an email address"),
        ));
    }
    let domain = validate_domain(domain)
        .map_err(|_| invalid(field, format!("`{domain}` is not a valid domain")))?;
    Ok(Addressee {
        name,
        address: format!("{local}@{domain}"),
    })
}

/// Header fields the request may not set: we write them, or they shape the MIME structure.
const RESERVED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "in-reply-to",
    "references",
    "sender",
    "return-path",
    "received",
    "dkim-signature",
    "arc-seal",
    "arc-message-signature",
    "arc-authentication-results",
    "authentication-results",
];

pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

pub fn decode_attachment(
    index: usize,
    filename: &str,
    content_type: Option<&str>,
    base64: &str,
) -> Result<Attachment, Invalid> {
    let cleaned: String = base64
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .map_err(|e| {
            invalid(
                format!("attachments[{index}].content_base64"),
                format!("not valid base64: {e}"),
            )
        })?;
    attachment(index, filename, content_type, bytes)
}

/// An attachment with its name and type checked.
pub fn attachment(
    index: usize,
    filename: &str,
    content_type: Option<&str>,
    bytes: Vec<u8>,
) -> Result<Attachment, Invalid> {
    let field = format!("attachments[{index}]");
    if filename.trim().is_empty() || filename.chars().any(char::is_control) {
        return Err(invalid(
            format!("{field}.filename"),
            "needs a file name without control characters",
        ));
    }
    let content_type = content_type
        .unwrap_or("application/octet-stream")
        .trim()
        .to_ascii_lowercase();
    let valid_type = content_type.split_once('/').is_some_and(|(t, s)| {
        !t.is_empty()
            && !s.is_empty()
            && content_type
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/.+-".contains(c))
    });
    if !valid_type {
        return Err(invalid(
            format!("{field}.content_type"),
            format!("`{content_type}` is not a MIME type"),
        ));
    }
    Ok(Attachment {
        filename: filename.to_owned(),
        content_type,
        bytes,
    })
}

pub fn check_header(name: &str, value: &str) -> Result<(), Invalid> {
    let field = format!("headers.{name}");
    let valid_name = !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':');
    if !valid_name {
        return Err(invalid(field, "not a valid header field name"));
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(invalid(
            field,
            "set by crabmail; use the request's own fields",
        ));
    }
    if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        return Err(invalid(
            field,
            "line breaks are not allowed in a header value",
        ));
    }
    Ok(())
}

/// Everything a composed message needs, already checked.
pub struct Draft {
    pub from: Addressee,
    pub to: Vec<Addressee>,
    pub cc: Vec<Addressee>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    pub headers: Vec<(String, String)>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    /// Without angle brackets.
    pub message_id: String,
    /// Seconds since the epoch.
    pub date: i64,
}

fn address_of(a: &Addressee) -> Address<'static> {
    match &a.name {
        Some(name) => Address::new_address(Some(name.clone()), a.address.clone()),
        None => Address::new_address(None::<String>, a.address.clone()),
    }
}

pub fn compose(draft: Draft) -> Vec<u8> {
    let mut builder = MessageBuilder::new()
        .from(address_of(&draft.from))
        .message_id(draft.message_id.clone())
        .date(draft.date)
        .subject(draft.subject.clone());
    if !draft.to.is_empty() {
        builder = builder.to(Address::new_list(draft.to.iter().map(address_of).collect()));
    }
    if !draft.cc.is_empty() {
        builder = builder.cc(Address::new_list(draft.cc.iter().map(address_of).collect()));
    }
    if let Some(parent) = &draft.in_reply_to {
        builder = builder.in_reply_to(parent.clone());
    }
    if !draft.references.is_empty() {
        builder = builder.references(draft.references.clone());
    }
    for (name, value) in &draft.headers {
        builder = builder.header(name.clone(), Raw::new(value.clone()));
    }
    let text = draft.text.clone();
    let html = draft.html.clone();
    let body = match (text, html) {
        (Some(t), Some(h)) => MimePart::new(
            "multipart/alternative",
            vec![
                MimePart::new("text/plain", t),
                MimePart::new("text/html", h),
            ],
        ),
        (None, Some(h)) => MimePart::new("text/html", h),
        (Some(t), None) => MimePart::new("text/plain", t),
        (None, None) => MimePart::new("text/plain", String::new()),
    };
    let body = if draft.attachments.is_empty() {
        body
    } else {
        let mut parts = vec![body];
        for a in draft.attachments {
            parts.push(MimePart::new(a.content_type, a.bytes).attachment(a.filename));
        }
        MimePart::new("multipart/mixed", parts)
    };
    builder.body(body).write_to_vec().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    #[test]
    fn addresses_are_checked_and_named() {
        assert_eq!(
            parse_addressee("Ann Example <ann@Example.TEST>", "to[0]").unwrap(),
            Addressee {
                name: Some("Ann Example".into()),
                address: "ann@example.test".into()
            }
        );
        assert_eq!(
            parse_addressee(" \"Bo\" <b@x.test>", "to")
                .unwrap()
                .name
                .as_deref(),
            Some("Bo")
        );
        for bad in [
            "nobody",
            "a b@x.test",
            "a@-x.test",
            "a@x.test\r\nBcc: z@y.test",
            "<@x.test>",
            "a@",
        ] {
            let e = parse_addressee(bad, "cc[2]").unwrap_err();
            assert_eq!(e.field, "cc[2]", "{bad}");
        }
    }

    #[test]
    fn headers_and_attachments_are_vetted() {
        assert!(check_header("X-Campaign", "spring").is_ok());
        assert_eq!(check_header("Bcc", "x").unwrap_err().field, "headers.Bcc");
        assert!(check_header("X-Evil", "a\r\nBcc: z@y.test").is_err());
        assert!(check_header("Bad Name", "x").is_err());
        assert_eq!(
            decode_attachment(0, "a.txt", None, "aGk=").unwrap().bytes,
            b"hi"
        );
        assert_eq!(
            decode_attachment(2, "a.txt", None, "@@@")
                .err()
                .unwrap()
                .field,
            "attachments[2].content_base64"
        );
        assert_eq!(
            decode_attachment(1, "a.txt", Some("text/html; x"), "aGk=")
                .err()
                .unwrap()
                .field,
            "attachments[1].content_type"
        );
    }

    #[test]
    fn composed_messages_parse_back() {
        let bytes = compose(Draft {
            from: Addressee {
                name: Some("Support Bot".into()),
                address: "bot@crabmail.test".into(),
            },
            to: vec![Addressee {
                name: None,
                address: "ann@x.test".into(),
            }],
            cc: vec![],
            subject: "Re: Ünïcode".into(),
            text: Some("plain\nline".into()),
            html: Some("<p>html</p>".into()),
            attachments: vec![Attachment {
                filename: "r.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: b"%PDF".to_vec(),
            }],
            headers: vec![("X-Campaign".into(), "spring".into())],
            in_reply_to: Some("orig@x.test".into()),
            references: vec!["root@x.test".into(), "orig@x.test".into()],
            message_id: "msg_1@crabmail.test".into(),
            date: 1_796_000_000,
        });
        assert!(
            !String::from_utf8_lossy(&bytes)
                .replace("\r\n", "")
                .contains('\n'),
            "bare LF"
        );
        let m = MessageParser::default().parse(&bytes).unwrap();
        assert_eq!(m.subject(), Some("Re: Ünïcode"));
        assert_eq!(
            m.from().unwrap().first().unwrap().name(),
            Some("Support Bot")
        );
        assert_eq!(m.message_id(), Some("msg_1@crabmail.test"));
        assert_eq!(m.in_reply_to().as_text(), Some("orig@x.test"));
        assert_eq!(m.references().as_text_list().map(|l| l.len()), Some(2));
        assert_eq!(m.header_raw("X-Campaign").map(str::trim), Some("spring"));
        assert_eq!(
            m.body_text(0).map(|t| t.replace("\r\n", "\n")).as_deref(),
            Some("plain\nline")
        );
        assert_eq!(m.attachment(0).unwrap().contents(), b"%PDF");
    }
}
