//! Every API failure as `{"error": {"code", "message"}}` with the right status, and the request
//! extractors that turn malformed input into such errors instead of axum's plain-text ones.

use crate::account::AccountError;
use crate::outbound::SubmitError;
use crate::store::StoreError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use crabmail_api::{ErrorBody, ErrorDetail};
use serde::de::DeserializeOwned;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Header fields the answer carries (Retry-After and the RateLimit fields of a 429).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The one answer for "missing" and "someone else's": nothing to tell them apart.
    pub fn not_found(what: &'static str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token (Authorization: Bearer <token>)",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            if let Ok(value) = header::HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "api: store failure");
        crate::metrics::count("crabmail_store_errors_total", &[("where", "api")]);
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "storage is unavailable; try again shortly",
        )
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        let message = e.to_string();
        match e {
            SubmitError::Invalid { field, message } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                format!("{field}: {message}"),
            )
            .with_field(field),
            SubmitError::Suppressed { field, .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "suppressed", message)
                    .with_field(field)
            }
            SubmitError::TooLarge { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "message_too_large",
                message,
            )
            .with_field("message"),
            SubmitError::IdempotencyConflict => {
                ApiError::new(StatusCode::CONFLICT, "idempotency_conflict", message)
            }
            SubmitError::NotFound => ApiError::not_found("inbox"),
            SubmitError::OverQuota { hit, release, now } => {
                let wait = now.until(release).as_secs_f64().ceil() as u64;
                // A day's quota used up is not a burst: an agent should stop, not retry soon.
                let daily = hit.is_some_and(|h| h.window.is_daily());
                let code = if daily {
                    "daily_quota_exceeded"
                } else {
                    "rate_limited"
                };
                let mut error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message)
                    .with_header("retry-after", wait.to_string());
                if let Some(hit) = hit {
                    let policy = format!("\"{}\"", hit.window.name());
                    let window = hit.window.length_ms() / 1000;
                    error = error
                        .with_header(
                            "ratelimit-policy",
                            format!("{policy};q={};w={window}", hit.limit),
                        )
                        .with_header("ratelimit", format!("{policy};r=0;t={wait}"));
                }
                error
            }
            SubmitError::RecipientBlocked { field, .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "recipient_blocked",
                message,
            )
            .with_field(field),
            SubmitError::Paused { .. } => {
                ApiError::new(StatusCode::LOCKED, "sending_paused", message)
            }
            SubmitError::NeverFits { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "too_many_recipients",
                message,
            )
            .with_field("to"),
            SubmitError::Account(e) => e.into(),
            SubmitError::Store(e) => e.into(),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        use AccountError::*;
        let message = e.to_string();
        match e {
            SignupClosed => ApiError::new(StatusCode::FORBIDDEN, "signup_closed", message),
            InviteRequired => ApiError::new(StatusCode::FORBIDDEN, "invite_required", message),
            InvalidInvite => ApiError::new(StatusCode::FORBIDDEN, "invalid_invite", message),
            InvalidName(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_name", message)
            }
            InvalidDisplayName(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_display_name",
                message,
            ),
            UnknownDomain(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_domain", message)
            }
            Forbidden => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            MissingScope(_) => ApiError::new(StatusCode::FORBIDDEN, "missing_scope", message),
            InvalidScopes(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_scopes", message)
                    .with_field("scopes")
            }
            NotFound => ApiError::not_found("resource"),
            NoFreeAddress => ApiError::new(StatusCode::CONFLICT, "address_unavailable", message),
            Store(store) => store.into(),
        }
    }
}

/// A JSON body. An empty body reads as `{}`, so `curl -X POST .../v1/inboxes` works; the
/// Content-Type is not insisted on. Syntax errors are 400, wrong shapes 422.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawJson(value, _) = RawJson::from_request(req, state).await?;
        Ok(Json(value))
    }
}

/// A whole request body, as bytes. One that is too large, too slow, or cut short (the
/// connection ended before its Content-Length) is refused in the API's JSON shape.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    "request body is too large",
                )
            } else if rejection.body_text().contains("request body timed out") {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    "the request body did not arrive in time",
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    rejection.body_text(),
                )
            }
        })?;
        Ok(Body(bytes))
    }
}

/// A JSON body and the bytes it was read from (for idempotency keys).
pub struct RawJson<T>(pub T, pub Bytes);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for RawJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Body(bytes) = Body::from_request(req, state).await?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        let value = serde_json::from_slice(text).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data => ApiError::invalid(e.to_string()),
                _ => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    format!("malformed JSON: {e}"),
                ),
            }
        })?;
        Ok(RawJson(value, bytes))
    }
}

/// Path parameters; one that cannot name anything (not UTF-8, not a number where one is due) is
/// a JSON 404, like any other name that leads nowhere.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => {
                tracing::debug!(error = %rejection.body_text(), "api: unusable path parameter");
                Err(ApiError::not_found("resource"))
            }
        }
    }
}

/// Query parameters; a malformed one is 422 naming it.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query)
            .map(Query)
            .map_err(|e| ApiError::invalid(format!("invalid query: {e}")))
    }
}
