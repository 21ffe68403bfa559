//! The MTA's sending half: take one message and the recipients that share a route, reach the
//! destination (the relay, or the domain's MX hosts in order), and come back with an `Outcome`
//! for each recipient. Classification is in `outcome`, routing in `route`, the SMTP dialogue in
//! `client`, bounce reports in `dsn`.
//!
//! Connections are reused: after a transaction, a healthy connection waits in a small pool for
//! more mail to the same host (`delivery.idle_connections`). Deliveries at once per destination
//! adapt between `queue.min_per_destination` and `queue.max_per_destination` to whether our own
//! mail queues at the remote (`concurrency`). Each MX host has a pace and a rest of its own
//! (`pacing`): one host serving many domains is rested once it throttles.
//!
//! Nothing here touches the store; the queue records what comes back.

pub mod client;
pub mod concurrency;
pub mod dsn;
pub mod mta_sts;
pub mod outcome;
pub mod pacing;
pub mod route;
pub mod simulator;
pub mod tls;

use crate::config::Relay;
use crate::config::{Config, TlsPolicy};
use crate::dns::Dns;
use client::{Client, ClientOptions, TlsMode};
use outcome::Outcome;
use route::{Route, Target};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tls::Connectors;
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("delivery TLS setup: {0}")]
    Tls(String),
}

/// Destinations whose concurrency is remembered before idle ones are forgotten.
const MAX_DESTINATIONS: usize = 50_000;

pub struct Deliverer {
    dns: Dns,
    mta_sts: Option<mta_sts::MtaSts>,
    mx: ClientOptions,
    relay: Option<(Relay, ClientOptions)>,
    connectors: Connectors,
    mx_port: u16,
    min_per_destination: usize,
    max_per_destination: usize,
    idle_limit: Duration,
    idle: Mutex<HashMap<String, Vec<(Client, Instant)>>>,
    destinations: Mutex<HashMap<String, Arc<concurrency::Limiter>>>,
    /// Pace and rest per destination domain and per MX host (`mx:<host>`).
    pacer: pacing::Pacer,
    clock: crate::clock::SharedClock,
}

impl Deliverer {
    pub fn new(
        config: &Config,
        dns: Dns,
        clock: crate::clock::SharedClock,
    ) -> Result<Deliverer, DeliveryError> {
        let d = &config.delivery;
        let connectors = tls::connectors(&d.tls_ca_file).map_err(DeliveryError::Tls)?;
        let base = ClientOptions {
            helo: config.hostname().to_owned(),
            connect_timeout: d.connect_timeout,
            command_timeout: d.command_timeout,
            data_timeout: d.data_timeout,
            tls: match d.tls {
                TlsPolicy::Opportunistic => TlsMode::Opportunistic,
                TlsPolicy::Required => TlsMode::Required,
            },
            credentials: None,
        };
        let relay = d.relay.clone().map(|relay| {
            // A smart host is always authenticated by its certificate: our credentials go to it.
            let tls = if relay.implicit_tls {
                TlsMode::Implicit {
                    name: relay.host.clone(),
                }
            } else {
                TlsMode::Verified {
                    name: relay.host.clone(),
                }
            };
            let options = ClientOptions {
                tls,
                credentials: relay.credentials.clone(),
                ..base.clone()
            };
            (relay, options)
        });
        let mta_sts = if d.mta_sts {
            let tls = connectors.verified.config().as_ref().clone();
            Some(
                mta_sts::MtaSts::new(dns.clone(), tls, d.mta_sts_port, clock.clone())
                    .map_err(DeliveryError::Tls)?,
            )
        } else {
            None
        };
        Ok(Deliverer {
            mta_sts,
            dns,
            mx: base,
            relay,
            connectors,
            mx_port: d.mx_port,
            min_per_destination: config.queue.min_per_destination,
            max_per_destination: config.queue.max_per_destination.max(1),
            idle_limit: d.idle_connections,
            idle: Mutex::new(HashMap::new()),
            destinations: Mutex::new(HashMap::new()),
            pacer: pacing::Pacer::new(
                d.rate_per_destination,
                d.throttle_backoff,
                d.throttle_backoff_max,
            ),
            clock,
        })
    }

    /// The route for a remote domain: the relay if one is configured, else its MX hosts.
    pub fn remote_route(&self, domain: &str) -> Route {
        if self.relay.is_some() {
            Route::Relay
        } else {
            Route::Mx(domain.to_owned())
        }
    }

    /// The hosts to try for a route, in order, with the session options for them.
    async fn targets(&self, route: &Route) -> Result<(Vec<Target>, ClientOptions), Outcome> {
        match route {
            Route::Relay => match &self.relay {
                Some((relay, options)) => Ok((
                    route::relay_targets(&self.dns, relay).await?,
                    options.clone(),
                )),
                None => Err(Outcome::deferred("4.3.5", "no relay is configured")),
            },
            Route::Mx(domain) => Ok((
                route::mx_targets(&self.dns, domain, self.mx_port).await?,
                self.mx.clone(),
            )),
            Route::Local | Route::Simulator => Err(Outcome::deferred(
                "4.3.5",
                "local and simulated mail is not delivered over SMTP",
            )),
        }
    }

    /// MTA-STS: under `enforce`, only the MX hosts the policy names, each over verified TLS
    /// (Ok(true)); `testing` only logs. A domain whose policy lists none of its MX hosts defers.
    async fn apply_mta_sts(
        &self,
        route: &Route,
        targets: &mut Vec<Target>,
    ) -> Result<bool, Outcome> {
        let (Route::Mx(domain), Some(sts)) = (route, &self.mta_sts) else {
            return Ok(false);
        };
        let Some(policy) = sts.policy(domain).await else {
            return Ok(false);
        };
        match policy.mode {
            mta_sts::Mode::Enforce => {
                targets.retain(|t| policy.allows(&t.host));
                if targets.is_empty() {
                    let why =
                        format!("MTA-STS policy of {domain} (enforce) lists none of its MX hosts");
                    return Err(Outcome::deferred("4.7.5", why));
                }
                Ok(true)
            }
            mta_sts::Mode::Testing => {
                if let Some(t) = targets.iter().find(|t| !policy.allows(&t.host)) {
                    tracing::info!(domain, host = %t.host, "mta-sts (testing): MX host not in the policy");
                }
                Ok(false)
            }
            mta_sts::Mode::None => Ok(false),
        }
    }

    /// Delivers one message to `recipients`, which share `route` (never `Route::Local`), when the
    /// destination's pace allows; a throttling answer rests the destination (`pacing`) and its
    /// recipients wait for the end of the rest.
    pub async fn deliver(
        &self,
        route: &Route,
        from: &str,
        recipients: &[String],
        body: &[u8],
    ) -> Vec<Outcome> {
        let n = recipients.len();
        let destination = route.key();
        if let Err(wait) = self.pacer.admit(&destination, self.clock.now()) {
            let mut outcome = Outcome::deferred("4.4.5", wait.reason);
            outcome.retry_at = Some(wait.until);
            return vec![outcome; n];
        }
        let mut outcomes = self.deliver_paced(route, from, recipients, body).await;
        let throttled = outcomes
            .iter()
            .any(|o| pacing::is_throttling(o.code, o.enhanced.as_deref()));
        if throttled {
            let until = self.pacer.throttled(&destination, self.clock.now());
            for outcome in outcomes
                .iter_mut()
                .filter(|o| pacing::is_throttling(o.code, o.enhanced.as_deref()))
            {
                outcome.retry_at = Some(until);
                outcome.text = format!(
                    "{} (throttled: {destination} rests until {})",
                    outcome.text,
                    until.to_rfc3339()
                );
            }
        } else if outcomes
            .iter()
            .any(|o| o.verdict == outcome::Verdict::Delivered)
        {
            self.pacer.succeeded(&destination);
        }
        outcomes
    }

    /// One delivery once the destination's pace allowed it: the MX hosts (or the relay) in
    /// order, each paced and rested on its own.
    async fn deliver_paced(
        &self,
        route: &Route,
        from: &str,
        recipients: &[String],
        body: &[u8],
    ) -> Vec<Outcome> {
        let n = recipients.len();
        let slot = self.destination(&route.key()).acquire().await;
        let (mut targets, options) = match self.targets(route).await {
            Ok(found) => found,
            Err(outcome) => return vec![outcome; n],
        };
        let sts_enforced = match self.apply_mta_sts(route, &mut targets).await {
            Ok(enforced) => enforced,
            Err(outcome) => return vec![outcome; n],
        };
        let mut last_failure = None;
        for target in &targets {
            // An MX host resting after a throttle (or past its pace) is skipped, whichever of
            // its domains the mail is for.
            let host_key = format!("mx:{}", target.host);
            if let Err(wait) = self.pacer.admit(&host_key, self.clock.now()) {
                let mut resting = Outcome::deferred("4.4.5", wait.reason).at_host(&target.host);
                resting.retry_at = Some(wait.until);
                last_failure = Some(resting);
                continue;
            }
            let options = if sts_enforced {
                ClientOptions {
                    tls: TlsMode::Verified {
                        name: target.host.clone(),
                    },
                    ..options.clone()
                }
            } else {
                options.clone()
            };
            let mut client = match self.checkout(target, &options.tls).await {
                Some(client) => client,
                None => match Client::connect(target, &options, &self.connectors).await {
                    Ok(client) => client,
                    Err(mut failure) => {
                        if sts_enforced {
                            failure.text = format!("MTA-STS enforce: {}", failure.text);
                        }
                        tracing::info!(host = %target.host, addr = %target.addr, reason = %failure.text, "delivery: host failed; trying the next");
                        last_failure = Some(failure);
                        continue;
                    }
                },
            };
            let (outcomes, usable) = client.send(from, recipients, body, &slot).await;
            if usable {
                self.checkin(target, &options.tls, client);
            }
            if outcomes
                .iter()
                .any(|o| pacing::is_throttling(o.code, o.enhanced.as_deref()))
            {
                self.pacer.throttled(&host_key, self.clock.now());
            } else if outcomes
                .iter()
                .any(|o| o.verdict == outcome::Verdict::Delivered)
            {
                self.pacer.succeeded(&host_key);
            }
            return outcomes;
        }
        let failure = last_failure
            .unwrap_or_else(|| Outcome::deferred("4.4.1", "no mail host could be reached"));
        vec![failure; n]
    }

    fn destination(&self, key: &str) -> Arc<concurrency::Limiter> {
        let mut map = self.destinations.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_DESTINATIONS && !map.contains_key(key) {
            // Senders choose the domains: forget the idle ones (their limits start over).
            map.retain(|_, limiter| Arc::strong_count(limiter) > 1);
        }
        map.entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(concurrency::Limiter::new(
                    key,
                    self.min_per_destination,
                    self.max_per_destination,
                ))
            })
            .clone()
    }

    /// Connections are shared only between deliveries that asked for the same protection.
    fn pool_key(target: &Target, tls: &TlsMode) -> String {
        format!("{}|{}|{tls:?}", target.host, target.addr)
    }

    /// An idle connection to `target` that still answers, if there is one.
    async fn checkout(&self, target: &Target, tls: &TlsMode) -> Option<Client> {
        loop {
            let candidate = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                idle.get_mut(&Self::pool_key(target, tls))
                    .and_then(Vec::pop)
            };
            let (mut client, since) = candidate?;
            if since.elapsed() < self.idle_limit && client.reset().await {
                return Some(client);
            }
        }
    }

    fn checkin(&self, target: &Target, tls: &TlsMode, client: Client) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let slot = idle.entry(Self::pool_key(target, tls)).or_default();
        if slot.len() < self.max_per_destination {
            slot.push((client, Instant::now()));
        }
    }

    /// Closes connections idle for longer than `delivery.idle_connections`.
    pub async fn close_idle(&self, all: bool) {
        let expired: Vec<Client> = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let mut out = Vec::new();
            for slot in idle.values_mut() {
                let (keep, drop): (Vec<_>, Vec<_>) = std::mem::take(slot)
                    .into_iter()
                    .partition(|(_, since)| !all && since.elapsed() < self.idle_limit);
                *slot = keep;
                out.extend(drop.into_iter().map(|(c, _)| c));
            }
            idle.retain(|_, slot| !slot.is_empty());
            out
        };
        for client in expired {
            client.quit().await;
        }
    }
}
