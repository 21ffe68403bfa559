//! MAIL FROM (RFC 5321 4.1.1.2): start a transaction, checking the declared SIZE (RFC 1870) and
//! the body type before any recipient is looked at. On submission the sender must be
//! authenticated (or trusted) and MAIL FROM must be one of its inboxes.

use super::Role;
use super::policy;
use super::reply;
use super::session::{Flow, Session, Transaction};
use smtp_proto::{MAIL_BODY_BINARYMIME, MAIL_SMTPUTF8, MailFrom};
use std::borrow::Cow;
use tokio::io::{AsyncRead, AsyncWrite};

/// RFC 5321 4.5.3.1.3: a path is at most 256 octets.
const MAX_PATH: usize = 256;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn mail(&mut self, from: MailFrom<Cow<'_, str>>) -> Flow {
        if self.helo.is_none() {
            return self.reply(reply::bad_sequence("Send HELO/EHLO first"));
        }
        if self.tx.is_some() {
            return self.reply(reply::bad_sequence("Nested MAIL command"));
        }
        if from.size > self.ctx.limits.max_message_size {
            return self.reply(reply::message_too_big());
        }
        if from.flags & MAIL_BODY_BINARYMIME != 0 {
            return self.reply(reply::unsupported_parameter("BODY=BINARYMIME"));
        }
        let address = from.address.as_ref();
        if address.len() > MAX_PATH || (!address.is_empty() && !address.contains('@')) {
            return self.reply(reply::bad_sender_address());
        }
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        if !smtputf8 && !address.is_ascii() {
            return self.reply(reply::utf8_needs_smtputf8());
        }
        let from_inbox = match (self.ctx.role, &self.sender) {
            (Role::Inbound, _) => None,
            (Role::Submission, None) => return self.reply(reply::authentication_required()),
            (Role::Submission, Some(sender)) => {
                match policy::sending_inbox(&self.ctx, sender, address).await {
                    Ok(inbox) => Some(inbox),
                    Err(refusal) => {
                        tracing::info!(peer = %self.peer, from = address, "smtp: sender refused");
                        return self.reply(refusal);
                    }
                }
            }
        };
        self.tx = Some(Transaction {
            from_inbox,
            return_path: address.to_owned(),
            smtputf8,
            recipients: Vec::new(),
            chunks: None,
        });
        self.reply(reply::sender_ok())
    }
}
