//! The one way into inboxes. Mail from the MX, mail an agent sends to an inbox of this server, and
//! the bounce reports the queue writes all become an `InboundMessage` here: its bytes stored once,
//! one copy per inbox (an address and its `+tag` forms are one inbox), and the ingest job that
//! makes the copies readable once the store committed them.

use crate::clock::Timestamp;
use crate::id;
use crate::store::{Delivery, Envelope, InboundMessage, InboxTarget, IngestJob};
use crabmail_api::AuthResults;
use std::sync::Arc;

/// The copies a message is going to, gathered recipient by recipient.
#[derive(Debug, Default)]
pub struct Copies {
    deliveries: Vec<Delivery>,
}

impl Copies {
    /// A copy for `target`'s inbox, unless it already has one (`recipient` is the address as
    /// the sender wrote it).
    pub fn add(&mut self, target: InboxTarget, recipient: &str, now: Timestamp) {
        let has_copy = self
            .deliveries
            .iter()
            .any(|d| d.inbox_id == target.inbox_id && d.report_for.is_none());
        if !has_copy {
            self.push(target, recipient, None, now);
        }
    }

    /// A copy for the inbox that sent the message a signed return path names: one per
    /// recipient it reports on, and never held back by the inbox's lists (the path's key proves
    /// it answers mail we sent).
    pub fn add_report(
        &mut self,
        target: InboxTarget,
        recipient: &str,
        recipient_id: String,
        now: Timestamp,
    ) {
        let known = self
            .deliveries
            .iter()
            .any(|d| d.report_for.as_deref() == Some(recipient_id.as_str()));
        if !known {
            self.push(target, recipient, Some(recipient_id), now);
        }
    }

    fn push(
        &mut self,
        target: InboxTarget,
        recipient: &str,
        report_for: Option<String>,
        now: Timestamp,
    ) {
        self.deliveries.push(Delivery {
            message_id: id::new_id(id::MESSAGE, now),
            inbox_id: target.inbox_id,
            account_id: target.account_id,
            recipient: recipient.to_owned(),
            quarantined: false,
            report_for,
        });
    }

    /// Applies a decision to each copy: keep it, quarantine it, or drop it.
    pub fn decide(&mut self, mut decision: impl FnMut(&Delivery) -> CopyFate) {
        self.deliveries.retain_mut(|d| match decision(d) {
            _ if d.report_for.is_some() => true,
            CopyFate::Keep => true,
            CopyFate::Quarantine => {
                d.quarantined = true;
                true
            }
            CopyFate::Drop => false,
        });
    }

    /// The accounts the copies go to.
    pub fn accounts(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .deliveries
            .iter()
            .map(|d| d.account_id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty()
    }
}

/// What happens to one copy of a message (an inbox's lists decide).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFate {
    Keep,
    Quarantine,
    Drop,
}

/// The remote address of mail that never crossed the network.
pub const LOCAL: &str = "local";

/// The envelope of mail that never crossed the network: from this server to itself.
pub fn local_envelope(return_path: &str, hostname: &str) -> Envelope {
    Envelope {
        return_path: return_path.to_owned(),
        remote_ip: LOCAL.into(),
        helo: hostname.to_owned(),
        tls: true,
    }
}

/// The message as the store keeps it, under a new blob id. `auth` is what verification said of
/// mail from the network (None for local mail); `quarantined` holds it out of the default list.
pub fn accept(
    bytes: Vec<u8>,
    envelope: Envelope,
    copies: Copies,
    auth: Option<AuthResults>,
    quarantined: bool,
    now: Timestamp,
) -> InboundMessage {
    InboundMessage {
        blob_id: id::new_id(id::BLOB, now),
        bytes: Arc::new(bytes),
        received_at: now,
        envelope,
        deliveries: copies.deliveries,
        auth,
        quarantined,
    }
}

/// The job that makes a committed message's copies readable.
pub fn job(message: &InboundMessage) -> IngestJob {
    IngestJob {
        blob_id: message.blob_id.clone(),
        bytes: message.bytes.clone(),
        auth: message.auth.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(inbox: &str) -> InboxTarget {
        InboxTarget {
            inbox_id: inbox.into(),
            account_id: "acc_1".into(),
            approval_required: false,
        }
    }

    #[test]
    fn one_copy_per_inbox_and_a_job_that_names_the_stored_bytes() {
        let now = Timestamp(1_800_000_000_000);
        let mut copies = Copies::default();
        assert!(copies.is_empty());
        copies.add(target("inb_support"), "support@example.com", now);
        copies.add(target("inb_support"), "support+billing@example.com", now);
        copies.add(target("inb_sales"), "sales@example.com", now);
        let message = accept(
            b"Subject: hi\r\n\r\nhello\r\n".to_vec(),
            local_envelope("bot@example.com", "mx.example.com"),
            copies,
            None,
            false,
            now,
        );
        let inboxes: Vec<&str> = message
            .deliveries
            .iter()
            .map(|d| d.inbox_id.as_str())
            .collect();
        assert_eq!(inboxes, ["inb_support", "inb_sales"]);
        assert_eq!(message.deliveries[0].recipient, "support@example.com");
        assert_ne!(
            message.deliveries[0].message_id,
            message.deliveries[1].message_id
        );
        assert_eq!(message.envelope.remote_ip, "local");
        let job = job(&message);
        assert_eq!(job.blob_id, message.blob_id);
        assert!(Arc::ptr_eq(&job.bytes, &message.bytes));
    }
}
