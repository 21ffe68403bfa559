//! Sending end to end with real peers: a DNS server on loopback serving MX records, Postfix's
//! smtp-sink and a second crabmail as remote MTAs, a manual clock for retries and expiry.

use crabmail::clock::{ManualClock, Timestamp};
use crabmail_api::client::Client;
use crabmail_api::{AddressList, CreateInbox, Event, SendMessage};
use crabmail_testkit::{Backend, SmtpSink, TestServer, Zone, free_port, on_both_backends};
use std::net::SocketAddr;
use std::time::Duration;

fn at(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}").parse().unwrap()
}

fn to(addresses: &[&str]) -> AddressList {
    AddressList::Many(addresses.iter().map(|a| a.to_string()).collect())
}

/// Waits (long-poll) for an event of `kind` about `message_id` (and `recipient`, if given).
async fn event(client: &Client, kind: &str, message_id: &str, recipient: Option<&str>) -> Event {
    let mut cursor = "0".to_owned();
    loop {
        let page = client.list_events(Some(&cursor), Some(60)).await.unwrap();
        assert!(
            !page.events.is_empty(),
            "no {kind} event for {message_id} within 60 s"
        );
        for e in page.events {
            if e.kind == kind
                && e.message_id.as_deref() == Some(message_id)
                && recipient.is_none_or(|r| e.recipient.as_deref() == Some(r))
            {
                return e;
            }
        }
        cursor = page.next_cursor;
    }
}

/// Waits for the next message in an inbox after `after`.
async fn next_in(client: &Client, inbox: &str, after: &str) -> crabmail_api::MessageSummary {
    let list = client
        .list_messages(inbox, Some(after), Some(1), Some(60))
        .await
        .unwrap();
    list.messages.into_iter().next().expect("a message arrives")
}

struct Sender {
    server: TestServer,
    client: Client,
    inbox: crabmail_api::Inbox,
}

async fn sender(
    backend: Backend,
    dns: &crabmail_testkit::DnsServer,
    mx_port: u16,
    extra: &[(&str, &str)],
    clock: Option<ManualClock>,
) -> Sender {
    let (k, v) = dns.setting();
    let port = mx_port.to_string();
    let mut settings: Vec<(&str, &str)> = vec![
        (&k, &v),
        ("delivery.mx_port", &port),
        ("hostname", "mx.crabmail.localhost"),
    ];
    settings.extend_from_slice(extra);
    let server = match clock {
        Some(clock) => TestServer::start_with_manual_clock(backend, &settings, clock).await,
        None => TestServer::start_with(backend, &settings).await,
    };
    let client = server.signup().await;
    let inbox = client
        .create_inbox(&CreateInbox {
            name: Some("bot".into()),
            display_name: Some("Agent Bot".into()),
            domain: None,
        })
        .await
        .unwrap();
    Sender {
        server,
        client,
        inbox,
    }
}

on_both_backends!(
    delivers_to_the_mx_of_the_domain,
    bounces_and_delivers_per_recipient_then_suppresses
);

async fn delivers_to_the_mx_of_the_domain(backend: Backend) {
    let port = free_port("127.0.0.2");
    let dns = Zone::new()
        .mx("example.test", 10, "mx.example.test")
        .a("mx.example.test", "127.0.0.2")
        .serve()
        .await;
    let sink = SmtpSink::start(at("127.0.0.2", port), &[]).await;
    let s = sender(backend, &dns, port, &[], None).await;
    let sent = s
        .client
        .send_message(
            &s.inbox.id,
            &SendMessage {
                to: to(&["Bob <bob@example.test>"]),
                subject: Some("Quarterly report".into()),
                text: Some("Numbers attached.\n.dot line stays".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(sent.status, "queued");
    let delivered = event(
        &s.client,
        "message.delivered",
        &sent.id,
        Some("bob@example.test"),
    )
    .await;
    let detail = delivered.detail.unwrap();
    assert_eq!(detail["code"], 250);
    assert_eq!(detail["host"], "mx.example.test");

    let got = sink.received();
    assert_eq!(got.len(), 1);
    assert_signed_return_path(&s.client, &sent.id, &got[0].mail_from).await;
    assert_eq!(got[0].rcpt_to, ["bob@example.test"]);
    assert!(
        got[0].message.contains("Subject: Quarterly report"),
        "{}",
        got[0].message
    );
    assert!(
        got[0]
            .message
            .contains("From: \"Agent Bot\" <bot@crabmail.localhost>"),
        "{}",
        got[0].message
    );
    assert!(
        got[0].message.contains("\n.dot line stays"),
        "dot-stuffing undone by the receiver"
    );

    let state = s.client.get_message(&sent.id).await.unwrap();
    assert_eq!(state.direction, "outbound");
    let delivery = state.delivery.unwrap();
    assert_eq!(delivery.status, "delivered");
    assert_eq!(delivery.recipients[0].status, "delivered");
    assert_eq!(delivery.recipients[0].attempts.len(), 1);
    assert_eq!(delivery.recipients[0].attempts[0].code, Some(250));
    assert_eq!(state.parsed.subject.as_deref(), Some("Quarterly report"));
    let raw = s.client.get_raw(&sent.id).await.unwrap();
    assert!(String::from_utf8_lossy(&raw).contains("Subject: Quarterly report"));
}

/// Two recipients at a second crabmail: one inbox exists, one does not (a real 550 5.1.1).
async fn bounces_and_delivers_per_recipient_then_suppresses(backend: Backend) {
    let port = free_port("127.0.0.3");
    let dns = Zone::new()
        .mx("other.test", 10, "mx.other.test")
        .a("mx.other.test", "127.0.0.3")
        .serve()
        .await;
    let mx = format!("\"127.0.0.3:{port}\"");
    let remote = TestServer::start_with(
        Backend::Sqlite,
        &[("domain", "other.test"), ("mx.listen", &mx)],
    )
    .await;
    let (remote_client, remote_inbox) = remote.mailbox("alice").await;
    let s = sender(backend, &dns, port, &[], None).await;
    let sent = s
        .client
        .send_message(
            &s.inbox.id,
            &SendMessage {
                to: to(&["alice@other.test", "ghost@other.test"]),
                subject: Some("Hello both".into()),
                text: Some("hi".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    event(
        &s.client,
        "message.delivered",
        &sent.id,
        Some("alice@other.test"),
    )
    .await;
    let bounced = event(
        &s.client,
        "message.bounced",
        &sent.id,
        Some("ghost@other.test"),
    )
    .await;
    assert_eq!(bounced.detail.as_ref().unwrap()["code"], 550);
    assert_eq!(bounced.detail.as_ref().unwrap()["enhanced_code"], "5.1.1");
    // Delivered for real into the other server's inbox.
    let arrived = next_in(&remote_client, &remote_inbox.id, "0").await;
    assert_eq!(arrived.content.subject.as_deref(), Some("Hello both"));

    // The bounce report lands in the sending inbox, readable by the agent.
    let dsn = next_in(&s.client, &s.inbox.id, "0").await;
    assert_eq!(
        dsn.content.subject.as_deref(),
        Some("Undelivered Mail Returned to Sender")
    );
    let report = String::from_utf8(s.client.get_raw(&dsn.id).await.unwrap()).unwrap();
    assert!(
        report.contains("Final-Recipient: rfc822; ghost@other.test"),
        "{report}"
    );
    assert!(report.contains("Status: 5.1.1"), "{report}");
    assert!(
        report.contains("Remote-MTA: dns; mx.other.test"),
        "{report}"
    );
    assert!(
        report.contains("Subject: Hello both"),
        "original headers included"
    );
    assert!(
        !report.contains("alice@other.test>:"),
        "the delivered recipient is not reported"
    );
    let state = s
        .client
        .get_message(&sent.id)
        .await
        .unwrap()
        .delivery
        .unwrap();
    assert_eq!(state.status, "partial");

    // The bad address is suppressed: refused up front, naming it; removable.
    let list = s.client.list_suppressions().await.unwrap();
    assert_eq!(list.suppressions.len(), 1);
    assert_eq!(list.suppressions[0].address, "ghost@other.test");
    assert!(list.suppressions[0].reason.contains("550 5.1.1"));
    let again = s
        .client
        .send_message(
            &s.inbox.id,
            &SendMessage {
                to: to(&["Ghost <Ghost@other.test>"]),
                text: Some("x".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap_err();
    match again {
        crabmail_api::client::ClientError::Api {
            status,
            code,
            message,
            ..
        } => {
            assert_eq!((status, code.as_str()), (422, "suppressed"));
            assert!(message.contains("ghost@other.test"), "{message}");
        }
        other => panic!("{other}"),
    }
    s.client
        .delete_suppression("ghost@other.test")
        .await
        .unwrap();
    assert!(
        s.client
            .list_suppressions()
            .await
            .unwrap()
            .suppressions
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_is_retried_on_schedule_and_then_delivered() {
    let port = free_port("127.0.0.4");
    let dns = Zone::new()
        .mx("retry.test", 10, "mx.retry.test")
        .a("mx.retry.test", "127.0.0.4")
        .serve()
        .await;
    let refusing = SmtpSink::start(at("127.0.0.4", port), &["-r", "RCPT"]).await;
    let clock = ManualClock::new(Timestamp(1_796_000_000_000));
    let s = sender(Backend::Sqlite, &dns, port, &[], Some(clock.clone())).await;
    let sent = s
        .client
        .send_message(
            &s.inbox.id,
            &SendMessage {
                to: to(&["carol@retry.test"]),
                text: Some("again".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let deferred = event(&s.client, "message.deferred", &sent.id, None).await;
    assert_eq!(deferred.detail.as_ref().unwrap()["code"], 450);
    let state = s
        .client
        .get_message(&sent.id)
        .await
        .unwrap()
        .delivery
        .unwrap();
    assert_eq!(state.recipients[0].status, "deferred");
    let next = state.recipients[0].next_attempt_at.clone().unwrap();
    let start = Timestamp(1_796_000_000_000);
    assert!(
        next > start.plus(Duration::from_secs(59)).to_rfc3339(),
        "retry about a minute ahead: {next}"
    );
    assert!(
        next < start.plus(Duration::from_secs(67)).to_rfc3339(),
        "retry about a minute ahead: {next}"
    );
    drop(refusing);
    let sink = SmtpSink::start(at("127.0.0.4", port), &[]).await;
    // Nothing happens until the clock reaches the retry (1 min + up to 10% jitter).
    clock.advance(Duration::from_secs(67));
    event(&s.client, "message.delivered", &sent.id, None).await;
    assert_eq!(sink.received().len(), 1);
    let state = s
        .client
        .get_message(&sent.id)
        .await
        .unwrap()
        .delivery
        .unwrap();
    assert_eq!(state.recipients[0].attempts.len(), 2);
    assert_eq!(state.recipients[0].attempts[0].code, Some(450));
    assert_eq!(state.recipients[0].attempts[1].code, Some(250));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_mx_defers_until_the_lifetime_ends_then_bounces() {
    let port = free_port("127.0.0.5");
    // Nothing listens on 127.0.0.5:port.
    let dns = Zone::new()
        .mx("down.test", 10, "mx.down.test")
        .a("mx.down.test", "127.0.0.5")
        .serve()
        .await;
    let clock = ManualClock::new(Timestamp(1_796_000_000_000));
    let s = sender(
        Backend::Sqlite,
        &dns,
        port,
        &[("delivery.connect_timeout", "\"2s\"")],
        Some(clock.clone()),
    )
    .await;
    let sent = s
        .client
        .send_message(
            &s.inbox.id,
            &SendMessage {
                to: to(&["dave@down.test"]),
                subject: Some("lost".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let deferred = event(&s.client, "message.deferred", &sent.id, None).await;
    assert_eq!(deferred.detail.as_ref().unwrap()["enhanced_code"], "4.4.1");
    clock.advance(Duration::from_secs(5 * 24 * 3600 + 60));
    let bounced = event(&s.client, "message.bounced", &sent.id, None).await;
    assert_eq!(bounced.detail.as_ref().unwrap()["status"], "expired");
    let dsn = next_in(&s.client, &s.inbox.id, "0").await;
    let report = String::from_utf8(s.client.get_raw(&dsn.id).await.unwrap()).unwrap();
    assert!(report.contains("Final-Recipient: rfc822; dave@down.test"));
    assert!(report.contains("Status: 4.4.1"), "{report}");
    assert!(report.contains("gave up after retrying"), "{report}");
    assert_eq!(
        s.client
            .get_message(&sent.id)
            .await
            .unwrap()
            .delivery
            .unwrap()
            .status,
        "failed"
    );
    assert!(
        s.client
            .list_suppressions()
            .await
            .unwrap()
            .suppressions
            .is_empty(),
        "an expiry says nothing about the address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_answers_decide_bounce_or_deferral() {
    let dns = Zone::new().null_mx("nomail.test").serve().await;
    let s = sender(Backend::Sqlite, &dns, 25, &[], None).await;
    let send = |rcpt: &'static str| {
        let (client, inbox) = (s.client.clone(), s.inbox.id.clone());
        async move {
            client
                .send_message(
                    &inbox,
                    &SendMessage {
                        to: to(&[rcpt]),
                        text: Some("x".into()),
                        ..Default::default()
                    },
                    None,
                )
                .await
                .unwrap()
                .id
        }
    };
    let null_mx = send("a@nomail.test").await;
    let e = event(&s.client, "message.bounced", &null_mx, None).await;
    assert_eq!(e.detail.unwrap()["enhanced_code"], "5.1.10");
    let nxdomain = send("a@no-such-domain.test").await;
    let e = event(&s.client, "message.bounced", &nxdomain, None).await;
    assert_eq!(e.detail.unwrap()["enhanced_code"], "5.1.2");
    // A name our DNS server will not answer for (REFUSED): temporary, never a bounce.
    let refused = send("a@example.org").await;
    let e = event(&s.client, "message.deferred", &refused, None).await;
    assert_eq!(e.detail.unwrap()["enhanced_code"], "4.4.3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_to_our_own_inboxes_is_delivered_locally() {
    let dns = Zone::new().serve().await;
    let s = sender(Backend::Sqlite, &dns, 25, &[], None).await;
    let (other_client, other_inbox) = s.server.mailbox("colleague").await;
    let sent = s
        .client
        .send_message(
            &s.inbox.id,
            &SendMessage {
                to: to(&[
                    "colleague@crabmail.localhost",
                    "nobody-here@crabmail.localhost",
                ]),
                subject: Some("internal".into()),
                text: Some("no SMTP hop".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let arrived = next_in(&other_client, &other_inbox.id, "0").await;
    assert_eq!(arrived.content.subject.as_deref(), Some("internal"));
    let message = other_client.get_message(&arrived.id).await.unwrap();
    assert_eq!(message.envelope.return_path, "bot@crabmail.localhost");
    assert_eq!(message.envelope.remote_ip, "local");
    event(
        &s.client,
        "message.bounced",
        &sent.id,
        Some("nobody-here@crabmail.localhost"),
    )
    .await;
    let dsn = next_in(&s.client, &s.inbox.id, "0").await;
    assert_eq!(
        dsn.content.subject.as_deref(),
        Some("Undelivered Mail Returned to Sender")
    );
}

/// Smart-host mode: all remote mail goes to a relay over STARTTLS with a verified certificate and
/// AUTH. The relay here is a second crabmail (its submission port), which then delivers to the MX.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_host_with_auth_over_verified_starttls() {
    let sink_port = free_port("127.0.0.7");
    let dns = Zone::new()
        .a("relay.test", "127.0.0.6")
        .mx("example.test", 10, "mx.example.test")
        .a("mx.example.test", "127.0.0.7")
        .serve()
        .await;
    let sink = SmtpSink::start(at("127.0.0.7", sink_port), &[]).await;
    let (dk, dv) = dns.setting();
    let relay_port = free_port("127.0.0.6");
    let relay_listen = format!("\"127.0.0.6:{relay_port}\"");
    let sink_port_text = sink_port.to_string();
    let relay = TestServer::start_with(
        Backend::Sqlite,
        &[
            (&dk, &dv),
            ("hostname", "relay.test"),
            ("submission.listen", &relay_listen),
            ("delivery.mx_port", &sink_port_text),
        ],
    )
    .await;
    let (relay_client, _relay_inbox) = relay.mailbox("bot").await;
    let relay_token = relay_client.token().unwrap().to_owned();
    let ca = format!("\"{}\"", relay.data_dir().join("tls/cert.pem").display());
    let url = format!("\"smtp://bot%40crabmail.localhost:{relay_token}@relay.test:{relay_port}\"");
    let s = sender(
        Backend::Sqlite,
        &dns,
        25,
        &[("delivery.relay", &url), ("delivery.tls_ca_file", &ca)],
        None,
    )
    .await;
    let sent = s
        .client
        .send_message(
            &s.inbox.id,
            &SendMessage {
                to: to(&["bob@example.test"]),
                subject: Some("via relay".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let delivered = event(&s.client, "message.delivered", &sent.id, None).await;
    let detail = delivered.detail.unwrap();
    assert_eq!(detail["host"], "relay.test");
    assert!(
        detail["tls"].as_str().is_some_and(|t| t.contains("TLS")),
        "{detail}"
    );
    // The relay queued it under its own account and delivered it to the MX.
    let mut cursor = "0".to_owned();
    loop {
        let page = relay_client
            .list_events(Some(&cursor), Some(60))
            .await
            .unwrap();
        assert!(!page.events.is_empty(), "the relay never delivered");
        if page.events.iter().any(|e| e.kind == "message.delivered") {
            break;
        }
        cursor = page.next_cursor;
    }
    let got = sink.received();
    assert_eq!(got.len(), 1);
    // We gave the relay our inbox's address (a smart host wants its account's); the relay, a
    // crabmail too, delivered to the MX from its own signed return path.
    let from = &got[0].mail_from;
    assert!(
        from.starts_with("bounces+") && from.ends_with("@crabmail.localhost"),
        "{from}"
    );
    assert!(got[0].message.contains("Subject: via relay"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_refuses_our_credentials_defers_and_never_bounces() {
    let dns = Zone::new().a("relay.test", "127.0.0.8").serve().await;
    let (dk, dv) = dns.setting();
    let relay_port = free_port("127.0.0.8");
    let relay_listen = format!("\"127.0.0.8:{relay_port}\"");
    let relay = TestServer::start_with(
        Backend::Sqlite,
        &[
            (&dk, &dv),
            ("hostname", "relay.test"),
            ("submission.listen", &relay_listen),
        ],
    )
    .await;
    relay.mailbox("bot").await;
    let ca = format!("\"{}\"", relay.data_dir().join("tls/cert.pem").display());
    let url = format!("\"smtp://bot%40crabmail.localhost:cm_wrong@relay.test:{relay_port}\"");
    let s = sender(
        Backend::Sqlite,
        &dns,
        25,
        &[("delivery.relay", &url), ("delivery.tls_ca_file", &ca)],
        None,
    )
    .await;
    let sent = s
        .client
        .send_message(
            &s.inbox.id,
            &SendMessage {
                to: to(&["bob@example.test"]),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let deferred = event(&s.client, "message.deferred", &sent.id, None).await;
    let detail = deferred.detail.unwrap();
    assert!(
        detail["text"]
            .as_str()
            .unwrap()
            .contains("relay refused our credentials"),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_with_an_untrusted_certificate_gets_no_credentials() {
    let dns = Zone::new().a("relay.test", "127.0.0.9").serve().await;
    let (dk, dv) = dns.setting();
    let relay_port = free_port("127.0.0.9");
    let relay_listen = format!("\"127.0.0.9:{relay_port}\"");
    let relay = TestServer::start_with(
        Backend::Sqlite,
        &[
            (&dk, &dv),
            ("hostname", "relay.test"),
            ("submission.listen", &relay_listen),
        ],
    )
    .await;
    let (relay_client, _) = relay.mailbox("bot").await;
    // No tls_ca_file: the relay's self-signed certificate cannot be verified.
    let url = format!(
        "\"smtp://bot%40crabmail.localhost:{}@relay.test:{relay_port}\"",
        relay_client.token().unwrap()
    );
    let s = sender(Backend::Sqlite, &dns, 25, &[("delivery.relay", &url)], None).await;
    let sent = s
        .client
        .send_message(
            &s.inbox.id,
            &SendMessage {
                to: to(&["bob@example.test"]),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let deferred = event(&s.client, "message.deferred", &sent.id, None).await;
    let detail = deferred.detail.unwrap();
    assert_eq!(detail["enhanced_code"], "4.7.5", "{detail}");
}

/// Postfix itself as the remote MX (a private instance on 127.0.0.11:25, see
/// tests/fixtures/postfix-mx.sh), delivering what crabmail sends into a Maildir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_to_a_real_postfix() {
    struct Postfix(std::path::PathBuf);
    impl Drop for Postfix {
        fn drop(&mut self) {
            let _ = std::process::Command::new(script())
                .args(["stop", self.0.to_str().unwrap(), "127.0.0.11"])
                .status();
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn script() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/postfix-mx.sh")
    }
    let dir = std::path::PathBuf::from(format!(
        "/var/tmp/crabmail-test-postfix-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let status = std::process::Command::new(script())
        .args(["start", dir.to_str().unwrap(), "127.0.0.11", "postfix.test"])
        .status()
        .expect("run postfix-mx.sh");
    assert!(
        status.success(),
        "Postfix did not start (Debian's postfix package and root are needed)"
    );
    let postfix = Postfix(dir.clone());
    let dns = Zone::new()
        .mx("postfix.test", 10, "mx.postfix.test")
        .a("mx.postfix.test", "127.0.0.11")
        .serve()
        .await;
    let s = sender(Backend::Sqlite, &dns, 25, &[], None).await;
    let sent = s
        .client
        .send_message(
            &s.inbox.id,
            &SendMessage {
                to: to(&["someone@postfix.test"]),
                subject: Some("to postfix".into()),
                text: Some("hello postfix".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let delivered = event(&s.client, "message.delivered", &sent.id, None).await;
    let detail = delivered.detail.unwrap();
    assert_eq!(detail["code"], 250);
    assert!(
        detail["text"].as_str().unwrap().contains("queued as"),
        "{detail}"
    );
    // Postfix's 250 means queued; its virtual(8) delivery to the Maildir follows on its own time.
    let maildir = dir.join("vmail/inbox/new");
    let mut found = None;
    for _ in 0..300 {
        if let Some(file) = std::fs::read_dir(&maildir)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
        {
            found = Some(std::fs::read_to_string(file.path()).unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let message = found.expect("Postfix delivered into the Maildir");
    assert!(message.contains("Subject: to postfix"), "{message}");
    assert!(message.contains("hello postfix"));
    let return_path = message
        .lines()
        .find_map(|l| l.strip_prefix("Return-Path: <"))
        .and_then(|l| l.strip_suffix('>'))
        .expect("Postfix wrote the Return-Path");
    assert_signed_return_path(&s.client, &sent.id, return_path).await;
    drop(postfix);
}

/// Mail to another server leaves from the recipient's signed return path (`delivery.verp`), in
/// the sending inbox's domain: `bounces+<recipient id>-<mac>@crabmail.localhost`.
async fn assert_signed_return_path(client: &Client, message_id: &str, mail_from: &str) {
    let sent = client.get_message(message_id).await.unwrap();
    let recipient = &sent.delivery.expect("a sent message").recipients[0];
    let hex = recipient.id.strip_prefix("rcpt_").expect("a recipient id");
    let local = mail_from
        .strip_suffix("@crabmail.localhost")
        .unwrap_or_else(|| panic!("{mail_from}: not in the sender's domain"));
    let mac = local
        .strip_prefix(&format!("bounces+{hex}-"))
        .unwrap_or_else(|| panic!("{mail_from}: not the return path of {}", recipient.id));
    assert_eq!(mac.len(), 16, "{mail_from}");
}

/// A connection is reused for more mail to the same MX: three messages, one after the other, and
/// the sink has seen no session end (each new connection would have ended the one before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_reused_for_the_same_mx() {
    let port = free_port("127.0.0.12");
    let dns = Zone::new()
        .mx("reuse.test", 10, "mx.reuse.test")
        .a("mx.reuse.test", "127.0.0.12")
        .serve()
        .await;
    let sink = SmtpSink::start(at("127.0.0.12", port), &[]).await;
    let s = sender(
        Backend::Sqlite,
        &dns,
        port,
        &[("delivery.command_timeout", "\"3s\"")],
        None,
    )
    .await;
    let mut cursor = "0".to_owned();
    for n in 0..3 {
        let sent = s
            .client
            .send_message(
                &s.inbox.id,
                &SendMessage {
                    to: to(&[&format!("r{n}@reuse.test")]),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
        // The first event about this message must be its delivery.
        let first = loop {
            let page = s.client.list_events(Some(&cursor), Some(60)).await.unwrap();
            assert!(!page.events.is_empty(), "no event for message {n}");
            cursor = page.next_cursor.clone();
            if let Some(e) = page
                .events
                .into_iter()
                .find(|e| e.message_id.as_deref() == Some(&sent.id))
            {
                break e;
            }
        };
        assert_eq!(
            first.kind, "message.delivered",
            "message {n}: {:?}",
            first.detail
        );
    }
    assert_eq!(sink.received().len(), 3);
    assert_eq!(
        sink.sessions_ended(),
        0,
        "one connection carried all three messages"
    );
}
