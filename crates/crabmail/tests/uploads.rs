//! Uploads: bytes sent ahead and attached by id; a body cut short, or not the size or hash
//! announced, is refused and never kept; another account's upload cannot be attached.

use crabmail_api::client::ClientError;
use crabmail_api::{AddressList, OutgoingAttachment, SendMessage};
use crabmail_testkit::{Backend, TestServer, on_both_backends};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn with_upload(to: &str, upload_id: &str) -> SendMessage {
    SendMessage {
        to: AddressList::One(to.into()),
        subject: Some("the report".into()),
        text: Some("attached".into()),
        attachments: vec![OutgoingAttachment {
            upload_id: Some(upload_id.into()),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn code(e: ClientError) -> (u16, String, Option<String>) {
    match e {
        ClientError::Api {
            status,
            code,
            field,
            ..
        } => (status, code, field),
        other => panic!("{other}"),
    }
}

on_both_backends!(an_upload_is_attached_by_id);

async fn an_upload_is_attached_by_id(backend: Backend) {
    let server = TestServer::start_with(backend, &[]).await;
    let (client, inbox) = server.mailbox("uploader").await;
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let upload = client
        .upload(bytes.clone(), "data.bin", "application/x-test")
        .await
        .unwrap();
    assert_eq!(upload.size, bytes.len() as u64);
    assert_eq!(upload.filename, "data.bin");
    let sent = client
        .send_message(&inbox.id, &with_upload(&inbox.address, &upload.id), None)
        .await
        .unwrap();
    let received =
        crabmail_testkit::event(&client, "message.received", None, Some(&inbox.id)).await;
    let message = client
        .get_message(received.message_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_ne!(message.id, sent.id);
    let attachment = &message.parsed.attachments[0];
    assert_eq!(attachment.filename.as_deref(), Some("data.bin"));
    assert_eq!(attachment.content_type, "application/x-test");
    let (_, got) = client
        .get_attachment(&message.id, attachment.index)
        .await
        .unwrap();
    assert_eq!(got, bytes, "the bytes arrive as uploaded");

    // Another account cannot attach it: the id means nothing there.
    let (stranger, theirs) = server.mailbox("stranger").await;
    let refused = stranger
        .send_message(&theirs.id, &with_upload(&theirs.address, &upload.id), None)
        .await
        .unwrap_err();
    assert_eq!(
        code(refused),
        (
            422,
            "invalid_request".into(),
            Some("attachments[0].upload_id".into())
        )
    );
}

#[tokio::test]
async fn bodies_not_as_announced_are_refused() {
    let server = TestServer::start_with(Backend::Sqlite, &[]).await;
    let client = server.signup().await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/uploads", server.url());
    let token = client.token().unwrap();
    let wrong_size = http
        .post(&url)
        .bearer_auth(token)
        .query(&[("size", "11")])
        .body("ten bytes!")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_size.status(), 422);
    let body: serde_json::Value = wrong_size.json().await.unwrap();
    assert_eq!(body["error"]["code"], "size_mismatch");
    let wrong_hash = http
        .post(&url)
        .bearer_auth(token)
        .query(&[("sha256", "00".repeat(32))])
        .body("ten bytes!")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_hash.status(), 422);
    let body: serde_json::Value = wrong_hash.json().await.unwrap();
    assert_eq!(body["error"]["code"], "checksum_mismatch");

    // A body shorter than its Content-Length (the sender stopped half-way): refused.
    let addr = server.url().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/uploads?filename=cut.bin HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: 1000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[7u8; 100]).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("invalid_body"), "{answer}");

    // A draft-only token may upload what it attaches; a read-only one may not.
    let reader = client
        .create_token(&crabmail_api::CreateToken {
            scopes: Some(vec!["read".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    let refused = server
        .client(Some(reader.token))
        .upload(b"x".to_vec(), "x.txt", "text/plain")
        .await
        .unwrap_err();
    assert_eq!(code(refused).0, 403);
}

#[tokio::test]
async fn an_account_holds_a_bounded_number_of_uploads() {
    let server = TestServer::start_with(Backend::Sqlite, &[]).await;
    let client = server.signup().await;
    for n in 0..100 {
        client
            .upload(
                vec![n as u8],
                &format!("f{n}.bin"),
                "application/octet-stream",
            )
            .await
            .unwrap();
    }
    let refused = client
        .upload(b"one more".to_vec(), "more.bin", "application/octet-stream")
        .await
        .unwrap_err();
    let (status, code, _) = code(refused);
    assert_eq!((status, code.as_str()), (507, "upload_quota_exceeded"));
    // Another account is not held back by this one.
    let other = server.signup().await;
    other
        .upload(b"fine".to_vec(), "fine.bin", "text/plain")
        .await
        .unwrap();
}
