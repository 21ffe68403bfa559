//! Each account's event log, and the wake-ups long-polls wait for.

use super::*;

/// Something long-polls may be waiting for changed: `topic` is `inbox:<id>` (its list grew) or
/// `events:<account id>` (its event log grew); `seq` is the new high mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wake {
    pub topic: String,
    pub seq: i64,
}

impl Wake {
    pub fn inbox(inbox_id: &str, seq: i64) -> Wake {
        Wake {
            topic: format!("inbox:{inbox_id}"),
            seq,
        }
    }

    /// A webhook endpoint recorded progress (an attempt, or events it was not sent).
    pub fn webhook(webhook_id: &str, cursor: i64) -> Wake {
        Wake {
            topic: format!("webhook:{webhook_id}"),
            seq: cursor,
        }
    }

    pub fn events(account_id: &str, seq: i64) -> Wake {
        Wake {
            topic: format!("events:{account_id}"),
            seq,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub seq: i64,
    pub kind: String,
    pub message_id: Option<String>,
    pub inbox_id: Option<String>,
    pub recipient: Option<String>,
    /// A JSON object, when the event has details.
    pub detail: Option<serde_json::Value>,
    pub created_at: Timestamp,
}

/// An entry for an account's event log.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub account_id: &'a str,
    pub kind: &'static str,
    pub message_id: Option<&'a str>,
    pub inbox_id: Option<&'a str>,
    pub recipient: Option<&'a str>,
    /// A JSON object.
    pub detail: Option<serde_json::Value>,
}

impl<'a> NewEvent<'a> {
    /// A message became readable in an inbox.
    pub fn received(account_id: &'a str, message_id: &'a str, inbox_id: &'a str) -> Self {
        NewEvent {
            account_id,
            kind: "message.received",
            message_id: Some(message_id),
            inbox_id: Some(inbox_id),
            recipient: None,
            detail: None,
        }
    }

    /// What the sender is told about one recipient's delivery attempt.
    pub fn outcome(result: &'a RecipientResult) -> Self {
        NewEvent {
            account_id: &result.account_id,
            kind: event_kind(result.status),
            message_id: Some(&result.message_id),
            inbox_id: Some(&result.inbox_id),
            recipient: Some(&result.address),
            detail: Some(attempt_detail(result.status, &result.attempt)),
        }
    }

    /// A message to send that waits for approval (`reason`: why), or was approved or rejected.
    pub fn approval(
        account_id: &'a str,
        kind: &'static str,
        message_id: &'a str,
        inbox_id: &'a str,
        reason: Option<&str>,
    ) -> Self {
        NewEvent {
            account_id,
            kind,
            message_id: Some(message_id),
            inbox_id: Some(inbox_id),
            recipient: None,
            detail: reason.map(|r| serde_json::json!({ "reason": r })),
        }
    }

    /// A recipient the operator or the sender cancelled before delivery.
    pub fn cancelled(
        account_id: &'a str,
        message_id: &'a str,
        inbox_id: &'a str,
        recipient: &'a str,
    ) -> Self {
        NewEvent {
            account_id,
            kind: "message.cancelled",
            message_id: Some(message_id),
            inbox_id: Some(inbox_id),
            recipient: Some(recipient),
            detail: None,
        }
    }
}

/// The event a recipient's new status is reported as.
pub fn event_kind(status: Status) -> &'static str {
    match status {
        Status::Held => "message.held",
        Status::Queued | Status::Deferred => "message.deferred",
        Status::Delivered => "message.delivered",
        Status::Bounced | Status::Expired => "message.bounced",
        Status::Cancelled => "message.cancelled",
    }
}

/// The detail of a delivery event: the attempt as the sender sees it.
pub fn attempt_detail(status: Status, attempt: &AttemptRecord) -> serde_json::Value {
    serde_json::json!({
        "status": status.as_str(),
        "host": attempt.host,
        "code": attempt.code,
        "enhanced_code": attempt.enhanced,
        "text": attempt.text,
        "tls": attempt.tls,
    })
}

#[async_trait]
pub trait Events: Send + Sync {
    async fn list_events(
        &self,
        account_id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>>;
    /// Waits for arrivals committed by other nodes sharing this store and passes each to `notify`.
    /// Single-node stores return at once.
    async fn follow_arrivals(&self, notify: Arc<dyn Fn(Wake) + Send + Sync>) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_is_reported_as_the_event_its_status_means() {
        let result = RecipientResult {
            recipient_id: "rcp_1".into(),
            account_id: "acc_1".into(),
            message_id: "msg_1".into(),
            inbox_id: "inb_1".into(),
            address: "bob@example.org".into(),
            status: Status::Expired,
            next_attempt_at: None,
            attempt: AttemptRecord {
                at: Timestamp(1),
                host: Some("mx.example.org".into()),
                code: Some(451),
                enhanced: Some("4.4.1".into()),
                text: "no answer".into(),
                tls: None,
            },
        };
        let event = NewEvent::outcome(&result);
        // Expiry is final: the sender hears "bounced", with the last attempt as the reason.
        assert_eq!(event.kind, "message.bounced");
        assert_eq!(event.recipient, Some("bob@example.org"));
        let detail = event.detail.unwrap_or_default();
        assert_eq!(detail["status"], "expired");
        assert_eq!(detail["enhanced_code"], "4.4.1");
        assert_eq!(detail["host"], "mx.example.org");
    }
}
