//! `GET /metrics` as Prometheus reads it: the exposition parsed by the reference parser
//! (`prometheus_client`, PyPI), with figures that follow what the server did; and only for the
//! networks `api.metrics_from` names.

use crabmail_api::{AddressList, SendMessage};
use crabmail_testkit::{Backend, Smtp, TestServer};
use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

/// Every sample, as `name{label="value",...}` -> value (labels sorted).
fn parse(text: &str) -> HashMap<String, f64> {
    let mut child = Command::new("python3")
        .arg(crabmail_testkit::python_script("prometheus_parse.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut samples = HashMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let mut labels: Vec<String> = v["labels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap()))
            .collect();
        labels.sort();
        let key = format!("{}{{{}}}", v["name"].as_str().unwrap(), labels.join(","));
        samples.insert(key, v["value"].as_f64().unwrap());
    }
    samples
}

async fn scrape(server: &TestServer) -> reqwest::Response {
    reqwest::get(format!("{}/metrics", server.url()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_what_the_server_did() {
    let server = TestServer::start_with(Backend::Sqlite, &[]).await;
    let (client, inbox) = server.mailbox("metered").await;

    // One message in by the MX, one out by the API (to the test-mode domain), one refused RCPT.
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO client.example.test", "250").await;
    smtp.cmd("RCPT TO:<x@crabmail.localhost>", "503").await;
    let reply = smtp
        .send_mail(
            "ann@example.test",
            &[inbox.address.as_str()],
            "Subject: counted\r\n\r\nhello\r\n",
        )
        .await;
    assert!(reply.text().starts_with("250"), "{}", reply.text());
    client
        .list_messages(&inbox.id, None, Some(1), Some(30))
        .await
        .unwrap();
    let sent = client
        .send_message(
            &inbox.id,
            &SendMessage {
                to: AddressList::One("delivered@simulator.crabmail.test".into()),
                subject: Some("counted too".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    crabmail_testkit::event(&client, "message.delivered", Some(&sent.id), None).await;

    let response = scrape(&server).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let m = parse(&response.text().await.unwrap());
    let get = |key: &str| m.get(key).copied().unwrap_or(0.0);
    assert!(
        get("crabmail_smtp_sessions_total{role=\"mx\"}") >= 1.0,
        "{m:?}"
    );
    assert!(get("crabmail_smtp_replies_total{code=\"503\",role=\"mx\"}") >= 1.0);
    assert!(get("crabmail_smtp_replies_total{code=\"250\",role=\"mx\"}") >= 3.0);
    assert!(get("crabmail_messages_accepted_total{path=\"mx\"}") >= 1.0);
    assert!(get("crabmail_messages_accepted_total{path=\"api\"}") >= 1.0);
    assert!(get("crabmail_deliveries_total{outcome=\"delivered\"}") >= 1.0);
    assert!(get("crabmail_ingest_analysis_seconds_count{}") >= 1.0);
    // The API's latency by route template, never by the id a client wrote.
    let send_route = "crabmail_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/inboxes/{id}/messages\",status=\"2xx\"}";
    assert!(get(send_route) >= 1.0, "{m:?}");
    assert!(!m.keys().any(|k| k.contains(&inbox.id)), "{m:?}");
    // Nothing waits: the queue and ingest are empty.
    assert_eq!(get("crabmail_queue_recipients{}"), 0.0);
    assert_eq!(get("crabmail_ingest_backlog{}"), 0.0);
}

#[tokio::test]
async fn metrics_are_only_for_the_networks_allowed() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        &[("api.metrics_from", r#"["10.0.0.0/8"]"#)],
    )
    .await;
    assert_eq!(scrape(&server).await.status(), 404);
}
