//! MTA-STS (RFC 8461) enforced on outbound delivery, against real parts: policies discovered in
//! a real DNS zone and fetched from a real HTTPS server whose certificate comes from a test CA
//! crabmail is told to trust; the receiving MX is a second crabmail presenting a certificate
//! from the same CA for its own name only.

use crabmail_api::client::Client;
use crabmail_api::{AddressList, CreateInbox, Event, SendMessage};
use crabmail_testkit::{Backend, HttpsServer, TestCa, TestServer, Zone};
use std::collections::HashMap;

fn policy(mx: &str) -> String {
    format!("version: STSv1\r\nmode: enforce\r\nmx: {mx}\r\nmax_age: 86400\r\n")
}

/// Waits (long-poll) for the event of `kind` about `recipient`.
async fn event_for(client: &Client, kind: &str, recipient: &str) -> Event {
    let mut cursor = "0".to_owned();
    loop {
        let page = client.list_events(Some(&cursor), Some(60)).await.unwrap();
        assert!(
            !page.events.is_empty(),
            "no {kind} for {recipient} within 60 s"
        );
        if let Some(e) = page
            .events
            .iter()
            .find(|e| e.kind == kind && e.recipient.as_deref() == Some(recipient))
        {
            return e.clone();
        }
        cursor = page.next_cursor;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_delivers_only_over_verified_tls_to_listed_mx_hosts() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = ca.write(dir.path());

    // The receiving MX: certificate valid for mx.secure.test only.
    let (cert, key) = ca.issue(&["mx.secure.test"]).write(dir.path(), "mx");
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let receiver = TestServer::start_with(
        Backend::Sqlite,
        &[
            ("domain", "\"secure.test\""),
            ("tls.cert", &format!("\"{cert}\"")),
            ("tls.key", &format!("\"{key}\"")),
        ],
    )
    .await;
    let (agent, agent_inbox) = receiver.mailbox("agent").await;
    assert_eq!(agent_inbox.address, "agent@secure.test");

    // The policy host serves three domains' policies over HTTPS.
    let policy_host = ca.issue(&[
        "mta-sts.secure.test",
        "mta-sts.wrongmx.test",
        "mta-sts.badcert.test",
    ]);
    let https = HttpsServer::start(
        &policy_host,
        HashMap::from([
            ("mta-sts.secure.test".to_owned(), policy("mx.secure.test")),
            ("mta-sts.wrongmx.test".to_owned(), policy("mx.wrongmx.test")),
            ("mta-sts.badcert.test".to_owned(), policy("mx.badcert.test")),
        ]),
    )
    .await;

    let mut zone = Zone::new()
        // Listed MX with a valid certificate: delivered.
        .mx("secure.test", 10, "mx.secure.test")
        .a("mx.secure.test", "127.0.0.1")
        // The MX record names a host the policy does not list: never tried.
        .mx("wrongmx.test", 10, "other.wrongmx.test")
        .a("other.wrongmx.test", "127.0.0.1")
        // Listed MX, but its certificate is for another name: TLS refused.
        .mx("badcert.test", 10, "mx.badcert.test")
        .a("mx.badcert.test", "127.0.0.1");
    for domain in ["secure.test", "wrongmx.test", "badcert.test"] {
        zone = zone
            .txt(&format!("_mta-sts.{domain}"), "v=STSv1; id=20261127")
            .a(&format!("mta-sts.{domain}"), "127.0.0.1");
    }
    let dns = zone.serve().await;
    let (k, v) = dns.setting();
    let mx_port = receiver.mx.port().to_string();
    let sts_port = https.addr.port().to_string();
    let ca_setting = format!("\"{}\"", ca_file.display());
    let sender = TestServer::start_with(
        Backend::Sqlite,
        &[
            (&k, &v),
            ("delivery.mx_port", &mx_port),
            ("delivery.mta_sts_port", &sts_port),
            ("delivery.tls_ca_file", &ca_setting),
        ],
    )
    .await;
    let client = sender.signup().await;
    let inbox = client
        .create_inbox(&CreateInbox {
            name: Some("bot".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let sent = client
        .send_message(
            &inbox.id,
            &SendMessage {
                to: AddressList::Many(vec![
                    "agent@secure.test".into(),
                    "x@wrongmx.test".into(),
                    "y@badcert.test".into(),
                ]),
                subject: Some("over verified TLS".into()),
                text: Some("hello".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();

    event_for(&client, "message.delivered", "agent@secure.test").await;
    let arrived = agent
        .list_messages(&agent_inbox.id, None, Some(1), Some(30))
        .await
        .unwrap();
    assert_eq!(
        arrived.messages[0].content.subject.as_deref(),
        Some("over verified TLS")
    );

    let wrong_mx = event_for(&client, "message.deferred", "x@wrongmx.test").await;
    let detail = wrong_mx.detail.unwrap();
    assert_eq!(detail["enhanced_code"], "4.7.5", "{detail}");
    assert!(
        detail["text"].as_str().unwrap().contains("MTA-STS"),
        "{detail}"
    );

    let bad_cert = event_for(&client, "message.deferred", "y@badcert.test").await;
    let detail = bad_cert.detail.unwrap();
    assert_eq!(detail["enhanced_code"], "4.7.5", "{detail}");
    let text = detail["text"].as_str().unwrap();
    assert!(
        text.contains("MTA-STS enforce") && text.contains("TLS"),
        "{text}"
    );

    // Each attempt says whether TLS was used, and which.
    let message = client.get_message(&sent.id).await.unwrap();
    let delivery = message.delivery.expect("delivery state");
    let state = |address: &str| {
        delivery
            .recipients
            .iter()
            .find(|r| r.address == address)
            .unwrap_or_else(|| panic!("{address} in {delivery:?}"))
    };
    let delivered = state("agent@secure.test");
    assert_eq!(delivered.status, "delivered");
    let attempt = delivered.attempts.last().unwrap();
    assert_eq!(attempt.host.as_deref(), Some("mx.secure.test"));
    let tls = attempt.tls.as_deref().expect("TLS recorded");
    assert!(
        tls.starts_with("TLSv1_3") || tls.starts_with("TLSv1_2"),
        "{tls}"
    );
    assert!(
        tls.contains("TLS13_") || tls.contains("TLS_ECDHE"),
        "cipher named: {tls}"
    );
    assert_eq!(state("x@wrongmx.test").status, "deferred");
    assert_eq!(state("y@badcert.test").status, "deferred");
    assert!(
        state("y@badcert.test")
            .attempts
            .last()
            .unwrap()
            .tls
            .is_none()
    );
}

/// Chunked encoding in raw bytes: each chunk its own size line, whatever the bytes.
fn chunked(parts: &[&[u8]]) -> Vec<u8> {
    let mut raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for part in parts {
        raw.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        raw.extend_from_slice(part);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    raw
}

/// Two hostile policy hosts. One answers in chunks that split a two-octet character: the policy
/// still reads, and since it lists another MX the recipient is deferred with the reason (never
/// left queued behind a panic). The other sends an otherwise valid policy padded past the size
/// limit: it is refused, so delivery goes on as if the domain had none (RFC 8461 5) and the
/// receiver's answer (a bounce: it does not host the domain) is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_characters_and_oversize_policies_end_in_an_outcome() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = ca.write(dir.path());
    let (cert, key) = ca
        .issue(&["mx.chunked.test", "mx.oversize.test"])
        .write(dir.path(), "mx");
    let receiver = TestServer::start_with(
        Backend::Sqlite,
        &[
            ("domain", "\"elsewhere.test\""),
            ("tls.cert", &format!("\"{}\"", cert.display())),
            ("tls.key", &format!("\"{}\"", key.display())),
        ],
    )
    .await;
    let split = "version: STSv1\r\nmode: enforce\r\nnote: caf\u{e9}\r\nmx: mx.listed.test\r\nmax_age: 86400\r\n";
    let cut = split.find('\u{e9}').unwrap() + 1; // between the two octets of "é"
    let split = chunked(&[&split.as_bytes()[..cut], &split.as_bytes()[cut..]]);
    let padding = format!("x-padding: {}\r\n", "a".repeat(1000)).repeat(100);
    let oversize = format!(
        "version: STSv1\r\nmode: enforce\r\nmx: mx.listed.test\r\nmax_age: 86400\r\n{padding}"
    );
    let oversize = chunked(&oversize.as_bytes().chunks(4096).collect::<Vec<_>>());
    let https = HttpsServer::start_raw(
        &ca.issue(&["mta-sts.chunked.test", "mta-sts.oversize.test"]),
        HashMap::from([
            ("mta-sts.chunked.test".to_owned(), split),
            ("mta-sts.oversize.test".to_owned(), oversize),
        ]),
    )
    .await;
    let mut zone = Zone::new();
    for domain in ["chunked.test", "oversize.test"] {
        zone = zone
            .mx(domain, 10, &format!("mx.{domain}"))
            .a(&format!("mx.{domain}"), "127.0.0.1")
            .txt(&format!("_mta-sts.{domain}"), "v=STSv1; id=1")
            .a(&format!("mta-sts.{domain}"), "127.0.0.1");
    }
    let dns = zone.serve().await;
    let (k, v) = dns.setting();
    let sender = TestServer::start_with(
        Backend::Sqlite,
        &[
            (&k, &v),
            ("delivery.mx_port", &receiver.mx.port().to_string()),
            ("delivery.mta_sts_port", &https.addr.port().to_string()),
            (
                "delivery.tls_ca_file",
                &format!("\"{}\"", ca_file.display()),
            ),
        ],
    )
    .await;
    let (client, inbox) = sender.mailbox("bot").await;
    let sent = client
        .send_message(
            &inbox.id,
            &SendMessage {
                to: AddressList::Many(vec!["z@chunked.test".into(), "z@oversize.test".into()]),
                subject: Some("hostile policy hosts".into()),
                text: Some("hello".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();

    let deferred = event_for(&client, "message.deferred", "z@chunked.test").await;
    let detail = deferred.detail.unwrap();
    assert_eq!(detail["enhanced_code"], "4.7.5", "{detail}");
    assert!(
        detail["text"].as_str().unwrap().contains("MTA-STS"),
        "{detail}"
    );

    let bounced = event_for(&client, "message.bounced", "z@oversize.test").await;
    assert!(bounced.detail.is_some());
    let message = client.get_message(&sent.id).await.unwrap();
    let delivery = message.delivery.expect("delivery state");
    let oversize = delivery
        .recipients
        .iter()
        .find(|r| r.address == "z@oversize.test")
        .unwrap();
    assert_eq!(oversize.status, "bounced");
    let attempt = oversize.attempts.last().expect("an attempt recorded");
    assert_eq!(attempt.host.as_deref(), Some("mx.oversize.test"));
}
