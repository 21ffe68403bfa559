//! AUTH (RFC 4954) on the submission listeners: PLAIN and LOGIN, only inside TLS. The user is an
//! inbox address or the account id; the password is a token of that account.
//!
//! Every failure counts against the client's address; `submission.max_auth_failures` of them earn
//! 421 and a cool-down (`submission.auth_cooldown`), during which its connections are refused.

use super::Role;
use super::policy::Sender;
use super::reply;
use super::session::{Flow, Session};
use super::stream::Line;
use crate::account::address::Mailbox;
use crate::account::scope::Need;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN};
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn auth(&mut self, mechanism: u64, initial: &str) -> Flow {
        if self.ctx.role != Role::Submission {
            return self.reply(reply::auth_not_enabled());
        }
        if !self.tls {
            return self.reply(reply::encryption_required());
        }
        if self.sender.is_some() {
            return self.reply(reply::already_authenticated());
        }
        if self.tx.is_some() {
            return self.reply(reply::bad_sequence(
                "AUTH not allowed during a mail transaction",
            ));
        }
        if self.ctx.auth_guard.blocked(self.peer) {
            return Flow::Close(reply::too_many_auth_failures());
        }
        let credentials = if mechanism == AUTH_PLAIN {
            let response = if initial.is_empty() {
                match self.challenge("").await {
                    Ok(r) => r,
                    Err(flow) => return flow,
                }
            } else {
                initial.to_owned()
            };
            decode(&response).and_then(|plain| {
                // authzid NUL authcid NUL passwd; the authzid, if any, must be the authcid.
                let mut parts = plain.split('\0');
                let (authz, user, pass) = (parts.next()?, parts.next()?, parts.next()?);
                (authz.is_empty() || authz == user).then(|| (user.to_owned(), pass.to_owned()))
            })
        } else if mechanism == AUTH_LOGIN {
            let user = if initial.is_empty() {
                match self.challenge("VXNlcm5hbWU6").await {
                    Ok(r) => r,
                    Err(flow) => return flow,
                }
            } else {
                initial.to_owned()
            };
            let pass = match self.challenge("UGFzc3dvcmQ6").await {
                Ok(r) => r,
                Err(flow) => return flow,
            };
            decode(&user).zip(decode(&pass))
        } else {
            return self.reply(reply::auth_mechanism_unsupported());
        };
        let Some((user, pass)) = credentials else {
            return self.reply(reply::auth_malformed());
        };
        match self.verify(&user, &pass).await {
            Ok(Some(sender)) => {
                self.ctx.auth_guard.succeeded(self.peer);
                tracing::info!(peer = %self.peer, user = %user, "smtp: authenticated");
                self.sender = Some(sender);
                self.reply(reply::auth_succeeded())
            }
            Ok(None) => {
                tracing::info!(peer = %self.peer, user = %user, "smtp: authentication failed");
                if self.ctx.auth_guard.failed(self.peer) {
                    return Flow::Close(reply::too_many_auth_failures());
                }
                self.reply(reply::auth_failed())
            }
            Err(()) => self.reply(reply::temporary_failure()),
        }
    }

    /// Sends a 334 challenge and reads the client's answer; `*` cancels.
    async fn challenge(&mut self, prompt: &'static str) -> Result<String, Flow> {
        self.io.queue(&reply::auth_challenge(prompt));
        let line = match self
            .io
            .read_line(self.ctx.limits.max_command_line, &self.limits)
            .await
        {
            Ok(Line::Command(line)) => line,
            Ok(Line::TooLong) => return Err(self.reply(reply::line_too_long())),
            Err(why) => return Err(self.interrupted(why)),
        };
        let text = String::from_utf8_lossy(&line).trim().to_owned();
        if text == "*" {
            return Err(self.reply(reply::auth_cancelled()));
        }
        Ok(text)
    }

    /// The sender these credentials make, `None` if they are wrong, `Err` if we cannot tell.
    async fn verify(&self, user: &str, token: &str) -> Result<Option<Sender>, ()> {
        let caller = match self.ctx.accounts.authenticate(token).await {
            Ok(Some(caller)) => caller,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::error!(error = %e, "smtp: token lookup failed");
                return Err(());
            }
        };
        let matches = if user == caller.account_id {
            true
        } else {
            let Ok(mailbox) = Mailbox::parse(user) else {
                return Ok(None);
            };
            match self.ctx.store.find_inbox(&mailbox.address()).await {
                Ok(Some(target)) => {
                    target.account_id == caller.account_id && caller.may_see_inbox(&target.inbox_id)
                }
                Ok(None) => false,
                Err(_) => return Err(()),
            }
        };
        // A token that may neither send nor draft cannot submit at all.
        let submits = caller.scopes.allows(Need::SendOrDraft);
        Ok((matches && submits).then_some(Sender::Account {
            may_send: caller.scopes.can_send(),
            account_id: caller.account_id,
            inbox_scope: caller.inbox_scope,
        }))
    }
}

fn decode(text: &str) -> Option<String> {
    STANDARD
        .decode(text.trim().as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}
