//! Custom domains end to end, by API, against a real DNS server whose records the test
//! "publishes" as an operator would: claim, verify (missing, then mismatch, then ok), an inbox
//! on the domain, mail to it through the MX, and mail from it signed with the domain's own key
//! (checked by dkimpy, independently).

mod support;

use crabmail_api::{AddressList, CreateInbox, SendMessage};
use crabmail_testkit::{Backend, Smtp, TestServer, Zone};
use support::dkimpy_verify;

fn status_of<'a>(v: &'a crabmail_api::DomainVerification, purpose: &str) -> &'a str {
    &v.checks
        .iter()
        .find(|c| c.record.purpose == purpose)
        .unwrap_or_else(|| panic!("no {purpose} check"))
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_domain_from_claim_to_signed_mail() {
    let dns = Zone::new().serve().await;
    let (k, v) = dns.setting();
    let server = TestServer::start_with(Backend::Sqlite, &[(&k, &v)]).await;
    let agent = server.signup().await;

    // Claim: pending, with the records to publish.
    let domain = agent.create_domain("AgentCo.test").await.unwrap();
    assert_eq!(
        (domain.name.as_str(), domain.status.as_str()),
        ("agentco.test", "pending")
    );
    let purposes: Vec<&str> = domain.records.iter().map(|r| r.purpose.as_str()).collect();
    for wanted in ["mx", "spf", "dkim", "dmarc", "mta-sts", "tls-rpt"] {
        assert!(purposes.contains(&wanted), "{wanted} in {purposes:?}");
    }
    let mx_record = domain.records.iter().find(|r| r.purpose == "mx").unwrap();
    assert_eq!(mx_record.value, format!("10 {}.", server.config.hostname()));

    // Not hosted yet: no inbox on it, and the MX treats it as any foreign domain.
    let refused = agent
        .create_inbox(&CreateInbox {
            name: Some("sales".into()),
            domain: Some("agentco.test".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(422), "{refused}");
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO client.test", "250").await;
    smtp.cmd("MAIL FROM:<x@client.test>", "250").await;
    smtp.cmd("RCPT TO:<sales@agentco.test>", "554 5.7.1").await;

    // Verify before publishing: every record missing, still pending.
    let check = agent.verify_domain(&domain.id).await.unwrap();
    assert_eq!(check.domain.status, "pending");
    assert!(
        check.checks.iter().all(|c| c.status == "missing"),
        "{:?}",
        check.checks
    );

    // The MX published wrong: a mismatch that says what was found.
    dns.add_mx("agentco.test", 10, "mx.elsewhere.test");
    let check = agent.verify_domain(&domain.id).await.unwrap();
    assert_eq!(status_of(&check, "mx"), "mismatch");
    let mx_check = check
        .checks
        .iter()
        .find(|c| c.record.purpose == "mx")
        .unwrap();
    assert!(
        mx_check
            .found
            .iter()
            .any(|f| f.contains("mx.elsewhere.test")),
        "{mx_check:?}"
    );
    assert_eq!(check.domain.status, "pending");

    // Published as told (the MX corrected): verified, every record ok.
    dns.remove("agentco.test");
    for r in &domain.records {
        match r.kind.as_str() {
            "MX" => {
                let (pref, host) = r.value.split_once(' ').unwrap();
                dns.add_mx(&r.name, pref.parse().unwrap(), host);
            }
            "TXT" => dns.add_txt(&r.name, &r.value),
            "CNAME" => dns.add_cname(&r.name, &r.value),
            other => panic!("unexpected record type {other}"),
        }
    }
    dns.add_a(server.config.hostname(), "127.0.0.1");
    let check = agent.verify_domain(&domain.id).await.unwrap();
    assert_eq!(check.domain.status, "verified", "{:?}", check.checks);
    assert!(
        check.checks.iter().all(|c| c.status == "ok"),
        "{:?}",
        check.checks
    );
    assert!(check.domain.verified_at.is_some());

    // Another account sees nothing of it and cannot use it.
    let stranger = server.signup().await;
    assert_eq!(
        stranger.get_domain(&domain.id).await.unwrap_err().status(),
        Some(404)
    );
    assert!(stranger.list_domains().await.unwrap().domains.is_empty());
    let refused = stranger
        .create_inbox(&CreateInbox {
            name: Some("sales".into()),
            domain: Some("agentco.test".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(422));
    assert_eq!(
        stranger
            .create_domain("agentco.test")
            .await
            .unwrap_err()
            .status(),
        Some(409),
        "verified by another account"
    );

    // An inbox on the domain receives through the MX.
    let sales = agent
        .create_inbox(&CreateInbox {
            name: Some("sales".into()),
            domain: Some("agentco.test".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(sales.address, "sales@agentco.test");
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO client.test", "250").await;
    let reply = smtp
        .send_mail(
            "buyer@client.test",
            &["sales@agentco.test"],
            "From: buyer@client.test\r\nTo: sales@agentco.test\r\nSubject: Quote\r\n\r\nHow much?\r\n",
        )
        .await;
    assert!(reply.text().starts_with("250"), "{}", reply.text());
    let list = agent
        .list_messages(&sales.id, None, Some(1), Some(30))
        .await
        .unwrap();
    assert_eq!(list.messages[0].content.subject.as_deref(), Some("Quote"));

    // Mail from it is signed with the domain's key (d=agentco.test), and dkimpy agrees.
    let (reader, reader_inbox) = server.mailbox("reader").await;
    agent
        .send_message(
            &sales.id,
            &SendMessage {
                to: AddressList::One(reader_inbox.address.clone()),
                subject: Some("Our quote".into()),
                text: Some("42 crabs.".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let list = reader
        .list_messages(&reader_inbox.id, None, Some(1), Some(30))
        .await
        .unwrap();
    let raw = reader.get_raw(&list.messages[0].id).await.unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("d=agentco.test;"), "{text}");
    assert!(
        !text.contains("d=crabmail.localhost;"),
        "signed with the domain's key only"
    );
    let verdicts = dkimpy_verify(&dns, &raw).await;
    assert!(
        !verdicts.is_empty() && verdicts.iter().all(|ok| *ok),
        "{verdicts:?}"
    );

    // A domain with inboxes cannot be given up; once they are gone, it can, and the MX
    // stops accepting mail for it.
    let in_use = agent.delete_domain(&domain.id).await.unwrap_err();
    assert_eq!(in_use.status(), Some(409));
    agent.delete_inbox(&sales.id).await.unwrap();
    agent.delete_domain(&domain.id).await.unwrap();
    assert_eq!(
        agent.get_domain(&domain.id).await.unwrap_err().status(),
        Some(404)
    );
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO client.test", "250").await;
    smtp.cmd("MAIL FROM:<x@client.test>", "250").await;
    smtp.cmd("RCPT TO:<sales@agentco.test>", "554 5.7.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_domain_and_bad_names_cannot_be_claimed() {
    let server = TestServer::start().await;
    let agent = server.signup().await;
    for name in [
        "crabmail.localhost",
        "sub.crabmail.localhost",
        "not a domain",
        "-x.test",
    ] {
        let e = agent.create_domain(name).await.unwrap_err();
        assert_eq!(e.status(), Some(422), "{name}: {e}");
    }
    let first = agent.create_domain("twice.test").await.unwrap();
    assert_eq!(
        agent
            .create_domain("twice.test")
            .await
            .unwrap_err()
            .status(),
        Some(409)
    );
    // Claiming is not owning: a second account may claim a pending domain too; whoever
    // verifies first gets it.
    let other = server.signup().await;
    let second = other.create_domain("twice.test").await.unwrap();
    assert_ne!(first.id, second.id);
}
