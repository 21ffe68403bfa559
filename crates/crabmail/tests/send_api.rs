//! `POST /v1/inboxes/{id}/messages`: validation naming the field, replies threaded to what the
//! inbox received, attachments, and Idempotency-Key.

use crabmail_api::client::Client;
use crabmail_api::{OutgoingAttachment, SendMessage};
use crabmail_testkit::{Smtp, TestServer};
use serde_json::{Value, json};

async fn post(
    server: &TestServer,
    client: &Client,
    inbox: &str,
    body: Value,
    key: Option<&str>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/v1/inboxes/{inbox}/messages", server.url()))
        .bearer_auth(client.token().unwrap())
        .json(&body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn invalid_requests_are_422_naming_the_field() {
    let server = TestServer::start_with(
        crabmail_testkit::Backend::Sqlite,
        &[("smtp.max_message_size", "20000")],
    )
    .await;
    let (client, inbox) = server.mailbox("agent").await;
    let many: Vec<String> = (0..51).map(|n| format!("r{n}@example.test")).collect();
    let cases = [
        (json!({"subject": "nobody"}), "to"),
        (json!({"to": "not-an-address"}), "to[0]"),
        (
            json!({"to": ["a@example.test", "b@exa mple.test"]}),
            "to[1]",
        ),
        (
            json!({"to": "a@example.test", "cc": ["x@y.test\r\nBcc: z@w.test"]}),
            "cc[0]",
        ),
        (json!({"to": many}), "to"),
        (
            json!({"to": "a@example.test", "headers": {"Bcc": "z@w.test"}}),
            "headers.Bcc",
        ),
        (
            json!({"to": "a@example.test", "headers": {"X-Ok": "a\nb"}}),
            "headers.X-Ok",
        ),
        (
            json!({"to": "a@example.test", "attachments": [{"filename": "a.bin", "content_base64": "***"}]}),
            "attachments[0].content_base64",
        ),
        (
            json!({"to": "a@example.test", "attachments": [{"filename": "a.bin", "content_type": "nope", "content_base64": "aGk="}]}),
            "attachments[0].content_type",
        ),
        (
            json!({"to": "a@example.test", "text": "x".repeat(30_000)}),
            "message",
        ),
        (
            json!({"to": "a@example.test", "in_reply_to": "msg_00000000000000000000000000000000"}),
            "in_reply_to",
        ),
    ];
    for (body, field) in cases {
        let (status, error) = post(&server, &client, &inbox.id, body.clone(), None).await;
        assert_eq!(status, 422, "{body}: {error}");
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
    }
    let (status, error) = post(
        &server,
        &client,
        &inbox.id,
        json!({"to": "a@example.test", "frm": "x"}),
        None,
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (422, Some("invalid_request"))
    );
    let missing = "inb_00000000000000000000000000000000";
    let (status, _) = post(
        &server,
        &client,
        missing,
        json!({"to": "a@example.test"}),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_other, other_inbox) = server.mailbox("someone").await;
    let (status, _) = post(
        &server,
        &client,
        &other_inbox.id,
        json!({"to": "a@example.test"}),
        None,
    )
    .await;
    assert_eq!(status, 404, "another account's inbox is not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_thread_to_the_received_message_and_carry_attachments() {
    let server = TestServer::start().await;
    let (client, inbox) = server.mailbox("agent").await;
    let (human_client, human) = server.mailbox("human").await;
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO c.test", "250").await;
    let original = format!(
        "From: Human <{h}>\r\nReply-To: <{h}>\r\nTo: {a}\r\nSubject: Need the report\r\nMessage-ID: <q1@c.test>\r\nReferences: <q0@c.test>\r\n\r\nPlease send it.\r\n",
        h = human.address,
        a = inbox.address
    );
    assert_eq!(
        smtp.send_mail(&human.address, &[&inbox.address], &original)
            .await
            .code,
        250
    );
    let received = client
        .list_messages(&inbox.id, None, None, Some(60))
        .await
        .unwrap()
        .messages
        .remove(0);
    let sent = client
        .send_message(
            &inbox.id,
            &SendMessage {
                in_reply_to: Some(received.id.clone()),
                text: Some("Here it is.".into()),
                attachments: vec![OutgoingAttachment {
                    filename: "report.csv".into(),
                    content_type: Some("text/csv".into()),
                    content_base64: Some("YSxiCjEsMgo=".into()),
                    upload_id: None,
                }],
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let reply = human_client
        .list_messages(&human.id, None, None, Some(60))
        .await
        .unwrap()
        .messages
        .remove(0);
    let full = human_client.get_message(&reply.id).await.unwrap();
    assert_eq!(full.parsed.subject.as_deref(), Some("Re: Need the report"));
    assert_eq!(full.parsed.in_reply_to, ["q1@c.test"]);
    assert_eq!(full.parsed.references, ["q0@c.test", "q1@c.test"]);
    assert_eq!(
        full.parsed.from.as_ref().unwrap().address.as_deref(),
        Some(inbox.address.as_str())
    );
    let (content_type, bytes) = human_client.get_attachment(&reply.id, 0).await.unwrap();
    assert_eq!(
        (content_type.as_str(), bytes.as_slice()),
        ("text/csv", b"a,b\n1,2\n".as_slice())
    );
    // The sender sees the same attachment on its sent copy.
    let (_, sent_bytes) = client.get_attachment(&sent.id, 0).await.unwrap();
    assert_eq!(sent_bytes, b"a,b\n1,2\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_send_once() {
    let server = TestServer::start().await;
    let (client, inbox) = server.mailbox("agent").await;
    let (reader, target) = server.mailbox("target").await;
    let body = json!({"to": target.address, "subject": "once", "text": "only once"});
    let (s1, first) = post(&server, &client, &inbox.id, body.clone(), Some("order-42")).await;
    let (s2, second) = post(&server, &client, &inbox.id, body.clone(), Some("order-42")).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(first, second, "the retry gets the first answer");
    let changed = json!({"to": target.address, "subject": "twice?", "text": "different"});
    let (s3, conflict) = post(&server, &client, &inbox.id, changed, Some("order-42")).await;
    assert_eq!(
        (s3, conflict["error"]["code"].as_str()),
        (409, Some("idempotency_conflict"))
    );
    // Another key is another message.
    let (s4, third) = post(&server, &client, &inbox.id, body, Some("order-43")).await;
    assert_eq!(s4, 202);
    assert_ne!(third["id"], first["id"]);
    let mut subjects = Vec::new();
    let mut cursor = "0".to_owned();
    while subjects.len() < 2 {
        let page = reader
            .list_messages(&target.id, Some(&cursor), None, Some(60))
            .await
            .unwrap();
        subjects.extend(
            page.messages
                .iter()
                .map(|m| m.content.subject.clone().unwrap()),
        );
        cursor = page.next_cursor;
    }
    assert_eq!(subjects, ["once", "once"]);
    // Exactly two messages were queued: the retry named the first, and no third id exists.
    let sent_events = client.list_events(None, None).await.unwrap();
    let delivered: Vec<_> = sent_events
        .events
        .iter()
        .filter(|e| e.kind == "message.delivered")
        .collect();
    assert!(delivered.len() <= 2, "{delivered:?}");
}
