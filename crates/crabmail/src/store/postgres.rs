//! The shared store: PostgreSQL, for several crabmail nodes serving the same accounts and inboxes.
//!
//! Each operation is one transaction on a pooled connection; PostgreSQL commits concurrent
//! transactions together by itself. Ingest is idempotent across nodes: copies are locked
//! (`FOR UPDATE`) and only those still without a sequence number are made readable, so two nodes
//! resuming the same job cannot list a message twice.
//!
//! Arrivals are announced with `pg_notify` inside the ingest transaction (delivered on commit), so
//! a long-poll held by any node wakes when another node accepted the message.

use super::*;
use crate::config::StoreConfig;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Executor, Postgres, Row, Transaction};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_core.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_outbound.sql"),
    ),
    (3, include_str!("../../migrations/postgres/0003_trust.sql")),
    (
        4,
        include_str!("../../migrations/postgres/0004_threads.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_ingest_leases.sql"),
    ),
];
const ARRIVALS_CHANNEL: &str = "crabmail_arrivals";

pub struct PgStore {
    pool: PgPool,
    /// This node's name, kept with the ingest jobs it accepts or claims.
    node: String,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            sqlx::Error::PoolClosed => StoreError::Closed,
            _ => StoreError::Unavailable(e.to_string()),
        }
    }
}

impl PgStore {
    pub async fn connect(url: &str, config: &StoreConfig) -> Result<PgStore> {
        let pool = PgPoolOptions::new()
            .max_connections(config.pg_max_connections.max(2))
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        migrate(&pool).await?;
        Ok(PgStore {
            pool,
            node: String::new(),
        })
    }

    /// Names this node (`Config::node_id`), so after a restart it resumes its own ingest jobs
    /// at once instead of waiting out their leases.
    pub fn for_node(mut self, node: &str) -> Self {
        self.node = node.to_owned();
        self
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

async fn migrate(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    // Nodes starting together take turns; the lock ends with the transaction.
    tx.execute("SELECT pg_advisory_xact_lock(7283001)").await?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await?;
    let current: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM schema_migrations")
        .fetch_one(&mut *tx)
        .await?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current.unwrap_or(0)) {
        sqlx::raw_sql(*sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::Migration(format!("postgres migration {version}: {e}")))?;
        sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
            .bind(version)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn token_row(row: &PgRow) -> std::result::Result<TokenRecord, sqlx::Error> {
    Ok(TokenRecord {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        inbox_id: row.try_get("inbox_id")?,
        name: row.try_get("name")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

fn inbox_row(row: &PgRow) -> std::result::Result<InboxRecord, sqlx::Error> {
    Ok(InboxRecord {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        address: row.try_get("address")?,
        display_name: row.try_get("display_name")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

fn message_row(row: &PgRow) -> std::result::Result<MessageRecord, sqlx::Error> {
    Ok(MessageRecord {
        id: row.try_get("id")?,
        inbox_id: row.try_get("inbox_id")?,
        account_id: row.try_get("account_id")?,
        seq: row.try_get("seq")?,
        received_at: Timestamp(row.try_get("received_at")?),
        size: row.try_get("size")?,
        envelope: Envelope {
            return_path: row.try_get("return_path")?,
            remote_ip: row.try_get("remote_ip")?,
            helo: row.try_get("helo")?,
            tls: row.try_get("tls")?,
        },
        recipient: row.try_get("recipient")?,
        summary: row.try_get("summary")?,
        parsed: row.try_get("parsed")?,
        auth: row.try_get("auth")?,
        quarantined: row.try_get("quarantined")?,
        thread_id: row.try_get("thread_id")?,
    })
}

/// Places a message in a conversation: the thread of a message it refers to, else of a recent
/// message with the same subject and a shared participant, else a new one.
async fn join_thread(
    tx: &mut Transaction<'static, Postgres>,
    join: &ThreadJoin<'_>,
) -> std::result::Result<String, sqlx::Error> {
    let mut thread: Option<String> = None;
    for r in join.keys.refs.iter().take(ThreadJoin::MAX_REFS) {
        thread = sqlx::query_scalar(sql::THREAD_OF_HEADER_ID)
            .bind(join.inbox_id)
            .bind(r)
            .fetch_optional(&mut **tx)
            .await?;
        if thread.is_some() {
            break;
        }
    }
    if thread.is_none() && !join.keys.subject_key.is_empty() {
        let candidates: Vec<(String, String)> = sqlx::query_as(sql::THREADS_BY_SUBJECT)
            .bind(join.inbox_id)
            .bind(&join.keys.subject_key)
            .bind(join.window_start())
            .fetch_all(&mut **tx)
            .await?;
        thread = candidates
            .into_iter()
            .find(|(_, participants)| join.shares_participant(participants))
            .map(|(t, _)| t);
    }
    let thread = thread.unwrap_or_else(|| crate::id::new_id(crate::id::THREAD, join.at));
    sqlx::query(
        "INSERT INTO thread_members (message_id, account_id, inbox_id, thread_id, direction, \
         header_id, subject, subject_key, participants, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(join.message_id)
    .bind(join.account_id)
    .bind(join.inbox_id)
    .bind(&thread)
    .bind(join.direction)
    .bind(&join.keys.message_id)
    .bind(join.subject)
    .bind(&join.keys.subject_key)
    .bind(join.participants())
    .bind(join.at.0)
    .execute(&mut **tx)
    .await?;
    Ok(thread)
}

async fn drop_orphan_blob(tx: &mut Transaction<'static, Postgres>, blob_id: &str) -> Result<()> {
    sqlx::query(sql::DROP_ORPHAN_BLOB)
        .bind(blob_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The bytes, a copy per delivery and an ingest job (`accept_inbound`, local delivery, bounces).
async fn insert_inbound(
    tx: &mut Transaction<'static, Postgres>,
    message: &InboundMessage,
    node: &str,
) -> Result<()> {
    let size = message.bytes.len() as i64;
    sqlx::query(sql::INSERT_BLOB)
        .bind(&message.blob_id)
        .bind(size)
        .bind(message.bytes.as_slice())
        .execute(&mut **tx)
        .await?;
    let env = &message.envelope;
    for d in &message.deliveries {
        sqlx::query(sql::INSERT_INBOUND)
            .bind(&d.message_id)
            .bind(&d.inbox_id)
            .bind(&d.account_id)
            .bind(&message.blob_id)
            .bind(message.received_at.0)
            .bind(size)
            .bind(&env.return_path)
            .bind(&d.recipient)
            .bind(&env.remote_ip)
            .bind(&env.helo)
            .bind(env.tls)
            .bind(&message.auth)
            .bind(message.quarantined)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query("INSERT INTO ingest_jobs (blob_id, created_at, node) VALUES ($1, $2, $3)")
        .bind(&message.blob_id)
        .bind(message.received_at.0)
        .bind(node)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Appends to an account's event log (the account row is the sequence) and announces it to the
/// other nodes when the transaction commits.
async fn insert_event(
    tx: &mut Transaction<'static, Postgres>,
    event: &NewEvent<'_>,
    now: Timestamp,
) -> Result<Wake> {
    let seq: i64 = sqlx::query_scalar(sql::NEXT_EVENT_SEQ)
        .bind(event.account_id)
        .fetch_one(&mut **tx)
        .await?;
    sqlx::query(sql::INSERT_EVENT)
        .bind(event.account_id)
        .bind(seq)
        .bind(event.kind)
        .bind(event.message_id)
        .bind(event.inbox_id)
        .bind(event.recipient)
        .bind(&event.detail)
        .bind(now.0)
        .execute(&mut **tx)
        .await?;
    let wake = Wake::events(event.account_id, seq);
    announce(tx, &wake).await?;
    Ok(wake)
}

/// `pg_notify` is delivered at commit, to every node's `follow_arrivals`.
async fn announce(tx: &mut Transaction<'static, Postgres>, wake: &Wake) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(ARRIVALS_CHANNEL)
        .bind(format!("{} {}", wake.topic, wake.seq))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn suppression_row(r: &PgRow) -> std::result::Result<Suppression, sqlx::Error> {
    Ok(Suppression {
        account_id: r.try_get(0)?,
        address: r.try_get(1)?,
        reason: r.try_get(2)?,
        created_at: Timestamp(r.try_get(3)?),
    })
}

fn domain_row(r: &PgRow) -> std::result::Result<DomainRecord, sqlx::Error> {
    Ok(DomainRecord {
        id: r.try_get(0)?,
        account_id: r.try_get(1)?,
        name: r.try_get(2)?,
        created_at: Timestamp(r.try_get(3)?),
        verified_at: r.try_get::<Option<i64>, _>(4)?.map(Timestamp),
    })
}

async fn insert_domain(tx: &mut Transaction<'static, Postgres>, d: &DomainRecord) -> Result<()> {
    sqlx::query(sql::INSERT_DOMAIN)
        .bind(&d.id)
        .bind(&d.account_id)
        .bind(&d.name)
        .bind(d.created_at.0)
        .bind(d.verified_at.map(|t| t.0))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_dkim_key(tx: &mut Transaction<'static, Postgres>, k: &DkimKeyRecord) -> Result<()> {
    sqlx::query(sql::INSERT_DKIM_KEY)
        .bind(&k.domain_id)
        .bind(&k.selector)
        .bind(&k.algorithm)
        .bind(&k.private_key)
        .bind(&k.public_key)
        .bind(k.created_at.0)
        .bind(k.retired_at.map(|t| t.0))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_token(tx: &mut Transaction<'static, Postgres>, token: &NewToken) -> Result<()> {
    sqlx::query(sql::INSERT_TOKEN)
        .bind(&token.id)
        .bind(&token.account_id)
        .bind(&token.hash)
        .bind(&token.inbox_id)
        .bind(&token.name)
        .bind(token.created_at.0)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    async fn create_account(&self, account: NewAccount) -> Result<()> {
        let mut tx = self.begin().await?;
        if let Some(hash) = &account.invite_hash {
            let used = sqlx::query(sql::USE_INVITE)
                .bind(&account.id)
                .bind(account.created_at.0)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
            if used.rows_affected() != 1 {
                return Err(StoreError::InvalidInvite);
            }
        }
        sqlx::query(sql::INSERT_ACCOUNT)
            .bind(&account.id)
            .bind(account.created_at.0)
            .execute(&mut *tx)
            .await?;
        insert_token(&mut tx, &account.first_token).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_invite(&self, code_hash: Vec<u8>, now: Timestamp) -> Result<()> {
        sqlx::query(sql::INSERT_INVITE)
            .bind(code_hash)
            .bind(now.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn find_token(&self, hash: Vec<u8>) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(sql::FIND_TOKEN)
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(token_row).transpose()?)
    }

    async fn create_token(&self, token: NewToken) -> Result<()> {
        let mut tx = self.begin().await?;
        insert_token(&mut tx, &token).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_tokens(&self, account_id: &str) -> Result<Vec<TokenRecord>> {
        let rows = sqlx::query(sql::LIST_TOKENS)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(token_row)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn revoke_token(&self, account_id: &str, token_id: &str, now: Timestamp) -> Result<bool> {
        let done = sqlx::query(sql::REVOKE_TOKEN)
            .bind(now.0)
            .bind(token_id)
            .bind(account_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_inbox(&self, inbox: InboxRecord) -> Result<()> {
        sqlx::query(sql::INSERT_INBOX)
            .bind(&inbox.id)
            .bind(&inbox.account_id)
            .bind(&inbox.address)
            .bind(&inbox.display_name)
            .bind(inbox.created_at.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_inboxes(&self, account_id: &str) -> Result<Vec<InboxRecord>> {
        let rows = sqlx::query(sql::LIST_INBOXES)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(inbox_row)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn get_inbox(&self, account_id: &str, inbox_id: &str) -> Result<Option<InboxRecord>> {
        let row = sqlx::query(sql::GET_INBOX)
            .bind(inbox_id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(inbox_row).transpose()?)
    }

    async fn delete_inbox(&self, account_id: &str, inbox_id: &str, now: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(sql::MARK_INBOX_DELETED)
            .bind(now.0)
            .bind(inbox_id)
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let blobs: Vec<String> =
            sqlx::query_scalar("DELETE FROM messages WHERE inbox_id = $1 RETURNING blob_id")
                .bind(inbox_id)
                .fetch_all(&mut *tx)
                .await?;
        sqlx::query(sql::DELETE_INBOX_THREAD_MEMBERS)
            .bind(inbox_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::REVOKE_INBOX_TOKENS)
            .bind(now.0)
            .bind(inbox_id)
            .execute(&mut *tx)
            .await?;
        let mut unique = blobs;
        unique.sort();
        unique.dedup();
        for blob in unique {
            drop_orphan_blob(&mut tx, &blob).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn find_inbox(&self, address: &str) -> Result<Option<InboxTarget>> {
        let row = sqlx::query(sql::FIND_INBOX)
            .bind(address)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(InboxTarget {
                inbox_id: row.try_get(0)?,
                account_id: row.try_get(1)?,
            }),
            None => None,
        })
    }

    async fn accept_inbound(&self, message: InboundMessage) -> Result<()> {
        let mut tx = self.begin().await?;
        insert_inbound(&mut tx, &message, &self.node).await?;
        // DURABILITY: the PostgreSQL commit (WAL flushed) precedes the 250 reply.
        tx.commit().await?;
        Ok(())
    }

    async fn resume_own_work(&self) -> Result<u64> {
        if self.node.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let jobs = sqlx::query("UPDATE ingest_jobs SET lease_until = 0 WHERE node = $1")
            .bind(&self.node)
            .execute(&mut *tx)
            .await?;
        let recipients = sqlx::query(
            "UPDATE recipients SET lease_until = NULL WHERE lease_node = $1 AND lease_until IS NOT NULL",
        )
        .bind(&self.node)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(jobs.rows_affected() + recipients.rows_affected())
    }

    async fn claim_ingest(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<IngestJob>> {
        let lease_ms = lease.as_millis() as i64;
        // SKIP LOCKED: nodes sweeping at once take different jobs instead of waiting.
        let rows = sqlx::query(
            "WITH due AS (SELECT blob_id FROM ingest_jobs \
               WHERE COALESCE(lease_until, created_at + $3) <= $2 ORDER BY created_at, blob_id LIMIT $4 \
               FOR UPDATE SKIP LOCKED), \
             claimed AS (UPDATE ingest_jobs j SET lease_until = $1, node = $5 FROM due WHERE j.blob_id = due.blob_id \
               RETURNING j.blob_id, j.created_at) \
             SELECT c.blob_id, b.bytes, (SELECT auth FROM messages m WHERE m.blob_id = c.blob_id LIMIT 1) \
             FROM claimed c JOIN blobs b ON b.id = c.blob_id ORDER BY c.created_at, c.blob_id",
        )
        .bind(now.0 + lease_ms)
        .bind(now.0)
        .bind(lease_ms)
        .bind(limit as i64)
        .bind(&self.node)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(IngestJob {
                    blob_id: r.try_get(0)?,
                    bytes: Arc::new(r.try_get(1)?),
                    auth: r.try_get(2)?,
                })
            })
            .collect()
    }

    async fn complete_ingest(&self, done: Vec<Ingested>, now: Timestamp) -> Result<Vec<Wake>> {
        let mut tx = self.begin().await?;
        let mut arrivals = Vec::new();
        for item in &done {
            // FOR UPDATE re-checks `seq IS NULL` after waiting for another node's ingest of
            // the same blob, so each copy gets exactly one sequence number.
            let copies = sqlx::query(
                "SELECT m.id, m.inbox_id, m.account_id, m.received_at, i.address FROM messages m \
                 JOIN inboxes i ON i.id = m.inbox_id WHERE m.blob_id = $1 AND m.seq IS NULL ORDER BY m.id FOR UPDATE OF m",
            )
            .bind(&item.blob_id)
            .fetch_all(&mut *tx)
            .await?;
            for copy in copies {
                let message_id: String = copy.try_get(0)?;
                let inbox_id: String = copy.try_get(1)?;
                let account_id: String = copy.try_get(2)?;
                let received_at: i64 = copy.try_get(3)?;
                let own_address: String = copy.try_get(4)?;
                join_thread(
                    &mut tx,
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
                )
                .await?;
                let seq: i64 = sqlx::query_scalar(sql::NEXT_INBOX_SEQ)
                    .bind(&inbox_id)
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query(sql::MAKE_MESSAGE_READABLE)
                    .bind(seq)
                    .bind(&item.from_address)
                    .bind(&item.subject)
                    .bind(&item.summary)
                    .bind(&item.parsed)
                    .bind(&message_id)
                    .execute(&mut *tx)
                    .await?;
                let event = NewEvent {
                    account_id: &account_id,
                    kind: "message.received",
                    message_id: Some(&message_id),
                    inbox_id: Some(&inbox_id),
                    recipient: None,
                    detail: None,
                };
                arrivals.push(insert_event(&mut tx, &event, now).await?);
                let wake = Wake::inbox(&inbox_id, seq);
                announce(&mut tx, &wake).await?;
                arrivals.push(wake);
            }
            sqlx::query(sql::DELETE_INGEST_JOB)
                .bind(&item.blob_id)
                .execute(&mut *tx)
                .await?;
            drop_orphan_blob(&mut tx, &item.blob_id).await?;
        }
        tx.commit().await?;
        Ok(arrivals)
    }

    async fn list_messages(
        &self,
        account_id: &str,
        inbox_id: &str,
        after: i64,
        limit: usize,
        include_quarantined: bool,
    ) -> Result<Vec<MessageRecord>> {
        let rows = sqlx::query(sql::LIST_MESSAGES)
            .bind(inbox_id)
            .bind(account_id)
            .bind(after)
            .bind(include_quarantined)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(message_row)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn get_message(
        &self,
        account_id: &str,
        message_id: &str,
    ) -> Result<Option<MessageRecord>> {
        let row = sqlx::query(sql::GET_MESSAGE)
            .bind(message_id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(message_row).transpose()?)
    }

    async fn get_raw(&self, account_id: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar(sql::GET_RAW)
            .bind(message_id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn delete_message(&self, account_id: &str, message_id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let blob: Option<String> = sqlx::query_scalar(sql::DELETE_MESSAGE)
            .bind(message_id)
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(blob) = blob else {
            return Ok(false);
        };
        sqlx::query(sql::DELETE_MESSAGE_THREAD_MEMBER)
            .bind(message_id)
            .execute(&mut *tx)
            .await?;
        drop_orphan_blob(&mut tx, &blob).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn inbox_cursor(&self, account_id: &str, inbox_id: &str) -> Result<i64> {
        let seq: Option<i64> = sqlx::query_scalar(sql::INBOX_CURSOR)
            .bind(inbox_id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn list_threads(
        &self,
        account_id: &str,
        inbox_id: &str,
        limit: usize,
    ) -> Result<Vec<ThreadRecord>> {
        let rows = sqlx::query(
            "SELECT thread_id, inbox_id, COUNT(*), MIN(at), MAX(at), string_agg(participants, ' '), \
             (SELECT subject FROM thread_members f WHERE f.thread_id = t.thread_id ORDER BY at, message_id LIMIT 1) \
             FROM thread_members t WHERE account_id = $1 AND inbox_id = $2 \
             GROUP BY thread_id, inbox_id ORDER BY MAX(at) DESC LIMIT $3",
        )
        .bind(account_id)
        .bind(inbox_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ThreadRecord {
                    thread_id: r.try_get(0)?,
                    inbox_id: r.try_get(1)?,
                    message_count: r.try_get(2)?,
                    first_at: Timestamp(r.try_get(3)?),
                    last_at: Timestamp(r.try_get(4)?),
                    participants: split_participants(
                        &r.try_get::<Option<String>, _>(5)?.unwrap_or_default(),
                    ),
                    subject: r.try_get(6)?,
                })
            })
            .collect()
    }

    async fn thread_members(
        &self,
        account_id: &str,
        thread_id: &str,
    ) -> Result<Vec<ThreadMemberRecord>> {
        let rows = sqlx::query(sql::THREAD_MEMBERS)
            .bind(thread_id)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ThreadMemberRecord {
                    message_id: r.try_get(0)?,
                    inbox_id: r.try_get(1)?,
                    thread_id: r.try_get(2)?,
                    direction: r.try_get(3)?,
                    subject: r.try_get(4)?,
                    participants: split_participants(&r.try_get::<String, _>(5)?),
                    at: Timestamp(r.try_get(6)?),
                })
            })
            .collect()
    }

    async fn enqueue(&self, message: QueuedMessage) -> Result<()> {
        let mut tx = self.begin().await?;
        if let Some((key, hash)) = &message.idempotency {
            sqlx::query(sql::INSERT_IDEMPOTENCY)
                .bind(&message.account_id)
                .bind(key)
                .bind(hash)
                .bind(&message.id)
                .bind(message.created_at.0)
                .execute(&mut *tx)
                .await?;
        }
        let size = message.bytes.len() as i64;
        sqlx::query(sql::INSERT_BLOB)
            .bind(&message.blob_id)
            .bind(size)
            .bind(message.bytes.as_slice())
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::INSERT_OUTBOUND)
            .bind(&message.id)
            .bind(&message.account_id)
            .bind(&message.inbox_id)
            .bind(&message.blob_id)
            .bind(&message.return_path)
            .bind(message.created_at.0)
            .bind(size)
            .bind(message.source)
            .bind(&message.summary)
            .bind(&message.parsed)
            .execute(&mut *tx)
            .await?;
        let subject: Option<String> =
            serde_json::from_str::<crabmail_api::SummaryContent>(&message.summary)
                .ok()
                .and_then(|s| s.subject);
        join_thread(
            &mut tx,
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
        )
        .await?;
        for r in &message.recipients {
            sqlx::query(sql::INSERT_RECIPIENT)
                .bind(&r.id)
                .bind(&message.id)
                .bind(&message.account_id)
                .bind(&r.address)
                .bind(&r.domain)
                .bind(message.created_at.0)
                .execute(&mut *tx)
                .await?;
        }
        // DURABILITY: committed before the 202 or 250 that acknowledges the message.
        tx.commit().await?;
        Ok(())
    }

    async fn find_idempotency(
        &self,
        account_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>> {
        let row = sqlx::query(sql::FIND_IDEMPOTENCY)
            .bind(account_id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(IdempotencyRecord {
                request_hash: r.try_get(0)?,
                message_id: r.try_get(1)?,
                created_at: Timestamp(r.try_get(2)?),
            }),
            None => None,
        })
    }

    async fn expire_idempotency(
        &self,
        account_id: &str,
        key: &str,
        before: Timestamp,
    ) -> Result<()> {
        sqlx::query(sql::EXPIRE_IDEMPOTENCY)
            .bind(account_id)
            .bind(key)
            .bind(before.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn suppressed(
        &self,
        account_id: &str,
        addresses: Vec<String>,
    ) -> Result<Vec<Suppression>> {
        let rows = sqlx::query(
            "SELECT account_id, address, reason, created_at FROM suppressions \
             WHERE account_id = $1 AND address = ANY($2)",
        )
        .bind(account_id)
        .bind(&addresses)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(suppression_row)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn list_suppressions(&self, account_id: &str) -> Result<Vec<Suppression>> {
        let rows = sqlx::query(sql::LIST_SUPPRESSIONS)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(suppression_row)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn delete_suppression(&self, account_id: &str, address: &str) -> Result<bool> {
        let done = sqlx::query(sql::DELETE_SUPPRESSION)
            .bind(account_id)
            .bind(address)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<Claimed>> {
        let mut tx = self.begin().await?;
        // SKIP LOCKED: workers on other nodes take other recipients instead of waiting.
        let ids: Vec<String> = sqlx::query_scalar(
            "WITH due AS (SELECT id FROM recipients WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $2 \
               AND (lease_until IS NULL OR lease_until <= $2) ORDER BY next_attempt_at LIMIT $3 \
               FOR UPDATE SKIP LOCKED) \
             UPDATE recipients r SET lease_until = $1, lease_node = $4 FROM due WHERE r.id = due.id RETURNING r.id",
        )
        .bind(lease_until.0)
        .bind(now.0)
        .bind(limit as i64)
        .bind(&self.node)
        .fetch_all(&mut *tx)
        .await?;
        let rows = sqlx::query(
            "SELECT r.id, r.message_id, r.account_id, o.inbox_id, o.return_path, o.blob_id, r.address, \
             r.domain, r.attempts, r.queued_at FROM recipients r JOIN outbound o ON o.id = r.message_id \
             WHERE r.id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                Ok(Claimed {
                    recipient_id: r.try_get(0)?,
                    message_id: r.try_get(1)?,
                    account_id: r.try_get(2)?,
                    inbox_id: r.try_get(3)?,
                    return_path: r.try_get(4)?,
                    blob_id: r.try_get(5)?,
                    address: r.try_get(6)?,
                    domain: r.try_get(7)?,
                    attempts: r.try_get::<i64, _>(8)? as u32,
                    queued_at: Timestamp(r.try_get(9)?),
                })
            })
            .collect()
    }

    async fn next_due(&self) -> Result<Option<Timestamp>> {
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT min(GREATEST(next_attempt_at, COALESCE(lease_until, 0))) FROM recipients \
             WHERE next_attempt_at IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(due.map(Timestamp))
    }

    async fn load_blob(&self, blob_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar(sql::LOAD_BLOB)
            .bind(blob_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn record_outcomes(&self, outcomes: Outcomes, now: Timestamp) -> Result<Vec<Wake>> {
        let mut tx = self.begin().await?;
        let mut wakes = Vec::new();
        for result in &outcomes.results {
            let a = &result.attempt;
            let updated = sqlx::query(sql::RECORD_OUTCOME)
                .bind(result.status.as_str())
                .bind(result.next_attempt_at.map(|t| t.0))
                .bind(a.code.map(i64::from))
                .bind(&a.enhanced)
                .bind(&a.text)
                .bind(now.0)
                .bind(&result.recipient_id)
                .execute(&mut *tx)
                .await?;
            if updated.rows_affected() == 0 {
                continue; // cancelled while in flight
            }
            sqlx::query(sql::INSERT_ATTEMPT)
                .bind(&result.recipient_id)
                .bind(a.at.0)
                .bind(&a.host)
                .bind(a.code.map(i64::from))
                .bind(&a.enhanced)
                .bind(&a.text)
                .bind(&a.tls)
                .execute(&mut *tx)
                .await?;
            let event = NewEvent {
                account_id: &result.account_id,
                kind: event_kind(result.status),
                message_id: Some(&result.message_id),
                inbox_id: Some(&result.inbox_id),
                recipient: Some(&result.address),
                detail: Some(attempt_detail(result.status, a)),
            };
            wakes.push(insert_event(&mut tx, &event, now).await?);
        }
        for message in &outcomes.inbound {
            insert_inbound(&mut tx, message, &self.node).await?;
        }
        for s in &outcomes.suppress {
            sqlx::query(sql::INSERT_SUPPRESSION)
                .bind(&s.account_id)
                .bind(&s.address)
                .bind(&s.reason)
                .bind(s.created_at.0)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(wakes)
    }

    async fn get_outbound(
        &self,
        account_id: &str,
        message_id: &str,
    ) -> Result<Option<OutboundRecord>> {
        let Some(row) = sqlx::query(sql::GET_OUTBOUND)
            .bind(message_id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let mut record = OutboundRecord {
            id: row.try_get(0)?,
            account_id: row.try_get(1)?,
            inbox_id: row.try_get(2)?,
            return_path: row.try_get(3)?,
            created_at: Timestamp(row.try_get(4)?),
            size: row.try_get(5)?,
            summary: row.try_get(6)?,
            parsed: row.try_get(7)?,
            blob_id: row.try_get(8)?,
            recipients: Vec::new(),
            thread_id: row.try_get(9)?,
        };
        let recipients = sqlx::query(sql::OUTBOUND_RECIPIENTS)
            .bind(&record.id)
            .fetch_all(&self.pool)
            .await?;
        for r in recipients {
            let id: String = r.try_get(0)?;
            let attempts = sqlx::query(sql::RECIPIENT_ATTEMPTS)
                .bind(&id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|a| {
                    Ok(AttemptRecord {
                        at: Timestamp(a.try_get(0)?),
                        host: a.try_get(1)?,
                        code: a.try_get::<Option<i64>, _>(2)?.map(|c| c as u16),
                        enhanced: a.try_get(3)?,
                        text: a.try_get(4)?,
                        tls: a.try_get(5)?,
                    })
                })
                .collect::<std::result::Result<_, sqlx::Error>>()?;
            record.recipients.push(RecipientRecord {
                id,
                address: r.try_get(1)?,
                status: Status::parse(&r.try_get::<String, _>(2)?),
                attempts,
                next_attempt_at: r.try_get::<Option<i64>, _>(3)?.map(Timestamp),
            });
        }
        Ok(Some(record))
    }

    async fn list_events(
        &self,
        account_id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>> {
        let rows = sqlx::query(sql::LIST_EVENTS)
            .bind(account_id)
            .bind(after)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRecord {
                    seq: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    message_id: r.try_get(2)?,
                    inbox_id: r.try_get(3)?,
                    recipient: r.try_get(4)?,
                    detail: r.try_get(5)?,
                    created_at: Timestamp(r.try_get(6)?),
                })
            })
            .collect()
    }

    async fn queue_entries(&self, limit: usize) -> Result<Vec<QueueEntry>> {
        let rows = sqlx::query(sql::QUEUE_ENTRIES)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(QueueEntry {
                    message_id: r.try_get(0)?,
                    account_id: r.try_get(1)?,
                    return_path: r.try_get(2)?,
                    address: r.try_get(3)?,
                    status: Status::parse(&r.try_get::<String, _>(4)?),
                    attempts: r.try_get::<i64, _>(5)? as u32,
                    next_attempt_at: r.try_get::<Option<i64>, _>(6)?.map(Timestamp),
                    last_text: r.try_get(7)?,
                })
            })
            .collect()
    }

    async fn outbound_owner(&self, message_id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(sql::OUTBOUND_OWNER)
            .bind(message_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn retry_now(&self, message_id: &str, now: Timestamp) -> Result<usize> {
        let done = sqlx::query(sql::RETRY_NOW)
            .bind(now.0)
            .bind(message_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() as usize)
    }

    async fn cancel(&self, message_id: &str, now: Timestamp) -> Result<usize> {
        let mut tx = self.begin().await?;
        let cancelled = sqlx::query(
            "UPDATE recipients r SET status = 'cancelled', next_attempt_at = NULL, lease_until = NULL, \
             updated_at = $1 FROM outbound o WHERE o.id = r.message_id AND r.message_id = $2 \
             AND r.next_attempt_at IS NOT NULL RETURNING r.account_id, r.address, o.inbox_id",
        )
        .bind(now.0)
        .bind(message_id)
        .fetch_all(&mut *tx)
        .await?;
        for row in &cancelled {
            let (account_id, address, inbox_id): (String, String, String) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            let event = NewEvent {
                account_id: &account_id,
                kind: "message.cancelled",
                message_id: Some(message_id),
                inbox_id: Some(&inbox_id),
                recipient: Some(&address),
                detail: None,
            };
            insert_event(&mut tx, &event, now).await?;
        }
        tx.commit().await?;
        Ok(cancelled.len())
    }

    async fn create_domain(&self, domain: DomainRecord, keys: Vec<DkimKeyRecord>) -> Result<()> {
        let mut tx = self.begin().await?;
        insert_domain(&mut tx, &domain).await?;
        for key in &keys {
            insert_dkim_key(&mut tx, key).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn ensure_shared_domain(
        &self,
        domain: DomainRecord,
        keys: Vec<DkimKeyRecord>,
    ) -> Result<DomainRecord> {
        let mut tx = self.begin().await?;
        // Nodes starting together take turns, so the shared domain gets one row and one key set.
        sqlx::query("SELECT pg_advisory_xact_lock(7283002)")
            .execute(&mut *tx)
            .await?;
        let existing = sqlx::query(sql::SHARED_DOMAIN)
            .bind(&domain.name)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = existing {
            return Ok(domain_row(&row)?);
        }
        insert_domain(&mut tx, &domain).await?;
        for key in &keys {
            insert_dkim_key(&mut tx, key).await?;
        }
        tx.commit().await?;
        Ok(domain)
    }

    async fn list_domains(&self, account_id: &str) -> Result<Vec<DomainRecord>> {
        let rows = sqlx::query(sql::LIST_DOMAINS)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(domain_row)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn get_domain(&self, account_id: &str, domain_id: &str) -> Result<Option<DomainRecord>> {
        let row = sqlx::query(sql::GET_DOMAIN)
            .bind(domain_id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(domain_row).transpose()?)
    }

    async fn verify_domain(
        &self,
        account_id: &str,
        domain_id: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(sql::VERIFY_DOMAIN)
            .bind(now.0)
            .bind(domain_id)
            .bind(account_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_domain(&self, account_id: &str, domain_id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let name: Option<String> = sqlx::query_scalar(
            "SELECT name FROM domains WHERE id = $1 AND account_id = $2 FOR UPDATE",
        )
        .bind(domain_id)
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(name) = name else {
            return Ok(false);
        };
        let live: i64 = sqlx::query_scalar(sql::COUNT_DOMAIN_INBOXES)
            .bind(account_id)
            .bind(format!("%@{name}"))
            .fetch_one(&mut *tx)
            .await?;
        if live > 0 {
            return Err(StoreError::Conflict);
        }
        sqlx::query(sql::DELETE_DOMAIN_KEYS)
            .bind(domain_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::DELETE_DOMAIN)
            .bind(domain_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn hosted_domain(&self, name: &str) -> Result<Option<DomainRecord>> {
        let row = sqlx::query(sql::HOSTED_DOMAIN)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(domain_row).transpose()?)
    }

    async fn dkim_keys(&self, domain_id: &str) -> Result<Vec<DkimKeyRecord>> {
        let rows = sqlx::query(sql::DKIM_KEYS)
            .bind(domain_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DkimKeyRecord {
                    domain_id: r.try_get(0)?,
                    selector: r.try_get(1)?,
                    algorithm: r.try_get(2)?,
                    private_key: r.try_get(3)?,
                    public_key: r.try_get(4)?,
                    created_at: Timestamp(r.try_get(5)?),
                    retired_at: r.try_get::<Option<i64>, _>(6)?.map(Timestamp),
                })
            })
            .collect()
    }

    async fn rotate_dkim_keys(
        &self,
        domain_id: &str,
        keys: Vec<DkimKeyRecord>,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(sql::RETIRE_DKIM_KEYS)
            .bind(now.0)
            .bind(domain_id)
            .execute(&mut *tx)
            .await?;
        for key in &keys {
            insert_dkim_key(&mut tx, key).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn follow_arrivals(&self, notify: Arc<dyn Fn(Wake) + Send + Sync>) -> Result<()> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(ARRIVALS_CHANNEL).await?;
        loop {
            // recv() reconnects by itself after a lost connection; arrivals missed meanwhile are
            // still found by the long-poll's periodic re-check.
            match listener.recv().await {
                Ok(note) => {
                    if let Some((topic, seq)) = note.payload().split_once(' ') {
                        notify(Wake {
                            topic: topic.to_owned(),
                            seq: seq.parse().unwrap_or(0),
                        });
                    }
                }
                Err(sqlx::Error::PoolClosed) => return Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, "postgres: arrival listener lost its connection");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
