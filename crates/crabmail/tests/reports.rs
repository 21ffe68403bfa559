//! Bounces, complaints and auto-replies that other servers send arrive over real SMTP and are
//! told apart in the message JSON (`bounce`, `complaint`, `auto_reply`), on both stores; ordinary
//! mail carries none of them.

use crabmail_api::Message;
use crabmail_api::client::Client;
use crabmail_testkit::{Backend, Smtp, TestServer, on_both_backends};

async fn deliver(server: &TestServer, mail_from: &str, to: &str, body: &str) {
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO mx.example.org", "250").await;
    let body = body.replace("\r\n", "\n").replace('\n', "\r\n");
    let reply = smtp.send_mail(mail_from, &[to], &body).await;
    assert!(reply.text().starts_with("250"), "{}", reply.text());
}

async fn received(client: &Client, inbox_id: &str, cursor: &mut Option<String>) -> Message {
    let list = client
        .list_messages(inbox_id, cursor.as_deref(), Some(1), Some(10))
        .await
        .unwrap();
    *cursor = Some(list.next_cursor.clone());
    let id = &list.messages.first().expect("a message arrived").id;
    client.get_message(id).await.unwrap()
}

on_both_backends!(reports_from_other_servers_are_told_apart);

async fn reports_from_other_servers_are_told_apart(backend: Backend) {
    let server = TestServer::start_with(backend, &[]).await;
    let (client, inbox) = server.mailbox("sender").await;
    let to = inbox.address.as_str();
    let mut cursor = None;

    deliver(
        &server,
        "",
        to,
        &format!(
            "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\n\
             To: {to}\nSubject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n\
             --b\nContent-Type: text/plain\n\nYour message could not be delivered.\n\
             --b\nContent-Type: message/delivery-status\n\n\
             Reporting-MTA: dns; mx.example.org\n\n\
             Final-Recipient: rfc822; ann@example.org\nAction: failed\nStatus: 5.1.1\n\
             Diagnostic-Code: smtp; 550 5.1.1 <ann@example.org>: User unknown\n\n\
             --b\nContent-Type: text/rfc822-headers\n\nMessage-ID: <sent-1@agents.test>\n\n\
             --b--\n"
        ),
    )
    .await;
    let bounce = received(&client, &inbox.id, &mut cursor).await;
    let report = bounce.parsed.bounce.expect("read as a bounce");
    assert_eq!(report.path, "dsn");
    assert_eq!(report.reporting_mta.as_deref(), Some("mx.example.org"));
    let ann = &report.recipients[0];
    assert_eq!(ann.address, "ann@example.org");
    assert_eq!(
        (ann.status.as_deref(), ann.smtp_code),
        (Some("5.1.1"), Some(550))
    );
    assert_eq!(
        (ann.reason.as_str(), ann.hard, ann.permanent),
        ("userunknown", true, true)
    );
    assert!(bounce.parsed.complaint.is_none() && !bounce.parsed.auto_reply);

    deliver(
        &server,
        "fbl@isp.example",
        to,
        &format!(
            "From: fbl@isp.example\nTo: {to}\nSubject: FW: report\nMIME-Version: 1.0\n\
             Content-Type: multipart/report; report-type=feedback-report; boundary=\"f\"\n\n\
             --f\nContent-Type: text/plain\n\nThis is an email abuse report.\n\
             --f\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\n\
             User-Agent: FBL/1.0\nVersion: 1\nOriginal-Rcpt-To: <carol@isp.example>\n\n\
             --f--\n"
        ),
    )
    .await;
    let complaint = received(&client, &inbox.id, &mut cursor).await;
    let report = complaint.parsed.complaint.expect("read as a complaint");
    assert_eq!(report.feedback_type.as_deref(), Some("abuse"));
    assert_eq!(report.recipients[0].address, "carol@isp.example");

    deliver(
        &server,
        "dave@example.org",
        to,
        &format!(
            "From: Dave <dave@example.org>\nTo: {to}\nSubject: Automatic reply: hello\n\
             Auto-Submitted: auto-replied\n\nI am out of the office until Monday.\n"
        ),
    )
    .await;
    let vacation = received(&client, &inbox.id, &mut cursor).await;
    assert!(vacation.parsed.auto_reply);
    assert!(vacation.parsed.bounce.is_none());

    deliver(
        &server,
        "erin@example.org",
        to,
        &format!(
            "From: Erin <erin@example.org>\nTo: {to}\nSubject: the delivery failed?\n\n\
             Hi! The parcel delivery failed yesterday; can you check it?\n"
        ),
    )
    .await;
    let ordinary = received(&client, &inbox.id, &mut cursor).await;
    assert!(ordinary.parsed.bounce.is_none() && ordinary.parsed.complaint.is_none());
    assert!(!ordinary.parsed.auto_reply);
}
