use super::*;

#[async_trait]
impl Sending for PgStore {
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
        let size = insert_blob(&mut tx, &message.blob_id, &message.bytes).await?;
        sqlx::query(sql::INSERT_OUTBOUND)
            .bind(&message.id)
            .bind(&message.account_id)
            .bind(&message.inbox_id)
            .bind(&message.blob_id)
            .bind(&message.return_path)
            .bind(message.created_at.0)
            .bind(size)
            .bind(message.source)
            .bind(rows::json_text(&message.summary))
            .bind(rows::json_text(&message.parsed))
            .execute(&mut *tx)
            .await?;
        join_thread(&mut tx, &message.thread_join()).await?;
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
        Ok(row.as_ref().map(rows::idempotency).transpose()?)
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
            .map(rows::suppression)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn list_suppressions(&self, account_id: &str) -> Result<Vec<Suppression>> {
        let rows = sqlx::query(sql::LIST_SUPPRESSIONS)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::suppression)
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
        let mut record = rows::outbound(&row)?;
        let recipients = sqlx::query(sql::OUTBOUND_RECIPIENTS)
            .bind(&record.id)
            .fetch_all(&self.pool)
            .await?;
        for r in recipients {
            let mut recipient = rows::recipient(&r)?;
            recipient.attempts = sqlx::query(sql::RECIPIENT_ATTEMPTS)
                .bind(&recipient.id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(rows::attempt)
                .collect::<std::result::Result<_, _>>()?;
            record.recipients.push(recipient);
        }
        Ok(Some(record))
    }
}
