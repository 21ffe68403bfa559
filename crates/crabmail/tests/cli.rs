//! The agent CLI as an agent runs it: the real binary, a fresh HOME, a live server.

use crabmail_testkit::{Smtp, TestServer};
use std::process::{Command, Output};

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

async fn run(home: &std::path::Path, server: &TestServer, args: &[&str]) -> Output {
    let (home, args) = (
        home.to_owned(),
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    );
    let (url, bin) = (server.url(), env!("CARGO_BIN_EXE_crabmail"));
    tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(&args)
            .env("HOME", &home)
            .env("CRABMAIL_URL", url)
            .env_remove("CRABMAIL_TOKEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_gets_an_address_and_reads_its_mail() {
    let server = TestServer::start().await;
    let home = tempfile::tempdir().unwrap();

    // The first command signs up by itself and keeps the token, readable only by its owner.
    let created = stdout(
        &run(
            home.path(),
            &server,
            &["inbox", "create", "--name", "agent"],
        )
        .await,
    );
    assert!(
        created.starts_with("agent@crabmail.localhost\tinb_"),
        "{created}"
    );
    let token_file = home.path().join(".crabmail/token");
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(token.starts_with("cm_"));
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // The second command reuses it: same account, so the inbox is listed.
    let listed = stdout(&run(home.path(), &server, &["inbox", "list"]).await);
    assert!(listed.contains("agent@crabmail.localhost"), "{listed}");

    // A waiting receive returns when mail arrives.
    let waiting = {
        let (home, server_url) = (home.path().to_owned(), server.url());
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_crabmail"))
                .args([
                    "receive",
                    "--inbox",
                    "agent@crabmail.localhost",
                    "--wait",
                    "60",
                    "--json",
                ])
                .env("HOME", home)
                .env("CRABMAIL_URL", server_url)
                .output()
                .unwrap()
        })
    };
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO c.test", "250").await;
    let reply = smtp
        .send_mail(
            "boss@example.test",
            &["agent@crabmail.localhost"],
            "From: Boss <boss@example.test>\r\nSubject: your task\r\n\r\nDo the thing.\r\n",
        )
        .await;
    assert_eq!(reply.code, 250);
    let received: crabmail_api::MessageList =
        serde_json::from_str(&stdout(&waiting.await.unwrap())).unwrap();
    assert_eq!(received.messages.len(), 1);
    let id = received.messages[0].id.clone();

    let shown = stdout(&run(home.path(), &server, &["read", &id]).await);
    assert!(shown.contains("Subject: your task"), "{shown}");
    assert!(shown.contains("Do the thing."), "{shown}");
    let raw = run(home.path(), &server, &["read", &id, "--raw"]).await;
    assert_eq!(
        &raw.stdout[..],
        b"From: Boss <boss@example.test>\r\nSubject: your task\r\n\r\nDo the thing.\r\n"
    );

    // The cursor moved: nothing new now; --all still lists it.
    let again = run(home.path(), &server, &["receive"]).await;
    assert!(stdout(&again).is_empty());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no new messages"));
    let all = stdout(&run(home.path(), &server, &["receive", "--all"]).await);
    assert!(
        all.contains(&id) && all.contains("boss@example.test") && all.contains("your task"),
        "{all}"
    );
}

#[tokio::test]
async fn a_down_server_is_explained() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_crabmail"))
        .args(["inbox", "list", "--server", "http://127.0.0.1:9"])
        .env("HOME", home.path())
        .env_remove("CRABMAIL_URL")
        .env_remove("CRABMAIL_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the crabmail server"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_from_the_cli_and_manage_the_queue() {
    // DNS that answers nothing outside `test.`: remote mail stays queued (deferred).
    let dns = crabmail_testkit::Zone::new().serve().await;
    let (k, v) = dns.setting();
    let server = TestServer::start_with(crabmail_testkit::Backend::Sqlite, &[(&k, &v)]).await;
    let home = tempfile::tempdir().unwrap();
    stdout(
        &run(
            home.path(),
            &server,
            &["inbox", "create", "--name", "agent"],
        )
        .await,
    );
    stdout(&run(home.path(), &server, &["inbox", "create", "--name", "desk"]).await);
    let note = home.path().join("note.txt");
    std::fs::write(&note, "attached words\n").unwrap();

    // Local delivery, waiting for the outcome.
    let out = stdout(
        &run(
            home.path(),
            &server,
            &[
                "send",
                "--from",
                "agent@crabmail.localhost",
                "--to",
                "desk@crabmail.localhost",
                "--subject",
                "cli hello",
                "--text",
                "hi",
                "--attach",
                note.to_str().unwrap(),
                "--wait",
                "60",
            ],
        )
        .await,
    );
    assert!(
        out.contains("\tqueued\ndelivered\ndesk@crabmail.localhost\tdelivered"),
        "{out}"
    );
    let received = stdout(
        &run(
            home.path(),
            &server,
            // Delivered is recorded before ingest makes the copy readable: wait for it.
            &[
                "receive",
                "--inbox",
                "desk@crabmail.localhost",
                "--all",
                "--wait",
                "10",
            ],
        )
        .await,
    );
    assert!(received.contains("cli hello"), "{received}");

    // Remote mail that cannot go anywhere yet, for the operator commands.
    let out = stdout(
        &run(
            home.path(),
            &server,
            &[
                "send",
                "--from",
                "agent@crabmail.localhost",
                "--to",
                "far@example.org",
                "--subject",
                "stuck",
            ],
        )
        .await,
    );
    let id = out.split('\t').next().unwrap().to_owned();
    let data_dir = server.data_dir().to_str().unwrap().to_owned();
    let listed = stdout(
        &run(
            home.path(),
            &server,
            &["queue", "list", "--data-dir", &data_dir],
        )
        .await,
    );
    assert!(
        listed.contains(&id) && listed.contains("far@example.org"),
        "{listed}"
    );
    let shown = stdout(
        &run(
            home.path(),
            &server,
            &["queue", "show", &id, "--data-dir", &data_dir],
        )
        .await,
    );
    assert!(shown.contains("from agent@crabmail.localhost"), "{shown}");
    let cancelled = stdout(
        &run(
            home.path(),
            &server,
            &["queue", "cancel", &id, "--data-dir", &data_dir],
        )
        .await,
    );
    assert!(cancelled.starts_with("1 recipient"), "{cancelled}");
    let listed = stdout(
        &run(
            home.path(),
            &server,
            &["queue", "list", "--data-dir", &data_dir],
        )
        .await,
    );
    assert!(!listed.contains(&id), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_and_quota_from_the_cli() {
    let server = TestServer::start().await;
    let home = tempfile::tempdir().unwrap();
    let created = stdout(&run(home.path(), &server, &["inbox", "create", "--name", "bot"]).await);
    let inbox_id = created.trim().split('\t').nth(1).unwrap().to_owned();
    let token = std::fs::read_to_string(home.path().join(".crabmail/token")).unwrap();
    let client = server.client(Some(token.trim().to_owned()));
    client
        .update_inbox(
            &inbox_id,
            &crabmail_api::UpdateInbox {
                approval: Some("required".into()),
            },
        )
        .await
        .unwrap();
    let to = "delivered@simulator.crabmail.test";
    for subject in ["first", "second"] {
        let sent = stdout(
            &run(
                home.path(),
                &server,
                &[
                    "send",
                    "--from",
                    &inbox_id,
                    "--to",
                    to,
                    "--subject",
                    subject,
                    "--text",
                    "x",
                ],
            )
            .await,
        );
        assert!(sent.contains("pending_approval"), "{sent}");
    }
    let listed = stdout(&run(home.path(), &server, &["approvals", "list"]).await);
    let ids: Vec<&str> = listed
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    assert!(listed.contains("first") && listed.contains(to), "{listed}");
    let approved = stdout(&run(home.path(), &server, &["approvals", "approve", ids[0]]).await);
    assert!(approved.contains("queued"), "{approved}");
    let rejected = stdout(&run(home.path(), &server, &["approvals", "reject", ids[1]]).await);
    assert!(rejected.contains("rejected"), "{rejected}");
    let again = run(home.path(), &server, &["approvals", "approve", ids[1]]).await;
    assert!(
        !again.status.success(),
        "a rejected message cannot be approved"
    );
    let quota = stdout(&run(home.path(), &server, &["quota", "--inbox", &inbox_id]).await);
    let quota: serde_json::Value = serde_json::from_str(&quota).unwrap();
    assert_eq!(quota["used"]["per_minute"], 1, "{quota}");
    assert_eq!(quota["limits"]["warmup_recipients_per_day"], 50);
}

/// `check bounce` reads a directory: one JSON line per failed recipient, "none" for ordinary mail.
#[test]
fn check_bounce_prints_a_line_per_recipient() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a-notice.eml"),
        "From: MAILER-DAEMON@mx.example.net\r\nTo: bot@agents.test\r\nSubject: failure notice\r\n\r\n\
         I'm afraid I wasn't able to deliver your message to the following addresses.\r\n\
         This is a permanent error; I've given up.\r\n\r\n<erin@example.net>:\r\n\
         552 5.2.2 mailbox full\r\n\r\n--- Below this line is a copy of the message.\r\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b-ordinary.eml"),
        "From: gina@example.org\r\nTo: bot@agents.test\r\nSubject: hello\r\n\r\nHi!\r\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_crabmail"))
        .args(["check", "bounce"])
        .arg(dir.path())
        .output()
        .unwrap();
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["address"], "erin@example.net");
    assert_eq!(lines[0]["status"], "5.2.2");
    assert_eq!(lines[0]["reason"], "mailboxfull");
    // A full mailbox is a permanent failure of this message, not a bad address.
    assert_eq!(
        (lines[0]["permanent"].as_bool(), lines[0]["hard"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(lines[1]["kind"], "none");
}

/// The exit code tells a script how it went: 0 delivered, 3 bounced (after `--wait`), 2 a
/// usage error, 1 anything else with one line naming what failed; a taken inbox name is said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_and_errors_tell_a_script_what_happened() {
    let server = TestServer::start().await;
    let home = tempfile::tempdir().unwrap();
    stdout(&run(home.path(), &server, &["inbox", "create", "--name", "desk"]).await);
    // Another account took "desk": this one gets another name, and is told.
    let other_home = tempfile::tempdir().unwrap();
    let other = run(
        other_home.path(),
        &server,
        &["inbox", "create", "--name", "desk"],
    )
    .await;
    let created = stdout(&other);
    assert!(created.starts_with("desk-"), "{created}");
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(stderr.contains("desk was taken"), "{stderr}");

    let send = |to: &'static str| {
        let home = home.path().to_owned();
        let server = &server;
        async move {
            run(
                &home,
                server,
                &[
                    "send",
                    "--from",
                    "desk@crabmail.localhost",
                    "--to",
                    to,
                    "--subject",
                    "exit codes",
                    "--wait",
                    "60",
                ],
            )
            .await
        }
    };
    let delivered = send("delivered@simulator.crabmail.test").await;
    assert_eq!(delivered.status.code(), Some(0), "{delivered:?}");
    let bounced = send("bounce@simulator.crabmail.test").await;
    assert_eq!(bounced.status.code(), Some(3), "{bounced:?}");
    let shown = String::from_utf8_lossy(&bounced.stdout);
    assert!(
        shown.contains("bounce@simulator.crabmail.test\tbounced"),
        "{shown}"
    );

    let usage = run(home.path(), &server, &["send", "--nonsense"]).await;
    assert_eq!(usage.status.code(), Some(2));

    let missing = run(
        home.path(),
        &server,
        &["read", "msg_00000000000000000000000000000000"],
    )
    .await;
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not found"), "{stderr}");

    // An operator command away from the server's data directory makes no store of its own.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_crabmail"))
        .args(["queue", "list"])
        .current_dir(elsewhere.path())
        .env_remove("CRABMAIL_DATA_DIR")
        .env_remove("CRABMAIL_DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no crabmail store at"),
        "{out:?}"
    );
    assert!(!elsewhere.path().join("crabmail-data").exists());
}

/// The operator's account commands against a running server's store: list accounts and inboxes
/// with usage, disable (tokens stop working, mail still arrives), enable, reset the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_lists_disables_and_resets_accounts() {
    let server = TestServer::start().await;
    let created = server.client(None).create_account(None).await.unwrap();
    let account = created.account_id.clone();
    let client = server.client(Some(created.token.clone()));
    let inbox = client
        .create_inbox(&crabmail_api::CreateInbox {
            name: Some("ops".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let data_dir = server.data_dir().to_str().unwrap().to_owned();
    let admin = |args: &[&str]| {
        let mut all = vec!["admin"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--data-dir", &data_dir]);
        let all: Vec<String> = all.iter().map(|s| s.to_string()).collect();
        let (home, server) = (home.path().to_owned(), &server);
        async move {
            let args: Vec<&str> = all.iter().map(String::as_str).collect();
            run(&home, server, &args).await
        }
    };

    let listed = stdout(&admin(&["accounts"]).await);
    let row = listed
        .lines()
        .find(|l| l.starts_with(&account))
        .unwrap_or_else(|| panic!("{listed}"));
    let cells: Vec<&str> = row.split('\t').collect();
    assert_eq!((cells[2], cells[3], cells[6]), ("-", "1", "1"), "{row}");
    let inboxes = stdout(&admin(&["inboxes", &account]).await);
    assert!(inboxes.starts_with(&format!("ops@crabmail.localhost\t{}", inbox.id)));

    stdout(&admin(&["disable", &account]).await);
    let refused = client.list_inboxes().await.unwrap_err();
    assert_eq!(refused.status(), Some(401));
    // Mail to a disabled account's inbox is still accepted.
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO client.example.test", "250").await;
    let reply = smtp
        .send_mail(
            "ann@example.test",
            &["ops@crabmail.localhost"],
            "Subject: while disabled\r\n\r\nkept\r\n",
        )
        .await;
    assert!(reply.text().starts_with("250"), "{}", reply.text());
    stdout(&admin(&["enable", &account]).await);
    let list = client
        .list_messages(&inbox.id, None, Some(10), Some(30))
        .await
        .unwrap();
    assert_eq!(list.messages.len(), 1);

    let reset = admin(&["reset-token", &account]).await;
    let new_token = stdout(&reset).trim().to_owned();
    assert!(new_token.starts_with("cm_"), "{new_token}");
    assert_eq!(
        client.list_inboxes().await.unwrap_err().status(),
        Some(401),
        "the old token is revoked"
    );
    let renewed = server.client(Some(new_token));
    assert_eq!(renewed.list_inboxes().await.unwrap().inboxes.len(), 1);

    let missing = admin(&["disable", "acc_00000000000000000000000000000000"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no account"));
}
