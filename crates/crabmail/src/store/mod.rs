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
pub mod sqlite;

use crate::clock::Timestamp;
use async_trait::async_trait;
use std::sync::Arc;

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
}

/// A stored message whose parsed view is still to be made (after a crash, or queued).
#[derive(Debug, Clone)]
pub struct IngestJob {
    pub blob_id: String,
    pub bytes: Arc<Vec<u8>>,
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
}

/// An inbox whose list grew: long-polls on it should look again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub inbox_id: String,
    pub seq: i64,
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
    async fn pending_ingest(&self, limit: usize) -> Result<Vec<IngestJob>>;
    /// Makes the copies of each blob readable, in one transaction; returns the inboxes that grew.
    async fn complete_ingest(&self, done: Vec<Ingested>) -> Result<Vec<Arrival>>;

    // --- reading ---
    /// Readable messages of an inbox with `seq > after`, in list order.
    async fn list_messages(
        &self,
        account_id: &str,
        inbox_id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>>;
    async fn get_message(
        &self,
        account_id: &str,
        message_id: &str,
    ) -> Result<Option<MessageRecord>>;
    async fn get_raw(&self, account_id: &str, message_id: &str) -> Result<Option<Vec<u8>>>;
    async fn delete_message(&self, account_id: &str, message_id: &str) -> Result<bool>;

    /// Waits for arrivals committed by other nodes sharing this store and passes each to `notify`.
    /// Single-node stores return at once.
    async fn follow_arrivals(&self, notify: Arc<dyn Fn(Arrival) + Send + Sync>) -> Result<()>;

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
        let store = postgres::PgStore::connect(&config.database_url, &config.store).await?;
        Ok(Arc::new(store))
    }
}
