//! A webhook endpoint in another process (`scripts/webhook_receiver.py`): it answers as the test
//! scripts it and records every request; `verified` checks the signatures with the Standard
//! Webhooks reference libraries from PyPI and npm, so our signing is judged by code we did not
//! write.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SCRIPT: &str = include_str!("../scripts/webhook_receiver.py");

pub struct WebhookReceiver {
    pub url: String,
    dir: tempfile::TempDir,
    child: Child,
    /// How many requests the receiver has logged, as it announces them on its stdout.
    logged: tokio::sync::watch::Receiver<usize>,
}

/// One request the receiver got, as the reference library verified it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its place among the receiver's requests, from 0.
    pub n: u64,
    /// The HTTP status the receiver answered.
    pub answer: u16,
    /// `webhook-id`.
    pub id: String,
    /// The payload's `type`.
    pub kind: String,
    pub payload: serde_json::Value,
}

impl WebhookReceiver {
    /// Starts a receiver answering as `answers` says (one status per line, the last repeating).
    pub fn start(answers: &str) -> WebhookReceiver {
        WebhookReceiver::start_on(0, answers)
    }

    /// The same on a chosen port (0: any), e.g. one a webhook already points at.
    pub fn start_on(port: u16, answers: &str) -> WebhookReceiver {
        let dir = tempfile::tempdir().expect("receiver dir");
        std::fs::write(dir.path().join("receiver.py"), SCRIPT).expect("write receiver");
        std::fs::write(dir.path().join("answers"), answers).expect("write answers");
        let mut child = Command::new("python3")
            .arg(dir.path().join("receiver.py"))
            .arg("serve")
            .arg(dir.path().join("answers"))
            .arg(dir.path().join("log"))
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("receiver's port");
        let port = line
            .trim()
            .strip_prefix("listening ")
            .expect("listening <port>")
            .to_owned();
        // Each "request <count>" line moves the count; waiters wake on it.
        let (count, logged) = tokio::sync::watch::channel(0);
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("request ").and_then(|n| n.parse().ok()) {
                    count.send_replace(n);
                }
            }
        });
        WebhookReceiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            dir,
            child,
            logged,
        }
    }

    /// Changes how later requests are answered.
    pub fn answer(&self, answers: &str) {
        let path = self.dir.path().join("answers.new");
        std::fs::write(&path, answers).expect("write answers");
        std::fs::rename(&path, self.dir.path().join("answers")).expect("replace answers");
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// How many requests came so far.
    pub fn count(&self) -> usize {
        *self.logged.borrow()
    }

    /// Waits (up to `within`) until at least `n` requests came; panics otherwise.
    pub async fn wait_for(&self, n: usize, within: Duration) {
        let mut logged = self.logged.clone();
        let reached = tokio::time::timeout(within, logged.wait_for(|count| *count >= n)).await;
        assert!(
            matches!(reached, Ok(Ok(_))),
            "the receiver got {} requests, not {n}, within {within:?}",
            self.count()
        );
    }

    /// Every request so far, each signature checked by the reference library with `secret`;
    /// panics if one does not verify.
    pub fn verified(&self, secret: &str) -> Vec<Received> {
        if self.count() == 0 {
            return Vec::new();
        }
        let out = Command::new("python3")
            .arg(self.dir.path().join("receiver.py"))
            .arg("verify")
            .arg(secret)
            .arg(self.log())
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "standardwebhooks rejected a delivery: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
        // The JavaScript reference library must agree, request for request.
        let js = Command::new("node")
            .arg(crate::node_script("verify_webhooks.mjs"))
            .arg(secret)
            .arg(self.log())
            .output()
            .expect("node");
        assert!(
            js.status.success(),
            "standardwebhooks (npm) rejected a delivery: {}",
            String::from_utf8_lossy(&js.stderr)
        );
        let js_ids: Vec<String> = serde_json::from_slice(&js.stdout).expect("json");
        let py_ids: Vec<&str> = all
            .iter()
            .map(|r| r["id"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(js_ids, py_ids);
        all.into_iter()
            .map(|r| Received {
                n: r["n"].as_u64().unwrap_or_default(),
                answer: r["answer"].as_u64().unwrap_or_default() as u16,
                id: r["id"].as_str().unwrap_or_default().to_owned(),
                kind: r["type"].as_str().unwrap_or_default().to_owned(),
                payload: r["payload"].clone(),
            })
            .collect()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
