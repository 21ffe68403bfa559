//! What a report does to the mail it is about, as a pure function: which recipient of which sent
//! message it names, and what changes (the store applies it in the transaction that lists the
//! report).
//!
//! - A permanent failure of a delivered recipient is a late bounce: `bounced`, with the report as
//!   an attempt, a `message.bounced` event, and a suppression when it is hard (the address itself
//!   is bad). A soft failure says nothing about the address, so it does not suppress.
//! - A delay, or a failure of a recipient that is not `delivered` (already bounced, or still being
//!   tried), is recorded as an attempt and changes nothing.
//! - A complaint suppresses the address (reason `complaint`) and writes `message.complained`.
//! - An auto-reply does nothing here (ingest threads it and the message JSON marks it).
//!
//! Linking: a report to a signed return path (`exact`) names one recipient; the report's entry for
//! it is the one with its address, else its only (or first failed) entry, since the remote may
//! report an alias it expanded to. Otherwise the report was found by the returned Message-ID
//! among the inbox's sent messages: an entry must name the recipient's address, except that a
//! message sent to one recipient takes a report of one entry (or of none: feedback reports often
//! redact the address).

use super::{Kind, Recipient, Report};
use crate::clock::Timestamp;
use crate::store::{AttemptRecord, NewEvent, Status, Suppression};

/// A recipient of a message we sent, as the store found it for a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub recipient_id: String,
    pub message_id: String,
    pub inbox_id: String,
    pub account_id: String,
    pub address: String,
    pub status: Status,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A delivered recipient failed after all: bounced, suppressed when `entry.hard`.
    LateBounce,
    /// Kept as an attempt; the status stays.
    Note,
    /// The recipient complained: suppressed.
    Complaint,
}

/// One change to one recipient, with the report's entry that caused it.
#[derive(Debug, Clone, PartialEq)]
pub struct Action<'a> {
    pub sent: &'a Sent,
    pub change: Change,
    /// The report's entry (an empty one for a complaint that names no one).
    pub entry: Recipient,
}

/// The changes `report` makes to `candidates` (one recipient when `exact`, else the recipients of
/// the sent message its Message-ID names).
pub fn decide<'a>(report: &Report, candidates: &'a [Sent], exact: bool) -> Vec<Action<'a>> {
    if report.kind == Kind::AutoReply {
        return Vec::new();
    }
    let mut actions = Vec::new();
    for sent in candidates {
        let entry = entry_for(report, sent, exact || candidates.len() == 1);
        let change = match (report.kind, &entry) {
            (Kind::Complaint, _) => Change::Complaint,
            (Kind::Bounce, Some(e)) if e.permanent && sent.status == Status::Delivered => {
                Change::LateBounce
            }
            (Kind::Bounce, Some(e)) if e.action == "failed" || e.action == "delayed" => {
                Change::Note
            }
            _ => continue,
        };
        let entry = match entry {
            Some(entry) => entry.clone(),
            None if report.kind == Kind::Complaint && (exact || candidates.len() == 1) => {
                Recipient {
                    address: sent.address.clone(),
                    action: "complained".into(),
                    reason: "feedback".into(),
                    ..Recipient::default()
                }
            }
            None => continue,
        };
        actions.push(Action {
            sent,
            change,
            entry,
        });
    }
    actions
}

impl Action<'_> {
    /// The attempt a report adds to the recipient's history (`report_id`: the received report).
    pub fn attempt(&self, report: &Report, report_id: &str, at: Timestamp) -> AttemptRecord {
        let e = &self.entry;
        let what = match self.change {
            Change::LateBounce => "bounced after delivery",
            Change::Note if e.action == "delayed" => "delayed",
            Change::Note => "failed",
            Change::Complaint => "complained",
        };
        let said = e.diagnostic.as_deref().unwrap_or(e.reason.as_str());
        AttemptRecord {
            at,
            host: e
                .remote_mta
                .clone()
                .or_else(|| report.reporting_mta.clone()),
            code: e.smtp_code,
            enhanced: e.status.clone(),
            text: format!("{what}, as reported in {report_id} ({}): {said}", e.reason),
            tls: None,
        }
    }

    /// The suppression it makes: a hard late bounce, or a complaint (reason `complaint: ...`).
    pub fn suppression(&self, report: &Report, at: Timestamp) -> Option<Suppression> {
        let e = &self.entry;
        let reason = match self.change {
            Change::LateBounce if e.hard => {
                let code = [e.smtp_code.map(|c| c.to_string()), e.status.clone()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                let said = e.diagnostic.as_deref().unwrap_or(e.reason.as_str());
                format!("{code} {said} (bounced after delivery)")
                    .trim()
                    .to_owned()
            }
            Change::Complaint => format!(
                "complaint: the recipient reported the message ({})",
                report.feedback_type.as_deref().unwrap_or("abuse")
            ),
            _ => return None,
        };
        Some(Suppression {
            account_id: self.sent.account_id.clone(),
            address: self.sent.address.to_ascii_lowercase(),
            reason,
            created_at: at,
        })
    }

    /// The event the sender is told (`message.bounced` for a late bounce, `message.complained`),
    /// none for a note.
    pub fn event(&self, report: &Report, report_id: &str) -> Option<NewEvent<'_>> {
        let e = &self.entry;
        let (kind, detail) = match self.change {
            Change::LateBounce => (
                "message.bounced",
                serde_json::json!({
                    "status": "bounced",
                    "late": true,
                    "hard": e.hard,
                    "reason": e.reason,
                    "host": e.remote_mta.as_ref().or(report.reporting_mta.as_ref()),
                    "code": e.smtp_code,
                    "enhanced_code": e.status,
                    "text": e.diagnostic,
                    "report_id": report_id,
                }),
            ),
            Change::Complaint => (
                "message.complained",
                serde_json::json!({
                    "feedback_type": report.feedback_type,
                    "reporting_mta": report.reporting_mta,
                    "report_id": report_id,
                }),
            ),
            Change::Note => return None,
        };
        Some(NewEvent {
            account_id: &self.sent.account_id,
            kind,
            message_id: Some(&self.sent.message_id),
            inbox_id: Some(&self.sent.inbox_id),
            recipient: Some(&self.sent.address),
            detail: Some(detail),
        })
    }
}

/// The recipient a report is shown linked to: the one its return path names, else the one its
/// actions are about when there is exactly one.
pub fn linked(report_for: Option<&str>, actions: &[Action<'_>]) -> Option<String> {
    report_for.map(str::to_owned).or_else(|| match actions {
        [only] => Some(only.sent.recipient_id.clone()),
        _ => None,
    })
}

/// The report's entry about `sent`: by address, or (when the link is certain) the only one.
fn entry_for<'r>(report: &'r Report, sent: &Sent, certain: bool) -> Option<&'r Recipient> {
    let by_address = report
        .recipients
        .iter()
        .find(|r| r.address.eq_ignore_ascii_case(&sent.address));
    if by_address.is_some() || !certain {
        return by_address;
    }
    match report.recipients.as_slice() {
        [only] => Some(only),
        all => all.iter().find(|r| r.action == "failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(address: &str, status: Status) -> Sent {
        Sent {
            recipient_id: format!("rcpt_{address}"),
            message_id: "msg_1".into(),
            inbox_id: "inb_1".into(),
            account_id: "acc_1".into(),
            address: address.into(),
            status,
        }
    }

    fn entry(address: &str, action: &str, hard: bool) -> Recipient {
        Recipient {
            address: address.into(),
            action: action.into(),
            permanent: action == "failed",
            hard,
            reason: if hard { "userunknown" } else { "mailboxfull" }.into(),
            ..Recipient::default()
        }
    }

    fn report(kind: Kind, recipients: Vec<Recipient>) -> Report {
        Report {
            kind,
            path: "dsn",
            reporting_mta: None,
            original_message_id: None,
            feedback_type: None,
            recipients,
        }
    }

    #[test]
    fn a_failure_of_a_delivered_recipient_is_a_late_bounce_and_a_delay_only_a_note() {
        let ann = [sent("ann@example.org", Status::Delivered)];
        let failed = report(Kind::Bounce, vec![entry("ANN@example.org", "failed", true)]);
        let actions = decide(&failed, &ann, false);
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].change, Change::LateBounce);
        assert!(actions[0].entry.hard);

        let delayed = report(
            Kind::Bounce,
            vec![entry("ann@example.org", "delayed", false)],
        );
        assert_eq!(decide(&delayed, &ann, false)[0].change, Change::Note);

        // Already bounced (or still being tried): recorded, never bounced twice.
        let bounced = [sent("ann@example.org", Status::Bounced)];
        assert_eq!(decide(&failed, &bounced, false)[0].change, Change::Note);
    }

    #[test]
    fn a_report_found_by_message_id_acts_only_on_the_addresses_it_names() {
        let both = [
            sent("ann@example.org", Status::Delivered),
            sent("bob@example.org", Status::Delivered),
        ];
        let about_bob = report(Kind::Bounce, vec![entry("bob@example.org", "failed", true)]);
        let actions = decide(&about_bob, &both, false);
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].sent.address, "bob@example.org");

        // An alias the remote expanded names no recipient of a two-recipient message...
        let alias = report(
            Kind::Bounce,
            vec![entry("robert@mail.example.org", "failed", true)],
        );
        assert!(decide(&alias, &both, false).is_empty());
        // ...but a signed return path is certain, and so is a message with one recipient.
        assert_eq!(decide(&alias, &both[1..], true).len(), 1);
        assert_eq!(decide(&alias, &both[..1], false).len(), 1);
    }

    #[test]
    fn complaints_suppress_and_auto_replies_change_nothing() {
        let ann = [sent("ann@example.org", Status::Delivered)];
        let complaint = report(Kind::Complaint, Vec::new());
        let actions = decide(&complaint, &ann, true);
        assert_eq!(actions[0].change, Change::Complaint);
        assert_eq!(actions[0].entry.reason, "feedback");
        assert!(decide(&report(Kind::AutoReply, Vec::new()), &ann, true).is_empty());
        // A success notice is not a failure.
        let relayed = report(
            Kind::Bounce,
            vec![entry("ann@example.org", "relayed", false)],
        );
        assert!(decide(&relayed, &ann, true).is_empty());
    }
}
