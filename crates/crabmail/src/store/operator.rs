//! What the operator does to accounts (`crabmail admin`): look at them and their usage, disable
//! and enable them, replace their tokens.

use super::*;

/// An account as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountUsage {
    pub id: String,
    pub created_at: Timestamp,
    /// Its tokens do not work while this is set.
    pub disabled_at: Option<Timestamp>,
    pub inboxes: i64,
    /// Readable received messages (every inbox copy).
    pub received: i64,
    pub sent: i64,
    /// Live tokens.
    pub tokens: i64,
}

/// One delivery attempt, newest first, for the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentAttempt {
    pub attempt: AttemptRecord,
    pub message_id: String,
    pub account_id: String,
    pub address: String,
}

/// A received message's risk, for the console's distribution.
#[derive(Debug, Clone)]
pub struct RecentRisk {
    pub message_id: String,
    pub account_id: String,
    pub received_at: Timestamp,
    pub subject: Option<String>,
    pub security: Option<crabmail_api::Security>,
}

#[async_trait]
pub trait Operator: Send + Sync {
    /// Accounts, oldest first, with what they hold and did.
    async fn account_usage(&self, limit: usize) -> Result<Vec<AccountUsage>>;
    /// One account's usage; None when there is no such account.
    async fn one_account_usage(&self, account_id: &str) -> Result<Option<AccountUsage>>;
    /// Disables (`Some(when)`) or enables (`None`) an account; false when there is none.
    async fn set_account_disabled(
        &self,
        account_id: &str,
        disabled: Option<Timestamp>,
    ) -> Result<bool>;
    /// Revokes every live token of the account and adds `token`, in one transaction; returns how
    /// many were revoked.
    async fn replace_tokens(&self, token: NewToken, now: Timestamp) -> Result<u64>;
    /// The latest delivery attempts across accounts, newest first.
    async fn recent_attempts(&self, limit: usize) -> Result<Vec<RecentAttempt>>;
    /// Every account's suppressions, newest first.
    async fn all_suppressions(&self, limit: usize) -> Result<Vec<Suppression>>;
    /// The latest readable received messages with their risk, newest first.
    async fn recent_risk(&self, limit: usize) -> Result<Vec<RecentRisk>>;
    /// Every domain, shared and claimed, verified or not, oldest first.
    async fn all_domains(&self, limit: usize) -> Result<Vec<DomainRecord>>;
    /// Every live inbox, by account, oldest first.
    async fn all_inboxes(&self, limit: usize) -> Result<Vec<InboxRecord>>;
}
