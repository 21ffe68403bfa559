//! Serving one claimed endpoint: its events after the cursor, in order, one attempt each, until
//! one fails (it waits for its retry), the log is caught up, or the turn is over.

use super::{Dispatcher, retry_delay, sign};
use crate::clock::Timestamp;
use crate::store::{EventRecord, WebhookDelivery, WebhookProgress, WebhookRecord};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Events read from the log at a time.
const PAGE: usize = 100;
/// The longest `Retry-After` honoured (as long as the schedule's longest step).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// What is kept of an endpoint's answer in the delivery log.
const ANSWER_KEPT: usize = 200;

/// What one POST came to.
enum Answer {
    Delivered(u16),
    Gone,
    Failed {
        code: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    },
}

impl Dispatcher {
    pub(super) async fn serve(&self, hook: WebhookRecord, lease: &str, stop: &CancellationToken) {
        let started = tokio::time::Instant::now();
        let mut progress = WebhookProgress {
            cursor: hook.cursor,
            attempt: hook.attempt,
            next_attempt_at: self.clock.now(),
            disabled: None,
        };
        loop {
            let page = match self
                .store
                .list_events(&hook.account_id, progress.cursor, PAGE)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(webhook = %hook.id, error = %e, "webhooks: cannot read events");
                    break;
                }
            };
            if page.is_empty() {
                break;
            }
            let mut skipped = false;
            for event in page {
                if !wants(&hook, &event) {
                    progress.cursor = event.seq;
                    skipped = true;
                    continue;
                }
                if skipped && !self.record(&hook, lease, &progress, None).await {
                    return;
                }
                skipped = false;
                let (delivery, waits) = self.attempt(&hook, &event, &mut progress).await;
                if !self.record(&hook, lease, &progress, Some(delivery)).await {
                    return;
                }
                if waits {
                    let _ = self.store.release_webhook(&hook.id, lease).await;
                    return;
                }
                if stop.is_cancelled() || started.elapsed() > self.turn {
                    let _ = self.store.release_webhook(&hook.id, lease).await;
                    return;
                }
            }
            if skipped && !self.record(&hook, lease, &progress, None).await {
                return;
            }
        }
        let _ = self.store.release_webhook(&hook.id, lease).await;
    }

    /// Posts one event and moves `progress` to what the answer means; true when the endpoint must
    /// now wait (a retry is due later, or it is disabled).
    async fn attempt(
        &self,
        hook: &WebhookRecord,
        event: &EventRecord,
        progress: &mut WebhookProgress,
    ) -> (WebhookDelivery, bool) {
        let at = self.clock.now();
        let clock_started = tokio::time::Instant::now();
        let answer = self.post(hook, event, at).await;
        let attempt = progress.attempt + 1;
        let mut delivery = WebhookDelivery {
            id: crate::id::new_id("whd", at),
            webhook_id: hook.id.clone(),
            event_seq: event.seq,
            attempt,
            at,
            code: None,
            error: None,
            outcome: String::new(),
            duration_ms: clock_started.elapsed().as_millis() as i64,
        };
        let settled = |progress: &mut WebhookProgress| {
            progress.cursor = event.seq;
            progress.attempt = 0;
            progress.next_attempt_at = at;
        };
        let waits = match answer {
            Answer::Delivered(code) => {
                delivery.code = Some(code.into());
                delivery.outcome = "delivered".into();
                settled(progress);
                false
            }
            Answer::Gone => {
                delivery.code = Some(410);
                delivery.outcome = "disabled".into();
                progress.attempt = attempt;
                progress.disabled = Some("the endpoint answered 410 Gone".into());
                true
            }
            Answer::Failed {
                code,
                error,
                retry_after,
            } => {
                delivery.code = code.map(i64::from);
                delivery.error = Some(error);
                match retry_delay(&self.schedule, attempt) {
                    Some(delay) => {
                        let asked = retry_after.unwrap_or_default().min(MAX_RETRY_AFTER);
                        delivery.outcome = "retrying".into();
                        progress.attempt = attempt;
                        progress.next_attempt_at = at.plus(delay.max(asked));
                        true
                    }
                    None => {
                        tracing::warn!(webhook = %hook.id, seq = event.seq,
                            "webhooks: event given up after the last retry");
                        delivery.outcome = "failed".into();
                        settled(progress);
                        false
                    }
                }
            }
        };
        (delivery, waits)
    }

    async fn post(&self, hook: &WebhookRecord, event: &EventRecord, at: Timestamp) -> Answer {
        let body = match self.payload(hook, event).await {
            Ok(body) => body,
            Err(error) => {
                return Answer::Failed {
                    code: None,
                    error,
                    retry_after: None,
                };
            }
        };
        if let Err(e) = self.check_literal(&hook.url) {
            return Answer::Failed {
                code: None,
                error: e,
                retry_after: None,
            };
        }
        let id = crate::events::event_id(&hook.account_id, event.seq);
        let timestamp = at.millis().div_euclid(1000);
        let mut secrets = vec![hook.secret.as_str()];
        if let (Some(previous), Some(until)) = (&hook.previous_secret, hook.previous_until)
            && at < until
        {
            secrets.push(previous);
        }
        let signature = sign::signature(&secrets, &id, timestamp, &body);
        let sent = self
            .http
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                return Answer::Failed {
                    code: None,
                    error: crate::delivery::mta_sts::describe(e),
                    retry_after: None,
                };
            }
        };
        let status = response.status();
        if status.is_success() {
            return Answer::Delivered(status.as_u16());
        }
        if status == reqwest::StatusCode::GONE {
            return Answer::Gone;
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let said = answer_text(response).await;
        Answer::Failed {
            code: Some(status.as_u16()),
            error: format!("HTTP {status}{said}"),
            retry_after,
        }
    }

    /// `{type, timestamp, data}`: the event as `GET /v1/events` shows it; a received message's
    /// event carries its summary (sender, subject, preview and the security verdict), never its
    /// body or attachments.
    async fn payload(&self, hook: &WebhookRecord, event: &EventRecord) -> Result<Vec<u8>, String> {
        let view = crate::events::view(event.clone(), &hook.account_id);
        let mut data = serde_json::to_value(&view).map_err(|e| e.to_string())?;
        if event.kind == "message.received"
            && let Some(message_id) = &event.message_id
        {
            let found = self
                .store
                .get_message(&hook.account_id, message_id)
                .await
                .map_err(|e| format!("cannot read the message: {e}"))?;
            if let Some(record) = found {
                let summary = crate::api::messages::summary_json(record);
                data["message"] = serde_json::to_value(summary).map_err(|e| e.to_string())?;
            }
        }
        let payload = serde_json::json!({
            "type": view.kind,
            "timestamp": view.at,
            "data": data,
        });
        serde_json::to_vec(&payload).map_err(|e| e.to_string())
    }

    /// An IP literal never goes through the resolver, so it is checked here, at every attempt.
    fn check_literal(&self, url: &str) -> Result<(), String> {
        super::target::check_url(url, self.allow_private)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Records progress under the claim; false when the claim is gone (or the store failed).
    async fn record(
        &self,
        hook: &WebhookRecord,
        lease: &str,
        progress: &WebhookProgress,
        delivery: Option<WebhookDelivery>,
    ) -> bool {
        match self
            .store
            .record_webhook_progress(&hook.id, lease, progress.clone(), delivery)
            .await
        {
            Ok(true) => {
                // Long-polls on this endpoint's delivery log look again.
                self.wakeups
                    .announce(&crate::store::Wake::webhook(&hook.id, progress.cursor));
                true
            }
            Ok(false) => {
                tracing::info!(webhook = %hook.id, "webhooks: claim lost (replayed, deleted or taken over)");
                false
            }
            Err(e) => {
                tracing::warn!(webhook = %hook.id, error = %e, "webhooks: cannot record progress");
                false
            }
        }
    }
}

fn wants(hook: &WebhookRecord, event: &EventRecord) -> bool {
    let type_ok = hook.event_types.is_empty() || hook.event_types.contains(&event.kind);
    let inbox_ok = match &hook.inbox_id {
        None => true,
        Some(inbox) => event.inbox_id.as_deref() == Some(inbox.as_str()),
    };
    type_ok && inbox_ok
}

/// The start of the endpoint's answer, for the delivery log.
async fn answer_text(mut response: reqwest::Response) -> String {
    let mut text = Vec::new();
    while text.len() < ANSWER_KEPT {
        match response.chunk().await {
            Ok(Some(chunk)) => text.extend_from_slice(&chunk),
            _ => break,
        }
    }
    text.truncate(ANSWER_KEPT);
    let text = String::from_utf8_lossy(&text);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}
