//! The durable outbound queue at work: claim recipients that are due (with a lease, so a crashed
//! worker's recipients come back), deliver them grouped by message and route, and record every
//! outcome in one transaction with what it implies: the next attempt, a bounce report into the
//! sending inbox, a suppression, local deliveries, events.
//!
//! Mail for inboxes we host is delivered here, through the same ingest path as mail from the
//! network, with no SMTP hop. The worker sleeps until the next recipient is due (on the `Clock`,
//! so tests move time instead of waiting) or until new mail is queued.

pub mod schedule;

use crate::account::address::Domain;
use crate::account::{Accounts, Resolved};
use crate::clock::{SharedClock, Timestamp};
use crate::config::Config;
use crate::delivery::Deliverer;
use crate::delivery::dsn::{self, Failed};
use crate::delivery::outcome::{Outcome, Verdict};
use crate::delivery::route::Route;
use crate::events::Wakeups;
use crate::id;
use crate::ingest::IngestQueue;
use crate::ingest::accept::{self, Copies};
use crate::store::{
    AttemptRecord, Claimed, InboundMessage, InboxTarget, IngestJob, Outcomes, RecipientResult,
    SharedStore, Status, Suppression,
};
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
    ) -> Queue {
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
            let route = if self
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
        let results: Vec<Outcome> = match &job.route {
            Route::Local => {
                self.deliver_locally(&job.recipients, &body, &mut outcomes)
                    .await
            }
            route => {
                let addresses: Vec<String> =
                    job.recipients.iter().map(|r| r.address.clone()).collect();
                contain_panic(
                    self.deliverer
                        .deliver(route, &first.return_path, &addresses, &body),
                    addresses.len(),
                )
                .await
            }
        };
        let now = self.clock.now();
        let mut failed = Vec::new();
        for (recipient, outcome) in job.recipients.iter().zip(results) {
            let (status, next) = match outcome.verdict {
                Verdict::Delivered => (Status::Delivered, None),
                Verdict::Bounced => (Status::Bounced, None),
                Verdict::Deferred => {
                    match self.schedule.after_failure(
                        recipient.attempts + 1,
                        recipient.queued_at,
                        now,
                        rand::random(),
                    ) {
                        Next::RetryAt(at) => (Status::Deferred, Some(at)),
                        Next::Expire => (Status::Expired, None),
                    }
                }
            };
            tracing::info!(
                message = %recipient.message_id,
                to = %recipient.address,
                status = status.as_str(),
                reply = %outcome.diagnostic(),
                "queue: delivery attempt"
            );
            if outcome.is_bad_mailbox() {
                outcomes.suppress.push(Suppression {
                    account_id: recipient.account_id.clone(),
                    address: recipient.address.to_ascii_lowercase(),
                    reason: outcome.diagnostic(),
                    created_at: now,
                });
            }
            if matches!(status, Status::Bounced | Status::Expired) {
                failed.push(Failed {
                    address: recipient.address.clone(),
                    outcome: outcome.clone(),
                    last_attempt: now,
                    expired: status == Status::Expired,
                });
            }
            outcomes.results.push(RecipientResult {
                recipient_id: recipient.recipient_id.clone(),
                account_id: recipient.account_id.clone(),
                message_id: recipient.message_id.clone(),
                inbox_id: recipient.inbox_id.clone(),
                address: recipient.address.clone(),
                status,
                next_attempt_at: next,
                attempt: AttemptRecord {
                    at: now,
                    host: outcome.host,
                    code: outcome.code,
                    enhanced: outcome.enhanced,
                    text: outcome.text,
                    tls: outcome.tls,
                },
            });
        }
        if !failed.is_empty()
            && let Some(report) = self.bounce_report(first, &body, &failed, now).await
        {
            outcomes.inbound.push(report);
        }
        self.record(outcomes).await;
    }

    /// Straight into the recipients' inboxes, one stored copy for all of them.
    async fn deliver_locally(
        &self,
        recipients: &[Claimed],
        body: &[u8],
        outcomes: &mut Outcomes,
    ) -> Vec<Outcome> {
        let now = self.clock.now();
        let mut copies = Copies::default();
        let mut results = Vec::with_capacity(recipients.len());
        for recipient in recipients {
            results.push(match self.accounts.resolve(&recipient.address).await {
                Ok(Resolved::Inbox(target)) => {
                    copies.add(target, &recipient.address, now);
                    Outcome::delivered_locally("delivered to a local inbox").at_host(&self.hostname)
                }
                Ok(_) => Outcome::bounced(
                    "5.1.1",
                    format!("<{}>: no such mailbox here", recipient.address),
                )
                .at_host(&self.hostname),
                Err(e) => Outcome::deferred("4.3.0", format!("local store unavailable: {e}")),
            });
        }
        if !copies.is_empty() {
            let envelope = accept::local_envelope(&recipients[0].return_path, &self.hostname);
            outcomes.inbound.push(accept::accept(
                body.to_vec(),
                envelope,
                copies,
                None,
                false,
                now,
            ));
        }
        results
    }

    /// An RFC 3464 report into the inbox that sent the message (never for a null sender).
    async fn bounce_report(
        &self,
        sent: &Claimed,
        original: &[u8],
        failed: &[Failed],
        now: Timestamp,
    ) -> Option<InboundMessage> {
        if sent.return_path.is_empty() {
            return None;
        }
        let report_id = id::new_id(id::BLOB, now);
        let domain = Domain::of(&sent.return_path)
            .map(Domain::into_string)
            .unwrap_or_default();
        let bytes = dsn::bounce(&dsn::Report {
            reporting_mta: &self.hostname,
            from_domain: &domain,
            to: &sent.return_path,
            original,
            arrival: sent.queued_at,
            now,
            id: &report_id,
            failed,
        });
        // Signed like everything we send, by the sending inbox's domain.
        // The report must not be lost to a key lookup: unsigned if the store cannot answer.
        let bytes = self
            .signer
            .sign(&domain, bytes.clone())
            .await
            .unwrap_or(bytes);
        let mut copies = Copies::default();
        let sender = InboxTarget {
            inbox_id: sent.inbox_id.clone(),
            account_id: sent.account_id.clone(),
        };
        copies.add(sender, &sent.return_path, now);
        // A report has a null return path: nothing ever answers it.
        let envelope = accept::local_envelope("", &self.hostname);
        Some(accept::accept(bytes, envelope, copies, None, false, now))
    }

    /// Commits a round; new local messages go to ingest and waiting long-polls wake.
    async fn record(&self, outcomes: Outcomes) {
        let jobs: Vec<IngestJob> = outcomes.inbound.iter().map(accept::job).collect();
        for _ in 0..RECORD_ATTEMPTS {
            match self
                .store
                .record_outcomes(outcomes.clone(), self.clock.now())
                .await
            {
                Ok(wakes) => {
                    for job in jobs {
                        self.ingest.push(job);
                    }
                    self.wakeups.announce_all(&wakes);
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "queue: cannot record outcomes; retrying");
                    tokio::time::sleep(RECORD_RETRY).await;
                }
            }
        }
        tracing::error!(
            "queue: outcomes not recorded; the recipients return when their lease ends"
        );
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
