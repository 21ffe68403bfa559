//! Allow and block list entries as stored (`account::lists` judges with them).

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub id: String,
    pub account_id: String,
    /// The account's id (every inbox) or one inbox's.
    pub scope: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// `allow` or `block`.
    pub action: String,
    /// A lower-case address or domain.
    pub pattern: String,
    pub created_at: Timestamp,
}

#[async_trait]
pub trait Lists: Send + Sync {
    /// Adds an entry; `Conflict` when the scope already lists the pattern for that direction.
    async fn add_list_entry(&self, entry: ListEntry) -> Result<()>;
    /// Every entry of an account, its inboxes' included.
    async fn list_entries(&self, account_id: &str) -> Result<Vec<ListEntry>>;
    async fn delete_list_entry(&self, account_id: &str, id: &str) -> Result<bool>;
}
