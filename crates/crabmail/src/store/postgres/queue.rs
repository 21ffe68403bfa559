use super::*;

#[async_trait]
impl Queue for PgStore {
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
        Ok(rows
            .iter()
            .map(rows::claimed)
            .collect::<std::result::Result<_, _>>()?)
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
            let event = NewEvent::outcome(result);
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

    async fn queue_entries(&self, limit: usize) -> Result<Vec<QueueEntry>> {
        let rows = sqlx::query(sql::QUEUE_ENTRIES)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::queue_entry)
            .collect::<std::result::Result<_, _>>()?)
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
            let event = NewEvent::cancelled(&account_id, message_id, &inbox_id, &address);
            insert_event(&mut tx, &event, now).await?;
        }
        tx.commit().await?;
        Ok(cancelled.len())
    }

    async fn return_path_owner(&self, recipient_id: &str) -> Result<Option<InboxTarget>> {
        let row = sqlx::query(sql::RETURN_PATH_OWNER)
            .bind(recipient_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(rows::inbox_target).transpose()?)
    }

    async fn backlog(&self, now: Timestamp) -> Result<crate::metrics::Backlog> {
        let queued = sqlx::query_as(sql::QUEUE_BACKLOG)
            .fetch_one(&self.pool)
            .await?;
        let jobs = sqlx::query_as(sql::INGEST_BACKLOG)
            .fetch_one(&self.pool)
            .await?;
        Ok(crate::metrics::Backlog::at(now, queued, jobs))
    }
}
