//! A clean wire: what we send has CRLF line ends only, no NUL, and no line over 998 octets
//! (RFC 5322 2.1.1, RFC 5321 4.5.3.1.6). Applied once at enqueue, before the DKIM signature, so
//! the signature covers exactly what goes out.
//!
//! A bare CR or LF becomes CRLF (so `\r.\r` is an ordinary line the SMTP client dot-stuffs, not a
//! second message on a lenient receiver), NULs are dropped. A part whose lines are too long is
//! re-encoded as quoted-printable; a header is folded at a space; anything still too long (a part
//! that may not be re-encoded, or that is already encoded) is split as Postfix does, with
//! CRLF and a space.

use crate::ingest::parse;
use mail_parser::{MimeHeaders, PartType};

/// Longest line, without its CRLF.
pub const MAX_LINE: usize = 998;
/// Line length quoted-printable output keeps to (RFC 2045 6.7).
const QP_LINE: usize = 76;

/// The message as it may go on the wire; clean mail (nearly all of it) is returned as it is,
/// after one read, without a copy.
pub fn normalize(raw: Vec<u8>) -> Vec<u8> {
    let clean = if has_bare_line_end_or_nul(&raw) {
        line_ends_and_nul(&raw, true)
    } else {
        raw
    };
    if !has_long_line(&clean) {
        return clean;
    }
    split_long_lines(&reencode_long_parts(&clean))
}

fn has_bare_line_end_or_nul(raw: &[u8]) -> bool {
    let mut from = 0;
    while let Some(at) = memchr::memchr3(b'\r', b'\n', 0, &raw[from..]) {
        let i = from + at;
        match raw[i] {
            b'\r' if raw.get(i + 1) == Some(&b'\n') => from = i + 2,
            _ => return true,
        }
    }
    false
}

/// CRLF for every line end (bare CR, bare LF, CRLF), and no NUL when `drop_nul`.
pub fn line_ends_and_nul(raw: &[u8], drop_nul: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 64);
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            0 if drop_nul => {}
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if raw.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn has_long_line(text: &[u8]) -> bool {
    text.split(|&b| b == b'\n')
        .any(|line| line.strip_suffix(b"\r").unwrap_or(line).len() > MAX_LINE)
}

/// Each leaf part (the whole message, if it is one) sent as 7bit, 8bit or binary with a line
/// over the limit gets a quoted-printable body and header. Parts are located by mail-parser's
/// offsets in one pass; the message is rebuilt around them.
fn reencode_long_parts(raw: &[u8]) -> Vec<u8> {
    let Some(message) = parse::parse_within_limits(raw).0 else {
        return raw.to_vec();
    };
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 8);
    let mut copied = 0;
    for part in &message.parts {
        if matches!(part.body, PartType::Multipart(_) | PartType::Message(_)) {
            continue;
        }
        let (head_start, body_start, body_end) = (
            part.offset_header as usize,
            part.offset_body as usize,
            part.offset_end as usize,
        );
        if head_start < copied || body_end > raw.len() || body_start > body_end {
            continue;
        }
        let body = &raw[body_start..body_end];
        let encoding = part
            .content_transfer_encoding()
            .unwrap_or("7bit")
            .to_ascii_lowercase();
        let is_message = part
            .content_type()
            .is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("message"));
        if !has_long_line(body)
            || !matches!(encoding.as_str(), "7bit" | "8bit" | "binary")
            || is_message
        {
            continue;
        }
        out.extend_from_slice(&raw[copied..head_start]);
        out.extend_from_slice(&with_qp_header(&raw[head_start..body_start]));
        out.extend_from_slice(&quoted_printable(body));
        copied = body_end;
    }
    out.extend_from_slice(&raw[copied..]);
    out
}

/// A part's header block with its Content-Transfer-Encoding (folded lines included) replaced by
/// quoted-printable.
fn with_qp_header(head: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + 48);
    let mut skipping = false;
    let mut lines: Vec<&[u8]> = head.split_inclusive(|&b| b == b'\n').collect();
    // The blank line that ends the header block, if it is there, goes after the new field.
    let blank = lines
        .last()
        .is_some_and(|l| l.iter().all(u8::is_ascii_whitespace));
    let end = if blank { lines.pop() } else { None };
    for line in lines {
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if continuation && skipping {
            continue;
        }
        skipping =
            line.len() >= 26 && line[..26].eq_ignore_ascii_case(b"content-transfer-encoding:");
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"Content-Transfer-Encoding: quoted-printable\r\n");
    out.extend_from_slice(end.unwrap_or(b"\r\n"));
    out
}

/// RFC 2045 6.7 quoted-printable of text with CRLF line ends, which stay hard line breaks.
pub fn quoted_printable(text: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(text.len() + text.len() / 16);
    let mut lines = text.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut column = 0;
        for (i, &b) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let literal =
                (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let width = if literal { 1 } else { 3 };
            // Soft break: the "=" ends a line of at most 76 characters.
            if column + width > QP_LINE - 1 {
                out.extend_from_slice(b"=\r\n");
                column = 0;
            }
            if literal {
                out.push(b);
            } else {
                out.extend_from_slice(&[b'=', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
            column += width;
        }
        if lines.peek().is_some() {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// Whatever is still over the limit: a line is split after 998 octets (at the last space before
/// it in a header) with CRLF and a space, as Postfix does.
fn split_long_lines(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 512);
    for line in text.split_inclusive(|&b| b == b'\n') {
        let (mut content, ending): (&[u8], &[u8]) = match line.strip_suffix(b"\r\n") {
            Some(c) => (c, b"\r\n"),
            None => (line, b""),
        };
        while content.len() > MAX_LINE {
            // Prefer a fold at whitespace (headers), never making an empty piece.
            let cut = content[..MAX_LINE]
                .iter()
                .rposition(|&b| b == b' ' || b == b'\t')
                .filter(|&p| p > 0)
                .unwrap_or(MAX_LINE - 1);
            out.extend_from_slice(&content[..cut]);
            out.extend_from_slice(b"\r\n ");
            content = &content[cut..];
            if content.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                content = &content[1..];
            }
        }
        out.extend_from_slice(content);
        out.extend_from_slice(ending);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_ok(text: &[u8]) {
        assert!(!text.contains(&0), "a NUL");
        for (i, &b) in text.iter().enumerate() {
            if b == b'\r' {
                assert_eq!(text.get(i + 1), Some(&b'\n'), "bare CR at {i}");
            }
            if b == b'\n' {
                assert!(i > 0 && text[i - 1] == b'\r', "bare LF at {i}");
            }
        }
        assert!(!has_long_line(text), "a line over 998 octets");
    }

    #[test]
    fn smuggling_sequences_become_ordinary_lines() {
        let raw =
            b"From: a@x.test\r\nSubject: s\r\n\r\nhello\r.\rMAIL FROM:<x>\n.\nbye\r\n\x00.\r\n";
        let out = normalize(raw.to_vec());
        lines_ok(&out);
        assert_eq!(
            out,
            b"From: a@x.test\r\nSubject: s\r\n\r\nhello\r\n.\r\nMAIL FROM:<x>\r\n.\r\nbye\r\n.\r\n"
        );
    }

    #[test]
    fn a_long_line_is_reencoded_and_reads_back_the_same() {
        let text = format!("{} end", "word ".repeat(400));
        let raw = format!(
            "From: a@x.test\r\nSubject: s\r\nContent-Transfer-Encoding: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\nshort line = caf\u{e9}\r\n"
        );
        let out = normalize(raw.as_bytes().to_vec());
        lines_ok(&out);
        let parsed = mail_parser::MessageParser::default().parse(&out).unwrap();
        assert_eq!(
            parsed.body_text(0).unwrap().trim_end(),
            format!("{text}\r\nshort line = caf\u{e9}").trim_end()
        );
        let head =
            String::from_utf8_lossy(&out[..out.windows(4).position(|w| w == b"\r\n\r\n").unwrap()])
                .into_owned();
        assert_eq!(
            head.matches("Content-Transfer-Encoding").count(),
            1,
            "{head}"
        );
        assert!(
            head.contains("Content-Transfer-Encoding: quoted-printable"),
            "{head}"
        );
    }

    #[test]
    fn only_the_long_part_of_a_multipart_is_reencoded() {
        let long = "x".repeat(3000);
        let raw = format!(
            "From: a@x.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nshort\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>{long}</p>\r\n--b--\r\n"
        );
        let out = normalize(raw.as_bytes().to_vec());
        lines_ok(&out);
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("Content-Type: text/plain\r\n\r\nshort\r\n"),
            "{text}"
        );
        let parsed = mail_parser::MessageParser::default().parse(&out).unwrap();
        let html = parsed
            .parts
            .iter()
            .find_map(|p| match &p.body {
                PartType::Html(h) => Some(h.to_string()),
                _ => None,
            })
            .unwrap();
        assert_eq!(html.trim_end(), format!("<p>{long}</p>"));
    }

    #[test]
    fn long_headers_fold_and_anything_else_is_split() {
        let to: Vec<String> = (0..100)
            .map(|i| format!("person{i}@example.test"))
            .collect();
        let raw = format!(
            "From: a@x.test\r\nTo: {}\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            to.join(", "),
            "QUFB".repeat(400)
        );
        let out = normalize(raw.as_bytes().to_vec());
        lines_ok(&out);
        let parsed = mail_parser::MessageParser::default().parse(&out).unwrap();
        assert_eq!(parsed.to().unwrap().iter().count(), 100);
    }

    #[test]
    fn clean_mail_is_untouched() {
        let raw = b"From: a@x.test\r\nSubject: s\r\n\r\nbody\r\n";
        assert_eq!(normalize(raw.to_vec()), raw);
    }

    #[test]
    fn quoted_printable_keeps_lines_short_and_escapes() {
        let qp = quoted_printable("a=b \t\r\n".as_bytes());
        assert_eq!(qp, b"a=3Db =09\r\n");
        let long = quoted_printable(&[b'y'; 200]);
        assert!(long.split(|&b| b == b'\n').all(|l| l.len() <= QP_LINE + 1));
    }
}
