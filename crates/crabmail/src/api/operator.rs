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
/// Accounts (and suppressions) shown at most.
const ACCOUNT_ROWS: usize = 1000;
/// Latest attempts, and latest received messages for the risk distribution.
const RECENT_ROWS: usize = 500;
/// Inboxes listed with the accounts at most.
const INBOX_ROWS: usize = 5000;
/// Domains looked up live at most (each is a handful of DNS queries).
const DOMAIN_ROWS: usize = 50;

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

/// 404 unless the caller is the operator and `message_id` is shaped like a message id.
async fn operator_message(
    state: &ApiState,
    caller: &Caller,
    message_id: &str,
) -> Result<(), ApiError> {
    operator(state, caller).await?;
    if id::looks_like(id::MESSAGE, message_id) {
        Ok(())
    } else {
        Err(ApiError::not_found("message"))
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
    operator_message(&state, &caller, &message_id).await?;
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
    operator_message(&state, &caller, &message_id).await?;
    let n = state.store.cancel(&message_id, state.clock.now()).await?;
    Ok(axum::Json(
        json!({ "message_id": message_id, "cancelled": n }),
    ))
}

/// Accounts, oldest first, with their usage and their inboxes.
pub async fn accounts(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<Value>, ApiError> {
    operator(&state, &caller).await?;
    let mut inboxes: std::collections::HashMap<String, Vec<Value>> = Default::default();
    for i in state.store.all_inboxes(INBOX_ROWS).await? {
        inboxes
            .entry(i.account_id.clone())
            .or_default()
            .push(json!({
                "id": i.id,
                "address": i.address,
                "created_at": i.created_at.to_rfc3339(),
            }));
    }
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
                "inbox_list": inboxes.remove(&a.id).unwrap_or_default(),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "accounts": rows })))
}

/// The latest delivery attempts across accounts, with the remote's reply.
pub async fn deliveries(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<Value>, ApiError> {
    operator(&state, &caller).await?;
    let rows: Vec<Value> = state
        .store
        .recent_attempts(RECENT_ROWS)
        .await?
        .into_iter()
        .map(|a| {
            json!({
                "at": a.attempt.at.to_rfc3339(),
                "message_id": a.message_id,
                "account_id": a.account_id,
                "to": a.address,
                "host": a.attempt.host,
                "code": a.attempt.code,
                "enhanced_code": a.attempt.enhanced,
                "reply": a.attempt.text,
                "tls": a.attempt.tls,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "deliveries": rows })))
}

/// Every account's suppressions, newest first.
pub async fn suppressions(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<Value>, ApiError> {
    operator(&state, &caller).await?;
    let rows: Vec<Value> = state
        .store
        .all_suppressions(ACCOUNT_ROWS)
        .await?
        .into_iter()
        .map(|s| {
            json!({
                "account_id": s.account_id,
                "address": s.address,
                "reason": s.reason,
                "created_at": s.created_at.to_rfc3339(),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "suppressions": rows })))
}

/// The injection-risk levels of the latest received mail, and the evidence of every message that
/// is not low.
pub async fn risk(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<Value>, ApiError> {
    operator(&state, &caller).await?;
    let recent = state.store.recent_risk(RECENT_ROWS).await?;
    let mut levels: std::collections::BTreeMap<&str, u64> = ["low", "medium", "high", "unscored"]
        .into_iter()
        .map(|level| (level, 0))
        .collect();
    let mut flagged = Vec::new();
    for m in &recent {
        let level = m.security.as_ref().map_or("unscored", |s| s.level.as_str());
        if let Some(n) = levels.get_mut(level) {
            *n += 1;
        }
        if let Some(s) = m.security.as_ref().filter(|s| s.level != "low") {
            flagged.push(json!({
                "message_id": m.message_id,
                "account_id": m.account_id,
                "received_at": m.received_at.to_rfc3339(),
                "subject": m.subject,
                "injection_risk": s.injection_risk,
                "level": s.level,
                "flags": s.flags,
                "evidence": s.evidence,
            }));
        }
    }
    Ok(axum::Json(
        json!({ "messages": recent.len(), "levels": levels, "flagged": flagged }),
    ))
}

/// Every domain with its DNS records looked up live (ok, missing or mismatch), at most
/// `DOMAIN_ROWS`; looking changes nothing (verifying is the owner's `POST /v1/domains/{id}/verify`).
pub async fn domains(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<Value>, ApiError> {
    operator(&state, &caller).await?;
    let mut rows = Vec::new();
    for domain in state.store.all_domains(DOMAIN_ROWS).await? {
        let (d, checks) = state.domains.look_up(domain).await?;
        rows.push(json!({
            "name": d.name,
            "account_id": d.account_id,
            "verified_at": time(d.verified_at),
            "checks": checks,
        }));
    }
    Ok(axum::Json(json!({ "domains": rows })))
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
