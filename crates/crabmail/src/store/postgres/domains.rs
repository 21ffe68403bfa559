use super::*;

#[async_trait]
impl Domains for PgStore {
    async fn create_domain(&self, domain: DomainRecord, keys: Vec<DkimKeyRecord>) -> Result<()> {
        let mut tx = self.begin().await?;
        insert_domain(&mut tx, &domain).await?;
        for key in &keys {
            insert_dkim_key(&mut tx, key).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn ensure_shared_domain(
        &self,
        domain: DomainRecord,
        keys: Vec<DkimKeyRecord>,
    ) -> Result<DomainRecord> {
        let mut tx = self.begin().await?;
        // Nodes starting together take turns, so the shared domain gets one row and one key set.
        sqlx::query("SELECT pg_advisory_xact_lock(7283002)")
            .execute(&mut *tx)
            .await?;
        let existing = sqlx::query(sql::SHARED_DOMAIN)
            .bind(&domain.name)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = existing {
            return Ok(rows::domain(&row)?);
        }
        insert_domain(&mut tx, &domain).await?;
        for key in &keys {
            insert_dkim_key(&mut tx, key).await?;
        }
        tx.commit().await?;
        Ok(domain)
    }

    async fn list_domains(&self, account_id: &str) -> Result<Vec<DomainRecord>> {
        let rows = sqlx::query(sql::LIST_DOMAINS)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::domain)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn get_domain(&self, account_id: &str, domain_id: &str) -> Result<Option<DomainRecord>> {
        let row = sqlx::query(sql::GET_DOMAIN)
            .bind(domain_id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(rows::domain).transpose()?)
    }

    async fn verify_domain(
        &self,
        account_id: &str,
        domain_id: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(sql::VERIFY_DOMAIN)
            .bind(now.0)
            .bind(domain_id)
            .bind(account_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_domain(&self, account_id: &str, domain_id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let name: Option<String> = sqlx::query_scalar(
            "SELECT name FROM domains WHERE id = $1 AND account_id = $2 FOR UPDATE",
        )
        .bind(domain_id)
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(name) = name else {
            return Ok(false);
        };
        let live: i64 = sqlx::query_scalar(sql::COUNT_DOMAIN_INBOXES)
            .bind(account_id)
            .bind(format!("%@{name}"))
            .fetch_one(&mut *tx)
            .await?;
        if live > 0 {
            return Err(StoreError::Conflict);
        }
        sqlx::query(sql::DELETE_DOMAIN_KEYS)
            .bind(domain_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::DELETE_DOMAIN)
            .bind(domain_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn hosted_domain(&self, name: &str) -> Result<Option<DomainRecord>> {
        let row = sqlx::query(sql::HOSTED_DOMAIN)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(rows::domain).transpose()?)
    }

    async fn dkim_keys(&self, domain_id: &str) -> Result<Vec<DkimKeyRecord>> {
        let rows = sqlx::query(sql::DKIM_KEYS)
            .bind(domain_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::dkim_key)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn rotate_dkim_keys(
        &self,
        domain_id: &str,
        keys: Vec<DkimKeyRecord>,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(sql::RETIRE_DKIM_KEYS)
            .bind(now.0)
            .bind(domain_id)
            .execute(&mut *tx)
            .await?;
        for key in &keys {
            insert_dkim_key(&mut tx, key).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn server_secret(&self, name: &str, candidate: &str, now: Timestamp) -> Result<String> {
        sqlx::query(sql::INSERT_SECRET)
            .bind(name)
            .bind(candidate)
            .bind(now.0)
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar(sql::GET_SECRET)
            .bind(name)
            .fetch_one(&self.pool)
            .await?)
    }
}
