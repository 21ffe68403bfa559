//! What a stranger can send: messages shaped to make parsing slow or deep, a remote MX that never
//! stops talking. Each is sent over real TCP to a real server and judged by what an agent sees.

use crabmail_api::MessageSummary;
use crabmail_api::client::Client;
use crabmail_testkit::{Backend, Smtp, TestServer, on_both_backends};

on_both_backends!(a_heavy_message_delays_only_itself);

/// Long-polls until `count` messages are listed in `inbox` (each poll waits up to 60 s).
async fn listed(client: &Client, inbox: &str, count: usize) -> Vec<MessageSummary> {
    let mut all = Vec::new();
    let mut cursor = "0".to_owned();
    while all.len() < count {
        let page = client
            .list_messages(inbox, Some(&cursor), Some(100), Some(60))
            .await
            .expect("list");
        assert!(
            !page.messages.is_empty(),
            "only {} of {count} messages listed after a minute",
            all.len()
        );
        cursor = page.next_cursor;
        all.extend(page.messages);
    }
    all
}

fn many_parts(subject: &str, n: usize) -> Vec<u8> {
    let mut m = format!(
        "From: a@example.test\r\nSubject: {subject}\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    )
    .into_bytes();
    for i in 0..n {
        m.extend_from_slice(
            format!("--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n").as_bytes(),
        );
    }
    m.extend_from_slice(b"--b--\r\n");
    m
}

fn deeply_nested(subject: &str, levels: usize) -> Vec<u8> {
    let mut m = format!("From: a@example.test\r\nSubject: {subject}\r\n").into_bytes();
    for _ in 0..levels {
        m.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    m.extend_from_slice(b"Subject: bottom\r\n\r\nbody\r\n");
    m
}

async fn send_raw(smtp: &mut Smtp<tokio::net::TcpStream>, to: &str, message: &[u8]) {
    smtp.cmd("MAIL FROM:<a@example.test>", "250").await;
    smtp.cmd(&format!("RCPT TO:<{to}>"), "250").await;
    smtp.cmd("DATA", "354").await;
    smtp.write_raw(message).await;
    smtp.write_raw(b".\r\n").await;
    smtp.expect("250").await;
}

/// 20,000 sibling parts and half a million nested messages (16 MB, which overflowed the stack
/// of whatever thread dropped the parsed tree), then an ordinary message: all three are listed,
/// the heavy ones flagged with how far they were parsed.
async fn a_heavy_message_delays_only_itself(backend: Backend) {
    let server = TestServer::start_with(backend, &[]).await;
    let (client, inbox) = server.mailbox("agent").await;
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO client.example.test", "250").await;
    send_raw(&mut smtp, &inbox.address, &many_parts("siblings", 20_000)).await;
    send_raw(&mut smtp, &inbox.address, &deeply_nested("nested", 500_000)).await;
    send_raw(
        &mut smtp,
        &inbox.address,
        b"From: b@example.test\r\nSubject: ordinary\r\n\r\nHello.\r\n",
    )
    .await;
    let messages = listed(&client, &inbox.id, 3).await;
    let by_subject = |s: &str| {
        messages
            .iter()
            .find(|m| m.content.subject.as_deref() == Some(s))
            .unwrap_or_else(|| panic!("{s} listed"))
    };
    assert_eq!(by_subject("ordinary").content.preview, "Hello.");
    for heavy in ["siblings", "nested"] {
        let summary = by_subject(heavy);
        let security = summary.content.security.as_ref().expect("scored");
        assert!(
            security.flags.iter().any(|f| f == "mime_limit"),
            "{heavy}: {:?}",
            security.flags
        );
        let full = client.get_message(&summary.id).await.unwrap();
        let parsed = full.parsed;
        assert!(
            parsed
                .parse_warnings
                .iter()
                .any(|w| w.contains("not parsed past byte")),
            "{heavy}: {:?}",
            parsed.parse_warnings
        );
    }
    // The raw message is kept whole, whatever was parsed of it.
    let raw = client.get_raw(&by_subject("nested").id).await.unwrap();
    assert!(raw.len() > 16_000_000, "{} bytes", raw.len());
}

/// A remote MX whose EHLO reply never ends: the attempt is cut off after a bounded read and the
/// recipient deferred with the reason, instead of the server buffering without end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_remote_reply_is_a_deferral() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let _ = tcp.write_all(b"220 endless.test ESMTP\r\n").await;
                let mut buf = [0u8; 512];
                let _ = tcp.read(&mut buf).await;
                let line =
                    b"250-XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\r\n".repeat(64);
                while tcp.write_all(&line).await.is_ok() {
                    counter.fetch_add(line.len(), std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    let dns = crabmail_testkit::Zone::new()
        .mx("endless.test", 10, "mx.endless.test")
        .a("mx.endless.test", "127.0.0.1")
        .serve()
        .await;
    let (k, v) = dns.setting();
    let server = TestServer::start_with(
        Backend::Sqlite,
        &[(&k, &v), ("delivery.mx_port", &port.to_string())],
    )
    .await;
    let (client, inbox) = server.mailbox("bot").await;
    let sent_message = client
        .send_message(
            &inbox.id,
            &crabmail_api::SendMessage {
                to: crabmail_api::AddressList::One("x@endless.test".into()),
                subject: Some("hi".into()),
                text: Some("hello".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let mut cursor = "0".to_owned();
    let deferred = loop {
        let page = client.list_events(Some(&cursor), Some(60)).await.unwrap();
        assert!(!page.events.is_empty(), "no deferral within 60 s");
        if let Some(e) = page.events.iter().find(|e| e.kind == "message.deferred") {
            break e.clone();
        }
        cursor = page.next_cursor;
    };
    let detail = deferred.detail.expect("detail");
    let text = detail["text"].as_str().unwrap_or_default();
    assert!(text.contains("longer than"), "{detail}");
    let message = client.get_message(&sent_message.id).await.unwrap();
    let recipient = &message.delivery.expect("delivery").recipients[0];
    assert_eq!(recipient.status, "deferred");
    assert_eq!(recipient.attempts.len(), 1);
    // What the server sent before we hung up: bounded by the reply cap and socket buffers.
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        sent < 16 * 1024 * 1024,
        "{sent} bytes sent before the hang-up"
    );
}
