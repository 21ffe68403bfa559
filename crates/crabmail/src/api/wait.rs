//! `GET /v1/inboxes/{id}/wait`: hold until a new message matching the filters is readable, then
//! answer it whole (with `extracted` codes and links); `{"timed_out": true}` when time runs out.
//!
//! "New" means readable after the request arrived, unless the caller passes `after` (a list
//! cursor) or `since` (a time): then earlier messages count too, oldest first. That closes the
//! race of an agent that triggers a sign-up and only then starts waiting.

use super::ApiState;
use super::error::Path;
use super::error::{ApiError, Query};
use super::inboxes::owned_inbox;
use super::messages::message_with;
use crate::account::Caller;
use crate::account::address::Domain;
use crate::store::{ListFilter, MessageRecord};
use axum::extract::State;
use crabmail_api::{ErrorBody, Message, ParsedMessage, TimedOut, WaitResult};
use serde::Deserialize;
use std::time::Duration;
use tokio::time::Instant;

/// Seconds waited when the caller gives no timeout.
const DEFAULT_TIMEOUT: u64 = 30;
/// Messages read per look.
const PAGE: usize = 100;
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Sender address, or a domain the sender's address is in (`github.com` matches
    /// `noreply@github.com` and `x@mail.github.com`).
    from: Option<String>,
    /// Case-insensitive text the subject must contain.
    subject_contains: Option<String>,
    /// `true`: only messages in which a verification code was found.
    has_code: Option<bool>,
    /// Seconds to wait, 0 to the server's long-poll limit (default 30).
    timeout: Option<u64>,
    /// Consider messages after this list cursor too (from a message list's `next_cursor`).
    after: Option<String>,
    /// Consider messages received at or after this RFC 3339 time too.
    since: Option<String>,
}

struct Filter {
    from: Option<String>,
    subject_contains: Option<String>,
    has_code: bool,
    since: Option<i64>,
}

impl Filter {
    fn matches(&self, record: &MessageRecord, parsed: &ParsedMessage) -> bool {
        if self.since.is_some_and(|since| record.received_at.0 < since) {
            return false;
        }
        if let Some(want) = &self.from {
            let address = parsed
                .from
                .as_ref()
                .and_then(|f| f.address.as_deref())
                .unwrap_or("")
                .to_ascii_lowercase();
            let domain = Domain::of(&address);
            let domain = domain.as_deref().unwrap_or("");
            let ok = if want.contains('@') {
                address == *want
            } else {
                domain == want || domain.ends_with(&format!(".{want}"))
            };
            if !ok {
                return false;
            }
        }
        if let Some(want) = &self.subject_contains
            && !parsed
                .subject
                .as_deref()
                .unwrap_or("")
                .to_lowercase()
                .contains(want)
        {
            return false;
        }
        if self.has_code && parsed.extracted.as_ref().is_none_or(|e| e.codes.is_empty()) {
            return false;
        }
        true
    }
}

/// Waits for the first new message that matches every filter given.
#[utoipa::path(get, path = "/v1/inboxes/{id}/wait", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "Inbox id"), WaitQuery),
    responses(
        (status = 200, description = "The matching message, or {\"timed_out\": true}", body = WaitResult),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Bad timeout, cursor or time", body = ErrorBody),
    ))]
pub async fn wait(
    State(state): State<ApiState>,
    caller: Caller,
    Path(inbox_id): Path<String>,
    Query(query): Query<WaitQuery>,
) -> Result<axum::Json<WaitResult>, ApiError> {
    let inbox = owned_inbox(&state, &caller, &inbox_id).await?;
    let timeout = Duration::from_secs(query.timeout.unwrap_or(DEFAULT_TIMEOUT));
    if timeout > state.max_wait {
        return Err(ApiError::invalid(format!(
            "timeout: at most {} seconds",
            state.max_wait.as_secs()
        )));
    }
    let since = match query.since.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|_| ApiError::invalid("since: not an RFC 3339 time"))?,
        ),
    };
    let filter = Filter {
        from: query
            .from
            .as_deref()
            .map(|f| f.trim().trim_start_matches('@').to_ascii_lowercase())
            .filter(|f| !f.is_empty()),
        subject_contains: query
            .subject_contains
            .as_deref()
            .map(str::to_lowercase)
            .filter(|s| !s.is_empty()),
        has_code: query.has_code.unwrap_or(false),
        since,
    };
    // Subscribe before the first look, so an arrival in between still wakes us.
    let mut arrivals = state.wakeups.subscribe(&format!("inbox:{}", inbox.id));
    let mut cursor: i64 = match (query.after.as_deref().filter(|a| !a.is_empty()), since) {
        (Some(after), _) => after
            .parse()
            .ok()
            .filter(|n: &i64| *n >= 0)
            .ok_or_else(|| ApiError::invalid("after: not a cursor returned by this API"))?,
        (None, Some(_)) => 0,
        (None, None) => {
            state
                .store
                .inbox_cursor(&caller.account_id, &inbox.id)
                .await?
        }
    };
    let deadline = Instant::now() + timeout;
    loop {
        loop {
            let page = state
                .store
                .list_messages(
                    &caller.account_id,
                    &inbox.id,
                    cursor,
                    PAGE,
                    &ListFilter::default(),
                )
                .await?;
            let full = page.len() == PAGE;
            for record in page {
                cursor = cursor.max(record.seq);
                let parsed = record.parsed.decode()?;
                if filter.matches(&record, &parsed) {
                    let message: Message = message_with(record, parsed);
                    return Ok(axum::Json(WaitResult::Message(Box::new(message))));
                }
            }
            if !full {
                break;
            }
        }
        if Instant::now() >= deadline || state.shutdown.is_cancelled() {
            return Ok(axum::Json(WaitResult::TimedOut(TimedOut {
                timed_out: true,
            })));
        }
        super::pause(&state, &mut arrivals, deadline).await;
    }
}
