//! DMARC as a sending domain's policy meets crabmail's MX over real SMTP: SPF and DKIM each
//! aligned or not, the subdomain policy (sp=), refusal for p=reject and quarantine for
//! p=quarantine. Senders connect from their own loopback addresses, so SPF judges real peers;
//! DKIM signatures are made by dkimpy; the zone is served by a real DNS server.

mod support;

use crabmail_api::client::Client;
use crabmail_testkit::{Backend, Smtp, TestServer, Zone};
use std::net::IpAddr;
use support::{dkimpy_sign, new_key};

/// brand.test's outbound server (its SPF names it).
const BRAND_MTA: &str = "127.0.0.14";
/// A host nobody's SPF names.
const STRANGER: &str = "127.0.0.15";

fn message(from: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: <{from}>\r\n\
         To: <agent@crabmail.localhost>\r\n\
         Subject: {subject}\r\n\
         Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <{subject}@dmarc.test>\r\n\
         \r\n\
         Please wire the payment today.\r\n"
    )
    .into_bytes()
}

struct Mx<'a> {
    server: &'a TestServer,
    agent: Client,
    inbox: String,
    cursor: String,
}

impl Mx<'_> {
    /// Delivers from `source` with `mail_from`; returns the reply to the end of DATA.
    async fn deliver(&self, source: &str, mail_from: &str, message: &[u8]) -> String {
        let source: IpAddr = source.parse().unwrap();
        let mut smtp = Smtp::connect_from(source, self.server.mx).await;
        smtp.cmd("EHLO sender.example", "250").await;
        smtp.send_mail(
            mail_from,
            &["agent@crabmail.localhost"],
            std::str::from_utf8(message).unwrap(),
        )
        .await
        .text()
    }

    /// The next message stored, quarantined or not.
    async fn next(&mut self) -> crabmail_api::Message {
        let list = self
            .agent
            .list_all_messages(&self.inbox, Some(&self.cursor), Some(30))
            .await
            .unwrap();
        let first = list.messages.first().expect("a message was stored");
        self.cursor = first_cursor(&list);
        self.agent.get_message(&first.id).await.unwrap()
    }
}

/// The cursor just after the first message of a page (pages here hold one message).
fn first_cursor(list: &crabmail_api::MessageList) -> String {
    assert_eq!(list.messages.len(), 1, "one message at a time");
    list.next_cursor.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dmarc_alignment_and_policy_over_smtp() {
    let keys = tempfile::tempdir().unwrap();
    let (brand_key, brand_txt) = new_key(keys.path(), "brand", "rsa");
    let (other_key, other_txt) = new_key(keys.path(), "other", "rsa");
    let dns = Zone::new()
        .txt("brand.test", &format!("v=spf1 ip4:{BRAND_MTA} -all"))
        .txt("_dmarc.brand.test", "v=DMARC1; p=reject; sp=quarantine")
        .txt("k1._domainkey.brand.test", &brand_txt)
        .txt("other.test", &format!("v=spf1 ip4:{BRAND_MTA} -all"))
        .txt("k1._domainkey.other.test", &other_txt)
        .txt("news.brand.test", "v=spf1 -all")
        .serve()
        .await;
    let (k, v) = dns.setting();
    let server = TestServer::start_with(Backend::Sqlite, &[(&k, &v)]).await;
    let (agent, inbox) = server.mailbox("agent").await;
    let mut mx = Mx {
        server: &server,
        agent,
        inbox: inbox.id.clone(),
        cursor: "0".into(),
    };

    // SPF passes for brand.test, the From domain: aligned, DMARC passes.
    let reply = mx
        .deliver(
            BRAND_MTA,
            "bounces@brand.test",
            &message("ceo@brand.test", "spf-aligned"),
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let m = mx.next().await;
    let auth = m.auth.unwrap();
    assert_eq!(
        (auth.spf.result.as_str(), auth.dmarc.result.as_str()),
        ("pass", "pass"),
        "{auth:?}"
    );
    assert_eq!(auth.dmarc.domain, "brand.test");
    assert_eq!(auth.dmarc.policy, "reject");
    assert!(!m.quarantined);

    // From a stranger SPF fails, but brand.test's DKIM signature is aligned: DMARC passes.
    let signed = dkimpy_sign(
        &message("ceo@brand.test", "dkim-aligned"),
        "k1",
        "brand.test",
        &brand_key,
        "rsa",
    )
    .await;
    let reply = mx.deliver(STRANGER, "bounces@brand.test", &signed).await;
    assert!(reply.starts_with("250"), "{reply}");
    let auth = mx.next().await.auth.unwrap();
    assert_eq!(auth.spf.result, "fail", "{auth:?}");
    assert_eq!(auth.dkim[0].result, "pass", "{auth:?}");
    assert_eq!(auth.dmarc.result, "pass", "{auth:?}");

    // SPF passes, but for other.test, not the From domain: not aligned. p=reject: refused.
    let reply = mx
        .deliver(
            BRAND_MTA,
            "bounces@other.test",
            &message("ceo@brand.test", "spf-unaligned"),
        )
        .await;
    assert!(reply.starts_with("550 5.7.1"), "{reply}");
    assert!(
        reply.contains("brand.test"),
        "the reply names the policy's domain: {reply}"
    );

    // A valid DKIM signature, but by other.test: not aligned either. Refused.
    let signed = dkimpy_sign(
        &message("ceo@brand.test", "dkim-unaligned"),
        "k1",
        "other.test",
        &other_key,
        "rsa",
    )
    .await;
    let reply = mx.deliver(STRANGER, "bounces@other.test", &signed).await;
    assert!(reply.starts_with("550 5.7.1"), "{reply}");

    // Relaxed alignment: DKIM by brand.test covers mail From a subdomain of it.
    let signed = dkimpy_sign(
        &message("alerts@news.brand.test", "dkim-relaxed"),
        "k1",
        "brand.test",
        &brand_key,
        "rsa",
    )
    .await;
    let reply = mx
        .deliver(STRANGER, "bounces@news.brand.test", &signed)
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let auth = mx.next().await.auth.unwrap();
    assert_eq!(auth.dmarc.result, "pass", "{auth:?}");
    assert_eq!(auth.dmarc.domain, "news.brand.test");

    // A subdomain without a record of its own falls under brand.test's sp=quarantine: the
    // failing message is kept, quarantined, out of the default list.
    let reply = mx
        .deliver(
            STRANGER,
            "bounces@news.brand.test",
            &message("alerts@news.brand.test", "subdomain-policy"),
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let m = mx.next().await;
    let auth = m.auth.clone().unwrap();
    assert_eq!(auth.dmarc.result, "fail", "{auth:?}");
    assert_eq!(auth.dmarc.policy, "quarantine", "sp= applies: {auth:?}");
    assert!(m.quarantined);
    let default_list = mx
        .agent
        .list_messages(&mx.inbox, None, Some(100), None)
        .await
        .unwrap();
    assert!(
        default_list
            .messages
            .iter()
            .all(|s| s.id != m.id && !s.quarantined),
        "quarantined mail is left out of the default list"
    );
    assert_eq!(default_list.messages.len(), 3);
    let everything = mx
        .agent
        .list_all_messages(&mx.inbox, None, None)
        .await
        .unwrap();
    assert_eq!(everything.messages.len(), 4);
    assert!(
        everything
            .messages
            .iter()
            .any(|s| s.id == m.id && s.quarantined)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_enforcement_can_be_turned_off() {
    let dns = Zone::new()
        .txt("brand.test", "v=spf1 -all")
        .txt("_dmarc.brand.test", "v=DMARC1; p=reject")
        .serve()
        .await;
    let (k, v) = dns.setting();
    let server = TestServer::start_with(
        Backend::Sqlite,
        &[(&k, &v), ("verify.dmarc_reject", "false")],
    )
    .await;
    let (agent, inbox) = server.mailbox("agent").await;
    let mx = Mx {
        server: &server,
        agent,
        inbox: inbox.id.clone(),
        cursor: "0".into(),
    };
    // With refusal off, a failing p=reject message is kept and marked, not refused.
    let reply = mx
        .deliver(
            STRANGER,
            "bounces@brand.test",
            &message("ceo@brand.test", "kept"),
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let list = mx
        .agent
        .list_all_messages(&mx.inbox, None, Some(30))
        .await
        .unwrap();
    let m = mx.agent.get_message(&list.messages[0].id).await.unwrap();
    let auth = m.auth.unwrap();
    assert_eq!(
        (auth.dmarc.result.as_str(), auth.dmarc.policy.as_str()),
        ("fail", "reject")
    );
    assert!(
        m.quarantined,
        "p=reject mail that is not refused is quarantined"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_failures_are_temperror_never_pass_or_refusal() {
    let keys = tempfile::tempdir().unwrap();
    let (key, _) = new_key(keys.path(), "k1", "rsa");
    // Every lookup about brand.test goes unanswered, as when its DNS servers are down.
    let dns = Zone::new()
        .timeout("brand.test")
        .timeout("_dmarc.brand.test")
        .timeout("k1._domainkey.brand.test")
        .serve()
        .await;
    let (k, v) = dns.setting();
    let server =
        TestServer::start_with(Backend::Sqlite, &[(&k, &v), ("dns.timeout", "\"300ms\"")]).await;
    let (agent, inbox) = server.mailbox("agent").await;
    let mut mx = Mx {
        server: &server,
        agent,
        inbox: inbox.id.clone(),
        cursor: "0".into(),
    };
    let signed = dkimpy_sign(
        &message("ceo@brand.test", "dns-down"),
        "k1",
        "brand.test",
        &key,
        "rsa",
    )
    .await;
    let reply = mx.deliver(BRAND_MTA, "bounces@brand.test", &signed).await;
    assert!(reply.starts_with("250"), "kept, not refused: {reply}");
    let m = mx.next().await;
    let auth = m.auth.unwrap();
    assert_eq!(auth.spf.result, "temperror", "{auth:?}");
    assert_eq!(auth.dkim[0].result, "temperror", "{auth:?}");
    assert_eq!(auth.dmarc.result, "temperror", "{auth:?}");
    assert!(!m.quarantined);
}
