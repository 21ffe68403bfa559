//! Webhook endpoints: `GET|POST /v1/webhooks`, `GET|DELETE /v1/webhooks/{id}`, `POST
//! /v1/webhooks/{id}/rotate|replay`, `GET /v1/webhooks/{id}/deliveries`. Delivery itself is
//! `crate::webhook`'s.

use super::ApiState;
use super::error::{ApiError, Json, Path, Query};
use super::inboxes::owned_inbox;
use crate::account::Caller;
use crate::store::{WebhookDelivery, WebhookRecord};
use crate::webhook::{EVENT_TYPES, sign, target};
use axum::extract::State;
use axum::http::StatusCode;
use crabmail_api::{
    CreateWebhook, ErrorBody, ReplayWebhook, Webhook, WebhookDeliveries, WebhookList,
};
use serde::Deserialize;
use std::time::Duration;
use tokio::time::Instant;

/// A rotated secret keeps signing beside the new one this long, so receivers can switch over.
const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);
const ID_PREFIX: &str = "whk";

/// Register an endpoint. It gets every event from now on (of the types and inbox named), POSTed
/// as Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature` (`v1,<base64
/// HMAC-SHA256 of "id.timestamp.body">` with the secret returned here, once). The body is
/// `{type, timestamp, data}`, `data` being the event as `GET /v1/events` shows it (a received
/// message's event adds its summary, with `security`). Failed deliveries are retried at 5 s,
/// 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h, in order per endpoint; 410 disables it.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    security(("bearer" = [])),
    responses((status = 201, body = Webhook), (status = 404, body = ErrorBody),
        (status = 409, description = "The account has its most webhooks", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create_webhook(
    State(state): State<ApiState>,
    caller: Caller,
    Json(request): Json<CreateWebhook>,
) -> Result<(StatusCode, axum::Json<Webhook>), ApiError> {
    caller.require_account_wide()?;
    let url = checked_url(&state, &request.url).await?;
    for (i, kind) in request.event_types.iter().enumerate() {
        if !EVENT_TYPES.contains(&kind.as_str()) {
            return Err(ApiError::invalid(format!(
                "event_types: unknown type `{kind}`; known: {}",
                EVENT_TYPES.join(", ")
            ))
            .with_field(format!("event_types[{i}]")));
        }
    }
    if let Some(inbox_id) = &request.inbox_id {
        owned_inbox(&state, &caller, inbox_id).await?;
    }
    let existing = state.store.list_webhooks(&caller.account_id).await?;
    if existing.len() >= state.webhooks.max_per_account {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_webhooks",
            format!(
                "an account may have {} webhooks; delete one first",
                state.webhooks.max_per_account
            ),
        ));
    }
    let now = state.clock.now();
    let mut types = request.event_types;
    types.sort();
    types.dedup();
    let created = state
        .store
        .create_webhook(WebhookRecord {
            id: crate::id::new_id(ID_PREFIX, now),
            account_id: caller.account_id.clone(),
            url: url.to_string(),
            secret: sign::new_secret(),
            previous_secret: None,
            previous_until: None,
            event_types: types,
            inbox_id: request.inbox_id,
            status: "active".into(),
            disabled_reason: None,
            cursor: 0,
            attempt: 0,
            next_attempt_at: now,
            created_at: now,
        })
        .await?;
    Ok((StatusCode::CREATED, axum::Json(with_secret(created))))
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = WebhookList)))]
pub async fn list_webhooks(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<WebhookList>, ApiError> {
    caller.require_account_wide()?;
    let hooks = state.store.list_webhooks(&caller.account_id).await?;
    Ok(axum::Json(WebhookList {
        webhooks: hooks.into_iter().map(view).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorBody)))]
pub async fn get_webhook(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Webhook>, ApiError> {
    Ok(axum::Json(view(owned(&state, &caller, &id).await?)))
}

/// Removes the endpoint and its delivery log; nothing more is sent to it.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)))]
pub async fn delete_webhook(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_account_wide()?;
    if !crate::id::looks_like(ID_PREFIX, &id)
        || !state.store.delete_webhook(&caller.account_id, &id).await?
    {
        return Err(ApiError::not_found("webhook"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret, returned once. For 24 hours deliveries carry two signatures, one per secret,
/// so a receiver can switch without losing an event.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate", tag = "webhooks",
    security(("bearer" = [])), params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Webhook>, ApiError> {
    owned(&state, &caller, &id).await?;
    let until = state.clock.now().plus(ROTATION_OVERLAP);
    let rotated = state
        .store
        .rotate_webhook_secret(&caller.account_id, &id, &sign::new_secret(), until)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(axum::Json(with_secret(rotated)))
}

/// Delivers again from an event on (by `seq` or `event_id`, as `GET /v1/events` shows them):
/// that event and every later one, in order. A disabled endpoint is enabled again.
#[utoipa::path(post, path = "/v1/webhooks/{id}/replay", tag = "webhooks",
    request_body = ReplayWebhook, security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn replay(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(request): Json<ReplayWebhook>,
) -> Result<axum::Json<Webhook>, ApiError> {
    owned(&state, &caller, &id).await?;
    let seq = match (request.seq, request.event_id.as_deref()) {
        (Some(seq), None) => seq,
        (None, Some(event_id)) => event_id
            .rsplit_once('_')
            .filter(|(_, seq)| {
                crate::events::event_id(&caller.account_id, seq.parse().unwrap_or(-1)) == event_id
            })
            .and_then(|(_, seq)| seq.parse().ok())
            .ok_or_else(|| {
                ApiError::invalid("event_id: not an event of this account").with_field("event_id")
            })?,
        _ => {
            return Err(ApiError::invalid("give one of `seq` and `event_id`").with_field("seq"));
        }
    };
    if seq < 1 {
        return Err(ApiError::invalid("seq: event seqs start at 1").with_field("seq"));
    }
    let replayed = state
        .store
        .replay_webhook(&caller.account_id, &id, seq - 1, state.clock.now())
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(axum::Json(view(replayed)))
}

/// Attempts listed at most.
const MAX_DELIVERIES: usize = 500;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// With `wait`: hold the answer until at least this many attempts are listed.
    min: Option<usize>,
    /// Seconds to hold the answer for `min` (0 to the API's longest wait).
    wait: Option<u64>,
}

/// Every attempt of the last 7 days, newest first (at most 500). With `min` and `wait`, the
/// answer waits until that many are listed (or the wait ends): a way to follow an endpoint.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id"), DeliveriesQuery),
    responses((status = 200, body = WebhookDeliveries), (status = 404, body = ErrorBody)))]
pub async fn list_deliveries(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<axum::Json<WebhookDeliveries>, ApiError> {
    owned(&state, &caller, &id).await?;
    let wait = Duration::from_secs(query.wait.unwrap_or(0));
    if wait > state.max_wait {
        return Err(ApiError::invalid(format!(
            "wait: at most {} seconds",
            state.max_wait.as_secs()
        )));
    }
    let min = query.min.unwrap_or(0).min(MAX_DELIVERIES);
    let deadline = Instant::now() + wait;
    // Subscribe before looking, so an attempt recorded between the look and the wait still wakes us.
    let mut progress = state.wakeups.subscribe(&format!("webhook:{id}"));
    let deliveries = loop {
        let deliveries = state
            .store
            .webhook_deliveries(&caller.account_id, &id, MAX_DELIVERIES)
            .await?;
        if deliveries.len() >= min || Instant::now() >= deadline || state.shutdown.is_cancelled() {
            break deliveries;
        }
        super::pause(&state, &mut progress, deadline).await;
    };
    Ok(axum::Json(WebhookDeliveries {
        deliveries: deliveries
            .into_iter()
            .map(|d| delivery_view(d, &caller.account_id))
            .collect(),
    }))
}

/// The account's endpoint (webhooks belong to the account: an inbox-limited token sees none).
async fn owned(state: &ApiState, caller: &Caller, id: &str) -> Result<WebhookRecord, ApiError> {
    caller.require_account_wide()?;
    if !crate::id::looks_like(ID_PREFIX, id) {
        return Err(ApiError::not_found("webhook"));
    }
    state
        .store
        .get_webhook(&caller.account_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))
}

/// The URL as written, then (unless private targets are allowed) its name's addresses: a name
/// that resolves only inward is refused now; one that does not resolve yet is accepted and
/// checked again at every delivery.
async fn checked_url(state: &ApiState, text: &str) -> Result<url::Url, ApiError> {
    let allow_private = state.webhooks.allow_private;
    let refused = |e: target::TargetError| ApiError::invalid(format!("url: {e}")).with_field("url");
    let url = target::check_url(text.trim(), allow_private).map_err(refused)?;
    if let (false, Some(url::Host::Domain(name))) = (allow_private, url.host()) {
        let name = name.to_owned();
        if let Ok(found) = state.dns.addresses(&name).await
            && !found.is_empty()
            && found.iter().all(|ip| target::public(*ip).is_err())
        {
            return Err(refused(target::TargetError::Private(name)));
        }
    }
    Ok(url)
}

fn view(hook: WebhookRecord) -> Webhook {
    let retrying = hook.attempt > 0 && hook.status == "active";
    Webhook {
        id: hook.id,
        url: hook.url,
        event_types: hook.event_types,
        inbox_id: hook.inbox_id,
        status: hook.status,
        disabled_reason: hook.disabled_reason,
        secret: None,
        cursor: hook.cursor,
        next_attempt_at: retrying.then(|| hook.next_attempt_at.to_rfc3339()),
        failed_attempts: hook.attempt,
        created_at: hook.created_at.to_rfc3339(),
    }
}

fn with_secret(hook: WebhookRecord) -> Webhook {
    let secret = hook.secret.clone();
    Webhook {
        secret: Some(secret),
        ..view(hook)
    }
}

fn delivery_view(d: WebhookDelivery, account_id: &str) -> crabmail_api::WebhookDelivery {
    crabmail_api::WebhookDelivery {
        event_id: crate::events::event_id(account_id, d.event_seq),
        event_seq: d.event_seq,
        attempt: d.attempt,
        at: d.at.to_rfc3339(),
        status_code: d.code,
        error: d.error,
        outcome: d.outcome,
        duration_ms: d.duration_ms,
    }
}
