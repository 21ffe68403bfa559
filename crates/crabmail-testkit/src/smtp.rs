use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Longest a test waits for one reply before failing.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// One SMTP reply: its code and the text of each line.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The whole reply as received, lines joined by `\n`, e.g. "250 2.0.0 OK".
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// An SMTP client conversation for tests: `smtp.cmd("RCPT TO:<x@y.test>", "550 5.1.1")`.
pub struct Smtp<S> {
    stream: S,
    buf: Vec<u8>,
}

impl Smtp<TcpStream> {
    /// Connects and reads the greeting (which must be 220).
    pub async fn connect(addr: SocketAddr) -> Smtp<TcpStream> {
        let mut smtp = Self::connect_raw(addr).await;
        smtp.expect("220").await;
        smtp
    }

    /// Connects without reading anything.
    pub async fn connect_raw(addr: SocketAddr) -> Smtp<TcpStream> {
        let stream = TcpStream::connect(addr).await.expect("connect to SMTP");
        Self::from_stream(stream)
    }

    /// Connects from a chosen loopback address (a "host" of its own, for SPF) and reads the
    /// greeting.
    pub async fn connect_from(source: std::net::IpAddr, addr: SocketAddr) -> Smtp<TcpStream> {
        let socket = match source {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .expect("socket");
        socket
            .bind(SocketAddr::new(source, 0))
            .unwrap_or_else(|e| panic!("bind {source}: {e}"));
        let stream = socket.connect(addr).await.expect("connect to SMTP");
        let mut smtp = Self::from_stream(stream);
        smtp.expect("220").await;
        smtp
    }

    /// A conversation on a connection made elsewhere (e.g. from a chosen local address).
    pub fn from_stream(stream: TcpStream) -> Smtp<TcpStream> {
        Smtp {
            stream,
            buf: Vec::new(),
        }
    }

    /// Implicit TLS (port 465): the handshake first, then the greeting (which must be 220).
    pub async fn connect_tls(addr: SocketAddr) -> Smtp<TlsStream<TcpStream>> {
        let stream = TcpStream::connect(addr).await.expect("connect to SMTP");
        let tls = tls_connector()
            .connect(ServerName::try_from("crabmail.test").expect("name"), stream)
            .await
            .expect("TLS handshake");
        let mut smtp = Smtp {
            stream: tls,
            buf: Vec::new(),
        };
        smtp.expect("220").await;
        smtp
    }

    /// STARTTLS, then a TLS handshake that accepts any certificate (ours is self-signed).
    pub async fn starttls(self) -> Smtp<TlsStream<TcpStream>> {
        self.starttls_with_injected(b"").await
    }

    /// STARTTLS with `injected` plaintext pipelined right behind it (the CVE-2011-0411 attack).
    pub async fn starttls_with_injected(mut self, injected: &[u8]) -> Smtp<TlsStream<TcpStream>> {
        let mut burst = b"STARTTLS\r\n".to_vec();
        burst.extend_from_slice(injected);
        self.write_raw(&burst).await;
        self.expect("220").await;
        assert!(
            self.buf.is_empty(),
            "server sent bytes after 220 to STARTTLS"
        );
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert))
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = ServerName::try_from("crabmail.test").expect("name");
        let tls = connector
            .connect(name, self.stream)
            .await
            .expect("TLS handshake");
        Smtp {
            stream: tls,
            buf: Vec::new(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Smtp<S> {
    pub async fn send(&mut self, line: &str) {
        self.write_raw(format!("{line}\r\n").as_bytes()).await;
    }

    /// Writes bytes as they are. A connection the server has closed is not an error here: the
    /// next read reports it.
    pub async fn write_raw(&mut self, bytes: &[u8]) {
        if self.stream.write_all(bytes).await.is_ok() {
            let _ = self.stream.flush().await;
        }
    }

    /// Reads one (possibly multi-line) reply.
    pub async fn read_reply(&mut self) -> Reply {
        match tokio::time::timeout(REPLY_TIMEOUT, self.read_reply_inner()).await {
            Ok(Some(reply)) => reply,
            Ok(None) => panic!("connection closed while waiting for a reply"),
            Err(_) => panic!("no reply within {REPLY_TIMEOUT:?}"),
        }
    }

    /// Reads one reply, or None when the server closed the connection first.
    pub async fn try_read_reply(&mut self) -> Option<Reply> {
        tokio::time::timeout(REPLY_TIMEOUT, self.read_reply_inner())
            .await
            .expect("no reply or close within the timeout")
    }

    async fn read_reply_inner(&mut self) -> Option<Reply> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().await?;
            let done = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if done {
                let code = lines[0].get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                return Some(Reply { code, lines });
            }
        }
    }

    async fn read_line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let text = String::from_utf8_lossy(&line);
                return Some(text.trim_end_matches(['\r', '\n']).to_owned());
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads a reply and asserts it starts with `prefix` (e.g. "250" or "550 5.1.1").
    pub async fn expect(&mut self, prefix: &str) -> Reply {
        let reply = self.read_reply().await;
        let last = reply.lines.last().cloned().unwrap_or_default();
        assert!(
            last.starts_with(prefix) || reply.lines[0].starts_with(prefix),
            "expected {prefix:?}, got {:?}",
            reply.text()
        );
        reply
    }

    pub async fn cmd(&mut self, line: &str, prefix: &str) -> Reply {
        self.send(line).await;
        self.expect(prefix).await
    }

    /// Whether the server has closed the connection (reads return end of file).
    pub async fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(REPLY_TIMEOUT, self.stream.read(&mut byte)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    /// EHLO, then AUTH PLAIN as `user` with `password` (the token), which must succeed.
    pub async fn login(&mut self, user: &str, password: &str) {
        use base64::Engine;
        self.cmd("EHLO agent.test", "250").await;
        let plain =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.cmd(&format!("AUTH PLAIN {plain}"), "235").await;
    }

    /// A whole transaction: MAIL, each RCPT (which must be accepted), DATA with `body`
    /// (dot-stuffed here), and the reply to the end of data.
    pub async fn send_mail(&mut self, from: &str, to: &[&str], body: &str) -> Reply {
        self.cmd(&format!("MAIL FROM:<{from}>"), "250").await;
        for rcpt in to {
            self.cmd(&format!("RCPT TO:<{rcpt}>"), "250").await;
        }
        self.cmd("DATA", "354").await;
        let mut data = String::new();
        for line in body.split("\r\n") {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        if body.ends_with("\r\n") {
            data.truncate(data.len() - 2);
        }
        data.push_str(".\r\n");
        self.write_raw(data.as_bytes()).await;
        self.read_reply().await
    }
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("tls versions")
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AcceptAnyCert))
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Our test server's certificate is self-signed; the handshake is what these tests exercise.
#[derive(Debug)]
struct AcceptAnyCert;

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
