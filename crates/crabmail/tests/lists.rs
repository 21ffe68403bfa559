//! Allow and block lists over real SMTP and HTTP: an allow-listed From counts only when
//! authentication proves it (a forged one is quarantined), a Reply-To outside the list is
//! flagged, a block can refuse outright, and outbound lists refuse recipients.

use crabmail_api::client::{Client, ClientError};
use crabmail_api::{AddressList, CreateListEntry, SendMessage};
use crabmail_testkit::{Backend, Smtp, TestServer, Zone};
use std::net::IpAddr;

/// partner.test's outbound server (its SPF names it).
const PARTNER_MTA: &str = "127.0.0.16";
/// A host nobody's SPF names.
const FORGER: &str = "127.0.0.17";

fn message(from: &str, reply_to: Option<&str>, subject: &str) -> String {
    let reply_to = reply_to
        .map(|r| format!("Reply-To: <{r}>\r\n"))
        .unwrap_or_default();
    format!(
        "From: <{from}>\r\n{reply_to}To: <agent@crabmail.localhost>\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@lists.test>\r\n\r\nPlease send the contract.\r\n"
    )
}

async fn deliver(server: &TestServer, source: &str, mail_from: &str, message: &str) -> String {
    let source: IpAddr = source.parse().unwrap();
    let mut smtp = Smtp::connect_from(source, server.mx).await;
    smtp.cmd("EHLO sender.example", "250").await;
    smtp.send_mail(mail_from, &["agent@crabmail.localhost"], message)
        .await
        .text()
}

fn entry(direction: &str, action: &str, pattern: &str, inbox: Option<&str>) -> CreateListEntry {
    CreateListEntry {
        direction: direction.into(),
        action: action.into(),
        pattern: pattern.into(),
        inbox_id: inbox.map(str::to_owned),
    }
}

/// The message with `subject`, quarantined or not, once it is listed.
async fn stored(client: &Client, inbox: &str, subject: &str) -> crabmail_api::Message {
    let mut cursor = "0".to_owned();
    loop {
        let page = client
            .list_all_messages(inbox, Some(&cursor), Some(30))
            .await
            .unwrap();
        assert!(!page.messages.is_empty(), "{subject} never listed");
        if let Some(m) = page
            .messages
            .iter()
            .find(|m| m.content.subject.as_deref() == Some(subject))
        {
            return client.get_message(&m.id).await.unwrap();
        }
        cursor = page.next_cursor;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allow_listed_from_counts_only_when_authentication_proves_it() {
    let dns = Zone::new()
        .txt("partner.test", &format!("v=spf1 ip4:{PARTNER_MTA} -all"))
        .serve()
        .await;
    let (k, v) = dns.setting();
    let server = TestServer::start_with(Backend::Sqlite, &[(&k, &v)]).await;
    let (agent, inbox) = server.mailbox("agent").await;
    agent
        .add_list_entry(&entry("inbound", "allow", "partner.test", Some(&inbox.id)))
        .await
        .unwrap();

    // From partner.test's own server: SPF passes for the From domain.
    let reply = deliver(
        &server,
        PARTNER_MTA,
        "boss@partner.test",
        &message("boss@partner.test", Some("boss@partner.test"), "genuine"),
    )
    .await;
    assert!(reply.starts_with("250"), "{reply}");
    let genuine = stored(&agent, &inbox.id, "genuine").await;
    assert!(!genuine.quarantined);
    let lists = genuine.sender_lists.unwrap();
    assert_eq!(
        (lists.verdict.as_str(), lists.from_authenticated),
        ("allowed", true)
    );
    assert!(!lists.reply_to_outside);

    // The same From forged from elsewhere: not proven, so not allowed: quarantined.
    deliver(
        &server,
        FORGER,
        "x@forger.test",
        &message("boss@partner.test", None, "forged"),
    )
    .await;
    let forged = stored(&agent, &inbox.id, "forged").await;
    assert!(forged.quarantined);
    let lists = forged.sender_lists.unwrap();
    assert_eq!(
        (lists.verdict.as_str(), lists.from_authenticated),
        ("not_allowed", false)
    );
    let shown = agent
        .list_messages(&inbox.id, None, None, None)
        .await
        .unwrap();
    assert!(
        shown
            .messages
            .iter()
            .all(|m| m.content.subject.as_deref() != Some("forged")),
        "quarantined mail stays out of the default list"
    );

    // A genuine partner whose Reply-To leads elsewhere is flagged.
    deliver(
        &server,
        PARTNER_MTA,
        "boss@partner.test",
        &message(
            "boss@partner.test",
            Some("payments@elsewhere.test"),
            "redirect",
        ),
    )
    .await;
    let redirect = stored(&agent, &inbox.id, "redirect").await;
    let lists = redirect.sender_lists.unwrap();
    assert_eq!(lists.verdict, "allowed");
    assert!(lists.reply_to_outside, "{lists:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_refuse_inbound_when_set_to_and_outbound_lists_refuse_recipients() {
    let server =
        TestServer::start_with(Backend::Sqlite, &[("lists.inbound_blocked", "\"reject\"")]).await;
    let (agent, inbox) = server.mailbox("agent").await;
    agent
        .add_list_entry(&entry("inbound", "block", "spam.test", None))
        .await
        .unwrap();
    let reply = deliver(
        &server,
        FORGER,
        "promo@spam.test",
        &message("promo@spam.test", None, "promo"),
    )
    .await;
    assert!(reply.starts_with("550 5.7.1"), "{reply}");
    let listed = agent.list_entries().await.unwrap();
    assert_eq!(listed.entries.len(), 1);

    // Outbound: a blocked domain is refused, and once an allow list exists only it passes.
    agent
        .add_list_entry(&entry("outbound", "block", "competitor.test", None))
        .await
        .unwrap();
    let send = |to: &str| {
        let message = SendMessage {
            to: AddressList::One(to.into()),
            text: Some("hi".into()),
            ..Default::default()
        };
        let (agent, inbox) = (agent.clone(), inbox.id.clone());
        async move { agent.send_message(&inbox, &message, None).await }
    };
    let code = |r: Result<crabmail_api::Sent, ClientError>| match r {
        Err(ClientError::Api { status, code, .. }) => (status, code),
        Ok(sent) => (202, sent.status),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        code(send("ceo@competitor.test").await),
        (422, "recipient_blocked".into())
    );
    assert_eq!(code(send("delivered@simulator.crabmail.test").await).0, 202);
    agent
        .add_list_entry(&entry(
            "outbound",
            "allow",
            "simulator.crabmail.test",
            Some(&inbox.id),
        ))
        .await
        .unwrap();
    assert_eq!(
        code(send("someone@else.test").await),
        (422, "recipient_blocked".into())
    );
    assert_eq!(code(send("delivered@simulator.crabmail.test").await).0, 202);
    let duplicate = agent
        .add_list_entry(&entry("outbound", "block", "competitor.test", None))
        .await
        .unwrap_err();
    assert_eq!(duplicate.status(), Some(409));
    let bad = agent
        .add_list_entry(&entry("outbound", "block", "not a pattern", None))
        .await
        .unwrap_err();
    assert_eq!(bad.status(), Some(422));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_shows_each_recipients_list_verdict() {
    let server = TestServer::start().await;
    let (agent, inbox) = server.mailbox("agent").await;
    agent
        .add_list_entry(&entry("outbound", "block", "competitor.test", None))
        .await
        .unwrap();
    let message = SendMessage {
        to: AddressList::Many(vec![
            "delivered@simulator.crabmail.test".into(),
            "ceo@competitor.test".into(),
        ]),
        text: Some("hi".into()),
        ..Default::default()
    };
    let preview = agent.dry_run(&inbox.id, &message).await.unwrap();
    assert_eq!(preview.outcome, "refused");
    assert_eq!(
        preview.refusal.map(|r| (r.code, r.field)),
        Some(("recipient_blocked".into(), Some("recipients[1]".into())))
    );
    let verdicts: Vec<&str> = preview.recipients.iter().map(|r| r.list.as_str()).collect();
    assert_eq!(verdicts, ["unlisted", "blocked"]);
}
