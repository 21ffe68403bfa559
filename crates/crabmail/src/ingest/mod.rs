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
//!
//! Each received message also gets what agents need (`insight`): its injection risk with the
//! evidence, the safe view, extracted codes and links, the new part of a reply, and its thread
//! keys. An external classifier, when configured, is asked concurrently for the whole batch and
//! is never waited on past its timeout.

pub mod insight;
pub mod parse;

use crate::clock::SharedClock;
use crate::events::Wakeups;
use crate::risk::Policy;
use crate::risk::classifier::Classifier;
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
    scoring: Scoring,
    shutdown: CancellationToken,
) -> (IngestQueue, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let worker = Worker {
        store,
        wakeups,
        clock,
        scoring,
        shutdown,
    };
    (IngestQueue { tx }, tokio::spawn(worker.run(rx)))
}

/// How received mail is scored: the operator's identity and the optional external classifier.
#[derive(Debug, Clone, Default)]
pub struct Scoring {
    pub policy: Policy,
    pub classifier: Option<Classifier>,
}

struct Worker {
    store: SharedStore,
    wakeups: Arc<Wakeups>,
    clock: SharedClock,
    scoring: Scoring,
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
        let mut prepared: Vec<insight::Prepared> = jobs
            .iter()
            .map(|job| insight::prepare(job, &self.scoring.policy))
            .collect();
        if let Some(classifier) = &self.scoring.classifier {
            futures::future::join_all(prepared.iter_mut().map(|p| p.consult(classifier))).await;
        }
        let done: Vec<Ingested> = prepared
            .into_iter()
            .map(insight::Prepared::finish)
            .collect();
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
