use super::*;

#[async_trait]
impl Accounts for SqliteStore {
    async fn create_account(&self, account: NewAccount) -> Result<()> {
        self.write(move |conn| {
            if let Some(hash) = &account.invite_hash {
                let used = exec(
                    conn,
                    sql::USE_INVITE,
                    params![account.id, account.created_at.0, hash],
                )?;
                if used != 1 {
                    return Err(StoreError::InvalidInvite);
                }
            }
            exec(
                conn,
                sql::INSERT_ACCOUNT,
                params![account.id, account.created_at.0],
            )?;
            insert_token(conn, &account.first_token)
        })
        .await
    }

    async fn create_invite(&self, code_hash: Vec<u8>, now: Timestamp) -> Result<()> {
        self.write(move |conn| {
            exec(conn, sql::INSERT_INVITE, params![code_hash, now.0])?;
            Ok(())
        })
        .await
    }

    async fn find_token(&self, hash: Vec<u8>) -> Result<Option<TokenRecord>> {
        self.read_point(|conn| {
            Ok(conn
                .prepare_cached(sql::FIND_TOKEN)?
                .query_row(params![hash], |r| rows::token(r))
                .optional()?)
        })
    }

    async fn create_token(&self, token: NewToken) -> Result<()> {
        self.write(move |conn| insert_token(conn, &token)).await
    }

    async fn list_tokens(&self, account_id: &str) -> Result<Vec<TokenRecord>> {
        let account_id = account_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::LIST_TOKENS)?;
            let rows = stmt.query_map(params![account_id], |r| rows::token(r))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn revoke_token(&self, account_id: &str, token_id: &str, now: Timestamp) -> Result<bool> {
        let (account_id, token_id) = (account_id.to_owned(), token_id.to_owned());
        self.write(move |conn| {
            let n = exec(
                conn,
                sql::REVOKE_TOKEN,
                params![now.0, token_id, account_id],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn create_inbox(&self, inbox: InboxRecord) -> Result<()> {
        self.write(move |conn| {
            exec(
                conn,
                sql::INSERT_INBOX,
                params![
                    inbox.id,
                    inbox.account_id,
                    inbox.address,
                    inbox.display_name,
                    inbox.created_at.0
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_inboxes(&self, account_id: &str) -> Result<Vec<InboxRecord>> {
        let account_id = account_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::LIST_INBOXES)?;
            let rows = stmt.query_map(params![account_id], |r| rows::inbox(r))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn get_inbox(&self, account_id: &str, inbox_id: &str) -> Result<Option<InboxRecord>> {
        let (account_id, inbox_id) = (account_id.to_owned(), inbox_id.to_owned());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::GET_INBOX)?
                .query_row(params![inbox_id, account_id], |r| rows::inbox(r))
                .optional()?)
        })
        .await
    }

    async fn delete_inbox(&self, account_id: &str, inbox_id: &str, now: Timestamp) -> Result<bool> {
        let (account_id, inbox_id) = (account_id.to_owned(), inbox_id.to_owned());
        self.write(move |conn| {
            let n = exec(
                conn,
                sql::MARK_INBOX_DELETED,
                params![now.0, inbox_id, account_id],
            )?;
            if n == 0 {
                return Ok(false);
            }
            let blobs: Vec<String> = conn
                .prepare("SELECT DISTINCT blob_id FROM messages WHERE inbox_id = $1")?
                .query_map(params![inbox_id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            exec(
                conn,
                "DELETE FROM messages WHERE inbox_id = $1",
                params![inbox_id],
            )?;
            exec(conn, sql::DELETE_INBOX_THREAD_MEMBERS, params![inbox_id])?;
            exec(conn, sql::REVOKE_INBOX_TOKENS, params![now.0, inbox_id])?;
            for blob in blobs {
                drop_orphan_blob(conn, &blob)?;
            }
            Ok(true)
        })
        .await
    }

    async fn find_inbox(&self, address: &str) -> Result<Option<InboxTarget>> {
        self.read_point(|conn| {
            Ok(conn
                .prepare_cached(sql::FIND_INBOX)?
                .query_row(params![address], |r| rows::inbox_target(r))
                .optional()?)
        })
    }
}
