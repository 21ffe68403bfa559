//! `GET /v1/events` as Server-Sent Events, read by the clients people use: `curl -N`, and a
//! WHATWG EventSource (npm `eventsource`, the browser's API) behind a connection the test cuts.
//! Either way, after a reconnect with Last-Event-ID the client has every event of the log once,
//! in order: no gap, no duplicate.

use crabmail_api::client::Client;
use crabmail_api::{AddressList, SendMessage};
use crabmail_testkit::{Backend, TestServer, node_script, on_both_backends};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdout, Command};

async fn send_to_self(client: &Client, inbox: &crabmail_api::Inbox, subject: &str) {
    let message = SendMessage {
        to: AddressList::One(inbox.address.clone()),
        subject: Some(subject.into()),
        text: Some("a note to myself".into()),
        ..Default::default()
    };
    client
        .send_message(&inbox.id, &message, None)
        .await
        .unwrap();
}

/// The seqs of the account's whole event log once it holds `count` events.
async fn log_seqs(client: &Client, count: usize) -> Vec<i64> {
    let mut seqs = Vec::new();
    let mut cursor = "0".to_owned();
    while seqs.len() < count {
        let page = client.list_events(Some(&cursor), Some(30)).await.unwrap();
        assert!(!page.events.is_empty(), "the log stopped at {seqs:?}");
        seqs.extend(page.events.iter().map(|e| e.seq));
        cursor = page.next_cursor;
    }
    seqs
}

/// Reads SSE frames from curl's output: the `id:` of each frame with an `event:`.
async fn next_ids(lines: &mut Lines<BufReader<ChildStdout>>, count: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut frame: (Option<i64>, bool) = (None, false);
    while ids.len() < count {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("an event within 30 s")
            .unwrap()
            .expect("the stream stayed open");
        if let Some(id) = line.strip_prefix("id:") {
            frame.0 = Some(id.trim().parse().unwrap());
        } else if line.starts_with("event:") {
            frame.1 = true;
        } else if line.is_empty() {
            if let (Some(id), true) = frame {
                ids.push(id);
            }
            frame = (None, false);
        }
    }
    ids
}

fn curl(server: &TestServer, token: &str, last_event_id: Option<i64>) -> Child {
    let mut command = Command::new("curl");
    command
        .args(["-N", "-s", "-H", "Accept: text/event-stream"])
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"));
    if let Some(id) = last_event_id {
        command.arg("-H").arg(format!("Last-Event-ID: {id}"));
    }
    command
        .arg(format!("{}/v1/events", server.url()))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("curl")
}

on_both_backends!(curl_resumes_the_stream_with_last_event_id);

async fn curl_resumes_the_stream_with_last_event_id(backend: Backend) {
    let server = TestServer::start_with(backend, &[]).await;
    let (client, inbox) = server.mailbox("stream").await;
    let token = client.token().unwrap().to_owned();
    send_to_self(&client, &inbox, "one").await;

    let mut first = curl(&server, &token, None);
    let mut lines = BufReader::new(first.stdout.take().unwrap()).lines();
    // What happened before the stream opened, then what happens while it is open.
    let mut seen = next_ids(&mut lines, 2).await;
    send_to_self(&client, &inbox, "two").await;
    seen.extend(next_ids(&mut lines, 2).await);
    first.kill().await.unwrap();

    // Gone: two more messages; back with Last-Event-ID: exactly the events missed, then live.
    send_to_self(&client, &inbox, "three").await;
    send_to_self(&client, &inbox, "four").await;
    let mut second = curl(&server, &token, seen.last().copied());
    let mut lines = BufReader::new(second.stdout.take().unwrap()).lines();
    seen.extend(next_ids(&mut lines, 4).await);
    send_to_self(&client, &inbox, "five").await;
    seen.extend(next_ids(&mut lines, 2).await);
    assert_eq!(seen, log_seqs(&client, 10).await);

    // Without a token the stream is refused like any request.
    let refused = reqwest::Client::new()
        .get(format!("{}/v1/events", server.url()))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

/// A TCP relay the test can cut: `cut` closes every connection through it and refuses new ones
/// until `restore`.
struct Relay {
    addr: SocketAddr,
    refusing: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    async fn to(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Relay {
            addr: listener.local_addr().unwrap(),
            refusing: Arc::new(AtomicBool::new(false)),
            connections: Arc::new(Mutex::new(Vec::new())),
        };
        let (refusing, connections) = (relay.refusing.clone(), relay.connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if refusing.load(Ordering::SeqCst) {
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections.lock().unwrap().push(task.abort_handle());
            }
        });
        relay
    }

    fn cut(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }
}

/// Lines from the EventSource client: "open", or an event's id.
async fn next_lines(lines: &mut Lines<BufReader<ChildStdout>>, count: usize) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < count {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("output within 30 s")
            .unwrap()
            .expect("the client kept running");
        if line == "open" {
            out.push(line);
        } else {
            let event: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(
                event["data"]["seq"].to_string(),
                event["id"].as_str().unwrap()
            );
            out.push(event["id"].as_str().unwrap().to_owned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_source_reconnects_after_a_dropped_connection_without_gaps() {
    let server = TestServer::start_with(Backend::Sqlite, &[]).await;
    let (client, inbox) = server.mailbox("browser").await;
    let api: SocketAddr = server.url().trim_start_matches("http://").parse().unwrap();
    let relay = Relay::to(api).await;
    let mut source = Command::new("node")
        .arg(node_script("sse_client.mjs"))
        .arg(format!("http://{}/v1/events", relay.addr))
        .arg(client.token().unwrap())
        .args(["message.delivered", "message.received"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let mut lines = BufReader::new(source.stdout.take().unwrap()).lines();
    assert_eq!(next_lines(&mut lines, 1).await, ["open"]);
    send_to_self(&client, &inbox, "one").await;
    let mut ids = next_lines(&mut lines, 2).await;

    // The connection drops; while the client cannot reconnect, more happens.
    relay.cut();
    send_to_self(&client, &inbox, "two").await;
    send_to_self(&client, &inbox, "three").await;
    relay.restore();
    let after = next_lines(&mut lines, 5).await;
    assert_eq!(after[0], "open", "the client reconnected by itself");
    ids.extend(after[1..].iter().cloned());
    let log: Vec<String> = log_seqs(&client, 6)
        .await
        .iter()
        .map(i64::to_string)
        .collect();
    assert_eq!(ids, log, "every event once, in order, across the reconnect");
    source.kill().await.unwrap();
}
