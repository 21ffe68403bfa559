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
use crate::events::Wakeups;
use crate::ingest;
use crate::outbound::Outbound;
use crate::queue::{Queue, QueueHandle};
use crate::smtp::policy::{AuthGuard, Network};
use crate::smtp::{self, Role, SmtpContext};
use crate::store::{self, SharedStore, StoreError};
use crate::verify::Verifier;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
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
}

/// Sockets the server serves on, bound before `run` so tests can bind port 0 and learn the port.
pub struct Listeners {
    pub api: TcpListener,
    pub mx: TcpListener,
    pub submission: TcpListener,
    pub submission_tls: TcpListener,
}

impl Listeners {
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
    let store = store::open(&config).await?;
    let result = serve(&config, listeners, clock, shutdown, store.clone()).await;
    store.close().await;
    result
}

async fn serve(
    config: &Config,
    listeners: Listeners,
    clock: SharedClock,
    shutdown: CancellationToken,
    store: SharedStore,
) -> Result<(), ServerError> {
    let wakeups = Arc::new(Wakeups::new());
    let follower = {
        let (store, wakeups) = (store.clone(), wakeups.clone());
        tokio::spawn(async move {
            let announce = Arc::new(move |w: store::Wake| wakeups.announce(&w));
            if let Err(e) = store.follow_arrivals(announce).await {
                tracing::warn!(error = %e, "cannot follow arrivals from other nodes");
            }
        })
    };
    // Before any worker claims anything: what this node held when it last stopped is free.
    match store.resume_own_work().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, "resuming this node's interrupted work"),
        Err(e) => {
            tracing::error!(error = %e, "cannot resume this node's work; it waits out its leases")
        }
    }
    let ingest_stop = CancellationToken::new();
    let scoring = ingest::Scoring {
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
    };
    let (ingest_queue, ingest_worker) = ingest::start(
        store.clone(),
        wakeups.clone(),
        clock.clone(),
        scoring,
        &config.ingest,
        ingest_stop.clone(),
    );
    let accounts = Accounts::new(
        store.clone(),
        clock.clone(),
        &config.domain,
        config.signup.policy,
    );
    let tls = smtp::tls::acceptor(
        &config.tls.cert,
        &config.tls.key,
        &config.data_dir,
        config.hostname(),
    )?;

    let dns = Dns::new(&config.dns)?;
    let deliverer = Arc::new(Deliverer::new(config, dns.clone(), clock.clone())?);
    let queue_handle = QueueHandle::default();
    let signer = Arc::new(Signer::new(store.clone(), clock.clone()));
    ensure_shared_domain(config, &store, &clock).await?;
    accounts
        .ensure_postmaster()
        .await
        .map_err(|e| ServerError::Store(StoreError::Unavailable(e.to_string())))?;
    let verifier = config.verify.enabled.then(|| {
        Arc::new(Verifier::new(
            &dns,
            config.hostname(),
            &config.verify,
            clock.clone(),
        ))
    });
    let outbound = Outbound::new(
        store.clone(),
        signer.clone(),
        clock.clone(),
        queue_handle.clone(),
        config.smtp.max_message_size,
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
    )
    .start(queue_handle, queue_stop.clone());

    let inbound_ctx = SmtpContext {
        role: Role::Inbound,
        hostname: config.hostname().to_owned(),
        limits: config.smtp.clone(),
        accounts: accounts.clone(),
        store: store.clone(),
        ingest: ingest_queue,
        clock: clock.clone(),
        tls: Some(tls),
        outbound: outbound.clone(),
        auth_guard: Arc::new(AuthGuard::new(
            config.submission.max_auth_failures,
            config.submission.auth_cooldown,
        )),
        trusted_networks: Vec::new(),
        verifier,
    };
    let submission_ctx = Arc::new(SmtpContext {
        role: Role::Submission,
        trusted_networks: config
            .submission
            .trusted_networks
            .iter()
            .filter_map(|n| Network::parse(n))
            .collect(),
        ..inbound_ctx.clone()
    });
    let sessions = TaskTracker::new();
    let mx_addr = listeners.mx.local_addr().map_err(ServerError::Network)?;
    let submission_addr = listeners
        .submission
        .local_addr()
        .map_err(ServerError::Network)?;
    let submissions_addr = listeners
        .submission_tls
        .local_addr()
        .map_err(ServerError::Network)?;
    let smtp_listeners = [
        tokio::spawn(smtp::serve(
            listeners.mx,
            Arc::new(inbound_ctx),
            false,
            shutdown.clone(),
            sessions.clone(),
        )),
        tokio::spawn(smtp::serve(
            listeners.submission,
            submission_ctx.clone(),
            false,
            shutdown.clone(),
            sessions.clone(),
        )),
        tokio::spawn(smtp::serve(
            listeners.submission_tls,
            submission_ctx,
            true,
            shutdown.clone(),
            sessions.clone(),
        )),
    ];

    let api_state = ApiState {
        accounts,
        store: store.clone(),
        outbound,
        wakeups: wakeups.clone(),
        clock,
        max_wait: config.api.max_wait,
        shutdown: shutdown.clone(),
        hostname: config.hostname().to_owned(),
        dns: dns.clone(),
        dkim_ed25519: config.dkim.ed25519,
    };
    let app = api::router(api_state, config.api.max_body_size);
    let api_addr = listeners.api.local_addr().map_err(ServerError::Network)?;
    let api_shutdown = shutdown.clone();
    let http_limits = api::serve::HttpLimits::from(&config.api);
    let http = tokio::spawn(async move {
        api::serve::serve(listeners.api, app, http_limits, api_shutdown).await
    });
    tracing::info!(
        api = %api_addr,
        mx = %mx_addr,
        submission = %submission_addr,
        submissions = %submissions_addr,
        domain = %config.domain,
        "crabmail is serving"
    );

    shutdown.cancelled().await;
    tracing::info!("shutting down");
    for listener in smtp_listeners {
        let _ = listener.await;
    }
    sessions.close();
    let grace = config.shutdown.grace;
    if tokio::time::timeout(grace, sessions.wait()).await.is_err() {
        tracing::warn!("SMTP sessions still open after the grace period; closing them");
    }
    let http_result = match tokio::time::timeout(grace, http).await {
        Ok(Ok(result)) => result.map_err(ServerError::Network),
        Ok(Err(_)) => Ok(()),
        Err(_) => {
            tracing::warn!("HTTP requests still open after the grace period");
            Ok(())
        }
    };
    // Deliveries in flight finish and are recorded; then ingest takes what they delivered locally.
    queue_stop.cancel();
    let _ = queue.await;
    ingest_stop.cancel();
    let _ = ingest_worker.await;
    follower.abort();
    http_result
}

/// The shared domain's row and DKIM keys, made on first start (or found).
async fn ensure_shared_domain(
    config: &Config,
    store: &SharedStore,
    clock: &SharedClock,
) -> Result<(), ServerError> {
    if store.hosted_domain(&config.domain).await?.is_some() {
        return Ok(());
    }
    let now = clock.now();
    let domain = store::DomainRecord {
        id: crate::id::new_id("dom", now),
        account_id: None,
        name: config.domain.clone(),
        created_at: now,
        verified_at: Some(now),
    };
    let keys = crate::dkim::generate(&domain.id, now, config.dkim.ed25519)
        .map_err(|e| ServerError::Store(StoreError::Unavailable(e.to_string())))?;
    let domain = store.ensure_shared_domain(domain, keys).await?;
    tracing::info!(domain = %domain.name, "dkim: keys ready for the shared domain (see `crabmail domain records`)");
    Ok(())
}
