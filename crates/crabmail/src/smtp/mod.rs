//! The SMTP server: one listener per role, one task per connection, one `Session` per
//! conversation. Two roles share the code: the inbound MX (mail for hosted inboxes only, never a
//! relay) and submission (authenticated accounts sending from their own inboxes, on 587 with
//! STARTTLS and 465 with implicit TLS).
//!
//! Connections over `smtp.max_connections` in total, or `smtp.max_connections_per_ip` from one
//! address, get 421 4.7.0 at once. At shutdown the listener stops accepting and every session
//! answers 421 4.3.2 at its next read; a commit in progress completes first.

mod auth;
mod body;
mod data;
mod ehlo;
mod mail;
pub mod policy;
mod rcpt;
pub mod reply;
mod session;
mod starttls;
mod stream;
pub mod tls;

use crate::account::Accounts;
use crate::clock::SharedClock;
use crate::config::SmtpConfig;
use crate::gate::ConnectionGate;
use crate::ingest::IngestQueue;
use crate::outbound::Outbound;
use crate::store::SharedStore;
pub use session::{Ending, Session};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
pub use stream::Deadlines;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest TLS handshake we wait for.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a listener is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Port 25: mail for inboxes we host.
    Inbound,
    /// Ports 587 and 465: mail our accounts send.
    Submission,
}

impl Role {
    /// As metrics label it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Inbound => "mx",
            Role::Submission => "submission",
        }
    }
}

/// What every session of a listener shares.
#[derive(Clone)]
pub struct SmtpContext {
    pub role: Role,
    pub hostname: String,
    pub limits: SmtpConfig,
    pub accounts: Accounts,
    pub store: SharedStore,
    pub ingest: IngestQueue,
    pub clock: SharedClock,
    pub tls: Option<TlsAcceptor>,
    pub outbound: Outbound,
    pub auth_guard: Arc<policy::AuthGuard>,
    /// Checks inbound mail before it is accepted (None when `verify.enabled` is off).
    pub verifier: Option<Arc<crate::verify::Verifier>>,
    pub trusted_networks: Vec<crate::config::Network>,
    /// What the MX does with mail an inbox's lists do not accept.
    pub blocked_inbound: crate::config::BlockedInbound,
}

impl SmtpContext {
    /// The shared mail domain.
    pub fn domain(&self) -> &str {
        self.accounts.domain()
    }
}

/// Accepts connections until `shutdown`; sessions run on `tracker` so the caller can wait for them.
/// With `implicit_tls`, every connection starts with a TLS handshake (port 465).
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<SmtpContext>,
    implicit_tls: bool,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let gate = Arc::new(ConnectionGate::new(
        ctx.limits.max_connections,
        ctx.limits.max_connections_per_ip,
    ));
    while let Some((stream, peer)) = crate::gate::accept(&listener, "smtp", &shutdown).await {
        let ip = peer.ip();
        if ctx.role == Role::Submission && ctx.auth_guard.blocked(ip) {
            tracker.spawn(async move {
                let mut io = stream::SmtpStream::new(stream);
                io.send_and_close(&reply::too_many_auth_failures()).await;
            });
            continue;
        }
        match gate.admit(ip) {
            Some(pass) => {
                let ctx = ctx.clone();
                let shutdown = shutdown.clone();
                tracker.spawn(async move {
                    connection(stream, ip, ctx, implicit_tls, shutdown).await;
                    drop(pass);
                });
            }
            None => {
                tracing::info!(peer = %ip, "smtp: connection limit reached");
                tracker.spawn(async move {
                    let mut io = stream::SmtpStream::new(stream);
                    io.send_and_close(&reply::too_many_connections()).await;
                });
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    ip: IpAddr,
    ctx: Arc<SmtpContext>,
    implicit_tls: bool,
    shutdown: CancellationToken,
) {
    crate::metrics::count("crabmail_smtp_sessions_total", &[("role", ctx.role.name())]);
    let limits = Deadlines {
        idle: ctx.limits.idle_timeout,
        session_end: tokio::time::Instant::now() + ctx.limits.session_timeout,
        shutdown,
    };
    let (stream, greet) = if implicit_tls {
        (stream, true)
    } else {
        let plain = Session::new(stream, ctx.clone(), ip, false, limits.clone());
        let Ending::StartTls(stream) = plain.run(true).await else {
            return;
        };
        // After STARTTLS: no new greeting (RFC 3207 4.2).
        (stream, false)
    };
    let Some(acceptor) = ctx.tls.clone() else {
        return;
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => {
            let secure = Session::new(tls, ctx, ip, true, limits);
            // A second STARTTLS is refused inside the session, so this always ends Done.
            let _ = secure.run(greet).await;
        }
        Ok(Err(e)) => tracing::info!(peer = %ip, error = %e, "smtp: TLS handshake failed"),
        Err(_) => tracing::info!(peer = %ip, "smtp: TLS handshake timed out"),
    }
}
