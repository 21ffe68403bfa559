//! Recording a round of deliveries: what each outcome means for its recipient, and the one
//! transaction that commits it (retried while the store is unavailable; the lease brings the
//! recipients back if it never commits).

use super::*;
use crate::store::Wake;

impl Queue {
    /// What each outcome does: the recipient's new status and next attempt, a suppression for a
    /// mailbox that does not exist, one bounce report for everyone who failed for good; then all
    /// of it committed together.
    pub(super) async fn settle(
        &self,
        recipients: &[Claimed],
        results: Vec<Outcome>,
        body: &[u8],
        mut outcomes: Outcomes,
        written: Written,
    ) {
        let Some(first) = recipients.first() else {
            return;
        };
        let now = self.clock.now();
        let mut failed = Vec::new();
        for (recipient, outcome) in recipients.iter().zip(results) {
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
                        // A paced or resting destination knows better than the schedule.
                        Next::RetryAt(at) => {
                            (Status::Deferred, Some(outcome.retry_at.unwrap_or(at)))
                        }
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
            && let Some(report) = self.bounce_report(first, body, &failed, now).await
        {
            outcomes.inbound.push(report);
        }
        let troubled = outcomes
            .results
            .iter()
            .any(|r| r.status != Status::Delivered);
        if self.record(outcomes).await
            && let Some(journal) = &self.journal
        {
            journal.settle(written);
        }
        if troubled {
            self.breakers
                .judge(&first.account_id, &first.inbox_id)
                .await;
        }
    }

    /// Commits a round; new local messages go to ingest and waiting long-polls wake. False if
    /// the store never took it.
    pub(super) async fn record(&self, outcomes: Outcomes) -> bool {
        let jobs: Vec<IngestJob> = outcomes.inbound.iter().map(accept::job).collect();
        let Some(wakes) = commit_outcomes(&self.store, &self.clock, &outcomes).await else {
            tracing::error!(
                "queue: outcomes not recorded; the recipients return when their lease ends"
            );
            return false;
        };
        for result in &outcomes.results {
            let outcome = result.status.as_str();
            crate::metrics::count("crabmail_deliveries_total", &[("outcome", outcome)]);
        }
        for job in jobs {
            self.ingest.push(job);
        }
        self.wakeups.announce_all(&wakes);
        true
    }
}

/// Commits `outcomes`, retried while the store is unavailable (`RECORD_ATTEMPTS`, a
/// `RECORD_RETRY` apart): one wake-up per outcome that changed its recipient (one already final
/// or cancelled is left as it is), or None if the store never took them.
pub(super) async fn commit_outcomes(
    store: &SharedStore,
    clock: &SharedClock,
    outcomes: &Outcomes,
) -> Option<Vec<Wake>> {
    for _ in 0..RECORD_ATTEMPTS {
        match store.record_outcomes(outcomes.clone(), clock.now()).await {
            Ok(wakes) => return Some(wakes),
            Err(e) => {
                tracing::error!(error = %e, "queue: cannot record outcomes; retrying");
                crate::metrics::count("crabmail_store_errors_total", &[("where", "queue")]);
                // On the queue's clock, like every other wait of the queue: a test's manual
                // clock decides when the retry comes.
                clock.sleep_until(clock.now().plus(RECORD_RETRY)).await;
            }
        }
    }
    None
}
