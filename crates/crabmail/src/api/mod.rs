//! The HTTP API (axum): accounts and tokens, inboxes, and reading mail. JSON in and out; errors are
//! `{"error": {"code", "message"}}`; the OpenAPI 3.1 document at `/v1/openapi.json` is generated
//! from the handlers and the `crabmail-api` types below.
//!
//! Handlers stay thin: they check the caller and shape JSON; the rules live in `account` and the
//! data in `store`. Another account's resource always answers exactly like a missing one (404).

mod accounts;
mod approvals;
mod auth;
mod domains;
pub mod error;
mod events;
mod health;
mod inboxes;
mod lists;
pub(crate) mod messages;
mod metrics;
mod operator;
mod quota;
pub mod rate;
mod sending;
pub mod serve;
mod threads;
mod uploads;
mod wait;
mod webhooks;

use crate::account::Accounts;
use crate::clock::SharedClock;
use crate::events::Wakeups;
use crate::outbound::Outbound;
use crate::store::SharedStore;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use error::ApiError;
use std::sync::Arc;
use std::time::Duration;
use utoipa::OpenApi;

#[derive(Clone)]
pub struct ApiState {
    pub accounts: Accounts,
    pub store: SharedStore,
    pub outbound: Outbound,
    pub wakeups: Arc<Wakeups>,
    pub clock: SharedClock,
    pub max_wait: Duration,
    /// Long-polls return early when the server shuts down.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Our SMTP host name (what custom domains' MX records must name).
    pub hostname: String,
    pub domains: crate::domain::Domains,
    /// Where webhooks may point, and how many an account may have.
    pub webhooks: crate::config::WebhooksConfig,
    /// Checks webhook hosts when they are registered.
    pub dns: crate::dns::Dns,
    /// This server's own API (`http://127.0.0.1:8080`): MCP tools at `/mcp` call it.
    pub self_url: String,
    /// Who may read `/metrics`.
    pub metrics_from: Vec<crate::config::Network>,
}

/// A long-poll also looks again this often, in case a wake-up from another node was missed.
const RECHECK: Duration = Duration::from_secs(5);

/// Holds a long-poll until `wake` changes, the server shuts down, `deadline` passes, or it is
/// time to look again anyway (`RECHECK`). The caller then looks and decides.
pub(crate) async fn pause(
    state: &ApiState,
    wake: &mut tokio::sync::watch::Receiver<i64>,
    deadline: tokio::time::Instant,
) {
    tokio::select! {
        _ = wake.changed() => {}
        _ = state.shutdown.cancelled() => {}
        _ = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + RECHECK)) => {}
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "crabmail", description = "Email for AI agents: accounts, inboxes, the mail they receive and the mail they send."),
    paths(
        accounts::create_account, accounts::create_token, accounts::list_tokens, accounts::revoke_token,
        inboxes::create_inbox, inboxes::list_inboxes, inboxes::get_inbox, inboxes::delete_inbox,
        messages::list_messages, messages::get_message, messages::get_raw, messages::get_attachment,
        messages::delete_message, sending::send_message, sending::list_suppressions,
        sending::delete_suppression, events::list_events, domains::create_domain,
        domains::list_domains, domains::get_domain, domains::verify_domain, domains::delete_domain,
        wait::wait, threads::list_threads, threads::get_thread, quota::get_account_quota,
        quota::set_account_quota, quota::get_inbox_quota, quota::set_inbox_quota,
        inboxes::resume_inbox, inboxes::pause_account, inboxes::resume_account,
        inboxes::update_inbox, approvals::list_approvals, approvals::approve, approvals::reject,
        lists::add_entry, lists::list_entries, lists::delete_entry,
        webhooks::create_webhook, webhooks::list_webhooks, webhooks::get_webhook,
        webhooks::delete_webhook, webhooks::rotate_secret, webhooks::replay,
        webhooks::list_deliveries, uploads::create_upload,
    ),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API; `rate` limits requests per token (None: no limit).
pub fn router(
    state: ApiState,
    max_body_size: usize,
    rate: Option<std::sync::Arc<rate::RateLimiter>>,
) -> Router {
    let spec = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
    // MCP over Streamable HTTP: a token is checked before the MCP service sees the request.
    let mcp = Router::new()
        .nest_service(
            "/mcp",
            crate::mcp::service(state.self_url.clone(), state.shutdown.clone()),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::mcp::require_token,
        ));
    let router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/console", get(operator::console))
        .route("/v1/operator/queue", get(operator::queue))
        .route("/v1/operator/accounts", get(operator::accounts))
        .route("/v1/operator/deliveries", get(operator::deliveries))
        .route("/v1/operator/suppressions", get(operator::suppressions))
        .route("/v1/operator/risk", get(operator::risk))
        .route("/v1/operator/domains", get(operator::domains))
        .route("/v1/operator/messages/{id}/retry", post(operator::retry))
        .route("/v1/operator/messages/{id}/cancel", post(operator::cancel))
        .route("/readyz", get(health::readyz))
        .route(
            "/v1/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], spec) }),
        )
        .route("/v1/accounts", post(accounts::create_account))
        .route(
            "/v1/tokens",
            post(accounts::create_token).get(accounts::list_tokens),
        )
        .route("/v1/tokens/{id}", delete(accounts::revoke_token))
        .route(
            "/v1/inboxes",
            post(inboxes::create_inbox).get(inboxes::list_inboxes),
        )
        .route(
            "/v1/inboxes/{id}",
            get(inboxes::get_inbox)
                .delete(inboxes::delete_inbox)
                .patch(inboxes::update_inbox),
        )
        .route(
            "/v1/inboxes/{id}/messages",
            get(messages::list_messages).post(sending::send_message),
        )
        .route("/v1/inboxes/{id}/wait", get(wait::wait))
        .route(
            "/v1/inboxes/{id}/quota",
            get(quota::get_inbox_quota).put(quota::set_inbox_quota),
        )
        .route("/v1/inboxes/{id}/resume", post(inboxes::resume_inbox))
        .route("/v1/account/pause", post(inboxes::pause_account))
        .route("/v1/account/resume", post(inboxes::resume_account))
        .route(
            "/v1/quota",
            get(quota::get_account_quota).put(quota::set_account_quota),
        )
        .route("/v1/threads", get(threads::list_threads))
        .route("/v1/threads/{id}", get(threads::get_thread))
        .route("/v1/suppressions", get(sending::list_suppressions))
        .route(
            "/v1/suppressions/{address}",
            delete(sending::delete_suppression),
        )
        .route("/v1/events", get(events::list_events))
        .route(
            "/v1/domains",
            post(domains::create_domain).get(domains::list_domains),
        )
        .route(
            "/v1/domains/{id}",
            get(domains::get_domain).delete(domains::delete_domain),
        )
        .route("/v1/domains/{id}/verify", post(domains::verify_domain))
        .route("/.well-known/mta-sts.txt", get(domains::mta_sts_policy))
        .route(
            "/v1/messages/{id}",
            get(messages::get_message).delete(messages::delete_message),
        )
        .route("/v1/messages/{id}/raw", get(messages::get_raw))
        .route("/v1/messages/{id}/approve", post(approvals::approve))
        .route("/v1/messages/{id}/reject", post(approvals::reject))
        .route("/v1/approvals", get(approvals::list_approvals))
        .route("/v1/lists", post(lists::add_entry).get(lists::list_entries))
        .route("/v1/lists/{id}", delete(lists::delete_entry))
        .route("/v1/uploads", post(uploads::create_upload))
        .route(
            "/v1/webhooks",
            post(webhooks::create_webhook).get(webhooks::list_webhooks),
        )
        .route(
            "/v1/webhooks/{id}",
            get(webhooks::get_webhook).delete(webhooks::delete_webhook),
        )
        .route("/v1/webhooks/{id}/rotate", post(webhooks::rotate_secret))
        .route("/v1/webhooks/{id}/replay", post(webhooks::replay))
        .route(
            "/v1/webhooks/{id}/deliveries",
            get(webhooks::list_deliveries),
        )
        .route(
            "/v1/messages/{id}/attachments/{index}",
            get(messages::get_attachment),
        )
        .merge(mcp)
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed here",
            )
            .into_response()
        })
        .layer(DefaultBodyLimit::max(max_body_size))
        .route_layer(axum::middleware::from_fn(metrics::track))
        .with_state(state);
    match rate {
        Some(limiter) => router.layer(axum::middleware::from_fn_with_state(limiter, rate::limit)),
        None => router,
    }
}
