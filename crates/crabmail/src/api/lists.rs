//! Allow and block lists: `GET|POST /v1/lists`, `DELETE /v1/lists/{id}`, and what they say of
//! a received message (`sender_lists` in `GET /v1/messages/{id}`).

use super::ApiState;
use super::error::{ApiError, Json, Path};
use super::inboxes::owned_inbox;
use crate::account::Caller;
use crate::account::address::Mailbox;
use crate::account::lists::{self, Direction, Verdict};
use crate::id;
use crate::store::{ListEntry, StoreError};
use axum::extract::State;
use axum::http::StatusCode;
use crabmail_api::{CreateListEntry, ErrorBody, ListEntries, Message, SenderLists};

/// Add an entry: `inbound` (who may write to the account or inbox) or `outbound` (whom it may
/// write to), `allow` or `block`, an address or a domain. A block always wins; once a direction
/// has any allow entry, only what it allows passes.
#[utoipa::path(post, path = "/v1/lists", tag = "lists", request_body = CreateListEntry,
    security(("bearer" = [])),
    responses((status = 201, body = crabmail_api::ListEntry), (status = 404, body = ErrorBody),
        (status = 409, description = "Already listed", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_entry(
    State(state): State<ApiState>,
    caller: Caller,
    Json(request): Json<CreateListEntry>,
) -> Result<(StatusCode, axum::Json<crabmail_api::ListEntry>), ApiError> {
    let direction = Direction::parse(&request.direction).ok_or_else(|| {
        ApiError::invalid("direction: `inbound` or `outbound`").with_field("direction")
    })?;
    if !matches!(request.action.as_str(), "allow" | "block") {
        return Err(ApiError::invalid("action: `allow` or `block`").with_field("action"));
    }
    let pattern = pattern(&request.pattern)?;
    let scope = match &request.inbox_id {
        Some(inbox_id) => owned_inbox(&state, &caller, inbox_id).await?.id,
        None => {
            caller.require_account_wide()?;
            caller.account_id.clone()
        }
    };
    let now = state.clock.now();
    let entry = ListEntry {
        id: id::new_id(id::LIST_ENTRY, now),
        account_id: caller.account_id.clone(),
        scope,
        direction: direction.as_str().into(),
        action: request.action,
        pattern,
        created_at: now,
    };
    match state.store.add_list_entry(entry.clone()).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_listed",
                "this pattern is already listed for this direction here; delete it first",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    state.accounts.lists().forget(&caller.account_id);
    Ok((StatusCode::CREATED, axum::Json(entry_json(entry))))
}

/// The account's entries (an inbox-limited token sees its inbox's and the account's).
#[utoipa::path(get, path = "/v1/lists", tag = "lists", security(("bearer" = [])),
    responses((status = 200, body = ListEntries)))]
pub async fn list_entries(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<ListEntries>, ApiError> {
    let entries = state.store.list_entries(&caller.account_id).await?;
    Ok(axum::Json(ListEntries {
        entries: entries
            .into_iter()
            .filter(|e| e.scope == e.account_id || caller.may_see_inbox(&e.scope))
            .map(entry_json)
            .collect(),
    }))
}

#[utoipa::path(delete, path = "/v1/lists/{id}", tag = "lists", security(("bearer" = [])),
    params(("id" = String, Path, description = "Entry id")),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)))]
pub async fn delete_entry(
    State(state): State<ApiState>,
    caller: Caller,
    Path(entry_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let visible = state
        .store
        .list_entries(&caller.account_id)
        .await?
        .into_iter()
        .any(|e| e.id == entry_id && (e.scope == e.account_id || caller.may_see_inbox(&e.scope)));
    if !visible
        || !state
            .store
            .delete_list_entry(&caller.account_id, &entry_id)
            .await?
    {
        return Err(ApiError::not_found("list entry"));
    }
    state.accounts.lists().forget(&caller.account_id);
    Ok(StatusCode::NO_CONTENT)
}

/// What the inbox's inbound lists say of a received message; None when it has none.
pub(crate) async fn sender_lists(
    state: &ApiState,
    caller: &Caller,
    message: &Message,
) -> Result<Option<SenderLists>, ApiError> {
    if message.direction != "inbound" {
        return Ok(None);
    }
    let entries = state.accounts.lists().of(&caller.account_id).await?;
    let inbound = |e: &&ListEntry| {
        e.direction == "inbound" && (e.scope == e.account_id || e.scope == message.inbox_id)
    };
    if !entries.iter().any(|e| inbound(&e)) {
        return Ok(None);
    }
    let from = message
        .parsed
        .from
        .as_ref()
        .and_then(|m| m.address.clone())
        .map(|a| a.to_ascii_lowercase());
    let proven = from
        .as_deref()
        .and_then(|f| lists::authenticated_from(message.auth.as_ref(), f));
    let unproven: Vec<&str> = from.iter().map(String::as_str).collect();
    let verdict = lists::judge(
        &entries,
        &message.inbox_id,
        Direction::Inbound,
        proven,
        &unproven,
    );
    let reply_to = message
        .parsed
        .reply_to
        .iter()
        .filter_map(|m| m.address.as_deref())
        .map(|address| {
            // The Reply-To is judged as if it had proven itself: the question is only
            // whether the lists would let it write to us.
            lists::judge(
                &entries,
                &message.inbox_id,
                Direction::Inbound,
                Some(address),
                &[],
            )
        })
        .find(|v| !matches!(v, Verdict::Allowed))
        .or_else(|| (!message.parsed.reply_to.is_empty()).then_some(Verdict::Allowed));
    let reply_to_outside = reply_to.as_ref().is_some_and(|v| {
        !v.passes() || (matches!(v, Verdict::Unlisted) && matches!(verdict, Verdict::Allowed))
    });
    let from_authenticated = proven.is_some();
    Ok(Some(SenderLists {
        from,
        from_authenticated,
        verdict: verdict.as_str().into(),
        reply_to: reply_to.map(|v| v.as_str().to_owned()),
        reply_to_outside,
    }))
}

/// An address or a domain, lower-cased and checked.
fn pattern(text: &str) -> Result<String, ApiError> {
    let text = text.trim().to_ascii_lowercase();
    let valid = if text.contains('@') {
        Mailbox::parse(&text).is_ok()
    } else {
        crate::account::address::validate_domain(&text).is_ok()
    };
    if !valid {
        return Err(ApiError::invalid(
            "pattern: an address (bob@example.com) or a domain (example.com)",
        )
        .with_field("pattern"));
    }
    Ok(text)
}

fn entry_json(entry: ListEntry) -> crabmail_api::ListEntry {
    crabmail_api::ListEntry {
        inbox_id: (entry.scope != entry.account_id).then_some(entry.scope),
        id: entry.id,
        direction: entry.direction,
        action: entry.action,
        pattern: entry.pattern,
        created_at: entry.created_at.to_rfc3339(),
    }
}
