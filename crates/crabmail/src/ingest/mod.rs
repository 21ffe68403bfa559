//! Inbound mail after its bytes are durable: parse each stored message and make its copies
//! readable, then wake whoever waits on those inboxes.
//!
//! Every accepted message has an ingest job in the store, written in the same transaction as its
//! bytes; the worker takes jobs from a channel (fresh ones, handed over by the SMTP session after
//! its commit) and from the store at start (ones a crash interrupted). Completing a job is
//! idempotent, so a job seen twice is harmless.
//!
//! Work is batched: whatever jobs have gathered are parsed and committed in one transaction. If
//! the store fails, the batch is retried; the jobs stay durable meanwhile.

pub mod parse;

use crate::clock::SharedClock;
use crate::events::Wakeups;
use crate::store::{IngestJob, Ingested, SharedStore};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Jobs parsed and committed together at most.
const BATCH: usize = 64;
/// Pause before retrying a batch the store refused.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Hands freshly accepted messages to the worker.
#[derive(Clone)]
pub struct IngestQueue {
    tx: mpsc::UnboundedSender<IngestJob>,
}

impl IngestQueue {
    /// After the message's commit: if the worker is gone, the job waits in the store for the next
    /// start, so nothing is lost.
    pub fn push(&self, job: IngestJob) {
        let _ = self.tx.send(job);
    }
}

/// Starts the worker; it runs until `shutdown` and the queue is empty or closed.
pub fn start(
    store: SharedStore,
    wakeups: Arc<Wakeups>,
    clock: SharedClock,
    shutdown: CancellationToken,
) -> (IngestQueue, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let worker = Worker {
        store,
        wakeups,
        clock,
        shutdown,
    };
    (IngestQueue { tx }, tokio::spawn(worker.run(rx)))
}

struct Worker {
    store: SharedStore,
    wakeups: Arc<Wakeups>,
    clock: SharedClock,
    shutdown: CancellationToken,
}

impl Worker {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<IngestJob>) {
        self.resume_interrupted().await;
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let received = tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => n,
                _ = self.shutdown.cancelled() => 0,
            };
            if received == 0 {
                return;
            }
            self.complete(std::mem::take(&mut batch)).await;
        }
    }

    /// Jobs left by a previous run (a crash between commit and ingest).
    async fn resume_interrupted(&self) {
        loop {
            let jobs = match self.store.pending_ingest(BATCH).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::error!(error = %e, "ingest: cannot read pending jobs; they stay queued");
                    return;
                }
            };
            if jobs.is_empty() || self.shutdown.is_cancelled() {
                return;
            }
            tracing::info!(count = jobs.len(), "ingest: resuming interrupted jobs");
            let full = jobs.len() == BATCH;
            self.complete(jobs).await;
            if !full {
                return;
            }
        }
    }

    async fn complete(&self, jobs: Vec<IngestJob>) {
        let done: Vec<Ingested> = jobs.iter().map(ingest_one).collect();
        loop {
            match self
                .store
                .complete_ingest(done.clone(), self.clock.now())
                .await
            {
                Ok(wakes) => {
                    self.wakeups.announce_all(&wakes);
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "ingest: store refused a batch; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_PAUSE) => {}
                        _ = self.shutdown.cancelled() => return,
                    }
                }
            }
        }
    }
}

fn ingest_one(job: &IngestJob) -> Ingested {
    let parsed = parse::parse(&job.bytes);
    let from_address = parsed
        .view
        .from
        .as_ref()
        .and_then(|f| f.address.as_ref())
        .map(|a| a.to_ascii_lowercase());
    Ingested {
        blob_id: job.blob_id.clone(),
        from_address,
        subject: parsed.view.subject.clone(),
        summary: serde_json::to_string(&parsed.summary).unwrap_or_else(|_| "{}".into()),
        parsed: serde_json::to_string(&parsed.view).unwrap_or_else(|_| "{}".into()),
    }
}
