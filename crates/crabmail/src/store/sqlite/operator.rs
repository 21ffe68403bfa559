use super::*;

#[async_trait]
impl Operator for SqliteStore {
    async fn account_usage(&self, limit: usize) -> Result<Vec<AccountUsage>> {
        self.first_rows(sql::ACCOUNT_USAGE, limit, |r| rows::account_usage(r))
            .await
    }

    async fn set_account_disabled(
        &self,
        account_id: &str,
        disabled: Option<Timestamp>,
    ) -> Result<bool> {
        let account_id = account_id.to_owned();
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(sql::SET_ACCOUNT_DISABLED)?
                .execute(params![disabled.map(|t| t.0), account_id])?;
            Ok(changed > 0)
        })
        .await
    }

    async fn replace_tokens(&self, token: NewToken, now: Timestamp) -> Result<u64> {
        self.write(move |conn| {
            let revoked = conn
                .prepare_cached(sql::REVOKE_ACCOUNT_TOKENS)?
                .execute(params![now.0, token.account_id])?;
            insert_token(conn, &token)?;
            Ok(revoked as u64)
        })
        .await
    }

    async fn recent_attempts(&self, limit: usize) -> Result<Vec<RecentAttempt>> {
        self.first_rows(sql::RECENT_ATTEMPTS, limit, |r| rows::recent_attempt(r))
            .await
    }

    async fn all_suppressions(&self, limit: usize) -> Result<Vec<Suppression>> {
        self.first_rows(sql::ALL_SUPPRESSIONS, limit, |r| rows::suppression(r))
            .await
    }

    async fn recent_risk(&self, limit: usize) -> Result<Vec<RecentRisk>> {
        self.first_rows(sql::RECENT_RISK, limit, |r| rows::recent_risk(r))
            .await
    }

    async fn all_domains(&self, limit: usize) -> Result<Vec<DomainRecord>> {
        self.first_rows(sql::ALL_DOMAINS, limit, |r| rows::domain(r))
            .await
    }

    async fn all_inboxes(&self, limit: usize) -> Result<Vec<InboxRecord>> {
        self.first_rows(sql::ALL_INBOXES, limit, |r| rows::inbox(r))
            .await
    }

    async fn one_account_usage(&self, account_id: &str) -> Result<Option<AccountUsage>> {
        let account_id = account_id.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::ONE_ACCOUNT_USAGE)?
                .query_row(params![account_id], |r| rows::account_usage(r))
                .optional()?)
        })
        .await
    }
}

impl SqliteStore {
    /// The first `limit` rows of one of the operator's listings.
    async fn first_rows<T: Send + 'static>(
        &self,
        query: &'static str,
        limit: usize,
        map: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<Vec<T>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(query)?;
            let rows = stmt.query_map(params![limit as i64], map)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}
