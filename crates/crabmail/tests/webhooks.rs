//! Webhooks, judged by a receiver in another process and by the Standard Webhooks reference
//! library (PyPI `standardwebhooks`) that checks every signature: events arrive signed, with the
//! same ids as `GET /v1/events`, in order; failures are retried (Retry-After honoured) with later
//! events waiting behind; 410 disables; replay sends again; a rotated secret signs beside the new
//! one; loopback and metadata addresses are refused unless the operator allows them.

use crabmail_api::client::{Client, ClientError};
use crabmail_api::{AddressList, CreateInbox, CreateWebhook, Event, ReplayWebhook, SendMessage};
use crabmail_testkit::{Backend, TestServer, WebhookReceiver, on_both_backends};
use std::time::Duration;

const PRIVATE_OK: (&str, &str) = ("webhooks.allow_private", "true");

fn note(to: &str, subject: &str) -> SendMessage {
    SendMessage {
        to: AddressList::One(to.into()),
        subject: Some(subject.into()),
        text: Some("hello from one inbox to another".into()),
        ..Default::default()
    }
}

/// Every event of the account so far, in order.
async fn all_events(client: &Client) -> Vec<Event> {
    client.list_events(None, None).await.unwrap().events
}

fn code(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Api { status, code, .. } => (status, code),
        other => panic!("{other}"),
    }
}

on_both_backends!(
    events_arrive_signed_in_order_with_the_ids_of_the_event_log,
    a_failing_endpoint_is_retried_in_order_and_a_410_disables_it,
);

async fn events_arrive_signed_in_order_with_the_ids_of_the_event_log(backend: Backend) {
    let server = TestServer::start_with(backend, &[PRIVATE_OK]).await;
    let (client, sender) = server.mailbox("sender").await;
    let reader = client
        .create_inbox(&CreateInbox {
            name: Some("reader".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let receiver = WebhookReceiver::start("200");
    let hook = client
        .create_webhook(&CreateWebhook {
            url: receiver.url.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let secret = hook.secret.clone().expect("the secret, once");
    assert!(secret.starts_with("whsec_"));
    assert_eq!(hook.status, "active");
    // The secret is shown when made, never again.
    assert_eq!(client.get_webhook(&hook.id).await.unwrap().secret, None);

    for n in 0..3 {
        client
            .send_message(
                &sender.id,
                &note(&reader.address, &format!("note {n}")),
                None,
            )
            .await
            .unwrap();
    }
    // Three deliveries and three arrivals, each an event.
    receiver.wait_for(6, Duration::from_secs(30)).await;
    let got = receiver.verified(&secret);
    let log = all_events(&client).await;
    let expected: Vec<(String, String)> =
        log.iter().map(|e| (e.id.clone(), e.kind.clone())).collect();
    let delivered: Vec<(String, String)> =
        got.iter().map(|r| (r.id.clone(), r.kind.clone())).collect();
    assert_eq!(delivered, expected, "every event once, in the log's order");
    for (r, e) in got.iter().zip(&log) {
        assert_eq!(r.payload["data"]["seq"], e.seq);
        assert_eq!(r.payload["data"]["id"], e.id.as_str());
        assert_eq!(r.payload["timestamp"], e.at.as_str());
    }
    let arrival = got
        .iter()
        .find(|r| r.kind == "message.received")
        .expect("an arrival");
    let message = &arrival.payload["data"]["message"];
    assert_eq!(message["inbox_id"], reader.id.as_str());
    assert!(message["subject"].as_str().unwrap().starts_with("note "));
    assert!(
        message["security"]["level"].is_string(),
        "the summary carries the security verdict: {message}"
    );
    // The receiver logs a request before it answers; crabmail records the answer after.
    let caught_up = after_attempts(&client, &hook.id, 6).await;
    assert_eq!(caught_up.cursor, log.last().map_or(0, |e| e.seq));
    assert_eq!(caught_up.failed_attempts, 0);
    let log = client
        .webhook_deliveries(&hook.id)
        .await
        .unwrap()
        .deliveries;
    assert_eq!(log.len(), 6);
    assert!(
        log.iter()
            .all(|d| d.outcome == "delivered" && d.status_code == Some(200))
    );
}

async fn a_failing_endpoint_is_retried_in_order_and_a_410_disables_it(backend: Backend) {
    let server = TestServer::start_with(backend, &[PRIVATE_OK]).await;
    let (client, inbox) = server.mailbox("retry").await;
    // The first request fails and asks for 6 s; later ones succeed.
    let receiver = WebhookReceiver::start("503:6\n200");
    let hook = client
        .create_webhook(&CreateWebhook {
            url: receiver.url.clone(),
            event_types: vec!["message.received".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let secret = hook.secret.clone().unwrap();
    for n in 0..2 {
        client
            .send_message(
                &inbox.id,
                &note(&inbox.address, &format!("to myself {n}")),
                None,
            )
            .await
            .unwrap();
    }
    receiver.wait_for(1, Duration::from_secs(30)).await;
    // The receiver logs a request before it answers; crabmail records the answer after.
    let waiting = after_attempts(&client, &hook.id, 1).await;
    assert_eq!(waiting.failed_attempts, 1);
    let due = waiting.next_attempt_at.expect("a retry is due");
    let first = client
        .webhook_deliveries(&hook.id)
        .await
        .unwrap()
        .deliveries;
    assert_eq!(first[0].outcome, "retrying");
    assert_eq!(first[0].status_code, Some(503));
    let wait = chrono_secs(&due) - chrono_secs(&first[0].at);
    assert!(
        wait >= 6,
        "Retry-After: 6 honoured (the schedule says 5): {wait}"
    );

    receiver.wait_for(3, Duration::from_secs(30)).await;
    let got = receiver.verified(&secret);
    let ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(got[0].answer, 503);
    assert_eq!(ids[0], ids[1], "the failed event is sent again first");
    assert_ne!(ids[1], ids[2], "then the next one");
    assert!(
        got.iter().all(|r| r.kind == "message.received"),
        "only the type asked for"
    );

    // 410: the endpoint is gone, and is disabled; nothing more is sent until a replay.
    receiver.answer("410");
    client
        .send_message(&inbox.id, &note(&inbox.address, "gone"), None)
        .await
        .unwrap();
    receiver.wait_for(4, Duration::from_secs(30)).await;
    let disabled = after_attempts(&client, &hook.id, 4).await;
    assert_eq!(disabled.status, "disabled");
    assert!(disabled.disabled_reason.unwrap().contains("410"));
    receiver.answer("200");
    let replayed = client
        .replay_webhook(
            &hook.id,
            &ReplayWebhook {
                event_id: Some(got[2].id.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(replayed.status, "active");
    receiver.wait_for(6, Duration::from_secs(30)).await;
    let again = receiver.verified(&secret);
    assert_eq!(again[4].id, got[2].id, "replay starts at the event named");
    assert_eq!(
        again[5].id, again[3].id,
        "and goes on to the one the 410 refused"
    );
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_new_one() {
    let server = TestServer::start_with(Backend::Sqlite, &[PRIVATE_OK]).await;
    let (client, inbox) = server.mailbox("rotate").await;
    let receiver = WebhookReceiver::start("200");
    let hook = client
        .create_webhook(&CreateWebhook {
            url: receiver.url.clone(),
            event_types: vec!["message.received".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let old = hook.secret.unwrap();
    let new = client
        .rotate_webhook_secret(&hook.id)
        .await
        .unwrap()
        .secret
        .unwrap();
    assert_ne!(old, new);
    client
        .send_message(&inbox.id, &note(&inbox.address, "after rotation"), None)
        .await
        .unwrap();
    receiver.wait_for(1, Duration::from_secs(30)).await;
    // A receiver holding either secret accepts the delivery.
    assert_eq!(receiver.verified(&old).len(), 1);
    assert_eq!(receiver.verified(&new).len(), 1);
}

#[tokio::test]
async fn inward_targets_are_refused_unless_the_operator_allows_them() {
    let server = TestServer::start_with(Backend::Sqlite, &[]).await;
    let (client, inbox) = server.mailbox("ssrf").await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://10.0.0.7/hook",
        "http://localhost/hook",
        "file:///etc/passwd",
        "not a url",
    ] {
        let refused = client
            .create_webhook(&CreateWebhook {
                url: url.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(code(refused), (422, "invalid_request".into()), "{url}");
    }
    let unknown_type = client
        .create_webhook(&CreateWebhook {
            url: "https://hooks.example.com/in".into(),
            event_types: vec!["message.exploded".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code(unknown_type).0, 422);
    // A public target is accepted; another account can neither see nor touch it.
    let hook = client
        .create_webhook(&CreateWebhook {
            url: "https://hooks.example.com/in".into(),
            inbox_id: Some(inbox.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let (stranger, _) = server.mailbox("stranger").await;
    assert_eq!(
        code(stranger.get_webhook(&hook.id).await.unwrap_err()).0,
        404
    );
    assert_eq!(
        code(stranger.delete_webhook(&hook.id).await.unwrap_err()).0,
        404
    );
    assert!(stranger.list_webhooks().await.unwrap().webhooks.is_empty());
    client.delete_webhook(&hook.id).await.unwrap();
    assert!(client.list_webhooks().await.unwrap().webhooks.is_empty());
}

/// The endpoint once crabmail has recorded `attempts` attempts (the receiver logs a request
/// before it answers; crabmail records the answer, with the endpoint's progress, just after).
async fn after_attempts(client: &Client, id: &str, attempts: usize) -> crabmail_api::Webhook {
    let log = client
        .wait_for_webhook_deliveries(id, attempts, 30)
        .await
        .unwrap();
    assert!(
        log.deliveries.len() >= attempts,
        "{attempts} attempts of {id} not recorded within 30 s"
    );
    client.get_webhook(id).await.unwrap()
}

/// Seconds since the epoch of an RFC 3339 time as the API writes it.
fn chrono_secs(text: &str) -> i64 {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp()
}
