//! Custom domains: `POST|GET /v1/domains`, `GET|DELETE /v1/domains/{id}`,
//! `POST /v1/domains/{id}/verify`; and the MTA-STS policy file of every hosted domain.

use super::ApiState;
use super::error::Path;
use super::error::{ApiError, Json};
use crate::account::Caller;
use crate::domain::{self, DomainError};
use crate::id;
use crate::store::DomainRecord;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crabmail_api::{
    CreateDomain, DnsRecord, Domain, DomainList, DomainVerification, ErrorBody, RecordCheck,
};

async fn domain_json(state: &ApiState, record: DomainRecord) -> Result<Domain, ApiError> {
    Ok(published_json(state.domains.published(record).await?))
}

fn published_json(published: domain::Published) -> Domain {
    let record = published.domain;
    Domain {
        status: if record.verified_at.is_some() {
            "verified"
        } else {
            "pending"
        }
        .into(),
        created_at: record.created_at.to_rfc3339(),
        verified_at: record.verified_at.map(|t| t.to_rfc3339()),
        records: published.records.into_iter().map(record_json).collect(),
        id: record.id,
        name: record.name,
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let (status, code) = match &e {
            DomainError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_domain"),
            DomainError::Taken => (StatusCode::CONFLICT, "domain_taken"),
            DomainError::Exists => (StatusCode::CONFLICT, "domain_exists"),
            DomainError::InUse => (StatusCode::CONFLICT, "domain_in_use"),
            DomainError::NotHosted(_) => return ApiError::not_found("domain"),
            DomainError::Store(_) | DomainError::Keys(_) | DomainError::KeysThisSecond(_) => {
                match e {
                    DomainError::Store(e) => return e.into(),
                    other => {
                        return ApiError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "internal",
                            other.to_string(),
                        );
                    }
                }
            }
        };
        let error = ApiError::new(status, code, e.to_string());
        if matches!(e, DomainError::Invalid(_)) {
            error.with_field("name")
        } else {
            error
        }
    }
}

fn record_json(r: domain::Record) -> DnsRecord {
    DnsRecord {
        kind: r.kind.into(),
        name: r.name,
        value: r.value,
        purpose: r.purpose,
        required: r.required,
    }
}

async fn owned(
    state: &ApiState,
    caller: &Caller,
    domain_id: &str,
) -> Result<DomainRecord, ApiError> {
    caller.require_account_wide()?;
    if !id::looks_like(id::DOMAIN, domain_id) {
        return Err(ApiError::not_found("domain"));
    }
    state
        .store
        .get_domain(&caller.account_id, domain_id)
        .await?
        .ok_or_else(|| ApiError::not_found("domain"))
}

/// Claim a domain. The answer lists the records to publish; then call verify.
#[utoipa::path(post, path = "/v1/domains", tag = "domains", request_body = CreateDomain, security(("bearer" = [])),
    responses(
        (status = 201, description = "Claimed, pending verification", body = Domain),
        (status = 409, description = "Already claimed by this account, or verified by another", body = ErrorBody),
        (status = 422, description = "Not a domain name, or the shared domain", body = ErrorBody),
    ))]
pub async fn create_domain(
    State(state): State<ApiState>,
    caller: Caller,
    Json(body): Json<CreateDomain>,
) -> Result<(StatusCode, axum::Json<Domain>), ApiError> {
    caller.require_account_wide()?;
    let record = state.domains.claim(&caller.account_id, &body.name).await?;
    tracing::info!(account = %caller.account_id, domain = %record.name, "api: domain claimed");
    Ok((
        StatusCode::CREATED,
        axum::Json(domain_json(&state, record).await?),
    ))
}

#[utoipa::path(get, path = "/v1/domains", tag = "domains", security(("bearer" = [])),
    responses((status = 200, body = DomainList)))]
pub async fn list_domains(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<DomainList>, ApiError> {
    caller.require_account_wide()?;
    let mut domains = Vec::new();
    for record in state.store.list_domains(&caller.account_id).await? {
        domains.push(domain_json(&state, record).await?);
    }
    Ok(axum::Json(DomainList { domains }))
}

#[utoipa::path(get, path = "/v1/domains/{id}", tag = "domains", security(("bearer" = [])),
    params(("id" = String, Path, description = "Domain id")),
    responses((status = 200, body = Domain), (status = 404, body = ErrorBody)))]
pub async fn get_domain(
    State(state): State<ApiState>,
    caller: Caller,
    Path(domain_id): Path<String>,
) -> Result<axum::Json<Domain>, ApiError> {
    let record = owned(&state, &caller, &domain_id).await?;
    Ok(axum::Json(domain_json(&state, record).await?))
}

/// Look each record up live; when the MX and DKIM records are in place the domain becomes
/// verified, and inboxes can be made on it.
#[utoipa::path(post, path = "/v1/domains/{id}/verify", tag = "domains", security(("bearer" = [])),
    params(("id" = String, Path, description = "Domain id")),
    responses(
        (status = 200, description = "Each record: ok, missing or mismatch", body = DomainVerification),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Another account verified this domain first", body = ErrorBody),
    ))]
pub async fn verify_domain(
    State(state): State<ApiState>,
    caller: Caller,
    Path(domain_id): Path<String>,
) -> Result<axum::Json<DomainVerification>, ApiError> {
    let record = owned(&state, &caller, &domain_id).await?;
    let (record, checks) = state.domains.verify(&caller.account_id, record).await?;
    let checks = checks
        .into_iter()
        .map(|c| RecordCheck {
            record: record_json(c.record),
            status: serde_json::to_value(c.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            found: c.found,
        })
        .collect();
    Ok(axum::Json(DomainVerification {
        domain: domain_json(&state, record).await?,
        checks,
    }))
}

/// Give a domain up. Refused while inboxes live on it.
#[utoipa::path(delete, path = "/v1/domains/{id}", tag = "domains", security(("bearer" = [])),
    params(("id" = String, Path, description = "Domain id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Inboxes still use it", body = ErrorBody),
    ))]
pub async fn delete_domain(
    State(state): State<ApiState>,
    caller: Caller,
    Path(domain_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let record = owned(&state, &caller, &domain_id).await?;
    if state.domains.delete(&caller.account_id, &record.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("domain"))
    }
}

/// RFC 8461 3.2: the policy file, for `Host: mta-sts.<hosted domain>` (TLS in front of the API
/// is the operator's: MTA-STS policies are only fetched over HTTPS).
pub async fn mta_sts_policy(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase())
        .unwrap_or_default();
    let Some(domain) = host.strip_prefix("mta-sts.") else {
        return ApiError::not_found("policy").into_response();
    };
    match state.accounts.hosts_domain(domain).await {
        Ok(true) => (
            [(header::CONTENT_TYPE, "text/plain")],
            domain::mta_sts_policy(&state.hostname),
        )
            .into_response(),
        Ok(false) => ApiError::not_found("policy").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
