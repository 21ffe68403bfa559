//! SMTP sessions under load and at their limits: many clients at once, timeouts, connection caps,
//! long-polls woken by arrivals, and shutdown.

use crabmail_testkit::{Backend, Smtp, TestServer, on_both_backends};
use std::collections::HashSet;

on_both_backends!(
    parallel_sessions_all_land_once,
    long_poll_answers_when_mail_is_committed
);

/// 50 sessions × 20 messages to 10 inboxes: every message lands once, in the inbox it was for.
async fn parallel_sessions_all_land_once(backend: Backend) {
    const SESSIONS: usize = 50;
    const PER_SESSION: usize = 20;
    const INBOXES: usize = 10;
    let server = TestServer::start_with(backend, &[("smtp.max_connections_per_ip", "100")]).await;
    let client = server.signup().await;
    let mut inboxes = Vec::new();
    for n in 0..INBOXES {
        let inbox = client
            .create_inbox(&crabmail_api::CreateInbox {
                name: Some(format!("box{n}")),
                ..Default::default()
            })
            .await
            .unwrap();
        inboxes.push(inbox);
    }
    let mut tasks = Vec::new();
    for s in 0..SESSIONS {
        let mx = server.mx;
        tasks.push(tokio::spawn(async move {
            let mut smtp = Smtp::connect(mx).await;
            smtp.cmd(&format!("EHLO client{s}.test"), "250").await;
            for m in 0..PER_SESSION {
                let to = format!("box{}@crabmail.localhost", (s * PER_SESSION + m) % INBOXES);
                let body = format!(
                    "Subject: s{s}m{m}\r\nMessage-ID: <s{s}m{m}@client.test>\r\n\r\nload\r\n"
                );
                let reply = smtp.send_mail("load@client.test", &[&to], &body).await;
                assert_eq!(reply.code, 250, "{reply:?}");
            }
            smtp.cmd("QUIT", "221").await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut seen = HashSet::new();
    for (n, inbox) in inboxes.iter().enumerate() {
        let mut cursor = "0".to_owned();
        let mut count = 0;
        // Every 250 was committed; ingest may still be running, so long-poll for the rest.
        while count < SESSIONS * PER_SESSION / INBOXES {
            let page = client
                .list_messages(&inbox.id, Some(&cursor), Some(100), Some(60))
                .await
                .unwrap();
            assert!(!page.messages.is_empty(), "inbox {n} stopped at {count}");
            for m in &page.messages {
                let subject = m.content.subject.clone().unwrap();
                let (s, rest) = subject[1..].split_once('m').unwrap();
                let index =
                    s.parse::<usize>().unwrap() * PER_SESSION + rest.parse::<usize>().unwrap();
                assert_eq!(index % INBOXES, n, "{subject} landed in the wrong inbox");
                assert!(seen.insert(subject.clone()), "{subject} landed twice");
            }
            count += page.messages.len();
            cursor = page.next_cursor;
        }
        let extra = client
            .list_messages(&inbox.id, Some(&cursor), None, None)
            .await
            .unwrap();
        assert!(extra.messages.is_empty(), "no more than sent");
    }
    assert_eq!(seen.len(), SESSIONS * PER_SESSION);
}

/// A held long-poll answers with the message once it is committed and parsed, and not before.
async fn long_poll_answers_when_mail_is_committed(backend: Backend) {
    let server = TestServer::start_with(backend, &[]).await;
    let (client, inbox) = server.mailbox("waiter").await;
    let poll = {
        let (client, id) = (client.clone(), inbox.id.clone());
        tokio::spawn(async move { client.list_messages(&id, None, None, Some(120)).await })
    };
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO client.test", "250").await;
    smtp.cmd("MAIL FROM:<a@example.test>", "250").await;
    smtp.cmd("RCPT TO:<waiter@crabmail.localhost>", "250").await;
    smtp.cmd("DATA", "354").await;
    // Before the end of data nothing is committed, so the poll must still be held.
    smtp.write_raw(b"Subject: wake up\r\n\r\nbody\r\nNOOP\r\n")
        .await;
    assert!(
        !poll.is_finished(),
        "the long-poll answered before any message was committed"
    );
    smtp.write_raw(b".\r\n").await;
    smtp.expect("250 2.0.0").await;
    let list = tokio::time::timeout(std::time::Duration::from_secs(60), poll)
        .await
        .expect("the long-poll answers well before its 120 s wait ends")
        .unwrap()
        .unwrap();
    assert_eq!(list.messages.len(), 1);
    assert_eq!(list.messages[0].content.subject.as_deref(), Some("wake up"));
    assert!(list.messages[0].content.preview.contains("NOOP"));

    // An empty wait ends with an empty page and the same cursor.
    let quiet = client
        .list_messages(&inbox.id, Some(&list.next_cursor), None, Some(1))
        .await
        .unwrap();
    assert!(quiet.messages.is_empty());
    assert_eq!(quiet.next_cursor, list.next_cursor);
}

#[tokio::test]
async fn idle_and_session_timeouts_close_with_421() {
    let server =
        TestServer::start_with(Backend::Sqlite, &[("smtp.idle_timeout", "\"300ms\"")]).await;
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO client.test", "250").await;
    // Say nothing: the server gives up on us.
    smtp.expect("421 4.4.2").await;
    assert!(smtp.is_closed().await);

    let server = TestServer::start_with(
        Backend::Sqlite,
        &[
            ("smtp.session_timeout", "\"500ms\""),
            ("smtp.idle_timeout", "\"1m\""),
        ],
    )
    .await;
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO client.test", "250").await;
    // Busy but too long: keep sending until the session deadline passes.
    loop {
        smtp.send("NOOP").await;
        let reply = smtp.read_reply().await;
        if reply.code == 421 {
            assert!(reply.text().starts_with("421 4.4.2"), "{reply:?}");
            break;
        }
        assert_eq!(reply.code, 250);
    }
}

#[tokio::test]
async fn connection_limits_answer_421() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        &[
            ("smtp.max_connections_per_ip", "2"),
            ("smtp.max_connections", "3"),
        ],
    )
    .await;
    let _a = Smtp::connect(server.mx).await;
    let mut b = Smtp::connect(server.mx).await;
    let mut third = Smtp::connect_raw(server.mx).await;
    third.expect("421 4.7.0").await;
    assert!(third.is_closed().await);
    // Another address gets the last place in total, and no more.
    let mut c = connect_from("127.0.0.2", server.mx).await;
    c.expect("220").await;
    let mut fourth = connect_from("127.0.0.3", server.mx).await;
    fourth.expect("421 4.7.0").await;
    // A place freed is a place to take.
    b.cmd("QUIT", "221").await;
    assert!(b.is_closed().await);
    let mut again = connect_from("127.0.0.3", server.mx).await;
    again.expect("220").await;
}

async fn connect_from(local: &str, to: std::net::SocketAddr) -> Smtp<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(to).await.unwrap();
    Smtp::from_stream(stream)
}

#[tokio::test]
async fn shutdown_answers_421_to_open_sessions_and_keeps_accepted_mail() {
    let server = TestServer::start().await;
    let (client, inbox) = server.mailbox("support").await;
    let token = client.token().unwrap().to_owned();
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO client.test", "250").await;
    let reply = smtp
        .send_mail(
            "a@example.test",
            &["support@crabmail.localhost"],
            "Subject: kept\r\n\r\nx\r\n",
        )
        .await;
    assert_eq!(reply.code, 250);
    let backend = server.backend;
    let stopping = tokio::spawn(server.stop());
    smtp.expect("421 4.3.2").await;
    assert!(smtp.is_closed().await);
    let (dir, result) = stopping.await.unwrap();
    result.unwrap();
    let again = TestServer::start_in(dir, backend, "", &[]).await;
    let client = again.client(Some(token));
    let list = client
        .list_messages(&inbox.id, None, None, Some(60))
        .await
        .unwrap();
    assert_eq!(list.messages.len(), 1);
    assert_eq!(list.messages[0].content.subject.as_deref(), Some("kept"));
}
