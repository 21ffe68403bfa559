//! Watching the breakers: after mail an inbox sent failed (a round of deliveries that bounced or
//! deferred, or a report from another server that arrived later), its figures are read and
//! `breaker::trips` decides; a trip pauses the inbox, or else its account.

use super::breaker::{self, BreakerConfig};
use crate::clock::{SharedClock, Timestamp};
use crate::events::Wakeups;
use crate::store::{QuotaScope, SharedStore};
use std::sync::Arc;

#[derive(Clone)]
pub struct BreakerWatch {
    store: SharedStore,
    clock: SharedClock,
    wakeups: Arc<Wakeups>,
    config: BreakerConfig,
}

impl BreakerWatch {
    pub fn new(
        store: SharedStore,
        clock: SharedClock,
        wakeups: Arc<Wakeups>,
        config: BreakerConfig,
    ) -> Self {
        BreakerWatch {
            store,
            clock,
            wakeups,
            config,
        }
    }

    /// Pauses the inbox, or else its account, when its figures trip a breaker.
    pub async fn judge(&self, account_id: &str, inbox_id: &str) {
        let now = self.clock.now();
        let sent_from = Timestamp(now.0 - self.config.window.as_millis() as i64);
        let attempts_from = Timestamp(now.0 - self.config.deferral_window.as_millis() as i64);
        let scopes = [
            QuotaScope::Inbox {
                account_id,
                inbox_id,
            },
            QuotaScope::Account(account_id),
        ];
        for scope in scopes {
            let metrics = match self
                .store
                .breaker_metrics(scope, sent_from, attempts_from)
                .await
            {
                Ok(metrics) => metrics,
                Err(e) => {
                    tracing::error!(error = %e, "breakers: cannot read the figures");
                    return;
                }
            };
            let Some(trip) = breaker::trips(&self.config, &metrics) else {
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
                        "breakers: a circuit breaker paused sending"
                    );
                    self.wakeups.announce_all(&[wake]);
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "breakers: cannot pause sending"),
            }
            // The account is judged on its own only when the inbox was not to blame.
            return;
        }
    }
}
