//! The SMTP connection as the session sees it: command lines, DATA bodies and BDAT chunks read
//! under the idle and session timeouts, and replies buffered so that a pipelined group of
//! commands gets its replies in one write (RFC 2920).
//!
//! Every read first flushes pending replies, so a client never waits for a reply we hold.
//! A read ends with the bytes, or says why there are none: the peer closed, a timeout passed,
//! or the server is shutting down.

use super::body::DataReader;
use super::reply::Reply;
use memchr::memchr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const READ_CHUNK: usize = 16 * 1024;

/// Why a read returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted {
    Closed,
    TimedOut,
    ShuttingDown,
}

pub enum Line {
    /// A command line, terminator included.
    Command(Vec<u8>),
    /// A line over the limit, discarded up to its end.
    TooLong,
}

/// When reads give up.
#[derive(Clone)]
pub struct Deadlines {
    pub idle: Duration,
    pub session_end: Instant,
    pub shutdown: CancellationToken,
}

pub struct SmtpStream<S> {
    inner: S,
    buf: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> SmtpStream<S> {
    pub fn new(inner: S) -> Self {
        SmtpStream {
            inner,
            buf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
            out: Vec::with_capacity(512),
        }
    }

    /// The stream, dropping anything read but not yet used: after STARTTLS, bytes the client
    /// pipelined in plaintext must not be taken as if they came over TLS (CVE-2011-0411).
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Whether bytes beyond the current command are already buffered.
    pub fn has_buffered_input(&self) -> bool {
        self.pos < self.buf.len()
    }

    pub fn queue(&mut self, reply: &Reply) {
        reply.write_to(&mut self.out);
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.inner.write_all(&self.out).await?;
            self.inner.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Sends `reply` now and closes the write side.
    pub async fn send_and_close(&mut self, reply: &Reply) {
        self.queue(reply);
        let _ = self.flush().await;
        let _ = self.inner.shutdown().await;
    }

    fn unread(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more bytes into the buffer, flushing replies first.
    async fn fill(&mut self, limits: &Deadlines) -> Result<(), Interrupted> {
        if self.flush().await.is_err() {
            return Err(Interrupted::Closed);
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > READ_CHUNK {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let deadline = (Instant::now() + limits.idle).min(limits.session_end);
        let start = self.buf.len();
        self.buf.resize(start + READ_CHUNK, 0);
        let read = tokio::select! {
            r = tokio::time::timeout_at(deadline, self.inner.read(&mut self.buf[start..])) => r,
            _ = limits.shutdown.cancelled() => {
                self.buf.truncate(start);
                return Err(Interrupted::ShuttingDown);
            }
        };
        match read {
            Ok(Ok(n)) if n > 0 => {
                self.buf.truncate(start + n);
                Ok(())
            }
            Ok(_) => {
                self.buf.truncate(start);
                Err(Interrupted::Closed)
            }
            Err(_elapsed) => {
                self.buf.truncate(start);
                Err(Interrupted::TimedOut)
            }
        }
    }

    /// The next command line (up to and including LF). Lines longer than `max` are consumed and
    /// reported as `TooLong`.
    pub async fn read_line(&mut self, max: usize, limits: &Deadlines) -> Result<Line, Interrupted> {
        let mut discarding = false;
        loop {
            if let Some(i) = memchr(b'\n', self.unread()) {
                let end = self.pos + i + 1;
                let line = self.buf[self.pos..end].to_vec();
                self.pos = end;
                if discarding || line.len() > max {
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Command(line));
            }
            if self.unread().len() > max {
                // Keep memory bounded: drop what we have and look for the line's end.
                discarding = true;
                self.pos = self.buf.len();
            }
            self.fill(limits).await?;
        }
    }

    /// Feeds the DATA body to `reader` until its terminator; later bytes stay buffered.
    pub async fn read_body(
        &mut self,
        reader: &mut DataReader,
        limits: &Deadlines,
    ) -> Result<(), Interrupted> {
        loop {
            if self.has_buffered_input() {
                match reader.feed(self.unread()) {
                    Some(used) => {
                        self.pos += used;
                        return Ok(());
                    }
                    None => self.pos = self.buf.len(),
                }
            }
            self.fill(limits).await?;
        }
    }

    /// Passes exactly `len` bytes (a BDAT chunk) to `sink`, in pieces.
    pub async fn read_chunk(
        &mut self,
        mut len: usize,
        limits: &Deadlines,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<(), Interrupted> {
        loop {
            let take = len.min(self.unread().len());
            if take > 0 {
                sink(&self.buf[self.pos..self.pos + take]);
                self.pos += take;
                len -= take;
            }
            if len == 0 {
                return Ok(());
            }
            self.fill(limits).await?;
        }
    }
}
