//! Sending quotas end to end: bursts held and released in order on a manual clock, refusals with
//! the IETF RateLimit fields, SMTP submission's 451, and one quota for two nodes on PostgreSQL.

use crabmail::clock::{ManualClock, Timestamp};
use crabmail_api::client::Client;
use crabmail_api::{AddressList, CreateInbox, OnLimit, SendMessage, SetQuota};
use crabmail_testkit::{Backend, Smtp, TestServer, on_both_backends};
use std::time::Duration;

/// A whole minute, so the release times below are easy to read.
const T0: Timestamp = Timestamp(1_796_000_040_000);

fn note(to: &str, subject: String) -> SendMessage {
    SendMessage {
        to: AddressList::One(to.into()),
        subject: Some(subject),
        text: Some("status update".into()),
        ..Default::default()
    }
}

/// Subjects of an inbox's messages from the `from`th on, once there are `total` in all.
async fn arrivals(client: &Client, inbox: &str, from: usize, total: usize) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut cursor = "0".to_owned();
    while seen.len() < total {
        let page = client
            .list_messages(inbox, Some(&cursor), None, Some(30))
            .await
            .unwrap();
        assert!(
            !page.messages.is_empty(),
            "{} of {total} messages arrived",
            seen.len()
        );
        seen.extend(
            page.messages
                .iter()
                .map(|m| m.content.subject.clone().unwrap_or_default()),
        );
        cursor = page.next_cursor;
    }
    assert_eq!(seen.len(), total, "no more than the quota let through");
    seen.split_off(from)
}

fn subjects(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| format!("note {n:03}")).collect()
}

on_both_backends!(a_burst_over_the_minute_quota_is_held_and_leaves_a_window_at_a_time);

async fn a_burst_over_the_minute_quota_is_held_and_leaves_a_window_at_a_time(backend: Backend) {
    let clock = ManualClock::new(T0);
    // The warm-up ramp (50 recipients on a new inbox's first day) is off: this is about the
    // minute window alone.
    let server = TestServer::start_with_manual_clock(
        backend,
        &[
            ("limits.inbox.per_minute", "60"),
            ("limits.warmup.start", "0"),
        ],
        clock.clone(),
    )
    .await;
    let (client, bot) = server.mailbox("bot").await;
    let (reader, target) = server.mailbox("reader").await;
    let mut sent = Vec::new();
    for n in 0..200 {
        let s = client
            .send_message(
                &bot.id,
                &note(&target.address, format!("note {n:03}")),
                None,
            )
            .await
            .expect("every send of the burst is accepted");
        sent.push(s);
    }
    let at = |secs: u64| T0.plus(Duration::from_secs(secs)).to_rfc3339();
    for (n, s) in sent.iter().enumerate() {
        let (status, release) = match n {
            0..60 => ("queued", at(0)),
            60..120 => ("throttled", at(61)),
            120..180 => ("throttled", at(122)),
            _ => ("throttled", at(183)),
        };
        assert_eq!((n, s.status.as_str(), &s.release_at), (n, status, &release));
    }
    assert_eq!(
        sent[60]
            .held_by
            .as_ref()
            .map(|h| (h.scope.as_str(), h.window.as_str(), h.limit)),
        Some(("inbox", "per_minute", 60))
    );
    let held =
        crabmail_testkit::event(&client, "message.throttled", Some(&sent[60].id), None).await;
    let detail = held.detail.unwrap();
    assert_eq!(detail["release_at"], at(61));
    assert_eq!(detail["held_by"], "inbox 60 per_minute");
    let quota = client.get_quota(Some(&bot.id)).await.unwrap();
    assert_eq!(quota.limits.per_minute, 60);
    assert_eq!((quota.used.per_minute, quota.remaining.per_minute), (60, 0));
    assert_eq!(quota.held, 140);
    assert_eq!(quota.next_release_at, Some(at(61)));

    // Each window lets exactly the next sixty through, in the order they were sent.
    let mut released = 0;
    for (batch, step) in [(60, 0), (60, 61), (60, 61), (20, 61)] {
        clock.advance(Duration::from_secs(step));
        let mut got = arrivals(&reader, &target.id, released, released + batch).await;
        got.sort();
        assert_eq!(got, subjects(released..released + batch));
        released += batch;
        if released < 200 {
            let next = client.get_message(&sent[released].id).await.unwrap();
            assert_eq!(next.delivery.unwrap().status, "throttled");
        }
    }
    let quota = client.get_quota(Some(&bot.id)).await.unwrap();
    assert_eq!(quota.held, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_prefers_refusal_gets_429_with_ratelimit_fields() {
    let server = TestServer::start().await;
    let (client, bot) = server.mailbox("bot").await;
    let (_, target) = server.mailbox("reader").await;
    // Tighten: two a minute, three a day; loosening past the server's default is refused.
    let too_much = client
        .set_quota(
            Some(&bot.id),
            &SetQuota {
                per_minute: Some(61),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(too_much.status(), Some(422));
    let set = client
        .set_quota(
            Some(&bot.id),
            &SetQuota {
                per_minute: Some(2),
                per_day: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((set.limits.per_minute, set.limits.per_day), (2, 3));

    let url = format!("{}/v1/inboxes/{}/messages", server.url(), bot.id);
    let token = client.token().unwrap().to_owned();
    let send = |subject: &str| {
        let mut body = note(&target.address, subject.into());
        body.on_limit = Some(OnLimit::Reject);
        reqwest::Client::new()
            .post(&url)
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    for n in 0..2 {
        assert_eq!(send(&format!("ok {n}")).await.unwrap().status(), 202);
    }
    let refused = send("burst").await.unwrap();
    assert_eq!(refused.status(), 429);
    let header = |name: &str| {
        refused
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let wait: u64 = header("retry-after").unwrap().parse().unwrap();
    assert!((55..=61).contains(&wait), "retry after {wait} s");
    // The quota's policy first, then the API's own request pacing, in one list field.
    let policy = header("ratelimit-policy").unwrap();
    assert!(
        policy.starts_with("\"per_minute\";q=2;w=60, \"api\";"),
        "{policy}"
    );
    let state = header("ratelimit").unwrap();
    let quota_state = format!("\"per_minute\";r=0;t={wait}, \"api\";");
    assert!(state.starts_with(&quota_state), "{state}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Nothing was queued for the refused send.
    assert_eq!(
        client
            .get_quota(Some(&bot.id))
            .await
            .unwrap()
            .used
            .per_minute,
        2
    );

    // The day's quota: the third message of the day is held (not refused) by default...
    let held = client
        .send_message(&bot.id, &note(&target.address, "held".into()), None)
        .await
        .unwrap();
    assert_eq!(held.status, "throttled");
    // ...and a refusal past it says the day is used up, not "slow down".
    let refused = send("fourth").await.unwrap();
    assert_eq!(refused.status(), 429);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "daily_quota_exceeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_submission_over_quota_is_told_when_to_come_back() {
    let server = TestServer::start_with(Backend::Sqlite, &[("limits.inbox.per_minute", "1")]).await;
    let (client, bot) = server.mailbox("bot").await;
    let (_, target) = server.mailbox("reader").await;
    let mut smtp = Smtp::connect_tls(server.submission_tls).await;
    smtp.login(&bot.address, client.token().unwrap()).await;
    let body = |n: u32| {
        format!(
            "From: <{}>\r\nTo: <{}>\r\nSubject: {n}\r\n\r\nhello\r\n",
            bot.address, target.address
        )
    };
    let first = smtp
        .send_mail(&bot.address, &[&target.address], &body(1))
        .await;
    assert!(first.text().starts_with("250"), "{}", first.text());
    let second = smtp
        .send_mail(&bot.address, &[&target.address], &body(2))
        .await;
    let text = second.text();
    assert!(text.starts_with("451 4.7.1"), "{text}");
    assert!(text.contains("inbox 1 per_minute"), "{text}");
    assert!(text.contains("try again in 6"), "about a minute: {text}");
    assert_eq!(client.get_quota(Some(&bot.id)).await.unwrap().held, 0);

    // An operator who prefers holding: 250, and the reply says until when.
    let server = TestServer::start_with(
        Backend::Sqlite,
        &[
            ("limits.inbox.per_minute", "1"),
            ("limits.submission_on_limit", "\"queue\""),
        ],
    )
    .await;
    let (client, bot) = server.mailbox("bot").await;
    let mut smtp = Smtp::connect_tls(server.submission_tls).await;
    smtp.login(&bot.address, client.token().unwrap()).await;
    let body = |n: u32| {
        format!(
            "From: <{}>\r\nTo: <{}>\r\nSubject: {n}\r\n\r\nhello\r\n",
            bot.address, target.address
        )
    };
    smtp.send_mail(&bot.address, &[&target.address], &body(1))
        .await;
    let held = smtp
        .send_mail(&bot.address, &[&target.address], &body(2))
        .await;
    assert!(held.text().starts_with("250"), "{}", held.text());
    assert!(
        held.text().contains("held by inbox 1 per_minute until"),
        "{}",
        held.text()
    );
    assert_eq!(client.get_quota(Some(&bot.id)).await.unwrap().held, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgresql_share_one_quota() {
    let url = crabmail_testkit::pg_schema_url().await;
    let settings = [("limits.inbox.per_minute", "2")];
    let start = |url: String| async move {
        TestServer::start_in(
            tempfile::tempdir().unwrap(),
            Backend::Postgres,
            &url,
            &settings,
        )
        .await
    };
    let a = start(url.clone()).await;
    let b = start(url).await;
    let (client_a, bot) = a.mailbox("bot").await;
    let client_b = b.client(client_a.token().map(str::to_owned));
    let target = client_a
        .create_inbox(&CreateInbox {
            name: Some("reader".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let sends = (0..6).map(|n| {
        let client = if n % 2 == 0 { &client_a } else { &client_b };
        let message = note(&target.address, format!("note {n}"));
        let bot = bot.id.clone();
        async move { client.send_message(&bot, &message, None).await.unwrap() }
    });
    let sent = futures::future::join_all(sends).await;
    let queued = sent.iter().filter(|s| s.status == "queued").count();
    assert_eq!(queued, 2, "two a minute between both nodes: {sent:?}");
    let quota = client_b.get_quota(Some(&bot.id)).await.unwrap();
    assert_eq!((quota.used.per_minute, quota.held), (2, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requests_are_paced_per_token_with_ratelimit_fields() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        &[("api.rate_limit", "1"), ("api.rate_burst", "3")],
    )
    .await;
    let (client, _) = server.mailbox("bot").await; // two requests of the burst
    let token = client.token().unwrap().to_owned();
    let get = || {
        reqwest::Client::new()
            .get(format!("{}/v1/inboxes", server.url()))
            .bearer_auth(&token)
            .send()
    };
    let field = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let ok = get().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(field(&ok, "ratelimit-policy"), "\"api\";q=3;w=3");
    let state = field(&ok, "ratelimit");
    assert!(state.starts_with("\"api\";r="), "{state}");
    // A burst of three, then one a second: a quick run of requests meets a 429 soon.
    let mut answers = Vec::new();
    let refused = loop {
        let r = get().await.unwrap();
        if r.status() != 200 {
            break r;
        }
        answers.push(field(&r, "ratelimit"));
        assert!(answers.len() < 10, "never refused: {answers:?}");
    };
    assert_eq!(refused.status(), 429);
    assert_eq!(field(&refused, "retry-after"), "1");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests");
    // Another account's token is not slowed by this one.
    let (other, _) = server.mailbox("other").await;
    assert!(other.list_inboxes().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reports_every_decision_and_queues_nothing() {
    let clock = ManualClock::new(T0);
    let server = TestServer::start_with_manual_clock(Backend::Sqlite, &[], clock).await;
    let (client, bot) = server.mailbox("bot").await;
    let (reader, target) = server.mailbox("reader").await;
    let preview = client
        .dry_run(&bot.id, &note(&target.address, "would go".into()))
        .await
        .unwrap();
    assert!(preview.dry_run);
    assert_eq!(preview.outcome, "queued");
    assert_eq!(preview.release_at, Some(T0.to_rfc3339()));
    assert_eq!(preview.dkim_domain, server.domain());
    assert!(
        !preview.dkim_selectors.is_empty(),
        "the shared domain signs"
    );
    assert!(preview.size > 100, "{}", preview.size);
    assert_eq!(preview.recipients[0].suppressed, None);
    assert_eq!(preview.inbox_quota.limits.per_minute, 60);
    // Nothing was queued or counted.
    assert_eq!(
        client
            .get_quota(Some(&bot.id))
            .await
            .unwrap()
            .used
            .per_minute,
        0
    );
    assert!(
        client
            .list_events(None, None)
            .await
            .unwrap()
            .events
            .is_empty()
    );
    let listed = reader
        .list_messages(&target.id, None, None, None)
        .await
        .unwrap();
    assert!(listed.messages.is_empty());

    // A suppressed recipient: refused, and which one and why.
    let bounce = "bounce@simulator.crabmail.test";
    let sent = client
        .send_message(&bot.id, &note(bounce, "bounces".into()), None)
        .await
        .unwrap();
    let mut cursor = "0".to_owned();
    'bounced: loop {
        let page = client.list_events(Some(&cursor), Some(30)).await.unwrap();
        assert!(!page.events.is_empty(), "no bounce");
        for e in &page.events {
            if e.kind == "message.bounced" && e.message_id.as_deref() == Some(&sent.id) {
                break 'bounced;
            }
        }
        cursor = page.next_cursor;
    }
    let mut both = note(&target.address, "two".into());
    both.cc = AddressList::One(bounce.into());
    let preview = client.dry_run(&bot.id, &both).await.unwrap();
    assert_eq!(preview.outcome, "refused");
    assert_eq!(
        preview.refusal.as_ref().map(|r| r.code.as_str()),
        Some("suppressed")
    );
    assert_eq!(preview.recipients[0].suppressed, None);
    assert!(
        preview.recipients[1]
            .suppressed
            .as_deref()
            .is_some_and(|r| r.contains("5.1.1"))
    );

    // Over a quota: held until when, or refused for a caller that prefers it.
    client
        .set_quota(
            Some(&bot.id),
            &SetQuota {
                per_minute: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let preview = client
        .dry_run(&bot.id, &note(&target.address, "later".into()))
        .await
        .unwrap();
    assert_eq!(preview.outcome, "throttled");
    assert_eq!(
        preview.release_at,
        Some(T0.plus(Duration::from_secs(61)).to_rfc3339())
    );
    let mut reject = note(&target.address, "refuse".into());
    reject.on_limit = Some(OnLimit::Reject);
    let preview = client.dry_run(&bot.id, &reject).await.unwrap();
    assert_eq!(preview.outcome, "refused");
    assert_eq!(
        preview.refusal.map(|r| r.code),
        Some("rate_limited".to_owned())
    );
    // An invalid request is refused as a real send would be.
    let invalid = client
        .dry_run(&bot.id, &note("not an address", "x".into()))
        .await
        .unwrap_err();
    assert_eq!(invalid.status(), Some(422));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_inbox_warms_up_fifty_recipients_on_its_first_day() {
    let clock = ManualClock::new(T0);
    let server = TestServer::start_with_manual_clock(Backend::Sqlite, &[], clock.clone()).await;
    let (client, bot) = server.mailbox("bot").await;
    let quota = client.get_quota(Some(&bot.id)).await.unwrap();
    assert_eq!(quota.limits.warmup_recipients_per_day, 50);
    let mut many = note("delivered@simulator.crabmail.test", "to many".into());
    many.to = AddressList::Many(
        (0..50)
            .map(|n| format!("delivered+{n}@simulator.crabmail.test"))
            .collect(),
    );
    assert_eq!(
        client
            .send_message(&bot.id, &many, None)
            .await
            .unwrap()
            .status,
        "queued"
    );
    let next = client
        .send_message(
            &bot.id,
            &note("delivered@simulator.crabmail.test", "51st".into()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(next.status, "throttled");
    let hit = next.held_by.unwrap();
    assert_eq!(
        (hit.window.as_str(), hit.limit),
        ("warmup_recipients_per_day", 50)
    );
    // Tomorrow the ramp allows twice as many.
    clock.advance(Duration::from_secs(86_400));
    let quota = client.get_quota(Some(&bot.id)).await.unwrap();
    assert_eq!(quota.limits.warmup_recipients_per_day, 100);
}
