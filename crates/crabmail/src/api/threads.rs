//! Conversations: `GET /v1/threads?inbox=` lists an inbox's threads, most recently active first;
//! `GET /v1/threads/{id}` gives one with its messages (received and sent) oldest first, each with
//! the new part of its text (`reply_text`).

use super::ApiState;
use super::error::Path;
use super::error::{ApiError, Query};
use super::inboxes::owned_inbox;
use super::messages::{message_json, outbound_json, owned_message, owned_sent};
use crate::account::Caller;
use crate::id;
use crate::store::{ThreadMemberRecord, ThreadRecord};
use axum::extract::State;
use crabmail_api::{ErrorBody, Message, Thread, ThreadList, ThreadMessage, ThreadSummary};
use serde::Deserialize;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 200;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ThreadsQuery {
    /// Inbox id.
    inbox: String,
    /// Threads returned, 1 to 200 (default 50).
    limit: Option<usize>,
}

fn summary(record: ThreadRecord) -> ThreadSummary {
    ThreadSummary {
        id: record.thread_id,
        inbox_id: record.inbox_id,
        subject: record
            .subject
            .map(|s| crate::ingest::thread::strip_prefixes(&s).to_owned()),
        participants: record.participants,
        message_count: record.message_count,
        first_at: record.first_at.to_rfc3339(),
        last_at: record.last_at.to_rfc3339(),
    }
}

#[utoipa::path(get, path = "/v1/threads", tag = "threads", security(("bearer" = [])),
    params(ThreadsQuery),
    responses((status = 200, body = ThreadList), (status = 404, body = ErrorBody),
              (status = 422, description = "Bad limit", body = ErrorBody)))]
pub async fn list_threads(
    State(state): State<ApiState>,
    caller: Caller,
    Query(query): Query<ThreadsQuery>,
) -> Result<axum::Json<ThreadList>, ApiError> {
    let inbox = owned_inbox(&state, &caller, &query.inbox).await?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit: must be 1 to {MAX_LIMIT}"
        )));
    }
    let threads = state
        .store
        .list_threads(&caller.account_id, &inbox.id, limit)
        .await?;
    Ok(axum::Json(ThreadList {
        threads: threads.into_iter().map(summary).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/threads/{id}", tag = "threads", security(("bearer" = [])),
    params(("id" = String, Path, description = "Thread id")),
    responses((status = 200, body = Thread), (status = 404, body = ErrorBody)))]
pub async fn get_thread(
    State(state): State<ApiState>,
    caller: Caller,
    Path(thread_id): Path<String>,
) -> Result<axum::Json<Thread>, ApiError> {
    if !id::looks_like(id::THREAD, &thread_id) {
        return Err(ApiError::not_found("thread"));
    }
    let members: Vec<ThreadMemberRecord> = state
        .store
        .thread_members(&caller.account_id, &thread_id)
        .await?
        .into_iter()
        .filter(|m| caller.may_see_inbox(&m.inbox_id))
        .collect();
    let Some(first) = members.first() else {
        return Err(ApiError::not_found("thread"));
    };
    let mut participants: Vec<String> = Vec::new();
    for p in members.iter().flat_map(|m| m.participants.iter()) {
        if !participants.contains(p) {
            participants.push(p.clone());
        }
    }
    let head = ThreadSummary {
        id: thread_id.clone(),
        inbox_id: first.inbox_id.clone(),
        subject: first
            .subject
            .as_deref()
            .map(|s| crate::ingest::thread::strip_prefixes(s).to_owned()),
        participants,
        message_count: members.len() as i64,
        first_at: first.at.to_rfc3339(),
        last_at: members.last().map_or(first.at, |m| m.at).to_rfc3339(),
    };
    let mut messages = Vec::with_capacity(members.len());
    let now = state.clock.now();
    for member in &members {
        let message: Option<Message> = if member.direction == "outbound" {
            owned_sent(&state, &caller, &member.message_id)
                .await?
                .map(|sent| outbound_json(sent, now))
                .transpose()?
        } else {
            owned_message(&state, &caller, &member.message_id)
                .await
                .ok()
                .map(message_json)
                .transpose()?
        };
        let Some(message) = message else { continue };
        let reply_text = message.parsed.reply_text.clone().or_else(|| {
            message
                .parsed
                .text
                .as_deref()
                .map(crate::ingest::thread::reply_text)
                .filter(|t| !t.is_empty())
        });
        messages.push(ThreadMessage {
            id: message.id,
            direction: message.direction,
            at: message.received_at,
            from: message.parsed.from,
            subject: message.parsed.subject,
            reply_text,
            security: message.parsed.security,
        });
    }
    Ok(axum::Json(Thread {
        summary: head,
        messages,
    }))
}
