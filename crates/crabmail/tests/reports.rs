//! Bounces, complaints and auto-replies that other servers send arrive over real SMTP and are
//! told apart in the message JSON (`bounce`, `complaint`, `auto_reply`), on both stores; ordinary
//! mail carries none of them. Those about mail we sent (to its signed return path, or naming its
//! Message-ID) change its delivery state, the suppressions and the events.

use crabmail_api::client::Client;
use crabmail_api::{AddressList, Message, RecipientState, SendMessage};
use crabmail_testkit::{Backend, Smtp, SmtpSink, TestServer, Zone, free_port, on_both_backends};

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

on_both_backends!(
    reports_from_other_servers_are_told_apart,
    reports_to_a_signed_return_path_act_on_their_recipient,
    reports_to_the_from_address_are_linked_by_the_returned_message_id,
    late_hard_bounces_trip_the_circuit_breaker
);

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

/// A crabmail whose mail for example.test goes to Postfix's smtp-sink on `ip`, and an inbox
/// that sends from it.
struct World {
    server: TestServer,
    sink: SmtpSink,
    client: Client,
    inbox: crabmail_api::Inbox,
    _dns: crabmail_testkit::DnsServer,
}

impl World {
    async fn start(backend: Backend, ip: &str) -> World {
        World::start_with(backend, ip, &[]).await
    }

    async fn start_with(backend: Backend, ip: &str, extra: &[(&str, &str)]) -> World {
        let port = free_port(ip);
        let dns = Zone::new()
            .mx("example.test", 10, "mx.example.test")
            .a("mx.example.test", ip)
            .serve()
            .await;
        let sink = SmtpSink::start(format!("{ip}:{port}").parse().unwrap(), &[]).await;
        let (k, v) = dns.setting();
        let port_text = port.to_string();
        let mut settings = vec![(k.as_str(), v.as_str()), ("delivery.mx_port", &port_text)];
        settings.extend_from_slice(extra);
        let server = TestServer::start_with(backend, &settings).await;
        let (client, inbox) = server.mailbox("sender").await;
        World {
            server,
            sink,
            client,
            inbox,
            _dns: dns,
        }
    }
}

/// A DSN from the remote's MX that `address` failed after it was accepted (`status`, `text`),
/// returning the headers of the message `message_id`.
fn late_dsn(to: &str, address: &str, status: &str, text: &str, message_id: &str) -> String {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\n\
         To: {to}\nSubject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n\
         --b\nContent-Type: text/plain\n\nYour message could not be delivered.\n\
         --b\nContent-Type: message/delivery-status\n\n\
         Reporting-MTA: dns; mx.example.test\n\n\
         Final-Recipient: rfc822; {address}\nAction: failed\nStatus: {status}\n\
         Diagnostic-Code: smtp; {text}\n\n\
         --b\nContent-Type: text/rfc822-headers\n\nMessage-ID: <{message_id}>\n\
         Subject: hello\n\n--b--\n"
    )
}

/// The first event of `kind` after `cursor`, long-polling; `cursor` moves just past it.
async fn next_event(client: &Client, kind: &str, cursor: &mut String) -> crabmail_api::Event {
    loop {
        let page = client.list_events(Some(cursor), Some(60)).await.unwrap();
        assert!(!page.events.is_empty(), "no {kind} event within 60 s");
        match page.events.into_iter().find(|e| e.kind == kind) {
            Some(e) => {
                *cursor = e.seq.to_string();
                return e;
            }
            None => *cursor = page.next_cursor,
        }
    }
}

struct Sent {
    id: String,
    message_id_header: String,
    /// recipient address -> (recipient id, the return path the remote saw)
    return_paths: Vec<(String, String, String)>,
}

/// Sends one message from `inbox` to `recipients` at the sink and waits until all were delivered.
async fn send_and_deliver(
    client: &Client,
    inbox: &crabmail_api::Inbox,
    sink: &SmtpSink,
    recipients: &[&str],
    events: &mut String,
) -> Sent {
    let sent = client
        .send_message(
            &inbox.id,
            &SendMessage {
                to: AddressList::Many(recipients.iter().map(|r| r.to_string()).collect()),
                subject: Some("hello".into()),
                text: Some("A message that will come back.".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    for _ in recipients {
        next_event(client, "message.delivered", events).await;
    }
    let message = client.get_message(&sent.id).await.unwrap();
    let dumped = sink.received();
    let return_paths = message
        .delivery
        .unwrap()
        .recipients
        .into_iter()
        .map(|r| {
            let seen = dumped
                .iter()
                .find(|d| d.rcpt_to.contains(&r.address))
                .expect("the sink got it");
            (r.address, r.id, seen.mail_from.clone())
        })
        .collect();
    Sent {
        id: sent.id,
        message_id_header: message.parsed.message_id.expect("a Message-ID"),
        return_paths,
    }
}

impl Sent {
    fn return_path(&self, address: &str) -> (&str, &str) {
        self.return_paths
            .iter()
            .find(|(a, _, _)| a == address)
            .map(|(_, id, path)| (id.as_str(), path.as_str()))
            .unwrap()
    }
}

async fn recipient_state(client: &Client, sent: &str, address: &str) -> RecipientState {
    let message = client.get_message(sent).await.unwrap();
    message
        .delivery
        .unwrap()
        .recipients
        .into_iter()
        .find(|r| r.address == address)
        .unwrap()
}

async fn suppressed(client: &Client, address: &str) -> Option<String> {
    let list = client.list_suppressions().await.unwrap();
    list.suppressions
        .into_iter()
        .find(|s| s.address == address)
        .map(|s| s.reason)
}

/// Mail to another server leaves from a return path per recipient; what comes back to it later
/// (a hard bounce, a soft one, a complaint, an auto-reply) acts on that recipient alone. A
/// return path whose MAC is not ours is refused like an unknown user.
async fn reports_to_a_signed_return_path_act_on_their_recipient(backend: Backend) {
    let world = World::start(backend, "127.0.0.2").await;
    let (server, sink, client, inbox) = (&world.server, &world.sink, &world.client, &world.inbox);
    let mut events = "0".to_owned();
    let everyone = [
        "ann@example.test",
        "bob@example.test",
        "carol@example.test",
        "dave@example.test",
    ];
    let sent = send_and_deliver(client, inbox, sink, &everyone, &mut events).await;
    let mut cursor = None;

    // Hard: ann's mailbox does not exist after all.
    let (ann_id, ann_path) = sent.return_path("ann@example.test");
    assert!(ann_path.starts_with("bounces+"), "{ann_path}");
    deliver(
        server,
        "",
        ann_path,
        &late_dsn(
            ann_path,
            "ann@example.test",
            "5.1.1",
            "550 5.1.1 <ann@example.test>: user unknown",
            "unrelated@elsewhere.test",
        ),
    )
    .await;
    let bounced = next_event(client, "message.bounced", &mut events).await;
    assert_eq!(bounced.message_id.as_deref(), Some(sent.id.as_str()));
    assert_eq!(bounced.recipient.as_deref(), Some("ann@example.test"));
    let detail = bounced.detail.unwrap();
    assert_eq!(
        (detail["late"].as_bool(), detail["hard"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(detail["reason"], "userunknown");
    let ann = recipient_state(client, &sent.id, "ann@example.test").await;
    assert_eq!(ann.status, "bounced");
    assert_eq!(ann.attempts.len(), 2, "the delivery and the bounce");
    assert_eq!(ann.attempts[0].code, Some(250));
    assert_eq!(ann.attempts[1].enhanced_code.as_deref(), Some("5.1.1"));
    assert!(suppressed(client, "ann@example.test").await.is_some());
    // The report is in the sending inbox, linked, and the list filters on it.
    let report = received(client, &inbox.id, &mut cursor).await;
    let bounce = report.parsed.bounce.expect("a bounce");
    assert_eq!(bounce.recipient_id.as_deref(), Some(ann_id));
    assert_eq!(bounce.sent_message_id.as_deref(), Some(sent.id.as_str()));
    let listed = client
        .list_reports(&inbox.id, "bounce", None, None)
        .await
        .unwrap();
    assert_eq!(listed.messages.len(), 1);
    assert_eq!(listed.messages[0].report.as_deref(), Some("bounce"));
    assert!(
        client
            .list_reports(&inbox.id, "none", None, None)
            .await
            .unwrap()
            .messages
            .is_empty()
    );

    // Soft: bob's mailbox is full. The message did not arrive, but the address is fine.
    let (_, bob_path) = sent.return_path("bob@example.test");
    deliver(
        server,
        "",
        bob_path,
        &late_dsn(
            bob_path,
            "bob@example.test",
            "5.2.2",
            "552 5.2.2 mailbox full",
            "x@y.test",
        ),
    )
    .await;
    let bounced = next_event(client, "message.bounced", &mut events).await;
    assert_eq!(bounced.recipient.as_deref(), Some("bob@example.test"));
    assert_eq!(bounced.detail.unwrap()["hard"].as_bool(), Some(false));
    assert_eq!(
        recipient_state(client, &sent.id, "bob@example.test")
            .await
            .status,
        "bounced"
    );
    assert_eq!(suppressed(client, "bob@example.test").await, None);

    // A complaint through carol's feedback loop, to her return path.
    let (_, carol_path) = sent.return_path("carol@example.test");
    deliver(
        server,
        "fbl@isp.example",
        carol_path,
        &format!(
            "From: fbl@isp.example\nTo: {carol_path}\nSubject: abuse report\nMIME-Version: 1.0\n\
             Content-Type: multipart/report; report-type=feedback-report; boundary=\"f\"\n\n\
             --f\nContent-Type: text/plain\n\nThis is an email abuse report.\n\
             --f\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\n\
             User-Agent: FBL/1.0\nVersion: 1\n\n--f--\n"
        ),
    )
    .await;
    let complained = next_event(client, "message.complained", &mut events).await;
    assert_eq!(complained.recipient.as_deref(), Some("carol@example.test"));
    assert_eq!(complained.detail.unwrap()["feedback_type"], "abuse");
    let reason = suppressed(client, "carol@example.test")
        .await
        .expect("suppressed");
    assert!(reason.starts_with("complaint"), "{reason}");
    assert_eq!(
        recipient_state(client, &sent.id, "carol@example.test")
            .await
            .status,
        "delivered"
    );

    // Dave's vacation program answers the return path: marked, never a bounce.
    let (_, dave_path) = sent.return_path("dave@example.test");
    deliver(
        server,
        "",
        dave_path,
        &format!(
            "From: Dave <dave@example.test>\nTo: {dave_path}\nSubject: Automatic reply: hello\n\
             Auto-Submitted: auto-replied\nIn-Reply-To: <{}>\n\nAway until Monday.\n",
            sent.message_id_header
        ),
    )
    .await;
    let _ = received(client, &inbox.id, &mut cursor).await; // bob's
    let _ = received(client, &inbox.id, &mut cursor).await; // carol's
    let vacation = received(client, &inbox.id, &mut cursor).await;
    assert!(vacation.parsed.auto_reply);
    let sent_thread = client.get_message(&sent.id).await.unwrap().thread_id;
    assert!(sent_thread.is_some());
    assert_eq!(
        vacation.thread_id, sent_thread,
        "in the sent message's thread"
    );
    assert_eq!(
        recipient_state(client, &sent.id, "dave@example.test")
            .await
            .status,
        "delivered"
    );
    assert_eq!(suppressed(client, "dave@example.test").await, None);
    let auto = client
        .list_reports(&inbox.id, "auto_reply", None, None)
        .await
        .unwrap();
    assert_eq!(auto.messages.len(), 1);

    // A forged MAC, another recipient's id with ann's MAC, and the bare prefix: no such user.
    let forged = format!(
        "{}0000000000000000@{}",
        &ann_path[..ann_path.find('-').unwrap() + 1],
        inbox.address.split('@').nth(1).unwrap()
    );
    let (_, bob_path) = sent.return_path("bob@example.test");
    let ann_mac = &ann_path[ann_path.find('-').unwrap()..];
    let swapped = format!("{}{ann_mac}", &bob_path[..bob_path.find('-').unwrap()]);
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO mx.example.test", "250").await;
    smtp.cmd("MAIL FROM:<>", "250").await;
    for address in [forged.as_str(), swapped.as_str()] {
        smtp.cmd(&format!("RCPT TO:<{address}>"), "550").await;
    }
    let bare = format!("bounces@{}", inbox.address.split('@').nth(1).unwrap());
    smtp.cmd(&format!("RCPT TO:<{bare}>"), "550").await;
}

/// A bounce sent to the From address (no return path of ours) is linked by the Message-ID it
/// returns and the address it names; a report naming a Message-ID this inbox never sent changes
/// nothing.
async fn reports_to_the_from_address_are_linked_by_the_returned_message_id(backend: Backend) {
    let world = World::start(backend, "127.0.0.3").await;
    let (server, sink, client, inbox) = (&world.server, &world.sink, &world.client, &world.inbox);
    let mut events = "0".to_owned();
    let both = ["erin@example.test", "frank@example.test"];
    let sent = send_and_deliver(client, inbox, sink, &both, &mut events).await;
    let mut cursor = None;
    let to = inbox.address.as_str();

    // A forged report: the right address, a Message-ID never sent from here.
    deliver(
        server,
        "",
        to,
        &late_dsn(
            to,
            "erin@example.test",
            "5.1.1",
            "550 5.1.1 unknown",
            "forged@example.test",
        ),
    )
    .await;
    let forged = received(client, &inbox.id, &mut cursor).await;
    let bounce = forged.parsed.bounce.expect("still read as a bounce");
    assert_eq!(bounce.recipient_id, None);
    assert_eq!(
        recipient_state(client, &sent.id, "erin@example.test")
            .await
            .status,
        "delivered"
    );
    assert_eq!(suppressed(client, "erin@example.test").await, None);

    // The real one returns our Message-ID and names erin: erin alone bounces.
    deliver(
        server,
        "",
        to,
        &late_dsn(
            to,
            "erin@example.test",
            "5.1.1",
            "550 5.1.1 unknown",
            &sent.message_id_header,
        ),
    )
    .await;
    let bounced = next_event(client, "message.bounced", &mut events).await;
    assert_eq!(bounced.recipient.as_deref(), Some("erin@example.test"));
    let real = received(client, &inbox.id, &mut cursor).await;
    let bounce = real.parsed.bounce.expect("a bounce");
    assert_eq!(bounce.sent_message_id.as_deref(), Some(sent.id.as_str()));
    assert_eq!(
        recipient_state(client, &sent.id, "erin@example.test")
            .await
            .status,
        "bounced"
    );
    assert_eq!(
        recipient_state(client, &sent.id, "frank@example.test")
            .await
            .status,
        "delivered"
    );
    assert!(suppressed(client, "erin@example.test").await.is_some());
    assert_eq!(suppressed(client, "frank@example.test").await, None);
}

/// Late hard bounces count like bounces at delivery: with a breaker at 50% of at least two
/// recipients, the first of two delivered recipients bouncing later pauses the inbox.
async fn late_hard_bounces_trip_the_circuit_breaker(backend: Backend) {
    let world = World::start_with(
        backend,
        "127.0.0.4",
        &[
            ("breaker.min_recipients", "2"),
            ("breaker.hard_bounce_rate", "0.5"),
        ],
    )
    .await;
    let (server, client, inbox) = (&world.server, &world.client, &world.inbox);
    let mut events = "0".to_owned();
    let both = ["gina@example.test", "hal@example.test"];
    let sent = send_and_deliver(client, inbox, &world.sink, &both, &mut events).await;
    let (_, gina_path) = sent.return_path("gina@example.test");
    deliver(
        server,
        "",
        gina_path,
        &late_dsn(
            gina_path,
            "gina@example.test",
            "5.1.1",
            "550 5.1.1 no such user",
            "x@y.test",
        ),
    )
    .await;
    let paused = next_event(client, "sending.paused", &mut events).await;
    assert_eq!(paused.inbox_id.as_deref(), Some(inbox.id.as_str()));
    assert_eq!(paused.detail.unwrap()["reason"], "hard_bounce_rate");
}
