//! Webhook endpoints as stored, their cursors into the account's event log, and the log of every
//! delivery attempt (`webhook` delivers; this role only remembers).

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRecord {
    pub id: String,
    pub account_id: String,
    pub url: String,
    /// `whsec_<base64>`.
    pub secret: String,
    /// The secret before the last rotation, still signing until `previous_until`.
    pub previous_secret: Option<String>,
    pub previous_until: Option<Timestamp>,
    /// Empty: every event type.
    pub event_types: Vec<String>,
    /// None: every inbox.
    pub inbox_id: Option<String>,
    /// `active` or `disabled`.
    pub status: String,
    pub disabled_reason: Option<String>,
    /// The last event settled (delivered, filtered out, or given up on).
    pub cursor: i64,
    /// Failed attempts at the next event.
    pub attempt: i64,
    pub next_attempt_at: Timestamp,
    pub created_at: Timestamp,
}

/// One attempt to deliver one event to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: String,
    pub webhook_id: String,
    pub event_seq: i64,
    /// 1 for the first try.
    pub attempt: i64,
    pub at: Timestamp,
    /// The endpoint's HTTP status, when it answered.
    pub code: Option<i64>,
    pub error: Option<String>,
    /// `delivered`, `retrying`, `failed` (the last retry failed) or `disabled` (410).
    pub outcome: String,
    pub duration_ms: i64,
}

/// Where an endpoint stands after an attempt (or after events it does not want were passed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookProgress {
    pub cursor: i64,
    pub attempt: i64,
    pub next_attempt_at: Timestamp,
    /// Some(reason): the endpoint is disabled.
    pub disabled: Option<String>,
}

impl WebhookProgress {
    /// The endpoint's status as stored.
    pub fn status(&self) -> &'static str {
        if self.disabled.is_some() {
            "disabled"
        } else {
            "active"
        }
    }
}

/// Delivery attempts are kept this long.
pub const WEBHOOK_LOG_KEPT: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

#[async_trait]
pub trait Webhooks: Send + Sync {
    /// Adds an endpoint whose cursor is the account's newest event: it gets what happens from now.
    async fn create_webhook(&self, hook: WebhookRecord) -> Result<WebhookRecord>;
    async fn list_webhooks(&self, account_id: &str) -> Result<Vec<WebhookRecord>>;
    async fn get_webhook(&self, account_id: &str, id: &str) -> Result<Option<WebhookRecord>>;
    /// Deletes the endpoint and its delivery log.
    async fn delete_webhook(&self, account_id: &str, id: &str) -> Result<bool>;
    /// A new secret; the old one keeps signing until `previous_until`.
    async fn rotate_webhook_secret(
        &self,
        account_id: &str,
        id: &str,
        secret: &str,
        previous_until: Timestamp,
    ) -> Result<Option<WebhookRecord>>;
    /// Delivers again from event `after + 1` on, now, re-enabling a disabled endpoint; a node
    /// delivering for it meanwhile loses its claim.
    async fn replay_webhook(
        &self,
        account_id: &str,
        id: &str,
        after: i64,
        now: Timestamp,
    ) -> Result<Option<WebhookRecord>>;
    /// Whether some endpoint is due at `now` (a read: an idle dispatcher never writes).
    async fn webhooks_due(&self, now: Timestamp) -> Result<bool>;
    /// Claims up to `limit` active endpoints that are due and have events past their cursor,
    /// until `until`, under the claim id `lease`; endpoints another node holds are skipped.
    async fn claim_webhooks(
        &self,
        lease: &str,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<WebhookRecord>>;
    /// Records where the endpoint stands, with the attempt that got it there (if one did);
    /// `false` when the claim was lost (replayed, deleted, or the lease taken over): stop.
    async fn record_webhook_progress(
        &self,
        id: &str,
        lease: &str,
        progress: WebhookProgress,
        delivery: Option<WebhookDelivery>,
    ) -> Result<bool>;
    /// Gives the endpoint back (its next attempt time stands).
    async fn release_webhook(&self, id: &str, lease: &str) -> Result<()>;
    /// The endpoint's attempts, newest first.
    async fn webhook_deliveries(
        &self,
        account_id: &str,
        id: &str,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>>;
}
