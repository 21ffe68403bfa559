//! RCPT TO (RFC 5321 4.1.1.3): accept a recipient only if policy says it is ours.

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
        match policy::inbound_recipient(&self.ctx, address).await {
            Ok(target) => {
                if let Some(tx) = &mut self.tx {
                    tx.recipients.push(Accepted {
                        address: address.to_owned(),
                        target,
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
}
