use super::*;
use crate::outbound::quota::{self, LimitOverrides};

#[async_trait]
impl Quotas for PgStore {
    async fn send_limits(&self, scope: QuotaScope<'_>) -> Result<LimitOverrides> {
        let row = sqlx::query(sql::SEND_LIMITS)
            .bind(scope.key())
            .bind(scope.account_id())
            .fetch_optional(&self.pool)
            .await?;
        let found: Option<LimitOverrides> = match row {
            Some(row) => rows::json(&row, 0)?,
            None => None,
        };
        Ok(found.unwrap_or_default())
    }

    async fn set_send_limits(
        &self,
        scope: QuotaScope<'_>,
        limits: LimitOverrides,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(sql::SET_SEND_LIMITS)
            .bind(scope.key())
            .bind(scope.account_id())
            .bind(rows::json_text(&limits))
            .bind(now.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn quota_use(&self, scope: QuotaScope<'_>, now: Timestamp) -> Result<QuotaUse> {
        let buckets = sqlx::query(sql::QUOTA_COUNT_ONE)
            .bind(scope.key())
            .bind(now.0 - quota::HORIZON)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| rows::quota_bucket(r).map(|(_, b)| b))
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()?;
        let held = match scope {
            QuotaScope::Inbox {
                account_id,
                inbox_id,
            } => sqlx::query(sql::HELD_IN_INBOX)
                .bind(inbox_id)
                .bind(account_id)
                .bind(now.0),
            QuotaScope::Account(account_id) => sqlx::query(sql::HELD_IN_ACCOUNT)
                .bind(account_id)
                .bind(now.0),
        }
        .fetch_one(&self.pool)
        .await?;
        let (held, next_release) = rows::held(&held)?;
        Ok(QuotaUse {
            buckets,
            held,
            next_release,
        })
    }
}
