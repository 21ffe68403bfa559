//! MCP over Streamable HTTP at `/mcp`: the caller's bearer token is checked before the request
//! reaches the MCP service (a missing or wrong one is 401 in the API's JSON shape), and each tool
//! call then goes to the API with that token.

use super::Mail;
use crate::api::ApiState;
use crate::api::error::ApiError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::sync::Arc;

/// The `/mcp` service: tools reach the API at `api` (this server's own address) with the token
/// of the request that called them.
pub fn service(
    api: String,
    shutdown: tokio_util::sync::CancellationToken,
) -> StreamableHttpService<Mail, LocalSessionManager> {
    let mut config = StreamableHttpServerConfig::default();
    config.cancellation_token = shutdown;
    // The Host check guards servers that trust their loopback callers; this one checks a token on
    // every request, and operators reach it by whatever name they deploy it under.
    config.allowed_hosts = Vec::new();
    StreamableHttpService::new(
        move || Ok(Mail::for_http(&api)),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// Refuses a request to `/mcp` without a valid token, as every API endpoint does.
pub async fn require_token(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        return ApiError::unauthorized().into_response();
    };
    match state.accounts.authenticate(token).await {
        Ok(Some(_)) => next.run(request).await,
        Ok(None) => ApiError::unauthorized().into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
