//! The store contract: the same tests run against SQLite (in a temporary directory) and against
//! the real PostgreSQL (a fresh schema per test). PostgreSQL must be reachable: these tests fail,
//! never skip, without it (`CRABMAIL_TEST_DATABASE_URL`, default postgres://postgres@127.0.0.1/test).

use crabmail::clock::Timestamp;
use crabmail::config::Config;
use crabmail::ingest::thread::ThreadKeys;
use crabmail::outbound::quota::{Hit, LimitOverrides, Limits, OnLimit, Scope, Window};
use crabmail::store::*;
use crabmail_api::SummaryContent;
use crabmail_testkit::pg_schema_url;
use std::sync::Arc;
use std::time::Duration;

struct Backend {
    store: Arc<dyn Store>,
    reopen: Box<dyn Fn() -> futures::future::BoxFuture<'static, Arc<dyn Store>> + Send + Sync>,
    _dir: Option<tempfile::TempDir>,
    /// Several nodes may open it (PostgreSQL): a job nobody claimed is held by its acceptor.
    shared: bool,
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    let config = Config::defaults().store;
    let store = sqlite::SqliteStore::open(&path, &config).await.unwrap();
    Backend {
        store: Arc::new(store),
        reopen: Box::new(move || {
            let (path, config) = (path.clone(), config.clone());
            Box::pin(async move {
                Arc::new(sqlite::SqliteStore::open(&path, &config).await.unwrap()) as Arc<dyn Store>
            })
        }),
        _dir: Some(dir),
        shared: false,
    }
}

async fn postgres() -> Backend {
    let url = pg_schema_url().await;
    let config = Config::defaults().store;
    let store = postgres::PgStore::connect(&url, &config).await.unwrap();
    Backend {
        store: Arc::new(store),
        reopen: Box::new(move || {
            let (url, config) = (url.clone(), config.clone());
            Box::pin(async move {
                Arc::new(postgres::PgStore::connect(&url, &config).await.unwrap()) as Arc<dyn Store>
            })
        }),
        _dir: None,
        shared: true,
    }
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $( #[tokio::test] async fn $name() { super::$name(super::sqlite().await).await; } )*
        }
        mod on_postgres {
            $( #[tokio::test] async fn $name() { super::$name(super::postgres().await).await; } )*
        }
    };
}

contract!(
    accounts_and_tokens,
    invites_are_single_use,
    inboxes_belong_to_one_account_and_are_never_recycled,
    inbound_messages_become_readable_in_order,
    ingest_is_idempotent_and_deletes_clean_up,
    concurrent_writes_all_commit,
    committed_data_survives_reopening,
    the_queue_leases_records_and_reports,
    idempotency_suppressions_and_operator_actions,
    threads_join_by_reference_then_subject_and_participants,
    ingest_jobs_are_leased_and_taken_over,
    sending_quotas_hold_refuse_and_count_once,
    webhooks_follow_the_log_under_a_lease,
    operators_see_disable_and_reset_accounts,
);

const T0: Timestamp = Timestamp(1_796_000_000_000);
const INGEST_LEASE: Duration = Duration::from_secs(60);

/// Every ingest job waiting, whoever holds it (claimed long after any lease, with a zero lease so
/// the next look sees them again).
async fn pending(s: &dyn Store) -> Vec<IngestJob> {
    s.claim_ingest(Timestamp(T0.0 + 3_600_000), Duration::ZERO, 100)
        .await
        .unwrap()
}

fn new_token(id: &str, account: &str, hash: &[u8], inbox: Option<&str>) -> NewToken {
    NewToken {
        id: id.into(),
        account_id: account.into(),
        hash: hash.to_vec(),
        inbox_id: inbox.map(Into::into),
        name: None,
        created_at: T0,
        scopes: None,
    }
}

async fn account(store: &dyn Store, id: &str) {
    store
        .create_account(NewAccount {
            id: id.into(),
            created_at: T0,
            first_token: new_token(&format!("tok_{id}"), id, id.as_bytes(), None),
            invite_hash: None,
        })
        .await
        .unwrap();
}

async fn inbox(store: &dyn Store, id: &str, account: &str, address: &str) {
    store
        .create_inbox(InboxRecord {
            id: id.into(),
            account_id: account.into(),
            address: address.into(),
            display_name: None,
            created_at: T0,
            approval_required: false,
        })
        .await
        .unwrap();
}

fn inbound(blob: &str, body: &[u8], to: &[(&str, &str, &str)]) -> InboundMessage {
    InboundMessage {
        blob_id: blob.into(),
        bytes: Arc::new(body.to_vec()),
        received_at: T0,
        envelope: Envelope {
            return_path: "sender@example.test".into(),
            remote_ip: "192.0.2.1".into(),
            helo: "client.example.test".into(),
            tls: true,
        },
        auth: None,
        quarantined: false,
        deliveries: to
            .iter()
            .map(|(message, inbox, account)| Delivery {
                message_id: (*message).into(),
                inbox_id: (*inbox).into(),
                account_id: (*account).into(),
                recipient: "rcpt@d.test".into(),
                quarantined: false,
                report_for: None,
            })
            .collect(),
    }
}

fn ingested(blob: &str, subject: &str) -> Ingested {
    Ingested {
        blob_id: blob.into(),
        from_address: Some("sender@example.test".into()),
        subject: Some(subject.into()),
        summary: Json::encode(&SummaryContent {
            subject: Some(subject.to_owned()),
            ..Default::default()
        }),
        parsed: Json::encode(&Default::default()),
        thread: ThreadKeys::default(),
        report: None,
    }
}

/// Thread keys as ingest derives them from headers.
fn keys(message_id: &str, refs: &[&str], subject: &str, participants: &[&str]) -> ThreadKeys {
    ThreadKeys {
        message_id: Some(message_id.into()),
        refs: refs.iter().map(|r| (*r).into()).collect(),
        subject_key: subject.into(),
        participants: participants.iter().map(|p| (*p).into()).collect(),
    }
}

async fn accounts_and_tokens(b: Backend) {
    let s = &*b.store;
    account(s, "acc_a").await;
    account(s, "acc_b").await;
    let found = s.find_token(b"acc_a".to_vec()).await.unwrap().unwrap();
    assert_eq!(found.account_id, "acc_a");
    assert_eq!(found.inbox_id, None);
    assert!(s.find_token(b"nope".to_vec()).await.unwrap().is_none());

    s.create_token(new_token("tok_a2", "acc_a", b"second", Some("inb_x")))
        .await
        .unwrap();
    let listed = s.list_tokens("acc_a").await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        s.find_token(b"second".to_vec())
            .await
            .unwrap()
            .unwrap()
            .inbox_id
            .as_deref(),
        Some("inb_x")
    );

    assert!(
        !s.revoke_token("acc_b", "tok_a2", T0).await.unwrap(),
        "another account's token"
    );
    assert!(s.revoke_token("acc_a", "tok_a2", T0).await.unwrap());
    assert!(
        !s.revoke_token("acc_a", "tok_a2", T0).await.unwrap(),
        "already revoked"
    );
    assert!(s.find_token(b"second".to_vec()).await.unwrap().is_none());
    assert_eq!(s.list_tokens("acc_a").await.unwrap().len(), 1);

    let duplicate_hash = s
        .create_token(new_token("tok_dup", "acc_b", b"acc_a", None))
        .await;
    assert!(matches!(duplicate_hash, Err(StoreError::Conflict)));
}

async fn operators_see_disable_and_reset_accounts(b: Backend) {
    let s = &*b.store;
    account(s, "acc_a").await;
    account(s, "acc_b").await;
    inbox(s, "inb_a", "acc_a", "a@d.test").await;
    let usage = s.account_usage(10).await.unwrap();
    assert_eq!(usage.len(), 2);
    let a = usage.iter().find(|u| u.id == "acc_a").unwrap();
    assert_eq!((a.inboxes, a.received, a.sent, a.tokens), (1, 0, 0, 1));
    assert_eq!(
        s.one_account_usage("acc_a").await.unwrap().as_ref(),
        Some(a)
    );
    assert_eq!(s.one_account_usage("acc_none").await.unwrap(), None);
    assert_eq!(a.disabled_at, None);

    // Disabled: its token is not found; the other account's still is.
    assert!(s.set_account_disabled("acc_a", Some(T0)).await.unwrap());
    assert!(s.find_token(b"acc_a".to_vec()).await.unwrap().is_none());
    assert!(s.find_token(b"acc_b".to_vec()).await.unwrap().is_some());
    let a = s.account_usage(10).await.unwrap().remove(0);
    assert_eq!(a.disabled_at, Some(T0));
    assert!(s.set_account_disabled("acc_a", None).await.unwrap());
    assert!(s.find_token(b"acc_a".to_vec()).await.unwrap().is_some());
    assert!(!s.set_account_disabled("acc_none", Some(T0)).await.unwrap());

    // A reset revokes every live token and adds the new one, together.
    s.create_token(new_token("tok_a2", "acc_a", b"second", None))
        .await
        .unwrap();
    let revoked = s
        .replace_tokens(new_token("tok_a3", "acc_a", b"third", None), T0)
        .await
        .unwrap();
    assert_eq!(revoked, 2);
    assert!(s.find_token(b"acc_a".to_vec()).await.unwrap().is_none());
    assert!(s.find_token(b"second".to_vec()).await.unwrap().is_none());
    assert!(s.find_token(b"third".to_vec()).await.unwrap().is_some());
    assert!(s.find_token(b"acc_b".to_vec()).await.unwrap().is_some());

    // The console's other views read on both stores (nothing sent or received here).
    assert!(s.all_suppressions(10).await.unwrap().is_empty());
    assert!(s.recent_risk(10).await.unwrap().is_empty());
    assert!(s.all_domains(10).await.unwrap().is_empty());
    let inboxes = s.all_inboxes(10).await.unwrap();
    assert_eq!(inboxes.len(), 1);
    assert_eq!(
        (inboxes[0].account_id.as_str(), inboxes[0].address.as_str()),
        ("acc_a", "a@d.test")
    );
}

async fn invites_are_single_use(b: Backend) {
    let s = &*b.store;
    s.create_invite(b"code".to_vec(), T0).await.unwrap();
    let with_invite = |id: &str, code: &[u8]| NewAccount {
        id: id.into(),
        created_at: T0,
        first_token: new_token(&format!("tok_{id}"), id, id.as_bytes(), None),
        invite_hash: Some(code.to_vec()),
    };
    s.create_account(with_invite("acc_1", b"code"))
        .await
        .unwrap();
    let again = s.create_account(with_invite("acc_2", b"code")).await;
    assert!(matches!(again, Err(StoreError::InvalidInvite)));
    let unknown = s.create_account(with_invite("acc_3", b"other")).await;
    assert!(matches!(unknown, Err(StoreError::InvalidInvite)));
    // A refused signup leaves nothing behind.
    assert!(s.find_token(b"acc_2".to_vec()).await.unwrap().is_none());
    assert!(s.find_token(b"acc_1".to_vec()).await.unwrap().is_some());
}

async fn inboxes_belong_to_one_account_and_are_never_recycled(b: Backend) {
    let s = &*b.store;
    account(s, "acc_a").await;
    account(s, "acc_b").await;
    inbox(s, "inb_1", "acc_a", "support@d.test").await;
    inbox(s, "inb_2", "acc_a", "sales@d.test").await;
    let taken = s
        .create_inbox(InboxRecord {
            id: "inb_3".into(),
            account_id: "acc_b".into(),
            address: "support@d.test".into(),
            display_name: None,
            created_at: T0,
            approval_required: false,
        })
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict)));
    assert_eq!(s.list_inboxes("acc_a").await.unwrap().len(), 2);
    assert!(s.list_inboxes("acc_b").await.unwrap().is_empty());
    assert!(s.get_inbox("acc_b", "inb_1").await.unwrap().is_none());
    assert_eq!(
        s.find_inbox("support@d.test").await.unwrap(),
        Some(InboxTarget {
            inbox_id: "inb_1".into(),
            account_id: "acc_a".into(),
            approval_required: false,
        })
    );
    assert!(!s.delete_inbox("acc_b", "inb_1", T0).await.unwrap());
    assert!(s.delete_inbox("acc_a", "inb_1", T0).await.unwrap());
    assert!(s.find_inbox("support@d.test").await.unwrap().is_none());
    assert!(s.get_inbox("acc_a", "inb_1").await.unwrap().is_none());
    assert_eq!(s.list_inboxes("acc_a").await.unwrap().len(), 1);
    let reuse = s
        .create_inbox(InboxRecord {
            id: "inb_4".into(),
            account_id: "acc_a".into(),
            address: "support@d.test".into(),
            display_name: None,
            created_at: T0,
            approval_required: false,
        })
        .await;
    assert!(
        matches!(reuse, Err(StoreError::Conflict)),
        "addresses are never recycled"
    );
}

async fn inbound_messages_become_readable_in_order(b: Backend) {
    let s = &*b.store;
    account(s, "acc_a").await;
    account(s, "acc_b").await;
    inbox(s, "inb_a", "acc_a", "a@d.test").await;
    inbox(s, "inb_b", "acc_b", "b@d.test").await;
    let raw = b"Subject: one\r\n\r\nbody \xff bytes\r\n";
    s.accept_inbound(inbound(
        "blob_1",
        raw,
        &[("msg_1a", "inb_a", "acc_a"), ("msg_1b", "inb_b", "acc_b")],
    ))
    .await
    .unwrap();
    // Accepted but not ingested: not listed, not readable.
    assert!(
        s.list_messages("acc_a", "inb_a", 0, 10, &ListFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.get_message("acc_a", "msg_1a").await.unwrap().is_none());
    let waiting = pending(s).await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].bytes.as_slice(), raw);

    let arrivals = s
        .complete_ingest(vec![ingested("blob_1", "one")], T0)
        .await
        .unwrap()
        .wakes;
    assert_eq!(
        arrivals.len(),
        4,
        "two copies: two list wakes and two events"
    );
    assert!(arrivals.contains(&Wake::inbox("inb_a", 1)));
    assert!(arrivals.contains(&Wake::inbox("inb_b", 1)));
    assert!(
        arrivals.contains(&Wake::events("acc_a", 1)),
        "a message.received event"
    );
    assert!(pending(s).await.is_empty());

    for n in 2..=4 {
        let blob = format!("blob_{n}");
        let msg = format!("msg_{n}");
        s.accept_inbound(inbound(&blob, b"x\r\n", &[(&msg, "inb_a", "acc_a")]))
            .await
            .unwrap();
        s.complete_ingest(vec![ingested(&blob, &format!("s{n}"))], T0)
            .await
            .unwrap();
    }
    let all = s
        .list_messages("acc_a", "inb_a", 0, 10, &ListFilter::default())
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(all[0].id, "msg_1a");
    assert_eq!(all[0].envelope.remote_ip, "192.0.2.1");
    assert!(all[0].envelope.tls);
    assert_eq!(all[0].size, raw.len() as i64);
    assert_eq!(all[1].summary.subject.as_deref(), Some("s2"));
    let page = s
        .list_messages("acc_a", "inb_a", 2, 1, &ListFilter::default())
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].seq, 3);
    // Another account sees nothing of inb_a, even with its id.
    assert!(
        s.list_messages("acc_b", "inb_a", 0, 10, &ListFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.get_message("acc_b", "msg_1a").await.unwrap().is_none());
    assert!(s.get_raw("acc_b", "msg_1a").await.unwrap().is_none());
    assert_eq!(
        s.get_raw("acc_a", "msg_1a").await.unwrap().unwrap(),
        raw.to_vec()
    );
    assert_eq!(
        s.get_raw("acc_b", "msg_1b").await.unwrap().unwrap(),
        raw.to_vec()
    );
}

async fn ingest_is_idempotent_and_deletes_clean_up(b: Backend) {
    let s = &*b.store;
    account(s, "acc_a").await;
    inbox(s, "inb_a", "acc_a", "a@d.test").await;
    inbox(s, "inb_c", "acc_a", "c@d.test").await;
    s.accept_inbound(inbound(
        "blob_1",
        b"hi\r\n",
        &[("msg_1", "inb_a", "acc_a"), ("msg_2", "inb_c", "acc_a")],
    ))
    .await
    .unwrap();
    assert_eq!(
        s.complete_ingest(vec![ingested("blob_1", "x")], T0)
            .await
            .unwrap()
            .wakes
            .len(),
        4
    );
    assert!(
        s.complete_ingest(vec![ingested("blob_1", "x")], T0)
            .await
            .unwrap()
            .wakes
            .is_empty()
    );
    assert_eq!(
        s.list_messages("acc_a", "inb_a", 0, 10, &ListFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );

    assert!(!s.delete_message("acc_b", "msg_1").await.unwrap());
    assert!(s.delete_message("acc_a", "msg_1").await.unwrap());
    assert!(s.get_message("acc_a", "msg_1").await.unwrap().is_none());
    // The other copy keeps the shared bytes.
    assert_eq!(
        s.get_raw("acc_a", "msg_2").await.unwrap().unwrap(),
        b"hi\r\n".to_vec()
    );
    assert!(s.delete_inbox("acc_a", "inb_c", T0).await.unwrap());
    assert!(s.get_raw("acc_a", "msg_2").await.unwrap().is_none());

    // Ingest of a blob whose every copy was deleted meanwhile completes without arrivals.
    s.accept_inbound(inbound(
        "blob_2",
        b"late\r\n",
        &[("msg_3", "inb_a", "acc_a")],
    ))
    .await
    .unwrap();
    assert!(s.delete_inbox("acc_a", "inb_a", T0).await.unwrap());
    assert!(
        s.complete_ingest(vec![ingested("blob_2", "y")], T0)
            .await
            .unwrap()
            .wakes
            .is_empty()
    );
    assert!(pending(s).await.is_empty());
}

async fn concurrent_writes_all_commit(b: Backend) {
    account(&*b.store, "acc_a").await;
    inbox(&*b.store, "inb_a", "acc_a", "a@d.test").await;
    let mut tasks = Vec::new();
    for n in 0..100 {
        let store = b.store.clone();
        tasks.push(tokio::spawn(async move {
            let blob = format!("blob_{n:03}");
            let msg = format!("msg_{n:03}");
            store
                .accept_inbound(inbound(&blob, b"m\r\n", &[(&msg, "inb_a", "acc_a")]))
                .await
                .unwrap();
            store
                .complete_ingest(vec![ingested(&blob, "c")], T0)
                .await
                .unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let listed = b
        .store
        .list_messages("acc_a", "inb_a", 0, 100, &ListFilter::default())
        .await
        .unwrap();
    let seqs: Vec<i64> = listed.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=100).collect::<Vec<_>>(),
        "every copy once, numbered without gaps"
    );
}

async fn committed_data_survives_reopening(b: Backend) {
    account(&*b.store, "acc_a").await;
    inbox(&*b.store, "inb_a", "acc_a", "a@d.test").await;
    b.store
        .accept_inbound(inbound(
            "blob_1",
            b"kept\r\n",
            &[("msg_1", "inb_a", "acc_a")],
        ))
        .await
        .unwrap();
    b.store.close().await;
    let reopened = (b.reopen)().await;
    let waiting = pending(&*reopened).await;
    assert_eq!(
        waiting.len(),
        1,
        "an accepted message waits for ingest after a restart"
    );
    assert_eq!(waiting[0].bytes.as_slice(), b"kept\r\n");
    assert!(
        reopened
            .find_token(b"acc_a".to_vec())
            .await
            .unwrap()
            .is_some()
    );
}

fn queued(id: &str, rcpts: &[&str], key: Option<(&str, &[u8])>) -> QueuedMessage {
    QueuedMessage {
        id: id.into(),
        account_id: "acc_a".into(),
        inbox_id: "inb_a".into(),
        blob_id: format!("blob_{id}"),
        bytes: Arc::new(b"Subject: out\r\n\r\nbody\r\n".to_vec()),
        return_path: "a@d.test".into(),
        created_at: T0,
        source: "api",
        summary: SummaryContent {
            subject: Some("out".into()),
            ..Default::default()
        },
        parsed: Default::default(),
        thread: ThreadKeys::default(),
        recipients: rcpts
            .iter()
            .enumerate()
            .map(|(n, a)| NewRecipient {
                id: format!("rcpt_{id}_{n}"),
                address: (*a).into(),
                domain: a.rsplit_once('@').unwrap().1.into(),
            })
            .collect(),
        idempotency: key.map(|(k, h)| (k.to_owned(), h.to_vec())),
        quota: None,
        dry_run: false,
        held_for: None,
        custom_domain: None,
    }
}

fn attempt(at: Timestamp, code: u16) -> AttemptRecord {
    AttemptRecord {
        at,
        host: Some("mx.x.test".into()),
        code: Some(code),
        enhanced: None,
        text: "reply".into(),
        tls: None,
    }
}

fn result(c: &Claimed, status: Status, next: Option<Timestamp>, code: u16) -> RecipientResult {
    RecipientResult {
        recipient_id: c.recipient_id.clone(),
        account_id: c.account_id.clone(),
        message_id: c.message_id.clone(),
        inbox_id: c.inbox_id.clone(),
        address: c.address.clone(),
        status,
        next_attempt_at: next,
        attempt: attempt(T0, code),
    }
}

async fn the_queue_leases_records_and_reports(b: Backend) {
    let s = &*b.store;
    account(s, "acc_a").await;
    inbox(s, "inb_a", "acc_a", "a@d.test").await;
    s.enqueue(queued("msg_1", &["x@x.test", "y@y.test"], None))
        .await
        .unwrap();
    assert_eq!(s.next_due().await.unwrap(), Some(T0));
    let lease = Timestamp(T0.0 + 600_000);
    let claimed = s.claim_due(T0, lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(claimed[0].return_path, "a@d.test");
    assert_eq!(claimed[0].queued_at, T0);
    // Leased: not claimable again until the lease ends.
    assert!(s.claim_due(T0, lease, 10).await.unwrap().is_empty());
    assert_eq!(s.next_due().await.unwrap(), Some(lease));
    let expired_lease = s
        .claim_due(lease, Timestamp(lease.0 + 1), 10)
        .await
        .unwrap();
    assert_eq!(
        expired_lease.len(),
        2,
        "a crashed worker's recipients come back after the lease"
    );

    let x = &expired_lease
        .iter()
        .find(|c| c.address == "x@x.test")
        .unwrap()
        .clone();
    let y = &expired_lease
        .iter()
        .find(|c| c.address == "y@y.test")
        .unwrap()
        .clone();
    let retry_at = Timestamp(T0.0 + 60_000);
    let dsn = inbound(
        "blob_dsn",
        b"Subject: bounce\r\n\r\n",
        &[("msg_dsn", "inb_a", "acc_a")],
    );
    let wakes = s
        .record_outcomes(
            Outcomes {
                results: vec![
                    result(x, Status::Deferred, Some(retry_at), 450),
                    result(y, Status::Bounced, None, 550),
                ],
                inbound: vec![dsn],
                suppress: vec![Suppression {
                    account_id: "acc_a".into(),
                    address: "y@y.test".into(),
                    reason: "550".into(),
                    created_at: T0,
                }],
            },
            T0,
        )
        .await
        .unwrap();
    assert_eq!(
        wakes,
        vec![Wake::events("acc_a", 1), Wake::events("acc_a", 2)]
    );
    assert_eq!(
        s.next_due().await.unwrap(),
        Some(retry_at),
        "the lease was released with the outcome"
    );
    assert_eq!(
        pending(s).await.len(),
        1,
        "the bounce report waits for ingest"
    );
    assert_eq!(
        s.suppressed("acc_a", vec!["y@y.test".into(), "x@x.test".into()])
            .await
            .unwrap()
            .len(),
        1
    );

    let record = s.get_outbound("acc_a", "msg_1").await.unwrap().unwrap();
    assert_eq!(record.blob_id, "blob_msg_1");
    let by_address = |a: &str| {
        record
            .recipients
            .iter()
            .find(|r| r.address == a)
            .unwrap()
            .clone()
    };
    assert_eq!(by_address("x@x.test").status, Status::Deferred);
    assert_eq!(by_address("x@x.test").next_attempt_at, Some(retry_at));
    assert_eq!(by_address("x@x.test").attempts, vec![attempt(T0, 450)]);
    assert_eq!(by_address("y@y.test").status, Status::Bounced);
    assert_eq!(by_address("y@y.test").next_attempt_at, None);
    assert!(s.get_outbound("acc_b", "msg_1").await.unwrap().is_none());
    assert_eq!(
        s.load_blob("blob_msg_1").await.unwrap().unwrap(),
        b"Subject: out\r\n\r\nbody\r\n".to_vec()
    );

    let events = s.list_events("acc_a", 0, 10).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["message.deferred", "message.bounced"]
    );
    assert_eq!(events[1].recipient.as_deref(), Some("y@y.test"));
    assert!(
        events[1]
            .detail
            .as_ref()
            .unwrap()
            .to_string()
            .contains("550")
    );
    assert_eq!(s.list_events("acc_a", 1, 10).await.unwrap().len(), 1);

    // A final recipient is never claimed again; a deferred one is, when due.
    assert!(
        s.claim_due(
            Timestamp(retry_at.0 - 1),
            Timestamp(retry_at.0 + 600_000),
            10
        )
        .await
        .unwrap()
        .is_empty()
    );
    let again = s
        .claim_due(retry_at, Timestamp(retry_at.0 + 600_000), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);

    // The operator's view of the same: the attempts newest first, the backlog.
    let recent = s.recent_attempts(10).await.unwrap();
    assert!(!recent.is_empty());
    assert!(recent.iter().all(|a| a.account_id == "acc_a"));
    assert!(recent.iter().any(|a| a.attempt.code.is_some()));
    assert!(s.recent_attempts(10).await.unwrap().len() <= 10);
    let backlog = s.backlog(retry_at).await.unwrap();
    assert!(backlog.queue_recipients >= 1, "{backlog:?}");
}

async fn idempotency_suppressions_and_operator_actions(b: Backend) {
    let s = &*b.store;
    account(s, "acc_a").await;
    inbox(s, "inb_a", "acc_a", "a@d.test").await;
    s.enqueue(queued("msg_1", &["x@x.test"], Some(("key-1", b"hash"))))
        .await
        .unwrap();
    let dup = s
        .enqueue(queued("msg_2", &["x@x.test"], Some(("key-1", b"other"))))
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict)));
    assert!(
        s.get_outbound("acc_a", "msg_2").await.unwrap().is_none(),
        "a refused enqueue leaves nothing"
    );
    let found = s.find_idempotency("acc_a", "key-1").await.unwrap().unwrap();
    assert_eq!(
        (found.message_id.as_str(), found.request_hash.as_slice()),
        ("msg_1", b"hash".as_slice())
    );
    s.expire_idempotency("acc_a", "key-1", T0).await.unwrap();
    assert!(
        s.find_idempotency("acc_a", "key-1")
            .await
            .unwrap()
            .is_some(),
        "not older than the cut-off"
    );
    s.expire_idempotency("acc_a", "key-1", Timestamp(T0.0 + 1))
        .await
        .unwrap();
    assert!(
        s.find_idempotency("acc_a", "key-1")
            .await
            .unwrap()
            .is_none()
    );

    let entries = s.queue_entries(10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].message_id.as_str(), entries[0].status),
        ("msg_1", Status::Queued)
    );
    assert_eq!(s.retry_now("msg_1", Timestamp(T0.0 + 5)).await.unwrap(), 1);
    assert_eq!(s.next_due().await.unwrap(), Some(Timestamp(T0.0 + 5)));
    assert_eq!(s.cancel("msg_1", Timestamp(T0.0 + 6)).await.unwrap(), 1);
    assert_eq!(s.cancel("msg_1", Timestamp(T0.0 + 6)).await.unwrap(), 0);
    assert!(s.queue_entries(10).await.unwrap().is_empty());
    assert_eq!(s.next_due().await.unwrap(), None);
    let events = s.list_events("acc_a", 0, 10).await.unwrap();
    assert_eq!(events.last().unwrap().kind, "message.cancelled");

    assert!(s.list_suppressions("acc_a").await.unwrap().is_empty());
    assert!(!s.delete_suppression("acc_a", "x@x.test").await.unwrap());
}

async fn threads_join_by_reference_then_subject_and_participants(b: Backend) {
    let store = &*b.store;
    account(store, "acc_a").await;
    account(store, "acc_b").await;
    inbox(store, "inb_a", "acc_a", "a@d.test").await;
    inbox(store, "inb_b", "acc_b", "b@d.test").await;
    // The inbox sends first; the reply names it in In-Reply-To.
    let mut out = queued("msg_out1", &["ann@x.test"], None);
    out.thread = keys("out1@d.test", &[], "plan", &["a@d.test", "ann@x.test"]);
    store.enqueue(out).await.unwrap();
    let sent = store
        .get_outbound("acc_a", "msg_out1")
        .await
        .unwrap()
        .unwrap();
    let thread = sent
        .thread_id
        .clone()
        .expect("a sent message starts a thread");
    assert!(thread.starts_with("thr_"), "{thread}");

    let arrivals = [
        // a reply by reference
        (
            "blob_r1",
            "msg_r1",
            keys(
                "r1@x.test",
                &["out1@d.test"],
                "plan",
                &["ann@x.test", "a@d.test"],
            ),
            T0.0 + 1000,
        ),
        // same subject, shared participant, no references: joins by subject
        (
            "blob_r2",
            "msg_r2",
            keys("r2@x.test", &[], "plan", &["ann@x.test", "a@d.test"]),
            T0.0 + 2000,
        ),
        // same subject from a stranger: a thread of its own
        (
            "blob_r3",
            "msg_r3",
            keys("r3@y.test", &[], "plan", &["zed@y.test", "a@d.test"]),
            T0.0 + 3000,
        ),
        // same subject and participant, but eight days later: a new thread
        (
            "blob_r4",
            "msg_r4",
            keys("r4@x.test", &[], "plan", &["ann@x.test", "a@d.test"]),
            T0.0 + 8 * 86_400_000,
        ),
    ];
    for (blob, id, thread_keys, at) in &arrivals {
        let mut message = inbound(
            blob,
            b"Subject: Re: Plan\r\n\r\nok\r\n",
            &[(id, "inb_a", "acc_a")],
        );
        message.received_at = Timestamp(*at);
        store.accept_inbound(message).await.unwrap();
        let mut done = ingested(blob, "Re: Plan");
        done.thread = thread_keys.clone();
        store
            .complete_ingest(vec![done], Timestamp(*at))
            .await
            .unwrap();
    }
    let thread_of = |id: &'static str| async move {
        store
            .get_message("acc_a", id)
            .await
            .unwrap()
            .unwrap()
            .thread_id
            .unwrap()
    };
    assert_eq!(thread_of("msg_r1").await, thread);
    assert_eq!(thread_of("msg_r2").await, thread);
    assert_ne!(thread_of("msg_r3").await, thread);
    let late = thread_of("msg_r4").await;
    assert_ne!(late, thread);

    let members = store.thread_members("acc_a", &thread).await.unwrap();
    let ids: Vec<&str> = members.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids, ["msg_out1", "msg_r1", "msg_r2"]);
    assert_eq!(members[0].direction, "outbound");
    assert_eq!(
        members[1].participants,
        ["ann@x.test"],
        "the inbox's own address is left out"
    );
    // Another account sees nothing of it.
    assert!(
        store
            .thread_members("acc_b", &thread)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_threads("acc_b", "inb_a", 10)
            .await
            .unwrap()
            .is_empty()
    );

    let threads = store.list_threads("acc_a", "inb_a", 10).await.unwrap();
    assert_eq!(threads.len(), 3);
    assert_eq!(threads[0].thread_id, late, "most recently active first");
    let main = threads.iter().find(|t| t.thread_id == thread).unwrap();
    assert_eq!(main.message_count, 3);
    assert_eq!(
        main.subject.as_deref(),
        Some("out"),
        "the first message's subject"
    );
    assert_eq!(main.participants, ["ann@x.test"]);

    // Deleting a message takes it out of its thread.
    assert!(store.delete_message("acc_a", "msg_r2").await.unwrap());
    assert_eq!(
        store.thread_members("acc_a", &thread).await.unwrap().len(),
        2
    );
    assert_eq!(store.inbox_cursor("acc_a", "inb_a").await.unwrap(), 4);
}

async fn ingest_jobs_are_leased_and_taken_over(b: Backend) {
    let s = &*b.store;
    account(s, "acc_a").await;
    inbox(s, "inb_a", "acc_a", "a@d.test").await;
    for n in 1..=2 {
        s.accept_inbound(inbound(
            &format!("blob_{n}"),
            b"x\r\n",
            &[(&format!("msg_{n}"), "inb_a", "acc_a")],
        ))
        .await
        .unwrap();
    }
    let lease_ms = INGEST_LEASE.as_millis() as i64;
    let at = |ms: i64| Timestamp(T0.0 + ms);
    let claimed = s.claim_ingest(T0, INGEST_LEASE, 10).await.unwrap();
    if b.shared {
        // Fresh jobs belong to the node that accepted them, for one lease.
        assert!(claimed.is_empty(), "{} claimed", claimed.len());
        let claimed = s.claim_ingest(at(lease_ms), INGEST_LEASE, 1).await.unwrap();
        assert_eq!(
            claimed.len(),
            1,
            "taken over once the acceptor's lease ended"
        );
        assert_eq!(claimed[0].blob_id, "blob_1", "oldest first");
        let rest = s
            .claim_ingest(at(lease_ms), INGEST_LEASE, 10)
            .await
            .unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].blob_id, "blob_2");
    } else {
        // One node owns the file: nothing holds a job nobody claimed.
        assert_eq!(claimed.len(), 2);
    }
    let now = if b.shared { at(lease_ms) } else { T0 };
    // Claimed jobs are held for their lease, then another claim takes them over.
    assert!(
        s.claim_ingest(
            now.plus(INGEST_LEASE - Duration::from_millis(1)),
            INGEST_LEASE,
            10
        )
        .await
        .unwrap()
        .is_empty()
    );
    let again = s
        .claim_ingest(now.plus(INGEST_LEASE), INGEST_LEASE, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 2);
    assert_eq!(again[0].bytes.as_slice(), b"x\r\n");
    // A completed job is gone for good.
    s.complete_ingest(vec![ingested("blob_1", "x")], T0)
        .await
        .unwrap();
    let left = pending(s).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].blob_id, "blob_2");
}

fn limited(id: &str, inbox: &str, per_minute: u32, on_limit: OnLimit) -> QueuedMessage {
    let mut m = queued(id, &["x@x.test"], None);
    m.inbox_id = inbox.into();
    m.quota = Some(QuotaCheck {
        inbox: Limits {
            per_minute,
            ..Limits::default()
        },
        account: Limits::default(),
        on_limit,
        warmup: Default::default(),
    });
    m
}

fn release_of((done, _): (Enqueued, Option<Wake>)) -> (Timestamp, Option<Hit>) {
    match done {
        Enqueued::Queued(r) => (r.at, r.held_by),
        other => panic!("not queued: {other:?}"),
    }
}

async fn sending_quotas_hold_refuse_and_count_once(b: Backend) {
    let s = &*b.store;
    account(s, "acc_a").await;
    inbox(s, "inb_a", "acc_a", "a@d.test").await;
    let minute_later = Timestamp(T0.0 + 61_000);
    let mut releases = Vec::new();
    for n in 1..=3 {
        let m = limited(&format!("msg_{n}"), "inb_a", 2, OnLimit::Hold);
        releases.push(release_of(s.enqueue(m).await.unwrap()));
    }
    assert_eq!(releases[0], (T0, None));
    assert_eq!(releases[1], (T0, None));
    let minute_hit = Hit {
        scope: Scope::Inbox,
        window: Window::Minute,
        limit: 2,
    };
    assert_eq!(releases[2], (minute_later, Some(minute_hit)));
    // Held means not due: the queue takes the third only at its release.
    let lease = Timestamp(T0.0 + 600_000);
    assert_eq!(s.claim_due(T0, lease, 10).await.unwrap().len(), 2);
    let later = s.claim_due(minute_later, lease, 10).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].message_id, "msg_3");
    assert_eq!(
        later[0].queued_at, minute_later,
        "its lifetime starts at release"
    );
    let shown = s.get_outbound("acc_a", "msg_3").await.unwrap().unwrap();
    assert_eq!(shown.release_at, minute_later);

    // A sender that prefers a refusal gets one, and nothing is written or counted.
    let refused = s
        .enqueue(limited("msg_4", "inb_a", 2, OnLimit::Reject))
        .await
        .unwrap();
    assert!(matches!(refused, (Enqueued::OverQuota(r), None) if r.at == minute_later));
    assert!(s.get_outbound("acc_a", "msg_4").await.unwrap().is_none());

    // What the account set for itself applies on top of the defaults it was given.
    let account_scope = QuotaScope::Account("acc_a");
    let three_a_day = LimitOverrides {
        per_day: Some(3),
        ..LimitOverrides::default()
    };
    s.set_send_limits(account_scope, three_a_day, T0)
        .await
        .unwrap();
    assert_eq!(s.send_limits(account_scope).await.unwrap(), three_a_day);
    let (at, hit) = release_of(
        s.enqueue(limited("msg_5", "inb_a", 0, OnLimit::Hold))
            .await
            .unwrap(),
    );
    // The day's three left in T0's minute: they count as sent at its end.
    let minute_end = T0.0 - T0.0.rem_euclid(60_000) + 60_000;
    assert_eq!(
        (at.0, hit.map(|h| (h.scope, h.window))),
        (minute_end + 86_400_000, Some((Scope::Account, Window::Day)))
    );
    let inbox_scope = QuotaScope::Inbox {
        account_id: "acc_a",
        inbox_id: "inb_a",
    };
    let inbox_use = s.quota_use(inbox_scope, T0).await.unwrap();
    assert_eq!(inbox_use.held, 2, "msg_3 and msg_5 wait");
    assert_eq!(inbox_use.next_release, Some(minute_later));
    let account_use = s.quota_use(account_scope, T0).await.unwrap();
    assert_eq!(account_use.held, 2);

    // Nodes sharing the store share the quota: six sends at once from two nodes, two a minute.
    if b.shared {
        inbox(s, "inb_b", "acc_a", "b@d.test").await;
        s.set_send_limits(account_scope, LimitOverrides::default(), T0)
            .await
            .unwrap();
        let other = (b.reopen)().await;
        let sends = (0..6).map(|n| {
            let node = if n % 2 == 0 {
                b.store.clone()
            } else {
                other.clone()
            };
            let m = limited(&format!("msg_b{n}"), "inb_b", 2, OnLimit::Hold);
            async move { release_of(node.enqueue(m).await.unwrap()).0 }
        });
        let mut at: Vec<i64> = futures::future::join_all(sends)
            .await
            .into_iter()
            .map(|t| t.0)
            .collect();
        at.sort();
        let step = 61_000;
        assert_eq!(
            at,
            vec![
                T0.0,
                T0.0,
                T0.0 + step,
                T0.0 + step,
                T0.0 + 2 * step,
                T0.0 + 2 * step
            ]
        );
    }
}

fn hook(id: &str, account: &str) -> WebhookRecord {
    WebhookRecord {
        id: id.into(),
        account_id: account.into(),
        url: "https://hooks.example.test/in".into(),
        secret: "whsec_first".into(),
        previous_secret: None,
        previous_until: None,
        event_types: vec!["sending.paused".into(), "sending.resumed".into()],
        inbox_id: None,
        status: "active".into(),
        disabled_reason: None,
        cursor: 0,
        attempt: 0,
        next_attempt_at: T0,
        created_at: T0,
    }
}

fn progress(cursor: i64, attempt: i64, next: Timestamp) -> WebhookProgress {
    WebhookProgress {
        cursor,
        attempt,
        next_attempt_at: next,
        disabled: None,
    }
}

async fn webhooks_follow_the_log_under_a_lease(b: Backend) {
    let s = &*b.store;
    account(s, "acc_a").await;
    account(s, "acc_b").await;
    let scope = QuotaScope::Account("acc_a");
    s.pause(scope, "first", None, T0).await.unwrap();
    // A new endpoint starts at the account's newest event.
    let created = s.create_webhook(hook("whk_1", "acc_a")).await.unwrap();
    assert_eq!(created.cursor, 1);
    assert_eq!(created.event_types, ["sending.paused", "sending.resumed"]);
    let until = Timestamp(T0.0 + 120_000);
    assert!(!s.webhooks_due(T0).await.unwrap());
    assert!(
        s.claim_webhooks("l1", T0, until, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // An event after its cursor: due, claimed by one claimant only.
    s.resume(scope, T0).await.unwrap();
    assert!(s.webhooks_due(T0).await.unwrap());
    let claimed = s.claim_webhooks("l1", T0, until, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        s.claim_webhooks("l2", T0, until, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!s.webhooks_due(T0).await.unwrap(), "held by l1");
    let delivery = WebhookDelivery {
        id: "whd_1".into(),
        webhook_id: "whk_1".into(),
        event_seq: 2,
        attempt: 1,
        at: T0,
        code: Some(200),
        error: None,
        outcome: "delivered".into(),
        duration_ms: 3,
    };
    // Only the holder records progress.
    assert!(
        !s.record_webhook_progress("whk_1", "l2", progress(2, 0, T0), None)
            .await
            .unwrap()
    );
    assert!(
        s.record_webhook_progress("whk_1", "l1", progress(2, 0, T0), Some(delivery.clone()))
            .await
            .unwrap()
    );
    s.release_webhook("whk_1", "l1").await.unwrap();
    assert!(
        s.claim_webhooks("l3", T0, until, 10)
            .await
            .unwrap()
            .is_empty(),
        "caught up"
    );
    let log = s.webhook_deliveries("acc_a", "whk_1", 10).await.unwrap();
    assert_eq!(log, vec![delivery]);
    assert!(
        s.webhook_deliveries("acc_b", "whk_1", 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A failed attempt waits for its retry.
    s.pause(scope, "again", None, T0).await.unwrap();
    let claimed = s.claim_webhooks("l4", T0, until, 10).await.unwrap();
    assert_eq!(claimed[0].cursor, 2);
    let retry_at = Timestamp(T0.0 + 5_000);
    assert!(
        s.record_webhook_progress("whk_1", "l4", progress(2, 1, retry_at), None)
            .await
            .unwrap()
    );
    s.release_webhook("whk_1", "l4").await.unwrap();
    assert!(
        s.claim_webhooks("l5", T0, until, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let claimed = s
        .claim_webhooks("l5", retry_at, Timestamp(retry_at.0 + 120_000), 10)
        .await
        .unwrap();
    assert_eq!(claimed[0].attempt, 1);

    // A replay moves the cursor back, enables, and takes the claim away from its holder.
    let replayed = s
        .replay_webhook("acc_a", "whk_1", 0, T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((replayed.cursor, replayed.attempt), (0, 0));
    assert!(
        !s.record_webhook_progress("whk_1", "l5", progress(3, 0, T0), None)
            .await
            .unwrap()
    );
    let gone = WebhookProgress {
        disabled: Some("410".into()),
        ..progress(0, 1, T0)
    };
    let claimed = s.claim_webhooks("l6", T0, until, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        s.record_webhook_progress("whk_1", "l6", gone, None)
            .await
            .unwrap()
    );
    s.release_webhook("whk_1", "l6").await.unwrap();
    let disabled = s.get_webhook("acc_a", "whk_1").await.unwrap().unwrap();
    assert_eq!(disabled.status, "disabled");
    assert!(
        !s.webhooks_due(T0).await.unwrap(),
        "a disabled endpoint is never due"
    );

    // Rotation keeps the old secret beside the new one; another account sees nothing.
    let rotated = s
        .rotate_webhook_secret("acc_a", "whk_1", "whsec_second", until)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.secret, "whsec_second");
    assert_eq!(rotated.previous_secret.as_deref(), Some("whsec_first"));
    assert_eq!(rotated.previous_until, Some(until));
    assert!(s.get_webhook("acc_b", "whk_1").await.unwrap().is_none());
    assert!(
        s.rotate_webhook_secret("acc_b", "whk_1", "x", until)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!s.delete_webhook("acc_b", "whk_1").await.unwrap());
    assert!(s.delete_webhook("acc_a", "whk_1").await.unwrap());
    assert!(s.list_webhooks("acc_a").await.unwrap().is_empty());
    assert!(
        s.webhook_deliveries("acc_a", "whk_1", 10)
            .await
            .unwrap()
            .is_empty()
    );
}
