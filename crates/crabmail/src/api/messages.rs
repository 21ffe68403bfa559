//! Reading mail: list (with long-poll), one message as JSON, its raw bytes, an attachment, delete.

use super::ApiState;
use super::error::Path;
use super::error::{ApiError, Query};
use super::inboxes::owned_inbox;
use crate::account::Caller;
use crate::clock::Timestamp;
use crate::id;
use crate::ingest::parse;
use crate::store::{ListFilter, MessageRecord, OutboundRecord, Status};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use crabmail_api::{
    DeliveryAttempt, DeliveryState, Envelope, ErrorBody, Message, MessageList, MessageSummary,
    ParsedMessage, RecipientState, SafeView,
};
use serde::Deserialize;
use std::time::Duration;
use tokio::time::Instant;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 100;
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Cursor from a previous page's `next_cursor`; omit to start at the oldest message.
    after: Option<String>,
    /// Page size, 1 to 100 (default 50).
    limit: Option<usize>,
    /// Seconds to hold the request when nothing is new (0 to 120).
    wait: Option<u64>,
    /// `quarantined` to list messages held for failing DMARC (p=quarantine) too.
    include: Option<String>,
    /// Only reports about mail you sent: `bounce`, `complaint`, `auto_reply`, `any` of them,
    /// or `none` (ordinary mail).
    report: Option<String>,
}

impl ListQuery {
    fn filter(&self) -> Result<ListFilter, ApiError> {
        let report = match self.report.as_deref() {
            None | Some("") => None,
            Some(kind @ ("bounce" | "complaint" | "auto_reply" | "any" | "none")) => {
                Some(kind.to_owned())
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    "report: one of bounce, complaint, auto_reply, any, none",
                ));
            }
        };
        Ok(ListFilter {
            include_quarantined: self
                .include
                .as_deref()
                .is_some_and(|i| i.split(',').any(|p| p.trim() == "quarantined")),
            report,
        })
    }
}

pub(crate) fn summary_json(record: MessageRecord) -> MessageSummary {
    MessageSummary {
        thread_id: record.thread_id,
        report: record.report_kind,
        content: record.summary,
        id: record.id,
        inbox_id: record.inbox_id,
        received_at: record.received_at.to_rfc3339(),
        size: record.size,
        quarantined: record.quarantined,
    }
}

pub(crate) fn message_json(record: MessageRecord) -> Result<Message, ApiError> {
    let parsed = record.parsed.decode()?;
    Ok(message_with(record, parsed))
}

/// A received message as the API shows it, its parsed view already decoded.
pub(crate) fn message_with(record: MessageRecord, mut parsed: ParsedMessage) -> Message {
    if let Some((recipient_id, sent_message_id)) = record.report_for {
        for report in [&mut parsed.bounce, &mut parsed.complaint]
            .into_iter()
            .flatten()
        {
            report.recipient_id = Some(recipient_id.clone());
            report.sent_message_id = Some(sent_message_id.clone());
        }
    }
    Message {
        sender_lists: None,
        thread_id: record.thread_id,
        auth: record.auth,
        quarantined: record.quarantined,
        direction: "inbound".into(),
        delivery: None,
        parsed,
        envelope: Envelope {
            return_path: record.envelope.return_path,
            recipient: record.recipient,
            remote_ip: record.envelope.remote_ip,
            helo: record.envelope.helo,
            tls: record.envelope.tls,
        },
        id: record.id,
        inbox_id: record.inbox_id,
        received_at: record.received_at.to_rfc3339(),
        size: record.size,
    }
}

/// Messages of an inbox in arrival order. With `wait`, an empty page is held until a message
/// arrives (answered at once) or the wait ends (empty list).
#[utoipa::path(get, path = "/v1/inboxes/{id}/messages", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "Inbox id"), ListQuery),
    responses(
        (status = 200, body = MessageList),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Bad cursor, limit or wait", body = ErrorBody),
    ))]
pub async fn list_messages(
    State(state): State<ApiState>,
    caller: Caller,
    Path(inbox_id): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<axum::Json<MessageList>, ApiError> {
    let inbox = owned_inbox(&state, &caller, &inbox_id).await?;
    let filter = query.filter()?;
    let after: i64 = match query.after.as_deref() {
        None | Some("") => 0,
        Some(cursor) => cursor
            .parse()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| ApiError::invalid("after: not a cursor returned by this API"))?,
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit: must be 1 to {MAX_LIMIT}"
        )));
    }
    let wait = Duration::from_secs(query.wait.unwrap_or(0));
    if wait > state.max_wait {
        return Err(ApiError::invalid(format!(
            "wait: at most {} seconds",
            state.max_wait.as_secs()
        )));
    }
    let deadline = Instant::now() + wait;
    // Subscribe before looking, so an arrival between the look and the wait still wakes us.
    let mut arrivals = state.wakeups.subscribe(&format!("inbox:{}", inbox.id));
    let page = loop {
        let page = state
            .store
            .list_messages(&caller.account_id, &inbox.id, after, limit, &filter)
            .await?;
        if !page.is_empty() || Instant::now() >= deadline {
            break page;
        }
        if state.shutdown.is_cancelled() {
            break page;
        }
        super::pause(&state, &mut arrivals, deadline).await;
    };
    let next = page.last().map_or(after, |m| m.seq);
    Ok(axum::Json(MessageList {
        messages: page.into_iter().map(summary_json).collect(),
        next_cursor: next.to_string(),
    }))
}

/// A message the inbox sent, as it stands at `now`: `throttled` while a quota holds it.
pub(crate) fn outbound_json(record: OutboundRecord, now: Timestamp) -> Result<Message, ApiError> {
    let parsed = record.parsed.decode()?;
    let statuses: Vec<Status> = record.recipients.iter().map(|r| r.status).collect();
    let held = record.release_at > now;
    let overall = if !statuses.is_empty() && statuses.iter().all(|s| *s == Status::Held) {
        "pending_approval"
    } else if held && statuses.iter().all(|s| *s == Status::Queued) {
        "throttled"
    } else if statuses.iter().any(|s| !s.is_final()) {
        "pending"
    } else if statuses.iter().all(|s| *s == Status::Delivered) {
        "delivered"
    } else if statuses.contains(&Status::Delivered) {
        "partial"
    } else {
        "failed"
    };
    Ok(Message {
        sender_lists: None,
        auth: None,
        quarantined: false,
        thread_id: record.thread_id,
        id: record.id,
        inbox_id: record.inbox_id,
        direction: "outbound".into(),
        received_at: record.created_at.to_rfc3339(),
        size: record.size,
        envelope: Envelope {
            return_path: record.return_path,
            recipient: String::new(),
            remote_ip: String::new(),
            helo: String::new(),
            tls: false,
        },
        delivery: Some(DeliveryState {
            status: overall.into(),
            release_at: Some(record.release_at.to_rfc3339()),
            recipients: record
                .recipients
                .into_iter()
                .map(|r| RecipientState {
                    id: r.id,
                    address: r.address,
                    status: if held && r.status == Status::Queued {
                        "throttled".into()
                    } else {
                        r.status.as_str().into()
                    },
                    next_attempt_at: r.next_attempt_at.map(|t| t.to_rfc3339()),
                    attempts: r
                        .attempts
                        .into_iter()
                        .map(|a| DeliveryAttempt {
                            at: a.at.to_rfc3339(),
                            host: a.host,
                            code: a.code,
                            enhanced_code: a.enhanced,
                            text: a.text,
                            tls: a.tls,
                        })
                        .collect(),
                })
                .collect(),
        }),
        parsed,
    })
}

pub(crate) async fn owned_message(
    state: &ApiState,
    caller: &Caller,
    message_id: &str,
) -> Result<MessageRecord, ApiError> {
    if !id::looks_like(id::MESSAGE, message_id) {
        return Err(ApiError::not_found("message"));
    }
    state
        .store
        .get_message(&caller.account_id, message_id)
        .await?
        .filter(|m| caller.may_see_inbox(&m.inbox_id))
        .ok_or_else(|| ApiError::not_found("message"))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageQuery {
    /// `safe`: only what an LLM should read (see `SafeView`), for received mail.
    view: Option<String>,
}

/// The parsed message: addresses, subject, bodies, attachments, all headers, envelope, and for
/// received mail its injection risk, safe text, extracted codes and links; for a message the inbox
/// sent, each recipient's delivery status and attempts. `?view=safe` answers a `SafeView`.
#[utoipa::path(get, path = "/v1/messages/{id}", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "Message id"), MessageQuery),
    responses(
        (status = 200, body = Message),
        (status = 200, description = "With view=safe", body = SafeView),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Unknown view, or view=safe of a sent message", body = ErrorBody),
    ))]
pub async fn get_message(
    State(state): State<ApiState>,
    caller: Caller,
    Path(message_id): Path<String>,
    Query(query): Query<MessageQuery>,
) -> Result<Response, ApiError> {
    let safe = match query.view.as_deref() {
        None | Some("" | "full") => false,
        Some("safe") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "view: \"{other}\" is not a view; use safe or full"
            )));
        }
    };
    match owned_message(&state, &caller, &message_id).await {
        Ok(record) if safe => Ok(axum::Json(safe_view(message_json(record)?)).into_response()),
        Ok(record) => {
            let mut message = message_json(record)?;
            message.sender_lists = super::lists::sender_lists(&state, &caller, &message).await?;
            Ok(axum::Json(message).into_response())
        }
        Err(not_found) => {
            let sent = owned_sent(&state, &caller, &message_id)
                .await?
                .ok_or(not_found)?;
            if safe {
                return Err(ApiError::invalid(
                    "view: safe is for received mail; this message was sent by the inbox",
                ));
            }
            Ok(axum::Json(outbound_json(sent, state.clock.now())?).into_response())
        }
    }
}

fn safe_view(message: Message) -> SafeView {
    let parsed = message.parsed;
    SafeView {
        id: message.id,
        inbox_id: message.inbox_id,
        thread_id: message.thread_id,
        security: parsed.security.unwrap_or_default(),
        safe_text: parsed.safe_text.unwrap_or_default(),
        hidden_content: parsed.hidden_content,
        extracted: parsed.extracted.unwrap_or_default(),
    }
}

/// A message the caller's inbox sent, if that is what `message_id` names.
pub(crate) async fn owned_sent(
    state: &ApiState,
    caller: &Caller,
    message_id: &str,
) -> Result<Option<OutboundRecord>, ApiError> {
    if !id::looks_like(id::MESSAGE, message_id) {
        return Ok(None);
    }
    Ok(state
        .store
        .get_outbound(&caller.account_id, message_id)
        .await?
        .filter(|m| caller.may_see_inbox(&m.inbox_id)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RawQuery {
    /// `true`: as stored, with crabmail's own Authentication-Results field (the verdict on
    /// arrival) first.
    with_auth_results: Option<bool>,
}

/// The message exactly as received, byte for byte (a sent message: exactly as sent). Mail
/// from the network is stored with our Authentication-Results field in front; it is left out
/// unless `with_auth_results=true`.
#[utoipa::path(get, path = "/v1/messages/{id}/raw", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "Message id"), RawQuery),
    responses(
        (status = 200, content_type = "message/rfc822", body = Vec<u8>),
        (status = 404, body = ErrorBody),
    ))]
pub async fn get_raw(
    State(state): State<ApiState>,
    caller: Caller,
    Path(message_id): Path<String>,
    Query(query): Query<RawQuery>,
) -> Result<Response, ApiError> {
    let verified = owned_message(&state, &caller, &message_id)
        .await
        .is_ok_and(|record| record.auth.is_some());
    let (raw, _) = raw_and_parsed(&state, &caller, &message_id).await?;
    let raw = if verified && query.with_auth_results != Some(true) {
        without_first_field(&raw).to_vec()
    } else {
        raw
    };
    Ok(([(header::CONTENT_TYPE, "message/rfc822")], raw).into_response())
}

/// The bytes after the first header field (with its folded lines): what followed the
/// Authentication-Results field the MX put in front.
fn without_first_field(raw: &[u8]) -> &[u8] {
    let mut at = 0;
    let mut first = true;
    while at < raw.len() {
        if !first && !matches!(raw[at], b' ' | b'\t') {
            break;
        }
        first = false;
        at = raw[at..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(raw.len(), |i| at + i + 1);
    }
    &raw[at..]
}

/// The bytes and parsed view of a message the caller received or sent.
async fn raw_and_parsed(
    state: &ApiState,
    caller: &Caller,
    message_id: &str,
) -> Result<(Vec<u8>, ParsedMessage), ApiError> {
    let found = match owned_message(state, caller, message_id).await {
        Ok(record) => state
            .store
            .get_raw(&caller.account_id, &record.id)
            .await?
            .map(|raw| (raw, record.parsed)),
        Err(_) => match owned_sent(state, caller, message_id).await? {
            Some(sent) => state
                .store
                .load_blob(&sent.blob_id)
                .await?
                .map(|raw| (raw, sent.parsed)),
            None => None,
        },
    };
    let (raw, parsed) = found.ok_or_else(|| ApiError::not_found("message"))?;
    Ok((raw, parsed.decode()?))
}

/// One attachment, decoded, with its content type.
#[utoipa::path(get, path = "/v1/messages/{id}/attachments/{index}", tag = "messages",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Message id"),
           ("index" = usize, Path, description = "Attachment index from the message JSON")),
    responses(
        (status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, body = ErrorBody),
    ))]
pub async fn get_attachment(
    State(state): State<ApiState>,
    caller: Caller,
    Path((message_id, index)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let index: usize = index
        .parse()
        .map_err(|_| ApiError::not_found("attachment"))?;
    let (raw, parsed) = raw_and_parsed(&state, &caller, &message_id).await?;
    let (content_type, bytes) =
        parse::attachment(&raw, index).ok_or_else(|| ApiError::not_found("attachment"))?;
    let filename = parsed
        .attachments
        .get(index)
        .and_then(|a| a.filename.clone());
    let mut response = ([(header::CONTENT_TYPE, content_type)], bytes).into_response();
    if let Some(name) = filename {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if let Ok(value) =
            header::HeaderValue::from_str(&format!("attachment; filename=\"{safe}\""))
        {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}

#[utoipa::path(delete, path = "/v1/messages/{id}", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "Message id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete_message(
    State(state): State<ApiState>,
    caller: Caller,
    Path(message_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let record = owned_message(&state, &caller, &message_id).await?;
    if state
        .store
        .delete_message(&caller.account_id, &record.id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("message"))
    }
}
