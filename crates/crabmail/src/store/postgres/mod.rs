//! The shared store: PostgreSQL, for several crabmail nodes serving the same accounts and inboxes.
//!
//! Each operation is one transaction on a pooled connection; PostgreSQL commits concurrent
//! transactions together by itself. Ingest is idempotent across nodes: copies are locked
//! (`FOR UPDATE`) and only those still without a sequence number are made readable, so two nodes
//! resuming the same job cannot list a message twice.
//!
//! Arrivals are announced with `pg_notify` inside the ingest transaction (delivered on commit), so
//! a long-poll held by any node wakes when another node accepted the message.

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
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::{Executor, Postgres, Row, Transaction};

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../../migrations/postgres/0001_core.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/postgres/0002_outbound.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/postgres/0003_trust.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/postgres/0004_threads.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/postgres/0005_ingest_leases.sql"),
    ),
    (
        6,
        include_str!("../../../migrations/postgres/0006_quotas.sql"),
    ),
    (
        7,
        include_str!("../../../migrations/postgres/0007_approvals.sql"),
    ),
    (
        8,
        include_str!("../../../migrations/postgres/0008_webhooks.sql"),
    ),
    (
        9,
        include_str!("../../../migrations/postgres/0009_uploads.sql"),
    ),
    (
        10,
        include_str!("../../../migrations/postgres/0010_reports.sql"),
    ),
    (
        11,
        include_str!("../../../migrations/postgres/0011_operator.sql"),
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

/// Places a message in a conversation (`thread::choose` decides which).
async fn join_thread(
    tx: &mut Transaction<'static, Postgres>,
    join: &ThreadJoin<'_>,
) -> std::result::Result<String, sqlx::Error> {
    let mut by_reference: Option<String> = None;
    for r in join.keys.refs.iter().take(ThreadJoin::MAX_REFS) {
        by_reference = sqlx::query_scalar(sql::THREAD_OF_HEADER_ID)
            .bind(join.inbox_id)
            .bind(r)
            .fetch_optional(&mut **tx)
            .await?;
        if by_reference.is_some() {
            break;
        }
    }
    let mut by_subject = Vec::new();
    if by_reference.is_none() && !join.keys.subject_key.is_empty() {
        by_subject = sqlx::query_as(sql::THREADS_BY_SUBJECT)
            .bind(join.inbox_id)
            .bind(&join.keys.subject_key)
            .bind(join.window_start())
            .fetch_all(&mut **tx)
            .await?;
    }
    let thread = crate::ingest::thread::choose(join, by_reference, by_subject);
    sqlx::query(sql::INSERT_THREAD_MEMBER)
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

/// A message's bytes, stored once; returns their size.
async fn insert_blob(
    tx: &mut Transaction<'static, Postgres>,
    blob_id: &str,
    bytes: &[u8],
) -> Result<i64> {
    let size = bytes.len() as i64;
    sqlx::query(sql::INSERT_BLOB)
        .bind(blob_id)
        .bind(size)
        .bind(bytes)
        .execute(&mut **tx)
        .await?;
    Ok(size)
}

/// The bytes, a copy per delivery and an ingest job (`accept_inbound`, local delivery, bounces).
async fn insert_inbound(
    tx: &mut Transaction<'static, Postgres>,
    message: &InboundMessage,
    node: &str,
) -> Result<()> {
    let size = insert_blob(tx, &message.blob_id, &message.bytes).await?;
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
            .bind(rows::to_json(message.auth.as_ref()))
            .bind(message.quarantined || d.quarantined)
            .bind(&d.report_for)
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
        .bind(rows::to_json(event.detail.as_ref()))
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
        .bind(&token.scopes)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    async fn close(&self) {
        self.pool.close().await;
    }
}
