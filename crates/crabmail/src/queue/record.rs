//! Recording a round of deliveries: what each outcome means for its recipient, and the one
//! transaction that commits it (retried while the store is unavailable; the lease brings the
//! recipients back if it never commits).

use super::*;
use crate::outbound::breaker;
use crate::store::QuotaScope;

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
        self.record(outcomes).await;
        if troubled {
            self.check_breakers(first).await;
        }
    }

    /// After a round that bounced or deferred: pauses the sending inbox, or else its account,
    /// when its figures trip a breaker.
    async fn check_breakers(&self, sent: &Claimed) {
        let now = self.clock.now();
        let sent_from = Timestamp(now.0 - self.breaker.window.as_millis() as i64);
        let attempts_from = Timestamp(now.0 - self.breaker.deferral_window.as_millis() as i64);
        let scopes = [
            QuotaScope::Inbox {
                account_id: &sent.account_id,
                inbox_id: &sent.inbox_id,
            },
            QuotaScope::Account(&sent.account_id),
        ];
        for scope in scopes {
            let metrics = match self
                .store
                .breaker_metrics(scope, sent_from, attempts_from)
                .await
            {
                Ok(metrics) => metrics,
                Err(e) => {
                    tracing::error!(error = %e, "queue: cannot read breaker figures");
                    return;
                }
            };
            let Some(trip) = breaker::trips(&self.breaker, &metrics) else {
                continue;
            };
            let detail = serde_json::json!({
                "rate": trip.rate,
                "threshold": trip.threshold,
                "recipients": metrics.recipients,
                "hard_bounces": metrics.hard_bounces,
                "attempts": metrics.attempts,
                "deferrals": metrics.deferrals,
            });
            match self
                .store
                .pause(scope, trip.reason, Some(detail), now)
                .await
            {
                Ok(Some(wake)) => {
                    tracing::warn!(
                        scope = scope.key(),
                        reason = trip.reason,
                        rate = trip.rate,
                        "queue: circuit breaker paused sending"
                    );
                    self.wakeups.announce_all(&[wake]);
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "queue: cannot pause sending"),
            }
            // The account is judged on its own only when the inbox was not to blame.
            return;
        }
    }

    /// Commits a round; new local messages go to ingest and waiting long-polls wake.
    pub(super) async fn record(&self, outcomes: Outcomes) {
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
