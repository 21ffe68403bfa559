//! Circuit breakers end to end: a hard-bounce rate and a deferral storm pause an inbox's sending
//! (423, an event, the inbox shows why), resuming lifts it, and the account's kill switch stops
//! every inbox. Outcomes come from the simulator domain, through the real queue.

use crabmail::clock::{ManualClock, Timestamp};
use crabmail_api::client::{Client, ClientError};
use crabmail_api::{AddressList, CreateInbox, Event, PauseAccount, SendMessage};
use crabmail_testkit::{Backend, TestServer, on_both_backends};

const T0: Timestamp = Timestamp(1_796_000_040_000);

fn to_all(addresses: Vec<String>) -> SendMessage {
    SendMessage {
        to: AddressList::Many(addresses),
        subject: Some("campaign".into()),
        text: Some("hello".into()),
        ..Default::default()
    }
}

fn sim(local: &str) -> String {
    format!("{local}@simulator.crabmail.test")
}

async fn event(client: &Client, kind: &str, inbox: Option<&str>) -> Event {
    crabmail_testkit::event(client, kind, None, inbox).await
}

fn refusal_code(result: Result<crabmail_api::Sent, ClientError>) -> (Option<u16>, String) {
    match result {
        Err(ClientError::Api { status, code, .. }) => (Some(status), code),
        other => panic!("not refused: {other:?}"),
    }
}

on_both_backends!(breakers_pause_an_inbox_and_resuming_lifts_it);

async fn breakers_pause_an_inbox_and_resuming_lifts_it(backend: Backend) {
    let server = TestServer::start_with_manual_clock(backend, &[], ManualClock::new(T0)).await;
    let (client, bot) = server.mailbox("bot").await;

    // One message to 25 recipients, 5 of whom do not exist: a 20% hard-bounce rate.
    let mut recipients: Vec<String> = (0..20).map(|n| sim(&format!("delivered+{n}"))).collect();
    recipients.extend((0..5).map(|n| sim(&format!("bounce+{n}"))));
    client
        .send_message(&bot.id, &to_all(recipients), None)
        .await
        .unwrap();
    let paused = event(&client, "sending.paused", Some(&bot.id)).await;
    let detail = paused.detail.unwrap();
    assert_eq!(detail["reason"], "hard_bounce_rate");
    assert_eq!(detail["metrics"]["hard_bounces"], 5);
    assert_eq!(detail["metrics"]["recipients"], 25);

    let refused = client
        .send_message(&bot.id, &to_all(vec![sim("delivered")]), None)
        .await;
    assert_eq!(
        refusal_code(refused),
        (Some(423), "sending_paused".to_owned())
    );
    let shown = client
        .get_inbox(&bot.id)
        .await
        .unwrap()
        .paused
        .expect("paused");
    assert_eq!(shown.reason, "hard_bounce_rate");
    assert_eq!(shown.metrics.unwrap()["rate"], 0.2);
    let preview = client
        .dry_run(&bot.id, &to_all(vec![sim("delivered")]))
        .await
        .unwrap();
    assert_eq!(
        preview.refusal.map(|r| r.code),
        Some("sending_paused".to_owned())
    );

    // Resumed: sending works again, and the old bounces no longer count.
    let url = format!("{}/v1/inboxes/{}/resume", server.url(), bot.id);
    let resumed = reqwest::Client::new()
        .post(url)
        .bearer_auth(client.token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    event(&client, "sending.resumed", Some(&bot.id)).await;
    assert!(client.get_inbox(&bot.id).await.unwrap().paused.is_none());
    client
        .send_message(&bot.id, &to_all(vec![sim("delivered")]), None)
        .await
        .expect("sending again");

    // A storm of deferrals pauses another inbox of the account; the first one is unaffected.
    let storm = client
        .create_inbox(&CreateInbox {
            name: Some("storm".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let deferred: Vec<String> = (0..20).map(|n| sim(&format!("defer+{n}"))).collect();
    client
        .send_message(&storm.id, &to_all(deferred), None)
        .await
        .unwrap();
    let paused = event(&client, "sending.paused", Some(&storm.id)).await;
    assert_eq!(paused.detail.unwrap()["reason"], "deferral_storm");
    assert!(client.get_inbox(&bot.id).await.unwrap().paused.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_switch_stops_every_inbox_of_the_account() {
    let server = TestServer::start().await;
    let (client, bot) = server.mailbox("bot").await;
    let other = client
        .create_inbox(&CreateInbox {
            name: Some("other".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let post = |path: &str, body: serde_json::Value| {
        reqwest::Client::new()
            .post(format!("{}{path}", server.url()))
            .bearer_auth(client.token().unwrap())
            .json(&body)
            .send()
    };
    let pause = PauseAccount {
        reason: Some("operator review".into()),
    };
    let answer = post("/v1/account/pause", serde_json::to_value(&pause).unwrap())
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let quota: crabmail_api::Quota = answer.json().await.unwrap();
    assert_eq!(
        quota.paused.map(|p| p.reason),
        Some("operator review".into())
    );
    for inbox in [&bot.id, &other.id] {
        let refused = client
            .send_message(inbox, &to_all(vec![sim("delivered")]), None)
            .await;
        assert_eq!(refusal_code(refused).0, Some(423));
    }
    let paused = event(&client, "sending.paused", None).await;
    assert_eq!(paused.detail.unwrap()["scope"], "account");
    let answer = post("/v1/account/resume", serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    client
        .send_message(&other.id, &to_all(vec![sim("delivered")]), None)
        .await
        .expect("sending again");
}
