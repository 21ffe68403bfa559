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

mod accounts;
mod approvals;
mod breakers;
mod domains;
mod events;
mod inbound;
mod lists;
mod operator;
pub mod postgres;
mod queue;
mod quotas;
mod reading;
mod rows;
mod sending;
mod sql;
pub mod sqlite;
mod uploads;
mod webhooks;
pub use accounts::*;
pub use approvals::*;
pub use breakers::*;
pub use domains::*;
pub use events::*;
pub use inbound::*;
pub use lists::*;
pub use operator::*;
pub use queue::*;
pub use quotas::*;
pub use reading::*;
pub use sending::*;
pub use uploads::*;
pub use webhooks::*;

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

/// A value the store keeps as JSON, with its type: made where the value is (`encode`, on the
/// ingest workers rather than on the store's one writer), read back only where it is needed
/// (`decode`; a listing need not decode every message's parsed view). JSON that does not decode
/// is an error, never a default.
pub struct Json<T> {
    text: String,
    kind: std::marker::PhantomData<fn() -> T>,
}

impl<T: serde::Serialize + serde::de::DeserializeOwned> Json<T> {
    pub fn encode(value: &T) -> Json<T> {
        Json::stored(rows::json_text(value))
    }

    pub fn decode(&self) -> Result<T> {
        serde_json::from_str(&self.text)
            .map_err(|e| StoreError::Unavailable(format!("stored JSON does not decode: {e}")))
    }
}

impl<T> Json<T> {
    /// Text as the store holds it.
    pub(crate) fn stored(text: String) -> Json<T> {
        Json {
            text,
            kind: std::marker::PhantomData,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl<T> Clone for Json<T> {
    fn clone(&self) -> Self {
        Json::stored(self.text.clone())
    }
}

impl<T> std::fmt::Debug for Json<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Json({} bytes)", self.text.len())
    }
}

// --- threads ---

// --- sending ---

// --- domains and keys ---

/// Every role together: what the server holds as its store.
#[async_trait]
pub trait Store:
    Accounts
    + Inbound
    + Reading
    + Sending
    + Quotas
    + Breakers
    + Approvals
    + Lists
    + Queue
    + Domains
    + Events
    + Webhooks
    + Uploads
    + Operator
    + Send
    + Sync
    + 'static
{
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
