//! One SMTP conversation, generic over its stream so it runs the same over TCP, over TLS and over
//! an in-memory pipe in tests. The state is explicit: greeted or not (`helo`), and at most one
//! mail transaction (`Transaction`) with its accepted recipients and, for BDAT, its chunks.
//!
//! Commands are parsed by `smtp-proto`, one line at a time, so pipelined groups work; each command
//! lives in a file of its own next to this one. A session ends on QUIT, when the client goes away,
//! on a timeout (421 4.4.2), on too many errors (421 4.7.0), at shutdown (421 4.3.2), or hands its
//! stream back for STARTTLS.

use super::SmtpContext;
use super::policy::Sender;
use super::reply::{self, Reply};
use super::stream::{Deadlines, Interrupted, Line, SmtpStream};
use crate::store::InboxTarget;
use smtp_proto::Request;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// How a session ended.
pub enum Ending<S> {
    Done,
    /// The client asked for STARTTLS and got 220: continue over TLS on this stream.
    StartTls(S),
}

/// What the session loop does after a command.
pub(super) enum Flow {
    Continue,
    Quit,
    StartTls,
    /// Send this reply and close.
    Close(Reply),
}

/// One accepted recipient of the current transaction.
pub(super) struct Accepted {
    pub address: String,
    /// The inbox it reaches (inbound); none for submission, where recipients are anywhere.
    pub target: Option<InboxTarget>,
    /// A signed return path: the recipient of ours it reports on.
    pub report_for: Option<String>,
}

/// A mail transaction: from MAIL to the end of DATA (or the last BDAT chunk), or RSET.
pub(super) struct Transaction {
    pub return_path: String,
    /// Submission: the inbox MAIL FROM named, which the sender owns.
    pub from_inbox: Option<InboxTarget>,
    pub smtputf8: bool,
    pub recipients: Vec<Accepted>,
    /// Set once a BDAT chunk came in.
    pub chunks: Option<Chunks>,
}

pub(super) struct Chunks {
    pub body: Vec<u8>,
    pub too_big: bool,
}

pub struct Session<S> {
    pub(super) io: SmtpStream<S>,
    pub(super) ctx: Arc<SmtpContext>,
    pub(super) peer: IpAddr,
    pub(super) tls: bool,
    pub(super) helo: Option<String>,
    pub(super) tx: Option<Transaction>,
    pub(super) limits: Deadlines,
    /// Submission: who is sending, once authenticated (or trusted by network).
    pub(super) sender: Option<Sender>,
    errors: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub fn new(
        stream: S,
        ctx: Arc<SmtpContext>,
        peer: IpAddr,
        tls: bool,
        limits: Deadlines,
    ) -> Self {
        let trusted = ctx.trusted_networks.iter().any(|n| n.contains(peer));
        Session {
            sender: trusted.then_some(Sender::Trusted),
            io: SmtpStream::new(stream),
            ctx,
            peer,
            tls,
            helo: None,
            tx: None,
            limits,
            errors: 0,
        }
    }

    /// Runs the conversation. `greet` is false after STARTTLS, where no new 220 is sent.
    pub async fn run(mut self, greet: bool) -> Ending<S> {
        if greet {
            self.io.queue(&reply::greeting(&self.ctx.hostname));
        }
        loop {
            let flow = match self
                .io
                .read_line(self.ctx.limits.max_command_line, &self.limits)
                .await
            {
                Ok(Line::Command(line)) => self.command(&line).await,
                Ok(Line::TooLong) => self.reply(reply::line_too_long()),
                Err(why) => self.interrupted(why),
            };
            match flow {
                Flow::Continue => {}
                Flow::Quit => {
                    self.io.send_and_close(&reply::bye()).await;
                    return Ending::Done;
                }
                Flow::StartTls => {
                    if self.io.flush().await.is_err() {
                        return Ending::Done;
                    }
                    return Ending::StartTls(self.io.into_inner());
                }
                Flow::Close(last) => {
                    self.io.send_and_close(&last).await;
                    return Ending::Done;
                }
            }
        }
    }

    async fn command(&mut self, line: &[u8]) -> Flow {
        // RFC 5321 4.5.1: `RCPT TO:<Postmaster>` without a domain must be accepted; it is the
        // postmaster of our shared domain.
        let with_domain = bare_postmaster(line, self.ctx.domain());
        let line = with_domain.as_deref().unwrap_or(line);
        let request = match Request::parse(&mut line.iter()) {
            Ok(request) => request,
            Err(e) => return self.reply(parse_error(e)),
        };
        match request {
            Request::Ehlo { host } => self.ehlo(&host, true),
            Request::Helo { host } => self.ehlo(&host, false),
            // A SIZE too large for a number is larger than any limit; the parser reads it as 0.
            Request::Mail { .. } if declares_absurd_size(line) => {
                self.reply(reply::message_too_big())
            }
            Request::Mail { from } => self.mail(from).await,
            Request::Rcpt { to } => self.rcpt(to).await,
            Request::Data => self.data().await,
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size, is_last).await,
            Request::Rset => {
                self.tx = None;
                self.reply(reply::ok())
            }
            Request::Noop { .. } => self.reply(reply::ok()),
            Request::Quit => Flow::Quit,
            Request::Help { .. } => self.reply(reply::help()),
            Request::Vrfy { .. } => self.reply(reply::vrfy()),
            Request::StartTls => self.starttls(),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, &initial_response).await,
            Request::Lhlo { .. }
            | Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => self.reply(reply::not_implemented()),
        }
    }

    /// Queues a reply; permanent failures count towards `smtp.max_errors`.
    pub(super) fn reply(&mut self, reply: Reply) -> Flow {
        let code = reply.code.to_string();
        crate::metrics::count(
            "crabmail_smtp_replies_total",
            &[("role", self.ctx.role.name()), ("code", &code)],
        );
        if reply.closes_connection() {
            return Flow::Close(reply);
        }
        if reply.code >= 500 {
            self.errors += 1;
            if self.errors > self.ctx.limits.max_errors {
                tracing::info!(peer = %self.peer, "smtp: too many errors");
                return Flow::Close(reply::too_many_errors());
            }
        }
        self.io.queue(&reply);
        Flow::Continue
    }

    pub(super) fn interrupted(&mut self, why: Interrupted) -> Flow {
        match why {
            Interrupted::Closed => Flow::Close(reply::bye()),
            Interrupted::TimedOut => Flow::Close(reply::timeout()),
            Interrupted::ShuttingDown => Flow::Close(reply::shutting_down()),
        }
    }
}

fn parse_error(e: smtp_proto::Error) -> Reply {
    use smtp_proto::Error;
    match e {
        Error::UnknownCommand => reply::unknown_command(),
        Error::InvalidSenderAddress => reply::bad_sender_address(),
        Error::InvalidRecipientAddress => reply::bad_recipient_address(),
        Error::SyntaxError { syntax } => reply::syntax(syntax),
        Error::InvalidParameter { param } => reply::unsupported_parameter(param),
        Error::UnsupportedParameter { param } => reply::unsupported_parameter(&param),
        Error::ResponseTooLong => reply::line_too_long(),
        Error::NeedsMoreData { .. } | Error::InvalidResponse { .. } => {
            reply::syntax("command not understood")
        }
    }
}

/// Whether a MAIL command declares `SIZE=` with more digits than any size we could accept.
fn declares_absurd_size(line: &[u8]) -> bool {
    let upper = line.to_ascii_uppercase();
    let Some(at) = memchr::memmem::find(&upper, b" SIZE=") else {
        return false;
    };
    let digits = upper[at + 6..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    // 20 digits already exceed u64; sizes we accept have at most 10.
    digits > 18
}

/// `RCPT TO:<postmaster>` (any case, parameters kept) as `RCPT TO:<postmaster@domain>`.
fn bare_postmaster(line: &[u8], domain: &str) -> Option<Vec<u8>> {
    let upper = line.to_ascii_uppercase();
    let rest = upper.strip_prefix(b"RCPT TO:")?;
    let spaces = rest.iter().take_while(|b| **b == b' ').count();
    let tail = rest[spaces..].strip_prefix(b"<POSTMASTER>")?;
    let tail = &line[line.len() - tail.len()..];
    let mut out = format!("RCPT TO:<postmaster@{domain}>").into_bytes();
    out.extend_from_slice(tail);
    Some(out)
}
