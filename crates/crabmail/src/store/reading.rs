//! What an agent reads: its messages, their raw bytes, and conversations.

use super::*;
use crabmail_api::{ParsedMessage, SummaryContent};

/// Which messages a listing shows.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Messages held for failing DMARC (p=quarantine) too.
    pub include_quarantined: bool,
    /// Only reports of this kind (`bounce`, `complaint`, `auto_reply`), `any` report, or `none`
    /// (ordinary mail).
    pub report: Option<String>,
}

/// A readable message copy.
#[derive(Debug, Clone)]
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
    pub summary: SummaryContent,
    /// Decoded by whoever shows it (a listing does not).
    pub parsed: Json<ParsedMessage>,
    pub auth: Option<crabmail_api::AuthResults>,
    pub quarantined: bool,
    pub thread_id: Option<String>,
    /// `bounce`, `complaint` or `auto_reply` (`bounce::Kind`).
    pub report_kind: Option<String>,
    /// The recipient and the sent message a report is linked to.
    pub report_for: Option<(String, String)>,
}

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

#[async_trait]
pub trait Reading: Send + Sync {
    /// Readable messages of an inbox with `seq > after`, in list order.
    async fn list_messages(
        &self,
        account_id: &str,
        inbox_id: &str,
        after: i64,
        limit: usize,
        filter: &ListFilter,
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
}
