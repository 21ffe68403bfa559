use super::*;

#[async_trait]
impl Operator for PgStore {
    async fn account_usage(&self, limit: usize) -> Result<Vec<AccountUsage>> {
        let rows = sqlx::query(sql::ACCOUNT_USAGE)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::account_usage)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn set_account_disabled(
        &self,
        account_id: &str,
        disabled: Option<Timestamp>,
    ) -> Result<bool> {
        let changed = sqlx::query(sql::SET_ACCOUNT_DISABLED)
            .bind(disabled.map(|t| t.0))
            .bind(account_id)
            .execute(&self.pool)
            .await?;
        Ok(changed.rows_affected() > 0)
    }

    async fn replace_tokens(&self, token: NewToken, now: Timestamp) -> Result<u64> {
        let mut tx = self.begin().await?;
        let revoked = sqlx::query(sql::REVOKE_ACCOUNT_TOKENS)
            .bind(now.0)
            .bind(&token.account_id)
            .execute(&mut *tx)
            .await?;
        insert_token(&mut tx, &token).await?;
        tx.commit().await?;
        Ok(revoked.rows_affected())
    }

    async fn recent_attempts(&self, limit: usize) -> Result<Vec<RecentAttempt>> {
        let rows = sqlx::query(sql::RECENT_ATTEMPTS)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::recent_attempt)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn all_suppressions(&self, limit: usize) -> Result<Vec<Suppression>> {
        let rows = sqlx::query(sql::ALL_SUPPRESSIONS)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::suppression)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn recent_risk(&self, limit: usize) -> Result<Vec<RecentRisk>> {
        let rows = sqlx::query(sql::RECENT_RISK)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::recent_risk)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn all_domains(&self, limit: usize) -> Result<Vec<DomainRecord>> {
        let rows = sqlx::query(sql::ALL_DOMAINS)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::domain)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn all_inboxes(&self, limit: usize) -> Result<Vec<InboxRecord>> {
        let rows = sqlx::query(sql::ALL_INBOXES)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::inbox)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn one_account_usage(&self, account_id: &str) -> Result<Option<AccountUsage>> {
        let row = sqlx::query(sql::ONE_ACCOUNT_USAGE)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(rows::account_usage).transpose()?)
    }
}
