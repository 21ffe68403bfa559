//! `GET /v1/events`: what happened to the account's mail, in order, with long-poll, or as a
//! Server-Sent Events stream (`Accept: text/event-stream`) that resumes from `Last-Event-ID`.
//! Both read the same log with the same ids (`seq`), and webhooks deliver the same events.

use super::ApiState;
use super::error::{ApiError, Query};
use crate::account::Caller;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use crabmail_api::{Event, EventList};
use futures::StreamExt;
use serde::Deserialize;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 500;
/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long a client waits before reconnecting to a stream it lost.
const RECONNECT: Duration = Duration::from_secs(1);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Cursor from a previous `next_cursor` (or an event's `seq`); omit to start at the first
    /// event. A stream resumes from its `Last-Event-ID` header instead.
    after: Option<i64>,
    /// Page size, 1 to 500 (default 100).
    limit: Option<usize>,
    /// Seconds to hold the request when nothing is new (0 to 120). Not used by a stream.
    wait: Option<u64>,
}

/// Events: message.received, message.delivered, message.deferred, message.bounced, message.complained,
/// message.cancelled and the others listed under `Event.type`. Each is written in the same
/// transaction as the change it reports. With `Accept: text/event-stream` the answer is a
/// Server-Sent Events stream: one `event: <type>`, `id: <seq>`, `data: <Event JSON>` per event,
/// open until the client leaves; a reconnecting client sends `Last-Event-ID` and gets exactly the
/// events after it.
#[utoipa::path(get, path = "/v1/events", tag = "events", security(("bearer" = [])),
    params(EventQuery),
    responses((status = 200, body = EventList,
        description = "A page of events, or (Accept: text/event-stream) an endless stream of them")))]
pub async fn list_events(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Query(query): Query<EventQuery>,
) -> Result<Response, ApiError> {
    let after = cursor(query.after, "after")?;
    if wants_stream(&headers) {
        let resume = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    ApiError::invalid("Last-Event-ID: not an event id from this stream")
                        .with_field("Last-Event-ID")
                })
            })
            .transpose()?;
        let from = match resume {
            Some(seq) => cursor(Some(seq), "Last-Event-ID")?,
            None => after,
        };
        return Ok(stream(state, caller, from).into_response());
    }
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
        let visible = next_page(&state, &caller, &mut cursor, limit).await?;
        if !visible.is_empty() || Instant::now() >= deadline || state.shutdown.is_cancelled() {
            return Ok(axum::Json(EventList {
                events: visible,
                next_cursor: cursor.to_string(),
            })
            .into_response());
        }
        super::pause(&state, &mut wake, deadline).await;
    }
}

fn cursor(value: Option<i64>, field: &str) -> Result<i64, ApiError> {
    match value {
        None => Ok(0),
        Some(n) if n >= 0 => Ok(n),
        Some(_) => Err(
            ApiError::invalid(format!("{field}: not a cursor returned by this API"))
                .with_field(field),
        ),
    }
}

fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().starts_with("text/event-stream"))
}

/// The events after `cursor` the caller may see, at most `limit` read; `cursor` moves past every
/// event read, shown or not.
async fn next_page(
    state: &ApiState,
    caller: &Caller,
    cursor: &mut i64,
    limit: usize,
) -> Result<Vec<Event>, ApiError> {
    let page = state
        .store
        .list_events(&caller.account_id, *cursor, limit)
        .await?;
    if let Some(last) = page.last() {
        *cursor = last.seq;
    }
    Ok(page
        .into_iter()
        .filter(|e| {
            e.inbox_id
                .as_deref()
                .is_none_or(|i| caller.may_see_inbox(i))
        })
        .map(|e| crate::events::view(e, &caller.account_id))
        .collect())
}

/// What a stream holds between events.
struct Feed {
    state: ApiState,
    caller: Caller,
    cursor: i64,
    ready: VecDeque<Event>,
    wake: tokio::sync::watch::Receiver<i64>,
}

/// The stream: reads pages as the log grows, sleeps on the account's wake-up between them, and
/// ends when the server shuts down (the client reconnects with `Last-Event-ID`) or the store
/// fails (an `error` event says why first).
fn stream(
    state: ApiState,
    caller: Caller,
    cursor: i64,
) -> Sse<impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>>
{
    let wake = state
        .wakeups
        .subscribe(&format!("events:{}", caller.account_id));
    let feed = Feed {
        state,
        caller,
        cursor,
        ready: VecDeque::new(),
        wake,
    };
    let events = futures::stream::unfold(Some(feed), |feed| async move {
        let mut feed = feed?;
        loop {
            if let Some(event) = feed.ready.pop_front() {
                return Some((Ok(sse_event(&event)), Some(feed)));
            }
            if feed.state.shutdown.is_cancelled() {
                return None;
            }
            match next_page(&feed.state, &feed.caller, &mut feed.cursor, MAX_LIMIT).await {
                Ok(page) if !page.is_empty() => feed.ready.extend(page),
                Ok(_) => {
                    let far = Instant::now() + Duration::from_secs(3600);
                    super::pause(&feed.state, &mut feed.wake, far).await;
                }
                Err(e) => {
                    tracing::warn!(error = ?e, "event stream: store read failed; closing");
                    let failed = axum::response::sse::Event::default()
                        .event("error")
                        .data(r#"{"error":{"code":"unavailable","message":"the store did not answer; reconnect with Last-Event-ID"}}"#);
                    return Some((Ok(failed), None));
                }
            }
        }
    });
    // A client that loses the stream reconnects after a second (not the usual three), with
    // Last-Event-ID.
    let reconnect = axum::response::sse::Event::default().retry(RECONNECT);
    let events = futures::stream::once(async move { Ok(reconnect) }).chain(events);
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

fn sse_event(event: &Event) -> axum::response::sse::Event {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
    axum::response::sse::Event::default()
        .id(event.seq.to_string())
        .event(event.kind.as_str())
        .data(data)
}
