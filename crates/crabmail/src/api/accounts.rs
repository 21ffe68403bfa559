//! Signup and tokens: `POST /v1/accounts`, `POST|GET /v1/tokens`, `DELETE /v1/tokens/{id}`.

use super::ApiState;
use super::error::Path;
use super::error::{ApiError, Json};
use crate::account::Caller;
use crate::account::scope::Scopes;
use crate::id;
use axum::extract::State;
use axum::http::StatusCode;
use crabmail_api::{
    AccountCreated, CreateAccount, CreateToken, ErrorBody, TokenCreated, TokenInfo, TokenList,
};

/// Create an account and its first token. No authentication; subject to the signup policy.
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", request_body = CreateAccount,
    responses(
        (status = 201, description = "Account created; the token is shown only now", body = AccountCreated),
        (status = 403, description = "Signup closed, or invite missing or invalid", body = ErrorBody),
    ))]
pub async fn create_account(
    State(state): State<ApiState>,
    Json(body): Json<CreateAccount>,
) -> Result<(StatusCode, axum::Json<AccountCreated>), ApiError> {
    let signed = state.accounts.sign_up(body.invite.as_deref()).await?;
    tracing::info!(account = %signed.account_id, "api: account created");
    Ok((
        StatusCode::CREATED,
        axum::Json(AccountCreated {
            account_id: signed.account_id,
            token_id: signed.token_id,
            token: signed.token,
        }),
    ))
}

/// Mint another token, optionally limited to one inbox.
#[utoipa::path(post, path = "/v1/tokens", tag = "accounts", request_body = CreateToken,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Token created; shown only now", body = TokenCreated),
        (status = 403, description = "The calling token is limited to one inbox", body = ErrorBody),
        (status = 404, description = "No such inbox", body = ErrorBody),
    ))]
pub async fn create_token(
    State(state): State<ApiState>,
    caller: Caller,
    Json(body): Json<CreateToken>,
) -> Result<(StatusCode, axum::Json<TokenCreated>), ApiError> {
    if body
        .inbox_id
        .as_deref()
        .is_some_and(|i| !id::looks_like(id::INBOX, i))
    {
        return Err(ApiError::not_found("inbox"));
    }
    let scopes = body
        .scopes
        .as_deref()
        .map(Scopes::parse)
        .transpose()
        .map_err(|e| ApiError::invalid(e).with_field("scopes"))?;
    let minted = state
        .accounts
        .mint_token(&caller, body.inbox_id, body.name, scopes)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(TokenCreated {
            id: minted.record.id,
            token: minted.secret,
            scopes: Scopes::from_stored(minted.record.scopes.as_deref())
                .names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            inbox_id: minted.record.inbox_id,
            name: minted.record.name,
            created_at: minted.record.created_at.to_rfc3339(),
        }),
    ))
}

/// The account's live tokens (never their secrets).
#[utoipa::path(get, path = "/v1/tokens", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = TokenList)))]
pub async fn list_tokens(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<TokenList>, ApiError> {
    caller.require_account_wide()?;
    let tokens = state.store.list_tokens(&caller.account_id).await?;
    Ok(axum::Json(TokenList {
        tokens: tokens
            .into_iter()
            .map(|t| TokenInfo {
                scopes: Scopes::from_stored(t.scopes.as_deref())
                    .names()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                id: t.id,
                inbox_id: t.inbox_id,
                name: t.name,
                created_at: t.created_at.to_rfc3339(),
            })
            .collect(),
    }))
}

/// Revoke a token at once. A token limited to one inbox may revoke only itself.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "accounts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such token", body = ErrorBody),
    ))]
pub async fn revoke_token(
    State(state): State<ApiState>,
    caller: Caller,
    Path(token_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if token_id != caller.token_id {
        caller.require_account_wide()?;
    }
    let now = state.clock.now();
    if state
        .store
        .revoke_token(&caller.account_id, &token_id, now)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("token"))
    }
}
