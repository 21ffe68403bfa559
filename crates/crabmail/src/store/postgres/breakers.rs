use super::*;
use crate::outbound::breaker::Metrics;

#[async_trait]
impl Breakers for PgStore {
    async fn breaker_metrics(
        &self,
        scope: QuotaScope<'_>,
        sent_from: Timestamp,
        attempts_from: Timestamp,
    ) -> Result<Metrics> {
        let resumed: i64 = sqlx::query_scalar(sql::BREAKER_COUNTS_FROM)
            .bind(scope.key())
            .fetch_optional(&self.pool)
            .await?
            .unwrap_or(0);
        let sent_from = sent_from.0.max(resumed);
        let attempts_from = attempts_from.0.max(resumed);
        let (finals, attempts) = match scope {
            QuotaScope::Inbox { .. } => (sql::FINAL_RECIPIENTS_OF_INBOX, sql::ATTEMPTS_OF_INBOX),
            QuotaScope::Account(_) => (sql::FINAL_RECIPIENTS_OF_ACCOUNT, sql::ATTEMPTS_OF_ACCOUNT),
        };
        let row = sqlx::query(finals)
            .bind(scope.key())
            .bind(sent_from)
            .fetch_one(&self.pool)
            .await?;
        let (recipients, hard_bounces) = rows::two_counts(&row)?;
        let row = sqlx::query(attempts)
            .bind(scope.key())
            .bind(sent_from)
            .bind(attempts_from)
            .fetch_one(&self.pool)
            .await?;
        let (attempts, deferrals) = rows::two_counts(&row)?;
        Ok(Metrics {
            recipients,
            hard_bounces,
            attempts,
            deferrals,
        })
    }

    async fn pause(
        &self,
        scope: QuotaScope<'_>,
        reason: &str,
        metrics: Option<serde_json::Value>,
        now: Timestamp,
    ) -> Result<Option<Wake>> {
        let mut tx = self.begin().await?;
        let changed = sqlx::query(sql::PAUSE)
            .bind(scope.key())
            .bind(scope.account_id())
            .bind(now.0)
            .bind(reason)
            .bind(rows::to_json(metrics.as_ref()))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            return Ok(None);
        }
        let event = pause_event(&scope, "sending.paused", Some(reason), metrics.as_ref());
        let wake = insert_event(&mut tx, &event, now).await?;
        tx.commit().await?;
        Ok(Some(wake))
    }

    async fn resume(&self, scope: QuotaScope<'_>, now: Timestamp) -> Result<Option<Wake>> {
        let mut tx = self.begin().await?;
        let changed = sqlx::query(sql::RESUME)
            .bind(now.0)
            .bind(scope.key())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            return Ok(None);
        }
        let event = pause_event(&scope, "sending.resumed", None, None);
        let wake = insert_event(&mut tx, &event, now).await?;
        tx.commit().await?;
        Ok(Some(wake))
    }

    async fn pauses(&self, account_id: &str) -> Result<Vec<Pause>> {
        let rows = sqlx::query(sql::PAUSES_OF_ACCOUNT)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::pause)
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()?)
    }
}
