//! RCPT TO (RFC 5321 4.1.1.3): on the MX, accept a recipient only if it is an inbox of ours; on
//! submission, accept any valid address the account has not suppressed.

use super::Role;
use super::policy;
use super::reply;
use super::session::{Accepted, Flow, Session};
use smtp_proto::RcptTo;
use std::borrow::Cow;
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn rcpt(&mut self, to: RcptTo<Cow<'_, str>>) -> Flow {
        let Some(tx) = &self.tx else {
            return self.reply(reply::bad_sequence("Need MAIL command"));
        };
        if tx.chunks.is_some() {
            return self.reply(reply::bad_sequence("RCPT not allowed during BDAT"));
        }
        if tx.recipients.len() >= self.ctx.limits.max_recipients {
            return self.reply(reply::too_many_recipients());
        }
        let address = to.address.as_ref();
        if !tx.smtputf8 && !address.is_ascii() {
            return self.reply(reply::utf8_needs_smtputf8());
        }
        let decision = match self.ctx.role {
            Role::Inbound => policy::inbound_recipient(&self.ctx, address)
                .await
                .map(|(target, report_for)| (Some(target), report_for)),
            Role::Submission => self
                .submission_recipient(address)
                .await
                .map(|()| (None, None)),
        };
        match decision {
            Ok((target, report_for)) => {
                if let Some(tx) = &mut self.tx {
                    tx.recipients.push(Accepted {
                        address: address.to_owned(),
                        target,
                        report_for,
                    });
                }
                self.reply(reply::recipient_ok())
            }
            Err(refusal) => {
                tracing::info!(peer = %self.peer, recipient = address, code = refusal.code, "smtp: recipient refused");
                self.reply(refusal)
            }
        }
    }

    /// Any syntactically valid address the sending account has not suppressed.
    async fn submission_recipient(&self, address: &str) -> Result<(), reply::Reply> {
        if crate::account::address::Mailbox::parse(address).is_err() {
            return Err(reply::bad_recipient_address());
        }
        let account = self
            .tx
            .as_ref()
            .and_then(|tx| tx.from_inbox.as_ref())
            .map(|i| i.account_id.clone());
        let Some(account) = account else {
            return Err(reply::bad_sequence("Need MAIL command"));
        };
        match self.ctx.outbound.suppression(&account, address).await {
            Ok(None) => Ok(()),
            Ok(Some(reason)) => {
                tracing::info!(recipient = address, reason = %reason, "smtp: suppressed recipient refused");
                Err(reply::suppressed_recipient())
            }
            Err(e) => {
                tracing::error!(error = %e, "smtp: suppression lookup failed");
                Err(reply::temporary_failure())
            }
        }
    }
}
