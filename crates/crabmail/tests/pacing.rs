//! Pacing per destination against Postfix's smtp-sink: a receiver that answers 421 makes the
//! destination rest (nothing is sent to it meanwhile, and the wait is in the delivery state);
//! delivery recovers when the rest ends. A configured pace defers what exceeds it.

use crabmail::clock::{ManualClock, Timestamp};
use crabmail_api::client::Client;
use crabmail_api::{AddressList, CreateInbox, Event, SendMessage};
use crabmail_testkit::{Backend, SmtpSink, TestServer, Zone, free_port};
use std::net::SocketAddr;
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
                text: Some("update".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap()
        .id
}

/// A server whose DNS sends busy.test to `ip`:`port`, on a manual clock, and an inbox to send
/// from. The zone is returned so it keeps serving.
async fn sender(
    ip: &str,
    port: u16,
    extra: &[(&str, &str)],
) -> (
    TestServer,
    crabmail_testkit::DnsServer,
    ManualClock,
    Client,
    String,
) {
    // Two domains served by one MX host.
    let dns = Zone::new()
        .mx("busy.test", 10, "mx.busy.test")
        .mx("also.test", 10, "mx.busy.test")
        .a("mx.busy.test", ip)
        .serve()
        .await;
    let (k, v) = dns.setting();
    let port = port.to_string();
    let mut settings: Vec<(&str, &str)> = vec![(&k, &v), ("delivery.mx_port", &port)];
    settings.extend_from_slice(extra);
    let clock = ManualClock::new(T0);
    let server =
        TestServer::start_with_manual_clock(Backend::Sqlite, &settings, clock.clone()).await;
    let client = server.signup().await;
    let inbox = client
        .create_inbox(&CreateInbox {
            name: Some("bot".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    (server, dns, clock, client, inbox.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_answers_421_is_rested_and_delivery_recovers() {
    let ip = "127.0.0.18";
    let port = free_port(ip);
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let (_server, _dns, clock, client, inbox) = sender(ip, port, &[]).await;
    let busy = SmtpSink::start(
        addr,
        &["-r", "RCPT", "-b", "421 4.7.0 Too many messages, slow down"],
    )
    .await;
    let first = send(&client, &inbox, "a@busy.test").await;
    let deferred = event(&client, "message.deferred", &first).await;
    let detail = deferred.detail.unwrap();
    assert_eq!(detail["code"], 421);
    assert!(
        detail["text"].as_str().unwrap().contains("rests until"),
        "{detail}"
    );
    let state = client.get_message(&first).await.unwrap().delivery.unwrap();
    let rest_end = T0.plus(Duration::from_secs(60)).to_rfc3339();
    assert_eq!(
        state.recipients[0].next_attempt_at.as_deref(),
        Some(rest_end.as_str())
    );

    // The receiver is fine again, but the destination rests: a new message waits, unsent.
    drop(busy);
    let sink = SmtpSink::start(addr, &[]).await;
    let second = send(&client, &inbox, "b@busy.test").await;
    let waiting = event(&client, "message.deferred", &second).await;
    let detail = waiting.detail.unwrap();
    assert!(
        detail["text"].as_str().unwrap().contains("slow down"),
        "{detail}"
    );
    assert_eq!(detail["enhanced_code"], "4.4.5");
    assert_eq!(sink.received().len(), 0, "nothing is sent while it rests");

    // The rest ends: both are delivered.
    clock.advance(Duration::from_secs(61));
    event(&client, "message.delivered", &first).await;
    event(&client, "message.delivered", &second).await;
    assert_eq!(sink.received().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_pace_defers_what_exceeds_it() {
    let ip = "127.0.0.19";
    let port = free_port(ip);
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let (_server, _dns, clock, client, inbox) =
        sender(ip, port, &[("delivery.rate_per_destination", "6")]).await;
    let sink = SmtpSink::start(addr, &[]).await;
    // A burst of ten goes; the eleventh waits for the pace (one every ten seconds).
    let mut ids = Vec::new();
    for n in 0..11 {
        ids.push(send(&client, &inbox, &format!("r{n}@busy.test")).await);
    }
    let mut delivered = 0;
    let mut paced = None;
    for id in &ids {
        let mut cursor = "0".to_owned();
        'found: loop {
            let page = client.list_events(Some(&cursor), Some(30)).await.unwrap();
            assert!(!page.events.is_empty());
            for e in &page.events {
                if e.message_id.as_deref() == Some(id.as_str()) {
                    match e.kind.as_str() {
                        "message.delivered" => delivered += 1,
                        "message.deferred" => paced = Some(id.clone()),
                        _ => continue,
                    }
                    break 'found;
                }
            }
            cursor = page.next_cursor;
        }
    }
    assert_eq!(delivered, 10);
    let paced = paced.expect("the eleventh is paced");
    clock.advance(Duration::from_secs(11));
    event(&client, "message.delivered", &paced).await;
    assert_eq!(sink.received().len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_mx_host_rests_for_every_domain_it_serves() {
    let ip = "127.0.0.20";
    let port = free_port(ip);
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let (_server, _dns, clock, client, inbox) = sender(ip, port, &[]).await;
    let busy = SmtpSink::start(addr, &["-r", "RCPT", "-b", "421 4.7.0 Slow down"]).await;
    let first = send(&client, &inbox, "a@busy.test").await;
    event(&client, "message.deferred", &first).await;
    drop(busy);
    let sink = SmtpSink::start(addr, &[]).await;
    // Another domain on the same host: its own pace is untouched, but the host rests.
    let other = send(&client, &inbox, "b@also.test").await;
    let waiting = event(&client, "message.deferred", &other).await;
    let detail = waiting.detail.unwrap();
    assert!(
        detail["text"].as_str().unwrap().contains("mx:mx.busy.test"),
        "{detail}"
    );
    assert_eq!(detail["host"], "mx.busy.test");
    assert_eq!(sink.received().len(), 0);
    clock.advance(Duration::from_secs(61));
    event(&client, "message.delivered", &other).await;
    event(&client, "message.delivered", &first).await;
}
