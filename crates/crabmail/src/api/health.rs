//! Probes for load balancers and scripts: `/healthz` says the process answers; `/readyz` says it
//! can do its work (the store answers, the shared domain and its DKIM keys are in place, the
//! server is not shutting down). Migrations and listeners are not checks: the API is served only
//! after both.

use super::ApiState;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// Alive: answers as long as the process serves HTTP.
pub async fn healthz() -> axum::Json<Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// Ready: 200 with each check, or 503 with the same and the failing ones false.
pub async fn readyz(State(state): State<ApiState>) -> (StatusCode, axum::Json<Value>) {
    let domain = state.accounts.domain().to_owned();
    let (store, keys) = match state.store.hosted_domain(&domain).await {
        Ok(Some(record)) => match state.store.dkim_keys(&record.id).await {
            Ok(keys) => (true, keys.iter().any(|k| k.retired_at.is_none())),
            Err(_) => (false, false),
        },
        Ok(None) => (true, false),
        Err(_) => (false, false),
    };
    let running = !state.shutdown.is_cancelled();
    let ready = store && keys && running;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({
            "status": if ready { "ready" } else { "not_ready" },
            // Migrations and listeners need no check: the API is served only after both.
            "checks": {
                "store": store,
                "shared_domain_keys": keys,
                "accepting": running,
            }
        })),
    )
}
