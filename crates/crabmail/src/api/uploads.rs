//! `POST /v1/uploads`: bytes sent ahead, to attach to a send by `upload_id` (MCP clients over
//! HTTP use it: no base64 inside a tool call). Kept 24 hours.

use super::ApiState;
use super::error::{ApiError, Body, Query};
use crate::account::Caller;
use crate::store::UploadRecord;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use crabmail_api::{ErrorBody, Upload};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// How long an upload is kept.
const KEPT: Duration = Duration::from_secs(24 * 3600);
/// What one account may hold in uploads at a time (they expire after `KEPT`).
const MAX_UPLOADS: i64 = 100;
const MAX_UPLOAD_BYTES: i64 = 256 * 1024 * 1024;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The name attachments get (default `upload`).
    filename: Option<String>,
    /// The size you sent; a body of another size is refused, never kept.
    size: Option<u64>,
    /// Hex SHA-256 of what you sent; a body that does not match is refused, never kept.
    sha256: Option<String>,
}

/// Keep bytes to attach later: the body is the content, `Content-Type` its type. Give `size` or
/// `sha256` to have a body cut short or altered on the way refused (a body shorter than its
/// Content-Length is refused in any case).
#[utoipa::path(post, path = "/v1/uploads", tag = "sending", security(("bearer" = [])),
    params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = Upload),
        (status = 400, description = "The body did not arrive whole", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 507, description = "The account holds its most uploads (100, 256 MiB)", body = ErrorBody),
        (status = 422, description = "size or sha256 does not match", body = ErrorBody)))]
pub async fn create_upload(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Query(query): Query<UploadQuery>,
    Body(bytes): Body,
) -> Result<(StatusCode, axum::Json<Upload>), ApiError> {
    let filename = query.filename.unwrap_or_else(|| "upload".into());
    if filename.trim().is_empty() || filename.chars().any(char::is_control) {
        return Err(
            ApiError::invalid("filename: a name without control characters").with_field("filename"),
        );
    }
    if let Some(size) = query.size
        && size != bytes.len() as u64
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "size_mismatch",
            format!(
                "received {} bytes, not the {size} announced; nothing was kept",
                bytes.len()
            ),
        )
        .with_field("size"));
    }
    let sha256 = hex(&Sha256::digest(&bytes));
    if let Some(expected) = &query.sha256
        && !expected.eq_ignore_ascii_case(&sha256)
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "checksum_mismatch",
            format!("the bytes received hash to {sha256}, not {expected}; nothing was kept"),
        )
        .with_field("sha256"));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "application/octet-stream".into());
    let now = state.clock.now();
    let (count, bytes_held) = state.store.upload_usage(&caller.account_id, now).await?;
    if count >= MAX_UPLOADS || bytes_held + bytes.len() as i64 > MAX_UPLOAD_BYTES {
        return Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "upload_quota_exceeded",
            format!(
                "an account holds at most {MAX_UPLOADS} uploads and {} MiB at a time (it holds \
                 {count} and {} MiB); uploads expire 24 hours after they are made",
                MAX_UPLOAD_BYTES >> 20,
                bytes_held >> 20
            ),
        ));
    }
    let upload = UploadRecord {
        id: crate::id::new_id("upl", now),
        account_id: caller.account_id.clone(),
        filename,
        content_type,
        sha256,
        data: bytes.to_vec(),
        created_at: now,
        expires_at: now.plus(KEPT),
    };
    let answer = Upload {
        id: upload.id.clone(),
        filename: upload.filename.clone(),
        content_type: upload.content_type.clone(),
        size: upload.data.len() as u64,
        sha256: upload.sha256.clone(),
        expires_at: upload.expires_at.to_rfc3339(),
    };
    state.store.save_upload(upload).await?;
    Ok((StatusCode::CREATED, axum::Json(answer)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
