//! MCP, judged by the clients agents use: the official Python SDK (PyPI `mcp`) and TypeScript SDK
//! (npm `@modelcontextprotocol/sdk`), each over stdio (`crabmail mcp`, signing up by itself) and
//! over Streamable HTTP (`/mcp` with a token). Each lists the tools, creates an inbox, sends to
//! it twice with one idempotency key (it is sent once), waits for it, reads it in the safe view,
//! and asks for a message that does not exist.

use crabmail_testkit::{Backend, TestServer, node_script, python_script};
use serde_json::Value;
use std::path::Path;
use tokio::process::Command;

const TOOLS: [&str; 16] = [
    "create_inbox",
    "list_inboxes",
    "delete_inbox",
    "list_messages",
    "get_message",
    "wait_for_message",
    "wait_for_code",
    "send_message",
    "reply_to_message",
    "forward_message",
    "list_threads",
    "get_thread",
    "get_attachment",
    "get_delivery_status",
    "list_events",
    "get_account",
];

#[derive(Clone, Copy, Debug)]
enum Sdk {
    Python,
    TypeScript,
}

/// Runs the SDK's agent script with `args` and returns its report.
async fn agent(sdk: Sdk, args: &[&str]) -> Value {
    let mut command = match sdk {
        Sdk::Python => {
            let mut c = Command::new("python3");
            c.arg(python_script("mcp_client.py"));
            c
        }
        Sdk::TypeScript => {
            let mut c = Command::new("node");
            c.arg(node_script("mcp_client.mjs"));
            c
        }
    };
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        command.args(args).kill_on_drop(true).output(),
    )
    .await
    .expect("the agent finished within 120 s")
    .expect("run the agent");
    assert!(
        out.status.success(),
        "{sdk:?} agent failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}

/// What every client must have seen, whatever the SDK and transport.
fn check(report: &Value, sdk: Sdk, text: &str) {
    let tools = report["tools"].as_object().expect("tools");
    let mut names: Vec<&str> = tools.keys().map(String::as_str).collect();
    names.sort();
    let mut expected = TOOLS.to_vec();
    expected.sort();
    assert_eq!(names, expected);
    for (name, tool) in tools {
        assert_eq!(tool["has_output_schema"], true, "{name}");
        for hint in ["read_only", "destructive", "idempotent"] {
            assert!(tool[hint].is_boolean(), "{name} declares {hint}");
        }
    }
    for sending in ["send_message", "reply_to_message", "forward_message"] {
        assert_eq!(tools[sending]["read_only"], false);
        assert_eq!(tools[sending]["idempotent"], true, "with its required key");
    }
    assert_eq!(tools["delete_inbox"]["destructive"], true);
    for reading in [
        "list_messages",
        "get_message",
        "wait_for_message",
        "wait_for_code",
    ] {
        assert_eq!(tools[reading]["read_only"], true);
        let description = tools[reading]["description"].as_str().unwrap();
        assert!(
            description.contains("untrusted"),
            "{reading}: {description}"
        );
    }

    // The same idempotency key twice: one message.
    assert_eq!(
        report["first_send"]["message_id"],
        report["second_send"]["message_id"]
    );
    assert_eq!(report["listed"], 1, "{sdk:?}: sent once");
    assert_eq!(report["delivery"]["status"], "delivered");
    let waited = &report["waited"];
    assert_eq!(waited["found"], true);
    assert!(
        waited["untrusted_content"]
            .as_str()
            .unwrap()
            .contains("never as instructions")
    );
    let read = &report["read"];
    assert_eq!(read["risk_level"], "low");
    let safe = read["message"]["safe_text"].as_str().unwrap();
    assert!(
        safe.contains("UNTRUSTED EMAIL") && safe.contains(text),
        "{safe}"
    );
    assert_eq!(report["missing"]["is_error"], true);
    assert!(
        report["missing"]["text"][0]
            .as_str()
            .unwrap()
            .starts_with("404 not_found")
    );
}

async fn over_stdio(sdk: Sdk, text: &str) {
    let server = TestServer::start_with(Backend::Sqlite, &[]).await;
    let home = tempfile::tempdir().unwrap();
    let url = server.url();
    let home_path = home.path().to_str().unwrap();
    let report = agent(
        sdk,
        &["stdio", env!("CARGO_BIN_EXE_crabmail"), &url, home_path],
    )
    .await;
    check(&report, sdk, text);
    // It signed up by itself and kept its token where the CLI keeps it.
    let token = std::fs::read_to_string(Path::new(home_path).join(".crabmail/token")).unwrap();
    let inboxes = server.client(Some(token)).list_inboxes().await.unwrap();
    assert_eq!(
        inboxes.inboxes[0].id,
        report["inbox"]["id"].as_str().unwrap()
    );
}

async fn over_http(sdk: Sdk, text: &str) {
    let server = TestServer::start_with(Backend::Sqlite, &[]).await;
    let client = server.signup().await;
    let token = client.token().unwrap().to_owned();
    let report = agent(sdk, &["http", &format!("{}/mcp", server.url()), &token]).await;
    check(&report, sdk, text);
    if let Sdk::Python = sdk {
        // An attachment by upload id arrived with the message.
        assert_eq!(report["attached"], serde_json::json!(["report.csv"]));
    }
    let inboxes = client.list_inboxes().await.unwrap();
    assert_eq!(
        inboxes.inboxes[0].id,
        report["inbox"]["id"].as_str().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_uses_every_verb_over_stdio() {
    over_stdio(Sdk::Python, "ping from the python sdk").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_uses_every_verb_over_http() {
    over_http(Sdk::Python, "ping from the python sdk").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_uses_every_verb_over_stdio() {
    over_stdio(Sdk::TypeScript, "ping from the typescript sdk").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_uses_every_verb_over_http() {
    over_http(Sdk::TypeScript, "ping from the typescript sdk").await;
}

#[tokio::test]
async fn mcp_over_http_needs_a_valid_token() {
    let server = TestServer::start_with(Backend::Sqlite, &[]).await;
    let http = reqwest::Client::new();
    let initialize = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    for token in [None, Some("tok_not_a_real_token")] {
        let mut request = http
            .post(format!("{}/mcp", server.url()))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(initialize);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{token:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
}
