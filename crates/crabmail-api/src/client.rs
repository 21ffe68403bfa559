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

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the server: {0}")]
    Transport(#[from] reqwest::Error),
    /// The server answered with an error body.
    #[error("{status}: {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::Transport(e) => e.status().map(|s| s.as_u16()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Client {
        Client {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::new(),
        }
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

    async fn send<T: DeserializeOwned>(req: RequestBuilder) -> Result<T, ClientError> {
        let resp = Self::check(req.send().await?).await?;
        Ok(resp.json().await?)
    }

    async fn check(resp: reqwest::Response) -> Result<reqwest::Response, ClientError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        let (code, message) = match serde_json::from_str::<ErrorBody>(&body) {
            Ok(e) => (e.error.code, e.error.message),
            Err(_) => ("http_error".to_owned(), body),
        };
        Err(ClientError::Api {
            status: status.as_u16(),
            code,
            message,
        })
    }

    pub async fn create_account(
        &self,
        invite: Option<String>,
    ) -> Result<AccountCreated, ClientError> {
        Self::send(
            self.request(Method::POST, "/v1/accounts")
                .json(&CreateAccount { invite }),
        )
        .await
    }

    pub async fn create_token(&self, body: &CreateToken) -> Result<TokenCreated, ClientError> {
        Self::send(self.request(Method::POST, "/v1/tokens").json(body)).await
    }

    pub async fn list_tokens(&self) -> Result<TokenList, ClientError> {
        Self::send(self.request(Method::GET, "/v1/tokens")).await
    }

    pub async fn revoke_token(&self, id: &str) -> Result<(), ClientError> {
        let resp = self
            .request(Method::DELETE, &format!("/v1/tokens/{id}"))
            .send()
            .await?;
        Self::check(resp).await.map(|_| ())
    }

    pub async fn create_inbox(&self, body: &CreateInbox) -> Result<Inbox, ClientError> {
        Self::send(self.request(Method::POST, "/v1/inboxes").json(body)).await
    }

    pub async fn list_inboxes(&self) -> Result<InboxList, ClientError> {
        Self::send(self.request(Method::GET, "/v1/inboxes")).await
    }

    pub async fn get_inbox(&self, id: &str) -> Result<Inbox, ClientError> {
        Self::send(self.request(Method::GET, &format!("/v1/inboxes/{id}"))).await
    }

    pub async fn delete_inbox(&self, id: &str) -> Result<(), ClientError> {
        let resp = self
            .request(Method::DELETE, &format!("/v1/inboxes/{id}"))
            .send()
            .await?;
        Self::check(resp).await.map(|_| ())
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
        Self::send(req).await
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
        Self::send(req).await
    }

    pub async fn get_message(&self, id: &str) -> Result<Message, ClientError> {
        Self::send(self.request(Method::GET, &format!("/v1/messages/{id}"))).await
    }

    /// `GET /v1/messages/{id}?view=safe`: what an LLM should read of a received message.
    pub async fn get_safe_view(&self, id: &str) -> Result<SafeView, ClientError> {
        let req = self
            .request(Method::GET, &format!("/v1/messages/{id}"))
            .query(&[("view", "safe")]);
        Self::send(req).await
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
        Self::send(req).await
    }

    pub async fn list_threads(&self, inbox_id: &str) -> Result<ThreadList, ClientError> {
        let req = self
            .request(Method::GET, "/v1/threads")
            .query(&[("inbox", inbox_id)]);
        Self::send(req).await
    }

    pub async fn get_thread(&self, id: &str) -> Result<Thread, ClientError> {
        Self::send(self.request(Method::GET, &format!("/v1/threads/{id}"))).await
    }

    pub async fn get_raw(&self, id: &str) -> Result<Vec<u8>, ClientError> {
        let resp = self
            .request(Method::GET, &format!("/v1/messages/{id}/raw"))
            .send()
            .await?;
        Ok(Self::check(resp).await?.bytes().await?.to_vec())
    }

    /// The decoded attachment and its content type.
    pub async fn get_attachment(
        &self,
        id: &str,
        index: usize,
    ) -> Result<(String, Vec<u8>), ClientError> {
        let resp = self
            .request(
                Method::GET,
                &format!("/v1/messages/{id}/attachments/{index}"),
            )
            .send()
            .await?;
        let resp = Self::check(resp).await?;
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned();
        Ok((content_type, resp.bytes().await?.to_vec()))
    }

    pub async fn delete_message(&self, id: &str) -> Result<(), ClientError> {
        let resp = self
            .request(Method::DELETE, &format!("/v1/messages/{id}"))
            .send()
            .await?;
        Self::check(resp).await.map(|_| ())
    }

    /// Queues a message from an inbox; `idempotency_key` makes a retry safe.
    pub async fn send_message(
        &self,
        inbox_id: &str,
        message: &SendMessage,
        idempotency_key: Option<&str>,
    ) -> Result<Sent, ClientError> {
        let mut req = self
            .request(Method::POST, &format!("/v1/inboxes/{inbox_id}/messages"))
            .json(message);
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        Self::send(req).await
    }

    /// What sending `message` would do (`?dry_run=true`); nothing is queued.
    pub async fn dry_run(
        &self,
        inbox_id: &str,
        message: &SendMessage,
    ) -> Result<DryRun, ClientError> {
        Self::send(
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
        Self::send(self.request(Method::GET, "/v1/events").query(&query)).await
    }

    /// Adds an allow or block list entry.
    pub async fn add_list_entry(&self, body: &CreateListEntry) -> Result<ListEntry, ClientError> {
        Self::send(self.request(Method::POST, "/v1/lists").json(body)).await
    }

    pub async fn list_entries(&self) -> Result<ListEntries, ClientError> {
        Self::send(self.request(Method::GET, "/v1/lists")).await
    }

    pub async fn delete_list_entry(&self, id: &str) -> Result<(), ClientError> {
        let resp = self
            .request(Method::DELETE, &format!("/v1/lists/{id}"))
            .send()
            .await?;
        Self::check(resp).await.map(|_| ())
    }

    pub async fn create_webhook(&self, body: &CreateWebhook) -> Result<Webhook, ClientError> {
        Self::send(self.request(Method::POST, "/v1/webhooks").json(body)).await
    }

    pub async fn list_webhooks(&self) -> Result<WebhookList, ClientError> {
        Self::send(self.request(Method::GET, "/v1/webhooks")).await
    }

    pub async fn get_webhook(&self, id: &str) -> Result<Webhook, ClientError> {
        Self::send(self.request(Method::GET, &format!("/v1/webhooks/{id}"))).await
    }

    pub async fn delete_webhook(&self, id: &str) -> Result<(), ClientError> {
        let resp = self
            .request(Method::DELETE, &format!("/v1/webhooks/{id}"))
            .send()
            .await?;
        Self::check(resp).await.map(|_| ())
    }

    /// A new signing secret; the old one keeps signing beside it for 24 hours.
    pub async fn rotate_webhook_secret(&self, id: &str) -> Result<Webhook, ClientError> {
        Self::send(self.request(Method::POST, &format!("/v1/webhooks/{id}/rotate"))).await
    }

    pub async fn replay_webhook(
        &self,
        id: &str,
        body: &ReplayWebhook,
    ) -> Result<Webhook, ClientError> {
        Self::send(
            self.request(Method::POST, &format!("/v1/webhooks/{id}/replay"))
                .json(body),
        )
        .await
    }

    pub async fn webhook_deliveries(&self, id: &str) -> Result<WebhookDeliveries, ClientError> {
        Self::send(self.request(Method::GET, &format!("/v1/webhooks/{id}/deliveries"))).await
    }

    /// Messages waiting for approval, oldest first.
    pub async fn list_approvals(&self) -> Result<ApprovalList, ClientError> {
        Self::send(self.request(Method::GET, "/v1/approvals")).await
    }

    /// Approves a held message: it is queued (or throttled) now.
    pub async fn approve(&self, message_id: &str) -> Result<Sent, ClientError> {
        Self::send(self.request(Method::POST, &format!("/v1/messages/{message_id}/approve"))).await
    }

    /// Rejects a held message: it is never sent.
    pub async fn reject(&self, message_id: &str) -> Result<Sent, ClientError> {
        Self::send(self.request(Method::POST, &format!("/v1/messages/{message_id}/reject"))).await
    }

    /// Changes an inbox's settings (`approval`).
    pub async fn update_inbox(&self, id: &str, body: &UpdateInbox) -> Result<Inbox, ClientError> {
        Self::send(
            self.request(Method::PATCH, &format!("/v1/inboxes/{id}"))
                .json(body),
        )
        .await
    }

    /// Sending limits, use and held mail: the account's, or one inbox's.
    pub async fn get_quota(&self, inbox_id: Option<&str>) -> Result<Quota, ClientError> {
        Self::send(self.request(Method::GET, &quota_path(inbox_id))).await
    }

    /// Tightens the account's (or one inbox's) sending limits; `None` fields go back to the
    /// server's default.
    pub async fn set_quota(
        &self,
        inbox_id: Option<&str>,
        limits: &SetQuota,
    ) -> Result<Quota, ClientError> {
        Self::send(
            self.request(Method::PUT, &quota_path(inbox_id))
                .json(limits),
        )
        .await
    }

    pub async fn list_suppressions(&self) -> Result<SuppressionList, ClientError> {
        Self::send(self.request(Method::GET, "/v1/suppressions")).await
    }

    pub async fn delete_suppression(&self, address: &str) -> Result<(), ClientError> {
        let resp = self
            .request(Method::DELETE, &format!("/v1/suppressions/{address}"))
            .send()
            .await?;
        Self::check(resp).await.map(|_| ())
    }

    /// Claims a custom domain; the answer lists the records to publish.
    pub async fn create_domain(&self, name: &str) -> Result<Domain, ClientError> {
        Self::send(
            self.request(Method::POST, "/v1/domains")
                .json(&CreateDomain {
                    name: name.to_owned(),
                }),
        )
        .await
    }

    pub async fn list_domains(&self) -> Result<DomainList, ClientError> {
        Self::send(self.request(Method::GET, "/v1/domains")).await
    }

    pub async fn get_domain(&self, id: &str) -> Result<Domain, ClientError> {
        Self::send(self.request(Method::GET, &format!("/v1/domains/{id}"))).await
    }

    /// Looks every record up live; the domain is verified once the required ones are right.
    pub async fn verify_domain(&self, id: &str) -> Result<DomainVerification, ClientError> {
        Self::send(self.request(Method::POST, &format!("/v1/domains/{id}/verify"))).await
    }

    pub async fn delete_domain(&self, id: &str) -> Result<(), ClientError> {
        let resp = self
            .request(Method::DELETE, &format!("/v1/domains/{id}"))
            .send()
            .await?;
        Self::check(resp).await.map(|_| ())
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
