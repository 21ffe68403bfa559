//! Connections per destination against a remote that serves one message at a time (one worker
//! behind its SMTP front, as a small MTA with a single content filter): the deliverer learns that
//! more connections only queue our mail there, each message inside the window where a crash
//! sends it twice, and keeps few; with the limit fixed at 20 the same remote holds many of ours.

use crabmail_api::client::Client;
use crabmail_api::{AddressList, CreateInbox, SendMessage};
use crabmail_testkit::{Backend, TestServer, Zone};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Mutex, mpsc};

const MESSAGES: usize = 200;

/// A remote MX whose single worker takes `work` per message; for each message it answers, how
/// many of the sender's dots were waiting there (this one included) when it arrived.
struct OneAtATime {
    port: u16,
    depths: mpsc::UnboundedReceiver<usize>,
}

impl OneAtATime {
    async fn start(ip: &str, work: Duration) -> OneAtATime {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, depths) = mpsc::unbounded_channel();
        let worker = Arc::new(Mutex::new(()));
        let waiting = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(session(
                    tcp,
                    tx.clone(),
                    worker.clone(),
                    waiting.clone(),
                    work,
                ));
            }
        });
        OneAtATime { port, depths }
    }
}

async fn session(
    tcp: tokio::net::TcpStream,
    depths: mpsc::UnboundedSender<usize>,
    worker: Arc<Mutex<()>>,
    waiting: Arc<AtomicUsize>,
    work: Duration,
) {
    let (read, mut write) = tcp.into_split();
    let mut read = BufReader::new(read);
    let _ = write.write_all(b"220 one.test ESMTP\r\n").await;
    let mut line = String::new();
    loop {
        line.clear();
        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "DATA" => {
                let _ = write.write_all(b"354 go\r\n").await;
                let mut data = Vec::new();
                let mut chunk = [0u8; 4096];
                while !data.ends_with(b"\r\n.\r\n") {
                    match read.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&chunk[..n]),
                    }
                }
                let depth = waiting.fetch_add(1, Ordering::SeqCst) + 1;
                {
                    let _turn = worker.lock().await;
                    // The worker's time on this message (what the remote does before its 250).
                    tokio::time::sleep(work).await;
                }
                waiting.fetch_sub(1, Ordering::SeqCst);
                let _ = depths.send(depth);
                b"250 2.0.0 kept\r\n"
            }
            "QUIT" => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => b"250 ok\r\n",
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// Sends MESSAGES messages to one.test (served by `mx`) all at once, and returns the depth at
/// which each arrived, in order of answer.
async fn depths_seen(ip: &str, settings: &[(&str, &str)]) -> Vec<usize> {
    let mut mx = OneAtATime::start(ip, Duration::from_millis(5)).await;
    let dns = Zone::new()
        .mx("one.test", 10, "mx.one.test")
        .a("mx.one.test", ip)
        .serve()
        .await;
    let (k, v) = dns.setting();
    let port = mx.port.to_string();
    let mut all: Vec<(&str, &str)> = vec![(&k, &v), ("delivery.mx_port", &port)];
    // A bulk send from a new inbox: the quotas and the warm-up ramp are off.
    all.extend_from_slice(&[
        ("limits.inbox.per_minute", "0"),
        ("limits.inbox.per_hour", "0"),
        ("limits.account.per_minute", "0"),
        ("limits.warmup.start", "0"),
    ]);
    all.extend_from_slice(settings);
    let server = TestServer::start_with(Backend::Sqlite, &all).await;
    let client = server.signup().await;
    let inbox = client
        .create_inbox(&CreateInbox {
            name: Some("bulk".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    let sends = (0..MESSAGES).map(|i| send(&client, &inbox, i));
    futures::future::join_all(sends).await;
    let mut depths = Vec::with_capacity(MESSAGES);
    while depths.len() < MESSAGES {
        let depth = tokio::time::timeout(Duration::from_secs(60), mx.depths.recv())
            .await
            .expect("every message reaches the remote within 60 s")
            .expect("the remote runs");
        depths.push(depth);
    }
    depths
}

async fn send(client: &Client, inbox: &str, i: usize) {
    client
        .send_message(
            inbox,
            &SendMessage {
                to: AddressList::One(format!("user{i}@one.test")),
                text: Some("report".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
}

/// How many of our dots waited at the remote, on average, when each of the last third of the
/// deliveries arrived (the first ones are sent before anything is known of the remote).
fn late_mean(depths: &[usize]) -> f64 {
    let late = &depths[depths.len() * 2 / 3..];
    late.iter().sum::<usize>() as f64 / late.len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_that_serves_one_at_a_time_gets_few_connections() {
    let adaptive = depths_seen("127.0.0.41", &[]).await;
    let mean = late_mean(&adaptive);
    assert!(
        mean <= 4.0,
        "about 2 of ours should wait at a one-worker remote once the deliverer has learnt it; {mean:.1} did ({adaptive:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_limit_fixed_the_same_remote_holds_many_of_ours() {
    // The control: the same load with the count fixed at Postfix's 20 queues many at the
    // remote, so the test above would fail without the adaptive limit.
    let fixed = depths_seen("127.0.0.42", &[("queue.min_per_destination", "20")]).await;
    let mean = late_mean(&fixed);
    assert!(mean > 8.0, "{mean:.1} ({fixed:?})");
}
