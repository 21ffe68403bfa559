//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! Writes go through one writer thread that owns the only write connection. It drains whatever
//! writes have gathered, runs each in its own savepoint, and commits them together: one fsync
//! covers many accepted messages under load (group commit), and an idle server still commits each
//! write at once. A write's future resolves only after its batch's COMMIT returned.
//!
//! Reads use a small pool of read connections on blocking threads; WAL lets them run beside the
//! writer. If the writer thread dies, every later write fails with `Closed`, never with success.

use super::*;
use crate::config::StoreConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_core.sql")),
    (2, include_str!("../../migrations/sqlite/0002_outbound.sql")),
    (3, include_str!("../../migrations/sqlite/0003_trust.sql")),
    (4, include_str!("../../migrations/sqlite/0004_threads.sql")),
    (
        5,
        include_str!("../../migrations/sqlite/0005_ingest_leases.sql"),
    ),
];

/// A write: runs inside the batch transaction and returns what to do once the batch committed.
type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;
type Completion = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

pub struct SqliteStore {
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    /// Writes that go into the next batch, ahead of the queued ones: delivery outcomes, whose
    /// delay after the remote's 250 is the window in which a crash duplicates a message.
    urgent: Arc<Mutex<std::collections::VecDeque<Job>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<ReadPool>,
}

struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StoreError::Conflict
            }
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

impl SqliteStore {
    pub async fn open(path: &Path, config: &StoreConfig) -> Result<SqliteStore> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(format!("{}: {e}", dir.display())))?;
        }
        let path = path.to_owned();
        let max_batch = config.max_batch.max(1);
        let writer_path = path.clone();
        let conn = tokio::task::spawn_blocking(move || open_writer(&writer_path))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))??;
        let (tx, rx) = mpsc::channel::<Job>(max_batch * 4);
        let urgent = Arc::new(Mutex::new(std::collections::VecDeque::new()));
        let writer_urgent = urgent.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(conn, rx, writer_urgent, max_batch))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(SqliteStore {
            writer: Mutex::new(Some(tx)),
            urgent,
            writer_thread: Mutex::new(Some(thread)),
            readers: Arc::new(ReadPool {
                path,
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(config.sqlite_readers.max(1)),
            }),
        })
    }

    /// Runs `f` in the next group-committed transaction; resolves after the COMMIT.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let sender = self.sender()?;
        let (job, done) = job(f);
        sender.send(job).await.map_err(|_| StoreError::Closed)?;
        done.await.map_err(|_| StoreError::Closed)?
    }

    /// Like `write`, but into the very next batch, ahead of writes already queued.
    async fn write_urgent<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let sender = self.sender()?;
        let (job, done) = job(f);
        self.urgent
            .lock()
            .map_err(|_| StoreError::Closed)?
            .push_back(job);
        // Wakes a writer waiting on an empty channel; a busy one looks at the urgent queue first
        // anyway, so a full channel needs no wake.
        let _ = sender.try_send(Box::new(|_| Box::new(|_| {})));
        done.await.map_err(|_| StoreError::Closed)?
    }

    fn sender(&self) -> Result<mpsc::Sender<Job>> {
        self.writer
            .lock()
            .map_err(|_| StoreError::Closed)?
            .clone()
            .ok_or(StoreError::Closed)
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = self.readers.clone();
        let _permit = pool
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pool2 = pool.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match pool2.idle.lock().ok().and_then(|mut idle| idle.pop()) {
                Some(conn) => conn,
                None => open_reader(&pool2.path)?,
            };
            let result = f(&conn);
            if let Ok(mut idle) = pool2.idle.lock() {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }
}

fn open_writer(path: &Path) -> Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // WAL: readers never block the writer. FULL: the WAL is fsynced at every COMMIT, so a
    // committed message survives power loss, not only a process crash.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&mut conn)?;
    Ok(conn)
}

fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .map_err(|e| StoreError::Migration(format!("sqlite migration {version}: {e}")))?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(())
}

fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    conn.execute_batch("SAVEPOINT job")?;
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(StoreError::Unavailable("write panicked".into())));
    if outcome.is_ok() {
        conn.execute_batch("RELEASE job")?;
    } else {
        conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
    }
    outcome
}

/// A write as a job for the writer thread, and where its result arrives after the commit.
fn job<T: Send + 'static>(
    f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
) -> (Job, oneshot::Receiver<Result<T>>) {
    let (done_tx, done_rx) = oneshot::channel::<Result<T>>();
    let job: Job = Box::new(move |conn| {
        let outcome = in_savepoint(conn, f);
        Box::new(move |commit| {
            let result = match commit {
                Ok(()) => outcome,
                Err(e) => Err(StoreError::Unavailable(e)),
            };
            let _ = done_tx.send(result);
        })
    });
    (job, done_rx)
}

fn write_loop(
    conn: Connection,
    mut jobs: mpsc::Receiver<Job>,
    urgent: Arc<Mutex<std::collections::VecDeque<Job>>>,
    max_batch: usize,
) {
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        // Urgent writes alone, in a small transaction of their own (its commit is quicker);
        // otherwise whatever is queued, waiting only when nothing is.
        batch.extend(
            urgent
                .lock()
                .map(|mut u| std::mem::take(&mut *u))
                .unwrap_or_default(),
        );
        let only_urgent = !batch.is_empty();
        if batch.is_empty() {
            match jobs.blocking_recv() {
                Some(first) => batch.push(first),
                None => break,
            }
        }
        while !only_urgent && batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "sqlite: cannot begin a write transaction");
            for job in batch.drain(..) {
                drop(job); // dropping the job drops its reply sender: the caller sees Closed
            }
            continue;
        }
        let completions: Vec<Completion> = batch.drain(..).map(|job| job(&conn)).collect();
        // DURABILITY: this COMMIT (fsync of the WAL, synchronous=FULL) is what every write in the
        // batch waits for before its caller replies 250 or 2xx.
        let committed = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        if let Err(e) = &committed {
            tracing::error!(error = %e, "sqlite: commit failed; batch rolled back");
            let _ = conn.execute_batch("ROLLBACK");
        }
        for complete in completions {
            complete(committed.clone());
        }
    }
    // Closed: urgent writes that came too late fail (their callers see Closed) instead of
    // waiting for a writer that is gone.
    if let Ok(mut late) = urgent.lock() {
        late.clear();
    }
}

fn ts(row: &Row<'_>, idx: &str) -> rusqlite::Result<Timestamp> {
    Ok(Timestamp(row.get(idx)?))
}

fn token_row(row: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        id: row.get("id")?,
        account_id: row.get("account_id")?,
        inbox_id: row.get("inbox_id")?,
        name: row.get("name")?,
        created_at: ts(row, "created_at")?,
    })
}

fn inbox_row(row: &Row<'_>) -> rusqlite::Result<InboxRecord> {
    Ok(InboxRecord {
        id: row.get("id")?,
        account_id: row.get("account_id")?,
        address: row.get("address")?,
        display_name: row.get("display_name")?,
        created_at: ts(row, "created_at")?,
    })
}

fn message_row(row: &Row<'_>) -> rusqlite::Result<MessageRecord> {
    Ok(MessageRecord {
        id: row.get("id")?,
        inbox_id: row.get("inbox_id")?,
        account_id: row.get("account_id")?,
        seq: row.get("seq")?,
        received_at: ts(row, "received_at")?,
        size: row.get("size")?,
        envelope: Envelope {
            return_path: row.get("return_path")?,
            remote_ip: row.get("remote_ip")?,
            helo: row.get("helo")?,
            tls: row.get("tls")?,
        },
        recipient: row.get("recipient")?,
        summary: row.get("summary")?,
        parsed: row.get("parsed")?,
        auth: row.get("auth")?,
        quarantined: row.get("quarantined")?,
        thread_id: row.get("thread_id")?,
    })
}

/// Places a message in a conversation: the thread of a message it refers to, else of a recent
/// message with the same subject and a shared participant, else a new one.
fn join_thread(conn: &Connection, join: &ThreadJoin<'_>) -> rusqlite::Result<String> {
    let mut thread: Option<String> = None;
    {
        let mut by_ref = conn.prepare_cached(sql::THREAD_OF_HEADER_ID)?;
        for r in join.keys.refs.iter().take(ThreadJoin::MAX_REFS) {
            thread = by_ref
                .query_row(params![join.inbox_id, r], |row| row.get(0))
                .optional()?;
            if thread.is_some() {
                break;
            }
        }
    }
    if thread.is_none() && !join.keys.subject_key.is_empty() {
        let candidates: Vec<(String, String)> = conn
            .prepare_cached(sql::THREADS_BY_SUBJECT)?
            .query_map(
                params![join.inbox_id, join.keys.subject_key, join.window_start()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .collect::<rusqlite::Result<_>>()?;
        thread = candidates
            .into_iter()
            .find(|(_, participants)| join.shares_participant(participants))
            .map(|(t, _)| t);
    }
    let thread = thread.unwrap_or_else(|| crate::id::new_id(crate::id::THREAD, join.at));
    conn.prepare_cached(
        "INSERT OR IGNORE INTO thread_members (message_id, account_id, inbox_id, thread_id, direction, \
         header_id, subject, subject_key, participants, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )?
    .execute(params![
        join.message_id,
        join.account_id,
        join.inbox_id,
        thread,
        join.direction,
        join.keys.message_id,
        join.subject,
        join.keys.subject_key,
        join.participants(),
        join.at.0
    ])?;
    Ok(thread)
}

fn thread_member_row(r: &Row<'_>) -> rusqlite::Result<ThreadMemberRecord> {
    Ok(ThreadMemberRecord {
        message_id: r.get(0)?,
        inbox_id: r.get(1)?,
        thread_id: r.get(2)?,
        direction: r.get(3)?,
        subject: r.get(4)?,
        participants: split_participants(&r.get::<_, String>(5)?),
        at: Timestamp(r.get(6)?),
    })
}

fn suppression_row(r: &Row<'_>) -> rusqlite::Result<Suppression> {
    Ok(Suppression {
        account_id: r.get(0)?,
        address: r.get(1)?,
        reason: r.get(2)?,
        created_at: Timestamp(r.get(3)?),
    })
}

fn claimed_row(r: &Row<'_>) -> rusqlite::Result<Claimed> {
    Ok(Claimed {
        recipient_id: r.get(0)?,
        message_id: r.get(1)?,
        account_id: r.get(2)?,
        inbox_id: r.get(3)?,
        return_path: r.get(4)?,
        blob_id: r.get(5)?,
        address: r.get(6)?,
        domain: r.get(7)?,
        attempts: r.get(8)?,
        queued_at: Timestamp(r.get(9)?),
    })
}

fn domain_row(r: &Row<'_>) -> rusqlite::Result<DomainRecord> {
    Ok(DomainRecord {
        id: r.get(0)?,
        account_id: r.get(1)?,
        name: r.get(2)?,
        created_at: Timestamp(r.get(3)?),
        verified_at: r.get::<_, Option<i64>>(4)?.map(Timestamp),
    })
}

fn insert_domain(conn: &Connection, d: &DomainRecord) -> Result<()> {
    conn.execute(
        sql::INSERT_DOMAIN,
        params![
            d.id,
            d.account_id,
            d.name,
            d.created_at.0,
            d.verified_at.map(|t| t.0)
        ],
    )?;
    Ok(())
}

fn insert_dkim_key(conn: &Connection, k: &DkimKeyRecord) -> Result<()> {
    conn.execute(
        sql::INSERT_DKIM_KEY,
        params![
            k.domain_id,
            k.selector,
            k.algorithm,
            k.private_key,
            k.public_key,
            k.created_at.0,
            k.retired_at.map(|t| t.0)
        ],
    )?;
    Ok(())
}

/// Deletes a blob once no message copy refers to it any more.
fn drop_orphan_blob(conn: &Connection, blob_id: &str) -> Result<()> {
    conn.execute(sql::DROP_ORPHAN_BLOB, params![blob_id])?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_account(&self, account: NewAccount) -> Result<()> {
        self.write(move |conn| {
            if let Some(hash) = &account.invite_hash {
                let used = conn.execute(
                    sql::USE_INVITE,
                    params![account.id, account.created_at.0, hash],
                )?;
                if used != 1 {
                    return Err(StoreError::InvalidInvite);
                }
            }
            conn.execute(
                sql::INSERT_ACCOUNT,
                params![account.id, account.created_at.0],
            )?;
            insert_token(conn, &account.first_token)
        })
        .await
    }

    async fn create_invite(&self, code_hash: Vec<u8>, now: Timestamp) -> Result<()> {
        self.write(move |conn| {
            conn.execute(sql::INSERT_INVITE, params![code_hash, now.0])?;
            Ok(())
        })
        .await
    }

    async fn find_token(&self, hash: Vec<u8>) -> Result<Option<TokenRecord>> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::FIND_TOKEN)?
                .query_row(params![hash], token_row)
                .optional()?)
        })
        .await
    }

    async fn create_token(&self, token: NewToken) -> Result<()> {
        self.write(move |conn| insert_token(conn, &token)).await
    }

    async fn list_tokens(&self, account_id: &str) -> Result<Vec<TokenRecord>> {
        let account_id = account_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::LIST_TOKENS)?;
            let rows = stmt.query_map(params![account_id], token_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn revoke_token(&self, account_id: &str, token_id: &str, now: Timestamp) -> Result<bool> {
        let (account_id, token_id) = (account_id.to_owned(), token_id.to_owned());
        self.write(move |conn| {
            let n = conn.execute(sql::REVOKE_TOKEN, params![now.0, token_id, account_id])?;
            Ok(n == 1)
        })
        .await
    }

    async fn create_inbox(&self, inbox: InboxRecord) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                sql::INSERT_INBOX,
                params![
                    inbox.id,
                    inbox.account_id,
                    inbox.address,
                    inbox.display_name,
                    inbox.created_at.0
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_inboxes(&self, account_id: &str) -> Result<Vec<InboxRecord>> {
        let account_id = account_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::LIST_INBOXES)?;
            let rows = stmt.query_map(params![account_id], inbox_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn get_inbox(&self, account_id: &str, inbox_id: &str) -> Result<Option<InboxRecord>> {
        let (account_id, inbox_id) = (account_id.to_owned(), inbox_id.to_owned());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::GET_INBOX)?
                .query_row(params![inbox_id, account_id], inbox_row)
                .optional()?)
        })
        .await
    }

    async fn delete_inbox(&self, account_id: &str, inbox_id: &str, now: Timestamp) -> Result<bool> {
        let (account_id, inbox_id) = (account_id.to_owned(), inbox_id.to_owned());
        self.write(move |conn| {
            let n = conn.execute(
                sql::MARK_INBOX_DELETED,
                params![now.0, inbox_id, account_id],
            )?;
            if n == 0 {
                return Ok(false);
            }
            let blobs: Vec<String> = conn
                .prepare("SELECT DISTINCT blob_id FROM messages WHERE inbox_id = $1")?
                .query_map(params![inbox_id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            conn.execute(
                "DELETE FROM messages WHERE inbox_id = $1",
                params![inbox_id],
            )?;
            conn.execute(sql::DELETE_INBOX_THREAD_MEMBERS, params![inbox_id])?;
            conn.execute(sql::REVOKE_INBOX_TOKENS, params![now.0, inbox_id])?;
            for blob in blobs {
                drop_orphan_blob(conn, &blob)?;
            }
            Ok(true)
        })
        .await
    }

    async fn find_inbox(&self, address: &str) -> Result<Option<InboxTarget>> {
        let address = address.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::FIND_INBOX)?
                .query_row(params![address], |r| {
                    Ok(InboxTarget {
                        inbox_id: r.get(0)?,
                        account_id: r.get(1)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn accept_inbound(&self, message: InboundMessage) -> Result<()> {
        self.write(move |conn| insert_inbound(conn, &message)).await
    }

    async fn resume_own_work(&self) -> Result<u64> {
        // One node owns the file: every lease left in it is from this node's last run.
        self.write(|conn| {
            let jobs = conn
                .prepare_cached(
                    "UPDATE ingest_jobs SET lease_until = NULL WHERE lease_until IS NOT NULL",
                )?
                .execute([])?;
            let recipients = conn
                .prepare_cached(
                    "UPDATE recipients SET lease_until = NULL WHERE lease_until IS NOT NULL",
                )?
                .execute([])?;
            Ok((jobs + recipients) as u64)
        })
        .await
    }

    async fn claim_ingest(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<IngestJob>> {
        let lease_ms = lease.as_millis() as i64;
        self.write(move |conn| {
            let ids: Vec<String> = conn
                .prepare_cached(
                    // One node owns this file: a job nobody leased is free (the node's own
                    // in-flight jobs are kept apart by the worker).
                    "UPDATE ingest_jobs SET lease_until = $1 WHERE blob_id IN (\
                       SELECT blob_id FROM ingest_jobs WHERE coalesce(lease_until, 0) <= $2 \
                       ORDER BY created_at, blob_id LIMIT $3) \
                     RETURNING blob_id",
                )?
                .query_map(params![now.0 + lease_ms, now.0, limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut stmt = conn.prepare_cached(
                "SELECT b.bytes, (SELECT auth FROM messages m WHERE m.blob_id = b.id LIMIT 1) \
                 FROM blobs b WHERE b.id = $1",
            )?;
            let mut jobs = Vec::with_capacity(ids.len());
            for blob_id in ids {
                let (bytes, auth) = stmt.query_row(params![blob_id], |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Option<String>>(1)?))
                })?;
                jobs.push(IngestJob {
                    blob_id,
                    bytes: Arc::new(bytes),
                    auth,
                });
            }
            Ok(jobs)
        })
        .await
    }

    async fn complete_ingest(&self, done: Vec<Ingested>, now: Timestamp) -> Result<Vec<Wake>> {
        self.write(move |conn| {
            let mut arrivals = Vec::new();
            for item in &done {
                let copies: Vec<(String, String, String, i64, String)> = conn
                    .prepare_cached(
                        "SELECT m.id, m.inbox_id, m.account_id, m.received_at, i.address FROM messages m \
                         JOIN inboxes i ON i.id = m.inbox_id WHERE m.blob_id = $1 AND m.seq IS NULL ORDER BY m.id",
                    )?
                    .query_map(params![item.blob_id], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                for (message_id, inbox_id, account_id, received_at, own_address) in copies {
                    join_thread(
                        conn,
                        &ThreadJoin {
                            message_id: &message_id,
                            account_id: &account_id,
                            inbox_id: &inbox_id,
                            direction: "inbound",
                            subject: item.subject.as_deref(),
                            keys: &item.thread,
                            own_address: &own_address,
                            at: Timestamp(received_at),
                        },
                    )?;
                    // The inbox row is the per-inbox sequence: list order is the order in which
                    // copies became readable, so a cursor never skips a late one.
                    let seq: i64 = conn
                        .prepare_cached(
                            sql::NEXT_INBOX_SEQ,
                        )?
                        .query_row(params![inbox_id], |r| r.get(0))?;
                    conn.prepare_cached(
                        sql::MAKE_MESSAGE_READABLE,
                    )?
                    .execute(params![
                        seq,
                        item.from_address,
                        item.subject,
                        item.summary,
                        item.parsed,
                        message_id
                    ])?;
                    arrivals.push(insert_event(
                        conn,
                        &NewEvent {
                            account_id: &account_id,
                            kind: "message.received",
                            message_id: Some(&message_id),
                            inbox_id: Some(&inbox_id),
                            recipient: None,
                            detail: None,
                        },
                        now,
                    )?);
                    arrivals.push(Wake::inbox(&inbox_id, seq));
                }
                conn.prepare_cached(sql::DELETE_INGEST_JOB)?
                    .execute(params![item.blob_id])?;
                // Every copy may have been deleted (with its inbox) before ingest ran.
                drop_orphan_blob(conn, &item.blob_id)?;
            }
            Ok(arrivals)
        })
        .await
    }

    async fn list_messages(
        &self,
        account_id: &str,
        inbox_id: &str,
        after: i64,
        limit: usize,
        include_quarantined: bool,
    ) -> Result<Vec<MessageRecord>> {
        let (account_id, inbox_id) = (account_id.to_owned(), inbox_id.to_owned());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::LIST_MESSAGES)?;
            let rows = stmt.query_map(
                params![
                    inbox_id,
                    account_id,
                    after,
                    include_quarantined,
                    limit as i64
                ],
                message_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn get_message(
        &self,
        account_id: &str,
        message_id: &str,
    ) -> Result<Option<MessageRecord>> {
        let (account_id, message_id) = (account_id.to_owned(), message_id.to_owned());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::GET_MESSAGE)?
                .query_row(params![message_id, account_id], message_row)
                .optional()?)
        })
        .await
    }

    async fn get_raw(&self, account_id: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        let (account_id, message_id) = (account_id.to_owned(), message_id.to_owned());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::GET_RAW)?
                .query_row(params![message_id, account_id], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn delete_message(&self, account_id: &str, message_id: &str) -> Result<bool> {
        let (account_id, message_id) = (account_id.to_owned(), message_id.to_owned());
        self.write(move |conn| {
            let blob: Option<String> = conn
                .query_row(sql::DELETE_MESSAGE, params![message_id, account_id], |r| {
                    r.get(0)
                })
                .optional()?;
            match blob {
                Some(blob) => {
                    conn.execute(sql::DELETE_MESSAGE_THREAD_MEMBER, params![message_id])?;
                    drop_orphan_blob(conn, &blob)?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
        .await
    }

    async fn inbox_cursor(&self, account_id: &str, inbox_id: &str) -> Result<i64> {
        let (account_id, inbox_id) = (account_id.to_owned(), inbox_id.to_owned());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::INBOX_CURSOR)?
                .query_row(params![inbox_id, account_id], |r| r.get(0))
                .optional()?
                .unwrap_or(0))
        })
        .await
    }

    async fn list_threads(
        &self,
        account_id: &str,
        inbox_id: &str,
        limit: usize,
    ) -> Result<Vec<ThreadRecord>> {
        let (account_id, inbox_id) = (account_id.to_owned(), inbox_id.to_owned());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT thread_id, inbox_id, COUNT(*), MIN(at), MAX(at), group_concat(participants, ' '), \
                 (SELECT subject FROM thread_members f WHERE f.thread_id = t.thread_id ORDER BY at, message_id LIMIT 1) \
                 FROM thread_members t WHERE account_id = $1 AND inbox_id = $2 \
                 GROUP BY thread_id, inbox_id ORDER BY MAX(at) DESC LIMIT $3",
            )?;
            let rows = stmt.query_map(params![account_id, inbox_id, limit as i64], |r| {
                Ok(ThreadRecord {
                    thread_id: r.get(0)?,
                    inbox_id: r.get(1)?,
                    message_count: r.get(2)?,
                    first_at: Timestamp(r.get(3)?),
                    last_at: Timestamp(r.get(4)?),
                    participants: split_participants(&r.get::<_, Option<String>>(5)?.unwrap_or_default()),
                    subject: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn thread_members(
        &self,
        account_id: &str,
        thread_id: &str,
    ) -> Result<Vec<ThreadMemberRecord>> {
        let (account_id, thread_id) = (account_id.to_owned(), thread_id.to_owned());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::THREAD_MEMBERS)?;
            let rows = stmt.query_map(params![thread_id, account_id], thread_member_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn enqueue(&self, message: QueuedMessage) -> Result<()> {
        self.write(move |conn| {
            if let Some((key, hash)) = &message.idempotency {
                conn.execute(
                    sql::INSERT_IDEMPOTENCY,
                    params![
                        message.account_id,
                        key,
                        hash,
                        message.id,
                        message.created_at.0
                    ],
                )?;
            }
            let size = message.bytes.len() as i64;
            conn.prepare_cached(sql::INSERT_BLOB)?.execute(params![
                message.blob_id,
                size,
                message.bytes.as_slice()
            ])?;
            conn.prepare_cached(sql::INSERT_OUTBOUND)?.execute(params![
                message.id,
                message.account_id,
                message.inbox_id,
                message.blob_id,
                message.return_path,
                message.created_at.0,
                size,
                message.source,
                message.summary,
                message.parsed
            ])?;
            let subject: Option<String> =
                serde_json::from_str::<crabmail_api::SummaryContent>(&message.summary)
                    .ok()
                    .and_then(|s| s.subject);
            join_thread(
                conn,
                &ThreadJoin {
                    message_id: &message.id,
                    account_id: &message.account_id,
                    inbox_id: &message.inbox_id,
                    direction: "outbound",
                    subject: subject.as_deref(),
                    keys: &message.thread,
                    own_address: &message.return_path,
                    at: message.created_at,
                },
            )?;
            let mut insert = conn.prepare_cached(sql::INSERT_RECIPIENT)?;
            for r in &message.recipients {
                insert.execute(params![
                    r.id,
                    message.id,
                    message.account_id,
                    r.address,
                    r.domain,
                    message.created_at.0
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn find_idempotency(
        &self,
        account_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>> {
        let (account_id, key) = (account_id.to_owned(), key.to_owned());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::FIND_IDEMPOTENCY)?
                .query_row(params![account_id, key], |r| {
                    Ok(IdempotencyRecord {
                        request_hash: r.get(0)?,
                        message_id: r.get(1)?,
                        created_at: Timestamp(r.get(2)?),
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn expire_idempotency(
        &self,
        account_id: &str,
        key: &str,
        before: Timestamp,
    ) -> Result<()> {
        let (account_id, key) = (account_id.to_owned(), key.to_owned());
        self.write(move |conn| {
            conn.execute(sql::EXPIRE_IDEMPOTENCY, params![account_id, key, before.0])?;
            Ok(())
        })
        .await
    }

    async fn suppressed(
        &self,
        account_id: &str,
        addresses: Vec<String>,
    ) -> Result<Vec<Suppression>> {
        let account_id = account_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT account_id, address, reason, created_at FROM suppressions \
                 WHERE account_id = $1 AND address = $2",
            )?;
            let mut found = Vec::new();
            for address in addresses {
                if let Some(s) = stmt
                    .query_row(params![account_id, address], suppression_row)
                    .optional()?
                {
                    found.push(s);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn list_suppressions(&self, account_id: &str) -> Result<Vec<Suppression>> {
        let account_id = account_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::LIST_SUPPRESSIONS)?;
            let rows = stmt.query_map(params![account_id], suppression_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn delete_suppression(&self, account_id: &str, address: &str) -> Result<bool> {
        let (account_id, address) = (account_id.to_owned(), address.to_owned());
        self.write(move |conn| {
            let n = conn.execute(sql::DELETE_SUPPRESSION, params![account_id, address])?;
            Ok(n == 1)
        })
        .await
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<Claimed>> {
        self.write(move |conn| {
            let ids: Vec<String> = conn
                .prepare_cached(
                    "UPDATE recipients SET lease_until = $1 WHERE id IN (\
                       SELECT id FROM recipients WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $2 \
                       AND (lease_until IS NULL OR lease_until <= $2) ORDER BY next_attempt_at LIMIT $3) \
                     RETURNING id",
                )?
                .query_map(params![lease_until.0, now.0, limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut stmt = conn.prepare_cached(sql::CLAIMED)?;
            let mut claimed = Vec::with_capacity(ids.len());
            for id in ids {
                claimed.push(stmt.query_row(params![id], claimed_row)?);
            }
            Ok(claimed)
        })
        .await
    }

    async fn next_due(&self) -> Result<Option<Timestamp>> {
        self.read(|conn| {
            let due: Option<i64> = conn
                .prepare_cached(
                    "SELECT min(max(next_attempt_at, coalesce(lease_until, 0))) FROM recipients \
                     WHERE next_attempt_at IS NOT NULL",
                )?
                .query_row([], |r| r.get(0))?;
            Ok(due.map(Timestamp))
        })
        .await
    }

    async fn load_blob(&self, blob_id: &str) -> Result<Option<Vec<u8>>> {
        let blob_id = blob_id.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::LOAD_BLOB)?
                .query_row(params![blob_id], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn record_outcomes(&self, outcomes: Outcomes, now: Timestamp) -> Result<Vec<Wake>> {
        self.write_urgent(move |conn| {
            let mut wakes = Vec::new();
            for result in &outcomes.results {
                let a = &result.attempt;
                let updated = conn.prepare_cached(sql::RECORD_OUTCOME)?.execute(params![
                    result.status.as_str(),
                    result.next_attempt_at.map(|t| t.0),
                    a.code,
                    a.enhanced,
                    a.text,
                    now.0,
                    result.recipient_id
                ])?;
                if updated == 0 {
                    continue; // cancelled while in flight
                }
                conn.prepare_cached(sql::INSERT_ATTEMPT)?.execute(params![
                    result.recipient_id,
                    a.at.0,
                    a.host,
                    a.code,
                    a.enhanced,
                    a.text,
                    a.tls
                ])?;
                wakes.push(insert_event(
                    conn,
                    &NewEvent {
                        account_id: &result.account_id,
                        kind: event_kind(result.status),
                        message_id: Some(&result.message_id),
                        inbox_id: Some(&result.inbox_id),
                        recipient: Some(&result.address),
                        detail: Some(attempt_detail(result.status, a)),
                    },
                    now,
                )?);
            }
            for message in &outcomes.inbound {
                insert_inbound(conn, message)?;
            }
            for s in &outcomes.suppress {
                conn.execute(
                    sql::INSERT_SUPPRESSION,
                    params![s.account_id, s.address, s.reason, s.created_at.0],
                )?;
            }
            Ok(wakes)
        })
        .await
    }

    async fn get_outbound(
        &self,
        account_id: &str,
        message_id: &str,
    ) -> Result<Option<OutboundRecord>> {
        let (account_id, message_id) = (account_id.to_owned(), message_id.to_owned());
        self.read(move |conn| {
            let Some(mut record) = conn
                .prepare_cached(sql::GET_OUTBOUND)?
                .query_row(params![message_id, account_id], |r| {
                    Ok(OutboundRecord {
                        id: r.get(0)?,
                        account_id: r.get(1)?,
                        inbox_id: r.get(2)?,
                        return_path: r.get(3)?,
                        created_at: Timestamp(r.get(4)?),
                        size: r.get(5)?,
                        summary: r.get(6)?,
                        parsed: r.get(7)?,
                        blob_id: r.get(8)?,
                        recipients: Vec::new(),
                        thread_id: r.get(9)?,
                    })
                })
                .optional()?
            else {
                return Ok(None);
            };
            let recipients: Vec<(String, String, String, Option<i64>)> = conn
                .prepare_cached(sql::OUTBOUND_RECIPIENTS)?
                .query_map(params![record.id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut attempts = conn.prepare_cached(sql::RECIPIENT_ATTEMPTS)?;
            for (id, address, status, next) in recipients {
                let list = attempts
                    .query_map(params![id], |r| {
                        Ok(AttemptRecord {
                            at: Timestamp(r.get(0)?),
                            host: r.get(1)?,
                            code: r.get(2)?,
                            enhanced: r.get(3)?,
                            text: r.get(4)?,
                            tls: r.get(5)?,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                record.recipients.push(RecipientRecord {
                    id,
                    address,
                    status: Status::parse(&status),
                    attempts: list,
                    next_attempt_at: next.map(Timestamp),
                });
            }
            Ok(Some(record))
        })
        .await
    }

    async fn list_events(
        &self,
        account_id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>> {
        let account_id = account_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::LIST_EVENTS)?;
            let rows = stmt.query_map(params![account_id, after, limit as i64], |r| {
                Ok(EventRecord {
                    seq: r.get(0)?,
                    kind: r.get(1)?,
                    message_id: r.get(2)?,
                    inbox_id: r.get(3)?,
                    recipient: r.get(4)?,
                    detail: r.get(5)?,
                    created_at: Timestamp(r.get(6)?),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn queue_entries(&self, limit: usize) -> Result<Vec<QueueEntry>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::QUEUE_ENTRIES)?;
            let rows = stmt.query_map(params![limit as i64], |r| {
                Ok(QueueEntry {
                    message_id: r.get(0)?,
                    account_id: r.get(1)?,
                    return_path: r.get(2)?,
                    address: r.get(3)?,
                    status: Status::parse(&r.get::<_, String>(4)?),
                    attempts: r.get(5)?,
                    next_attempt_at: r.get::<_, Option<i64>>(6)?.map(Timestamp),
                    last_text: r.get(7)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn outbound_owner(&self, message_id: &str) -> Result<Option<String>> {
        let message_id = message_id.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::OUTBOUND_OWNER)?
                .query_row(params![message_id], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn retry_now(&self, message_id: &str, now: Timestamp) -> Result<usize> {
        let message_id = message_id.to_owned();
        self.write(move |conn| Ok(conn.execute(sql::RETRY_NOW, params![now.0, message_id])?))
            .await
    }

    async fn cancel(&self, message_id: &str, now: Timestamp) -> Result<usize> {
        let message_id = message_id.to_owned();
        self.write(move |conn| {
            let cancelled: Vec<(String, String, String)> = conn
                .prepare_cached(
                    "UPDATE recipients SET status = 'cancelled', next_attempt_at = NULL, lease_until = NULL, \
                     updated_at = $1 WHERE message_id = $2 AND next_attempt_at IS NOT NULL \
                     RETURNING account_id, address, (SELECT inbox_id FROM outbound WHERE id = message_id)",
                )?
                .query_map(params![now.0, message_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (account_id, address, inbox_id) in &cancelled {
                insert_event(
                    conn,
                    &NewEvent {
                        account_id,
                        kind: "message.cancelled",
                        message_id: Some(&message_id),
                        inbox_id: Some(inbox_id),
                        recipient: Some(address),
                        detail: None,
                    },
                    now,
                )?;
            }
            Ok(cancelled.len())
        })
        .await
    }

    async fn create_domain(&self, domain: DomainRecord, keys: Vec<DkimKeyRecord>) -> Result<()> {
        self.write(move |conn| {
            insert_domain(conn, &domain)?;
            for key in &keys {
                insert_dkim_key(conn, key)?;
            }
            Ok(())
        })
        .await
    }

    async fn ensure_shared_domain(
        &self,
        domain: DomainRecord,
        keys: Vec<DkimKeyRecord>,
    ) -> Result<DomainRecord> {
        self.write(move |conn| {
            let existing = conn
                .prepare_cached(sql::SHARED_DOMAIN)?
                .query_row(params![domain.name], domain_row)
                .optional()?;
            if let Some(existing) = existing {
                return Ok(existing);
            }
            insert_domain(conn, &domain)?;
            for key in &keys {
                insert_dkim_key(conn, key)?;
            }
            Ok(domain)
        })
        .await
    }

    async fn list_domains(&self, account_id: &str) -> Result<Vec<DomainRecord>> {
        let account_id = account_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::LIST_DOMAINS)?;
            let rows = stmt.query_map(params![account_id], domain_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn get_domain(&self, account_id: &str, domain_id: &str) -> Result<Option<DomainRecord>> {
        let (account_id, domain_id) = (account_id.to_owned(), domain_id.to_owned());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::GET_DOMAIN)?
                .query_row(params![domain_id, account_id], domain_row)
                .optional()?)
        })
        .await
    }

    async fn verify_domain(
        &self,
        account_id: &str,
        domain_id: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let (account_id, domain_id) = (account_id.to_owned(), domain_id.to_owned());
        self.write(move |conn| {
            let n = conn.execute(sql::VERIFY_DOMAIN, params![now.0, domain_id, account_id])?;
            Ok(n == 1)
        })
        .await
    }

    async fn delete_domain(&self, account_id: &str, domain_id: &str) -> Result<bool> {
        let (account_id, domain_id) = (account_id.to_owned(), domain_id.to_owned());
        self.write(move |conn| {
            let Some(name) = conn
                .query_row(
                    "SELECT name FROM domains WHERE id = $1 AND account_id = $2",
                    params![domain_id, account_id],
                    |r| r.get::<_, String>(0),
                )
                .optional()?
            else {
                return Ok(false);
            };
            let live: i64 = conn.query_row(
                sql::COUNT_DOMAIN_INBOXES,
                params![account_id, format!("%@{name}")],
                |r| r.get(0),
            )?;
            if live > 0 {
                return Err(StoreError::Conflict);
            }
            conn.execute(sql::DELETE_DOMAIN_KEYS, params![domain_id])?;
            conn.execute(sql::DELETE_DOMAIN, params![domain_id])?;
            Ok(true)
        })
        .await
    }

    async fn hosted_domain(&self, name: &str) -> Result<Option<DomainRecord>> {
        let name = name.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::HOSTED_DOMAIN)?
                .query_row(params![name], domain_row)
                .optional()?)
        })
        .await
    }

    async fn dkim_keys(&self, domain_id: &str) -> Result<Vec<DkimKeyRecord>> {
        let domain_id = domain_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::DKIM_KEYS)?;
            let rows = stmt.query_map(params![domain_id], |r| {
                Ok(DkimKeyRecord {
                    domain_id: r.get(0)?,
                    selector: r.get(1)?,
                    algorithm: r.get(2)?,
                    private_key: r.get(3)?,
                    public_key: r.get(4)?,
                    created_at: Timestamp(r.get(5)?),
                    retired_at: r.get::<_, Option<i64>>(6)?.map(Timestamp),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn rotate_dkim_keys(
        &self,
        domain_id: &str,
        keys: Vec<DkimKeyRecord>,
        now: Timestamp,
    ) -> Result<()> {
        let domain_id = domain_id.to_owned();
        self.write(move |conn| {
            conn.execute(sql::RETIRE_DKIM_KEYS, params![now.0, domain_id])?;
            for key in &keys {
                insert_dkim_key(conn, key)?;
            }
            Ok(())
        })
        .await
    }

    async fn follow_arrivals(&self, _notify: Arc<dyn Fn(Wake) + Send + Sync>) -> Result<()> {
        Ok(())
    }

    async fn close(&self) {
        let sender = self.writer.lock().ok().and_then(|mut w| w.take());
        drop(sender);
        let thread = self.writer_thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            // The writer finishes the batches already queued, then exits.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// The bytes, a copy per delivery and an ingest job (`accept_inbound`, local delivery, bounces).
fn insert_inbound(conn: &Connection, message: &InboundMessage) -> Result<()> {
    let size = message.bytes.len() as i64;
    conn.prepare_cached(sql::INSERT_BLOB)?.execute(params![
        message.blob_id,
        size,
        message.bytes.as_slice()
    ])?;
    let mut insert = conn.prepare_cached(sql::INSERT_INBOUND)?;
    let env = &message.envelope;
    for d in &message.deliveries {
        insert.execute(params![
            d.message_id,
            d.inbox_id,
            d.account_id,
            message.blob_id,
            message.received_at.0,
            size,
            env.return_path,
            d.recipient,
            env.remote_ip,
            env.helo,
            env.tls,
            message.auth,
            message.quarantined
        ])?;
    }
    conn.prepare_cached("INSERT INTO ingest_jobs (blob_id, created_at) VALUES ($1, $2)")?
        .execute(params![message.blob_id, message.received_at.0])?;
    Ok(())
}

/// Appends to an account's event log; the account row is the sequence.
fn insert_event(conn: &Connection, event: &NewEvent<'_>, now: Timestamp) -> Result<Wake> {
    let seq: i64 = conn
        .prepare_cached(sql::NEXT_EVENT_SEQ)?
        .query_row(params![event.account_id], |r| r.get(0))?;
    conn.prepare_cached(sql::INSERT_EVENT)?.execute(params![
        event.account_id,
        seq,
        event.kind,
        event.message_id,
        event.inbox_id,
        event.recipient,
        event.detail,
        now.0
    ])?;
    Ok(Wake::events(event.account_id, seq))
}

fn insert_token(conn: &Connection, token: &NewToken) -> Result<()> {
    conn.execute(
        sql::INSERT_TOKEN,
        params![
            token.id,
            token.account_id,
            token.hash,
            token.inbox_id,
            token.name,
            token.created_at.0
        ],
    )?;
    Ok(())
}
