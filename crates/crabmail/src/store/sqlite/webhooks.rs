use super::*;

#[async_trait]
impl Webhooks for SqliteStore {
    async fn create_webhook(&self, hook: WebhookRecord) -> Result<WebhookRecord> {
        self.write(move |conn| {
            let types = rows::event_types_text(&hook.event_types);
            Ok(conn.prepare_cached(sql::INSERT_WEBHOOK)?.query_row(
                params![
                    hook.id,
                    hook.account_id,
                    hook.url,
                    hook.secret,
                    types,
                    hook.inbox_id,
                    hook.next_attempt_at.0,
                    hook.created_at.0
                ],
                |r| rows::webhook(r),
            )?)
        })
        .await
    }

    async fn list_webhooks(&self, account_id: &str) -> Result<Vec<WebhookRecord>> {
        let account_id = account_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::LIST_WEBHOOKS)?;
            let rows = stmt.query_map(params![account_id], |r| rows::webhook(r))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn get_webhook(&self, account_id: &str, id: &str) -> Result<Option<WebhookRecord>> {
        let (account_id, id) = (account_id.to_owned(), id.to_owned());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::GET_WEBHOOK)?
                .query_row(params![account_id, id], |r| rows::webhook(r))
                .optional()?)
        })
        .await
    }

    async fn delete_webhook(&self, account_id: &str, id: &str) -> Result<bool> {
        let (account_id, id) = (account_id.to_owned(), id.to_owned());
        self.write(move |conn| {
            if exec(conn, sql::DELETE_WEBHOOK, params![account_id, id])? == 0 {
                return Ok(false);
            }
            exec(conn, sql::DELETE_WEBHOOK_LOG, params![id])?;
            Ok(true)
        })
        .await
    }

    async fn rotate_webhook_secret(
        &self,
        account_id: &str,
        id: &str,
        secret: &str,
        previous_until: Timestamp,
    ) -> Result<Option<WebhookRecord>> {
        let (account_id, id, secret) = (account_id.to_owned(), id.to_owned(), secret.to_owned());
        self.write(move |conn| {
            Ok(conn
                .prepare_cached(sql::ROTATE_WEBHOOK)?
                .query_row(params![previous_until.0, secret, account_id, id], |r| {
                    rows::webhook(r)
                })
                .optional()?)
        })
        .await
    }

    async fn replay_webhook(
        &self,
        account_id: &str,
        id: &str,
        after: i64,
        now: Timestamp,
    ) -> Result<Option<WebhookRecord>> {
        let (account_id, id) = (account_id.to_owned(), id.to_owned());
        self.write(move |conn| {
            Ok(conn
                .prepare_cached(sql::REPLAY_WEBHOOK)?
                .query_row(params![after, now.0, account_id, id], |r| rows::webhook(r))
                .optional()?)
        })
        .await
    }

    async fn webhooks_due(&self, now: Timestamp) -> Result<bool> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::WEBHOOKS_DUE)?
                .query_row(params![now.0], |_| Ok(()))
                .optional()?
                .is_some())
        })
        .await
    }

    async fn claim_webhooks(
        &self,
        lease: &str,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<WebhookRecord>> {
        let lease = lease.to_owned();
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(sql::CLAIM_WEBHOOKS)?;
            let rows = stmt.query_map(params![lease, "", until.0, now.0, limit as i64], |r| {
                rows::webhook(r)
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn record_webhook_progress(
        &self,
        id: &str,
        lease: &str,
        progress: WebhookProgress,
        delivery: Option<WebhookDelivery>,
    ) -> Result<bool> {
        let (id, lease) = (id.to_owned(), lease.to_owned());
        self.write(move |conn| {
            let changed = exec(
                conn,
                sql::WEBHOOK_PROGRESS,
                params![
                    progress.cursor,
                    progress.attempt,
                    progress.next_attempt_at.0,
                    progress.status(),
                    progress.disabled,
                    id,
                    lease
                ],
            )?;
            if changed == 0 {
                return Ok(false);
            }
            if let Some(d) = delivery {
                exec(
                    conn,
                    sql::INSERT_WEBHOOK_DELIVERY,
                    params![
                        d.id,
                        d.webhook_id,
                        d.event_seq,
                        d.attempt,
                        d.at.0,
                        d.code,
                        d.error,
                        d.outcome,
                        d.duration_ms
                    ],
                )?;
                let cutoff = d.at.0 - WEBHOOK_LOG_KEPT.as_millis() as i64;
                exec(conn, sql::PRUNE_WEBHOOK_LOG, params![d.webhook_id, cutoff])?;
            }
            Ok(true)
        })
        .await
    }

    async fn release_webhook(&self, id: &str, lease: &str) -> Result<()> {
        let (id, lease) = (id.to_owned(), lease.to_owned());
        self.write(move |conn| {
            exec(conn, sql::RELEASE_WEBHOOK, params![id, lease])?;
            Ok(())
        })
        .await
    }

    async fn webhook_deliveries(
        &self,
        account_id: &str,
        id: &str,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>> {
        let (account_id, id) = (account_id.to_owned(), id.to_owned());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::WEBHOOK_DELIVERIES)?;
            let rows = stmt.query_map(params![account_id, id, limit as i64], |r| {
                rows::webhook_delivery(r)
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}
