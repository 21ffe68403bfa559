//! `GET /metrics` for Prometheus (only to the networks of `api.metrics_from`), and the latency
//! of every API request by route template.

use super::ApiState;
use super::error::ApiError;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

/// The metrics, to a client in `api.metrics_from`; anyone else is told there is no such route.
pub async fn metrics(
    State(state): State<ApiState>,
    request: Request,
) -> Result<Response, ApiError> {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>();
    let allowed = peer
        .is_some_and(|ConnectInfo(addr)| state.metrics_from.iter().any(|n| n.contains(addr.ip())));
    if !allowed {
        return Err(ApiError::not_found("route"));
    }
    let backlog = match state.store.backlog(state.clock.now()).await {
        Ok(backlog) => Some(backlog),
        Err(e) => {
            tracing::error!(error = %e, "metrics: cannot read the backlog");
            crate::metrics::count("crabmail_store_errors_total", &[("where", "metrics")]);
            None
        }
    };
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(backlog),
    )
        .into_response())
}

/// Times every request: method, the route template it matched (never the path a client wrote,
/// so ids do not multiply the series), and the status class.
pub async fn track(request: Request, next: Next) -> Response {
    let started = tokio::time::Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let response = next.run(request).await;
    let status = format!("{}xx", response.status().as_u16() / 100);
    crate::metrics::observe(
        "crabmail_http_request_duration_seconds",
        &[("method", &method), ("route", &route), ("status", &status)],
        started.elapsed().as_secs_f64(),
    );
    response
}
