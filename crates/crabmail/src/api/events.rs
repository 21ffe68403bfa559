//! `GET /v1/events`: what happened to the account's mail, in order, with long-poll.

use super::ApiState;
use super::error::{ApiError, Query};
use crate::account::Caller;
use axum::extract::State;
use crabmail_api::{Event, EventList};
use serde::Deserialize;
use std::time::Duration;
use tokio::time::Instant;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 500;
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Cursor from a previous `next_cursor`; omit to start at the first event.
    after: Option<i64>,
    /// Page size, 1 to 500 (default 100).
    limit: Option<usize>,
    /// Seconds to hold the request when nothing is new (0 to 120).
    wait: Option<u64>,
}

/// Events: message.received, message.delivered, message.deferred, message.bounced,
/// message.cancelled. Each is written in the same transaction as the change it reports.
#[utoipa::path(get, path = "/v1/events", tag = "events", security(("bearer" = [])),
    params(EventQuery),
    responses((status = 200, body = EventList)))]
pub async fn list_events(
    State(state): State<ApiState>,
    caller: Caller,
    Query(query): Query<EventQuery>,
) -> Result<axum::Json<EventList>, ApiError> {
    let after = match query.after {
        None => 0,
        Some(n) if n >= 0 => n,
        Some(_) => {
            return Err(
                ApiError::invalid("after: not a cursor returned by this API").with_field("after"),
            );
        }
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(
            ApiError::invalid(format!("limit: must be 1 to {MAX_LIMIT}")).with_field("limit"),
        );
    }
    let wait = Duration::from_secs(query.wait.unwrap_or(0));
    if wait > state.max_wait {
        return Err(ApiError::invalid(format!(
            "wait: at most {} seconds",
            state.max_wait.as_secs()
        ))
        .with_field("wait"));
    }
    let deadline = Instant::now() + wait;
    let mut wake = state
        .wakeups
        .subscribe(&format!("events:{}", caller.account_id));
    let mut cursor = after;
    loop {
        let page = state
            .store
            .list_events(&caller.account_id, cursor, limit)
            .await?;
        if let Some(last) = page.last() {
            cursor = last.seq;
        }
        let visible: Vec<Event> = page
            .into_iter()
            .filter(|e| {
                e.inbox_id
                    .as_deref()
                    .is_none_or(|i| caller.may_see_inbox(i))
            })
            .map(|e| Event {
                seq: e.seq,
                kind: e.kind,
                at: e.created_at.to_rfc3339(),
                message_id: e.message_id,
                inbox_id: e.inbox_id,
                recipient: e.recipient,
                detail: e.detail,
            })
            .collect();
        if !visible.is_empty() || Instant::now() >= deadline || state.shutdown.is_cancelled() {
            return Ok(axum::Json(EventList {
                events: visible,
                next_cursor: cursor.to_string(),
            }));
        }
        super::pause(&state, &mut wake, deadline).await;
    }
}
