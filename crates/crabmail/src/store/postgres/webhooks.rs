use super::*;

#[async_trait]
impl Webhooks for PgStore {
    async fn create_webhook(&self, hook: WebhookRecord) -> Result<WebhookRecord> {
        let row = sqlx::query(sql::INSERT_WEBHOOK)
            .bind(&hook.id)
            .bind(&hook.account_id)
            .bind(&hook.url)
            .bind(&hook.secret)
            .bind(rows::event_types_text(&hook.event_types))
            .bind(&hook.inbox_id)
            .bind(hook.next_attempt_at.0)
            .bind(hook.created_at.0)
            .fetch_one(&self.pool)
            .await?;
        Ok(rows::webhook(&row)?)
    }

    async fn list_webhooks(&self, account_id: &str) -> Result<Vec<WebhookRecord>> {
        let rows = sqlx::query(sql::LIST_WEBHOOKS)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::webhook)
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()?)
    }

    async fn get_webhook(&self, account_id: &str, id: &str) -> Result<Option<WebhookRecord>> {
        let row = sqlx::query(sql::GET_WEBHOOK)
            .bind(account_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(rows::webhook).transpose()?)
    }

    async fn delete_webhook(&self, account_id: &str, id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(sql::DELETE_WEBHOOK)
            .bind(account_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        sqlx::query(sql::DELETE_WEBHOOK_LOG)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn rotate_webhook_secret(
        &self,
        account_id: &str,
        id: &str,
        secret: &str,
        previous_until: Timestamp,
    ) -> Result<Option<WebhookRecord>> {
        let row = sqlx::query(sql::ROTATE_WEBHOOK)
            .bind(previous_until.0)
            .bind(secret)
            .bind(account_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(rows::webhook).transpose()?)
    }

    async fn replay_webhook(
        &self,
        account_id: &str,
        id: &str,
        after: i64,
        now: Timestamp,
    ) -> Result<Option<WebhookRecord>> {
        let row = sqlx::query(sql::REPLAY_WEBHOOK)
            .bind(after)
            .bind(now.0)
            .bind(account_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(rows::webhook).transpose()?)
    }

    async fn webhooks_due(&self, now: Timestamp) -> Result<bool> {
        let row = sqlx::query(sql::WEBHOOKS_DUE)
            .bind(now.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    async fn claim_webhooks(
        &self,
        lease: &str,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<WebhookRecord>> {
        let rows = sqlx::query(sql::CLAIM_WEBHOOKS)
            .bind(lease)
            .bind(&self.node)
            .bind(until.0)
            .bind(now.0)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::webhook)
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()?)
    }

    async fn record_webhook_progress(
        &self,
        id: &str,
        lease: &str,
        progress: WebhookProgress,
        delivery: Option<WebhookDelivery>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let changed = sqlx::query(sql::WEBHOOK_PROGRESS)
            .bind(progress.cursor)
            .bind(progress.attempt)
            .bind(progress.next_attempt_at.0)
            .bind(progress.status())
            .bind(&progress.disabled)
            .bind(id)
            .bind(lease)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        if let Some(d) = delivery {
            sqlx::query(sql::INSERT_WEBHOOK_DELIVERY)
                .bind(&d.id)
                .bind(&d.webhook_id)
                .bind(d.event_seq)
                .bind(d.attempt)
                .bind(d.at.0)
                .bind(d.code)
                .bind(&d.error)
                .bind(&d.outcome)
                .bind(d.duration_ms)
                .execute(&mut *tx)
                .await?;
            let cutoff = d.at.0 - WEBHOOK_LOG_KEPT.as_millis() as i64;
            sqlx::query(sql::PRUNE_WEBHOOK_LOG)
                .bind(&d.webhook_id)
                .bind(cutoff)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn release_webhook(&self, id: &str, lease: &str) -> Result<()> {
        sqlx::query(sql::RELEASE_WEBHOOK)
            .bind(id)
            .bind(lease)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn webhook_deliveries(
        &self,
        account_id: &str,
        id: &str,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>> {
        let rows = sqlx::query(sql::WEBHOOK_DELIVERIES)
            .bind(account_id)
            .bind(id)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::webhook_delivery)
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()?)
    }
}
