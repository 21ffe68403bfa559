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
    /// JSON object or null.
    pub detail: Option<String>,
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
    /// JSON object.
    pub detail: Option<String>,
}

/// The event a recipient's new status is reported as.
pub fn event_kind(status: Status) -> &'static str {
    match status {
        Status::Queued | Status::Deferred => "message.deferred",
        Status::Delivered => "message.delivered",
        Status::Bounced | Status::Expired => "message.bounced",
        Status::Cancelled => "message.cancelled",
    }
}

/// The detail of a delivery event: the attempt as the sender sees it.
pub fn attempt_detail(status: Status, attempt: &AttemptRecord) -> String {
    serde_json::json!({
        "status": status.as_str(),
        "host": attempt.host,
        "code": attempt.code,
        "enhanced_code": attempt.enhanced,
        "text": attempt.text,
        "tls": attempt.tls,
    })
    .to_string()
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
