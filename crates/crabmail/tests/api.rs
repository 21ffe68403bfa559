//! The HTTP API from the outside: signup, tokens, inboxes, reading mail, and every error shape.

use crabmail_api::client::ClientError;
use crabmail_api::{CreateInbox, CreateToken};
use crabmail_testkit::{Backend, Smtp, TestServer, on_both_backends};
use reqwest::StatusCode;
use serde_json::Value;

on_both_backends!(
    accounts_cannot_see_each_other,
    reading_messages_and_attachments
);

fn status(e: ClientError) -> u16 {
    e.status().unwrap_or(0)
}

async fn raw(
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"))
}

#[tokio::test]
async fn signup_tokens_and_authentication() {
    let server = TestServer::start().await;
    let url = server.url();
    let (st, body) = raw(
        reqwest::Method::POST,
        format!("{url}/v1/accounts"),
        None,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("cm_"));
    assert!(body["account_id"].as_str().unwrap().starts_with("acc_"));

    for bad in [None, Some("cm_wrong"), Some("nonsense")] {
        let (st, body) = raw(reqwest::Method::GET, format!("{url}/v1/inboxes"), bad, None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        assert_eq!(code(&body), "unauthorized");
    }
    let resp = reqwest::Client::new()
        .get(format!("{url}/v1/inboxes"))
        .header("authorization", "Basic eDp5")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");

    let client = server.client(Some(token.clone()));
    let minted = client
        .create_token(&CreateToken {
            name: Some("ci".into()),
            inbox_id: None,
            scopes: None,
        })
        .await
        .unwrap();
    let second = server.client(Some(minted.token.clone()));
    assert!(second.list_inboxes().await.is_ok());
    let tokens = client.list_tokens().await.unwrap();
    assert_eq!(tokens.tokens.len(), 2);
    assert!(
        !serde_json::to_string(&tokens)
            .unwrap()
            .contains(&minted.token),
        "secrets are never listed"
    );
    client.revoke_token(&minted.id).await.unwrap();
    assert_eq!(status(second.list_inboxes().await.unwrap_err()), 401);
    assert_eq!(
        status(client.revoke_token(&minted.id).await.unwrap_err()),
        404
    );
    // The store keeps hashes only: the token text is nowhere in the database file.
    let db = std::fs::read(server.data_dir().join("crabmail.sqlite3")).unwrap();
    let wal = std::fs::read(server.data_dir().join("crabmail.sqlite3-wal")).unwrap_or_default();
    for haystack in [&db, &wal] {
        assert!(!haystack.windows(token.len()).any(|w| w == token.as_bytes()));
    }
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let server = TestServer::start().await;
    let client = server.signup().await;
    let token = client.token().unwrap().to_owned();
    let url = server.url();
    let post = |body: &'static str| {
        raw(
            reqwest::Method::POST,
            format!("{url}/v1/inboxes"),
            Some(&token),
            Some(body),
        )
    };
    let (st, body) = post("{\"name\": ").await;
    assert_eq!((st, code(&body)), (StatusCode::BAD_REQUEST, "invalid_json"));
    let (st, body) = post("{\"name\": 5}").await;
    assert_eq!(
        (st, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
    );
    let (st, body) = post("{\"nmae\": \"x\"}").await;
    assert_eq!(
        (st, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("nmae"));
    for name in [
        "has space",
        "a..b",
        ".dot",
        "plus+sign",
        "ünï",
        &"x".repeat(65),
    ] {
        let body = serde_json::json!({ "name": name }).to_string();
        let (st, err) = raw(
            reqwest::Method::POST,
            format!("{url}/v1/inboxes"),
            Some(&token),
            Some(&body),
        )
        .await;
        assert_eq!(
            (st, code(&err)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_name"),
            "{name}"
        );
    }
    let (st, err) = post("{\"display_name\": \"Evil\\r\\nBcc: x@y.test\"}").await;
    assert_eq!(
        (st, code(&err)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_display_name")
    );
    let (st, err) = post("{\"domain\": \"gmail.com\"}").await;
    assert_eq!(
        (st, code(&err)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_domain")
    );
    let (st, err) = raw(
        reqwest::Method::GET,
        format!("{url}/v1/nowhere"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!((st, code(&err)), (StatusCode::NOT_FOUND, "not_found"));
    let (st, err) = raw(
        reqwest::Method::PUT,
        format!("{url}/v1/inboxes"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (st, code(&err)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let huge = format!("{{\"name\": \"{}\"}}", "a".repeat(30 * 1024 * 1024));
    let (st, err) = raw(
        reqwest::Method::POST,
        format!("{url}/v1/inboxes"),
        Some(&token),
        Some(&huge),
    )
    .await;
    assert_eq!(
        (st, code(&err)),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );

    let inbox = client.create_inbox(&CreateInbox::default()).await.unwrap();
    let list = |q: &str| {
        raw(
            reqwest::Method::GET,
            format!("{url}/v1/inboxes/{}/messages?{q}", inbox.id),
            Some(&token),
            None,
        )
    };
    for q in [
        "after=abc",
        "after=-1",
        "limit=0",
        "limit=101",
        "limit=x",
        "wait=121",
    ] {
        let (st, err) = list(q).await;
        assert_eq!(
            (st, code(&err)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            "{q}"
        );
    }
    let (st, _) = list("limit=100&wait=0").await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test]
async fn inbox_names_and_lifecycle() {
    let server = TestServer::start().await;
    let a = server.signup().await;
    let b = server.signup().await;
    let named = |n: &str| CreateInbox {
        name: Some(n.to_owned()),
        ..Default::default()
    };
    let first = a
        .create_inbox(&CreateInbox {
            name: Some("Support".into()),
            display_name: Some("Support Bot".into()),
            domain: None,
        })
        .await
        .unwrap();
    assert_eq!(first.address, "support@crabmail.localhost");
    assert_eq!(first.display_name.as_deref(), Some("Support Bot"));
    let second = b.create_inbox(&named("support")).await.unwrap();
    let (local, domain) = second.address.split_once('@').unwrap();
    assert_eq!(domain, "crabmail.localhost");
    assert!(
        local.starts_with("support-") && local.len() == "support-".len() + 4,
        "{local}"
    );
    let reserved = a.create_inbox(&named("postmaster")).await.unwrap();
    assert!(
        reserved.address.starts_with("postmaster-"),
        "{}",
        reserved.address
    );
    let random = a.create_inbox(&CreateInbox::default()).await.unwrap();
    assert_eq!(random.address.matches('-').count(), 2, "{}", random.address);
    let fits = a.create_inbox(&named(&"l".repeat(64))).await.unwrap();
    assert_eq!(
        fits.address,
        format!("{}@crabmail.localhost", "l".repeat(64))
    );
    let long_taken = b.create_inbox(&named(&"l".repeat(64))).await.unwrap();
    assert_eq!(long_taken.address.split('@').next().unwrap().len(), 64);

    let listed = a.list_inboxes().await.unwrap().inboxes;
    assert_eq!(listed.len(), 4);
    assert_eq!(a.get_inbox(&first.id).await.unwrap(), first);
    a.delete_inbox(&first.id).await.unwrap();
    assert_eq!(status(a.get_inbox(&first.id).await.unwrap_err()), 404);
    assert_eq!(status(a.delete_inbox(&first.id).await.unwrap_err()), 404);
    // Its address is never handed out again.
    let after = a.create_inbox(&named("support")).await.unwrap();
    assert_ne!(after.address, "support@crabmail.localhost");
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO c.test", "250").await;
    smtp.cmd("MAIL FROM:<x@example.test>", "250").await;
    smtp.cmd("RCPT TO:<support@crabmail.localhost>", "550 5.1.1")
        .await;
}

async fn accounts_cannot_see_each_other(backend: Backend) {
    let server = TestServer::start_with(backend, &[]).await;
    let (alice, inbox) = server.mailbox("alice").await;
    let mallory = server.signup().await;
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO c.test", "250").await;
    let attach = "Subject: private\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsecret\r\n--b\r\nContent-Type: text/plain; name=a.txt\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nattached\r\n--b--\r\n";
    assert_eq!(
        smtp.send_mail("x@example.test", &["alice@crabmail.localhost"], attach)
            .await
            .code,
        250
    );
    let list = alice
        .list_messages(&inbox.id, None, None, Some(60))
        .await
        .unwrap();
    let message_id = list.messages[0].id.clone();
    let url = server.url();
    let mallory_token = mallory.token().unwrap().to_owned();
    let missing_inbox = "inb_00000000000000000000000000000000";
    let missing_message = "msg_00000000000000000000000000000000";
    let pairs = [
        (
            format!("/v1/inboxes/{}", inbox.id),
            format!("/v1/inboxes/{missing_inbox}"),
        ),
        (
            format!("/v1/inboxes/{}/messages", inbox.id),
            format!("/v1/inboxes/{missing_inbox}/messages"),
        ),
        (
            format!("/v1/messages/{message_id}"),
            format!("/v1/messages/{missing_message}"),
        ),
        (
            format!("/v1/messages/{message_id}/raw"),
            format!("/v1/messages/{missing_message}/raw"),
        ),
        (
            format!("/v1/messages/{message_id}/attachments/0"),
            format!("/v1/messages/{missing_message}/attachments/0"),
        ),
    ];
    for (theirs, missing) in &pairs {
        for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
            let (st1, body1) = raw(
                method.clone(),
                format!("{url}{theirs}"),
                Some(&mallory_token),
                None,
            )
            .await;
            let (st2, body2) = raw(
                method.clone(),
                format!("{url}{missing}"),
                Some(&mallory_token),
                None,
            )
            .await;
            if st2 == StatusCode::METHOD_NOT_ALLOWED {
                continue;
            }
            assert_eq!(st1, StatusCode::NOT_FOUND, "{method} {theirs}");
            assert_eq!(
                (st1, body1),
                (st2, body2),
                "{method} {theirs}: must be indistinguishable from missing"
            );
        }
    }
    assert!(mallory.list_inboxes().await.unwrap().inboxes.is_empty());
    let scoped = mallory
        .create_token(&CreateToken {
            inbox_id: Some(inbox.id.clone()),
            name: None,
            scopes: None,
        })
        .await;
    assert_eq!(status(scoped.unwrap_err()), 404);
    // Still all there for its owner.
    assert_eq!(
        alice
            .get_message(&message_id)
            .await
            .unwrap()
            .parsed
            .subject
            .as_deref(),
        Some("private")
    );
}

async fn reading_messages_and_attachments(backend: Backend) {
    let server = TestServer::start_with(backend, &[]).await;
    let (client, inbox) = server.mailbox("reader").await;
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO c.test", "250").await;
    let with_attachment = "From: Bob <bob@example.test>\r\nTo: reader@crabmail.localhost\r\nSubject: report\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--zz\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"r\\\"1.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--zz--\r\n";
    assert_eq!(
        smtp.send_mail(
            "bob@example.test",
            &["reader@crabmail.localhost"],
            with_attachment
        )
        .await
        .code,
        250
    );
    for n in 0..4 {
        let body = format!("Subject: n{n}\r\n\r\nplain {n}\r\n");
        assert_eq!(
            smtp.send_mail("bob@example.test", &["reader@crabmail.localhost"], &body)
                .await
                .code,
            250
        );
    }
    // Pages of two, in arrival order, following the cursor.
    let mut cursor: Option<String> = None;
    let mut subjects = Vec::new();
    while subjects.len() < 5 {
        let page = client
            .list_messages(&inbox.id, cursor.as_deref(), Some(2), Some(60))
            .await
            .unwrap();
        assert!(page.messages.len() <= 2);
        subjects.extend(
            page.messages
                .iter()
                .map(|m| m.content.subject.clone().unwrap()),
        );
        cursor = Some(page.next_cursor);
    }
    assert_eq!(subjects, ["report", "n0", "n1", "n2", "n3"]);
    let all = client
        .list_messages(&inbox.id, None, None, None)
        .await
        .unwrap();
    let report = &all.messages[0];
    assert!(report.content.has_attachments);
    assert_eq!(report.content.preview, "see attached");
    assert_eq!(
        report.content.from.as_ref().unwrap().address.as_deref(),
        Some("bob@example.test")
    );
    let full = client.get_message(&report.id).await.unwrap();
    assert_eq!(full.parsed.attachments.len(), 1);
    assert_eq!(full.parsed.attachments[0].content_type, "application/pdf");
    let (content_type, bytes) = client.get_attachment(&report.id, 0).await.unwrap();
    assert_eq!(content_type, "application/pdf");
    assert_eq!(bytes, b"%PDF-1.4\n");
    assert_eq!(
        status(client.get_attachment(&report.id, 1).await.unwrap_err()),
        404
    );
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/messages/{}/raw", server.url(), report.id))
        .bearer_auth(client.token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "message/rfc822");
    let stored = resp.bytes().await.unwrap();
    assert_eq!(&stored[..], with_attachment.as_bytes());

    client.delete_message(&report.id).await.unwrap();
    assert_eq!(
        status(client.get_message(&report.id).await.unwrap_err()),
        404
    );
    assert_eq!(
        client
            .list_messages(&inbox.id, None, None, None)
            .await
            .unwrap()
            .messages
            .len(),
        4
    );
}

#[tokio::test]
async fn inbox_scoped_tokens_see_one_inbox() {
    let server = TestServer::start().await;
    let (owner, inbox) = server.mailbox("scoped").await;
    let other = owner.create_inbox(&CreateInbox::default()).await.unwrap();
    let minted = owner
        .create_token(&CreateToken {
            inbox_id: Some(inbox.id.clone()),
            name: Some("worker".into()),
            scopes: None,
        })
        .await
        .unwrap();
    assert_eq!(minted.inbox_id.as_deref(), Some(inbox.id.as_str()));
    let scoped = server.client(Some(minted.token.clone()));
    let visible = scoped.list_inboxes().await.unwrap().inboxes;
    assert_eq!(visible.len(), 1);
    assert_eq!(visible[0].id, inbox.id);
    assert_eq!(status(scoped.get_inbox(&other.id).await.unwrap_err()), 404);
    assert_eq!(
        status(
            scoped
                .list_messages(&other.id, None, None, None)
                .await
                .unwrap_err()
        ),
        404
    );
    assert!(
        scoped
            .list_messages(&inbox.id, None, None, None)
            .await
            .is_ok()
    );
    assert_eq!(
        status(
            scoped
                .create_inbox(&CreateInbox::default())
                .await
                .unwrap_err()
        ),
        403
    );
    assert_eq!(
        status(
            scoped
                .create_token(&CreateToken::default())
                .await
                .unwrap_err()
        ),
        403
    );
    assert_eq!(
        status(scoped.delete_inbox(&inbox.id).await.unwrap_err()),
        403
    );
    assert_eq!(status(scoped.list_tokens().await.unwrap_err()), 403);
    scoped.revoke_token(&minted.id).await.unwrap();
    assert_eq!(status(scoped.list_inboxes().await.unwrap_err()), 401);
}

#[tokio::test]
async fn signup_policies() {
    let closed = TestServer::start_with(Backend::Sqlite, &[("signup.policy", "closed")]).await;
    let err = closed.client(None).create_account(None).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 403, code, .. } if code == "signup_closed"),
        "{err}"
    );

    let invite = TestServer::start_with(Backend::Sqlite, &[("signup.policy", "invite")]).await;
    let err = invite.client(None).create_account(None).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 403, code, .. } if code == "invite_required"),
        "{err}"
    );
    // The operator's command, run as its own process against the live server's data directory.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crabmail"))
        .args(["admin", "invite", "--data-dir"])
        .arg(invite.data_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(code.starts_with("inv_"), "{code}");
    let created = invite
        .client(None)
        .create_account(Some(code.clone()))
        .await
        .unwrap();
    assert!(created.token.starts_with("cm_"));
    let reused = invite
        .client(None)
        .create_account(Some(code))
        .await
        .unwrap_err();
    assert!(
        matches!(&reused, ClientError::Api { status: 403, code, .. } if code == "invalid_invite"),
        "{reused}"
    );
}

#[tokio::test]
async fn openapi_document_describes_the_api() {
    let server = TestServer::start().await;
    let (st, spec) = raw(
        reqwest::Method::GET,
        format!("{}/v1/openapi.json", server.url()),
        None,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(spec["openapi"], "3.1.0");
    for path in [
        "/v1/accounts",
        "/v1/tokens",
        "/v1/inboxes",
        "/v1/inboxes/{id}",
        "/v1/inboxes/{id}/messages",
        "/v1/messages/{id}",
        "/v1/messages/{id}/raw",
        "/v1/messages/{id}/attachments/{index}",
        "/v1/inboxes/{id}/wait",
        "/v1/threads",
        "/v1/threads/{id}",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from the spec"
        );
    }
    for schema in [
        "MessageSummary",
        "Security",
        "Extracted",
        "SafeView",
        "WaitResult",
        "Thread",
    ] {
        assert!(
            spec["components"]["schemas"][schema].is_object(),
            "{schema} missing from the spec"
        );
    }
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
}
