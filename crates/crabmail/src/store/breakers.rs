//! Circuit breakers as stored: each scope's pause (inbox or account), and the figures
//! `outbound::breaker` judges.

use super::*;
use crate::outbound::breaker::Metrics;

/// A paused inbox or account: new mail to send is refused until it is resumed.
#[derive(Debug, Clone, PartialEq)]
pub struct Pause {
    /// The inbox's or the account's id.
    pub scope: String,
    pub account_id: String,
    /// `hard_bounce_rate`, `deferral_storm`, or the reason the account gave its kill switch.
    pub reason: String,
    pub since: Timestamp,
    /// The figures that tripped it (a JSON object), for a breaker.
    pub metrics: Option<serde_json::Value>,
}

#[async_trait]
pub trait Breakers: Send + Sync {
    /// A scope's figures: recipients of mail that left after `sent_from` (and after the scope's
    /// last resume) and attempts after `attempts_from`.
    async fn breaker_metrics(
        &self,
        scope: QuotaScope<'_>,
        sent_from: Timestamp,
        attempts_from: Timestamp,
    ) -> Result<Metrics>;
    /// Pauses a scope that is not paused, with a `sending.paused` event in the same
    /// transaction; the event's wake-up, or None when it was paused already.
    async fn pause(
        &self,
        scope: QuotaScope<'_>,
        reason: &str,
        metrics: Option<serde_json::Value>,
        now: Timestamp,
    ) -> Result<Option<Wake>>;
    /// Resumes a paused scope (its figures start again from `now`), with a `sending.resumed`
    /// event; None when it was not paused.
    async fn resume(&self, scope: QuotaScope<'_>, now: Timestamp) -> Result<Option<Wake>>;
    /// Every paused scope of an account.
    async fn pauses(&self, account_id: &str) -> Result<Vec<Pause>>;
}

/// The event a pause or a resume writes.
pub(super) fn pause_event<'a>(
    scope: &QuotaScope<'a>,
    kind: &'static str,
    reason: Option<&str>,
    metrics: Option<&serde_json::Value>,
) -> NewEvent<'a> {
    let (scope_name, inbox_id) = match scope {
        QuotaScope::Account(_) => ("account", None),
        QuotaScope::Inbox { inbox_id, .. } => ("inbox", Some(*inbox_id)),
    };
    NewEvent {
        account_id: scope.account_id(),
        kind,
        message_id: None,
        inbox_id,
        recipient: None,
        detail: Some(serde_json::json!({
            "scope": scope_name,
            "reason": reason,
            "metrics": metrics,
        })),
    }
}
