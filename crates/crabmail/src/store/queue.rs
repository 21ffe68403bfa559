//! The delivery queue: leased recipients, their outcomes, and what operators do to it.

use super::*;

/// Where a queued recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waits for approval: never claimed until approved (then `Queued`) or rejected
    /// (`Cancelled`).
    Held,
    Queued,
    Deferred,
    Delivered,
    Bounced,
    Expired,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Held => "held",
            Status::Queued => "queued",
            Status::Deferred => "deferred",
            Status::Delivered => "delivered",
            Status::Bounced => "bounced",
            Status::Expired => "expired",
            Status::Cancelled => "cancelled",
        }
    }

    /// The status `as_str` wrote; None for anything else.
    pub fn parse(text: &str) -> Option<Status> {
        Some(match text {
            "held" => Status::Held,
            "queued" => Status::Queued,
            "deferred" => Status::Deferred,
            "delivered" => Status::Delivered,
            "bounced" => Status::Bounced,
            "expired" => Status::Expired,
            "cancelled" => Status::Cancelled,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        !matches!(self, Status::Held | Status::Queued | Status::Deferred)
    }
}

/// A recipient a queue worker has leased for one delivery attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub recipient_id: String,
    pub message_id: String,
    pub account_id: String,
    pub inbox_id: String,
    pub return_path: String,
    pub blob_id: String,
    pub address: String,
    pub domain: String,
    pub attempts: u32,
    pub queued_at: Timestamp,
}

/// One delivery attempt as recorded and shown to the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub at: Timestamp,
    /// The MX host or relay tried, if one was reached.
    pub host: Option<String>,
    pub code: Option<u16>,
    pub enhanced: Option<String>,
    pub text: String,
    /// TLS version and cipher when the session was encrypted.
    pub tls: Option<String>,
}

/// The outcome of one attempt for one recipient.
#[derive(Debug, Clone)]
pub struct RecipientResult {
    pub recipient_id: String,
    pub account_id: String,
    pub message_id: String,
    pub inbox_id: String,
    pub address: String,
    pub status: Status,
    /// Set when `status` is `Deferred`.
    pub next_attempt_at: Option<Timestamp>,
    pub attempt: AttemptRecord,
}

/// Everything one round of deliveries changes, committed together: outcomes, messages delivered
/// to local inboxes and bounce reports (with their ingest jobs), and new suppressions.
#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    pub results: Vec<RecipientResult>,
    pub inbound: Vec<InboundMessage>,
    pub suppress: Vec<Suppression>,
}

/// A non-final recipient, for operators (`crabmail queue list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub message_id: String,
    pub account_id: String,
    pub return_path: String,
    pub address: String,
    pub status: Status,
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub last_text: Option<String>,
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Leases up to `limit` recipients due at `now` until `lease_until`.
    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<Claimed>>;
    /// When the next recipient falls due (leases included), if any.
    async fn next_due(&self) -> Result<Option<Timestamp>>;
    async fn load_blob(&self, blob_id: &str) -> Result<Option<Vec<u8>>>;
    /// Records a round of outcomes (see `Outcomes`) and its events in one transaction.
    async fn record_outcomes(&self, outcomes: Outcomes, now: Timestamp) -> Result<Vec<Wake>>;
    async fn queue_entries(&self, limit: usize) -> Result<Vec<QueueEntry>>;
    /// The account that sent a message (for operators, who are not that account).
    async fn outbound_owner(&self, message_id: &str) -> Result<Option<String>>;
    /// Makes a message's unfinished recipients due now; how many.
    async fn retry_now(&self, message_id: &str, now: Timestamp) -> Result<usize>;
    /// Cancels a message's unfinished recipients; how many.
    async fn cancel(&self, message_id: &str, now: Timestamp) -> Result<usize>;
    /// The inbox that sent the message a recipient belongs to (a report to its signed return
    /// path goes there); None once that inbox is deleted.
    async fn return_path_owner(&self, recipient_id: &str) -> Result<Option<InboxTarget>>;
    /// What waits: recipients not yet final and ingest jobs, with the age of the oldest of each.
    async fn backlog(&self, now: Timestamp) -> Result<crate::metrics::Backlog>;
}
