//! The real binary, killed with SIGKILL while clients are sending: every message answered with 250
//! must be readable after a restart, exactly once. Then SIGTERM: a clean, orderly stop.

use crabmail_testkit::{
    Backend, RecordingMx, Smtp, SmtpSink, Zone, on_both_backends, pg_schema_url,
};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;

struct Process {
    child: Child,
    api: SocketAddr,
    mx: SocketAddr,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `crabmail serve` on ephemeral ports and reads them from its "serving" log line.
fn spawn_with(data_dir: &std::path::Path, database_url: &str, settings: &[String]) -> Process {
    spawn_logging(data_dir, database_url, settings, None)
}

/// `spawn_with`, and every later log line sent to `log`.
fn spawn_logging(
    data_dir: &std::path::Path,
    database_url: &str,
    settings: &[String],
    log: Option<mpsc::UnboundedSender<String>>,
) -> Process {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crabmail"))
        .args([
            "serve",
            "--api-listen",
            "127.0.0.1:0",
            "--mx-listen",
            "127.0.0.1:0",
            "--submission-listen",
            "127.0.0.1:0",
            "--submissions-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .args(["--database-url", database_url])
        .args(
            settings
                .iter()
                .flat_map(|s| ["--set".to_owned(), s.clone()]),
        )
        .env("CRABMAIL_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start crabmail");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let serving = loop {
        let line = lines
            .next()
            .expect("crabmail exited before serving")
            .expect("read log");
        if line.contains("crabmail is serving") {
            break line;
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in lines {
            if let (Ok(line), Some(log)) = (line, &log) {
                let _ = log.send(line);
            }
        }
    });
    let addr = |key: &str| -> SocketAddr {
        let start = serving.find(&format!("{key}=")).expect("address in log") + key.len() + 1;
        serving[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .expect("socket address")
    };
    Process {
        api: addr("api"),
        mx: addr("mx"),
        child,
    }
}

/// `count` clients send to `rcpt` at `mx` as fast as they can, pipelined as real clients do,
/// until `stop`; each subject answered with 250 is reported on the channel. After a kill the
/// connection just ends, and a message without its 250 was never acknowledged.
fn start_senders(
    mx: SocketAddr,
    rcpt: &'static str,
    count: usize,
    stop: Arc<AtomicBool>,
) -> (
    Vec<tokio::task::JoinHandle<()>>,
    mpsc::UnboundedReceiver<String>,
) {
    let (accepted_tx, accepted_rx) = mpsc::unbounded_channel::<String>();
    let senders = (0..count)
        .map(|c| {
            let (tx, stop) = (accepted_tx.clone(), stop.clone());
            tokio::spawn(async move {
                let mut smtp = Smtp::connect(mx).await;
                smtp.cmd("EHLO client.test", "250").await;
                let transaction =
                    format!("MAIL FROM:<a@example.test>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n");
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let subject = format!("c{c}n{n}");
                    smtp.write_raw(transaction.as_bytes()).await;
                    for expected in [250, 250, 354] {
                        match smtp.try_read_reply().await {
                            Some(reply) if reply.code == expected => {}
                            _ => return,
                        }
                    }
                    smtp.write_raw(format!("Subject: {subject}\r\n\r\nbody\r\n.\r\n").as_bytes())
                        .await;
                    match smtp.try_read_reply().await {
                        Some(reply) if reply.code == 250 => {
                            let _ = tx.send(subject);
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    (senders, accepted_rx)
}

/// A new account on the server at `api` and an inbox `name` in it.
async fn mailbox_on(
    api: SocketAddr,
    name: &str,
) -> (crabmail_api::client::Client, crabmail_api::Inbox) {
    let url = format!("http://{api}");
    let signup = crabmail_api::client::Client::new(&url, None)
        .create_account(None)
        .await
        .unwrap();
    let client = crabmail_api::client::Client::new(&url, Some(signup.token));
    let inbox = client
        .create_inbox(&crabmail_api::CreateInbox {
            name: Some(name.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    (client, inbox)
}

/// Once `at_least` messages were acknowledged, kill -9 in the middle of the stream; returns every
/// subject acknowledged before the kill.
async fn kill_under_load(
    process: &mut Process,
    at_least: usize,
    (senders, mut accepted): (
        Vec<tokio::task::JoinHandle<()>>,
        mpsc::UnboundedReceiver<String>,
    ),
    stop: Arc<AtomicBool>,
) -> HashSet<String> {
    let mut acknowledged = HashSet::new();
    while acknowledged.len() < at_least {
        acknowledged.insert(accepted.recv().await.expect("senders stopped early"));
    }
    process.child.kill().expect("SIGKILL");
    process.child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    for sender in senders {
        sender.await.unwrap();
    }
    while let Ok(subject) = accepted.try_recv() {
        acknowledged.insert(subject);
    }
    acknowledged
}

/// Every subject the inbox lists, following the cursor with long-polls of `wait` seconds until
/// one comes back empty; a subject listed twice fails the test.
async fn listed_once(
    client: &crabmail_api::client::Client,
    inbox: &str,
    wait: u32,
) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut cursor = "0".to_owned();
    loop {
        let page = client
            .list_messages(inbox, Some(&cursor), Some(100), Some(wait))
            .await
            .unwrap();
        if page.messages.is_empty() {
            return seen;
        }
        for m in page.messages {
            assert!(
                seen.insert(m.content.subject.clone().unwrap()),
                "listed twice: {:?}",
                m.content.subject
            );
        }
        cursor = page.next_cursor;
    }
}

on_both_backends!(
    every_250_survives_kill_9,
    an_acceptance_killed_before_its_commit_is_not_sent_again,
    webhook_events_survive_kill_9_mid_retry
);

async fn every_250_survives_kill_9(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database_url = match backend {
        Backend::Sqlite => String::new(),
        Backend::Postgres => pg_schema_url().await,
    };
    let dns = Zone::new().serve().await;
    let settings = vec![format!("dns.nameservers=[\"{}\"]", dns.addr)];
    let mut server = spawn_with(dir.path(), &database_url, &settings);
    let (client, inbox) = mailbox_on(server.api, "durable").await;

    // Four clients send as fast as they can; each 250 is reported on the channel.
    let stop = Arc::new(AtomicBool::new(false));
    let senders = start_senders(server.mx, "durable@crabmail.localhost", 4, stop.clone());
    let acknowledged = kill_under_load(&mut server, 150, senders, stop).await;

    let restarted = spawn_with(dir.path(), &database_url, &settings);
    let client = crabmail_api::client::Client::new(
        &format!("http://{}", restarted.api),
        client.token().map(str::to_owned),
    );
    let seen = listed_once(&client, &inbox.id, 5).await;
    let lost: Vec<_> = acknowledged.difference(&seen).collect();
    assert!(
        lost.is_empty(),
        "answered 250 but lost after kill -9: {lost:?}"
    );
    drop(restarted);
}

#[tokio::test]
async fn sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let dns = Zone::new().serve().await;
    let settings = vec![format!("dns.nameservers=[\"{}\"]", dns.addr)];
    let mut server = spawn_with(dir.path(), "", &settings);
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO client.test", "250").await;
    let pid = server.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    smtp.expect("421 4.3.2").await;
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "exit status {exit:?}");
}

/// Mail queued for an unreachable MX, the server killed with SIGKILL, the MX back, the server
/// restarted: every message is delivered, exactly once (counted at the sink).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_mail_survives_kill_9_and_is_delivered_exactly_once() {
    const N: usize = 20;
    let port = std::net::TcpListener::bind("127.0.0.10:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dns = Zone::new()
        .mx("far.test", 10, "mx.far.test")
        .a("mx.far.test", "127.0.0.10")
        .serve()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let settings = vec![
        format!("dns.nameservers=[\"{}\"]", dns.addr),
        format!("delivery.mx_port={port}"),
        "queue.retry=[\"1s\"]".to_owned(),
        "delivery.connect_timeout=\"1s\"".to_owned(),
    ];
    let server = spawn_with(dir.path(), "", &settings);
    let url = format!("http://{}", server.api);
    let signup = crabmail_api::client::Client::new(&url, None)
        .create_account(None)
        .await
        .unwrap();
    let client = crabmail_api::client::Client::new(&url, Some(signup.token.clone()));
    let inbox = client
        .create_inbox(&crabmail_api::CreateInbox {
            name: Some("sender".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..N {
        let sent = client
            .send_message(
                &inbox.id,
                &crabmail_api::SendMessage {
                    to: crabmail_api::AddressList::One("far@far.test".into()),
                    subject: Some(format!("queued {n}")),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
        ids.push(sent.id);
    }
    // Every message has been tried once and deferred: they sit in the queue.
    let mut deferred = std::collections::HashSet::new();
    let mut cursor = "0".to_owned();
    while deferred.len() < N {
        let page = client.list_events(Some(&cursor), Some(60)).await.unwrap();
        assert!(!page.events.is_empty(), "only {} deferrals", deferred.len());
        for e in page
            .events
            .into_iter()
            .filter(|e| e.kind == "message.deferred")
        {
            deferred.insert(e.message_id.unwrap());
        }
        cursor = page.next_cursor;
    }
    drop(server); // SIGKILL
    let sink = SmtpSink::start(format!("127.0.0.10:{port}").parse().unwrap(), &[]).await;
    let restarted = spawn_with(dir.path(), "", &settings);
    let client =
        crabmail_api::client::Client::new(&format!("http://{}", restarted.api), Some(signup.token));
    let mut delivered = std::collections::HashSet::new();
    while delivered.len() < N {
        let page = client.list_events(Some(&cursor), Some(60)).await.unwrap();
        assert!(
            !page.events.is_empty(),
            "only {} delivered after the restart",
            delivered.len()
        );
        for e in page
            .events
            .into_iter()
            .filter(|e| e.kind == "message.delivered")
        {
            assert!(delivered.insert(e.message_id.unwrap()), "delivered twice");
        }
        cursor = page.next_cursor;
    }
    let mut subjects: Vec<String> = sink
        .received()
        .iter()
        .filter_map(|d| {
            d.message
                .lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
        })
        .collect();
    subjects.sort();
    let mut want: Vec<String> = (0..N).map(|n| format!("queued {n}")).collect();
    want.sort();
    assert_eq!(subjects, want, "each message exactly once at the sink");
}

/// The duplicate window: the remote MX has accepted the message, the outcome's commit is held
/// back by a test transaction, and the server is killed with SIGKILL. After the restart the
/// delivery journal records the acceptance instead of sending again: the sender sees
/// `message.delivered` and the MX has the message once.
async fn an_acceptance_killed_before_its_commit_is_not_sent_again(backend: Backend) {
    let database_url = match backend {
        Backend::Sqlite => String::new(),
        Backend::Postgres => pg_schema_url().await,
    };
    // The MX holds its 250 until the test has taken the lock the outcome's commit needs.
    let mut mx = RecordingMx::holding("127.0.0.11").await;
    let dns = Zone::new()
        .mx("far.test", 10, "mx.far.test")
        .a("mx.far.test", "127.0.0.11")
        .serve()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let settings = vec![
        format!("dns.nameservers=[\"{}\"]", dns.addr),
        format!("delivery.mx_port={}", mx.port),
    ];
    let (log, mut lines) = mpsc::unbounded_channel();
    let mut server = spawn_logging(dir.path(), &database_url, &settings, Some(log));
    let (client, inbox) = mailbox_on(server.api, "sender").await;
    let sent = client
        .send_message(
            &inbox.id,
            &crabmail_api::SendMessage {
                to: crabmail_api::AddressList::One("far@far.test".into()),
                subject: Some("only once".into()),
                text: Some("hello".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let within = std::time::Duration::from_secs(30);
    let first = tokio::time::timeout(within, mx.received.recv()).await;
    assert!(
        matches!(first, Ok(Some(_))),
        "the message never reached the MX"
    );
    let blocker = CommitBlocker::hold(dir.path(), &database_url).await;
    mx.release();
    // The queue logs the attempt after journaling the 250, then waits on the lock to commit it.
    let logged = tokio::time::timeout(within, async {
        while let Some(line) = lines.recv().await {
            if line.contains("queue: delivery attempt") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(logged, Ok(true), "the MX's 250 was never read");
    server.child.kill().expect("SIGKILL");
    server.child.wait().unwrap();
    blocker.release().await;

    let restarted = spawn_with(dir.path(), &database_url, &settings);
    let client = crabmail_api::client::Client::new(
        &format!("http://{}", restarted.api),
        client.token().map(str::to_owned),
    );
    let mut cursor = "0".to_owned();
    'delivered: loop {
        let page = client.list_events(Some(&cursor), Some(30)).await.unwrap();
        assert!(
            !page.events.is_empty(),
            "no delivered event after the restart"
        );
        for e in &page.events {
            if e.kind == "message.delivered" && e.message_id.as_deref() == Some(&sent.id) {
                break 'delivered;
            }
        }
        cursor = page.next_cursor;
    }
    // A second delivery would have reached the MX before its outcome (the event) was recorded.
    let mut copies = 1;
    while mx.received.try_recv().is_ok() {
        copies += 1;
    }
    assert_eq!(
        copies, 1,
        "the message reached the MX again after the restart"
    );
}

/// Keeps the server from committing anything to the store: a transaction holding SQLite's one
/// write lock, or PostgreSQL's lock on the attempts table (an outcome's commit needs it).
enum CommitBlocker {
    Postgres(sqlx::PgConnection),
    Sqlite(rusqlite::Connection),
}

impl CommitBlocker {
    async fn hold(data_dir: &std::path::Path, database_url: &str) -> CommitBlocker {
        use sqlx::Connection;
        if database_url.is_empty() {
            let conn = rusqlite::Connection::open(data_dir.join("crabmail.sqlite3")).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .unwrap();
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            return CommitBlocker::Sqlite(conn);
        }
        let mut conn = sqlx::PgConnection::connect(database_url).await.unwrap();
        sqlx::raw_sql("BEGIN; LOCK TABLE attempts IN EXCLUSIVE MODE")
            .execute(&mut conn)
            .await
            .unwrap();
        CommitBlocker::Postgres(conn)
    }

    async fn release(self) {
        match self {
            CommitBlocker::Postgres(mut conn) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
            }
            CommitBlocker::Sqlite(conn) => conn.execute_batch("ROLLBACK").unwrap(),
        }
    }
}

/// Two nodes share PostgreSQL. Node B accepts mail but cannot finish analysing it (its external
/// classifier never answers), and is killed with SIGKILL under load. Node A, which never saw the
/// mail, takes B's ingest jobs over once their lease ends: every message B answered with 250 is
/// listed through A, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_accepted_mail_is_taken_over() {
    let database_url = pg_schema_url().await;
    let dns = Zone::new().serve().await;
    // B's classifier: accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let classifier = format!("http://{}/score", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((tcp, _)) = silent.accept().await {
            open.push(tcp);
        }
    });
    let common = vec![
        format!("dns.nameservers=[\"{}\"]", dns.addr),
        "ingest.lease=\"2s\"".to_owned(),
    ];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let node_a = spawn_with(dir_a.path(), &database_url, &common);
    let mut b_settings = common.clone();
    b_settings.push(format!("scoring.classifier_url=\"{classifier}\""));
    b_settings.push("scoring.classifier_timeout=\"60s\"".to_owned());
    let mut node_b = spawn_with(dir_b.path(), &database_url, &b_settings);

    let (client, inbox) = mailbox_on(node_a.api, "shared").await;
    let stop = Arc::new(AtomicBool::new(false));
    let senders = start_senders(node_b.mx, "shared@crabmail.localhost", 3, stop.clone());
    let acknowledged = kill_under_load(&mut node_b, 100, senders, stop).await;

    // Node A lists them all once B's leases end (a long-poll of up to 10 s at a time).
    let seen = listed_once(&client, &inbox.id, 10).await;
    let lost: Vec<_> = acknowledged.difference(&seen).collect();
    assert!(
        lost.is_empty(),
        "acknowledged by the dead node, never listed by the live one: {lost:?}"
    );
    held.abort();
    drop(node_a);
}

/// A webhook endpoint that is down, then answers 500, then 200, while crabmail is killed with
/// SIGKILL between retries: after the restart the endpoint gets every event, once, in order,
/// each signature checked by the Standard Webhooks reference libraries.
async fn webhook_events_survive_kill_9_mid_retry(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database_url = match backend {
        Backend::Sqlite => String::new(),
        Backend::Postgres => pg_schema_url().await,
    };
    let dns = Zone::new().serve().await;
    let settings = vec![
        format!("dns.nameservers=[\"{}\"]", dns.addr),
        "webhooks.allow_private=true".to_owned(),
        format!("webhooks.retry_schedule=[{}]", ["\"1s\""; 12].join(",")),
    ];
    // The endpoint's port, with nothing listening yet: the endpoint is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = spawn_with(dir.path(), &database_url, &settings);
    let (client, inbox) = mailbox_on(server.api, "hooked").await;
    let hook = client
        .create_webhook(&crabmail_api::CreateWebhook {
            url: format!("http://127.0.0.1:{port}/hook"),
            ..Default::default()
        })
        .await
        .unwrap();
    for n in 0..3 {
        let note = crabmail_api::SendMessage {
            to: crabmail_api::AddressList::One(inbox.address.clone()),
            subject: Some(format!("note {n}")),
            text: Some("to myself".into()),
            ..Default::default()
        };
        client.send_message(&inbox.id, &note, None).await.unwrap();
    }
    // Two refused attempts: the first event waits for its third.
    let log = client
        .wait_for_webhook_deliveries(&hook.id, 2, 30)
        .await
        .unwrap()
        .deliveries;
    assert!(log.len() >= 2, "two refused attempts within 30 s");
    assert!(
        log.iter()
            .all(|d| d.outcome == "retrying" && d.status_code.is_none())
    );
    server.child.kill().expect("SIGKILL");
    server.child.wait().unwrap();

    let receiver = crabmail_testkit::WebhookReceiver::start_on(port, "500\n200");
    let restarted = spawn_with(dir.path(), &database_url, &settings);
    let client = crabmail_api::client::Client::new(
        &format!("http://{}", restarted.api),
        client.token().map(str::to_owned),
    );
    let events = client.list_events(None, None).await.unwrap().events;
    assert_eq!(events.len(), 6, "three sent, three received");
    // One 500, then the six events.
    receiver
        .wait_for(7, std::time::Duration::from_secs(60))
        .await;
    let got = receiver.verified(hook.secret.as_deref().unwrap());
    assert_eq!(got[0].answer, 500);
    let accepted: Vec<&str> = got
        .iter()
        .filter(|r| r.answer == 200)
        .map(|r| r.id.as_str())
        .collect();
    let expected: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(accepted, expected, "every event once, in order");
    // The receiver logs a request before it answers; crabmail records the answer after.
    // Follow the delivery log until the last event's delivery is in it.
    let mut seen = 0;
    loop {
        let log = client
            .wait_for_webhook_deliveries(&hook.id, seen + 1, 30)
            .await
            .unwrap()
            .deliveries;
        assert!(log.len() > seen, "no attempt recorded within 30 s: {log:?}");
        seen = log.len();
        let last = events[5].seq;
        if log
            .iter()
            .any(|d| d.event_seq == last && d.outcome == "delivered")
        {
            break;
        }
    }
    assert_eq!(
        client.get_webhook(&hook.id).await.unwrap().cursor,
        events[5].seq,
        "the cursor at the last event"
    );
    assert_eq!(receiver.count(), 7, "nothing sent twice");
    drop(restarted);
}
