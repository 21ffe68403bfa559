//! API request limits per bearer token: a token bucket (`api.rate_limit` requests a second,
//! bursts of `api.rate_burst`), with the IETF RateLimit fields (draft-ietf-httpapi-ratelimit-
//! headers) on every answer, so SDKs and agents slow down before they meet a 429.
//!
//! Counts live in this node's memory, keyed by a hash of the token: nodes sharing PostgreSQL
//! each allow the rate (the durable, shared limits are the sending quotas). Requests without a
//! token are not counted here (signup has its own policy; anything else answers 401).

use super::error::ApiError;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// Tokens remembered at most; past it, buckets that have refilled are forgotten first.
const MAX_TRACKED: usize = 100_000;
/// The policy's name in the RateLimit fields.
const POLICY: &str = "\"api\"";

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// What a request found: whether it may go on, and the fields to answer with.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub allowed: bool,
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub reset: u64,
    /// Seconds until one request is allowed again (when refused).
    pub retry_after: u64,
}

pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<[u8; 16], Bucket>>,
}

impl RateLimiter {
    /// None when `per_second` is 0 (no limit).
    pub fn new(per_second: u32, burst: u32) -> Option<Arc<RateLimiter>> {
        (per_second > 0).then(|| {
            Arc::new(RateLimiter {
                per_second: f64::from(per_second),
                burst: f64::from(burst.max(1)),
                buckets: Mutex::new(HashMap::new()),
            })
        })
    }

    /// Takes one request from `token`'s bucket at `now`.
    pub fn take(&self, token: &str, now: Instant) -> Verdict {
        let key: [u8; 16] = Sha256::digest(token.as_bytes())[..16]
            .try_into()
            .unwrap_or([0; 16]);
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&key) {
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| b.tokens + (now - b.at).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refilled = (now - bucket.at).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refilled).min(self.burst);
        bucket.at = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        Verdict {
            allowed,
            remaining: bucket.tokens.floor() as u64,
            reset: ((self.burst - bucket.tokens) / self.per_second).ceil() as u64,
            retry_after: ((1.0 - bucket.tokens).max(0.0) / self.per_second).ceil() as u64,
        }
    }

    fn policy(&self) -> String {
        let window = (self.burst / self.per_second).ceil() as u64;
        format!("{POLICY};q={};w={}", self.burst as u64, window.max(1))
    }
}

/// The middleware: charges the request's token, refuses with 429 past the limit, and adds the
/// RateLimit fields to every answer to a request that carried a token.
pub async fn limit(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let Some(token) = token else {
        return next.run(request).await;
    };
    let verdict = limiter.take(&token, Instant::now());
    let policy = limiter.policy();
    let state = format!("{POLICY};r={};t={}", verdict.remaining, verdict.reset);
    let mut response = if verdict.allowed {
        next.run(request).await
    } else {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            format!(
                "more than {} requests a second (bursts of {}) with this token; retry after {} s",
                limiter.per_second, limiter.burst, verdict.retry_after
            ),
        )
        .with_header("retry-after", verdict.retry_after.max(1).to_string())
        .into_response()
    };
    let headers = response.headers_mut();
    for (name, ours) in [("ratelimit-policy", policy), ("ratelimit", state)] {
        // A sending quota's refusal names its own policy: both go in the one list field.
        let value = match headers.get(name).and_then(|v| v.to_str().ok()) {
            Some(theirs) => format!("{theirs}, {ours}"),
            None => ours,
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_burst_drains_the_bucket_and_time_refills_it() {
        let limiter = RateLimiter::new(10, 5).expect("limited");
        let t0 = Instant::now();
        let verdicts: Vec<Verdict> = (0..6).map(|_| limiter.take("tok", t0)).collect();
        assert!(verdicts[..5].iter().all(|v| v.allowed));
        assert_eq!(verdicts[4].remaining, 0);
        assert!(!verdicts[5].allowed);
        assert_eq!(verdicts[5].retry_after, 1);
        // Another token has its own bucket.
        assert!(limiter.take("other", t0).allowed);
        // A tenth of a second brings one request back; half a second fills the bucket.
        assert!(limiter.take("tok", t0 + Duration::from_millis(100)).allowed);
        let full = limiter.take("tok", t0 + Duration::from_secs(5));
        assert_eq!((full.allowed, full.remaining), (true, 4));
        assert_eq!(limiter.policy(), "\"api\";q=5;w=1");
        assert!(RateLimiter::new(0, 5).is_none());
    }
}
