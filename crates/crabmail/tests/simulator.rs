//! Test mode: every outcome from `simulator.crabmail.test`, through the real queue, events,
//! suppressions and bounce reports, with no network and a manual clock.

use crabmail::clock::{ManualClock, Timestamp};
use crabmail_api::client::Client;
use crabmail_api::{AddressList, Event, SendMessage};
use crabmail_testkit::{Backend, TestServer, on_both_backends};
use std::time::Duration;

const T0: Timestamp = Timestamp(1_796_000_040_000);

async fn event(client: &Client, kind: &str, message_id: &str) -> Event {
    crabmail_testkit::event(client, kind, Some(message_id), None).await
}

async fn send(client: &Client, inbox: &str, to: &str) -> String {
    client
        .send_message(
            inbox,
            &SendMessage {
                to: AddressList::One(to.into()),
                subject: Some(format!("to {to}")),
                text: Some("simulated".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap()
        .id
}

on_both_backends!(each_simulator_address_produces_its_outcome_without_network);

async fn each_simulator_address_produces_its_outcome_without_network(backend: Backend) {
    let clock = ManualClock::new(T0);
    // No DNS answers anything: any network path would defer, not deliver.
    let server = TestServer::start_with_manual_clock(backend, &[], clock.clone()).await;
    let (client, bot) = server.mailbox("bot").await;
    let sim = |local: &str| format!("{local}@simulator.crabmail.test");

    let delivered = send(&client, &bot.id, &sim("delivered")).await;
    let e = event(&client, "message.delivered", &delivered).await;
    assert_eq!(e.detail.as_ref().unwrap()["code"], 250);

    let bounce = send(&client, &bot.id, &sim("bounce+run1")).await;
    let e = event(&client, "message.bounced", &bounce).await;
    assert_eq!(e.detail.as_ref().unwrap()["enhanced_code"], "5.1.1");
    let reject = send(&client, &bot.id, &sim("reject")).await;
    let e = event(&client, "message.bounced", &reject).await;
    assert_eq!(e.detail.as_ref().unwrap()["enhanced_code"], "5.7.1");
    let complaint = send(&client, &bot.id, &sim("complaint")).await;
    event(&client, "message.delivered", &complaint).await;

    // A user-unknown and a complaint suppress their address; a policy refusal does not.
    let suppressed: Vec<String> = client
        .list_suppressions()
        .await
        .unwrap()
        .suppressions
        .into_iter()
        .map(|s| s.address)
        .collect();
    assert!(suppressed.contains(&sim("bounce+run1")), "{suppressed:?}");
    assert!(suppressed.contains(&sim("complaint")), "{suppressed:?}");
    assert!(!suppressed.contains(&sim("reject")), "{suppressed:?}");
    // Both bounces come back to the sender as reports.
    let reports = client
        .list_messages(&bot.id, None, None, Some(30))
        .await
        .unwrap();
    assert!(
        reports.messages.iter().any(|m| m
            .content
            .subject
            .as_deref()
            .is_some_and(|s| s.contains("Undelivered"))),
        "{:?}",
        reports.messages
    );

    // defer@ answers 451 first and takes the retry; slow@ answers once 30 s have passed.
    let defer = send(&client, &bot.id, &sim("defer")).await;
    let e = event(&client, "message.deferred", &defer).await;
    assert_eq!(e.detail.as_ref().unwrap()["code"], 451);
    let slow = send(&client, &bot.id, &sim("slow")).await;
    // A message queued after it is delivered while slow@ is still answering.
    let after = send(&client, &bot.id, &sim("delivered+after")).await;
    event(&client, "message.delivered", &after).await;
    let state = client.get_message(&slow).await.unwrap().delivery.unwrap();
    assert_eq!(state.recipients[0].status, "queued");
    clock.advance(Duration::from_secs(31));
    event(&client, "message.delivered", &slow).await;
    clock.advance(Duration::from_secs(40));
    event(&client, "message.delivered", &defer).await;
    let state = client.get_message(&defer).await.unwrap().delivery.unwrap();
    assert_eq!(state.recipients[0].attempts.len(), 2);
}
