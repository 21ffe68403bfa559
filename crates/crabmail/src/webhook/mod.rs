//! Webhooks: every event of an account's log (`GET /v1/events`) POSTed to the endpoints it
//! registered, signed as Standard Webhooks specifies (`sign`), to public addresses only unless the
//! operator allows more (`target`).
//!
//! The event log is the outbox: each event is written in the transaction of the change it
//! reports, and each endpoint keeps a cursor into the log that moves past an event only once the
//! event was delivered (2xx), filtered out, or given up on after the last retry. So an endpoint
//! gets every event at least once, in order, across crashes and restarts. A failed event is
//! retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h
//! (`webhooks.retry_schedule`; later if the endpoint says `Retry-After`), and the endpoint's
//! later events wait behind it; a 410 disables the endpoint. Every attempt is logged (`GET /v1/webhooks/{id}/deliveries`).
//!
//! Endpoints are leased like queue rows, so on shared PostgreSQL one node at a time delivers for
//! an endpoint and another takes over when a node dies (after `LEASE`).

mod endpoint;
pub mod sign;
pub mod target;

use crate::clock::SharedClock;
use crate::config::WebhooksConfig;
use crate::dns::Dns;
use crate::events::Wakeups;
use crate::store::SharedStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// Event types an endpoint can ask for (it gets all of them when it names none).
pub const EVENT_TYPES: &[&str] = &[
    "message.received",
    "message.delivered",
    "message.deferred",
    "message.bounced",
    "message.complained",
    "message.cancelled",
    "message.throttled",
    "message.held",
    "message.approved",
    "message.rejected",
    "sending.paused",
    "sending.resumed",
];

/// How long a claim on an endpoint lasts; a dead node's endpoints are taken over after it.
const LEASE: Duration = Duration::from_secs(120);
/// Endpoints delivered to at once by one node.
const CONCURRENCY: usize = 16;
/// Events committed by other nodes, and retries falling due, are noticed within this.
const POLL: Duration = Duration::from_secs(1);
/// After an event, how long the dispatcher lets others gather before it looks.
const BATCH: Duration = Duration::from_millis(20);

pub struct Dispatcher {
    store: SharedStore,
    clock: SharedClock,
    wakeups: Arc<Wakeups>,
    http: reqwest::Client,
    allow_private: bool,
    /// How long one endpoint is served per claim before it is handed back.
    turn: Duration,
    /// `webhooks.retry_schedule`.
    schedule: Vec<Duration>,
}

impl Dispatcher {
    pub fn new(
        config: &WebhooksConfig,
        dns: Dns,
        store: SharedStore,
        clock: SharedClock,
        wakeups: Arc<Wakeups>,
    ) -> Result<Dispatcher, String> {
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(target::WebhookHosts {
                dns,
                allow_private: config.allow_private,
            }))
            // A redirect is a failed delivery: following it could lead anywhere, inward too.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .timeout(config.timeout)
            .user_agent(concat!("crabmail-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("webhook client: {e}"))?;
        Ok(Dispatcher {
            store,
            clock,
            wakeups,
            http,
            allow_private: config.allow_private,
            turn: LEASE.saturating_sub(config.timeout * 2),
            schedule: Dispatcher::schedule(config),
        })
    }

    fn schedule(config: &WebhooksConfig) -> Vec<Duration> {
        config.retry_schedule.iter().map(|d| **d).collect()
    }

    pub fn start(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(Arc::new(self).run(shutdown))
    }

    async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut serving = JoinSet::new();
        while !shutdown.is_cancelled() {
            while serving.try_join_next().is_some() {}
            let room = CONCURRENCY.saturating_sub(serving.len());
            if room > 0 && self.due().await {
                let lease = crate::id::new_id("whl", self.clock.now());
                let now = self.clock.now();
                match self
                    .store
                    .claim_webhooks(&lease, now, now.plus(LEASE), room)
                    .await
                {
                    Ok(hooks) => {
                        for hook in hooks {
                            let me = self.clone();
                            let (lease, stop) = (lease.clone(), shutdown.clone());
                            serving.spawn(async move { me.serve(hook, &lease, &stop).await });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "webhooks: cannot claim endpoints"),
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = self.wakeups.any_event() => {
                    // Events come in bursts under load: look once per burst, not per event.
                    tokio::time::sleep(BATCH).await;
                }
                _ = tokio::time::sleep(POLL) => {}
                Some(_) = serving.join_next(), if !serving.is_empty() => {}
            }
        }
        // Endpoints being served stop after their current attempt and hand their claims back.
        while serving.join_next().await.is_some() {}
    }
}

impl Dispatcher {
    /// Whether an endpoint is due (a read; a failing store is reported and counts as no).
    async fn due(&self) -> bool {
        match self.store.webhooks_due(self.clock.now()).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "webhooks: cannot look for due endpoints");
                false
            }
        }
    }
}

/// How long after its `attempt`-th failure an event is tried again; None: it was the last try.
pub fn retry_delay(schedule: &[Duration], attempt: i64) -> Option<Duration> {
    let index = usize::try_from(attempt).ok()?.checked_sub(1)?;
    schedule.get(index).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_schedule_then_stop() {
        let config = crate::config::Config::defaults();
        let schedule = Dispatcher::schedule(&config.webhooks);
        assert_eq!(retry_delay(&schedule, 1), Some(Duration::from_secs(5)));
        assert_eq!(retry_delay(&schedule, 2), Some(Duration::from_secs(300)));
        assert_eq!(
            retry_delay(&schedule, 9),
            Some(Duration::from_secs(24 * 3600))
        );
        assert_eq!(retry_delay(&schedule, 10), None);
        assert_eq!(retry_delay(&schedule, 0), None);
    }
}
