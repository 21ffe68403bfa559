//! The operator's API, behind the operator's token (the account that owns `postmaster@`, whose
//! token `crabmail admin postmaster` prints, with the admin scope): the queue across accounts
//! (retry, cancel) and the accounts with their usage. Anyone else gets 404, as for anything that
//! is not theirs. The console (`/console`) is a page over these.

use super::ApiState;
use super::error::{ApiError, Path};
use crate::account::Caller;
use crate::account::scope::Need;
use crate::clock::Timestamp;
use crate::id;
use axum::extract::State;
use serde_json::{Value, json};

/// Queue rows shown at most.
const QUEUE_ROWS: usize = 500;
/// Accounts shown at most.
const ACCOUNT_ROWS: usize = 1000;

/// 404 unless the caller is the operator with the admin scope.
async fn operator(state: &ApiState, caller: &Caller) -> Result<(), ApiError> {
    let operator = state.accounts.ensure_postmaster().await.map_err(|e| {
        tracing::error!(error = %e, "operator: cannot find the operator's account");
        ApiError::not_found("route")
    })?;
    if caller.account_id == operator.account_id && caller.scopes.allows(Need::Admin) {
        Ok(())
    } else {
        Err(ApiError::not_found("route"))
    }
}

fn time(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(t.to_rfc3339()))
}

/// Recipients not yet final, soonest first, across accounts.
pub async fn queue(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<Value>, ApiError> {
    operator(&state, &caller).await?;
    let entries = state.store.queue_entries(QUEUE_ROWS).await?;
    let rows: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            json!({
                "message_id": e.message_id,
                "account_id": e.account_id,
                "from": e.return_path,
                "to": e.address,
                "status": e.status.as_str(),
                "attempts": e.attempts,
                "next_attempt_at": time(e.next_attempt_at),
                "last_reply": e.last_text,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "recipients": rows })))
}

/// Makes a message's unfinished recipients due now and wakes the queue.
pub async fn retry(
    State(state): State<ApiState>,
    caller: Caller,
    Path(message_id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    operator(&state, &caller).await?;
    if !id::looks_like(id::MESSAGE, &message_id) {
        return Err(ApiError::not_found("message"));
    }
    let n = state
        .store
        .retry_now(&message_id, state.clock.now())
        .await?;
    state.outbound.wake_queue();
    Ok(axum::Json(
        json!({ "message_id": message_id, "due_now": n }),
    ))
}

/// Stops trying a message's unfinished recipients.
pub async fn cancel(
    State(state): State<ApiState>,
    caller: Caller,
    Path(message_id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    operator(&state, &caller).await?;
    if !id::looks_like(id::MESSAGE, &message_id) {
        return Err(ApiError::not_found("message"));
    }
    let n = state.store.cancel(&message_id, state.clock.now()).await?;
    Ok(axum::Json(
        json!({ "message_id": message_id, "cancelled": n }),
    ))
}

/// Accounts, oldest first, with their usage.
pub async fn accounts(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<Value>, ApiError> {
    operator(&state, &caller).await?;
    let rows: Vec<Value> = state
        .store
        .account_usage(ACCOUNT_ROWS)
        .await?
        .into_iter()
        .map(|a| {
            json!({
                "id": a.id,
                "created_at": a.created_at.to_rfc3339(),
                "disabled_at": time(a.disabled_at),
                "inboxes": a.inboxes,
                "received": a.received,
                "sent": a.sent,
                "tokens": a.tokens,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "accounts": rows })))
}

/// The console page: static, in the binary; it asks for the operator's token and calls the
/// endpoints above with it.
pub async fn console() -> impl axum::response::IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
            ),
        ],
        include_str!("console/index.html"),
    )
}
