use super::*;
use crate::bounce::act;

#[async_trait]
impl Inbound for PgStore {
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
        let webhooks = sqlx::query(sql::RELEASE_NODE_WEBHOOKS)
            .bind(&self.node)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(jobs.rows_affected() + recipients.rows_affected() + webhooks.rows_affected())
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
                    auth: rows::json(r, 2)?,
                })
            })
            .collect()
    }

    async fn complete_ingest(&self, done: Vec<Ingested>, now: Timestamp) -> Result<Completed> {
        let mut tx = self.begin().await?;
        let mut completed = Completed::default();
        for item in &done {
            let (summary, parsed) = (item.summary.as_str(), item.parsed.as_str());
            // FOR UPDATE re-checks `seq IS NULL` after waiting for another node's ingest of
            // the same blob, so each copy gets exactly one sequence number.
            let copies = sqlx::query(sql::UNREAD_COPIES_LOCKED)
                .bind(&item.blob_id)
                .fetch_all(&mut *tx)
                .await?;
            for row in copies {
                let copy = rows::unread_copy(&row)?;
                join_thread(&mut tx, &item.thread_join(&copy)).await?;
                let seq: i64 = sqlx::query_scalar(sql::NEXT_INBOX_SEQ)
                    .bind(&copy.inbox_id)
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query(sql::MAKE_MESSAGE_READABLE)
                    .bind(seq)
                    .bind(&item.from_address)
                    .bind(&item.subject)
                    .bind(summary)
                    .bind(parsed)
                    .bind(&copy.message_id)
                    .execute(&mut *tx)
                    .await?;
                let event = NewEvent::received(&copy.account_id, &copy.message_id, &copy.inbox_id);
                completed
                    .wakes
                    .push(insert_event(&mut tx, &event, now).await?);
                let wake = Wake::inbox(&copy.inbox_id, seq);
                announce(&mut tx, &wake).await?;
                completed.wakes.push(wake);
                if let Some(report) = &item.report {
                    apply_report(&mut tx, &copy, report, now, &mut completed).await?;
                }
            }
            sqlx::query(sql::DELETE_INGEST_JOB)
                .bind(&item.blob_id)
                .execute(&mut *tx)
                .await?;
            drop_orphan_blob(&mut tx, &item.blob_id).await?;
        }
        tx.commit().await?;
        Ok(completed)
    }
}

/// Links a report to the recipient it is about and applies what it means (`bounce::act`).
async fn apply_report(
    tx: &mut Transaction<'static, Postgres>,
    copy: &rows::UnreadCopy,
    report: &crate::bounce::Report,
    now: Timestamp,
    completed: &mut Completed,
) -> Result<()> {
    let found = match (&copy.report_for, &report.original_message_id) {
        (Some(recipient_id), _) => {
            sqlx::query(sql::SENT_RECIPIENT)
                .bind(recipient_id)
                .bind(&copy.account_id)
                .fetch_all(&mut **tx)
                .await?
        }
        // Reports crabmail wrote itself (and local mail) never act: only another server's.
        (None, Some(header_id)) if copy.from_network => {
            sqlx::query(sql::SENT_BY_HEADER_ID)
                .bind(&copy.inbox_id)
                .bind(header_id)
                .fetch_all(&mut **tx)
                .await?
        }
        _ => Vec::new(),
    };
    let candidates = found
        .iter()
        .map(rows::sent_recipient)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let actions = act::decide(report, &candidates, copy.report_for.is_some());
    let linked = act::linked(copy.report_for.as_deref(), &actions);
    sqlx::query(sql::SET_REPORT)
        .bind(report.kind.as_str())
        .bind(linked)
        .bind(&copy.message_id)
        .execute(&mut **tx)
        .await?;
    for action in &actions {
        let attempt = action.attempt(report, &copy.message_id, now);
        if action.change == act::Change::LateBounce {
            let changed = sqlx::query(sql::LATE_BOUNCE)
                .bind(attempt.code.map(i64::from))
                .bind(&attempt.enhanced)
                .bind(&attempt.text)
                .bind(now.0)
                .bind(&action.sent.recipient_id)
                .execute(&mut **tx)
                .await?;
            if changed.rows_affected() == 0 {
                continue;
            }
        }
        sqlx::query(sql::INSERT_ATTEMPT)
            .bind(&action.sent.recipient_id)
            .bind(attempt.at.0)
            .bind(&attempt.host)
            .bind(attempt.code.map(i64::from))
            .bind(&attempt.enhanced)
            .bind(&attempt.text)
            .bind(&attempt.tls)
            .execute(&mut **tx)
            .await?;
        if let Some(s) = action.suppression(report, now) {
            sqlx::query(sql::INSERT_SUPPRESSION)
                .bind(&s.account_id)
                .bind(&s.address)
                .bind(&s.reason)
                .bind(s.created_at.0)
                .execute(&mut **tx)
                .await?;
        }
        if let Some(event) = action.event(report, &copy.message_id) {
            completed.wakes.push(insert_event(tx, &event, now).await?);
            let sender = (action.sent.account_id.clone(), action.sent.inbox_id.clone());
            if !completed.reported_senders.contains(&sender) {
                completed.reported_senders.push(sender);
            }
        }
    }
    Ok(())
}
