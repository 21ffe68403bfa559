use super::*;

#[async_trait]
impl Operator for PgStore {
    async fn account_usage(&self, limit: usize) -> Result<Vec<AccountUsage>> {
        self.first_rows(sql::ACCOUNT_USAGE, limit, rows::account_usage)
            .await
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
        self.first_rows(sql::RECENT_ATTEMPTS, limit, rows::recent_attempt)
            .await
    }

    async fn all_suppressions(&self, limit: usize) -> Result<Vec<Suppression>> {
        self.first_rows(sql::ALL_SUPPRESSIONS, limit, rows::suppression)
            .await
    }

    async fn recent_risk(&self, limit: usize) -> Result<Vec<RecentRisk>> {
        self.first_rows(sql::RECENT_RISK, limit, rows::recent_risk)
            .await
    }

    async fn all_domains(&self, limit: usize) -> Result<Vec<DomainRecord>> {
        self.first_rows(sql::ALL_DOMAINS, limit, rows::domain).await
    }

    async fn all_inboxes(&self, limit: usize) -> Result<Vec<InboxRecord>> {
        self.first_rows(sql::ALL_INBOXES, limit, rows::inbox).await
    }

    async fn one_account_usage(&self, account_id: &str) -> Result<Option<AccountUsage>> {
        let row = sqlx::query(sql::ONE_ACCOUNT_USAGE)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(rows::account_usage).transpose()?)
    }
}

impl PgStore {
    /// The first `limit` rows of one of the operator's listings.
    async fn first_rows<T>(
        &self,
        query: &'static str,
        limit: usize,
        map: impl Fn(&sqlx::postgres::PgRow) -> std::result::Result<T, sqlx::Error>,
    ) -> Result<Vec<T>> {
        let rows = sqlx::query(query)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(map)
            .collect::<std::result::Result<_, _>>()?)
    }
}
