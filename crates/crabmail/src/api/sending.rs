//! Sending: `POST /v1/inboxes/{id}/messages`, and the suppression list it consults.

use super::ApiState;
use super::error::Path;
use super::error::{ApiError, Query, RawJson};
use crate::account::Caller;
use crate::outbound::{Preview, SubmitError};
use crate::store::QuotaScope;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use crabmail_api::{
    DryRun, DryRunRecipient, ErrorBody, ErrorDetail, SendMessage, Sent, Suppression,
    SuppressionList,
};
use serde::Deserialize;

/// Queue a message from this inbox. Answers 202 once it is durably queued; follow its delivery
/// with `GET /v1/messages/{id}` or `GET /v1/events`.
#[utoipa::path(post, path = "/v1/inboxes/{id}/messages", tag = "sending", request_body = SendMessage,
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Inbox to send from"),
        ("Idempotency-Key" = Option<String>, Header, description = "Same key and body within 24 h: the first answer again, nothing sent twice"),
        SendQuery,
    ),
    responses(
        (status = 202, description = "Queued (or throttled: held by a sending quota until release_at)", body = Sent),
        (status = 200, description = "With dry_run=true: what the send would do; nothing queued", body = DryRun),
        (status = 404, description = "No such inbox", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with another body", body = ErrorBody),
        (status = 422, description = "Invalid field, suppressed recipient, too large, or more recipients than a day's quota; `field` names it", body = ErrorBody),
        (status = 429, description = "Over a sending quota with `on_limit: reject` (code `rate_limited`, or `daily_quota_exceeded`); Retry-After, RateLimit-Policy and RateLimit say how long", body = ErrorBody),
    ))]
pub async fn send_message(
    State(state): State<ApiState>,
    caller: Caller,
    Path(inbox_id): Path<String>,
    Query(query): Query<SendQuery>,
    headers: HeaderMap,
    RawJson(request, raw): RawJson<SendMessage>,
) -> Result<Response, ApiError> {
    if query.dry_run.unwrap_or(false) {
        let preview = state.outbound.preview(&caller, &inbox_id, request).await?;
        return Ok(
            axum::Json(dry_run_json(&state, &caller, &inbox_id, preview).await?).into_response(),
        );
    }
    let key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::invalid("Idempotency-Key: not ASCII").with_field("Idempotency-Key")
            })
        })
        .transpose()?;
    let accepted = state
        .outbound
        .send(&caller, &inbox_id, request, key, &raw)
        .await?;
    crate::metrics::count("crabmail_messages_accepted_total", &[("path", "api")]);
    Ok((StatusCode::ACCEPTED, axum::Json(sent_json(accepted))).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SendQuery {
    /// `true`: answer what the send would do (a `DryRun`, 200) and queue nothing.
    dry_run: Option<bool>,
}

/// The dry run's report: each decision a real send would take, and the quotas as they stand.
async fn dry_run_json(
    state: &ApiState,
    caller: &Caller,
    inbox_id: &str,
    preview: Preview,
) -> Result<DryRun, ApiError> {
    let detail = |e: ApiError| ErrorDetail {
        code: e.code.to_owned(),
        message: e.message,
        field: e.field,
    };
    let suppressed = preview
        .recipients
        .iter()
        .find_map(|(address, reason)| reason.as_ref().map(|r| (address, r)));
    let addresses: Vec<String> = preview.recipients.iter().map(|(a, _)| a.clone()).collect();
    let listed_out = crate::outbound::listed_out(&addresses, &preview.lists);
    let (outcome, refusal, release_at, held_by) = match (preview.quota, suppressed) {
        (_, None) if listed_out.is_some() => {
            let refused = listed_out.map(ApiError::from).map(detail);
            ("refused", refused, None, None)
        }
        (_, Some((address, reason))) => {
            let refused = ApiError::from(SubmitError::Suppressed {
                field: "to".into(),
                address: address.clone(),
                reason: reason.clone(),
            });
            ("refused", Some(detail(refused)), None, None)
        }
        (Err(e), None) => ("refused", Some(detail(e.into())), None, None),
        (Ok(_), None) if preview.approval.is_some() => ("pending_approval", None, None, None),
        (Ok(release), None) => (
            if release.at > preview.now {
                "throttled"
            } else {
                "queued"
            },
            None,
            Some(release.at.to_rfc3339()),
            release.held_by.map(quota_hit),
        ),
    };
    let inbox_scope = QuotaScope::Inbox {
        account_id: &caller.account_id,
        inbox_id,
    };
    Ok(DryRun {
        dry_run: true,
        outcome: outcome.into(),
        refusal,
        approval: preview.approval.map(str::to_owned),
        release_at,
        held_by,
        recipients: preview
            .recipients
            .into_iter()
            .zip(&preview.lists)
            .map(|((address, suppressed), list)| DryRunRecipient {
                address,
                suppressed,
                list: list.as_str().into(),
            })
            .collect(),
        dkim_domain: preview.dkim_domain,
        dkim_selectors: preview.dkim_selectors,
        size: preview.size as u64,
        inbox_quota: super::quota::report(state, inbox_scope).await?,
        account_quota: super::quota::report(state, QuotaScope::Account(&caller.account_id)).await?,
    })
}

fn quota_hit(hit: crate::outbound::quota::Hit) -> crabmail_api::QuotaHit {
    crabmail_api::QuotaHit {
        scope: hit.scope.as_str().into(),
        window: hit.window.name().into(),
        limit: hit.limit,
    }
}

/// Addresses this account will not send to: added when a recipient's mailbox was refused
/// permanently (5.1.x).
#[utoipa::path(get, path = "/v1/suppressions", tag = "sending", security(("bearer" = [])),
    responses((status = 200, body = SuppressionList)))]
pub async fn list_suppressions(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<SuppressionList>, ApiError> {
    caller.require_account_wide()?;
    let list = state.store.list_suppressions(&caller.account_id).await?;
    Ok(axum::Json(SuppressionList {
        suppressions: list
            .into_iter()
            .map(|s| Suppression {
                address: s.address,
                reason: s.reason,
                created_at: s.created_at.to_rfc3339(),
            })
            .collect(),
    }))
}

#[utoipa::path(delete, path = "/v1/suppressions/{address}", tag = "sending", security(("bearer" = [])),
    params(("address" = String, Path, description = "The suppressed address")),
    responses((status = 204, description = "Removed: mail to it is allowed again"), (status = 404, body = ErrorBody)))]
pub async fn delete_suppression(
    State(state): State<ApiState>,
    caller: Caller,
    Path(address): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_account_wide()?;
    if state
        .store
        .delete_suppression(&caller.account_id, &address.to_ascii_lowercase())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("suppression"))
    }
}

/// The 202's body: `throttled` with the limit and the release time when a quota holds it,
/// `pending_approval` with the reason when it waits for approval.
pub(crate) fn sent_json(accepted: crate::outbound::Accepted) -> Sent {
    let status = if accepted.held_for.is_some() {
        "pending_approval"
    } else if accepted.is_held() {
        "throttled"
    } else {
        "queued"
    };
    Sent {
        id: accepted.id,
        status: status.into(),
        approval: accepted.held_for.map(str::to_owned),
        release_at: accepted.release_at.to_rfc3339(),
        held_by: accepted.held_by.map(quota_hit),
    }
}
