//! Bounces that are not RFC 3464 reports: the human-readable notices of qmail, Exim, Sendmail,
//! Exchange, Domino, webmail providers and others. Read from the notice's text up to where the
//! returned message begins: the failed addresses are the addresses the notice names (less the
//! reporting system's own), each with the lines that follow it as its diagnostic.

/// Where a notice's own text ends and the returned message (or its headers) begins.
const RETURNED: &[&str] = &[
    "original message",
    "copy of the message",
    "copy of your message",
    "below this line",
    "returned message",
    "message follows",
    "unsent message",
    "undelivered message",
    "included below",
    "headers of the original",
    "original headers",
    "message headers follow",
    "returned mail follows",
    "text of the message",
    "your message reads",
];

/// Words of a notice that says delivery is only late, not failed.
const DELAYED: &[&str] = &[
    "delayed",
    "delay",
    "will continue trying",
    "will keep trying",
    "will be retried",
    "will retry",
    "still trying",
    "not yet been delivered",
    "has not been delivered yet",
    "warning message only",
    "temporar",
    "transient",
    "deferred",
];

/// Words that make a notice final whatever else it says.
const FINAL: &[&str] = &[
    "permanent",
    "given up",
    "gave up",
    "fatal",
    "could not be delivered",
    "couldn't be delivered",
    "undeliverable",
    "failed",
    "failure",
    "unknown",
    "does not exist",
];

/// Local parts of the systems that write notices (never a failed recipient).
const SYSTEM_SENDERS: &[&str] = &[
    "postmaster",
    "mailer-daemon",
    "mailer_daemon",
    "mailerdaemon",
    "mail-daemon",
    "maildaemon",
    "mail.daemon",
    "hostmaster",
    "abuse",
];

/// A notice is read this far (a real one is a few KiB; a stranger's may be 25 MB).
pub const MAX_NOTICE: usize = 64 * 1024;
/// At most this many recipients are taken from one notice.
pub const MAX_NAMED: usize = 100;

/// One failed recipient of a notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub address: String,
    /// Its lines of the notice, joined.
    pub diagnostic: String,
}

/// The notice's text before the returned message (at most `MAX_NOTICE` bytes of it).
pub fn notice(text: &str) -> &str {
    let mut cut = text.len().min(MAX_NOTICE);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let text = &text[..cut];
    let mut end = text.len();
    let mut offset = 0;
    let mut seen_text = false;
    for line in text.split_inclusive('\n') {
        let lower = line.to_ascii_lowercase();
        let trimmed = lower.trim();
        let header_of_returned = seen_text
            && (trimmed.starts_with("received: ")
                || trimmed.starts_with("return-path:")
                || trimmed.starts_with("message-id:"));
        if (seen_text && marks_returned(trimmed)) || header_of_returned {
            end = offset;
            break;
        }
        if !trimmed.is_empty() {
            seen_text = true;
        }
        offset += line.len();
    }
    &text[..end]
}

/// A line that introduces the returned message ("----- Original message -----", "Below this
/// line is a copy of the message."), not one that mentions it in a sentence ("The following
/// addresses did not receive a copy of your message:").
fn marks_returned(lower: &str) -> bool {
    let decorated = lower.starts_with(['-', '=', '*', '_', '#', '[', '<']);
    RETURNED.iter().any(|m| lower.contains(m))
        && !lower.contains("following")
        && (decorated || lower.len() < 70)
}

/// Whether the notice says delivery is late rather than failed: its subject says so first
/// ("Warning: message delayed"), else its text, unless either also says the failure is final.
pub fn is_delay(subject: &str, notice: &str) -> bool {
    let says = |text: &str, words: &[&str]| {
        let lower = text.to_ascii_lowercase();
        words.iter().any(|w| lower.contains(w))
    };
    if says(subject, FINAL) {
        return false;
    }
    if says(subject, &["warning", "delay"]) {
        return true;
    }
    says(notice, DELAYED) && !says(notice, FINAL)
}

/// The recipients a notice names, in order, each once, at most `MAX_NAMED`.
pub fn named(notice: &str, exclude: &[String]) -> Vec<Named> {
    let lines: Vec<&str> = notice.lines().collect();
    let mut out: Vec<Named> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        // Header lines quoted from the returned message (in text or HTML dress) name its
        // correspondents, not failed recipients.
        let lower = line
            .replace("&nbsp;", " ")
            .trim()
            .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
            .to_ascii_lowercase();
        if [
            "message-id",
            "in-reply-to",
            "references",
            "from:",
            "to:",
            "cc:",
            "date:",
            "sent:",
            "subject:",
            "reply-to:",
        ]
        .iter()
        .any(|h| lower.starts_with(h))
        {
            continue;
        }
        for address in addresses(line) {
            let key = address.to_ascii_lowercase();
            let local = key.split('@').next().unwrap_or_default();
            if SYSTEM_SENDERS.contains(&local)
                || exclude.iter().any(|e| e.eq_ignore_ascii_case(&key))
                || out.iter().any(|n| n.address.eq_ignore_ascii_case(&key))
            {
                continue;
            }
            out.push(Named {
                address,
                diagnostic: context(&lines, i),
            });
            if out.len() == MAX_NAMED {
                return out;
            }
        }
    }
    out
}

/// The line naming a recipient and those after it up to a blank line (at most 8).
fn context(lines: &[&str], from: usize) -> String {
    lines[from..]
        .iter()
        .take(8)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Addresses written in a line (`a@b.example`, `<a@b.example>`, `"a@b.example"`).
pub fn addresses(line: &str) -> Vec<String> {
    let bytes = line.as_bytes();
    let local_char = |c: u8| c.is_ascii_alphanumeric() || b"._%+-=/'!#$&*?^`{|}~".contains(&c);
    let domain_char = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'-';
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(pos) = line[at..].find('@').map(|p| p + at) {
        let mut start = pos;
        while start > 0 && local_char(bytes[start - 1]) {
            start -= 1;
        }
        let mut end = pos + 1;
        while end < bytes.len() && domain_char(bytes[end]) {
            end += 1;
        }
        at = pos + 1;
        let mut local = line[start..pos].trim_start_matches(['.', '\'', '/']);
        // Exchange writes recipients as `SMTP=a@b` or `smtp:a@b`.
        for prefix in ["smtp=", "SMTP=", "rfc822=", "RFC822="] {
            local = local.strip_prefix(prefix).unwrap_or(local);
        }
        let domain = line[pos + 1..end].trim_end_matches(['.', '-']);
        let tld_ok = domain
            .rsplit('.')
            .next()
            .is_some_and(|t| t.len() >= 2 && t.chars().all(|c| c.is_ascii_alphabetic()));
        if !local.is_empty() && domain.contains('.') && tld_ok {
            out.push(format!("{local}@{domain}"));
        }
    }
    out
}

/// An enhanced status code (`5.1.1`) written in a text, if any.
pub fn enhanced_code(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map(|t| t.trim_matches('.'))
        .find(|t| {
            let parts: Vec<&str> = t.split('.').collect();
            parts.len() == 3
                && matches!(parts[0], "2" | "4" | "5")
                && parts[1..]
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| c.is_ascii_digit()))
        })
        .map(str::to_owned)
}

/// A basic SMTP reply code (`550`) written in a text, if any.
pub fn reply_code(text: &str) -> Option<u16> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|t| t.len() == 3)
        .filter_map(|t| t.parse::<u16>().ok())
        .find(|c| (421..=554).contains(c) && matches!(c / 10 % 10, 0..=5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_names_its_failed_recipients() {
        let text = "Hi. This is the qmail-send program at mx.example.net.\n\
            I'm afraid I wasn't able to deliver your message to the following addresses.\n\
            This is a permanent error; I've given up.\n\n\
            <ann@example.org>:\n\
            Sorry, no mailbox here by that name. (#5.1.1)\n\n\
            --- Below this line is a copy of the message.\n\n\
            Return-Path: <list@example.com>\nTo: bob@example.com\n";
        let notice = notice(text);
        assert!(!notice.contains("bob@example.com"));
        let named = named(notice, &[]);
        assert_eq!(named.len(), 1);
        assert_eq!(named[0].address, "ann@example.org");
        assert_eq!(
            enhanced_code(&named[0].diagnostic).as_deref(),
            Some("5.1.1")
        );
        assert!(!is_delay("failure notice", notice));
        assert!(is_delay(
            "",
            "This is a warning message only; delivery will continue trying"
        ));
        assert!(is_delay(
            "Warning: message delayed 2 days",
            "it could not be delivered yet"
        ));
    }

    #[test]
    fn a_huge_notice_costs_a_bounded_read() {
        let many: String = (0..200_000)
            .map(|n| format!("<u{n}@example.org>: unknown\n"))
            .collect();
        let notice = notice(&many);
        assert!(notice.len() <= MAX_NOTICE);
        assert_eq!(named(notice, &[]).len(), MAX_NAMED);
    }

    #[test]
    fn addresses_are_found_in_their_usual_dress() {
        assert_eq!(
            addresses(
                "<a.b@x.example>: host mx.x.example[1.2.3.4] said: 550 5.1.1 \"c@y.example.\""
            ),
            ["a.b@x.example", "c@y.example"]
        );
        assert!(addresses("id <20001003.1@host> for x").is_empty());
        assert_eq!(reply_code("said: 550 5.1.1 User unknown"), Some(550));
    }
}
