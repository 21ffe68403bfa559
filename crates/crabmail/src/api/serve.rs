//! The HTTP connection loop under the router: what axum's `serve` leaves open to a stranger.
//!
//! Connections are gated in total and per client address (a new one past either limit gets a JSON
//! 503 and is closed at once); request headers must arrive within `api.header_timeout`, which is
//! also the longest a kept-alive connection may sit idle; a body must arrive within
//! `api.body_timeout` of its headers (408). hyper's own answers to requests it cannot parse (an
//! empty 400, 414 or 431) are rewritten into the API's JSON error shape.

use crate::gate::ConnectionGate;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// What one HTTP listener allows.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
}

impl From<&crate::config::ApiConfig> for HttpLimits {
    fn from(api: &crate::config::ApiConfig) -> Self {
        HttpLimits {
            max_connections: api.max_connections,
            max_connections_per_ip: api.max_connections_per_ip,
            header_timeout: api.header_timeout,
            body_timeout: api.body_timeout,
        }
    }
}

/// Serves `app` on `listener` until `shutdown`, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let gate = Arc::new(ConnectionGate::new(
        limits.max_connections,
        limits.max_connections_per_ip,
    ));
    let body_timeout = limits.body_timeout;
    let app = app.layer(axum::middleware::map_request(
        move |req: Request| async move {
            req.map(|body| Body::new(DeadlineBody::new(body, body_timeout)))
        },
    ));
    let connections = TaskTracker::new();
    while let Some((tcp, peer)) = crate::gate::accept(&listener, "http", &shutdown).await {
        let Some(pass) = gate.admit(peer.ip()) else {
            tracing::info!(peer = %peer.ip(), "http: connection limit reached");
            // One write into an empty send buffer; the socket closes when dropped.
            let _ = tcp.try_write(&too_many_connections());
            continue;
        };
        // The client's address, for handlers that judge it (`/metrics`).
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        ));
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout);
        let connection = builder.serve_connection(TokioIo::new(JsonErrors::new(tcp)), service);
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(pass);
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

fn error_json(code: &str, message: &str) -> String {
    serde_json::json!({ "error": { "code": code, "message": message } }).to_string()
}

fn too_many_connections() -> Vec<u8> {
    let body = error_json(
        "too_many_connections",
        "too many connections are open; retry shortly",
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// hyper's automatic answer to an unparseable request, as JSON; `None` for every other write.
fn rewrite_hyper_error(buf: &[u8]) -> Option<Vec<u8>> {
    let status = buf.strip_prefix(b"HTTP/1.")?.get(2..5)?;
    let (code, reason, error, message) = match status {
        b"400" => (
            400,
            "Bad Request",
            "bad_request",
            "the request is not valid HTTP/1.1",
        ),
        b"414" => (
            414,
            "URI Too Long",
            "uri_too_long",
            "the request URI is too long",
        ),
        b"431" => (
            431,
            "Request Header Fields Too Large",
            "headers_too_large",
            "the request headers are too large",
        ),
        _ => return None,
    };
    let head_end = memchr::memmem::find(buf, b"\r\n\r\n")?;
    let head = buf[..head_end].to_ascii_lowercase();
    // Our handlers always answer these with a JSON body; hyper's own answers have none.
    memchr::memmem::find(&head, b"\r\ncontent-length: 0")?;
    let body = error_json(error, message);
    Some(
        format!(
            "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// The connection's stream, with hyper's empty error answers replaced on the way out.
struct JsonErrors<S> {
    inner: S,
    /// A replacement answer still being written.
    pending: Vec<u8>,
    written: usize,
}

impl<S> JsonErrors<S> {
    fn new(inner: S) -> Self {
        JsonErrors {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }
}

impl<S: AsyncWrite + Unpin> JsonErrors<S> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonErrors<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonErrors<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        // Writes are not vectored, so hyper hands over each answer's head at a write's start.
        if let Some(answer) = rewrite_hyper_error(buf) {
            this.pending = answer;
            if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// A request body that fails once its deadline passes, so a client sending a byte a second
/// cannot hold a handler (and a connection) for ever.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

impl DeadlineBody {
    fn new(inner: Body, timeout: Duration) -> Self {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        }
    }
}

/// The error a body past its deadline ends with; the JSON extractor answers it with 408.
#[derive(Debug, thiserror::Error)]
#[error("request body timed out: not received within {0:?}")]
pub struct BodyTimeout(pub Duration);

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_empty_error_answers_are_rewritten() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Thu, 03 Dec 2026 12:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(rewrite_hyper_error(hyper).unwrap()).unwrap();
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
        assert!(answer.ends_with(r#"{"error":{"code":"headers_too_large","message":"the request headers are too large"}}"#), "{answer}");
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 52\r\n\r\n{}";
        assert!(rewrite_hyper_error(ours).is_none());
        assert!(rewrite_hyper_error(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(rewrite_hyper_error(b"{\"body\": \"HTTP/1.1 400\"}").is_none());
    }
}
