//! Wiring: open the store, start ingest, the SMTP listener and the HTTP API on listeners bound by
//! the caller, and shut all of it down in order.
//!
//! Shutdown order: stop accepting; sessions answer 421 at their next read and requests finish
//! (long-polls return early), within `shutdown.grace`; then the queue finishes and records the
//! deliveries in flight; then ingest stops after its current batch; then the store finishes
//! queued writes and closes. A commit in progress always completes, so no
//! transaction is left half-written, and nothing answered with 250 is lost.

use crate::account::Accounts;
use crate::api::{self, ApiState};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::delivery::Deliverer;
use crate::dkim::Signer;
use crate::dns::Dns;
use crate::domain::{DomainError, Domains};
use crate::events::Wakeups;
use crate::ingest;
use crate::outbound::Outbound;
use crate::queue::{Queue, QueueHandle};
use crate::smtp::policy::AuthGuard;
use crate::smtp::{self, Role, SmtpContext};
use crate::store::{self, SharedStore, StoreError};
use crate::verify::Verifier;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("TLS: {0}")]
    Tls(#[from] smtp::tls::TlsError),
    #[error(transparent)]
    Dns(#[from] crate::dns::DnsError),
    #[error(transparent)]
    Delivery(#[from] crate::delivery::DeliveryError),
    #[error("network: {0}")]
    Network(std::io::Error),
    #[error("shared domain: {0}")]
    Domain(#[from] DomainError),
    #[error("{0}")]
    Webhooks(String),
}

/// Sockets the server serves on, bound before `run` so tests can bind port 0 and learn the port.
pub struct Listeners {
    pub api: TcpListener,
    pub mx: TcpListener,
    pub submission: TcpListener,
    pub submission_tls: TcpListener,
}

impl Listeners {
    /// The API's listener and the three SMTP ones (MX, submission, submissions).
    fn split(self) -> (TcpListener, [TcpListener; 3]) {
        (self.api, [self.mx, self.submission, self.submission_tls])
    }

    pub async fn bind(config: &Config) -> Result<Listeners, ServerError> {
        Ok(Listeners {
            api: bind("api", config.api.listen).await?,
            mx: bind("mx", config.mx.listen).await?,
            submission: bind("submission", config.submission.listen).await?,
            submission_tls: bind(
                "submission (implicit TLS)",
                config.submission.implicit_tls_listen,
            )
            .await?,
        })
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { what, addr, source })
}

/// Serves until `shutdown` is cancelled, then stops in order (see the module doc).
pub async fn run(
    config: Config,
    listeners: Listeners,
    clock: SharedClock,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        ServerError::Store(StoreError::Unavailable(format!(
            "{}: {e}",
            config.data_dir.display()
        )))
    })?;
    activate_encoder(&config.data_dir);
    let store = store::open(&config).await?;
    let result = serve(&config, listeners, clock, shutdown, store.clone()).await;
    store.close().await;
    result
}

/// Stage two of injection scoring, when built in and installed; without it scores are stage
/// one's, as in the default build.
fn activate_encoder(_data_dir: &std::path::Path) {
    #[cfg(feature = "encoder")]
    {
        use crate::ingest::risk::encoder;
        let dir = encoder::install::default_dir(_data_dir);
        if !dir.join("model.safetensors").exists() {
            tracing::warn!(dir = %dir.display(), "risk: stage two is built in but not installed (crabmail encoder install)");
        } else if encoder::head().is_none() {
            tracing::warn!("risk: this build has no trained stage-two head");
        } else if let Err(e) = encoder::activate(&dir) {
            tracing::error!(error = %e, "risk: stage two not loaded");
        } else {
            tracing::info!(dir = %dir.display(), "risk: stage two (all-MiniLM-L6-v2) active");
        }
    }
}

async fn serve(
    config: &Config,
    listeners: Listeners,
    clock: SharedClock,
    shutdown: CancellationToken,
    store: SharedStore,
) -> Result<(), ServerError> {
    let wakeups = Arc::new(Wakeups::new());
    let follower = follow_other_nodes(store.clone(), wakeups.clone());
    // What this node's journal knows was delivered is recorded before its leases are freed.
    let journal = crate::queue::journal::open_and_replay(&config.data_dir, &store, &clock).await;
    resume_own_work(&store).await;
    let ingest_stop = CancellationToken::new();
    let (ingest_queue, ingest_worker) =
        start_ingest(config, &store, &wakeups, &clock, &ingest_stop);
    let accounts = Accounts::new(
        store.clone(),
        clock.clone(),
        &config.domain,
        config.signup.policy,
    )
    .with_return_paths(return_path_key(&store, &clock).await?);
    let dns = Dns::new(&config.dns)?;
    let deliverer = Arc::new(Deliverer::new(config, dns.clone(), clock.clone())?);
    let queue_handle = QueueHandle::default();
    let signer = Arc::new(Signer::new(store.clone(), clock.clone()));
    let domains = ready_domains(config, &store, &clock, &dns, &accounts).await?;
    let outbound = Outbound::new(
        store.clone(),
        signer.clone(),
        clock.clone(),
        queue_handle.clone(),
        wakeups.clone(),
        accounts.lists().clone(),
        config,
    );
    let queue_stop = CancellationToken::new();
    let queue = Queue::new(
        config,
        store.clone(),
        accounts.clone(),
        deliverer,
        ingest_queue.clone(),
        wakeups.clone(),
        clock.clone(),
        signer,
        journal,
    )
    .start(queue_handle, queue_stop.clone());
    let inbound_ctx = inbound_context(
        config,
        &dns,
        accounts.clone(),
        store.clone(),
        ingest_queue,
        clock.clone(),
        outbound.clone(),
    )?;
    let webhooks_stop = CancellationToken::new();
    let webhooks = crate::webhook::Dispatcher::new(
        &config.webhooks,
        dns.clone(),
        store.clone(),
        clock.clone(),
        wakeups.clone(),
    )
    .map_err(ServerError::Webhooks)?
    .start(webhooks_stop.clone());
    let addresses = Addresses::of(&listeners)?;
    let api_state = ApiState {
        accounts,
        store: store.clone(),
        outbound,
        wakeups: wakeups.clone(),
        clock,
        max_wait: config.api.max_wait,
        shutdown: shutdown.clone(),
        hostname: config.hostname().to_owned(),
        domains,
        webhooks: config.webhooks.clone(),
        dns: dns.clone(),
        self_url: addresses.api_url(),
        metrics_from: config.api.metrics_from.clone(),
    };
    let sessions = TaskTracker::new();
    let (api, smtp_listeners) = listeners.split();
    let smtp = start_smtp(config, smtp_listeners, inbound_ctx, &shutdown, &sessions);
    let http = start_api(config, api_state, api, &shutdown);
    addresses.announce(&config.domain);

    shutdown.cancelled().await;
    tracing::info!("shutting down");
    let http_result = stop_serving(smtp, sessions, http, config.shutdown.grace).await;
    // Deliveries in flight finish and are recorded; then ingest takes what they delivered locally.
    queue_stop.cancel();
    let _ = queue.await;
    ingest_stop.cancel();
    let _ = ingest_worker.await;
    webhooks_stop.cancel();
    let _ = webhooks.await;
    follower.abort();
    http_result
}

/// What an MX session works with (submission differs only in role and trusted networks).
fn inbound_context(
    config: &Config,
    dns: &Dns,
    accounts: Accounts,
    store: SharedStore,
    ingest: ingest::IngestQueue,
    clock: SharedClock,
    outbound: Outbound,
) -> Result<SmtpContext, ServerError> {
    Ok(SmtpContext {
        role: Role::Inbound,
        hostname: config.hostname().to_owned(),
        limits: config.smtp.clone(),
        accounts,
        store,
        ingest,
        tls: Some(smtp::tls::acceptor(
            &config.tls.cert,
            &config.tls.key,
            &config.data_dir,
            config.hostname(),
        )?),
        outbound,
        auth_guard: Arc::new(AuthGuard::new(
            config.submission.max_auth_failures,
            config.submission.auth_cooldown,
        )),
        trusted_networks: Vec::new(),
        blocked_inbound: config.lists.inbound_blocked,
        verifier: config.verify.enabled.then(|| {
            Arc::new(Verifier::new(
                dns,
                config.hostname(),
                &config.verify,
                clock.clone(),
            ))
        }),
        clock,
    })
}

/// The shared domain with its keys, and the postmaster's inbox: in place before any listener
/// answers.
async fn ready_domains(
    config: &Config,
    store: &SharedStore,
    clock: &SharedClock,
    dns: &Dns,
    accounts: &Accounts,
) -> Result<Domains, ServerError> {
    let domains = Domains::new(
        store.clone(),
        clock.clone(),
        dns.clone(),
        config.hostname(),
        &config.domain,
        config.dkim.ed25519,
    );
    domains.ensure_shared().await?;
    accounts
        .ensure_postmaster()
        .await
        .map_err(|e| ServerError::Store(StoreError::Unavailable(e.to_string())))?;
    Ok(domains)
}

/// The HTTP API on its listener, with the configured limits.
fn start_api(
    config: &Config,
    state: ApiState,
    listener: TcpListener,
    shutdown: &CancellationToken,
) -> JoinHandle<std::io::Result<()>> {
    let rate = api::rate::RateLimiter::new(config.api.rate_limit, config.api.rate_burst);
    let app = api::router(state, config.api.max_body_size, rate);
    let limits = api::serve::HttpLimits::from(&config.api);
    tokio::spawn(api::serve::serve(listener, app, limits, shutdown.clone()))
}

/// Arrivals committed by other nodes sharing the store wake this node's long-polls too.
fn follow_other_nodes(store: SharedStore, wakeups: Arc<Wakeups>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let announce = Arc::new(move |w: store::Wake| wakeups.announce(&w));
        if let Err(e) = store.follow_arrivals(announce).await {
            tracing::warn!(error = %e, "cannot follow arrivals from other nodes");
        }
    })
}

/// Before any worker claims anything: what this node held when it last stopped is free.
/// The key of signed return paths: made by the first node to start, kept in the store, so every
/// node (and every restart) reads the return paths of mail any of them sent.
async fn return_path_key(
    store: &SharedStore,
    clock: &SharedClock,
) -> Result<crate::bounce::return_path::ReturnPaths, ServerError> {
    let candidate: [u8; 32] = rand::random();
    let candidate: String = candidate.iter().map(|b| format!("{b:02x}")).collect();
    let key = store
        .server_secret("return_path", &candidate, clock.now())
        .await?;
    Ok(crate::bounce::return_path::ReturnPaths::new(key.as_bytes()))
}

async fn resume_own_work(store: &SharedStore) {
    match store.resume_own_work().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, "resuming this node's interrupted work"),
        Err(e) => {
            tracing::error!(error = %e, "cannot resume this node's work; it waits out its leases")
        }
    }
}

/// The ingest worker, scoring with the configured policy and classifier.
fn start_ingest(
    config: &Config,
    store: &SharedStore,
    wakeups: &Arc<Wakeups>,
    clock: &SharedClock,
    stop: &CancellationToken,
) -> (ingest::IngestQueue, JoinHandle<()>) {
    ingest::start(
        store.clone(),
        wakeups.clone(),
        clock.clone(),
        scoring(config),
        &config.ingest,
        crate::outbound::watch::BreakerWatch::new(
            store.clone(),
            clock.clone(),
            wakeups.clone(),
            config.breaker.clone(),
        ),
        stop.clone(),
    )
}

fn scoring(config: &Config) -> ingest::Scoring {
    ingest::Scoring {
        policy: crate::ingest::risk::Policy {
            operator_names: config.scoring.operator_names.clone(),
            operator_addresses: config.scoring.operator_addresses.clone(),
        },
        classifier: (!config.scoring.classifier_url.is_empty()).then(|| {
            crate::ingest::risk::classifier::Classifier::new(
                config.scoring.classifier_url.clone(),
                config.scoring.classifier_timeout,
            )
        }),
    }
}

/// The MX, and submission with STARTTLS and with implicit TLS, which differ from the MX only in
/// role and in whom they trust.
fn start_smtp(
    config: &Config,
    [mx, submission, submission_tls]: [TcpListener; 3],
    inbound_ctx: SmtpContext,
    shutdown: &CancellationToken,
    sessions: &TaskTracker,
) -> [JoinHandle<()>; 3] {
    let submission_ctx = Arc::new(SmtpContext {
        role: Role::Submission,
        trusted_networks: config.submission.trusted_networks.clone(),
        ..inbound_ctx.clone()
    });
    let serve = |listener, ctx, implicit_tls| {
        tokio::spawn(smtp::serve(
            listener,
            ctx,
            implicit_tls,
            shutdown.clone(),
            sessions.clone(),
        ))
    };
    [
        serve(mx, Arc::new(inbound_ctx), false),
        serve(submission, submission_ctx.clone(), false),
        serve(submission_tls, submission_ctx, true),
    ]
}

/// Stops accepting, then gives SMTP sessions and HTTP requests `grace` to finish.
async fn stop_serving(
    smtp: [JoinHandle<()>; 3],
    sessions: TaskTracker,
    http: JoinHandle<std::io::Result<()>>,
    grace: std::time::Duration,
) -> Result<(), ServerError> {
    for listener in smtp {
        let _ = listener.await;
    }
    sessions.close();
    if tokio::time::timeout(grace, sessions.wait()).await.is_err() {
        tracing::warn!("SMTP sessions still open after the grace period; closing them");
    }
    match tokio::time::timeout(grace, http).await {
        Ok(Ok(result)) => result.map_err(ServerError::Network),
        Ok(Err(_)) => Ok(()),
        Err(_) => {
            tracing::warn!("HTTP requests still open after the grace period");
            Ok(())
        }
    }
}

/// Where the server listens, for the log line that says it is up.
struct Addresses {
    api: SocketAddr,
    mx: SocketAddr,
    submission: SocketAddr,
    submissions: SocketAddr,
}

impl Addresses {
    fn of(listeners: &Listeners) -> Result<Addresses, ServerError> {
        let addr = |l: &TcpListener| l.local_addr().map_err(ServerError::Network);
        Ok(Addresses {
            api: addr(&listeners.api)?,
            mx: addr(&listeners.mx)?,
            submission: addr(&listeners.submission)?,
            submissions: addr(&listeners.submission_tls)?,
        })
    }

    /// Where this process reaches its own API (MCP tools call it): the listening address, or
    /// loopback when it listens on every address.
    fn api_url(&self) -> String {
        let ip = match self.api.ip() {
            std::net::IpAddr::V4(v4) if v4.is_unspecified() => {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            }
            std::net::IpAddr::V6(v6) if v6.is_unspecified() => {
                std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
            }
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.api.port()))
    }

    fn announce(&self, domain: &str) {
        tracing::info!(
            api = %self.api,
            mx = %self.mx,
            submission = %self.submission,
            submissions = %self.submissions,
            domain = %domain,
            "crabmail is serving"
        );
    }
}
