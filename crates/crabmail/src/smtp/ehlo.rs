//! EHLO and HELO (RFC 5321 4.1.1.1): greet, reset any transaction, and list our extensions.

use super::Role;
use super::reply;
use super::session::{Flow, Session};
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) fn ehlo(&mut self, host: &str, extended: bool) -> Flow {
        self.tx = None;
        self.helo = Some(host.to_owned());
        if !extended {
            return self.reply(reply::helo(&self.ctx.hostname));
        }
        let mut extensions = vec![
            "PIPELINING".to_owned(),
            format!("SIZE {}", self.ctx.limits.max_message_size),
            "8BITMIME".to_owned(),
            "SMTPUTF8".to_owned(),
            "ENHANCEDSTATUSCODES".to_owned(),
            "CHUNKING".to_owned(),
        ];
        if !self.tls && self.ctx.tls.is_some() {
            extensions.push("STARTTLS".to_owned());
        }
        // RFC 4954 14: credentials only over TLS, so AUTH is offered only there.
        if self.ctx.role == Role::Submission && self.tls {
            extensions.push("AUTH PLAIN LOGIN".to_owned());
        }
        extensions.push("HELP".to_owned());
        self.reply(reply::ehlo(&self.ctx.hostname, host, extensions))
    }
}
