use super::*;

#[async_trait]
impl Domains for SqliteStore {
    async fn create_domain(&self, domain: DomainRecord, keys: Vec<DkimKeyRecord>) -> Result<()> {
        self.write(move |conn| {
            insert_domain(conn, &domain)?;
            for key in &keys {
                insert_dkim_key(conn, key)?;
            }
            Ok(())
        })
        .await
    }

    async fn ensure_shared_domain(
        &self,
        domain: DomainRecord,
        keys: Vec<DkimKeyRecord>,
    ) -> Result<DomainRecord> {
        self.write(move |conn| {
            let existing = conn
                .prepare_cached(sql::SHARED_DOMAIN)?
                .query_row(params![domain.name], |r| rows::domain(r))
                .optional()?;
            if let Some(existing) = existing {
                return Ok(existing);
            }
            insert_domain(conn, &domain)?;
            for key in &keys {
                insert_dkim_key(conn, key)?;
            }
            Ok(domain)
        })
        .await
    }

    async fn list_domains(&self, account_id: &str) -> Result<Vec<DomainRecord>> {
        let account_id = account_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::LIST_DOMAINS)?;
            let rows = stmt.query_map(params![account_id], |r| rows::domain(r))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn get_domain(&self, account_id: &str, domain_id: &str) -> Result<Option<DomainRecord>> {
        let (account_id, domain_id) = (account_id.to_owned(), domain_id.to_owned());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::GET_DOMAIN)?
                .query_row(params![domain_id, account_id], |r| rows::domain(r))
                .optional()?)
        })
        .await
    }

    async fn verify_domain(
        &self,
        account_id: &str,
        domain_id: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let (account_id, domain_id) = (account_id.to_owned(), domain_id.to_owned());
        self.write(move |conn| {
            let n = exec(
                conn,
                sql::VERIFY_DOMAIN,
                params![now.0, domain_id, account_id],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn delete_domain(&self, account_id: &str, domain_id: &str) -> Result<bool> {
        let (account_id, domain_id) = (account_id.to_owned(), domain_id.to_owned());
        self.write(move |conn| {
            let Some(name) = conn
                .query_row(
                    "SELECT name FROM domains WHERE id = $1 AND account_id = $2",
                    params![domain_id, account_id],
                    |r| r.get::<_, String>(0),
                )
                .optional()?
            else {
                return Ok(false);
            };
            let live: i64 = conn.query_row(
                sql::COUNT_DOMAIN_INBOXES,
                params![account_id, format!("%@{name}")],
                |r| r.get(0),
            )?;
            if live > 0 {
                return Err(StoreError::Conflict);
            }
            exec(conn, sql::DELETE_DOMAIN_KEYS, params![domain_id])?;
            exec(conn, sql::DELETE_DOMAIN, params![domain_id])?;
            Ok(true)
        })
        .await
    }

    async fn hosted_domain(&self, name: &str) -> Result<Option<DomainRecord>> {
        self.read_point(|conn| {
            Ok(conn
                .prepare_cached(sql::HOSTED_DOMAIN)?
                .query_row(params![name], |r| rows::domain(r))
                .optional()?)
        })
    }

    async fn dkim_keys(&self, domain_id: &str) -> Result<Vec<DkimKeyRecord>> {
        let domain_id = domain_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::DKIM_KEYS)?;
            let rows = stmt.query_map(params![domain_id], |r| rows::dkim_key(r))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn rotate_dkim_keys(
        &self,
        domain_id: &str,
        keys: Vec<DkimKeyRecord>,
        now: Timestamp,
    ) -> Result<()> {
        let domain_id = domain_id.to_owned();
        self.write(move |conn| {
            exec(conn, sql::RETIRE_DKIM_KEYS, params![now.0, domain_id])?;
            for key in &keys {
                insert_dkim_key(conn, key)?;
            }
            Ok(())
        })
        .await
    }

    async fn server_secret(&self, name: &str, candidate: &str, now: Timestamp) -> Result<String> {
        let (name, candidate) = (name.to_owned(), candidate.to_owned());
        self.write(move |conn| {
            conn.prepare_cached(sql::INSERT_SECRET)?
                .execute(params![name, candidate, now.0])?;
            Ok(conn
                .prepare_cached(sql::GET_SECRET)?
                .query_row(params![name], |r| r.get(0))?)
        })
        .await
    }
}
