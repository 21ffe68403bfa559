//! Mail an agent sends, committed before it is acknowledged, and the suppression list it checks.

use super::*;
use crabmail_api::{ParsedMessage, SummaryContent};

#[derive(Debug, Clone)]
pub struct NewRecipient {
    pub id: String,
    pub address: String,
    pub domain: String,
}

/// A message to send, as committed before the 202 or 250 that acknowledges it.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub id: String,
    pub account_id: String,
    pub inbox_id: String,
    pub blob_id: String,
    pub bytes: Arc<Vec<u8>>,
    pub return_path: String,
    pub created_at: Timestamp,
    /// `api` or `smtp`.
    pub source: &'static str,
    pub summary: SummaryContent,
    pub parsed: ParsedMessage,
    /// Where the message joins a conversation of its inbox.
    pub thread: crate::ingest::thread::ThreadKeys,
    pub recipients: Vec<NewRecipient>,
    /// (key, hash of the request): the enqueue fails with `Conflict` if the key is taken.
    pub idempotency: Option<(String, Vec<u8>)>,
    /// The sending quotas to keep; None when no limit applies (nothing counted either).
    pub quota: Option<QuotaCheck>,
    /// Only decide its release (`Enqueued::DryRun`): nothing is written or counted.
    pub dry_run: bool,
    /// Why it waits for approval (its recipients are `held`, nothing is counted against a
    /// quota until it is approved); None: it goes to the queue.
    pub held_for: Option<&'static str>,
    /// The sending inbox's custom domain, which has a warm-up of its own; None on the shared
    /// domain.
    pub custom_domain: Option<String>,
}

impl QueuedMessage {
    /// The event its enqueue writes, if any: `message.held` (waits for approval, and why) or
    /// `message.throttled` (a quota holds it until `release_at`).
    pub(super) fn enqueue_event(
        &self,
        release: &crate::outbound::quota::Release,
    ) -> Option<NewEvent<'_>> {
        if let Some(reason) = self.held_for {
            return Some(NewEvent::approval(
                &self.account_id,
                "message.held",
                &self.id,
                &self.inbox_id,
                Some(reason),
            ));
        }
        (release.at > self.created_at).then(|| NewEvent {
            account_id: &self.account_id,
            kind: "message.throttled",
            message_id: Some(&self.id),
            inbox_id: Some(&self.inbox_id),
            recipient: None,
            detail: Some(serde_json::json!({
                "release_at": release.at.to_rfc3339(),
                "held_by": crate::outbound::quota::describe(release.held_by.as_ref()),
            })),
        })
    }

    /// What its quotas are judged on.
    pub(crate) fn quota_subject(&self) -> QuotaSubject<'_> {
        QuotaSubject {
            inbox_id: &self.inbox_id,
            account_id: &self.account_id,
            domain: self.custom_domain.as_deref(),
            at: self.created_at,
            recipients: self.recipients.len(),
            dry_run: self.dry_run,
        }
    }
}

impl QueuedMessage {
    /// Its place in its inbox's conversations (`ingest::thread::choose` decides which).
    pub(crate) fn thread_join(&self) -> crate::ingest::thread::ThreadJoin<'_> {
        crate::ingest::thread::ThreadJoin {
            message_id: &self.id,
            account_id: &self.account_id,
            inbox_id: &self.inbox_id,
            direction: "outbound",
            subject: self.summary.subject.as_deref(),
            keys: &self.thread,
            own_address: &self.return_path,
            at: self.created_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub request_hash: Vec<u8>,
    pub message_id: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub account_id: String,
    pub address: String,
    pub reason: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientRecord {
    pub id: String,
    pub address: String,
    pub status: Status,
    pub attempts: Vec<AttemptRecord>,
    pub next_attempt_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct OutboundRecord {
    pub id: String,
    pub account_id: String,
    pub inbox_id: String,
    pub blob_id: String,
    pub return_path: String,
    pub created_at: Timestamp,
    pub size: i64,
    pub summary: SummaryContent,
    pub parsed: Json<ParsedMessage>,
    pub recipients: Vec<RecipientRecord>,
    pub thread_id: Option<String>,
    /// When it leaves (or left): later than `created_at` when a quota held it.
    pub release_at: Timestamp,
}

#[async_trait]
pub trait Sending: Send + Sync {
    /// Bytes, message, its recipients (and its idempotency key), in one transaction, released
    /// when its quotas allow (`QuotaCheck`); a refusal the sender asked for writes nothing. A
    /// message held for approval writes a `message.held` event, whose wake-up comes back.
    async fn enqueue(&self, message: QueuedMessage) -> Result<(Enqueued, Option<Wake>)>;
    async fn find_idempotency(
        &self,
        account_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>>;
    /// Drops an idempotency key older than `before` so it can be used again.
    async fn expire_idempotency(
        &self,
        account_id: &str,
        key: &str,
        before: Timestamp,
    ) -> Result<()>;
    /// Which of `addresses` the account has suppressed.
    async fn suppressed(
        &self,
        account_id: &str,
        addresses: Vec<String>,
    ) -> Result<Vec<Suppression>>;
    async fn list_suppressions(&self, account_id: &str) -> Result<Vec<Suppression>>;
    async fn delete_suppression(&self, account_id: &str, address: &str) -> Result<bool>;
    async fn get_outbound(
        &self,
        account_id: &str,
        message_id: &str,
    ) -> Result<Option<OutboundRecord>>;
}
