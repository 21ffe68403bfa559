//! Delivery status notifications (RFC 3464): the bounce an agent finds in its inbox when mail it
//! sent could not be delivered, with a line per failed recipient for people and a
//! `message/delivery-status` part for programs, and the original's headers.
//!
//! A DSN is sent with the null return path, so it can never cause another bounce.

use super::outcome::Outcome;
use crate::clock::Timestamp;

/// One recipient that will not get the message.
#[derive(Debug, Clone)]
pub struct Failed {
    pub address: String,
    pub outcome: Outcome,
    pub last_attempt: Timestamp,
    /// The queue's lifetime ran out (the last attempt was a deferral).
    pub expired: bool,
}

pub struct Report<'a> {
    /// Our host name, as Reporting-MTA.
    pub reporting_mta: &'a str,
    /// The domain of the From address (`MAILER-DAEMON@`): the sending inbox's, so the report's
    /// DKIM signature aligns with it.
    pub from_domain: &'a str,
    /// Where the report goes: the inbox that sent the message.
    pub to: &'a str,
    pub original: &'a [u8],
    pub arrival: Timestamp,
    pub now: Timestamp,
    /// Unique part of the report's Message-ID and MIME boundary.
    pub id: &'a str,
    pub failed: &'a [Failed],
}

pub const SUBJECT: &str = "Undelivered Mail Returned to Sender";

pub fn bounce(report: &Report<'_>) -> Vec<u8> {
    let boundary = format!("dsn-{}", report.id);
    let mut out = headers(report, &boundary);
    out.push_str("\r\nThis is a MIME-encapsulated message.\r\n\r\n");
    out.push_str(&format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
    ));
    out.push_str("Content-Transfer-Encoding: 8bit\r\n\r\n");
    out.push_str(&for_people(report));
    out.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
    ));
    out.push_str(&for_programs(report));
    // Part 3: the original's header section.
    out.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    ));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(header_section(report.original));
    if !bytes.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

fn headers(report: &Report<'_>, boundary: &str) -> String {
    let mut out = String::new();
    let mut header = |name: &str, value: &str| {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    };
    header(
        "From",
        &format!(
            "Mail Delivery System <MAILER-DAEMON@{}>",
            report.from_domain
        ),
    );
    header("To", &format!("<{}>", report.to));
    header("Subject", SUBJECT);
    header("Date", &report.now.to_rfc5322());
    header(
        "Message-ID",
        &format!("<{}@{}>", report.id, report.reporting_mta),
    );
    header("Auto-Submitted", "auto-replied");
    header("MIME-Version", "1.0");
    header(
        "Content-Type",
        &format!("multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\""),
    );
    out
}

/// Part 1: for people.
fn for_people(report: &Report<'_>) -> String {
    let mut out = format!(
        "This is the mail system at host {}.\r\n\r\n",
        report.reporting_mta
    );
    out.push_str("Your message could not be delivered to one or more recipients.\r\n\r\n");
    for f in report.failed {
        let why = if f.expired {
            format!(
                "gave up after retrying; last error: {}",
                f.outcome.diagnostic()
            )
        } else {
            f.outcome.diagnostic()
        };
        out.push_str(&format!("<{}>: {}\r\n", f.address, one_line(&why)));
    }
    out
}

/// Part 2: for programs (RFC 3464 2.2 and 2.3).
fn for_programs(report: &Report<'_>) -> String {
    let mut out = format!("Reporting-MTA: dns; {}\r\n", report.reporting_mta);
    out.push_str(&format!(
        "Arrival-Date: {}\r\n",
        report.arrival.to_rfc5322()
    ));
    for f in report.failed {
        out.push_str("\r\n");
        out.push_str(&recipient_fields(f));
    }
    out
}

fn recipient_fields(f: &Failed) -> String {
    let mut out = format!("Final-Recipient: rfc822; {}\r\n", f.address);
    out.push_str("Action: failed\r\n");
    let status = match (&f.outcome.enhanced, f.expired) {
        (Some(s), false) => s.clone(),
        (Some(s), true) if s.starts_with('4') => s.clone(),
        _ if f.expired => "4.4.7".to_owned(),
        _ => "5.0.0".to_owned(),
    };
    out.push_str(&format!("Status: {status}\r\n"));
    if let Some(mta) = &f.outcome.host {
        out.push_str(&format!("Remote-MTA: dns; {mta}\r\n"));
    }
    let kind = if f.outcome.code.is_some() {
        "smtp"
    } else {
        "x-crabmail"
    };
    out.push_str(&format!(
        "Diagnostic-Code: {kind}; {}\r\n",
        one_line(&f.outcome.diagnostic())
    ));
    out.push_str(&format!(
        "Last-Attempt-Date: {}\r\n",
        f.last_attempt.to_rfc5322()
    ));
    if f.expired {
        out.push_str(&format!(
            "Will-Retry-Until: {}\r\n",
            f.last_attempt.to_rfc5322()
        ));
    }
    out
}

/// Everything before the first empty line (the whole message if there is none).
fn header_section(message: &[u8]) -> &[u8] {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => &message[..end + 2],
        None => message,
    }
}

fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::outcome::Verdict;
    use mail_parser::{MessageParser, MimeHeaders};

    #[test]
    fn a_dsn_parses_and_names_each_failed_recipient() {
        let original = b"From: bot@crabmail.test\r\nTo: a@x.test, b@y.test\r\nSubject: hi\r\nMessage-ID: <orig@crabmail.test>\r\n\r\nbody must not be included\r\n";
        let failed = vec![
            Failed {
                address: "a@x.test".into(),
                outcome: Outcome::from_reply(
                    550,
                    "5.1.1 <a@x.test>: user\r\nunknown",
                    "mx.x.test",
                    None,
                ),
                last_attempt: Timestamp(1_796_000_000_000),
                expired: false,
            },
            Failed {
                address: "b@y.test".into(),
                outcome: Outcome::local(Verdict::Deferred, "4.4.1", "cannot connect to mx.y.test"),
                last_attempt: Timestamp(1_796_000_000_000),
                expired: true,
            },
        ];
        let bytes = bounce(&Report {
            reporting_mta: "mx.crabmail.test",
            from_domain: "crabmail.test",
            to: "bot@crabmail.test",
            original,
            arrival: Timestamp(1_795_000_000_000),
            now: Timestamp(1_796_000_000_000),
            id: "dsn1",
            failed: &failed,
        });
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(!text.contains("body must not be included"));
        assert!(!text.replace("\r\n", "").contains('\n'), "bare LF in a DSN");
        let parsed = MessageParser::default().parse(&bytes).unwrap();
        assert_eq!(parsed.subject(), Some(SUBJECT));
        assert_eq!(
            parsed.from().unwrap().first().unwrap().address(),
            Some("MAILER-DAEMON@crabmail.test")
        );
        let ct = parsed.content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        assert!(text.contains("Final-Recipient: rfc822; a@x.test\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.x.test\r\nDiagnostic-Code: smtp; 550 5.1.1 <a@x.test>: user unknown\r\n"));
        assert!(
            text.contains(
                "Final-Recipient: rfc822; b@y.test\r\nAction: failed\r\nStatus: 4.4.1\r\n"
            )
        );
        assert!(text.contains("Subject: hi\r\nMessage-ID: <orig@crabmail.test>\r\n"));
        assert_eq!(parsed.parts.len(), 4, "multipart + three parts");
    }
}
