//! A typed async client for the crabmail API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), crabmail_api::client::ClientError> {
//! use crabmail_api::client::Client;
//! let signup = Client::new("http://127.0.0.1:8080", None).create_account(None).await?;
//! let client = Client::new("http://127.0.0.1:8080", Some(signup.token));
//! let inbox = client.create_inbox(&Default::default()).await?;
//! let list = client.list_messages(&inbox.id, None, None, Some(60)).await?;
//! # Ok(()) }
//! ```

use crate::*;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the server: {0}")]
    Transport(#[from] reqwest::Error),
    /// The token file could not be read or written.
    #[error("token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The server answered with an error body.
    #[error("{status}: {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        /// The request field at fault, for validation errors.
        field: Option<String>,
    },
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::Transport(e) => e.status().map(|s| s.as_u16()),
            ClientError::TokenFile { .. } => None,
        }
    }
}

/// Answers worth another try: the server asked to slow down, or was briefly unavailable.
const RETRY_STATUSES: [u16; 4] = [429, 502, 503, 504];
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// 429 codes that refuse a send over a sending quota: final answers, never retried.
const QUOTA_REFUSED: [&str; 2] = ["rate_limited", "daily_quota_exceeded"];

#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    max_retries: u32,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Client {
        Client {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::new(),
            max_retries: 4,
        }
    }

    /// A client for `base` with a token: `CRABMAIL_TOKEN`, else the file (`~/.crabmail/token`
    /// when None, shared with the CLI); with neither, it signs up and saves the new token there
    /// (mode 0600). The second value says whether it signed up.
    pub async fn connect(
        base: &str,
        token_file: Option<&Path>,
    ) -> Result<(Client, bool), ClientError> {
        if let Ok(token) = std::env::var("CRABMAIL_TOKEN")
            && !token.trim().is_empty()
        {
            return Ok((Client::new(base, Some(token.trim().to_owned())), false));
        }
        let path = match token_file {
            Some(path) => path.to_owned(),
            None => default_token_file()?,
        };
        if let Ok(token) = std::fs::read_to_string(&path)
            && !token.trim().is_empty()
        {
            return Ok((Client::new(base, Some(token.trim().to_owned())), false));
        }
        let created = Client::new(base, None).create_account(None).await?;
        save_token(&path, &created.token)?;
        Ok((Client::new(base, Some(created.token)), true))
    }

    /// How many times a request that is safe to repeat is sent again (default 4; 0: never).
    pub fn with_max_retries(mut self, retries: u32) -> Client {
        self.max_retries = retries;
        self
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, format!("{}{}", self.base, path));
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    async fn send<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T, ClientError> {
        Ok(self.execute(req).await?.json().await?)
    }

    /// Sends `req`; an error answer becomes `ClientError::Api`. What is safe to repeat (reads,
    /// deletes, and requests with an `Idempotency-Key`) is sent again after a network error, a
    /// 502, 503 or 504, or a 429 for too many requests (not a sending quota's refusal), waiting as
    /// long as `Retry-After` says (at most a minute), else backing off, up to `max_retries` times.
    async fn execute(&self, req: RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let mut request = req.build()?;
        let repeatable = matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::DELETE
        ) || request.headers().contains_key("idempotency-key");
        let mut attempt = 0;
        loop {
            // A request whose body cannot be copied (none here) is sent once.
            let spare = if repeatable && attempt < self.max_retries {
                request.try_clone()
            } else {
                None
            };
            let Some(spare) = spare else {
                return Self::check(self.http.execute(request).await?).await;
            };
            attempt += 1;
            let wait = match self.http.execute(request).await {
                Ok(resp) if RETRY_STATUSES.contains(&resp.status().as_u16()) => {
                    let wait = retry_after(&resp).unwrap_or_else(|| backoff(attempt));
                    match Self::check(resp).await {
                        // A sending quota's 429 is an answer (the caller asked to be refused
                        // rather than queued), not a reason to try again.
                        Err(ClientError::Api { code, .. })
                            if !QUOTA_REFUSED.contains(&code.as_str()) =>
                        {
                            wait
                        }
                        answer => return answer,
                    }
                }
                Ok(resp) => return Self::check(resp).await,
                Err(e) if e.is_connect() || e.is_timeout() => backoff(attempt),
                Err(e) => return Err(e.into()),
            };
            tokio::time::sleep(wait).await;
            request = spare;
        }
    }

    async fn check(resp: reqwest::Response) -> Result<reqwest::Response, ClientError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        let (code, message, field) = match serde_json::from_str::<ErrorBody>(&body) {
            Ok(e) => (e.error.code, e.error.message, e.error.field),
            Err(_) => ("http_error".to_owned(), body, None),
        };
        Err(ClientError::Api {
            status: status.as_u16(),
            code,
            message,
            field,
        })
    }

    pub async fn create_account(
        &self,
        invite: Option<String>,
    ) -> Result<AccountCreated, ClientError> {
        self.send(
            self.request(Method::POST, "/v1/accounts")
                .json(&CreateAccount { invite }),
        )
        .await
    }

    pub async fn create_token(&self, body: &CreateToken) -> Result<TokenCreated, ClientError> {
        self.send(self.request(Method::POST, "/v1/tokens").json(body))
            .await
    }

    pub async fn list_tokens(&self) -> Result<TokenList, ClientError> {
        self.send(self.request(Method::GET, "/v1/tokens")).await
    }

    pub async fn revoke_token(&self, id: &str) -> Result<(), ClientError> {
        self.execute(self.request(Method::DELETE, &format!("/v1/tokens/{id}")))
            .await?;
        Ok(())
    }

    pub async fn create_inbox(&self, body: &CreateInbox) -> Result<Inbox, ClientError> {
        self.send(self.request(Method::POST, "/v1/inboxes").json(body))
            .await
    }

    pub async fn list_inboxes(&self) -> Result<InboxList, ClientError> {
        self.send(self.request(Method::GET, "/v1/inboxes")).await
    }

    pub async fn get_inbox(&self, id: &str) -> Result<Inbox, ClientError> {
        self.send(self.request(Method::GET, &format!("/v1/inboxes/{id}")))
            .await
    }

    pub async fn delete_inbox(&self, id: &str) -> Result<(), ClientError> {
        self.execute(self.request(Method::DELETE, &format!("/v1/inboxes/{id}")))
            .await?;
        Ok(())
    }

    /// Lists messages after `after` (a cursor from an earlier page); with `wait` seconds, holds
    /// the request until something arrives or the wait ends.
    pub async fn list_messages(
        &self,
        inbox_id: &str,
        after: Option<&str>,
        limit: Option<u32>,
        wait: Option<u32>,
    ) -> Result<MessageList, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(wait) = wait {
            query.push(("wait", wait.to_string()));
        }
        let req = self
            .request(Method::GET, &format!("/v1/inboxes/{inbox_id}/messages"))
            .query(&query);
        self.send(req).await
    }

    /// The reports about mail this account sent that reached an inbox (`report=`: `bounce`,
    /// `complaint`, `auto_reply`, `any`, or `none` for ordinary mail), after `after`.
    pub async fn list_reports(
        &self,
        inbox_id: &str,
        report: &str,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<MessageList, ClientError> {
        let mut query = vec![("report", report.to_owned())];
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        let req = self
            .request(Method::GET, &format!("/v1/inboxes/{inbox_id}/messages"))
            .query(&query);
        self.send(req).await
    }

    /// Every message held in an inbox, those quarantined by DMARC included (`include=quarantined`).
    pub async fn list_all_messages(
        &self,
        inbox_id: &str,
        after: Option<&str>,
        wait: Option<u32>,
    ) -> Result<MessageList, ClientError> {
        let mut query = vec![("include", "quarantined".to_owned())];
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        if let Some(wait) = wait {
            query.push(("wait", wait.to_string()));
        }
        let req = self
            .request(Method::GET, &format!("/v1/inboxes/{inbox_id}/messages"))
            .query(&query);
        self.send(req).await
    }

    pub async fn get_message(&self, id: &str) -> Result<Message, ClientError> {
        self.send(self.request(Method::GET, &format!("/v1/messages/{id}")))
            .await
    }

    /// `GET /v1/messages/{id}?view=safe`: what an LLM should read of a received message.
    pub async fn get_safe_view(&self, id: &str) -> Result<SafeView, ClientError> {
        let req = self
            .request(Method::GET, &format!("/v1/messages/{id}"))
            .query(&[("view", "safe")]);
        self.send(req).await
    }

    /// Waits up to `filter.timeout` seconds for the first new message of the inbox that matches.
    pub async fn wait_for(
        &self,
        inbox_id: &str,
        filter: &WaitFilter,
    ) -> Result<WaitResult, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(from) = &filter.from {
            query.push(("from", from.clone()));
        }
        if let Some(subject) = &filter.subject_contains {
            query.push(("subject_contains", subject.clone()));
        }
        if filter.has_code {
            query.push(("has_code", "true".into()));
        }
        if let Some(timeout) = filter.timeout {
            query.push(("timeout", timeout.to_string()));
        }
        if let Some(after) = &filter.after {
            query.push(("after", after.clone()));
        }
        if let Some(since) = &filter.since {
            query.push(("since", since.clone()));
        }
        // The server holds the request for the timeout; give reqwest room beyond it.
        let req = self
            .request(Method::GET, &format!("/v1/inboxes/{inbox_id}/wait"))
            .query(&query);
        self.send(req).await
    }

    pub async fn list_threads(&self, inbox_id: &str) -> Result<ThreadList, ClientError> {
        let req = self
            .request(Method::GET, "/v1/threads")
            .query(&[("inbox", inbox_id)]);
        self.send(req).await
    }

    pub async fn get_thread(&self, id: &str) -> Result<Thread, ClientError> {
        self.send(self.request(Method::GET, &format!("/v1/threads/{id}")))
            .await
    }

    pub async fn get_raw(&self, id: &str) -> Result<Vec<u8>, ClientError> {
        let resp = self
            .execute(self.request(Method::GET, &format!("/v1/messages/{id}/raw")))
            .await?;
        Ok(resp.bytes().await?.to_vec())
    }

    /// The message as stored: crabmail's Authentication-Results field (its verdict on arrival)
    /// first, then the bytes received.
    pub async fn get_raw_with_auth_results(&self, id: &str) -> Result<Vec<u8>, ClientError> {
        let req = self
            .request(Method::GET, &format!("/v1/messages/{id}/raw"))
            .query(&[("with_auth_results", "true")]);
        Ok(self.execute(req).await?.bytes().await?.to_vec())
    }

    /// The decoded attachment and its content type.
    pub async fn get_attachment(
        &self,
        id: &str,
        index: usize,
    ) -> Result<(String, Vec<u8>), ClientError> {
        let resp = self
            .execute(self.request(
                Method::GET,
                &format!("/v1/messages/{id}/attachments/{index}"),
            ))
            .await?;
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned();
        Ok((content_type, resp.bytes().await?.to_vec()))
    }

    pub async fn delete_message(&self, id: &str) -> Result<(), ClientError> {
        self.execute(self.request(Method::DELETE, &format!("/v1/messages/{id}")))
            .await?;
        Ok(())
    }

    /// Queues a message from an inbox. It always carries an idempotency key (a new one when
    /// `idempotency_key` is None), so the client's own retries never send twice; give your key
    /// to make your retries safe too.
    pub async fn send_message(
        &self,
        inbox_id: &str,
        message: &SendMessage,
        idempotency_key: Option<&str>,
    ) -> Result<Sent, ClientError> {
        let key = match idempotency_key {
            Some(key) => key.to_owned(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        let req = self
            .request(Method::POST, &format!("/v1/inboxes/{inbox_id}/messages"))
            .header("Idempotency-Key", key)
            .json(message);
        self.send(req).await
    }

    /// Keeps `bytes` for 24 hours to attach by `upload_id`; the size is announced, so bytes cut
    /// short on the way are refused, never kept.
    pub async fn upload(
        &self,
        bytes: Vec<u8>,
        filename: &str,
        content_type: &str,
    ) -> Result<Upload, ClientError> {
        let size = bytes.len().to_string();
        let req = self
            .request(Method::POST, "/v1/uploads")
            .query(&[("filename", filename), ("size", size.as_str())])
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes);
        self.send(req).await
    }

    /// The most likely verification code of the first message carrying one that arrives within
    /// `timeout`, or arrived within `lookback` before the call; None at the timeout.
    pub async fn wait_for_code(
        &self,
        inbox_id: &str,
        from: Option<&str>,
        timeout: Duration,
        since: Option<&str>,
    ) -> Result<Option<String>, ClientError> {
        let filter = WaitFilter {
            from: from.map(str::to_owned),
            has_code: true,
            timeout: Some(timeout.as_secs()),
            since: since.map(str::to_owned),
            ..Default::default()
        };
        Ok(match self.wait_for(inbox_id, &filter).await? {
            WaitResult::Message(m) => m
                .parsed
                .extracted
                .and_then(|x| x.codes.into_iter().next())
                .map(|c| c.value),
            WaitResult::TimedOut(_) => None,
        })
    }

    /// Every event after `after` so far, following the cursor page by page.
    pub async fn all_events(&self, after: Option<&str>) -> Result<Vec<Event>, ClientError> {
        let mut events = Vec::new();
        let mut cursor = after.unwrap_or("0").to_owned();
        loop {
            let page = self.list_events(Some(&cursor), None).await?;
            if page.events.is_empty() {
                return Ok(events);
            }
            events.extend(page.events);
            cursor = page.next_cursor;
        }
    }

    /// What sending `message` would do (`?dry_run=true`); nothing is queued.
    pub async fn dry_run(
        &self,
        inbox_id: &str,
        message: &SendMessage,
    ) -> Result<DryRun, ClientError> {
        self.send(
            self.request(Method::POST, &format!("/v1/inboxes/{inbox_id}/messages"))
                .query(&[("dry_run", "true")])
                .json(message),
        )
        .await
    }

    /// Events after `after`; with `wait` seconds, held until one happens or the wait ends.
    pub async fn list_events(
        &self,
        after: Option<&str>,
        wait: Option<u32>,
    ) -> Result<EventList, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        if let Some(wait) = wait {
            query.push(("wait", wait.to_string()));
        }
        self.send(self.request(Method::GET, "/v1/events").query(&query))
            .await
    }

    /// Adds an allow or block list entry.
    pub async fn add_list_entry(&self, body: &CreateListEntry) -> Result<ListEntry, ClientError> {
        self.send(self.request(Method::POST, "/v1/lists").json(body))
            .await
    }

    pub async fn list_entries(&self) -> Result<ListEntries, ClientError> {
        self.send(self.request(Method::GET, "/v1/lists")).await
    }

    pub async fn delete_list_entry(&self, id: &str) -> Result<(), ClientError> {
        self.execute(self.request(Method::DELETE, &format!("/v1/lists/{id}")))
            .await?;
        Ok(())
    }

    pub async fn create_webhook(&self, body: &CreateWebhook) -> Result<Webhook, ClientError> {
        self.send(self.request(Method::POST, "/v1/webhooks").json(body))
            .await
    }

    pub async fn list_webhooks(&self) -> Result<WebhookList, ClientError> {
        self.send(self.request(Method::GET, "/v1/webhooks")).await
    }

    pub async fn get_webhook(&self, id: &str) -> Result<Webhook, ClientError> {
        self.send(self.request(Method::GET, &format!("/v1/webhooks/{id}")))
            .await
    }

    pub async fn delete_webhook(&self, id: &str) -> Result<(), ClientError> {
        self.execute(self.request(Method::DELETE, &format!("/v1/webhooks/{id}")))
            .await?;
        Ok(())
    }

    /// A new signing secret; the old one keeps signing beside it for 24 hours.
    pub async fn rotate_webhook_secret(&self, id: &str) -> Result<Webhook, ClientError> {
        self.send(self.request(Method::POST, &format!("/v1/webhooks/{id}/rotate")))
            .await
    }

    pub async fn replay_webhook(
        &self,
        id: &str,
        body: &ReplayWebhook,
    ) -> Result<Webhook, ClientError> {
        self.send(
            self.request(Method::POST, &format!("/v1/webhooks/{id}/replay"))
                .json(body),
        )
        .await
    }

    pub async fn webhook_deliveries(&self, id: &str) -> Result<WebhookDeliveries, ClientError> {
        self.send(self.request(Method::GET, &format!("/v1/webhooks/{id}/deliveries")))
            .await
    }

    /// The endpoint's attempts once at least `min` are listed, waiting up to `wait` seconds.
    pub async fn wait_for_webhook_deliveries(
        &self,
        id: &str,
        min: usize,
        wait: u32,
    ) -> Result<WebhookDeliveries, ClientError> {
        let req = self
            .request(Method::GET, &format!("/v1/webhooks/{id}/deliveries"))
            .query(&[("min", min.to_string()), ("wait", wait.to_string())]);
        self.send(req).await
    }

    /// Messages waiting for approval, oldest first.
    pub async fn list_approvals(&self) -> Result<ApprovalList, ClientError> {
        self.send(self.request(Method::GET, "/v1/approvals")).await
    }

    /// Approves a held message: it is queued (or throttled) now.
    pub async fn approve(&self, message_id: &str) -> Result<Sent, ClientError> {
        self.send(self.request(Method::POST, &format!("/v1/messages/{message_id}/approve")))
            .await
    }

    /// Rejects a held message: it is never sent.
    pub async fn reject(&self, message_id: &str) -> Result<Sent, ClientError> {
        self.send(self.request(Method::POST, &format!("/v1/messages/{message_id}/reject")))
            .await
    }

    /// Changes an inbox's settings (`approval`).
    pub async fn update_inbox(&self, id: &str, body: &UpdateInbox) -> Result<Inbox, ClientError> {
        self.send(
            self.request(Method::PATCH, &format!("/v1/inboxes/{id}"))
                .json(body),
        )
        .await
    }

    /// Sending limits, use and held mail: the account's, or one inbox's.
    pub async fn get_quota(&self, inbox_id: Option<&str>) -> Result<Quota, ClientError> {
        self.send(self.request(Method::GET, &quota_path(inbox_id)))
            .await
    }

    /// Tightens the account's (or one inbox's) sending limits; `None` fields go back to the
    /// server's default.
    pub async fn set_quota(
        &self,
        inbox_id: Option<&str>,
        limits: &SetQuota,
    ) -> Result<Quota, ClientError> {
        self.send(
            self.request(Method::PUT, &quota_path(inbox_id))
                .json(limits),
        )
        .await
    }

    pub async fn list_suppressions(&self) -> Result<SuppressionList, ClientError> {
        self.send(self.request(Method::GET, "/v1/suppressions"))
            .await
    }

    pub async fn delete_suppression(&self, address: &str) -> Result<(), ClientError> {
        self.execute(self.request(Method::DELETE, &format!("/v1/suppressions/{address}")))
            .await?;
        Ok(())
    }

    /// Claims a custom domain; the answer lists the records to publish.
    pub async fn create_domain(&self, name: &str) -> Result<Domain, ClientError> {
        self.send(
            self.request(Method::POST, "/v1/domains")
                .json(&CreateDomain {
                    name: name.to_owned(),
                }),
        )
        .await
    }

    pub async fn list_domains(&self) -> Result<DomainList, ClientError> {
        self.send(self.request(Method::GET, "/v1/domains")).await
    }

    pub async fn get_domain(&self, id: &str) -> Result<Domain, ClientError> {
        self.send(self.request(Method::GET, &format!("/v1/domains/{id}")))
            .await
    }

    /// Looks every record up live; the domain is verified once the required ones are right.
    pub async fn verify_domain(&self, id: &str) -> Result<DomainVerification, ClientError> {
        self.send(self.request(Method::POST, &format!("/v1/domains/{id}/verify")))
            .await
    }

    pub async fn delete_domain(&self, id: &str) -> Result<(), ClientError> {
        self.execute(self.request(Method::DELETE, &format!("/v1/domains/{id}")))
            .await?;
        Ok(())
    }

    /// Whether the server answers at all (used by the CLI to explain a down server).
    pub async fn ping(&self) -> bool {
        match self.request(Method::GET, "/v1/openapi.json").send().await {
            Ok(resp) => resp.status() == StatusCode::OK,
            Err(_) => false,
        }
    }
}

/// Filters for [`Client::wait_for`]; every one given must match.
#[derive(Debug, Clone, Default)]
pub struct WaitFilter {
    /// Sender address or domain.
    pub from: Option<String>,
    pub subject_contains: Option<String>,
    pub has_code: bool,
    /// Seconds (server default 30).
    pub timeout: Option<u64>,
    /// A list cursor: messages after it count too.
    pub after: Option<String>,
    /// An RFC 3339 time: messages received since then count too.
    pub since: Option<String>,
}

fn quota_path(inbox_id: Option<&str>) -> String {
    match inbox_id {
        Some(id) => format!("/v1/inboxes/{id}/quota"),
        None => "/v1/quota".to_owned(),
    }
}

/// `~/.crabmail/token`.
pub fn default_token_file() -> Result<PathBuf, ClientError> {
    let home = std::env::var_os("HOME").ok_or_else(|| ClientError::TokenFile {
        path: PathBuf::from("~/.crabmail/token"),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "HOME is not set"),
    })?;
    Ok(PathBuf::from(home).join(".crabmail").join("token"))
}

/// Writes the token readable by its owner only.
fn save_token(path: &Path, token: &str) -> Result<(), ClientError> {
    use std::io::Write;
    let failed = |source| ClientError::TokenFile {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(failed)?;
    file.write_all(token.as_bytes()).map_err(failed)
}

/// What `Retry-After` asks (delay-seconds), at most a minute.
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let seconds: u64 = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// 250 ms doubling to 8 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64 << attempt.saturating_sub(1).min(5)).min(Duration::from_secs(8))
}
