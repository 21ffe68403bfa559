//! The store contract: the same tests run against SQLite (in a temporary directory) and against
//! the real PostgreSQL (a fresh schema per test). PostgreSQL must be reachable: these tests fail,
//! never skip, without it (`CRABMAIL_TEST_DATABASE_URL`, default postgres://postgres@127.0.0.1/test).

use crabmail::clock::Timestamp;
use crabmail::config::Config;
use crabmail::store::*;
use crabmail_testkit::pg_schema_url;
use std::sync::Arc;

struct Backend {
    store: Arc<dyn Store>,
    reopen: Box<dyn Fn() -> futures::future::BoxFuture<'static, Arc<dyn Store>> + Send + Sync>,
    _dir: Option<tempfile::TempDir>,
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
);

const T0: Timestamp = Timestamp(1_796_000_000_000);

fn new_token(id: &str, account: &str, hash: &[u8], inbox: Option<&str>) -> NewToken {
    NewToken {
        id: id.into(),
        account_id: account.into(),
        hash: hash.to_vec(),
        inbox_id: inbox.map(Into::into),
        name: None,
        created_at: T0,
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
        deliveries: to
            .iter()
            .map(|(message, inbox, account)| Delivery {
                message_id: (*message).into(),
                inbox_id: (*inbox).into(),
                account_id: (*account).into(),
                recipient: "rcpt@d.test".into(),
            })
            .collect(),
    }
}

fn ingested(blob: &str, subject: &str) -> Ingested {
    Ingested {
        blob_id: blob.into(),
        from_address: Some("sender@example.test".into()),
        subject: Some(subject.into()),
        summary: format!("{{\"subject\":\"{subject}\"}}"),
        parsed: "{}".into(),
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
            account_id: "acc_a".into()
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
        s.list_messages("acc_a", "inb_a", 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.get_message("acc_a", "msg_1a").await.unwrap().is_none());
    let pending = s.pending_ingest(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].bytes.as_slice(), raw);

    let arrivals = s
        .complete_ingest(vec![ingested("blob_1", "one")], T0)
        .await
        .unwrap();
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
    assert!(s.pending_ingest(10).await.unwrap().is_empty());

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
    let all = s.list_messages("acc_a", "inb_a", 0, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(all[0].id, "msg_1a");
    assert_eq!(all[0].envelope.remote_ip, "192.0.2.1");
    assert!(all[0].envelope.tls);
    assert_eq!(all[0].size, raw.len() as i64);
    assert_eq!(all[1].summary, "{\"subject\":\"s2\"}");
    let page = s.list_messages("acc_a", "inb_a", 2, 1).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].seq, 3);
    // Another account sees nothing of inb_a, even with its id.
    assert!(
        s.list_messages("acc_b", "inb_a", 0, 10)
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
            .len(),
        4
    );
    assert!(
        s.complete_ingest(vec![ingested("blob_1", "x")], T0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.list_messages("acc_a", "inb_a", 0, 10)
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
            .is_empty()
    );
    assert!(s.pending_ingest(10).await.unwrap().is_empty());
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
        .list_messages("acc_a", "inb_a", 0, 100)
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
    let pending = reopened.pending_ingest(10).await.unwrap();
    assert_eq!(
        pending.len(),
        1,
        "an accepted message waits for ingest after a restart"
    );
    assert_eq!(pending[0].bytes.as_slice(), b"kept\r\n");
    assert!(
        reopened
            .find_token(b"acc_a".to_vec())
            .await
            .unwrap()
            .is_some()
    );
}
