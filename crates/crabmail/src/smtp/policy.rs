//! What the inbound MX accepts: mail for inboxes that exist on domains we host, and nothing else.
//! There is no relaying from this listener, whoever asks.

use super::SmtpContext;
use super::reply::{self, Reply};
use crate::account::address::Mailbox;
use crate::store::InboxTarget;

/// The inbox a RCPT TO address leads to, or the refusal to send.
pub async fn inbound_recipient(ctx: &SmtpContext, address: &str) -> Result<InboxTarget, Reply> {
    let mailbox = Mailbox::parse(address).map_err(|_| reply::bad_recipient_address())?;
    if !ctx.accounts.hosts_domain(&mailbox.domain) {
        return Err(reply::relay_denied());
    }
    match ctx.store.find_inbox(&mailbox.address()).await {
        Ok(Some(target)) => Ok(target),
        Ok(None) => Err(reply::unknown_user()),
        Err(e) => {
            tracing::error!(error = %e, "smtp: recipient lookup failed");
            Err(reply::temporary_failure())
        }
    }
}
