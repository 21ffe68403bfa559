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
