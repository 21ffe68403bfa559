//! The Rust SDK's conveniences (`crabmail-api`'s client) against a real server: signup into a
//! token file, an idempotency key on every send, waiting for a code, retries that honour
//! Retry-After, and errors that name the field at fault.

use crabmail_api::client::{Client, ClientError};
use crabmail_api::{AddressList, CreateInbox, SendMessage};
use crabmail_testkit::{Backend, TestServer};
use std::time::Duration;

fn note(to: &str, subject: &str, text: &str) -> SendMessage {
    SendMessage {
        to: AddressList::One(to.into()),
        subject: Some(subject.into()),
        text: Some(text.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn connect_signs_up_once_into_the_token_file() {
    let server = TestServer::start_with(Backend::Sqlite, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/token");
    let (first, signed_up) = Client::connect(&server.url(), Some(&path)).await.unwrap();
    assert!(signed_up);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        first.token().unwrap()
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (again, signed_up) = Client::connect(&server.url(), Some(&path)).await.unwrap();
    assert!(!signed_up);
    assert_eq!(again.token(), first.token());
}

#[tokio::test]
async fn sends_carry_keys_codes_arrive_and_errors_name_the_field() {
    let server = TestServer::start_with(Backend::Sqlite, &[]).await;
    let (client, inbox) = server.mailbox("rusty").await;
    // Without a key of our own, each call is its own send; with one, a repeat is the same send.
    let a = client
        .send_message(&inbox.id, &note(&inbox.address, "a", "x"), None)
        .await
        .unwrap();
    let b = client
        .send_message(&inbox.id, &note(&inbox.address, "a", "x"), None)
        .await
        .unwrap();
    assert_ne!(a.id, b.id);
    let c = client
        .send_message(&inbox.id, &note(&inbox.address, "c", "x"), Some("k-1"))
        .await
        .unwrap();
    let d = client
        .send_message(&inbox.id, &note(&inbox.address, "c", "x"), Some("k-1"))
        .await
        .unwrap();
    assert_eq!(c.id, d.id);

    let codes = client
        .create_inbox(&CreateInbox {
            name: Some("codes".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .send_message(
            &inbox.id,
            &note(
                &codes.address,
                "Your code",
                "Your verification code is 739204.",
            ),
            None,
        )
        .await
        .unwrap();
    let code = client
        .wait_for_code(
            &codes.id,
            None,
            Duration::from_secs(30),
            Some("2000-01-01T00:00:00Z"),
        )
        .await
        .unwrap();
    assert_eq!(code.as_deref(), Some("739204"));

    let invalid = client
        .send_message(&inbox.id, &note("not an address", "x", "x"), None)
        .await
        .unwrap_err();
    match invalid {
        ClientError::Api { status, field, .. } => {
            assert_eq!(status, 422);
            assert!(field.is_some_and(|f| f.starts_with("to")));
        }
        other => panic!("{other}"),
    }
    let events = client.all_events(None).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "message.received"));
}

#[tokio::test]
async fn retries_wait_as_retry_after_says() {
    // One request a second after a burst of two.
    let server = TestServer::start_with(
        Backend::Sqlite,
        &[("api.rate_limit", "1"), ("api.rate_burst", "2")],
    )
    .await;
    let client = server.signup().await;
    let started = tokio::time::Instant::now();
    for _ in 0..5 {
        client.list_inboxes().await.unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "it waited as told"
    );
    let impatient = client.clone().with_max_retries(0);
    let mut refused = None;
    for _ in 0..5 {
        if let Err(e) = impatient.list_inboxes().await {
            refused = Some(e);
            break;
        }
    }
    assert_eq!(refused.and_then(|e| e.status()), Some(429));
}

#[tokio::test]
async fn a_quota_refusal_is_an_answer_not_retried() {
    let server = TestServer::start_with(Backend::Sqlite, &[("limits.inbox.per_minute", "1")]).await;
    let (client, inbox) = server.mailbox("quota").await;
    let refuse = |subject: &str| SendMessage {
        on_limit: Some(crabmail_api::OnLimit::Reject),
        ..note("delivered@simulator.crabmail.test", subject, "x")
    };
    client
        .send_message(&inbox.id, &refuse("one"), None)
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let refused = client
        .send_message(&inbox.id, &refuse("two"), None)
        .await
        .unwrap_err();
    match refused {
        ClientError::Api { status, code, .. } => {
            assert_eq!((status, code.as_str()), (429, "rate_limited"))
        }
        other => panic!("{other}"),
    }
    // Retry-After says most of a minute; the client answered at once instead of waiting it out.
    assert!(started.elapsed() < Duration::from_secs(10));
}
