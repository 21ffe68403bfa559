//! The SMTP client of the MTA: connect, greet, upgrade to TLS, authenticate (to a relay), and run
//! one transaction per message, keeping every recipient's own answer. It is generic over nothing
//! but TCP, and holds one connection, reusable (after RSET) for more mail to the same host.
//!
//! Timeouts are those of RFC 5321 4.5.3.2 (configurable). Any I/O failure or timeout ends the
//! connection and defers whatever was not yet decided; a reply we cannot parse is a deferral too.

use super::concurrency::Slot;
use super::outcome::Outcome;
use super::route::Target;
use super::tls::Connectors;
use rustls::pki_types::ServerName;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

/// Most bytes of one reply (all its lines together) we read, so a broken or hostile server
/// cannot make us buffer without end; past it the connection ends and the mail is deferred.
const MAX_REPLY: usize = 64 * 1024;
/// Most lines of one multi-line reply (an EHLO reply has about a dozen).
const MAX_REPLY_LINES: usize = 512;

/// How a connection must be protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// STARTTLS when offered, any certificate (RFC 7435 opportunistic security); plaintext if
    /// the handshake fails.
    Opportunistic,
    /// STARTTLS must be offered and succeed; any certificate.
    Required,
    /// STARTTLS must succeed with a certificate valid for `name`.
    Verified { name: String },
    /// TLS from the first byte (port 465), with a certificate valid for `name`.
    Implicit { name: String },
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub helo: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub tls: TlsMode,
    pub credentials: Option<(String, String)>,
}

#[derive(Debug, Clone, Default)]
struct Capabilities {
    pipelining: bool,
    starttls: bool,
    eight_bit: bool,
    smtputf8: bool,
    size: usize,
    auth_plain: bool,
    auth_login: bool,
}

type Stream = Either<TcpStream, TlsStream<TcpStream>>;

/// A server reply: its code and text (continuation lines joined by a space).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply {
    code: u16,
    text: String,
}

pub struct Client {
    /// None only while the TCP stream is inside the TLS handshake.
    stream: Option<Stream>,
    buf: Vec<u8>,
    caps: Capabilities,
    /// The host name this connection is known by.
    pub host: String,
    /// TLS version and cipher, once encrypted.
    pub tls: Option<String>,
    options: ClientOptions,
}

enum Io {
    Failed(String),
}

impl From<std::io::Error> for Io {
    fn from(e: std::io::Error) -> Self {
        Io::Failed(e.to_string())
    }
}

impl Client {
    /// Connects and gets the session ready for MAIL, or says why it could not.
    pub async fn connect(
        target: &Target,
        options: &ClientOptions,
        connectors: &Connectors,
    ) -> Result<Client, Outcome> {
        match Self::open(target, options, connectors, true).await {
            // RFC 7435: opportunistic TLS that fails falls back to plaintext.
            Err(outcome)
                if options.tls == TlsMode::Opportunistic
                    && outcome.enhanced.as_deref() == Some("4.7.5") =>
            {
                tracing::info!(host = %target.host, reason = %outcome.text, "delivery: TLS failed; retrying in plaintext");
                Self::open(target, options, connectors, false).await
            }
            other => other,
        }
    }

    async fn open(
        target: &Target,
        options: &ClientOptions,
        connectors: &Connectors,
        try_tls: bool,
    ) -> Result<Client, Outcome> {
        let host = target.host.clone();
        let tcp = connect_tcp(target, options).await?;
        let _ = tcp.set_nodelay(true);
        let mut client = Client {
            stream: Some(Either::Left(tcp)),
            buf: Vec::new(),
            caps: Capabilities::default(),
            host: host.clone(),
            tls: None,
            options: options.clone(),
        };
        if let TlsMode::Implicit { name } = &options.tls {
            client.handshake(&connectors.verified, name).await?;
        }
        let greeting = client
            .reply(options.command_timeout)
            .await
            .map_err(|e| client.lost(e))?;
        if greeting.code != 220 {
            return Err(Outcome::from_reply(
                greeting.code,
                &greeting.text,
                &host,
                None,
            ));
        }
        client.greet().await?;
        let wants_tls = match &options.tls {
            TlsMode::Opportunistic => try_tls && client.caps.starttls,
            TlsMode::Required | TlsMode::Verified { .. } => true,
            TlsMode::Implicit { .. } => false,
        };
        if wants_tls {
            client.starttls(connectors).await?;
        }
        if let Some((user, pass)) = options.credentials.clone() {
            client.authenticate(&user, &pass).await?;
        }
        Ok(client)
    }

    /// STARTTLS (RFC 3207) and EHLO again, verifying the certificate when the mode asks for it.
    async fn starttls(&mut self, connectors: &Connectors) -> Result<(), Outcome> {
        if !self.caps.starttls {
            return Err(Outcome::deferred(
                "4.7.10",
                format!("TLS is required but {} does not offer STARTTLS", self.host),
            )
            .at_host(&self.host));
        }
        let reply = self
            .command("STARTTLS", self.options.command_timeout)
            .await
            .map_err(|e| self.lost(e))?;
        if reply.code != 220 {
            return Err(Outcome::deferred(
                "4.7.5",
                format!(
                    "{} refused STARTTLS: {} {}",
                    self.host, reply.code, reply.text
                ),
            )
            .at_host(&self.host));
        }
        let (connector, name) = match &self.options.tls {
            TlsMode::Verified { name } => (&connectors.verified, name.clone()),
            _ => (&connectors.any_certificate, self.host.clone()),
        };
        self.handshake(connector, &name).await?;
        self.greet().await?;
        Ok(())
    }

    async fn handshake(&mut self, connector: &TlsConnector, name: &str) -> Result<(), Outcome> {
        let server_name = ServerName::try_from(name.to_owned()).map_err(|_| {
            Outcome::deferred("4.7.5", format!("`{name}` is not a TLS server name"))
                .at_host(&self.host)
        })?;
        let Some(Either::Left(tcp)) = self.stream.take() else {
            return Err(Outcome::deferred("4.7.5", "TLS is already active").at_host(&self.host));
        };
        // Anything the server sent before the handshake is discarded (RFC 3207 5).
        self.buf.clear();
        let tls = match tokio::time::timeout(
            self.options.command_timeout,
            connector.connect(server_name, tcp),
        )
        .await
        {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                return Err(Outcome::deferred(
                    "4.7.5",
                    format!("TLS handshake with {} failed: {e}", self.host),
                )
                .at_host(&self.host));
            }
            Err(_) => {
                return Err(Outcome::deferred(
                    "4.7.5",
                    format!("TLS handshake with {} timed out", self.host),
                )
                .at_host(&self.host));
            }
        };
        let (_, session) = tls.get_ref();
        self.tls = Some(format!(
            "{} {}",
            session
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            session
                .negotiated_cipher_suite()
                .map(|c| format!("{:?}", c.suite()))
                .unwrap_or_default()
        ));
        self.stream = Some(Either::Right(tls));
        Ok(())
    }

    /// EHLO, or HELO when the server does not know EHLO.
    async fn greet(&mut self) -> Result<(), Outcome> {
        let timeout = self.options.command_timeout;
        let ehlo = format!("EHLO {}", self.options.helo);
        let reply = self
            .command(&ehlo, timeout)
            .await
            .map_err(|e| self.lost(e))?;
        if reply.code == 250 {
            self.caps = parse_capabilities(&reply.text);
            return Ok(());
        }
        let helo = format!("HELO {}", self.options.helo);
        let reply = self
            .command(&helo, timeout)
            .await
            .map_err(|e| self.lost(e))?;
        if reply.code != 250 {
            return Err(Outcome::from_reply(
                reply.code,
                &reply.text,
                &self.host,
                self.tls.clone(),
            ));
        }
        self.caps = Capabilities::default();
        Ok(())
    }

    /// AUTH PLAIN or LOGIN, only inside TLS. A refusal is our configuration's fault, so it defers.
    async fn authenticate(&mut self, user: &str, pass: &str) -> Result<(), Outcome> {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD;
        let timeout = self.options.command_timeout;
        if self.tls.is_none() {
            return Err(Outcome::deferred(
                "4.7.10",
                "refusing to send relay credentials without TLS",
            )
            .at_host(&self.host));
        }
        let reply = if self.caps.auth_plain {
            let token = STANDARD.encode(format!("\0{user}\0{pass}"));
            self.command(&format!("AUTH PLAIN {token}"), timeout).await
        } else if self.caps.auth_login {
            let mut step = self.command("AUTH LOGIN", timeout).await;
            if matches!(&step, Ok(r) if r.code == 334) {
                step = self.command(&STANDARD.encode(user), timeout).await;
            }
            if matches!(&step, Ok(r) if r.code == 334) {
                step = self.command(&STANDARD.encode(pass), timeout).await;
            }
            step
        } else {
            return Err(Outcome::deferred(
                "4.7.12",
                format!("{} offers no AUTH mechanism we support", self.host),
            )
            .at_host(&self.host));
        }
        .map_err(|e| self.lost(e))?;
        if reply.code == 235 {
            return Ok(());
        }
        Err(Outcome::deferred(
            "4.7.8",
            format!(
                "relay refused our credentials: {} {}",
                reply.code, reply.text
            ),
        )
        .at_host(&self.host))
    }

    /// One transaction: an outcome for each recipient, in order. `usable` tells whether the
    /// connection may carry another message. The final dot and its answer are told to the
    /// destination's `slot` (its concurrency follows them).
    pub async fn send(
        &mut self,
        from: &str,
        recipients: &[String],
        body: &[u8],
        slot: &Slot,
    ) -> (Vec<Outcome>, bool) {
        let n = recipients.len();
        let utf8 = !from.is_ascii() || recipients.iter().any(|r| !r.is_ascii());
        if utf8 && !self.caps.smtputf8 {
            let o = Outcome::bounced(
                "5.6.7",
                format!(
                    "{} does not support SMTPUTF8, needed for these addresses",
                    self.host
                ),
            )
            .at_host(&self.host);
            return (vec![o; n], true);
        }
        if self.caps.size > 0 && body.len() > self.caps.size {
            let o = Outcome::bounced(
                "5.3.4",
                format!(
                    "message of {} octets exceeds {}'s limit of {}",
                    body.len(),
                    self.host,
                    self.caps.size
                ),
            )
            .at_host(&self.host);
            return (vec![o; n], true);
        }
        match self.transaction(from, recipients, body, utf8, slot).await {
            Ok(outcomes) => (outcomes, true),
            Err(Io::Failed(e)) => {
                let o =
                    Outcome::deferred("4.4.2", format!("connection to {} lost: {e}", self.host))
                        .at_host(&self.host);
                (vec![o; n], false)
            }
        }
    }

    /// MAIL FROM with the parameters the server announced and the message needs.
    fn mail_from(&self, from: &str, body: &[u8], utf8: bool) -> String {
        let mut mail = format!("MAIL FROM:<{from}>");
        if self.caps.size > 0 {
            mail.push_str(&format!(" SIZE={}", body.len()));
        }
        if self.caps.eight_bit && !body.is_ascii() {
            mail.push_str(" BODY=8BITMIME");
        }
        if utf8 {
            mail.push_str(" SMTPUTF8");
        }
        mail
    }

    /// MAIL, each RCPT and (when pipelining) DATA, with their replies: pipelined in one write
    /// when the server allows (RFC 2920), else one by one, stopping after a refused MAIL.
    async fn envelope(
        &mut self,
        mail: &str,
        rcpts: &[String],
    ) -> Result<(Reply, Vec<Reply>, Option<Reply>), Io> {
        let t = self.options.command_timeout;
        if self.caps.pipelining {
            let mut burst = format!("{mail}\r\n");
            for r in rcpts {
                burst.push_str(r);
                burst.push_str("\r\n");
            }
            burst.push_str("DATA\r\n");
            self.write(burst.as_bytes()).await?;
            let mail_reply = self.reply(t).await?;
            let mut replies = Vec::with_capacity(rcpts.len());
            for _ in rcpts {
                replies.push(self.reply(t).await?);
            }
            let data = self.reply(t).await?;
            Ok((mail_reply, replies, Some(data)))
        } else {
            let mail_reply = self.command(mail, t).await?;
            let mut replies = Vec::with_capacity(rcpts.len());
            if mail_reply.code / 100 == 2 {
                for r in rcpts {
                    replies.push(self.command(r, t).await?);
                }
            }
            Ok((mail_reply, replies, None))
        }
    }

    async fn transaction(
        &mut self,
        from: &str,
        recipients: &[String],
        body: &[u8],
        utf8: bool,
        slot: &Slot,
    ) -> Result<Vec<Outcome>, Io> {
        let t = self.options.command_timeout;
        let mail = self.mail_from(from, body, utf8);
        let rcpts: Vec<String> = recipients
            .iter()
            .map(|r| format!("RCPT TO:<{r}>"))
            .collect();
        let (mail_reply, rcpt_replies, data_reply) = self.envelope(&mail, &rcpts).await?;
        let tls = self.tls.clone();
        let host = self.host.clone();
        let outcome =
            |reply: &Reply| Outcome::from_reply(reply.code, &reply.text, &host, tls.clone());
        if mail_reply.code / 100 != 2 {
            if data_reply.as_ref().is_some_and(|d| d.code == 354) {
                self.abort_data().await?;
            }
            self.reset().await;
            return Ok(vec![outcome(&mail_reply); recipients.len()]);
        }
        let mut outcomes: Vec<Outcome> = rcpt_replies.iter().map(outcome).collect();
        let accepted: Vec<usize> = (0..outcomes.len())
            .filter(|&i| rcpt_replies[i].code / 100 == 2)
            .collect();
        let data_reply = match data_reply {
            Some(reply) => reply,
            None if accepted.is_empty() => {
                self.reset().await;
                return Ok(outcomes);
            }
            None => self.command("DATA", t).await?,
        };
        if accepted.is_empty() {
            if data_reply.code == 354 {
                self.abort_data().await?;
            }
            self.reset().await;
            return Ok(outcomes);
        }
        if data_reply.code != 354 {
            for &i in &accepted {
                outcomes[i] = outcome(&data_reply);
            }
            self.reset().await;
            return Ok(outcomes);
        }
        let dot = slot.dot_sent();
        self.write(&dot_stuff(body)).await?;
        let done = self.reply(self.options.data_timeout).await?;
        dot.answered();
        for &i in &accepted {
            outcomes[i] = outcome(&done);
        }
        Ok(outcomes)
    }

    /// The server said 354 although no recipient was accepted: end the (empty) data at once.
    async fn abort_data(&mut self) -> Result<(), Io> {
        self.write(b".\r\n").await?;
        self.reply(self.options.data_timeout).await.map(|_| ())
    }

    /// RSET, so the connection can carry the next message; false if it cannot.
    pub async fn reset(&mut self) -> bool {
        matches!(self.command("RSET", self.options.command_timeout).await, Ok(r) if r.code == 250)
    }

    pub async fn quit(mut self) {
        let _ = self.command("QUIT", Duration::from_secs(5)).await;
        if let Some(stream) = self.stream.as_mut() {
            let _ = stream.shutdown().await;
        }
    }

    fn lost(&self, e: Io) -> Outcome {
        let Io::Failed(e) = e;
        Outcome::deferred("4.4.2", format!("connection to {} failed: {e}", self.host))
            .at_host(&self.host)
    }

    async fn command(&mut self, line: &str, timeout: Duration) -> Result<Reply, Io> {
        self.write(format!("{line}\r\n").as_bytes()).await?;
        self.reply(timeout).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Io> {
        let t = self.options.command_timeout;
        let Some(stream) = self.stream.as_mut() else {
            return Err(Io::Failed("no connection".into()));
        };
        match tokio::time::timeout(t, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await
        {
            Ok(result) => Ok(result?),
            Err(_) => Err(Io::Failed("timed out writing".into())),
        }
    }

    async fn reply(&mut self, timeout: Duration) -> Result<Reply, Io> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(Io::Failed("no connection".into()));
        };
        match tokio::time::timeout(timeout, read_reply(stream, &mut self.buf)).await {
            Ok(result) => result,
            Err(_) => Err(Io::Failed("timed out waiting for a reply".into())),
        }
    }
}

/// A TCP connection to the target within the connect timeout; a failure defers.
async fn connect_tcp(target: &Target, options: &ClientOptions) -> Result<TcpStream, Outcome> {
    let failed = |text: String| Outcome::deferred("4.4.1", text).at_host(&target.host);
    match tokio::time::timeout(options.connect_timeout, TcpStream::connect(target.addr)).await {
        Ok(Ok(tcp)) => Ok(tcp),
        Ok(Err(e)) => Err(failed(format!(
            "cannot connect to {} ({}): {e}",
            target.host, target.addr
        ))),
        Err(_) => Err(failed(format!(
            "connection to {} ({}) timed out",
            target.host, target.addr
        ))),
    }
}

async fn read_reply<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> Result<Reply, Io> {
    let mut code = None;
    let mut text = String::new();
    let mut lines = 0usize;
    let mut consumed = 0usize;
    loop {
        let Some(end) = buf.iter().position(|&b| b == b'\n') else {
            if consumed + buf.len() > MAX_REPLY {
                return Err(Io::Failed(format!(
                    "reply longer than {MAX_REPLY} bytes; connection closed"
                )));
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(Io::Failed("connection closed by the server".into()));
            }
            buf.extend_from_slice(&chunk[..n]);
            continue;
        };
        consumed += end + 1;
        lines += 1;
        if consumed > MAX_REPLY || lines > MAX_REPLY_LINES {
            return Err(Io::Failed(format!(
                "reply longer than {MAX_REPLY} bytes or {MAX_REPLY_LINES} lines; connection closed"
            )));
        }
        let line: Vec<u8> = buf.drain(..=end).collect();
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        let this: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| Io::Failed(format!("unparseable reply line `{line}`")))?;
        if *code.get_or_insert(this) != this {
            return Err(Io::Failed(format!(
                "reply codes differ within one reply: `{line}`"
            )));
        }
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(line.get(4..).unwrap_or("").trim());
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(Reply { code: this, text });
        }
    }
}

/// EHLO keywords (RFC 5321 4.1.1.1); the first line is the greeting, each other starts a keyword.
fn parse_capabilities(text: &str) -> Capabilities {
    // The reply's lines were joined by spaces: keywords are recognised by name wherever they are.
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let mut caps = Capabilities::default();
    for (i, word) in words.iter().enumerate() {
        match word.as_str() {
            "PIPELINING" => caps.pipelining = true,
            "STARTTLS" => caps.starttls = true,
            "8BITMIME" => caps.eight_bit = true,
            "SMTPUTF8" => caps.smtputf8 = true,
            "SIZE" => caps.size = words.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(0),
            "AUTH" => {
                for mech in words[i + 1..].iter().take_while(|w| !is_keyword(w)) {
                    caps.auth_plain |= mech == "PLAIN";
                    caps.auth_login |= mech == "LOGIN";
                }
            }
            _ => {}
        }
    }
    caps
}

fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "PIPELINING"
            | "STARTTLS"
            | "8BITMIME"
            | "SMTPUTF8"
            | "SIZE"
            | "CHUNKING"
            | "DSN"
            | "ENHANCEDSTATUSCODES"
            | "HELP"
            | "ETRN"
            | "VRFY"
            | "BINARYMIME"
            | "REQUIRETLS"
    )
}

/// RFC 5321 4.5.2: a line starting with "." gets one more; the data ends with CRLF . CRLF.
pub fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 64 + 5);
    let mut at_line_start = true;
    for &b in body {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !body.is_empty() && !body.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(dot_stuff(b".x\r\n"), b"..x\r\n.\r\n");
        assert_eq!(dot_stuff(b"no newline"), b"no newline\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
    }

    #[test]
    fn capabilities_from_an_ehlo_reply() {
        let caps = parse_capabilities(
            "mx.test greets us PIPELINING SIZE 10240000 AUTH LOGIN PLAIN STARTTLS 8BITMIME",
        );
        assert!(
            caps.pipelining
                && caps.starttls
                && caps.eight_bit
                && caps.auth_plain
                && caps.auth_login
        );
        assert!(!caps.smtputf8);
        assert_eq!(caps.size, 10_240_000);
        let bare = parse_capabilities("old.test");
        assert!(!bare.pipelining && !bare.starttls && bare.size == 0);
    }

    #[tokio::test]
    async fn replies_are_read_whole_and_checked() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        tokio::io::AsyncWriteExt::write_all(
            &mut b,
            b"250-mx.test\r\n250-PIPELINING\r\n250 SIZE 10\r\n550 5.1.1 no\r\n451-a\r\n452 b\r\n",
        )
        .await
        .unwrap();
        let mut buf = Vec::new();
        let r = read_reply(&mut a, &mut buf).await.ok().unwrap();
        assert_eq!(
            (r.code, r.text.as_str()),
            (250, "mx.test PIPELINING SIZE 10")
        );
        let r = read_reply(&mut a, &mut buf).await.ok().unwrap();
        assert_eq!((r.code, r.text.as_str()), (550, "5.1.1 no"));
        assert!(
            read_reply(&mut a, &mut buf).await.is_err(),
            "mixed codes are an error"
        );
    }

    #[tokio::test]
    async fn an_endless_reply_is_cut_off() {
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        // The server never ends its EHLO reply; it only stops when we hang up.
        let talker = tokio::spawn(async move {
            let mut sent = 0usize;
            while tokio::io::AsyncWriteExt::write_all(&mut b, b"250-AAAAAAAAAAAAAAAAAAAA\r\n")
                .await
                .is_ok()
            {
                sent += 26;
            }
            sent
        });
        let mut buf = Vec::new();
        let Err(Io::Failed(reason)) = read_reply(&mut a, &mut buf).await else {
            panic!("an endless reply must fail");
        };
        assert!(reason.contains("longer than"), "{reason}");
        drop(a);
        let sent = talker.await.unwrap();
        assert!(sent < 4 * MAX_REPLY, "read {sent} bytes before giving up");
    }
}
