//! Approval mode: `GET /v1/approvals`, `POST /v1/messages/{id}/approve` and `/reject`. Mail
//! waits here when its token may only draft, its inbox requires approval, or (by setting) it
//! answers a message scored high risk. Approving needs `send` or `admin`; the message is then
//! counted against its quotas and queued as if sent at that moment.

use super::ApiState;
use super::error::{ApiError, Path};
use super::messages::outbound_json;
use super::sending::sent_json;
use crate::account::Caller;
use crate::id;
use crate::outbound::Accepted;
use crate::store::{Approved, Enqueued};
use axum::extract::State;
use crabmail_api::{ApprovalList, ErrorBody, Sent};

/// Messages waiting for approval, oldest first (at most 100).
#[utoipa::path(get, path = "/v1/approvals", tag = "sending", security(("bearer" = [])),
    responses((status = 200, body = ApprovalList)))]
pub async fn list_approvals(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<ApprovalList>, ApiError> {
    let now = state.clock.now();
    let mut messages = Vec::new();
    for message_id in state.store.held_messages(&caller.account_id, 100).await? {
        if let Some(record) = state
            .store
            .get_outbound(&caller.account_id, &message_id)
            .await?
            .filter(|m| caller.may_see_inbox(&m.inbox_id))
        {
            messages.push(outbound_json(record, now)?);
        }
    }
    Ok(axum::Json(ApprovalList { messages }))
}

/// Approve a held message: it is counted against its quotas and queued (or throttled) now.
#[utoipa::path(post, path = "/v1/messages/{id}/approve", tag = "sending", security(("bearer" = [])),
    params(("id" = String, Path, description = "Message id")),
    responses(
        (status = 200, description = "Queued or throttled", body = Sent),
        (status = 404, description = "No message waiting for approval has this id", body = ErrorBody),
        (status = 423, description = "The inbox's or account's sending is paused", body = ErrorBody),
    ))]
pub async fn approve(
    State(state): State<ApiState>,
    caller: Caller,
    Path(message_id): Path<String>,
) -> Result<axum::Json<Sent>, ApiError> {
    visible_held(&state, &caller, &message_id).await?;
    let check = state.outbound.quota_check(Default::default());
    let now = state.clock.now();
    let (approved, wake) = state
        .store
        .approve(&caller.account_id, &message_id, check, now)
        .await?;
    if let Some(wake) = wake {
        state.wakeups.announce_all(&[wake]);
    }
    let release = match approved {
        Approved::NotHeld => return Err(ApiError::not_found("message waiting for approval")),
        Approved::Decided(Enqueued::Queued(release)) => release,
        Approved::Decided(refused) => {
            return Err(crate::outbound::refusal(refused, now).into());
        }
    };
    state.outbound.wake_queue();
    Ok(axum::Json(sent_json(Accepted {
        id: message_id,
        release_at: release.at,
        held_by: release.held_by,
        accepted_at: now,
        held_for: None,
    })))
}

/// Reject a held message: it is cancelled and never sent.
#[utoipa::path(post, path = "/v1/messages/{id}/reject", tag = "sending", security(("bearer" = [])),
    params(("id" = String, Path, description = "Message id")),
    responses(
        (status = 200, description = "Rejected", body = Sent),
        (status = 404, description = "No message waiting for approval has this id", body = ErrorBody),
    ))]
pub async fn reject(
    State(state): State<ApiState>,
    caller: Caller,
    Path(message_id): Path<String>,
) -> Result<axum::Json<Sent>, ApiError> {
    visible_held(&state, &caller, &message_id).await?;
    let now = state.clock.now();
    match state
        .store
        .reject(&caller.account_id, &message_id, now)
        .await?
    {
        Some(wake) => state.wakeups.announce_all(&[wake]),
        None => return Err(ApiError::not_found("message waiting for approval")),
    }
    Ok(axum::Json(Sent {
        id: message_id,
        status: "rejected".into(),
        approval: None,
        release_at: String::new(),
        held_by: None,
    }))
}

/// A message of the caller's (and of an inbox its token may see), or 404.
async fn visible_held(state: &ApiState, caller: &Caller, message_id: &str) -> Result<(), ApiError> {
    let not_found = || ApiError::not_found("message waiting for approval");
    if !id::looks_like(id::MESSAGE, message_id) {
        return Err(not_found());
    }
    state
        .store
        .get_outbound(&caller.account_id, message_id)
        .await?
        .filter(|m| caller.may_see_inbox(&m.inbox_id))
        .map(|_| ())
        .ok_or_else(not_found)
}
