//! SMTP submission (587 STARTTLS, 465 implicit TLS): AUTH only inside TLS, senders only from their
//! own inboxes, cool-down after failed AUTH, trusted networks; swaks as the real client.

use crabmail_api::client::Client;
use crabmail_api::{CreateInbox, CreateToken};
use crabmail_testkit::{Backend, Smtp, TestServer};
use std::process::Command;

fn plain(user: &str, pass: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"))
}

async fn subjects(client: &Client, inbox: &str, at_least: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor = "0".to_owned();
    while seen.len() < at_least {
        let page = client
            .list_messages(inbox, Some(&cursor), None, Some(60))
            .await
            .unwrap();
        assert!(
            !page.messages.is_empty(),
            "expected {at_least} messages, got {seen:?}"
        );
        seen.extend(
            page.messages
                .iter()
                .map(|m| m.content.subject.clone().unwrap_or_default()),
        );
        cursor = page.next_cursor;
    }
    seen
}

async fn swaks(args: Vec<String>) -> (bool, String) {
    let out = tokio::task::spawn_blocking(move || {
        Command::new("swaks")
            .args(&args)
            .output()
            .expect("swaks must be installed")
    })
    .await
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_submits_with_auth_over_starttls_and_implicit_tls() {
    let server = TestServer::start().await;
    let created = server.client(None).create_account(None).await.unwrap();
    let sender = server.client(Some(created.token.clone()));
    let inbox = sender
        .create_inbox(&CreateInbox {
            name: Some("agent".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let (reader, target) = server.mailbox("reader").await;
    let runs: Vec<(Vec<String>, String, &str)> = vec![
        // STARTTLS on 587, user = the inbox address, PLAIN.
        (
            vec![
                "--server".into(),
                format!("127.0.0.1:{}", server.submission.port()),
                "-tls".into(),
            ],
            inbox.address.clone(),
            "PLAIN",
        ),
        // Implicit TLS on 465, user = the account id, LOGIN.
        (
            vec![
                "--server".into(),
                format!("127.0.0.1:{}", server.submission_tls.port()),
                "--tlsc".into(),
            ],
            created.account_id.clone(),
            "LOGIN",
        ),
    ];
    for (n, (mut args, user, mechanism)) in runs.into_iter().enumerate() {
        args.extend([
            "--auth".into(),
            mechanism.into(),
            "--auth-user".into(),
            user,
            "--auth-password".into(),
            created.token.clone(),
            "--from".into(),
            inbox.address.clone(),
            "--to".into(),
            target.address.clone(),
            "--header".into(),
            format!("From: Agent <{}>", inbox.address),
            "--header".into(),
            format!("Subject: submitted {n}"),
        ]);
        let (ok, transcript) = swaks(args).await;
        assert!(ok, "{transcript}");
        assert!(
            transcript.contains("235 2.7.0 Authentication successful"),
            "{transcript}"
        );
        assert!(
            transcript.contains("250 2.0.0 OK: queued as msg_"),
            "{transcript}"
        );
    }
    assert_eq!(
        subjects(&reader, &target.id, 2).await,
        ["submitted 0", "submitted 1"]
    );
}

#[tokio::test]
async fn auth_only_inside_tls_and_mail_only_after_auth() {
    let server = TestServer::start().await;
    let (client, inbox) = server.mailbox("agent").await;
    let token = client.token().unwrap().to_owned();
    let mut smtp = Smtp::connect(server.submission).await;
    let ehlo = smtp.cmd("EHLO client.test", "250").await;
    assert!(
        !ehlo.lines.iter().any(|l| l.contains("AUTH")),
        "AUTH offered before TLS: {ehlo:?}"
    );
    smtp.cmd(
        &format!("AUTH PLAIN {}", plain(&inbox.address, &token)),
        "538 5.7.11",
    )
    .await;
    smtp.cmd(&format!("MAIL FROM:<{}>", inbox.address), "530 5.7.0")
        .await;
    let mut tls = smtp.starttls().await;
    let ehlo = tls.cmd("EHLO client.test", "250").await;
    assert!(
        ehlo.lines.iter().any(|l| l.ends_with("AUTH PLAIN LOGIN")),
        "{ehlo:?}"
    );
    tls.cmd(&format!("MAIL FROM:<{}>", inbox.address), "530 5.7.0")
        .await;
    tls.cmd(
        &format!("AUTH PLAIN {}", plain(&inbox.address, "cm_wrong")),
        "535 5.7.8",
    )
    .await;
    tls.cmd("AUTH CRAM-MD5", "504").await;
    // PLAIN without an initial response: the server asks with an empty 334.
    tls.cmd("AUTH PLAIN", "334").await;
    tls.cmd(&plain(&inbox.address, &token), "235 2.7.0").await;
    tls.cmd(
        &format!("AUTH PLAIN {}", plain(&inbox.address, &token)),
        "503",
    )
    .await;
    tls.cmd(&format!("MAIL FROM:<{}>", inbox.address), "250")
        .await;
    // The inbound MX never accepts AUTH.
    let mut mx = Smtp::connect(server.mx).await;
    mx.cmd("EHLO client.test", "250").await;
    mx.cmd(
        &format!("AUTH PLAIN {}", plain(&inbox.address, &token)),
        "503",
    )
    .await;
}

#[tokio::test]
async fn senders_may_use_only_their_own_inboxes() {
    let server = TestServer::start().await;
    let (client, inbox) = server.mailbox("agent").await;
    let (_victim, victim_inbox) = server.mailbox("ceo").await;
    let second = client
        .create_inbox(&CreateInbox {
            name: Some("second".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = client.token().unwrap().to_owned();
    let mut tls = Smtp::connect_tls(server.submission_tls).await;
    tls.cmd("EHLO client.test", "250").await;
    tls.cmd(
        &format!("AUTH PLAIN {}", plain(&inbox.address, &token)),
        "235",
    )
    .await;
    // Another account's inbox, an address we do not host, or the null sender, as MAIL FROM.
    tls.cmd(
        &format!("MAIL FROM:<{}>", victim_inbox.address),
        "553 5.7.1",
    )
    .await;
    tls.cmd("MAIL FROM:<boss@bank.test>", "553 5.7.1").await;
    tls.cmd("MAIL FROM:<>", "553 5.7.1").await;
    // Our envelope, someone else's From header.
    tls.cmd(&format!("MAIL FROM:<{}>", inbox.address), "250")
        .await;
    tls.cmd("RCPT TO:<anyone@example.test>", "250").await;
    tls.cmd("DATA", "354").await;
    tls.write_raw(
        format!(
            "From: {}\r\nSubject: forged\r\n\r\nx\r\n.\r\n",
            victim_inbox.address
        )
        .as_bytes(),
    )
    .await;
    tls.expect("550 5.7.1").await;
    tls.cmd(&format!("MAIL FROM:<{}>", inbox.address), "250")
        .await;
    tls.cmd("RCPT TO:<anyone@example.test>", "250").await;
    tls.cmd("DATA", "354").await;
    tls.write_raw(b"Subject: no from at all\r\n\r\nx\r\n.\r\n")
        .await;
    tls.expect("550 5.7.1").await;
    // Another inbox of the same account is fine, in the envelope and in From.
    tls.cmd(&format!("MAIL FROM:<{}>", second.address), "250")
        .await;
    tls.cmd(&format!("RCPT TO:<{}>", inbox.address), "250")
        .await;
    tls.cmd("DATA", "354").await;
    tls.write_raw(
        format!(
            "From: {}\r\nSubject: fine\r\n\r\nx\r\n.\r\n",
            second.address
        )
        .as_bytes(),
    )
    .await;
    tls.expect("250 2.0.0 OK: queued as msg_").await;
    assert_eq!(subjects(&client, &inbox.id, 1).await, ["fine"]);
    let list = client
        .list_messages(&inbox.id, None, None, None)
        .await
        .unwrap();
    let message = client.get_message(&list.messages[0].id).await.unwrap();
    assert!(
        message.parsed.message_id.is_some(),
        "a Message-ID was added"
    );
    assert!(message.parsed.date.is_some(), "a Date was added");

    // A token limited to one inbox may send only as that inbox.
    let scoped = client
        .create_token(&CreateToken {
            inbox_id: Some(second.id.clone()),
            name: None,
            scopes: None,
        })
        .await
        .unwrap();
    let mut tls = Smtp::connect_tls(server.submission_tls).await;
    tls.cmd("EHLO client.test", "250").await;
    tls.cmd(
        &format!("AUTH PLAIN {}", plain(&inbox.address, &scoped.token)),
        "535",
    )
    .await;
    tls.cmd(
        &format!("AUTH PLAIN {}", plain(&second.address, &scoped.token)),
        "235",
    )
    .await;
    tls.cmd(&format!("MAIL FROM:<{}>", inbox.address), "553 5.7.1")
        .await;
    tls.cmd(&format!("MAIL FROM:<{}>", second.address), "250")
        .await;
}

#[tokio::test]
async fn repeated_auth_failures_earn_a_cool_down() {
    let server =
        TestServer::start_with(Backend::Sqlite, &[("submission.max_auth_failures", "3")]).await;
    let (client, inbox) = server.mailbox("agent").await;
    let token = client.token().unwrap().to_owned();
    let mut tls = Smtp::connect_tls(server.submission_tls).await;
    tls.cmd("EHLO client.test", "250").await;
    tls.cmd(
        &format!("AUTH PLAIN {}", plain(&inbox.address, "cm_guess1")),
        "535",
    )
    .await;
    tls.cmd(
        &format!("AUTH PLAIN {}", plain(&inbox.address, "cm_guess2")),
        "535",
    )
    .await;
    tls.cmd(
        &format!("AUTH PLAIN {}", plain(&inbox.address, "cm_guess3")),
        "421 4.7.0",
    )
    .await;
    assert!(tls.is_closed().await);
    // While cooling down, the address is turned away at once, even with the right token.
    let mut again = Smtp::connect_raw(server.submission).await;
    again.expect("421 4.7.0").await;
    let _ = token;
}

#[tokio::test]
async fn trusted_networks_submit_without_auth_but_only_from_hosted_inboxes() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        &[("submission.trusted_networks", "[\"127.0.0.0/8\"]")],
    )
    .await;
    let (client, inbox) = server.mailbox("agent").await;
    let mut smtp = Smtp::connect(server.submission).await;
    smtp.cmd("EHLO app.internal", "250").await;
    smtp.cmd("MAIL FROM:<someone@elsewhere.test>", "553 5.7.1")
        .await;
    smtp.cmd(&format!("MAIL FROM:<{}>", inbox.address), "250")
        .await;
    smtp.cmd(&format!("RCPT TO:<{}>", inbox.address), "250")
        .await;
    smtp.cmd("DATA", "354").await;
    smtp.write_raw(
        format!(
            "From: {}\r\nSubject: from the app\r\n\r\nx\r\n.\r\n",
            inbox.address
        )
        .as_bytes(),
    )
    .await;
    smtp.expect("250 2.0.0 OK: queued as msg_").await;
    assert_eq!(subjects(&client, &inbox.id, 1).await, ["from the app"]);
}

/// An address that bounced with 5.1.x is refused at RCPT on submission (and 422 on the API).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppressed_recipients_are_refused_at_rcpt() {
    let server = TestServer::start().await;
    let (client, inbox) = server.mailbox("agent").await;
    let token = client.token().unwrap().to_owned();
    // A local inbox that does not exist bounces 5.1.1, which suppresses the address.
    let sent = client
        .send_message(
            &inbox.id,
            &crabmail_api::SendMessage {
                to: crabmail_api::AddressList::One("gone@crabmail.localhost".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let mut cursor = "0".to_owned();
    'bounced: loop {
        let page = client.list_events(Some(&cursor), Some(60)).await.unwrap();
        assert!(!page.events.is_empty(), "no bounce");
        for e in &page.events {
            if e.kind == "message.bounced" && e.message_id.as_deref() == Some(&sent.id) {
                break 'bounced;
            }
        }
        cursor = page.next_cursor;
    }
    let mut tls = Smtp::connect_tls(server.submission_tls).await;
    tls.cmd("EHLO client.test", "250").await;
    tls.cmd(
        &format!("AUTH PLAIN {}", plain(&inbox.address, &token)),
        "235",
    )
    .await;
    tls.cmd(&format!("MAIL FROM:<{}>", inbox.address), "250")
        .await;
    tls.cmd("RCPT TO:<Gone@crabmail.localhost>", "550 5.1.1")
        .await;
    tls.cmd("RCPT TO:<fine@example.test>", "250").await;
}
