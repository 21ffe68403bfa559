//! DATA (RFC 5321 4.1.1.4) and BDAT (RFC 3030): take the body, refuse it whole if it breaks a
//! rule, else commit it and only then reply 250.
//!
//! The reply to a body always comes after the client finished sending it, so the session stays in
//! step whatever the outcome. The transaction ends with the body, accepted or not.
//!
//! On the MX the body goes into the recipients' inboxes; on submission it is queued for delivery,
//! once its From header proves to be an inbox of the sender (RFC 6409 8: Date and Message-ID are
//! added when missing).

use super::Role;
use super::body::{self, BodyError, DataReader};
use super::policy;
use super::reply::{self, Reply};
use super::session::{Chunks, Flow, Session, Transaction};
use crate::account::address::Domain;
use crate::account::lists;
use crate::id;
use crate::ingest::accept::CopyFate;
use crate::ingest::accept::{self, Copies};
use crate::outbound::{SubmitError, quota};
use crate::store::Envelope;
use crate::verify::Action;
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn data(&mut self) -> Flow {
        match &self.tx {
            None => return self.reply(reply::bad_sequence("Need MAIL command")),
            Some(tx) if tx.chunks.is_some() => {
                return self.reply(reply::bad_sequence("DATA not allowed after BDAT"));
            }
            Some(tx) if tx.recipients.is_empty() => {
                return self.reply(reply::no_valid_recipients());
            }
            Some(_) => {}
        }
        self.io.queue(&reply::start_data());
        let limits = &self.ctx.limits;
        let mut reader = DataReader::new(
            limits.max_message_size,
            limits.max_line_length,
            limits.bare_newline,
        );
        if let Err(why) = self.io.read_body(&mut reader, &self.limits).await {
            return self.interrupted(why);
        }
        let Some(tx) = self.tx.take() else {
            return self.reply(reply::bad_sequence("Need MAIL command"));
        };
        match reader.finish() {
            Ok(body) => {
                let outcome = self.accept(tx, body).await;
                self.reply(outcome)
            }
            Err(why) => self.refuse_body(why),
        }
    }

    pub(super) async fn bdat(&mut self, size: usize, last: bool) -> Flow {
        let max_size = self.ctx.limits.max_message_size;
        // The chunk is read whatever happens next: its bytes are not commands.
        let ready = matches!(&self.tx, Some(tx) if !tx.recipients.is_empty());
        let mut chunk_error = None;
        let tx = self.tx.as_mut().filter(|_| ready);
        let chunks = tx.map(|tx| {
            tx.chunks.get_or_insert_with(|| Chunks {
                body: Vec::new(),
                too_big: false,
            })
        });
        let read = match chunks {
            Some(chunks) => {
                self.io
                    .read_chunk(size, &self.limits, |piece| {
                        if chunks.too_big || chunks.body.len() + piece.len() > max_size {
                            chunks.too_big = true;
                        } else {
                            chunks.body.extend_from_slice(piece);
                        }
                    })
                    .await
            }
            None => {
                chunk_error = Some(match &self.tx {
                    None => reply::bad_sequence("Need MAIL command"),
                    Some(_) => reply::no_valid_recipients(),
                });
                self.io.read_chunk(size, &self.limits, |_| {}).await
            }
        };
        if let Err(why) = read {
            return self.interrupted(why);
        }
        if let Some(refusal) = chunk_error {
            return self.reply(refusal);
        }
        if !last {
            return self.reply(reply::chunk_received(size));
        }
        let Some(mut tx) = self.tx.take() else {
            return self.reply(reply::bad_sequence("Need MAIL command"));
        };
        let Some(chunks) = tx.chunks.take() else {
            return self.reply(reply::bad_sequence("Need MAIL command"));
        };
        if chunks.too_big {
            return self.refuse_body(BodyError::TooBig);
        }
        let limits = &self.ctx.limits;
        let body =
            match body::check_chunked(chunks.body, limits.max_line_length, limits.bare_newline) {
                Ok(body) => body,
                Err(why) => return self.refuse_body(why),
            };
        let outcome = self.accept(tx, body).await;
        self.reply(outcome)
    }

    fn refuse_body(&mut self, why: BodyError) -> Flow {
        tracing::info!(peer = %self.peer, reason = ?why, "smtp: message refused");
        self.reply(match why {
            BodyError::TooBig => reply::message_too_big(),
            BodyError::BareLineEnding => reply::bare_line_ending(),
            BodyError::LineTooLong => reply::data_line_too_long(self.ctx.limits.max_line_length),
        })
    }

    async fn accept(&mut self, tx: Transaction, body: Vec<u8>) -> Reply {
        match self.ctx.role {
            Role::Inbound => self.receive(tx, body).await,
            Role::Submission => self.submit(tx, body).await,
        }
    }

    /// Queues a submitted message for delivery and answers for it.
    async fn submit(&mut self, tx: Transaction, body: Vec<u8>) -> Reply {
        let (Some(sender), Some(from_inbox)) = (self.sender.clone(), tx.from_inbox.clone()) else {
            return reply::bad_sequence("Need MAIL command");
        };
        let Some(headers) = mail_parser::MessageParser::default().parse_headers(&body) else {
            return reply::from_header_not_owned();
        };
        let from: Vec<String> = headers
            .from()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.address().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if from.is_empty() {
            return reply::from_header_not_owned();
        }
        for address in &from {
            match policy::sending_inbox(&self.ctx, &sender, address).await {
                Ok(inbox) if inbox.account_id == from_inbox.account_id => {}
                Ok(_) => return reply::from_header_not_owned(),
                Err(refusal) if refusal.code == 451 => return refusal,
                Err(_) => {
                    tracing::info!(peer = %self.peer, from = %address, "smtp: forged From header refused");
                    return reply::from_header_not_owned();
                }
            }
        }
        let now = self.ctx.clock.now();
        let mut added = String::new();
        if headers.date().is_none() {
            added.push_str(&format!("Date: {}\r\n", now.to_rfc5322()));
        }
        if headers.message_id().is_none() {
            let domain = Domain::of(&tx.return_path);
            let domain = domain.as_deref().unwrap_or(&self.ctx.hostname);
            added.push_str(&format!(
                "Message-ID: <{}@{domain}>\r\n",
                id::new_id(id::SUBMISSION, now)
            ));
        }
        let body = if added.is_empty() {
            body
        } else {
            let mut with = added.into_bytes();
            with.extend_from_slice(&body);
            with
        };
        let recipients: Vec<String> = tx.recipients.into_iter().map(|r| r.address).collect();
        let held_for = sender.approval_needed(&from_inbox);
        let submitted = self
            .ctx
            .outbound
            .submit(
                &from_inbox.account_id,
                &from_inbox.inbox_id,
                &tx.return_path,
                recipients,
                body,
                held_for,
            )
            .await;
        if submitted.is_ok() {
            crate::metrics::count(
                "crabmail_messages_accepted_total",
                &[("path", "submission")],
            );
        }
        match submitted {
            // DURABILITY: committed (queued) before the 250 reply.
            Ok(accepted) if accepted.held_for.is_some() => reply::awaiting_approval(&accepted.id),
            Ok(accepted) if accepted.is_held() => reply::held(
                &accepted.id,
                &quota::describe(accepted.held_by.as_ref()),
                &accepted.release_at.to_rfc3339(),
            ),
            Ok(accepted) => reply::queued(&accepted.id),
            Err(SubmitError::TooLarge { .. }) => reply::message_too_big(),
            Err(SubmitError::OverQuota { hit, release, now }) => reply::over_quota(
                &quota::describe(hit.as_ref()),
                now.until(release).as_secs_f64().ceil() as u64,
            ),
            Err(SubmitError::NeverFits { hit, .. }) => reply::over_daily_recipients(hit.limit),
            Err(SubmitError::Paused { scope, reason, .. }) => reply::sending_paused(scope, &reason),
            Err(SubmitError::RecipientBlocked { .. }) => reply::recipient_blocked(),
            Err(e) => {
                tracing::error!(peer = %self.peer, error = %e, "smtp: submission not queued");
                reply::temporary_failure()
            }
        }
    }

    /// Each recipient inbox's inbound lists on the sender (the From address when authentication
    /// proves it): a copy they do not accept is quarantined, or dropped under
    /// `lists.inbound_blocked = reject`. False when no copy is left.
    async fn apply_lists(
        &self,
        copies: &mut Copies,
        auth: Option<&crabmail_api::AuthResults>,
        return_path: &str,
        body: &[u8],
    ) -> Result<bool, crate::store::StoreError> {
        let mut entries = Vec::new();
        for account in copies.accounts() {
            entries.extend(self.ctx.accounts.lists().of(account).await?.iter().cloned());
        }
        if !entries.iter().any(|e| e.direction == "inbound") {
            return Ok(true);
        }
        let from = mail_parser::MessageParser::default()
            .parse_headers(body)
            .and_then(|h| {
                h.from()
                    .and_then(|a| a.first())
                    .and_then(|m| m.address())
                    .map(str::to_ascii_lowercase)
            })
            .unwrap_or_default();
        let proven = lists::authenticated_from(auth, &from);
        let unproven = [from.as_str(), return_path];
        let reject = self.ctx.blocked_inbound == crate::config::BlockedInbound::Reject;
        copies.decide(|copy| {
            let verdict = lists::judge(
                &entries,
                &copy.inbox_id,
                lists::Direction::Inbound,
                proven,
                &unproven,
            );
            match (verdict.passes(), reject) {
                (true, _) => CopyFate::Keep,
                (false, false) => CopyFate::Quarantine,
                (false, true) => CopyFate::Drop,
            }
        });
        Ok(!copies.is_empty())
    }

    /// Commits the message (bytes, a copy per inbox, an ingest job) and answers for it.
    async fn receive(&mut self, tx: Transaction, body: Vec<u8>) -> Reply {
        let helo = self.helo.clone().unwrap_or_default();
        let verdict = match &self.ctx.verifier {
            Some(verifier) => Some(
                verifier
                    .verify(self.peer, &helo, &tx.return_path, &body)
                    .await,
            ),
            None => None,
        };
        if let Some(v) = verdict.as_ref().filter(|v| v.action == Action::Reject) {
            tracing::info!(peer = %self.peer, from = %tx.return_path, domain = %v.results.dmarc.domain, "smtp: refused by the sender's DMARC policy");
            return reply::dmarc_reject(&v.results.dmarc.domain);
        }
        // The stored copy starts with our Authentication-Results; the bytes after it are exactly
        // the ones received.
        let (body, auth, quarantined) = match verdict {
            Some(v) => {
                let mut stored = v.header.into_bytes();
                stored.extend_from_slice(&body);
                (stored, Some(v.results), v.action == Action::Quarantine)
            }
            None => (body, None, false),
        };
        let now = self.ctx.clock.now();
        let mut copies = Copies::default();
        for rcpt in tx.recipients {
            match (rcpt.target, rcpt.report_for) {
                (Some(target), Some(recipient_id)) => {
                    copies.add_report(target, &rcpt.address, recipient_id, now)
                }
                (Some(target), None) => copies.add(target, &rcpt.address, now),
                (None, _) => {}
            }
        }
        match self
            .apply_lists(&mut copies, auth.as_ref(), &tx.return_path, &body)
            .await
        {
            Ok(true) => {}
            Ok(false) => return reply::sender_not_accepted(),
            Err(e) => {
                tracing::error!(peer = %self.peer, error = %e, "smtp: cannot read the inboxes' lists");
                return reply::temporary_failure();
            }
        }
        let envelope = Envelope {
            return_path: tx.return_path,
            remote_ip: self.peer.to_string(),
            helo,
            tls: self.tls,
        };
        let message = accept::accept(body, envelope, copies, auth, quarantined, now);
        let job = accept::job(&message);
        let blob_id = message.blob_id.clone();
        // The ids the API knows the message by, one per inbox it reached.
        let ids: Vec<String> = message
            .deliveries
            .iter()
            .map(|d| d.message_id.clone())
            .collect();
        match self.ctx.store.accept_inbound(message).await {
            Ok(()) => {
                // DURABILITY: committed before the 250 reply.
                self.ctx.ingest.push(job);
                crate::metrics::count("crabmail_messages_accepted_total", &[("path", "mx")]);
                tracing::debug!(peer = %self.peer, blob = %blob_id, "smtp: message accepted");
                reply::queued(&ids.join(" "))
            }
            Err(e) => {
                tracing::error!(peer = %self.peer, error = %e, "smtp: store failed; message not accepted");
                reply::temporary_failure()
            }
        }
    }
}
