//! Accounts, their tokens and inboxes, and which inbox an address reaches.

use super::*;

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
    /// Space-separated scopes; None: all of them.
    pub scopes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub account_id: String,
    pub inbox_id: Option<String>,
    pub name: Option<String>,
    pub created_at: Timestamp,
    /// Space-separated scopes; None: all of them.
    pub scopes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRecord {
    pub id: String,
    pub account_id: String,
    pub address: String,
    pub display_name: Option<String>,
    pub created_at: Timestamp,
    /// Mail it sends waits for approval.
    pub approval_required: bool,
}

/// Where a recipient address leads: the inbox and its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxTarget {
    pub inbox_id: String,
    pub account_id: String,
    /// Mail the inbox sends waits for approval (read with the inbox for SMTP submission).
    pub approval_required: bool,
}

#[async_trait]
pub trait Accounts: Send + Sync {
    async fn create_account(&self, account: NewAccount) -> Result<()>;
    async fn create_invite(&self, code_hash: Vec<u8>, now: Timestamp) -> Result<()>;
    /// The live (not revoked) token with this hash.
    async fn find_token(&self, hash: Vec<u8>) -> Result<Option<TokenRecord>>;
    async fn create_token(&self, token: NewToken) -> Result<()>;
    async fn list_tokens(&self, account_id: &str) -> Result<Vec<TokenRecord>>;
    async fn revoke_token(&self, account_id: &str, token_id: &str, now: Timestamp) -> Result<bool>;
    /// `Conflict` when the address is or ever was in use: addresses are never recycled.
    async fn create_inbox(&self, inbox: InboxRecord) -> Result<()>;
    async fn list_inboxes(&self, account_id: &str) -> Result<Vec<InboxRecord>>;
    async fn get_inbox(&self, account_id: &str, inbox_id: &str) -> Result<Option<InboxRecord>>;
    /// Deletes the inbox's messages; the address stays reserved.
    async fn delete_inbox(&self, account_id: &str, inbox_id: &str, now: Timestamp) -> Result<bool>;
    /// The live inbox at a canonical address.
    async fn find_inbox(&self, address: &str) -> Result<Option<InboxTarget>>;
}
