//! Real SMTP clients other than our own: Python's smtplib (plain and STARTTLS) and swaks.
//! Both must be installed (CI installs swaks from Debian); a missing tool fails the test.

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
