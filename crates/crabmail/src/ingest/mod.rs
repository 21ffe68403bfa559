//! Inbound mail after its bytes are durable: parse each stored message and make its copies
//! readable, then wake whoever waits on those inboxes.
//!
//! Every accepted message has an ingest job in the store, written in the same transaction as its
//! bytes. Jobs reach the worker from the SMTP session after its commit (a channel) and from the
//! store (a sweep, at start and then every quarter lease), which claims jobs with a lease: a job
//! whose node died, or that nobody took, is taken over. Completing a job is idempotent, so a job
//! seen twice is harmless.
//!
//! Analysis (parse, score, extract) runs on the blocking pool, `ingest.workers` messages at once,
//! each within `ingest.budget`: a message that takes longer, or whose analysis fails, is listed
//! unparsed and flagged `not_analysed`. Finished messages are committed in batches, in the order
//! they were handed over (so inboxes list mail as it arrived), except that a message still being
//! analysed after a second steps out of line: it delays only itself. If the store fails, the
//! batch is retried while the jobs stay durable. An external classifier, when configured, is never waited on past its timeout.

pub mod accept;
pub mod extract;
pub mod insight;
pub mod parse;
pub mod risk;
pub mod thread;

use crate::clock::SharedClock;
use crate::config::IngestConfig;
use crate::events::Wakeups;
use crate::ingest::risk::Policy;
use crate::ingest::risk::classifier::Classifier;
use crate::outbound::watch::BreakerWatch;
use crate::store::{IngestJob, Ingested, SharedStore};
use futures::FutureExt;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Jobs committed together at most, and claimed from the store at once.
const BATCH: usize = 64;
/// Pause before retrying a batch the store refused.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// How long a message still being analysed holds up the ones handed over after it.
const HOLD: Duration = Duration::from_secs(1);
/// Shortest pause between two sweeps of the store for unclaimed jobs.
const MIN_SWEEP: Duration = Duration::from_millis(100);

/// Hands freshly accepted messages to the worker.
#[derive(Clone)]
pub struct IngestQueue {
    tx: mpsc::UnboundedSender<IngestJob>,
    in_flight: InFlight,
}

impl IngestQueue {
    /// After the message's commit: if the worker is gone, the job waits in the store for the next
    /// sweep or start, so nothing is lost.
    pub fn push(&self, job: IngestJob) {
        // A sweep may have claimed it between the commit and now: then it is on its way already.
        if self.in_flight.insert(&job.blob_id) {
            let _ = self.tx.send(job);
        }
    }
}

/// Blobs this node is already working on, so a sweep never starts a second analysis of one.
#[derive(Clone, Default)]
struct InFlight(Arc<Mutex<HashSet<String>>>);

impl InFlight {
    /// False when the blob was already in flight.
    fn insert(&self, blob_id: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(blob_id.to_owned())
    }

    fn remove(&self, blob_ids: &[Ingested]) {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for done in blob_ids {
            set.remove(&done.blob_id);
        }
    }
}

/// How received mail is scored: the operator's identity and the optional external classifier.
#[derive(Debug, Clone, Default)]
pub struct Scoring {
    pub policy: Policy,
    pub classifier: Option<Classifier>,
}

/// Starts the worker; it runs until `shutdown`, then finishes what it started.
pub fn start(
    store: SharedStore,
    wakeups: Arc<Wakeups>,
    clock: SharedClock,
    scoring: Scoring,
    config: &IngestConfig,
    breakers: BreakerWatch,
    shutdown: CancellationToken,
) -> (IngestQueue, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let in_flight = InFlight::default();
    let worker = Worker {
        store,
        wakeups,
        clock,
        scoring: Arc::new(scoring),
        workers: config.workers(),
        budget: config.budget,
        lease: config.lease,
        in_flight: in_flight.clone(),
        breakers,
        shutdown,
    };
    (IngestQueue { tx, in_flight }, tokio::spawn(worker.run(rx)))
}

struct Worker {
    store: SharedStore,
    wakeups: Arc<Wakeups>,
    clock: SharedClock,
    scoring: Arc<Scoring>,
    workers: usize,
    budget: Duration,
    lease: Duration,
    in_flight: InFlight,
    /// Judged again for the senders of mail a report bounced or complained about.
    breakers: BreakerWatch,
    shutdown: CancellationToken,
}

impl Worker {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<IngestJob>) {
        let (order_tx, order_rx) = mpsc::channel::<oneshot::Receiver<Ingested>>(BATCH * 4);
        let committer = tokio::spawn(commit_loop(
            self.store.clone(),
            self.wakeups.clone(),
            self.clock.clone(),
            self.in_flight.clone(),
            order_rx,
            self.breakers.clone(),
            self.shutdown.clone(),
        ));
        let permits = Arc::new(Semaphore::new(self.workers.max(1)));
        let mut running = JoinSet::new();
        let mut sweep = tokio::time::interval((self.lease / 4).max(MIN_SWEEP));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut fresh = Vec::with_capacity(BATCH);
        loop {
            let jobs = tokio::select! {
                n = rx.recv_many(&mut fresh, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    std::mem::take(&mut fresh)
                }
                _ = sweep.tick() => {
                    let (jobs, full) = self.claim().await;
                    if full {
                        // More are waiting (a restart after a crash): claim again at once.
                        sweep.reset_immediately();
                    }
                    jobs
                }
                _ = self.shutdown.cancelled() => break,
            };
            for job in jobs {
                // Backpressure: wait for a free worker (fresh jobs keep queuing in the channel).
                let permit = tokio::select! {
                    p = permits.clone().acquire_owned() => p,
                    _ = self.shutdown.cancelled() => break,
                };
                let Ok(permit) = permit else { break };
                // The committer learns of the job now, so it commits in this order.
                let (done, in_line) = oneshot::channel();
                if order_tx.send(in_line).await.is_err() {
                    break;
                }
                let (scoring, budget) = (self.scoring.clone(), self.budget);
                running.spawn(async move {
                    let prepared = analyse(job, scoring, budget).await;
                    drop(permit);
                    let _ = done.send(prepared.finish());
                });
                // Reap finished tasks so the set does not grow without end.
                while running.try_join_next().is_some() {}
            }
        }
        while running.join_next().await.is_some() {}
        drop(order_tx);
        let _ = committer.await;
    }

    /// Jobs in the store nobody holds: left by a dead node or a crash, or never handed over.
    /// The jobs claimed, and whether the claim was a full batch.
    async fn claim(&self) -> (Vec<IngestJob>, bool) {
        match self
            .store
            .claim_ingest(self.clock.now(), self.lease, BATCH)
            .await
        {
            Ok(jobs) => {
                let full = jobs.len() == BATCH;
                let jobs: Vec<IngestJob> = jobs
                    .into_iter()
                    .filter(|job| self.in_flight.insert(&job.blob_id))
                    .collect();
                if !jobs.is_empty() {
                    tracing::info!(count = jobs.len(), "ingest: taking over unclaimed jobs");
                }
                (jobs, full)
            }
            Err(e) => {
                tracing::error!(error = %e, "ingest: cannot claim jobs; they stay queued");
                (Vec::new(), false)
            }
        }
    }
}

/// Parses and scores one message on the blocking pool within `budget`; past it, or if the
/// analysis panics, the message is listed unparsed and flagged. (A thread past its budget runs to
/// its end in the background: parsing is bounded by the message's size, so it does end.)
async fn analyse(job: IngestJob, scoring: Arc<Scoring>, budget: Duration) -> insight::Prepared {
    let work = {
        let (job, scoring) = (job.clone(), scoring.clone());
        tokio::task::spawn_blocking(move || {
            let started = tokio::time::Instant::now();
            let prepared = insight::prepare(&job, &scoring.policy);
            let took = started.elapsed().as_secs_f64();
            crate::metrics::observe("crabmail_ingest_analysis_seconds", &[], took);
            prepared
        })
    };
    let mut prepared = match tokio::time::timeout(budget, work).await {
        Ok(Ok(prepared)) => prepared,
        Ok(Err(e)) => {
            tracing::error!(blob = %job.blob_id, error = %e, "ingest: analysis failed; listing unparsed");
            insight::unanalysed(&job, "analysis failed")
        }
        Err(_) => {
            tracing::warn!(blob = %job.blob_id, budget = ?budget, "ingest: analysis over budget; listing unparsed");
            insight::unanalysed(
                &job,
                &format!(
                    "analysis took longer than {}",
                    humantime::format_duration(budget)
                ),
            )
        }
    };
    if let Some(classifier) = &scoring.classifier {
        prepared.consult(classifier).await;
    }
    prepared
}

/// Commits analysed messages in batches, in the order they were handed over, so an inbox lists
/// mail as it arrived; a message still not analysed after `HOLD` steps out of line and is
/// committed whenever it is done, so it delays only itself.
async fn commit_loop(
    store: SharedStore,
    wakeups: Arc<Wakeups>,
    clock: SharedClock,
    in_flight: InFlight,
    mut order: mpsc::Receiver<oneshot::Receiver<Ingested>>,
    breakers: BreakerWatch,
    shutdown: CancellationToken,
) {
    let mut head: Option<oneshot::Receiver<Ingested>> = None;
    let mut late = FuturesUnordered::new();
    let mut order_closed = false;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        // Everything ready, in line first, without waiting.
        while batch.len() < BATCH {
            if head.is_none() {
                match order.try_recv() {
                    Ok(next) => head = Some(next),
                    Err(_) => break,
                }
            }
            let Some(next) = head.as_mut() else { break };
            match next.try_recv() {
                Ok(item) => {
                    batch.push(item);
                    head = None;
                }
                Err(oneshot::error::TryRecvError::Empty) => break,
                // The analysis task died: its job stays in the store for a later sweep.
                Err(oneshot::error::TryRecvError::Closed) => head = None,
            }
        }
        while batch.len() < BATCH {
            match late.next().now_or_never() {
                Some(Some(Ok(item))) => batch.push(item),
                Some(Some(Err(_))) => {}
                _ => break,
            }
        }
        if !batch.is_empty() {
            let items = std::mem::take(&mut batch);
            let reported = commit(&*store, &wakeups, &clock, &items, &shutdown).await;
            // Rare (a report that bounced or complained about mail we sent), so judged in line.
            for (account_id, inbox_id) in reported {
                breakers.judge(&account_id, &inbox_id).await;
            }
            in_flight.remove(&items);
            continue;
        }
        // Nothing ready: wait for the head of the line (at most HOLD), a late one, or a new job.
        match head.take() {
            Some(mut next) => tokio::select! {
                done = &mut next => {
                    if let Ok(item) = done {
                        batch.push(item);
                    }
                }
                Some(done) = late.next(), if !late.is_empty() => {
                    head = Some(next);
                    if let Ok(item) = done {
                        batch.push(item);
                    }
                }
                _ = tokio::time::sleep(HOLD) => late.push(next),
            },
            None => {
                if order_closed && late.is_empty() {
                    return;
                }
                tokio::select! {
                    next = order.recv(), if !order_closed => match next {
                        Some(next) => head = Some(next),
                        None => order_closed = true,
                    },
                    Some(done) = late.next(), if !late.is_empty() => {
                        if let Ok(item) = done {
                            batch.push(item);
                        }
                    }
                }
            }
        }
    }
}

/// One batch into the store, retried while the store refuses (the jobs stay durable meanwhile);
/// returns the `(account, inbox)` whose sent mail a report in it bounced or complained about.
async fn commit(
    store: &dyn crate::store::Store,
    wakeups: &Wakeups,
    clock: &SharedClock,
    items: &[Ingested],
    shutdown: &CancellationToken,
) -> Vec<(String, String)> {
    loop {
        match store.complete_ingest(items.to_vec(), clock.now()).await {
            Ok(completed) => {
                wakeups.announce_all(&completed.wakes);
                return completed.reported_senders;
            }
            Err(e) => {
                tracing::error!(error = %e, "ingest: store refused a batch; retrying");
                crate::metrics::count("crabmail_store_errors_total", &[("where", "ingest")]);
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_PAUSE) => {}
                    // The jobs stay in the store; a later sweep or start takes them.
                    _ = shutdown.cancelled() => return Vec::new(),
                }
            }
        }
    }
}
