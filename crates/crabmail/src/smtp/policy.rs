//! What each listener accepts. The inbound MX takes mail for inboxes that exist on domains we
//! host, and nothing else: there is no relaying from it, whoever asks. Submission takes mail from
//! an authenticated account (or a trusted network) sent from one of its own inboxes, to anyone
//! not on the account's suppression list.

use super::SmtpContext;
use super::reply::{self, Reply};
use crate::account::Resolved;
use crate::store::InboxTarget;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Who is sending on a submission session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// Authenticated with a token of this account (limited to one inbox when `inbox_scope` is set).
    Account {
        account_id: String,
        inbox_scope: Option<String>,
        /// The token has the `send` scope; without it (`draft` only) mail waits for approval.
        may_send: bool,
    },
    /// A host on `submission.trusted_networks`: any hosted inbox may be the sender.
    Trusted,
}

impl Sender {
    /// Why this sender's mail from `inbox` waits for approval, if it does.
    pub fn approval_needed(&self, inbox: &InboxTarget) -> Option<&'static str> {
        match self {
            Sender::Account {
                may_send: false, ..
            } => Some("token_may_only_draft"),
            _ if inbox.approval_required => Some("inbox_requires_approval"),
            _ => None,
        }
    }

    /// Whether this sender may send as the inbox `target`.
    pub fn may_send_as(&self, target: &InboxTarget) -> bool {
        match self {
            Sender::Trusted => true,
            Sender::Account {
                account_id,
                inbox_scope,
                ..
            } => {
                *account_id == target.account_id
                    && inbox_scope.as_deref().is_none_or(|s| s == target.inbox_id)
            }
        }
    }
}

/// The inbox a MAIL FROM (or a From header address) names, if `sender` may use it.
pub async fn sending_inbox(
    ctx: &SmtpContext,
    sender: &Sender,
    address: &str,
) -> Result<InboxTarget, Reply> {
    match ctx.accounts.resolve(address).await {
        Ok(Resolved::Inbox(target)) if sender.may_send_as(&target) => Ok(target),
        Ok(_) => Err(reply::sender_not_owned()),
        Err(e) => {
            tracing::error!(error = %e, "smtp: sender lookup failed");
            Err(reply::temporary_failure())
        }
    }
}

/// Counts failed AUTH attempts per client address; too many earn a cool-down.
pub struct AuthGuard {
    max_failures: u32,
    cooldown: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Option<Instant>)>>,
}

impl AuthGuard {
    pub fn new(max_failures: u32, cooldown: Duration) -> Self {
        AuthGuard {
            max_failures: max_failures.max(1),
            cooldown,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` is cooling down after too many failures.
    pub fn blocked(&self, ip: IpAddr) -> bool {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&ip) {
            Some((_, Some(until))) if Instant::now() < *until => true,
            Some((_, Some(_))) => {
                map.remove(&ip);
                false
            }
            _ => false,
        }
    }

    /// Records a failure; true when this one starts a cool-down.
    pub fn failed(&self, ip: IpAddr) -> bool {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (_, until)| until.is_some_and(|u| Instant::now() < u));
        }
        let entry = map.entry(ip).or_insert((0, None));
        entry.0 += 1;
        if entry.0 >= self.max_failures {
            entry.1 = Some(Instant::now() + self.cooldown);
            return true;
        }
        false
    }

    pub fn succeeded(&self, ip: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ip);
    }
}

/// The inbox a RCPT TO address leads to (with the recipient of ours a signed return path names),
/// or the refusal to send.
pub async fn inbound_recipient(
    ctx: &SmtpContext,
    address: &str,
) -> Result<(InboxTarget, Option<String>), Reply> {
    match ctx.accounts.resolve(address).await {
        Ok(Resolved::Inbox(target)) => Ok((target, None)),
        Ok(Resolved::ReturnPath {
            target,
            recipient_id,
        }) => Ok((target, Some(recipient_id))),
        Ok(Resolved::NoSuchInbox) => Err(reply::unknown_user()),
        Ok(Resolved::NotHosted) => Err(reply::relay_denied()),
        Ok(Resolved::Invalid) => Err(reply::bad_recipient_address()),
        Err(e) => {
            tracing::error!(error = %e, "smtp: recipient lookup failed");
            Err(reply::temporary_failure())
        }
    }
}
