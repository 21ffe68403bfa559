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
mod domains;
mod events;
mod inbound;
pub mod postgres;
mod queue;
mod reading;
mod rows;
mod sending;
mod sql;
pub mod sqlite;
pub use accounts::*;
pub use domains::*;
pub use events::*;
pub use inbound::*;
pub use queue::*;
pub use reading::*;
pub use sending::*;

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

// --- threads ---

// --- sending ---

// --- domains and keys ---

/// Every role together: what the server holds as its store.
#[async_trait]
pub trait Store:
    Accounts + Inbound + Reading + Sending + Queue + Domains + Events + Send + Sync + 'static
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
