//! DKIM interoperability both ways with independent implementations: dkimpy (PyPI) and
//! OpenDKIM (Debian's opendkim-tools), with public keys served by a real DNS server on loopback.
//!
//! OpenDKIM's tools resolve through the system resolver, which cannot be pointed at a port, so
//! its checks run in a private mount namespace whose /etc/resolv.conf names 127.0.0.13, where
//! the test zone answers on port 53 (tests run as root).

use crabmail::clock::{ManualClock, Timestamp};
use crabmail::store::StoreError;
use crabmail_api::{AddressList, SendMessage};
mod support;

use crabmail_testkit::{Backend, Smtp, TestServer, Zone};
use serde::Deserialize;
use std::path::Path;
use support::{dkimpy_sign, dkimpy_verify, new_key, replace_once, run};
use tokio::process::Command;

/// The loopback "host" whose port 53 serves DNS to OpenDKIM.
const OPENDKIM_DNS: &str = "127.0.0.13";

/// OpenDKIM's verdict on `message`: Ok when its signatures verify, else what it said.
async fn opendkim_verify(message: &[u8], workdir: &Path) -> Result<(), String> {
    let resolv = workdir.join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {OPENDKIM_DNS}\n")).unwrap();
    let out = run(
        Command::new("unshare").args([
            "-m",
            "sh",
            "-c",
            &format!(
                "mount --bind {} /etc/resolv.conf && exec opendkim-testmsg",
                resolv.display()
            ),
        ]),
        message,
    )
    .await;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {said}", out.status))
    }
}

async fn opendkim_sign(message: &[u8], selector: &str, domain: &str, key: &Path) -> Vec<u8> {
    let out = run(
        Command::new("opendkim-testmsg").args([
            "-C",
            "-d",
            domain,
            "-s",
            selector,
            "-k",
            key.to_str().unwrap(),
        ]),
        message,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    value: String,
    purpose: String,
}

/// What `crabmail domain records --json` tells the operator to publish for the shared domain.
fn published_records(server: &TestServer) -> Vec<Record> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crabmail"))
        .args(["domain", "records", "--json", "--data-dir"])
        .arg(server.data_dir())
        .args(["--domain", server.domain()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("records JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crabmail_signatures_verify_in_dkimpy_and_opendkim() {
    let dns = Zone::new()
        .serve_on(format!("{OPENDKIM_DNS}:53").parse().unwrap())
        .await;
    let (k, v) = dns.setting();
    let server =
        TestServer::start_with(Backend::Sqlite, &[(&k, &v), ("dkim.ed25519", "true")]).await;
    let (alice, alice_inbox) = server.mailbox("alice").await;
    let (bob, bob_inbox) = server.mailbox("bob").await;
    alice
        .send_message(
            &alice_inbox.id,
            &SendMessage {
                to: AddressList::One(bob_inbox.address.clone()),
                subject: Some("Quarterly numbers — résumé".into()),
                text: Some("Revenue is up.\n\nSee you at 10:00.\n".into()),
                html: Some("<p>Revenue is <b>up</b>.</p>".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let list = bob
        .list_messages(&bob_inbox.id, None, Some(1), Some(60))
        .await
        .unwrap();
    let raw = bob.get_raw(&list.messages[0].id).await.unwrap();

    // The operator publishes what crabmail says to publish; the verifiers find it there.
    let records = published_records(&server);
    let dkim: Vec<&Record> = records.iter().filter(|r| r.purpose == "dkim").collect();
    assert_eq!(dkim.len(), 2, "RSA and Ed25519 keys");
    for r in &dkim {
        assert_eq!(r.kind, "TXT");
        dns.add_txt(&r.name, &r.value);
    }

    assert_eq!(
        dkimpy_verify(&dns, &raw).await,
        [true, true],
        "both signatures"
    );
    let workdir = tempfile::tempdir().unwrap();
    opendkim_verify(&raw, workdir.path())
        .await
        .expect("OpenDKIM verifies crabmail's signature");

    // One changed word in the body: both verifiers refuse it.
    let tampered = replace_once(&raw, "Revenue is up.", "Revenue is down.");
    assert_eq!(dkimpy_verify(&dns, &tampered).await, [false, false]);
    assert!(opendkim_verify(&tampered, workdir.path()).await.is_err());
    // So does a changed subject (a signed header).
    let tampered = replace_once(&raw, "Subject: ", "Subject: Re: ");
    assert_eq!(dkimpy_verify(&dns, &tampered).await, [false, false]);
    assert!(opendkim_verify(&tampered, workdir.path()).await.is_err());
}

fn message(from_domain: &str) -> Vec<u8> {
    format!(
        "From: Sender <news@{from_domain}>\r\n\
         To: reader@crabmail.localhost\r\n\
         Subject: Signed elsewhere\r\n\
         Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <interop-1@{from_domain}>\r\n\
         \r\n\
         This message was signed by another DKIM implementation.\r\n"
    )
    .into_bytes()
}

/// Delivers `message` to the MX as a sending server would; returns the final reply.
async fn deliver(server: &TestServer, mail_from: &str, message: &[u8]) -> String {
    let mut smtp = Smtp::connect(server.mx).await;
    smtp.cmd("EHLO mail.sender.test", "250").await;
    let text = String::from_utf8(message.to_vec()).unwrap();
    smtp.send_mail(mail_from, &["reader@crabmail.localhost"], &text)
        .await
        .text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkimpy_and_opendkim_signatures_verify_in_crabmail() {
    let keys = tempfile::tempdir().unwrap();
    let (rsa_key, rsa_txt) = new_key(keys.path(), "py", "rsa");
    let (ed_key, ed_txt) = new_key(keys.path(), "pyed", "ed25519");
    let (od_key, od_txt) = new_key(keys.path(), "od", "rsa");
    let dns = Zone::new()
        .txt("py._domainkey.sender.test", &rsa_txt)
        .txt("pyed._domainkey.sender.test", &ed_txt)
        .txt("_dmarc.sender.test", "v=DMARC1; p=reject")
        .txt("od._domainkey.od.test", &od_txt)
        .txt("_dmarc.od.test", "v=DMARC1; p=none")
        .serve()
        .await;
    let (k, v) = dns.setting();
    let server = TestServer::start_with(Backend::Sqlite, &[(&k, &v)]).await;
    let (reader, inbox) = server.mailbox("reader").await;

    let by_dkimpy = dkimpy_sign(
        &message("sender.test"),
        "py",
        "sender.test",
        &rsa_key,
        "rsa",
    )
    .await;
    let by_dkimpy_ed = dkimpy_sign(
        &message("sender.test"),
        "pyed",
        "sender.test",
        &ed_key,
        "ed25519",
    )
    .await;
    let by_opendkim = opendkim_sign(&message("od.test"), "od", "od.test", &od_key).await;
    let od_tampered = replace_once(&by_opendkim, "another DKIM", "a forged");
    // opendkim-testmsg signs with rsa-sha1, which RFC 8301 forbids verifiers to accept: crabmail
    // checks it (it verifies, so "policy", where the tampered copy is "fail") and does not let
    // it carry DMARC.
    let cases = [
        (
            &by_dkimpy,
            "sender.test",
            "py",
            "rsa-sha256",
            "pass",
            "pass",
        ),
        (
            &by_dkimpy_ed,
            "sender.test",
            "pyed",
            "ed25519-sha256",
            "pass",
            "pass",
        ),
        (&by_opendkim, "od.test", "od", "rsa-sha1", "policy", "fail"),
        (&od_tampered, "od.test", "od", "rsa-sha1", "fail", "fail"),
    ];
    let mut cursor = "0".to_owned();
    for (signed, domain, selector, algorithm, result, dmarc) in cases {
        let reply = deliver(&server, &format!("bounces@{domain}"), signed).await;
        assert!(reply.starts_with("250"), "{selector}: {reply}");
        let list = reader
            .list_messages(&inbox.id, Some(&cursor), Some(1), Some(30))
            .await
            .unwrap();
        cursor = list.next_cursor.clone();
        let message = reader.get_message(&list.messages[0].id).await.unwrap();
        let auth = message.auth.expect("auth results");
        assert_eq!(auth.dkim.len(), 1, "{auth:?}");
        let d = &auth.dkim[0];
        assert_eq!(
            (
                d.result.as_str(),
                d.domain.as_str(),
                d.selector.as_str(),
                d.algorithm.as_str()
            ),
            (result, domain, selector, algorithm),
            "{d:?}"
        );
        // SPF finds no record for either domain: DMARC rests on aligned DKIM alone.
        assert_eq!(auth.spf.result, "none", "{auth:?}");
        assert_eq!(auth.dmarc.result, dmarc, "{auth:?}");
        // The stored copy says the same, first, in the header our MX added.
        let raw = reader.get_raw_with_auth_results(&message.id).await;
        let raw = String::from_utf8(raw.unwrap()).unwrap();
        let mut lines = raw.split("\r\n");
        let mut first_header = lines.next().unwrap().to_owned();
        for line in lines.take_while(|l| l.starts_with(['\t', ' '])) {
            first_header.push_str(line);
        }
        assert!(
            first_header.starts_with(&format!(
                "Authentication-Results: {};",
                server.config.hostname()
            )),
            "{raw}"
        );
        assert!(
            first_header.contains(&format!("dkim={result} ("))
                && first_header.contains(&format!(
                    ") header.d={domain} header.s={selector} header.a={algorithm};"
                )),
            "{first_header}"
        );
    }

    // Tampered after dkimpy signed it: DKIM fails, nothing else passes aligned, and
    // sender.test says p=reject, so the message is refused at the end of DATA, never stored.
    let tampered = replace_once(&by_dkimpy, "another DKIM", "a forged");
    let reply = deliver(&server, "bounces@sender.test", &tampered).await;
    assert!(reply.starts_with("550 5.7.1"), "{reply}");
    let all = reader
        .list_all_messages(&inbox.id, None, None)
        .await
        .unwrap();
    assert_eq!(
        all.messages.len(),
        cases.len(),
        "the refused message is not stored"
    );
}

/// `crabmail check auth` judges a file as the MX judges the same message arriving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_auth_gives_the_mx_verdict_with_reasons() {
    let keys = tempfile::tempdir().unwrap();
    let (key, txt) = new_key(keys.path(), "py", "rsa");
    let dns = Zone::new()
        .txt("py._domainkey.sender.test", &txt)
        .txt("sender.test", "v=spf1 ip4:127.0.0.14 -all")
        .txt("_dmarc.sender.test", "v=DMARC1; p=quarantine")
        .serve()
        .await;
    let (k, v) = dns.setting();
    let server = TestServer::start_with(Backend::Sqlite, &[(&k, &v)]).await;
    let (reader, inbox) = server.mailbox("reader").await;
    let signed = dkimpy_sign(&message("sender.test"), "py", "sender.test", &key, "rsa").await;
    let file = keys.path().join("message.eml");
    let mut cursor = "0".to_owned();

    // From a host SPF does not name, the signature alone carries DMARC.
    for (source, spf, tampered) in [
        ("127.0.0.14", "pass", false),
        ("127.0.0.15", "fail", false),
        ("127.0.0.15", "fail", true),
    ] {
        let body = if tampered {
            replace_once(&signed, "another DKIM", "a forged")
        } else {
            signed.clone()
        };
        std::fs::write(&file, &body).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_crabmail"))
            .args(["check", "auth"])
            .arg(&file)
            .args(["--ip", source, "--helo", "mail.sender.test"])
            .args(["--mail-from", "bounces@sender.test"])
            .args(["--set", &format!("{k}={v}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let printed = String::from_utf8(out.stdout).unwrap();
        let dkim = if tampered { "fail" } else { "pass" };
        let dmarc = if tampered { "fail" } else { "pass" };
        assert!(
            printed.contains(&format!("spf:   {spf}: {source} is ")),
            "{printed}"
        );
        assert!(
            printed.contains(&format!(
                "dkim:  {dkim} (d=sender.test s=py a=rsa-sha256): "
            )),
            "{printed}"
        );
        assert!(
            printed.contains(&format!("dmarc: {dmarc} (policy quarantine): ")),
            "{printed}"
        );
        let action = if tampered { "quarantine" } else { "deliver" };
        assert!(printed.contains(&format!("action: {action}")), "{printed}");

        // The MX, given the same message from the same host, stores the same verdicts.
        let mut smtp = Smtp::connect_from(source.parse().unwrap(), server.mx).await;
        smtp.cmd("EHLO mail.sender.test", "250").await;
        let reply = smtp
            .send_mail(
                "bounces@sender.test",
                &["reader@crabmail.localhost"],
                std::str::from_utf8(&body).unwrap(),
            )
            .await;
        assert!(reply.text().starts_with("250"), "{}", reply.text());
        let page = reader
            .list_all_messages(&inbox.id, Some(&cursor), Some(30))
            .await
            .unwrap();
        cursor = page.next_cursor.clone();
        let stored = reader.get_message(&page.messages[0].id).await.unwrap();
        let auth = stored.auth.unwrap();
        assert_eq!(
            (
                auth.spf.result.as_str(),
                auth.dkim[0].result.as_str(),
                auth.dmarc.result.as_str()
            ),
            (spf, dkim, dmarc)
        );
        assert_eq!(stored.quarantined, tampered);
        let reason = auth.dkim[0].reason.clone().unwrap();
        assert!(
            printed.contains(&reason),
            "same reason: {reason} in {printed}"
        );
    }
}

/// `crabmail dkim rotate`: new keys sign from the next start; the old selector stays published
/// (and listed) for the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_rotation_signs_with_the_new_key_and_keeps_the_old_one_listed() {
    // The first keys are made at a fixed time long past, so the CLI's rotation (wall clock)
    // never falls in their second; the same-second refusal is checked on the store below.
    let made = Timestamp(1_767_225_600_000); // 2026-01-01T00:00:00Z
    let server =
        TestServer::start_with_manual_clock(Backend::Sqlite, &[], ManualClock::new(made)).await;
    let before = published_records(&server);
    let old: Vec<String> = before
        .iter()
        .filter(|r| r.purpose == "dkim")
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(old.len(), 1, "RSA only by default");
    let config = server.config.clone();
    let (dir, stopped) = server.stop().await;
    stopped.unwrap();

    // Selectors carry the time to the second: keys made in the same second as the current
    // ones are refused (the CLI then says to rotate again in a moment).
    {
        let store = crabmail::store::open(&config).await.unwrap();
        let domain = store
            .hosted_domain("crabmail.localhost")
            .await
            .unwrap()
            .unwrap();
        let same_second = crabmail::dkim::generate(&domain.id, made, false).unwrap();
        let refused = store.rotate_dkim_keys(&domain.id, same_second, made).await;
        assert!(matches!(refused, Err(StoreError::Conflict)), "{refused:?}");
        store.close().await;
    }

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crabmail"))
        .args(["dkim", "rotate", "crabmail.localhost", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).unwrap();
    let old_selector = old[0].split('.').next().unwrap();
    assert!(
        printed.contains(&format!("Keep {} published until", old[0])),
        "{printed}"
    );

    let server = TestServer::start_in(dir, Backend::Sqlite, "", &[]).await;
    let after = published_records(&server);
    let new: Vec<&Record> = after.iter().filter(|r| r.purpose == "dkim").collect();
    assert_eq!(new.len(), 1);
    assert_ne!(new[0].name, old[0]);
    let retired = after
        .iter()
        .find(|r| r.name == old[0])
        .expect("the old selector is still listed");
    assert!(
        retired.purpose.starts_with("dkim (retired; keep until"),
        "{}",
        retired.purpose
    );
    let new_selector = new[0].name.split('.').next().unwrap();

    let (alice, alice_inbox) = server.mailbox("alice").await;
    let (bob, bob_inbox) = server.mailbox("bob").await;
    alice
        .send_message(
            &alice_inbox.id,
            &SendMessage {
                to: AddressList::One(bob_inbox.address.clone()),
                text: Some("after rotation".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let list = bob
        .list_messages(&bob_inbox.id, None, Some(1), Some(60))
        .await
        .unwrap();
    let raw = String::from_utf8(bob.get_raw(&list.messages[0].id).await.unwrap()).unwrap();
    assert!(raw.contains(&format!("s={new_selector};")), "{raw}");
    assert!(!raw.contains(&format!("s={old_selector};")), "{raw}");
}
