//! The bearer-token extractor: every endpoint but signup takes `Authorization: Bearer <token>`.

use super::ApiState;
use super::error::ApiError;
use crate::account::scope::needed;
use crate::account::{AccountError, Caller};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(ApiError::unauthorized)?;
        let caller = state
            .accounts
            .authenticate(token)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        // Every endpoint's scope, decided in one place (account/scope.rs).
        if !caller
            .scopes
            .allows(needed(&parts.method, parts.uri.path()))
        {
            return Err(AccountError::MissingScope(caller.scopes.stored()).into());
        }
        Ok(caller)
    }
}
