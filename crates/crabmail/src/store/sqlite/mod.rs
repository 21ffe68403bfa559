//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! Writes go through one writer thread that owns the only write connection. It drains whatever
//! writes have gathered, runs each in its own savepoint, and commits them together: one fsync
//! covers many accepted messages under load (group commit), and an idle server still commits each
//! write at once. A write's future resolves only after its batch's COMMIT returned.
//!
//! Reads use a small pool of read connections on blocking threads; WAL lets them run beside the
//! writer. Lookups of a row by key on the hot paths (`read_point`) run on the caller's thread
//! instead: the hand-off to a blocking thread cost more than the lookup. If the writer thread
//! dies, every later write fails with `Closed`, never with success.

mod accounts;
mod approvals;
mod breakers;
mod domains;
mod events;
mod inbound;
mod lists;
mod operator;
mod queue;
mod quotas;
mod reading;
mod sending;
mod uploads;
mod webhooks;

use super::*;
use crate::config::StoreConfig;
use crate::ingest::thread::ThreadJoin;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../../migrations/sqlite/0001_core.sql")),
    (
        2,
        include_str!("../../../migrations/sqlite/0002_outbound.sql"),
    ),
    (3, include_str!("../../../migrations/sqlite/0003_trust.sql")),
    (
        4,
        include_str!("../../../migrations/sqlite/0004_threads.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/sqlite/0005_ingest_leases.sql"),
    ),
    (
        6,
        include_str!("../../../migrations/sqlite/0006_quotas.sql"),
    ),
    (
        7,
        include_str!("../../../migrations/sqlite/0007_approvals.sql"),
    ),
    (
        8,
        include_str!("../../../migrations/sqlite/0008_webhooks.sql"),
    ),
    (
        9,
        include_str!("../../../migrations/sqlite/0009_uploads.sql"),
    ),
    (
        10,
        include_str!("../../../migrations/sqlite/0010_reports.sql"),
    ),
    (
        11,
        include_str!("../../../migrations/sqlite/0011_operator.sql"),
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
        tokio::task::spawn_blocking(move || pool2.with_connection(f))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }

    /// A lookup of one row (or a few) by an index, run on the caller's thread. Handing it to a
    /// blocking thread costs two thread wake-ups, which under load cost more than the lookup:
    /// profiled under the relay benchmark, the hot path's lookups (sender inbox, recipient
    /// domain, suppression, message bytes) spent nearly all their time in the hand-off, not in
    /// SQLite. WAL never makes a reader wait for the writer, so the thread is not held up.
    /// Never for listings, counts or scans: those take `read`.
    fn read_point<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.readers.with_connection(f)
    }
}

impl ReadPool {
    /// Runs `f` on an idle read connection (a new one if none is idle) and keeps it for the next.
    fn with_connection<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match pooled {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let result = f(&conn);
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
        result
    }
}

/// Prepared statements kept per connection: more than the store has, so none is parsed twice
/// (rusqlite's default of 16 is smaller than one ingest batch's set, and the LRU then thrashes).
const STATEMENT_CACHE: usize = 256;

fn open_writer(path: &Path) -> Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // WAL: readers never block the writer. FULL: the WAL is fsynced at every COMMIT, so a
    // committed message survives power loss, not only a process crash.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    prepare_once(&conn)?;
    migrate(&mut conn)?;
    Ok(conn)
}

fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    prepare_once(&conn)?;
    Ok(conn)
}

/// Statements are parsed once per connection and kept: a cache larger than the store's set of
/// statements, and plans that do not depend on bound values (the bundled SQLite has STAT4,
/// which otherwise re-prepares a statement whenever a range's bound changes, e.g. the queue's
/// `next_attempt_at <= $2` at every claim; the store runs no ANALYZE, so plans are the same).
fn prepare_once(conn: &Connection) -> Result<()> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
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

/// `execute` through the connection's statement cache. The store runs the same few dozen
/// statements all day, and parsing each again cost more than a tenth of the writer's time.
fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    exec(conn, "SAVEPOINT job", [])?;
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(StoreError::Unavailable("write panicked".into())));
    if outcome.is_ok() {
        exec(conn, "RELEASE job", [])?;
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
    let take_urgent = || {
        urgent
            .lock()
            .map(|mut u| std::mem::take(&mut *u))
            .unwrap_or_default()
    };
    // Writes a batch was cut short before (see below): they go first in the next one.
    let mut waiting = std::collections::VecDeque::new();
    loop {
        // Urgent writes alone, in a small transaction of their own (its commit is quicker);
        // otherwise whatever is queued, waiting only when nothing is.
        let mut batch = take_urgent();
        let only_urgent = !batch.is_empty();
        if !only_urgent {
            batch = std::mem::take(&mut waiting);
            if batch.is_empty() {
                match jobs.blocking_recv() {
                    Some(first) => batch.push_back(first),
                    None => break,
                }
            }
            while batch.len() < max_batch {
                match jobs.try_recv() {
                    Ok(job) => batch.push_back(job),
                    Err(_) => break,
                }
            }
        }
        if let Err(e) = exec(&conn, "BEGIN IMMEDIATE", []) {
            tracing::error!(error = %e, "sqlite: cannot begin a write transaction");
            drop(batch); // dropping a job drops its reply sender: the caller sees Closed
            continue;
        }
        let mut completions: Vec<Completion> = Vec::with_capacity(batch.len());
        while let Some(job) = batch.pop_front() {
            completions.push(job(&conn));
            // An urgent write (a delivery outcome: the remote has said 250, and until this
            // commit a crash sends the message again) that arrives while a batch runs joins it
            // and ends it: it waits for one write and this commit, not for the rest of the
            // batch and then a commit of its own.
            let late = if only_urgent {
                Default::default()
            } else {
                take_urgent()
            };
            if !late.is_empty() {
                completions.extend(late.into_iter().map(|job| job(&conn)));
                waiting = std::mem::take(&mut batch);
                break;
            }
        }
        // DURABILITY: this COMMIT (fsync of the WAL, synchronous=FULL) is what every write in the
        // batch waits for before its caller replies 250 or 2xx.
        let committed = exec(&conn, "COMMIT", [])
            .map(|_| ())
            .map_err(|e| e.to_string());
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

/// Places a message in a conversation (`thread::choose` decides which).
fn join_thread(conn: &Connection, join: &ThreadJoin<'_>) -> rusqlite::Result<String> {
    let mut by_reference: Option<String> = None;
    let mut by_ref = conn.prepare_cached(sql::THREAD_OF_HEADER_ID)?;
    for r in join.keys.refs.iter().take(ThreadJoin::MAX_REFS) {
        by_reference = by_ref
            .query_row(params![join.inbox_id, r], |row| row.get(0))
            .optional()?;
        if by_reference.is_some() {
            break;
        }
    }
    let mut by_subject = Vec::new();
    if by_reference.is_none() && !join.keys.subject_key.is_empty() {
        by_subject = conn
            .prepare_cached(sql::THREADS_BY_SUBJECT)?
            .query_map(
                params![join.inbox_id, join.keys.subject_key, join.window_start()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .collect::<rusqlite::Result<_>>()?;
    }
    let thread = crate::ingest::thread::choose(join, by_reference, by_subject);
    conn.prepare_cached(sql::INSERT_THREAD_MEMBER)?
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

fn insert_domain(conn: &Connection, d: &DomainRecord) -> Result<()> {
    exec(
        conn,
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
    exec(
        conn,
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
    exec(conn, sql::DROP_ORPHAN_BLOB, params![blob_id])?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
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

/// A message's bytes, stored once; returns their size.
fn insert_blob(conn: &Connection, blob_id: &str, bytes: &[u8]) -> Result<i64> {
    let size = bytes.len() as i64;
    conn.prepare_cached(sql::INSERT_BLOB)?
        .execute(params![blob_id, size, bytes])?;
    Ok(size)
}

/// The bytes, a copy per delivery and an ingest job (`accept_inbound`, local delivery, bounces).
fn insert_inbound(conn: &Connection, message: &InboundMessage) -> Result<()> {
    let size = insert_blob(conn, &message.blob_id, &message.bytes)?;
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
            rows::to_json(message.auth.as_ref()),
            message.quarantined || d.quarantined,
            d.report_for
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
        rows::to_json(event.detail.as_ref()),
        now.0
    ])?;
    Ok(Wake::events(event.account_id, seq))
}

fn insert_token(conn: &Connection, token: &NewToken) -> Result<()> {
    exec(
        conn,
        sql::INSERT_TOKEN,
        params![
            token.id,
            token.account_id,
            token.hash,
            token.inbox_id,
            token.name,
            token.created_at.0,
            token.scopes
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that notes its name when the writer runs it and, when done, whether its batch
    /// committed.
    fn noting(
        name: &'static str,
        ran: &Arc<Mutex<Vec<&'static str>>>,
    ) -> (Job, oneshot::Receiver<Result<()>>) {
        let ran = ran.clone();
        job(move |_| {
            ran.lock().expect("log").push(name);
            Ok(())
        })
    }

    #[test]
    fn an_urgent_write_arriving_during_a_batch_joins_it_and_ends_it() {
        let ran = Arc::new(Mutex::new(Vec::new()));
        let urgent: Arc<Mutex<std::collections::VecDeque<Job>>> = Arc::default();
        let (tx, rx) = mpsc::channel::<Job>(8);
        // The first write of the batch makes a delivery outcome arrive while the batch runs.
        let (outcome, outcome_done) = noting("outcome", &ran);
        let mut outcome = Some(outcome);
        let (first, first_done) = {
            let ran = ran.clone();
            let urgent = urgent.clone();
            job(move |_| {
                ran.lock().expect("log").push("first");
                if let Some(outcome) = outcome.take() {
                    urgent.lock().expect("urgent").push_back(outcome);
                }
                Ok(())
            })
        };
        let (second, second_done) = noting("second", &ran);
        let (third, third_done) = noting("third", &ran);
        for j in [first, second, third] {
            assert!(tx.try_send(j).is_ok());
        }
        drop(tx);
        let conn = Connection::open_in_memory().expect("sqlite in memory");
        write_loop(conn, rx, urgent, 16);
        // Without the cut the outcome would wait for the whole batch and a commit of its own.
        assert_eq!(
            *ran.lock().expect("log"),
            ["first", "outcome", "second", "third"]
        );
        for done in [first_done, outcome_done, second_done, third_done] {
            assert!(matches!(done.blocking_recv(), Ok(Ok(()))));
        }
    }
}
