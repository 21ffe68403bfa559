//! The inbound MX over real TCP: who may receive, the limits and their replies, bad input, BDAT,
//! pipelining, STARTTLS, and the message as stored. Every test reads mail back through the API.

use crabmail_api::client::Client;
use crabmail_testkit::{Backend, Smtp, TestServer, on_both_backends};

/// Waits (long-poll) for the next message after `after` and returns it with its cursor.
async fn next_message(
    client: &Client,
    inbox: &str,
    after: &str,
) -> (crabmail_api::MessageSummary, String) {
    let list = client
        .list_messages(inbox, Some(after), Some(1), Some(60))
        .await
        .expect("list");
    let first = list.messages.into_iter().next().expect("a message arrives");
    (first, list.next_cursor)
}

const BODY: &str = "From: Ann <ann@example.test>\r\nTo: support@crabmail.localhost\r\nSubject: Hello\r\n\r\nHi there.\r\n.leading dot line\r\n";

on_both_backends!(
    delivers_to_hosted_inboxes_only,
    refuses_when_the_store_fails
);

async fn delivers_to_hosted_inboxes_only(backend: Backend) {
    let server = TestServer::start_with(backend, &[]).await;
    let (client, inbox) = server.mailbox("support").await;
    let mut smtp = Smtp::connect(server.mx).await;
    let ehlo = smtp.cmd("EHLO client.example.test", "250").await;
    for ext in [
        "PIPELINING",
        "SIZE 26214400",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "STARTTLS",
    ] {
        assert!(
            ehlo.lines.iter().any(|l| l[4..] == *ext),
            "EHLO lacks {ext}: {ehlo:?}"
        );
    }
    smtp.cmd("MAIL FROM:<ann@example.test>", "250 2.1.0").await;
    smtp.cmd("RCPT TO:<nobody@crabmail.localhost>", "550 5.1.1")
        .await;
    smtp.cmd("RCPT TO:<victim@gmail.test>", "554 5.7.1").await;
    smtp.cmd("RCPT TO:<Support@CRABMAIL.localhost>", "250 2.1.5")
        .await;
    smtp.cmd("RCPT TO:<support+billing@crabmail.localhost>", "250 2.1.5")
        .await;
    smtp.cmd("DATA", "354").await;
    smtp.write_raw(
        format!(
            "{}..leading dot line\r\n.\r\n",
            BODY.replace("\r\n.leading dot line\r\n", "\r\n")
        )
        .as_bytes(),
    )
    .await;
    let queued = smtp.expect("250 2.0.0").await;

    let (summary, _) = next_message(&client, &inbox.id, "0").await;
    // The 250 names the id the API knows it by (two RCPTs, one inbox: one copy).
    assert!(
        queued
            .text()
            .ends_with(&format!("queued as {}", summary.id)),
        "{queued:?}"
    );
    assert_eq!(summary.content.subject.as_deref(), Some("Hello"));
    assert_eq!(
        summary
            .content
            .from
            .as_ref()
            .and_then(|f| f.name.as_deref()),
        Some("Ann")
    );
    let raw = client.get_raw(&summary.id).await.unwrap();
    // As stored, our verdict comes first, then exactly these bytes.
    let stored = client.get_raw_with_auth_results(&summary.id).await.unwrap();
    assert!(stored.starts_with(b"Authentication-Results: "));
    assert!(stored.ends_with(&raw) && stored.len() > raw.len());
    assert_eq!(
        &raw[..],
        format!(
            "{}.leading dot line\r\n",
            BODY.replace("\r\n.leading dot line\r\n", "\r\n")
        )
        .into_bytes()
    );
    let message = client.get_message(&summary.id).await.unwrap();
    assert_eq!(message.envelope.return_path, "ann@example.test");
    assert_eq!(message.envelope.helo, "client.example.test");
    assert!(!message.envelope.tls);
    // Two RCPTs to one inbox (plain and +detail) make one copy.
    let all = client
        .list_messages(&inbox.id, None, None, None)
        .await
        .unwrap();
    assert_eq!(all.messages.len(), 1);

    // After the inbox is deleted its address is unknown.
    client.delete_inbox(&inbox.id).await.unwrap();
    smtp.cmd("MAIL FROM:<ann@example.test>", "250").await;
    smtp.cmd("RCPT TO:<support@crabmail.localhost>", "550 5.1.1")
        .await;
    smtp.cmd("QUIT", "221").await;
}

/// A store that cannot commit must never produce a 250: the client gets 451 and keeps the mail.
async fn refuses_when_the_store_fails(backend: Backend) {
    let server = TestServer::start_with(backend, &[]).await;
    let (client, inbox) = server.mailbox("support").await;
    let break_store = |broken: bool| {
        let (from, to) = if broken {
            ("blobs", "blobs_away")
        } else {
            ("blobs_away", "blobs")
        };
        format!("ALTER TABLE {from} RENAME TO {to}")
    };
    run_sql(&server, &break_store(true)).await;
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO client.test", "250").await;
    let reply = smtp
        .send_mail("ann@example.test", &["support@crabmail.localhost"], BODY)
        .await;
    assert_eq!(reply.code, 451, "{reply:?}");
    assert!(reply.text().starts_with("451 4.3.0"), "{reply:?}");
    run_sql(&server, &break_store(false)).await;
    let reply = smtp
        .send_mail("ann@example.test", &["support@crabmail.localhost"], BODY)
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    next_message(&client, &inbox.id, "0").await;
    let all = client
        .list_messages(&inbox.id, None, None, None)
        .await
        .unwrap();
    assert_eq!(
        all.messages.len(),
        1,
        "the refused attempt left nothing behind"
    );
}

/// Changes the server's schema from outside, as an operator (or a failing disk) might.
async fn run_sql(server: &TestServer, sql: &str) {
    match server.backend {
        Backend::Sqlite => {
            let path = server.data_dir().join("crabmail.sqlite3");
            let sql = sql.to_owned();
            tokio::task::spawn_blocking(move || {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(10))
                    .unwrap();
                conn.execute_batch(&sql).unwrap();
            })
            .await
            .unwrap();
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&server.config.database_url)
                .await
                .unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn limits_get_their_replies() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        &[
            ("smtp.max_message_size", "2000"),
            ("smtp.max_recipients", "2"),
            ("smtp.max_command_line", "512"),
        ],
    )
    .await;
    let (client, inbox) = server.mailbox("support").await;
    let mut smtp = Smtp::connect(server.mx).await;
    let ehlo = smtp.cmd("EHLO client.test", "250").await;
    assert!(ehlo.lines.iter().any(|l| l.ends_with("SIZE 2000")));

    // Declared size over the limit: refused at MAIL.
    smtp.cmd("MAIL FROM:<a@example.test> SIZE=2001", "552 5.3.4")
        .await;
    // Recipients over the limit: 452 4.5.3, the others kept.
    client
        .create_inbox(&crabmail_api::CreateInbox {
            name: Some("two".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    smtp.cmd("MAIL FROM:<a@example.test> SIZE=100", "250").await;
    smtp.cmd("RCPT TO:<support@crabmail.localhost>", "250")
        .await;
    smtp.cmd("RCPT TO:<two@crabmail.localhost>", "250").await;
    smtp.cmd("RCPT TO:<support+x@crabmail.localhost>", "452 4.5.3")
        .await;
    // Actual size over the limit: the body is read to its end, then 552; nothing stored.
    smtp.cmd("DATA", "354").await;
    let line = "x".repeat(900);
    let big = format!("Subject: big\r\n\r\n{line}\r\n{line}\r\n{line}\r\n.\r\n");
    smtp.write_raw(big.as_bytes()).await;
    smtp.expect("552 5.3.4").await;
    // The session is still in step: a new transaction works.
    let ok = smtp
        .send_mail(
            "a@example.test",
            &["support@crabmail.localhost"],
            "Subject: small\r\n\r\nok\r\n",
        )
        .await;
    assert_eq!(ok.code, 250);
    // A command line over the limit: 500 5.5.2, the session goes on.
    smtp.cmd(&format!("NOOP {}", "y".repeat(600)), "500 5.5.2")
        .await;
    smtp.cmd("NOOP", "250").await;
    smtp.cmd("QUIT", "221").await;

    let listed = client
        .list_messages(&inbox.id, None, None, Some(30))
        .await
        .unwrap();
    assert_eq!(listed.messages.len(), 1);
    assert_eq!(listed.messages[0].content.subject.as_deref(), Some("small"));
}

#[tokio::test]
async fn long_text_lines_are_refused() {
    // Long lines are kept by default; an operator may hold senders to RFC 5321's 1000 octets.
    let server = TestServer::start_with(Backend::Sqlite, &[("smtp.max_line_length", "1000")]).await;
    let (client, inbox) = server.mailbox("support").await;
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO client.test", "250").await;
    let at_limit = format!("Subject: ok\r\n\r\n{}\r\n", "a".repeat(998));
    assert_eq!(
        smtp.send_mail("a@example.test", &["support@crabmail.localhost"], &at_limit)
            .await
            .code,
        250
    );
    let over = format!("Subject: long\r\n\r\n{}\r\n", "a".repeat(999));
    let reply = smtp
        .send_mail("a@example.test", &["support@crabmail.localhost"], &over)
        .await;
    assert!(reply.text().starts_with("550 5.6.0"), "{reply:?}");
    let listed = client
        .list_messages(&inbox.id, None, None, Some(30))
        .await
        .unwrap();
    assert_eq!(listed.messages.len(), 1);
    assert_eq!(listed.messages[0].content.subject.as_deref(), Some("ok"));
}

/// SMTP smuggling: a bare LF before the dot must not end the data, and the "message" after it
/// must not become a second transaction.
#[tokio::test]
async fn bare_line_endings_are_refused_whole() {
    let server =
        TestServer::start_with(Backend::Sqlite, &[("smtp.bare_newline", "\"reject\"")]).await;
    let (client, inbox) = server.mailbox("support").await;
    server.mailbox("victim").await;
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO attacker.test", "250").await;
    smtp.cmd("MAIL FROM:<a@example.test>", "250").await;
    smtp.cmd("RCPT TO:<support@crabmail.localhost>", "250")
        .await;
    smtp.cmd("DATA", "354").await;
    smtp.write_raw(
        b"Subject: first\r\n\r\nhello\n.\r\nMAIL FROM:<ceo@bank.test>\r\nRCPT TO:<victim@crabmail.localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\npay now\r\n.\r\n",
    )
    .await;
    // One reply for the whole thing: the smuggled commands were data, not commands.
    smtp.expect("550 5.6.0").await;
    smtp.cmd("NOOP", "250").await;
    smtp.cmd("MAIL FROM:<a@example.test>", "250").await;
    smtp.cmd("RCPT TO:<support@crabmail.localhost>", "250")
        .await;
    smtp.cmd("DATA", "354").await;
    smtp.write_raw(b"Subject: cr\r\n\r\nbare\rCR\r\n.\r\n")
        .await;
    smtp.expect("550 5.6.0").await;
    let ok = smtp
        .send_mail(
            "a@example.test",
            &["support@crabmail.localhost"],
            "Subject: fine\r\n\r\nok\r\n",
        )
        .await;
    assert_eq!(ok.code, 250);
    let listed = client
        .list_messages(&inbox.id, None, None, Some(30))
        .await
        .unwrap();
    assert_eq!(listed.messages.len(), 1);
    assert_eq!(listed.messages[0].content.subject.as_deref(), Some("fine"));
}

/// By default, as Postfix 3.9's `normalize`: a bare LF is a line end (stored as CRLF), long lines
/// are kept, and still only CRLF.CRLF ends the data, so a smuggling attempt stays one message.
#[tokio::test]
async fn bare_newlines_are_line_ends_and_long_lines_are_kept() {
    let server = TestServer::start().await;
    let (client, inbox) = server.mailbox("support").await;
    let (victim, victim_inbox) = server.mailbox("victim").await;
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO attacker.test", "250").await;
    smtp.cmd("MAIL FROM:<a@example.test>", "250").await;
    smtp.cmd("RCPT TO:<support@crabmail.localhost>", "250")
        .await;
    smtp.cmd("DATA", "354").await;
    smtp.write_raw(
        b"Subject: first\n\nhello\n.\r\nMAIL FROM:<ceo@bank.test>\r\nRCPT TO:<victim@crabmail.localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\npay now\n..dotted\r\n.\r\n",
    )
    .await;
    // One reply for the whole thing: the smuggled commands were data, not commands.
    smtp.expect("250").await;
    let long = "x".repeat(5000);
    let reply = smtp
        .send_mail(
            "a@example.test",
            &["support@crabmail.localhost"],
            &format!("Subject: long\r\n\r\n{long}\r\n"),
        )
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let (first, cursor) = next_message(&client, &inbox.id, "0").await;
    assert_eq!(first.content.subject.as_deref(), Some("first"));
    let raw = client.get_raw(&first.id).await.unwrap();
    assert!(
        &raw[..].ends_with(
            b"Subject: first\r\n\r\nhello\r\n\r\nMAIL FROM:<ceo@bank.test>\r\nRCPT TO:<victim@crabmail.localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\npay now\r\n.dotted\r\n"
        ),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    let (second, _) = next_message(&client, &inbox.id, &cursor).await;
    let raw = client.get_raw(&second.id).await.unwrap();
    assert!(&raw[..].ends_with(format!("{long}\r\n").as_bytes()));
    let none = victim
        .list_messages(&victim_inbox.id, None, None, Some(0))
        .await
        .unwrap();
    assert!(none.messages.is_empty(), "nothing smuggled to the victim");
}

#[tokio::test]
async fn malformed_and_out_of_order_commands() {
    let server = TestServer::start_with(Backend::Sqlite, &[("smtp.max_errors", "7")]).await;
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("MAIL FROM:<a@example.test>", "503 5.5.1").await;
    smtp.cmd("HELO client.test", "250").await;
    smtp.cmd("RCPT TO:<support@crabmail.localhost>", "503 5.5.1")
        .await;
    smtp.cmd("DATA", "503 5.5.1").await;
    smtp.cmd("MAIL FROM:bad", "501").await;
    smtp.cmd("FROB", "500 5.5.1").await;
    smtp.cmd("VRFY support", "252").await;
    smtp.cmd("HELP", "214").await;
    smtp.cmd("EXPN list", "502").await;
    smtp.cmd("AUTH PLAIN AGFiYwBkZWY=", "503").await;
    // The eighth permanent error closes the session.
    let last = smtp.cmd("FROB", "421 4.7.0").await;
    assert!(last.text().contains("Too many errors"));
    assert!(smtp.is_closed().await);

    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO client.test", "250").await;
    smtp.cmd("MAIL FROM:<a@example.test>", "250").await;
    smtp.cmd("MAIL FROM:<a@example.test>", "503 5.5.1").await;
    smtp.cmd("DATA", "554 5.5.1").await;
    smtp.cmd("RSET", "250").await;
    smtp.cmd("MAIL FROM:<a@example.test> BODY=BINARYMIME", "555")
        .await;
    smtp.cmd("MAIL FROM:<ü@example.test>", "553 5.6.7").await;
    smtp.cmd("QUIT", "221 2.0.0").await;
}

#[tokio::test]
async fn pipelined_commands_get_replies_in_order() {
    let server = TestServer::start().await;
    let (client, inbox) = server.mailbox("support").await;
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO client.test", "250").await;
    smtp.write_raw(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<nobody@crabmail.localhost>\r\nRCPT TO:<support@crabmail.localhost>\r\nDATA\r\n").await;
    smtp.expect("250 2.1.0").await;
    smtp.expect("550 5.1.1").await;
    smtp.expect("250 2.1.5").await;
    smtp.expect("354").await;
    smtp.write_raw(b"Subject: piped\r\n\r\nx\r\n.\r\nNOOP\r\nQUIT\r\n")
        .await;
    smtp.expect("250 2.0.0").await;
    smtp.expect("250 2.0.0 OK").await;
    smtp.expect("221").await;
    let (summary, _) = next_message(&client, &inbox.id, "0").await;
    assert_eq!(summary.content.subject.as_deref(), Some("piped"));
}

#[tokio::test]
async fn bdat_chunks_make_one_message() {
    let server =
        TestServer::start_with(Backend::Sqlite, &[("smtp.bare_newline", "\"reject\"")]).await;
    let (client, inbox) = server.mailbox("support").await;
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO client.test", "250").await;
    // BDAT before MAIL: the chunk is still consumed, so the session stays in step.
    smtp.write_raw(b"BDAT 5 LAST\r\nhelloNOOP\r\n").await;
    smtp.expect("503 5.5.1").await;
    smtp.expect("250 2.0.0 OK").await;
    smtp.cmd("MAIL FROM:<a@example.test>", "250").await;
    smtp.cmd("RCPT TO:<support@crabmail.localhost>", "250")
        .await;
    let part1 = b"Subject: chunked\r\n\r\nfirst ";
    let part2 = b"and second\r\n";
    smtp.write_raw(format!("BDAT {}\r\n", part1.len()).as_bytes())
        .await;
    smtp.write_raw(part1).await;
    smtp.expect("250").await;
    smtp.write_raw(format!("BDAT {} LAST\r\n", part2.len()).as_bytes())
        .await;
    smtp.write_raw(part2).await;
    smtp.expect("250 2.0.0 OK: queued").await;
    smtp.cmd("MAIL FROM:<a@example.test>", "250").await;
    smtp.cmd("RCPT TO:<support@crabmail.localhost>", "250")
        .await;
    smtp.write_raw(b"BDAT 14 LAST\r\nSubject: x\n\nz\n").await;
    smtp.expect("550 5.6.0").await;
    let (summary, _) = next_message(&client, &inbox.id, "0").await;
    let raw = client.get_raw(&summary.id).await.unwrap();
    assert_eq!(&raw[..], b"Subject: chunked\r\n\r\nfirst and second\r\n");
    assert_eq!(
        client
            .list_messages(&inbox.id, None, None, None)
            .await
            .unwrap()
            .messages
            .len(),
        1
    );
}

#[tokio::test]
async fn starttls_then_mail_over_tls() {
    let server = TestServer::start().await;
    let (client, inbox) = server.mailbox("support").await;
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO client.test", "250").await;
    let mut tls = smtp.starttls().await;
    let ehlo = tls.cmd("EHLO client.test", "250").await;
    assert!(
        !ehlo.lines.iter().any(|l| l.contains("STARTTLS")),
        "no STARTTLS once TLS is on"
    );
    tls.cmd("STARTTLS", "503").await;
    let reply = tls
        .send_mail(
            "a@example.test",
            &["support@crabmail.localhost"],
            "Subject: secret\r\n\r\nover tls\r\n",
        )
        .await;
    assert_eq!(reply.code, 250);
    let (summary, _) = next_message(&client, &inbox.id, "0").await;
    assert!(client.get_message(&summary.id).await.unwrap().envelope.tls);
}

/// Commands pipelined after STARTTLS were sent in plaintext: they must not run inside TLS.
#[tokio::test]
async fn plaintext_pipelined_after_starttls_is_dropped() {
    let server = TestServer::start().await;
    server.mailbox("support").await;
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO client.test", "250").await;
    // The handshake succeeds only if the injected bytes were discarded rather than read as TLS.
    let mut tls = smtp
        .starttls_with_injected(b"EHLO evil.test\r\nMAIL FROM:<a@example.test>\r\n")
        .await;
    // Had the injected commands run, this RCPT would be accepted.
    tls.cmd("RCPT TO:<support@crabmail.localhost>", "503 5.5.1")
        .await;
    tls.cmd("MAIL FROM:<a@example.test>", "503 5.5.1").await;
    tls.cmd("EHLO client.test", "250").await;
    tls.cmd("MAIL FROM:<a@example.test>", "250").await;
}
