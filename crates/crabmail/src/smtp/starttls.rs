//! STARTTLS (RFC 3207): answer 220 and hand the stream to the TLS handshake. The new session
//! forgets the greeting and any transaction, and bytes pipelined after STARTTLS are dropped.

use super::reply;
use super::session::{Flow, Session};
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) fn starttls(&mut self) -> Flow {
        if self.tls {
            return self.reply(reply::tls_active());
        }
        if self.ctx.tls.is_none() {
            return self.reply(reply::tls_unavailable());
        }
        self.io.queue(&reply::ready_for_tls());
        Flow::StartTls
    }
}
