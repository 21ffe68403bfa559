//! The durable outbound queue at work: claim recipients that are due (with a lease, so a crashed
//! worker's recipients come back), deliver them grouped by message and route, and record every
//! outcome in one transaction with what it implies: the next attempt, a bounce report into the
//! sending inbox, a suppression, local deliveries, events.
//!
//! Mail for inboxes we host is delivered here, through the same ingest path as mail from the
//! network, with no SMTP hop. The worker sleeps until the next recipient is due (on the `Clock`,
//! so tests move time instead of waiting) or until new mail is queued.
//!
//! The path is claim (here) -> deliver (here, or `local` for inboxes we host) -> journal (a
//! remote's acceptance, at once: `journal`) -> record (`record`: what each outcome means,
//! committed in one transaction).

pub mod journal;
mod local;
mod record;
pub mod schedule;

use crate::account::address::Domain;
use crate::account::{Accounts, Resolved};
use crate::clock::{SharedClock, Timestamp};
use crate::config::Config;
use crate::delivery::Deliverer;
use crate::delivery::dsn::{self, Failed};
use crate::delivery::outcome::{Outcome, Verdict};
use crate::delivery::route::Route;
use crate::delivery::simulator;
use crate::events::Wakeups;
use crate::id;
use crate::ingest::IngestQueue;
use crate::ingest::accept::{self, Copies};
use crate::store::{
    AttemptRecord, Claimed, InboundMessage, InboxTarget, IngestJob, Outcomes, RecipientResult,
    SharedStore, Status, Suppression,
};
use journal::{Journal, Written};
use schedule::{Next, Schedule};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How often idle outbound connections are checked for expiry.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Pause before retrying to record outcomes the store refused.
const RECORD_RETRY: Duration = Duration::from_millis(500);
/// Attempts at recording one round before giving up (the lease then brings it back).
const RECORD_ATTEMPTS: usize = 20;

/// Runs one delivery; a panic inside it becomes a deferral of every recipient, with the reason, so
/// it is recorded as an attempt and ends in a bounce at expiry like any other failure, instead
/// of leaving the recipients queued to panic again at every lease.
async fn contain_panic(
    delivery: impl std::future::Future<Output = Vec<Outcome>>,
    recipients: usize,
) -> Vec<Outcome> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(delivery).catch_unwind().await {
        Ok(outcomes) => outcomes,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".to_owned());
            tracing::error!(panic = %what, "queue: a delivery panicked; deferring its recipients");
            vec![
                Outcome::deferred("4.3.0", format!("internal error during delivery: {what}"));
                recipients
            ]
        }
    }
}

/// Wakes the worker when mail is queued.
#[derive(Clone, Default)]
pub struct QueueHandle {
    wake: Arc<Notify>,
}

impl QueueHandle {
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

pub struct Queue {
    store: SharedStore,
    signer: Arc<crate::dkim::Signer>,
    accounts: Accounts,
    deliverer: Arc<Deliverer>,
    ingest: IngestQueue,
    wakeups: Arc<Wakeups>,
    clock: SharedClock,
    schedule: Schedule,
    hostname: String,
    lease: Duration,
    concurrency: usize,
    breakers: crate::outbound::watch::BreakerWatch,
    /// Each remote recipient gets its signed return path (`delivery.verp`).
    verp: bool,
    /// Remote acceptances, written before they commit; None if the journal cannot be opened.
    journal: Option<Journal>,
}

/// One message to one route: the unit of delivery.
struct Job {
    route: Route,
    recipients: Vec<Claimed>,
}

impl Queue {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &Config,
        store: SharedStore,
        accounts: Accounts,
        deliverer: Arc<Deliverer>,
        ingest: IngestQueue,
        wakeups: Arc<Wakeups>,
        clock: SharedClock,
        signer: Arc<crate::dkim::Signer>,
        journal: Option<Journal>,
    ) -> Queue {
        let breakers = crate::outbound::watch::BreakerWatch::new(
            store.clone(),
            clock.clone(),
            wakeups.clone(),
            config.breaker.clone(),
        );
        Queue {
            store,
            signer,
            accounts,
            deliverer,
            ingest,
            wakeups,
            clock,
            schedule: Schedule {
                retry: config.queue.retry.clone(),
                lifetime: config.queue.lifetime,
                jitter: config.queue.jitter,
            },
            hostname: config.hostname().to_owned(),
            lease: config.queue.lease,
            concurrency: config.queue.concurrency.max(1),
            breakers,
            verp: config.delivery.verp,
            journal,
        }
    }

    /// Runs until `shutdown`; deliveries in flight are finished and recorded first.
    pub fn start(
        self,
        handle: QueueHandle,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(Arc::new(self).run(handle, shutdown))
    }

    async fn run(self: Arc<Self>, handle: QueueHandle, shutdown: CancellationToken) {
        let mut running: JoinSet<()> = JoinSet::new();
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            let free = self.concurrency.saturating_sub(running.len());
            if free > 0 && !shutdown.is_cancelled() {
                for job in self.claim(free).await {
                    let queue = self.clone();
                    running.spawn(async move { queue.run_job(job).await });
                }
            }
            if running.len() >= self.concurrency {
                // Busy: look again as soon as a slot frees.
                tokio::select! {
                    _ = running.join_next() => {}
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
            let next_due = match self.store.next_due().await {
                Ok(Some(at)) => at,
                Ok(None) => self.clock.now().plus(Duration::from_secs(3600)),
                Err(e) => {
                    tracing::error!(error = %e, "queue: cannot read the next due time");
                    self.clock.now().plus(Duration::from_secs(1))
                }
            };
            tokio::select! {
                _ = handle.wake.notified() => {}
                _ = self.clock.sleep_until(next_due) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = sweep.tick() => self.deliverer.close_idle(false).await,
                _ = shutdown.cancelled() => break,
            }
        }
        while running.join_next().await.is_some() {}
        self.deliverer.close_idle(true).await;
    }

    /// Leases due recipients and groups them into jobs: one per message and route. Every
    /// claimed recipient gets a job now, so none waits out its lease.
    async fn claim(&self, slots: usize) -> Vec<Job> {
        let now = self.clock.now();
        let claimed = match self
            .store
            .claim_due(now, now.plus(self.lease), slots * 4)
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!(error = %e, "queue: cannot claim due recipients");
                return Vec::new();
            }
        };
        let mut jobs: BTreeMap<(String, String), Job> = BTreeMap::new();
        for recipient in claimed {
            // A domain lookup that fails routes remotely; if it is ours after all, the MX
            // (ourselves) takes it.
            let route = if simulator::is_simulator(&recipient.domain) {
                Route::Simulator
            } else if self
                .accounts
                .hosts_domain(&recipient.domain)
                .await
                .unwrap_or(false)
            {
                Route::Local
            } else {
                self.deliverer.remote_route(&recipient.domain)
            };
            jobs.entry((recipient.message_id.clone(), route.key()))
                .or_insert_with(|| Job {
                    route,
                    recipients: Vec::new(),
                })
                .recipients
                .push(recipient);
        }
        jobs.into_values().collect()
    }

    async fn run_job(&self, job: Job) {
        let Some(first) = job.recipients.first() else {
            return;
        };
        let body = match self.store.load_blob(&first.blob_id).await {
            Ok(Some(body)) => body,
            Ok(None) => {
                tracing::error!(message = %first.message_id, "queue: message bytes are missing");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "queue: cannot load message bytes; the lease will bring them back");
                return;
            }
        };
        let mut outcomes = Outcomes::default();
        let mut written = Written::default();
        let results: Vec<Outcome> = match &job.route {
            Route::Local => {
                self.deliver_locally(&job.recipients, &body, &mut outcomes)
                    .await
            }
            Route::Simulator => self.simulate(&job.recipients, &mut outcomes).await,
            route => {
                self.deliver_remotely(route, &job.recipients, &body, &mut written)
                    .await
            }
        };
        self.settle(&job.recipients, results, &body, outcomes, written)
            .await;
    }
}

impl Queue {
    /// To the MX hosts or the relay (the deliverer paces destinations and hosts). With signed
    /// return paths (`delivery.verp`) each recipient of an MX delivery is a transaction of its
    /// own, from its own return path, one after another on the pooled connection. Each
    /// acceptance is journaled as soon as it arrives (`written`).
    async fn deliver_remotely(
        &self,
        route: &Route,
        recipients: &[Claimed],
        body: &[u8],
        written: &mut Written,
    ) -> Vec<Outcome> {
        let Some(first) = recipients.first() else {
            return Vec::new();
        };
        // A smart host often insists that the envelope sender be the account it authenticates:
        // relayed mail keeps the inbox's address (its reports are linked by Message-ID).
        let verp = self.verp && matches!(route, Route::Mx(_));
        if let Some(paths) = self.accounts.return_paths().filter(|_| verp) {
            let mut outcomes = Vec::with_capacity(recipients.len());
            for recipient in recipients {
                let from = paths
                    .for_recipient(&recipient.recipient_id, &recipient.return_path)
                    .unwrap_or_default();
                let to = [recipient.address.clone()];
                let outcome = contain_panic(self.deliverer.deliver(route, &from, &to, body), 1);
                let outcome = outcome.await;
                written.add(self.journal(std::slice::from_ref(recipient), &outcome));
                outcomes.extend(outcome);
            }
            return outcomes;
        }
        let addresses: Vec<String> = recipients.iter().map(|r| r.address.clone()).collect();
        let outcomes = contain_panic(
            self.deliverer
                .deliver(route, &first.return_path, &addresses, body),
            addresses.len(),
        )
        .await;
        written.add(self.journal(recipients, &outcomes));
        outcomes
    }

    /// Writes the remote's acceptances to the journal before anything else happens to them.
    fn journal(&self, recipients: &[Claimed], outcomes: &[Outcome]) -> Written {
        match &self.journal {
            Some(journal) => journal.delivered(recipients.iter().zip(outcomes), self.clock.now()),
            None => Written::default(),
        }
    }

    /// Test mode: the simulator's answers, and the suppression a simulated complaint makes.
    async fn simulate(&self, recipients: &[Claimed], outcomes: &mut Outcomes) -> Vec<Outcome> {
        let asked: Vec<(String, u32)> = recipients
            .iter()
            .map(|r| (r.address.clone(), r.attempts))
            .collect();
        let answers = simulator::deliver(&*self.clock, &asked).await;
        let now = self.clock.now();
        for recipient in recipients {
            if simulator::Behaviour::of(&recipient.address) == simulator::Behaviour::Complaint {
                outcomes.suppress.push(Suppression {
                    account_id: recipient.account_id.clone(),
                    address: recipient.address.to_ascii_lowercase(),
                    reason: "complaint: the recipient reported the message as spam (simulated)"
                        .into(),
                    created_at: now,
                });
            }
        }
        answers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_delivery_defers_every_recipient_with_the_reason() {
        let outcomes = contain_panic(
            async {
                if true {
                    panic!("split character at byte 3");
                }
                Vec::new()
            },
            2,
        )
        .await;
        assert_eq!(outcomes.len(), 2);
        for outcome in outcomes {
            assert_eq!(outcome.verdict, Verdict::Deferred);
            assert!(
                outcome.diagnostic().contains("split character at byte 3"),
                "{}",
                outcome.diagnostic()
            );
        }
        let fine = contain_panic(async { vec![Outcome::deferred("4.0.0", "x")] }, 1).await;
        assert_eq!(fine.len(), 1);
    }
}
