//! Bounces and complaints written by other servers: what a received message reports about mail
//! we sent. Pure functions over the raw message, so `crabmail check bounce` runs them too.
//!
//! The paths, tried in order, each named in the report (`path`) so a corpus shows which it needed:
//! - `arf`: an RFC 5965 feedback report (`multipart/report; report-type=feedback-report`), the
//!   form feedback loops use: a complaint.
//! - `dsn`: an RFC 3464 delivery status notification (a `message/delivery-status` part, inside
//!   `multipart/report` or not): one entry per recipient block, with its Action, Status,
//!   Diagnostic-Code and Remote-MTA; a block without a Status takes the code from its text.
//! - `auto_reply`: RFC 3834 `Auto-Submitted: auto-replied`, or the vacation headers of common
//!   software (`X-Autoreply`, `X-Autorespond`, `Precedence: auto_reply`): never a bounce.
//! - `text`: a notice from a mail system (a null or system sender, or a bounce subject) in its
//!   own words: `text::named` finds the recipients, their lines give the code and the reason.
//!
//! Anything else is ordinary mail: `analyse` returns None.

pub mod act;
mod fields;
pub mod reason;
pub mod return_path;
mod text;

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
pub use reason::Reason;
use serde::Serialize;

/// Recipient blocks read from one report (a real one has a few).
const MAX_BLOCKS: usize = 1000;
/// A report body is read this far.
const MAX_REPORT_BODY: usize = 1024 * 1024;
/// Lines of a report's text searched for the returned Message-ID.
const MAX_REPORT_LINES: usize = 5000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Bounce,
    Complaint,
    AutoReply,
}

impl Kind {
    /// As the message list filters on it (`report`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bounce => "bounce",
            Kind::Complaint => "complaint",
            Kind::AutoReply => "auto_reply",
        }
    }
}

/// What a received message reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub kind: Kind,
    /// Which reading found it: arf, dsn, auto_reply or text.
    pub path: &'static str,
    pub reporting_mta: Option<String>,
    /// The Message-ID of the message the report is about, when it says.
    pub original_message_id: Option<String>,
    /// ARF: the feedback type (abuse, fraud, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback_type: Option<String>,
    pub recipients: Vec<Recipient>,
}

/// One recipient's fate, as the message JSON shows it.
pub type Recipient = crabmail_api::ReportedRecipient;

/// What `raw` reports, or None for ordinary mail.
pub fn analyse(raw: &[u8]) -> Option<Report> {
    // A file saved from an mbox starts with its "From " line.
    let raw = match raw.strip_prefix(b"From ") {
        Some(rest) => rest
            .iter()
            .position(|b| *b == b'\n')
            .map_or(raw, |i| &rest[i + 1..]),
        None => raw,
    };
    let message = MessageParser::default().parse(raw)?;
    analyse_message(&message)
}

/// The same over a message already parsed (ingest's). Ordinary mail costs a look at its part
/// types and a few header fields.
pub fn analyse_message(message: &Message<'_>) -> Option<Report> {
    arf(message)
        .or_else(|| dsn(message))
        .or_else(|| auto_reply(message))
        .or_else(|| notice(message))
}

impl Report {
    /// As the message JSON shows it: `(bounce, complaint, auto_reply)`.
    pub fn into_view(
        self,
    ) -> (
        Option<crabmail_api::MailReport>,
        Option<crabmail_api::MailReport>,
        bool,
    ) {
        let kind = self.kind;
        let view = crabmail_api::MailReport {
            path: self.path.to_owned(),
            reporting_mta: self.reporting_mta,
            original_message_id: self.original_message_id,
            feedback_type: self.feedback_type,
            recipients: self.recipients,
            sent_message_id: None,
            recipient_id: None,
        };
        match kind {
            Kind::Bounce => (Some(view), None, false),
            Kind::Complaint => (None, Some(view), false),
            Kind::AutoReply => (None, None, true),
        }
    }
}

fn content_type(part: &mail_parser::MessagePart<'_>) -> String {
    part.content_type()
        .map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_owned(),
        })
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// The raw body of the first part of this type, as text.
fn part_body(message: &Message<'_>, wanted: &str) -> Option<String> {
    let part = message.parts.iter().find(|p| content_type(p) == wanted)?;
    let raw = message.raw_message();
    let (start, end) = (part.offset_body as usize, part.offset_end as usize);
    let end = end
        .min(raw.len())
        .min(start.saturating_add(MAX_REPORT_BODY));
    raw.get(start..end)
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

fn header_text(message: &Message<'_>, name: &str) -> Option<String> {
    message
        .header_raw(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn arf(message: &Message<'_>) -> Option<Report> {
    let body = part_body(message, "message/feedback-report")?;
    let block = fields::blocks(&body).into_iter().next().unwrap_or_default();
    let feedback = fields::get(&block, "feedback-type").map(str::to_ascii_lowercase);
    let recipients = block
        .iter()
        .filter(|(n, _)| n == "original-rcpt-to")
        .flat_map(|(_, v)| text::addresses(v))
        .map(|address| Recipient {
            address,
            status: None,
            smtp_code: None,
            diagnostic: None,
            remote_mta: None,
            action: "complained".into(),
            permanent: true,
            hard: false,
            reason: Reason::Feedback.as_str().to_owned(),
        })
        .collect();
    Some(Report {
        kind: Kind::Complaint,
        path: "arf",
        reporting_mta: fields::get(&block, "reporting-mta").map(|v| fields::untyped(v).to_owned()),
        original_message_id: returned_message_id(message),
        feedback_type: feedback,
        recipients,
    })
}

fn dsn(message: &Message<'_>) -> Option<Report> {
    let body = part_body(message, "message/delivery-status")?;
    let blocks = fields::blocks(&body);
    let per_message = blocks.first()?;
    let reporting_mta =
        fields::get(per_message, "reporting-mta").map(|v| fields::untyped(v).to_owned());
    let recipients: Vec<Recipient> = blocks
        .iter()
        .take(MAX_BLOCKS)
        .filter(|b| {
            fields::get(b, "final-recipient").is_some()
                || fields::get(b, "original-recipient").is_some()
        })
        .filter_map(|b| {
            // The Original-Recipient is what we sent to; the Final-Recipient may be a
            // forward or an X.400 name.
            let address = ["original-recipient", "final-recipient"]
                .iter()
                .filter_map(|n| fields::get(b, n))
                .find_map(|v| text::addresses(fields::untyped(v)).into_iter().next())?;
            let diagnostic =
                fields::get(b, "diagnostic-code").map(|v| fields::untyped(v).to_owned());
            let status = fields::get(b, "status")
                .and_then(text::enhanced_code)
                .or_else(|| diagnostic.as_deref().and_then(text::enhanced_code));
            let smtp_code = diagnostic.as_deref().and_then(text::reply_code);
            let action = fields::get(b, "action")
                .map(|a| a.trim().to_ascii_lowercase())
                .unwrap_or_else(|| match status.as_deref().and_then(|s| s.chars().next()) {
                    Some('4') => "delayed".into(),
                    Some('2') => "delivered".into(),
                    _ => "failed".into(),
                });
            Some(recipient(
                address,
                status,
                smtp_code,
                diagnostic,
                fields::get(b, "remote-mta").map(|v| fields::untyped(v).to_owned()),
                action,
            ))
        })
        .collect();
    if recipients.is_empty() {
        // A report whose blocks name nobody (some gateways): its notice may.
        return notice(message).map(|r| Report {
            path: "dsn_text",
            reporting_mta: reporting_mta.or(r.reporting_mta),
            ..r
        });
    }
    Some(Report {
        kind: Kind::Bounce,
        path: "dsn",
        reporting_mta,
        original_message_id: returned_message_id(message),
        feedback_type: None,
        recipients,
    })
}

/// One recipient with its reason, hardness and permanence worked out.
fn recipient(
    address: String,
    status: Option<String>,
    smtp_code: Option<u16>,
    diagnostic: Option<String>,
    remote_mta: Option<String>,
    action: String,
) -> Recipient {
    let permanent = action == "failed";
    let reason = match action.as_str() {
        "delivered" | "relayed" | "expanded" => Reason::Delivered,
        _ => reason::classify(status.as_deref(), diagnostic.as_deref().unwrap_or_default()),
    };
    Recipient {
        address,
        hard: permanent && reason.is_hard(),
        status,
        smtp_code,
        diagnostic,
        remote_mta,
        action,
        permanent,
        reason: reason.as_str().to_owned(),
    }
}

fn auto_reply(message: &Message<'_>) -> Option<Report> {
    let auto_submitted = header_text(message, "Auto-Submitted")
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("auto-replied"));
    let vacation = [
        "X-Autoreply",
        "X-Autorespond",
        "X-Auto-Response-Suppress-Vacation",
    ]
    .iter()
    .any(|h| header_text(message, h).is_some())
        || header_text(message, "Precedence").is_some_and(|v| v.eq_ignore_ascii_case("auto_reply"));
    if !(auto_submitted || vacation) || from_system(message) {
        return None;
    }
    Some(Report {
        kind: Kind::AutoReply,
        path: "auto_reply",
        reporting_mta: None,
        original_message_id: message.in_reply_to().as_text().map(str::to_owned),
        feedback_type: None,
        recipients: Vec::new(),
    })
}

/// Subjects mail systems give their notices (lower-case, matched anywhere in the subject).
const BOUNCE_SUBJECTS: &[&str] = &[
    "undeliver",
    "undelivered mail",
    "delivery status notification",
    "delivery failure",
    "delivery has failed",
    "delivery notification",
    "failure notice",
    "returned mail",
    "mail delivery failed",
    "mail delivery failure",
    "could not be delivered",
    "delivery problem",
    "nondeliverable",
    "non-deliverable",
    "non delivery",
    "mail system error",
    "warning: could not send message",
    "delayed mail",
    "delivery delayed",
    "message not delivered",
    "returned to sender",
    "failed delivery",
    "mail failure",
    "error sending message",
    // Other languages' notices (Exchange, Domino and webmail write these).
    "non remis",
    "non distribuable",
    "unzustellbar",
    "nicht zustellbar",
    "non recapitabile",
    "no entregado",
    "no se pudo entregar",
    "niet afgeleverd",
    "onbestelbaar",
];

/// Sent by a mail system: the null sender, or a system mailbox (MAILER-DAEMON, postmaster).
fn from_system(message: &Message<'_>) -> bool {
    let null_sender = message
        .return_path()
        .as_text()
        .is_some_and(|p| p.trim_matches(['<', '>', ' ']).is_empty());
    let system_from = message
        .from()
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .map(|a| a.to_ascii_lowercase())
        .is_some_and(|a| {
            let local = a.split('@').next().unwrap_or_default();
            matches!(
                local,
                "mailer-daemon" | "postmaster" | "mailer_daemon" | "mailerdaemon" | "mail-daemon"
            ) || local.starts_with("mailer-daemon")
        });
    null_sender || system_from
}

fn notice(message: &Message<'_>) -> Option<Report> {
    let subject = message.subject().unwrap_or_default().to_ascii_lowercase();
    let bounce_subject = BOUNCE_SUBJECTS.iter().any(|s| subject.contains(s));
    if !from_system(message) && !bounce_subject {
        return None;
    }
    // The notice is the first text part (a returned message is a part of its own), else the body.
    let body = message
        .parts
        .iter()
        .find_map(|p| match &p.body {
            PartType::Text(t) => Some(t.to_string()),
            _ => None,
        })
        .or_else(|| message.body_text(0).map(|t| t.into_owned()))?;
    let notice = text::notice(&body);
    let exclude = own_addresses(message);
    let named = text::named(notice, &exclude);
    if named.is_empty() && !from_system(message) {
        // A bounce subject alone, from a person, naming nobody: ordinary mail.
        return None;
    }
    let delayed = text::is_delay(&subject, notice);
    let recipients = named
        .into_iter()
        .map(|n| {
            let status = text::enhanced_code(&n.diagnostic).or_else(|| text::enhanced_code(notice));
            let smtp_code = text::reply_code(&n.diagnostic);
            let action = if delayed || status.as_deref().is_some_and(|s| s.starts_with('4')) {
                "delayed"
            } else {
                "failed"
            };
            // The recipient's own lines first; the notice as a whole when they say nothing.
            let own = reason::classify(status.as_deref(), &n.diagnostic);
            let diagnostic = if own == Reason::Undefined {
                format!("{} {}", n.diagnostic, notice)
            } else {
                n.diagnostic.clone()
            };
            let mut r = recipient(
                n.address,
                status,
                smtp_code,
                Some(diagnostic),
                None,
                action.into(),
            );
            r.diagnostic = Some(n.diagnostic);
            r
        })
        .collect();
    Some(Report {
        kind: Kind::Bounce,
        path: "text",
        reporting_mta: None,
        original_message_id: returned_message_id(message),
        feedback_type: None,
        recipients,
    })
}

/// The notice's own addresses (who sent it, whom it went to, the list that sent the original):
/// every address in its From, To, Cc, Sender, Reply-To, Return-Path, Errors-To and
/// Delivered-To fields, however many of each. A notice names them; they did not fail.
fn own_addresses(message: &Message<'_>) -> Vec<String> {
    const OWN: [&str; 8] = [
        "from",
        "to",
        "cc",
        "sender",
        "reply-to",
        "return-path",
        "errors-to",
        "delivered-to",
    ];
    let raw = message.raw_message();
    message
        .headers()
        .iter()
        .filter(|h| OWN.iter().any(|n| h.name().eq_ignore_ascii_case(n)))
        .filter_map(|h| raw.get(h.offset_start as usize..h.offset_end as usize))
        .flat_map(|v| text::addresses(&String::from_utf8_lossy(v)))
        .collect()
}

/// The Message-ID of a returned message or its headers (`message/rfc822`,
/// `text/rfc822-headers`).
/// The Message-ID of the message a report returns: a `message/rfc822` part's, else the field in
/// a `text/rfc822-headers` part (or `message/rfc822-headers`), else the first `Message-ID:` line of a copy quoted in the text
/// (qmail, Exim and others paste the returned headers after the notice). Without brackets, as
/// thread keys keep it.
fn returned_message_id(message: &Message<'_>) -> Option<String> {
    let attached = message.parts.iter().find_map(|p| match &p.body {
        PartType::Message(inner) => inner.message_id().map(str::to_owned),
        _ => None,
    });
    attached
        .or_else(|| {
            // `message/rfc822-headers` is an old, common misspelling of the type.
            ["text/rfc822-headers", "message/rfc822-headers"]
                .into_iter()
                .find_map(|t| part_body(message, t).and_then(|h| message_id_line(&h)))
        })
        .or_else(|| {
            let text = message.body_text(0)?;
            message_id_line(&text[text.len().min(text::notice(&text).len())..])
        })
}

/// The value of the first line that is a `Message-ID:` field, up to its closing bracket.
fn message_id_line(text: &str) -> Option<String> {
    text.lines().take(MAX_REPORT_LINES).find_map(|line| {
        let line = line.trim_start_matches(['>', ' ', '\t']);
        let (name, value) = line.split_once(':')?;
        if !name.trim_end().eq_ignore_ascii_case("message-id") {
            return None;
        }
        let value = value.trim();
        let id = value
            .strip_prefix('<')
            .map_or(value, |v| v.split('>').next().unwrap_or(v));
        (!id.is_empty() && id.contains('@') && !id.contains(char::is_whitespace))
            .then(|| id.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DSN: &str = "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n\
To: bot@agents.test\r\nSubject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n\
--b\r\nContent-Type: message/delivery-status\r\n\r\n\
Reporting-MTA: dns; mx.example.org\r\n\r\n\
Final-Recipient: rfc822; ann@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\
Remote-MTA: dns; in.example.org\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <ann@example.org>: Recipient address rejected:\r\n\
 User unknown in virtual mailbox table\r\n\r\n\
Final-Recipient: rfc822; bob@example.org\r\nAction: delayed\r\nStatus: 4.2.2\r\n\
Diagnostic-Code: smtp; 452 4.2.2 Mailbox full\r\n\r\n\
--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <m1@agents.test>\r\n\
--b--\r\n";

    #[test]
    fn a_dsn_gives_each_recipient_its_fate() {
        let report = analyse(DSN.as_bytes()).expect("a report");
        assert_eq!((report.kind, report.path), (Kind::Bounce, "dsn"));
        assert_eq!(report.reporting_mta.as_deref(), Some("mx.example.org"));
        let [ann, bob] = &report.recipients[..] else {
            panic!("{report:?}")
        };
        assert_eq!(ann.address, "ann@example.org");
        assert_eq!(
            (ann.status.as_deref(), ann.smtp_code),
            (Some("5.1.1"), Some(550))
        );
        assert!(ann.permanent && ann.hard);
        assert_eq!(ann.reason, "userunknown");
        assert_eq!(ann.remote_mta.as_deref(), Some("in.example.org"));
        assert_eq!(
            (bob.action.as_str(), bob.permanent, bob.hard),
            ("delayed", false, false)
        );
        assert_eq!(bob.reason, "mailboxfull");
        // The returned headers name the message it is about (the fallback link).
        assert_eq!(
            report.original_message_id.as_deref(),
            Some("m1@agents.test")
        );
    }

    #[test]
    fn the_returned_message_id_is_found_in_headers_parts_and_quoted_copies() {
        let misspelt = DSN.replace("text/rfc822-headers", "message/rfc822-headers");
        let report = analyse(misspelt.as_bytes()).expect("a report");
        assert_eq!(
            report.original_message_id.as_deref(),
            Some("m1@agents.test")
        );

        // A notice quoting the returned headers after it: its own Message-ID is not the one.
        let notice = "From: MAILER-DAEMON@mx.example.net\r\nTo: bot@agents.test\r\n\
Message-ID: <notice-1@mx.example.net>\r\nSubject: failure notice\r\n\r\n\
I'm afraid I wasn't able to deliver your message to the following addresses.\r\n\r\n\
<erin@example.net>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n\
--- Below this line is a copy of the message.\r\n\r\nTo: erin@example.net\r\n\
Message-ID: <sent-7@agents.test>\r\nSubject: hello\r\n";
        let report = analyse(notice.as_bytes()).expect("a notice");
        assert_eq!(
            report.original_message_id.as_deref(),
            Some("sent-7@agents.test")
        );
        // A line that only mentions the field is not one.
        assert_eq!(
            message_id_line("see the Message-ID: header for details"),
            None
        );
        assert_eq!(message_id_line("> Message-Id: <a@b>"), Some("a@b".into()));
    }

    #[test]
    fn complaints_auto_replies_and_notices_are_told_apart() {
        let arf = "From: fbl@isp.example\r\nTo: fbl@agents.test\r\nSubject: complaint\r\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"f\"\r\n\r\n\
--f\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report\r\n\
--f\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n\
User-Agent: SomeGenerator/1.0\r\nVersion: 1\r\nOriginal-Rcpt-To: <carol@isp.example>\r\n\
--f--\r\n";
        let report = analyse(arf.as_bytes()).expect("a complaint");
        assert_eq!((report.kind, report.path), (Kind::Complaint, "arf"));
        assert_eq!(report.feedback_type.as_deref(), Some("abuse"));
        assert_eq!(report.recipients[0].address, "carol@isp.example");

        let vacation = "From: dave@example.org\r\nTo: bot@agents.test\r\n\
Subject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\nI am away until Monday.\r\n";
        assert_eq!(
            analyse(vacation.as_bytes()).map(|r| r.kind),
            Some(Kind::AutoReply)
        );

        let qmail = "From: MAILER-DAEMON@mx.example.net\r\nTo: bot@agents.test\r\n\
Subject: failure notice\r\n\r\nHi. This is the qmail-send program at mx.example.net.\r\n\
I'm afraid I wasn't able to deliver your message to the following addresses.\r\n\
This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n\
<erin@example.net>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n\
--- Below this line is a copy of the message.\r\n\r\nTo: frank@example.com\r\n";
        let report = analyse(qmail.as_bytes()).expect("a notice");
        assert_eq!(report.path, "text");
        let [erin] = &report.recipients[..] else {
            panic!("{report:?}")
        };
        assert_eq!(erin.address, "erin@example.net");
        assert!(erin.hard);

        // Ordinary mail, even about delivery, is not a bounce.
        let ordinary = "From: gina@example.org\r\nTo: bot@agents.test\r\n\
Subject: Re: delivery of the sofa\r\n\r\nThe delivery failed yesterday, can we retry?\r\n";
        assert_eq!(analyse(ordinary.as_bytes()), None);
    }
}
