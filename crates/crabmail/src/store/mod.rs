//! Durable state: accounts, tokens, inboxes, and every message with its raw bytes.
//!
//! `Store` is named by the operations the server performs, not by tables. Two implementations run
//! the same contract tests: `sqlite` (embedded default; WAL, synchronous=FULL, one group-committing
//! writer) and `postgres` (several nodes share one database); `tests/store_contract.rs` is that
//! suite. Each operation is one transaction;
//! when a write returns `Ok`, it is on disk.
//!
//! Failures are `StoreError`s; callers turn them into 451 (SMTP) or 503 (HTTP), never into success.
//! Lookups scoped to an account return `None` for another account's rows, exactly as for missing ones.

pub mod postgres;
mod sql;
pub mod sqlite;

use crate::clock::Timestamp;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("already exists")]
    Conflict,
    #[error("invite code is unknown or already used")]
    InvalidInvite,
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("the store is shut down")]
    Closed,
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A new account with its first token; when `invite_hash` is set, the invite is consumed in the
/// same transaction (or the account is not created).
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub id: String,
    pub created_at: Timestamp,
    pub first_token: NewToken,
    pub invite_hash: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub account_id: String,
    pub hash: Vec<u8>,
    pub inbox_id: Option<String>,
    pub name: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub account_id: String,
    pub inbox_id: Option<String>,
    pub name: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRecord {
    pub id: String,
    pub account_id: String,
    pub address: String,
    pub display_name: Option<String>,
    pub created_at: Timestamp,
}

/// Where a recipient address leads: the inbox and its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxTarget {
    pub inbox_id: String,
    pub account_id: String,
}

/// The SMTP envelope and connection facts of an inbound message, kept with every copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    pub return_path: String,
    pub remote_ip: String,
    pub helo: String,
    pub tls: bool,
}

/// One copy of an inbound message for one inbox.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message_id: String,
    pub inbox_id: String,
    pub account_id: String,
    /// The RCPT TO address as the client gave it.
    pub recipient: String,
}

/// A message accepted from the network: its bytes (stored once) and a copy per inbox.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub blob_id: String,
    pub bytes: Arc<Vec<u8>>,
    pub received_at: Timestamp,
    pub envelope: Envelope,
    pub deliveries: Vec<Delivery>,
    /// JSON of `crabmail_api::AuthResults`: what SPF, DKIM, DMARC and ARC said (none for mail
    /// that never crossed the network).
    pub auth: Option<String>,
    /// Held out of the default list (DMARC p=quarantine failed).
    pub quarantined: bool,
}

/// A stored message whose parsed view is still to be made (after a crash, or queued).
#[derive(Debug, Clone)]
pub struct IngestJob {
    pub blob_id: String,
    pub bytes: Arc<Vec<u8>>,
    /// JSON of `crabmail_api::AuthResults` as verified on arrival (none for local mail).
    pub auth: Option<String>,
}

/// The parsed view of one blob, applied to every copy of it.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub blob_id: String,
    pub from_address: Option<String>,
    pub subject: Option<String>,
    /// JSON of `crabmail_api::MessageSummary`'s content fields.
    pub summary: String,
    /// JSON of `crabmail_api::ParsedMessage`.
    pub parsed: String,
    /// Where the message joins a conversation.
    pub thread: crate::thread::ThreadKeys,
}

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

/// A readable message copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub id: String,
    pub inbox_id: String,
    pub account_id: String,
    /// Position in the inbox's list, assigned when the message became readable.
    pub seq: i64,
    pub received_at: Timestamp,
    pub size: i64,
    pub envelope: Envelope,
    pub recipient: String,
    pub summary: String,
    pub parsed: String,
    pub auth: Option<String>,
    pub quarantined: bool,
    pub thread_id: Option<String>,
}

// --- threads ---

/// One message's place in a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadMemberRecord {
    pub message_id: String,
    pub inbox_id: String,
    pub thread_id: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    pub subject: Option<String>,
    pub participants: Vec<String>,
    pub at: Timestamp,
}

/// A conversation as listed: its members aggregated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadRecord {
    pub thread_id: String,
    pub inbox_id: String,
    /// The first message's subject.
    pub subject: Option<String>,
    pub participants: Vec<String>,
    pub message_count: i64,
    pub first_at: Timestamp,
    pub last_at: Timestamp,
}

/// A message about to join a thread (see `crate::thread` for the rules).
pub(crate) struct ThreadJoin<'a> {
    pub message_id: &'a str,
    pub account_id: &'a str,
    pub inbox_id: &'a str,
    pub direction: &'static str,
    pub subject: Option<&'a str>,
    pub keys: &'a crate::thread::ThreadKeys,
    /// The inbox's address: left out of participants, since every message has it.
    pub own_address: &'a str,
    pub at: Timestamp,
}

impl ThreadJoin<'_> {
    /// References tried, at most: a long References list cannot make a join slow.
    pub const MAX_REFS: usize = 20;

    pub fn participants(&self) -> String {
        others(&self.keys.participants, self.own_address)
    }

    /// The oldest time a subject match may have.
    pub fn window_start(&self) -> i64 {
        self.at.0 - crate::thread::SUBJECT_WINDOW.as_millis() as i64
    }

    /// Whether a candidate found by subject shares a participant.
    pub fn shares_participant(&self, candidate: &str) -> bool {
        let mine = self.participants();
        let mine: Vec<&str> = mine.split_whitespace().collect();
        candidate.split_whitespace().any(|p| mine.contains(&p))
    }
}

/// The participants column: space-separated addresses, deduplicated in first-seen order.
pub(crate) fn split_participants(joined: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in joined.split_whitespace() {
        if !out.iter().any(|o| o == p) {
            out.push(p.to_owned());
        }
    }
    out
}

/// Participants worth matching on: everyone but the inbox itself.
pub(crate) fn others(participants: &[String], own_address: &str) -> String {
    participants
        .iter()
        .filter(|p| !p.eq_ignore_ascii_case(own_address))
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

// --- sending ---

/// Where a queued recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
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
            Status::Queued => "queued",
            Status::Deferred => "deferred",
            Status::Delivered => "delivered",
            Status::Bounced => "bounced",
            Status::Expired => "expired",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Status {
        match text {
            "queued" => Status::Queued,
            "deferred" => Status::Deferred,
            "delivered" => Status::Delivered,
            "bounced" => Status::Bounced,
            "expired" => Status::Expired,
            _ => Status::Cancelled,
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(self, Status::Queued | Status::Deferred)
    }
}

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
    pub summary: String,
    pub parsed: String,
    /// Where the message joins a conversation of its inbox.
    pub thread: crate::thread::ThreadKeys,
    pub recipients: Vec<NewRecipient>,
    /// (key, hash of the request): the enqueue fails with `Conflict` if the key is taken.
    pub idempotency: Option<(String, Vec<u8>)>,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientRecord {
    pub id: String,
    pub address: String,
    pub status: Status,
    pub attempts: Vec<AttemptRecord>,
    pub next_attempt_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRecord {
    pub id: String,
    pub account_id: String,
    pub inbox_id: String,
    pub blob_id: String,
    pub return_path: String,
    pub created_at: Timestamp,
    pub size: i64,
    pub summary: String,
    pub parsed: String,
    pub recipients: Vec<RecipientRecord>,
    pub thread_id: Option<String>,
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

// --- domains and keys ---

/// A hosted domain: the shared one (`account_id` None) or an account's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRecord {
    pub id: String,
    pub account_id: Option<String>,
    pub name: String,
    pub created_at: Timestamp,
    pub verified_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimKeyRecord {
    pub domain_id: String,
    pub selector: String,
    /// `rsa-sha256` or `ed25519-sha256`.
    pub algorithm: String,
    /// PKCS#8 DER.
    pub private_key: Vec<u8>,
    /// Base64 of the public key, as published in the `p=` tag.
    pub public_key: String,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
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
pub trait Store: Send + Sync + 'static {
    // --- accounts and tokens ---
    async fn create_account(&self, account: NewAccount) -> Result<()>;
    async fn create_invite(&self, code_hash: Vec<u8>, now: Timestamp) -> Result<()>;
    /// The live (not revoked) token with this hash.
    async fn find_token(&self, hash: Vec<u8>) -> Result<Option<TokenRecord>>;
    async fn create_token(&self, token: NewToken) -> Result<()>;
    async fn list_tokens(&self, account_id: &str) -> Result<Vec<TokenRecord>>;
    async fn revoke_token(&self, account_id: &str, token_id: &str, now: Timestamp) -> Result<bool>;

    // --- inboxes ---
    /// `Conflict` when the address is or ever was in use: addresses are never recycled.
    async fn create_inbox(&self, inbox: InboxRecord) -> Result<()>;
    async fn list_inboxes(&self, account_id: &str) -> Result<Vec<InboxRecord>>;
    async fn get_inbox(&self, account_id: &str, inbox_id: &str) -> Result<Option<InboxRecord>>;
    /// Deletes the inbox's messages; the address stays reserved.
    async fn delete_inbox(&self, account_id: &str, inbox_id: &str, now: Timestamp) -> Result<bool>;
    /// The live inbox at a canonical address.
    async fn find_inbox(&self, address: &str) -> Result<Option<InboxTarget>>;

    // --- inbound ---
    /// Stores the bytes, a copy per delivery and an ingest job, in one transaction.
    async fn accept_inbound(&self, message: InboundMessage) -> Result<()>;
    /// At start, before any worker: the ingest jobs and queue recipients this node held in an
    /// earlier run are free now (it died or stopped), without waiting out their leases. Returns
    /// how many.
    async fn resume_own_work(&self) -> Result<u64>;
    /// Leases up to `limit` ingest jobs that nobody holds at `now`, until `now + lease`, oldest
    /// first. A claimed job is held until its lease ends, so a dead node's jobs are taken over.
    /// A job never claimed is held by the node that accepted it until `created_at + lease` on a
    /// store several nodes share (PostgreSQL); on one a single node opens (SQLite) it is free.
    async fn claim_ingest(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<IngestJob>>;
    /// Makes the copies of each blob readable, in one transaction; returns the inboxes that grew.
    async fn complete_ingest(&self, done: Vec<Ingested>, now: Timestamp) -> Result<Vec<Wake>>;

    // --- reading ---
    /// Readable messages of an inbox with `seq > after`, in list order.
    async fn list_messages(
        &self,
        account_id: &str,
        inbox_id: &str,
        after: i64,
        limit: usize,
        include_quarantined: bool,
    ) -> Result<Vec<MessageRecord>>;
    async fn get_message(
        &self,
        account_id: &str,
        message_id: &str,
    ) -> Result<Option<MessageRecord>>;
    async fn get_raw(&self, account_id: &str, message_id: &str) -> Result<Option<Vec<u8>>>;
    async fn delete_message(&self, account_id: &str, message_id: &str) -> Result<bool>;

    /// The inbox's list position now: the cursor after its newest readable message.
    async fn inbox_cursor(&self, account_id: &str, inbox_id: &str) -> Result<i64>;

    // threads
    /// The inbox's conversations, most recently active first.
    async fn list_threads(
        &self,
        account_id: &str,
        inbox_id: &str,
        limit: usize,
    ) -> Result<Vec<ThreadRecord>>;
    /// A conversation's messages, oldest first (empty when it is not the account's).
    async fn thread_members(
        &self,
        account_id: &str,
        thread_id: &str,
    ) -> Result<Vec<ThreadMemberRecord>>;

    // --- sending ---
    /// Bytes, message, its recipients (and its idempotency key), in one transaction.
    async fn enqueue(&self, message: QueuedMessage) -> Result<()>;
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
    async fn get_outbound(
        &self,
        account_id: &str,
        message_id: &str,
    ) -> Result<Option<OutboundRecord>>;

    // --- domains and DKIM keys ---
    /// A custom domain claim with its first keys. `Conflict` when the account already claims it.
    async fn create_domain(&self, domain: DomainRecord, keys: Vec<DkimKeyRecord>) -> Result<()>;
    /// The shared domain's row (created, with `keys`, on first start).
    async fn ensure_shared_domain(
        &self,
        domain: DomainRecord,
        keys: Vec<DkimKeyRecord>,
    ) -> Result<DomainRecord>;
    async fn list_domains(&self, account_id: &str) -> Result<Vec<DomainRecord>>;
    async fn get_domain(&self, account_id: &str, domain_id: &str) -> Result<Option<DomainRecord>>;
    /// Marks a claim verified; `Conflict` when another account has the name verified.
    async fn verify_domain(
        &self,
        account_id: &str,
        domain_id: &str,
        now: Timestamp,
    ) -> Result<bool>;
    /// `Conflict` while inboxes live on the domain.
    async fn delete_domain(&self, account_id: &str, domain_id: &str) -> Result<bool>;
    /// The verified domain (custom or shared) of this name, if we host it.
    async fn hosted_domain(&self, name: &str) -> Result<Option<DomainRecord>>;
    /// A domain's keys, newest first, retired ones included.
    async fn dkim_keys(&self, domain_id: &str) -> Result<Vec<DkimKeyRecord>>;
    /// Adds keys for a domain and retires its older ones (rotation), in one transaction.
    async fn rotate_dkim_keys(
        &self,
        domain_id: &str,
        keys: Vec<DkimKeyRecord>,
        now: Timestamp,
    ) -> Result<()>;

    // --- events ---
    async fn list_events(
        &self,
        account_id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>>;

    // --- operators ---
    async fn queue_entries(&self, limit: usize) -> Result<Vec<QueueEntry>>;
    /// The account that sent a message (for operators, who are not that account).
    async fn outbound_owner(&self, message_id: &str) -> Result<Option<String>>;
    /// Makes a message's unfinished recipients due now; how many.
    async fn retry_now(&self, message_id: &str, now: Timestamp) -> Result<usize>;
    /// Cancels a message's unfinished recipients; how many.
    async fn cancel(&self, message_id: &str, now: Timestamp) -> Result<usize>;

    /// Waits for arrivals committed by other nodes sharing this store and passes each to `notify`.
    /// Single-node stores return at once.
    async fn follow_arrivals(&self, notify: Arc<dyn Fn(Wake) + Send + Sync>) -> Result<()>;

    /// Finishes pending writes and closes; later calls fail with `Closed`.
    async fn close(&self);
}

pub type SharedStore = Arc<dyn Store>;

/// Opens the store the configuration names: PostgreSQL when `database_url` is set, else SQLite in
/// the data directory. Migrations run before this returns.
pub async fn open(config: &crate::config::Config) -> Result<SharedStore> {
    if config.database_url.is_empty() {
        let path = config.data_dir.join("crabmail.sqlite3");
        let store = sqlite::SqliteStore::open(&path, &config.store).await?;
        Ok(Arc::new(store))
    } else {
        let store = postgres::PgStore::connect(&config.database_url, &config.store)
            .await?
            .for_node(&config.node_id());
        Ok(Arc::new(store))
    }
}
