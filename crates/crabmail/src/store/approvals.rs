//! Mail waiting for approval: listed, approved (then counted against its quotas and queued, as
//! if sent at that moment) or rejected (cancelled, never sent).

use super::*;

/// The decision on a held message.
#[derive(Debug, Clone, PartialEq)]
pub enum Approved {
    /// Queued (or refused by a quota the approver asked to be refused by, a pause, ...): as
    /// `Sending::enqueue` says.
    Decided(Enqueued),
    /// No held message of this account has that id (never held, or decided already).
    NotHeld,
}

#[async_trait]
pub trait Approvals: Send + Sync {
    /// The account's messages waiting for approval, oldest first.
    async fn held_messages(&self, account_id: &str, limit: usize) -> Result<Vec<String>>;
    /// Releases a held message to the queue under its quotas (`check`) at `now`, with a
    /// `message.approved` event; the event's wake-up comes back when it was queued.
    async fn approve(
        &self,
        account_id: &str,
        message_id: &str,
        check: QuotaCheck,
        now: Timestamp,
    ) -> Result<(Approved, Option<Wake>)>;
    /// Whether an inbox's mail to send waits for approval; false when there is no such inbox.
    async fn set_approval_required(
        &self,
        account_id: &str,
        inbox_id: &str,
        required: bool,
    ) -> Result<bool>;
    /// Cancels a held message, with a `message.rejected` event; None when nothing was held.
    async fn reject(
        &self,
        account_id: &str,
        message_id: &str,
        now: Timestamp,
    ) -> Result<Option<Wake>>;
}
