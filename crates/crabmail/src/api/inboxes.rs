//! Inboxes: `POST|GET /v1/inboxes`, `GET|DELETE /v1/inboxes/{id}`; pausing and resuming
//! sending (`/v1/inboxes/{id}/resume`, the account's kill switch `/v1/account/pause|resume`).

use super::ApiState;
use super::error::Path;
use super::error::{ApiError, Json};
use crate::account::Caller;
use crate::id;
use crate::store::{InboxRecord, Pause, QuotaScope};
use axum::extract::State;
use axum::http::StatusCode;
use crabmail_api::{
    CreateInbox, ErrorBody, Inbox, InboxList, PauseAccount, Paused, Quota, UpdateInbox,
};

/// The inbox as the API shows it, with its pause if `pauses` (the account's) holds one.
pub fn inbox_json(record: InboxRecord, pauses: &[Pause]) -> Inbox {
    let paused = pauses
        .iter()
        .find(|p| p.scope == record.id)
        .map(paused_json);
    Inbox {
        paused,
        approval: if record.approval_required {
            "required"
        } else {
            "none"
        }
        .into(),
        id: record.id,
        address: record.address,
        display_name: record.display_name,
        created_at: record.created_at.to_rfc3339(),
    }
}

/// The caller's inbox, or 404 whether it is missing or not theirs.
pub async fn owned_inbox(
    state: &ApiState,
    caller: &Caller,
    inbox_id: &str,
) -> Result<InboxRecord, ApiError> {
    if !id::looks_like(id::INBOX, inbox_id) || !caller.may_see_inbox(inbox_id) {
        return Err(ApiError::not_found("inbox"));
    }
    state
        .store
        .get_inbox(&caller.account_id, inbox_id)
        .await?
        .ok_or_else(|| ApiError::not_found("inbox"))
}

/// Create an inbox: `name@domain` when free, else `name-xxxx@domain`; a readable random name
/// when no name is given.
#[utoipa::path(post, path = "/v1/inboxes", tag = "inboxes", request_body = CreateInbox,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Inbox created", body = Inbox),
        (status = 422, description = "Invalid name, display name or domain", body = ErrorBody),
    ))]
pub async fn create_inbox(
    State(state): State<ApiState>,
    caller: Caller,
    Json(body): Json<CreateInbox>,
) -> Result<(StatusCode, axum::Json<Inbox>), ApiError> {
    let record = state
        .accounts
        .create_inbox(
            &caller,
            body.name.as_deref(),
            body.display_name,
            body.domain.as_deref(),
        )
        .await?;
    tracing::info!(account = %caller.account_id, address = %record.address, "api: inbox created");
    Ok((StatusCode::CREATED, axum::Json(inbox_json(record, &[]))))
}

#[utoipa::path(get, path = "/v1/inboxes", tag = "inboxes", security(("bearer" = [])),
    responses((status = 200, body = InboxList)))]
pub async fn list_inboxes(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<InboxList>, ApiError> {
    let inboxes = state.store.list_inboxes(&caller.account_id).await?;
    let pauses = state.store.pauses(&caller.account_id).await?;
    Ok(axum::Json(InboxList {
        inboxes: inboxes
            .into_iter()
            .filter(|i| caller.may_see_inbox(&i.id))
            .map(|i| inbox_json(i, &pauses))
            .collect(),
    }))
}

#[utoipa::path(get, path = "/v1/inboxes/{id}", tag = "inboxes", security(("bearer" = [])),
    params(("id" = String, Path, description = "Inbox id")),
    responses((status = 200, body = Inbox), (status = 404, body = ErrorBody)))]
pub async fn get_inbox(
    State(state): State<ApiState>,
    caller: Caller,
    Path(inbox_id): Path<String>,
) -> Result<axum::Json<Inbox>, ApiError> {
    let inbox = owned_inbox(&state, &caller, &inbox_id).await?;
    let pauses = state.store.pauses(&caller.account_id).await?;
    Ok(axum::Json(inbox_json(inbox, &pauses)))
}

/// Change an inbox's settings: `approval: required` makes the mail it sends wait for approval.
#[utoipa::path(patch, path = "/v1/inboxes/{id}", tag = "inboxes", request_body = UpdateInbox,
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Inbox id")),
    responses((status = 200, body = Inbox), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_inbox(
    State(state): State<ApiState>,
    caller: Caller,
    Path(inbox_id): Path<String>,
    Json(request): Json<UpdateInbox>,
) -> Result<axum::Json<Inbox>, ApiError> {
    let inbox = owned_inbox(&state, &caller, &inbox_id).await?;
    if let Some(approval) = request.approval.as_deref() {
        let required = match approval {
            "required" => true,
            "none" => false,
            _ => {
                return Err(
                    ApiError::invalid("approval: `required` or `none`").with_field("approval")
                );
            }
        };
        state
            .store
            .set_approval_required(&caller.account_id, &inbox.id, required)
            .await?;
    }
    let inbox = owned_inbox(&state, &caller, &inbox_id).await?;
    let pauses = state.store.pauses(&caller.account_id).await?;
    Ok(axum::Json(inbox_json(inbox, &pauses)))
}

/// Resume an inbox's sending after a circuit breaker paused it; its figures start again from
/// now. Answers the inbox.
#[utoipa::path(post, path = "/v1/inboxes/{id}/resume", tag = "sending", security(("bearer" = [])),
    params(("id" = String, Path, description = "Inbox id")),
    responses((status = 200, body = Inbox), (status = 404, body = ErrorBody)))]
pub async fn resume_inbox(
    State(state): State<ApiState>,
    caller: Caller,
    Path(inbox_id): Path<String>,
) -> Result<axum::Json<Inbox>, ApiError> {
    let inbox = owned_inbox(&state, &caller, &inbox_id).await?;
    let scope = QuotaScope::Inbox {
        account_id: &caller.account_id,
        inbox_id: &inbox.id,
    };
    if let Some(wake) = state.store.resume(scope, state.clock.now()).await? {
        state.wakeups.announce_all(&[wake]);
    }
    let pauses = state.store.pauses(&caller.account_id).await?;
    Ok(axum::Json(inbox_json(inbox, &pauses)))
}

/// The kill switch: every inbox of the account stops taking mail to send (423) until
/// `POST /v1/account/resume`. Mail already queued keeps going.
#[utoipa::path(post, path = "/v1/account/pause", tag = "sending", request_body = PauseAccount,
    security(("bearer" = [])),
    responses((status = 200, body = Quota)))]
pub async fn pause_account(
    State(state): State<ApiState>,
    caller: Caller,
    Json(request): Json<PauseAccount>,
) -> Result<axum::Json<Quota>, ApiError> {
    caller.require_account_wide()?;
    let scope = QuotaScope::Account(&caller.account_id);
    let reason = request
        .reason
        .unwrap_or_else(|| "paused by the account".into());
    let reason: String = reason.chars().take(200).collect();
    if let Some(wake) = state
        .store
        .pause(scope, &reason, None, state.clock.now())
        .await?
    {
        state.wakeups.announce_all(&[wake]);
    }
    Ok(axum::Json(super::quota::report(&state, scope).await?))
}

/// Lifts the account's kill switch or an account-wide breaker.
#[utoipa::path(post, path = "/v1/account/resume", tag = "sending", security(("bearer" = [])),
    responses((status = 200, body = Quota)))]
pub async fn resume_account(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<Quota>, ApiError> {
    caller.require_account_wide()?;
    let scope = QuotaScope::Account(&caller.account_id);
    if let Some(wake) = state.store.resume(scope, state.clock.now()).await? {
        state.wakeups.announce_all(&[wake]);
    }
    Ok(axum::Json(super::quota::report(&state, scope).await?))
}

/// A stored pause as the API shows it.
pub fn paused_json(pause: &Pause) -> Paused {
    Paused {
        reason: pause.reason.clone(),
        since: pause.since.to_rfc3339(),
        metrics: pause.metrics.clone(),
    }
}

/// Delete an inbox and its messages. Its address then answers 550 5.1.1 and is never reissued.
#[utoipa::path(delete, path = "/v1/inboxes/{id}", tag = "inboxes", security(("bearer" = [])),
    params(("id" = String, Path, description = "Inbox id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete_inbox(
    State(state): State<ApiState>,
    caller: Caller,
    Path(inbox_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    owned_inbox(&state, &caller, &inbox_id).await?;
    caller.require_account_wide()?;
    let now = state.clock.now();
    if state
        .store
        .delete_inbox(&caller.account_id, &inbox_id, now)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("inbox"))
    }
}
