//! Sending quotas: `GET`/`PUT /v1/quota` (the account's) and `/v1/inboxes/{id}/quota` (one
//! inbox's). An account may tighten its limits, never loosen them past the server's defaults
//! (`limits.*`, set by the operator).

use super::ApiState;
use super::error::{ApiError, Json as JsonBody, Path};
use super::inboxes::owned_inbox;
use crate::account::Caller;
use crate::outbound::quota::{self, LimitOverrides, Limits, Window};
use crate::store::QuotaScope;
use axum::extract::State;
use crabmail_api::{ErrorBody, Quota, QuotaLimits, SetQuota};

/// The account's sending limits, what each sliding window holds now, and the messages held.
#[utoipa::path(get, path = "/v1/quota", tag = "sending", security(("bearer" = [])),
    responses((status = 200, body = Quota)))]
pub async fn get_account_quota(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<Quota>, ApiError> {
    let scope = QuotaScope::Account(&caller.account_id);
    Ok(axum::Json(report(&state, scope).await?))
}

/// One inbox's sending limits, use and held messages.
#[utoipa::path(get, path = "/v1/inboxes/{id}/quota", tag = "sending", security(("bearer" = [])),
    params(("id" = String, Path, description = "Inbox id")),
    responses((status = 200, body = Quota), (status = 404, body = ErrorBody)))]
pub async fn get_inbox_quota(
    State(state): State<ApiState>,
    caller: Caller,
    Path(inbox_id): Path<String>,
) -> Result<axum::Json<Quota>, ApiError> {
    let inbox = owned_inbox(&state, &caller, &inbox_id).await?;
    let scope = QuotaScope::Inbox {
        account_id: &caller.account_id,
        inbox_id: &inbox.id,
    };
    Ok(axum::Json(report(&state, scope).await?))
}

/// Tighten the account's sending limits (at most the server's defaults; null or absent: the
/// default again). Mail already held keeps its release time.
#[utoipa::path(put, path = "/v1/quota", tag = "sending", request_body = SetQuota,
    security(("bearer" = [])),
    responses((status = 200, body = Quota), (status = 422, body = ErrorBody)))]
pub async fn set_account_quota(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(request): JsonBody<SetQuota>,
) -> Result<axum::Json<Quota>, ApiError> {
    caller.require_account_wide()?;
    let scope = QuotaScope::Account(&caller.account_id);
    let limits = within(request, state.outbound.default_limits().account)?;
    state
        .store
        .set_send_limits(scope, limits, state.clock.now())
        .await?;
    Ok(axum::Json(report(&state, scope).await?))
}

/// Tighten one inbox's sending limits.
#[utoipa::path(put, path = "/v1/inboxes/{id}/quota", tag = "sending", request_body = SetQuota,
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Inbox id")),
    responses((status = 200, body = Quota), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_inbox_quota(
    State(state): State<ApiState>,
    caller: Caller,
    Path(inbox_id): Path<String>,
    JsonBody(request): JsonBody<SetQuota>,
) -> Result<axum::Json<Quota>, ApiError> {
    let inbox = owned_inbox(&state, &caller, &inbox_id).await?;
    let scope = QuotaScope::Inbox {
        account_id: &caller.account_id,
        inbox_id: &inbox.id,
    };
    let limits = within(request, state.outbound.default_limits().inbox)?;
    state
        .store
        .set_send_limits(scope, limits, state.clock.now())
        .await?;
    Ok(axum::Json(report(&state, scope).await?))
}

/// The request as overrides, each at most the default (a default of 0 has no ceiling; a value
/// of 0 would lift the limit, so it is refused where a default applies).
fn within(request: SetQuota, default: Limits) -> Result<LimitOverrides, ApiError> {
    let overrides = LimitOverrides {
        per_minute: request.per_minute,
        per_hour: request.per_hour,
        per_day: request.per_day,
        recipients_per_day: request.recipients_per_day,
    };
    let default = Limits {
        warmup: 0,
        ..default
    };
    let asked = quota::merged(default, &overrides);
    for window in Window::ALL {
        let (value, ceiling) = (window.limit(&asked), window.limit(&default));
        if ceiling != 0 && (value == 0 || value > ceiling) {
            return Err(ApiError::invalid(format!(
                "{}: at most {ceiling} (this server's default); 0 (no limit) only where the default is 0",
                window.name()
            ))
            .with_field(window.name()));
        }
    }
    Ok(overrides)
}

/// A scope's quota as `GET .../quota` shows it.
pub(crate) async fn report(state: &ApiState, scope: QuotaScope<'_>) -> Result<Quota, ApiError> {
    let defaults = state.outbound.default_limits();
    let (default, inbox_id) = match scope {
        QuotaScope::Account(_) => (defaults.account, None),
        QuotaScope::Inbox { inbox_id, .. } => (defaults.inbox, Some(inbox_id.to_owned())),
    };
    let mut limits = quota::merged(default, &state.store.send_limits(scope).await?);
    let now = state.clock.now();
    if let QuotaScope::Inbox {
        account_id,
        inbox_id,
    } = scope
        && let Some(inbox) = state.store.get_inbox(account_id, inbox_id).await?
    {
        limits.warmup = defaults.warmup.limit_at(inbox.created_at, now);
    }
    let usage = state.store.quota_use(scope, now).await?;
    let paused = state
        .store
        .pauses(scope.account_id())
        .await?
        .iter()
        .find(|p| p.scope == scope.key())
        .map(super::inboxes::paused_json);
    let per = |f: &dyn Fn(Window) -> u32| QuotaLimits {
        per_minute: f(Window::Minute),
        per_hour: f(Window::Hour),
        per_day: f(Window::Day),
        recipients_per_day: f(Window::RecipientsDay),
        warmup_recipients_per_day: f(Window::WarmUp),
    };
    let used = |w: Window| quota::used(w, &usage.buckets, now).clamp(0, u32::MAX as i64) as u32;
    Ok(Quota {
        scope: if inbox_id.is_some() {
            "inbox"
        } else {
            "account"
        }
        .into(),
        inbox_id,
        limits: per(&|w| w.limit(&limits)),
        used: per(&|w| used(w)),
        remaining: per(&|w| w.limit(&limits).saturating_sub(used(w))),
        held: usage.held,
        paused,
        next_release_at: usage.next_release.map(|t| t.to_rfc3339()),
    })
}
