//! Real SMTP clients other than our own: Python's smtplib, swaks and the mail-send crate.
//! python3 and swaks must be installed (scripts/test installs swaks); a missing tool fails the test.

use crabmail_testkit::TestServer;
use std::process::Command;

async fn received_subjects(
    client: &crabmail_api::client::Client,
    inbox: &str,
    n: usize,
) -> Vec<String> {
    let mut subjects = Vec::new();
    let mut cursor = "0".to_owned();
    while subjects.len() < n {
        let page = client
            .list_messages(inbox, Some(&cursor), None, Some(60))
            .await
            .unwrap();
        assert!(
            !page.messages.is_empty(),
            "expected {n} messages, got {subjects:?}"
        );
        subjects.extend(
            page.messages
                .iter()
                .map(|m| m.content.subject.clone().unwrap_or_default()),
        );
        cursor = page.next_cursor;
    }
    subjects
}

const SMTPLIB: &str = r#"
import smtplib, ssl, sys
from email.message import EmailMessage
port, tls = int(sys.argv[1]), sys.argv[2] == "tls"
msg = EmailMessage()
msg["From"] = "Py <py@example.test>"
msg["To"] = "agent@crabmail.localhost"
msg["Subject"] = "from smtplib " + sys.argv[2]
msg.set_content("héllo from python")
msg.add_attachment(b"\x00\x01binary", maintype="application", subtype="octet-stream", filename="blob.bin")
with smtplib.SMTP("127.0.0.1", port) as s:
    s.ehlo("py.example.test")
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s.starttls(context=ctx)
        s.ehlo("py.example.test")
    refused = s.send_message(msg, from_addr="py@example.test", to_addrs=["agent@crabmail.localhost"])
    assert not refused, refused
    try:
        s.sendmail("py@example.test", ["nobody@crabmail.localhost"], "Subject: x\r\n\r\nx\r\n")
        sys.exit("unknown recipient was accepted")
    except smtplib.SMTPRecipientsRefused as e:
        code = e.recipients["nobody@crabmail.localhost"][0]
        assert code == 550, code
print("sent")
"#;

#[tokio::test]
async fn python_smtplib_sends_plain_and_over_starttls() {
    let server = TestServer::start().await;
    let (client, inbox) = server.mailbox("agent").await;
    for mode in ["plain", "tls"] {
        let port = server.mx.port().to_string();
        let out = tokio::task::spawn_blocking(move || {
            Command::new("python3")
                .args(["-c", SMTPLIB, &port, mode])
                .output()
                .expect("python3")
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "smtplib {mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let subjects = received_subjects(&client, &inbox.id, 2).await;
    assert_eq!(subjects, ["from smtplib plain", "from smtplib tls"]);
    let list = client
        .list_messages(&inbox.id, None, None, None)
        .await
        .unwrap();
    let tls = client.get_message(&list.messages[1].id).await.unwrap();
    assert!(tls.envelope.tls);
    assert_eq!(
        tls.parsed.text.as_deref().map(str::trim),
        Some("héllo from python")
    );
    let (_, bytes) = client.get_attachment(&tls.id, 0).await.unwrap();
    assert_eq!(bytes, b"\x00\x01binary");
}

#[tokio::test]
async fn swaks_delivers_with_pipelining_and_starttls() {
    let server = TestServer::start().await;
    let (client, inbox) = server.mailbox("agent").await;
    let target = format!("127.0.0.1:{}", server.mx.port());
    let runs: [&[&str]; 3] = [
        &["--pipeline"],
        &["-tls"],
        &[
            "--protocol",
            "ESMTP",
            "--data",
            "Subject: swaks bdat-free\r\n\r\nplain data\r\n",
        ],
    ];
    for extra in runs {
        let target = target.clone();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let args = extra.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new("swaks")
                .args([
                    "--server",
                    &target,
                    "--to",
                    "agent@crabmail.localhost",
                    "--from",
                    "swaks@example.test",
                    "--helo",
                    "swaks.test",
                ])
                .args(&args)
                .output()
                .expect("swaks must be installed (apt-get install swaks)")
        })
        .await
        .unwrap();
        let transcript = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "swaks {extra:?}: {transcript}");
        assert!(
            transcript.contains("  250 2.0.0 OK: queued as"),
            "{transcript}"
        );
    }
    let subjects = received_subjects(&client, &inbox.id, 3).await;
    assert_eq!(subjects.len(), 3);
    assert_eq!(subjects[2], "swaks bdat-free");
}

/// Stalwart's mail-send as the client, with a message built by mail-builder: plain and STARTTLS.
#[tokio::test]
async fn rust_mail_send_client_over_starttls() {
    use mail_builder::MessageBuilder;
    let server = TestServer::start().await;
    let (client, inbox) = server.mailbox("agent").await;
    let body = MessageBuilder::new()
        .from(("Rusty", "rusty@example.test"))
        .to("agent@crabmail.localhost")
        .subject("from mail-send")
        .text_body("Ünïcode body over TLS")
        .attachment("text/csv", "data.csv", "a,b\n1,2\n")
        .write_to_vec()
        .unwrap();
    let builder = mail_send::SmtpClientBuilder::new("127.0.0.1", server.mx.port())
        .unwrap()
        .implicit_tls(false)
        .allow_invalid_certs()
        .helo_host("rust.example.test");
    let message = mail_send::smtp::message::Message::new(
        "rusty@example.test",
        ["agent@crabmail.localhost"],
        body.clone(),
    );
    builder
        .connect()
        .await
        .expect("STARTTLS")
        .send(message.clone())
        .await
        .unwrap();
    builder
        .connect_plain()
        .await
        .expect("plain")
        .send(message)
        .await
        .unwrap();
    // A refused recipient is an error the client sees.
    let refused = mail_send::smtp::message::Message::new(
        "rusty@example.test",
        ["ghost@crabmail.localhost"],
        body.clone(),
    );
    assert!(
        builder
            .connect_plain()
            .await
            .unwrap()
            .send(refused)
            .await
            .is_err()
    );

    let subjects = received_subjects(&client, &inbox.id, 2).await;
    assert_eq!(subjects, ["from mail-send", "from mail-send"]);
    let list = client
        .list_messages(&inbox.id, None, None, None)
        .await
        .unwrap();
    let first = client.get_message(&list.messages[0].id).await.unwrap();
    assert!(first.envelope.tls);
    assert_eq!(first.envelope.helo, "rust.example.test");
    // mail-send always ends the data with CRLF . CRLF, adding a CRLF of its own: stored as sent.
    let mut sent = body.clone();
    sent.extend_from_slice(b"\r\n");
    assert_eq!(client.get_raw(&first.id).await.unwrap(), sent);
    let (content_type, csv) = client.get_attachment(&first.id, 0).await.unwrap();
    assert_eq!(
        (content_type.as_str(), csv.as_slice()),
        ("text/csv", b"a,b\n1,2\n".as_slice())
    );
}

/// What a Python agent most often writes: `msg.as_bytes()` (LF line ends, a dot-led line) through
/// `smtplib.sendmail`. Accepted as one message, stored with CRLF, the dot line intact.
#[tokio::test]
async fn python_sendmail_with_lf_line_ends_is_accepted() {
    const SCRIPT: &str = r#"
import smtplib, sys
from email.message import EmailMessage
msg = EmailMessage()
msg["From"] = "py@example.test"
msg["To"] = "agent@crabmail.localhost"
msg["Subject"] = "lf endings"
msg.set_content("first line\n.starts with a dot\nlast line\n")
raw = msg.as_bytes()
assert b"\r\n" not in raw
with smtplib.SMTP("127.0.0.1", int(sys.argv[1])) as s:
    s.sendmail("py@example.test", ["agent@crabmail.localhost"], raw)
print("sent")
"#;
    let server = TestServer::start().await;
    let (client, inbox) = server.mailbox("agent").await;
    let port = server.mx.port().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", SCRIPT, &port])
            .output()
            .expect("python3")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "smtplib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        received_subjects(&client, &inbox.id, 1).await,
        ["lf endings"]
    );
    let list = client
        .list_messages(&inbox.id, None, None, None)
        .await
        .unwrap();
    let message = client.get_message(&list.messages[0].id).await.unwrap();
    assert_eq!(
        message.parsed.text.as_deref().map(str::trim_end),
        Some("first line\r\n.starts with a dot\r\nlast line")
    );
    let raw = client.get_raw(&message.id).await.unwrap();
    assert!(
        !raw.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
        "CRLF only"
    );
}
