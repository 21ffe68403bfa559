use super::*;

#[async_trait]
impl Accounts for PgStore {
    async fn create_account(&self, account: NewAccount) -> Result<()> {
        let mut tx = self.begin().await?;
        if let Some(hash) = &account.invite_hash {
            let used = sqlx::query(sql::USE_INVITE)
                .bind(&account.id)
                .bind(account.created_at.0)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
            if used.rows_affected() != 1 {
                return Err(StoreError::InvalidInvite);
            }
        }
        sqlx::query(sql::INSERT_ACCOUNT)
            .bind(&account.id)
            .bind(account.created_at.0)
            .execute(&mut *tx)
            .await?;
        insert_token(&mut tx, &account.first_token).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_invite(&self, code_hash: Vec<u8>, now: Timestamp) -> Result<()> {
        sqlx::query(sql::INSERT_INVITE)
            .bind(code_hash)
            .bind(now.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn find_token(&self, hash: Vec<u8>) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(sql::FIND_TOKEN)
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(rows::token).transpose()?)
    }

    async fn create_token(&self, token: NewToken) -> Result<()> {
        let mut tx = self.begin().await?;
        insert_token(&mut tx, &token).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_tokens(&self, account_id: &str) -> Result<Vec<TokenRecord>> {
        let rows = sqlx::query(sql::LIST_TOKENS)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::token)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn revoke_token(&self, account_id: &str, token_id: &str, now: Timestamp) -> Result<bool> {
        let done = sqlx::query(sql::REVOKE_TOKEN)
            .bind(now.0)
            .bind(token_id)
            .bind(account_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_inbox(&self, inbox: InboxRecord) -> Result<()> {
        sqlx::query(sql::INSERT_INBOX)
            .bind(&inbox.id)
            .bind(&inbox.account_id)
            .bind(&inbox.address)
            .bind(&inbox.display_name)
            .bind(inbox.created_at.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_inboxes(&self, account_id: &str) -> Result<Vec<InboxRecord>> {
        let rows = sqlx::query(sql::LIST_INBOXES)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::inbox)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn get_inbox(&self, account_id: &str, inbox_id: &str) -> Result<Option<InboxRecord>> {
        let row = sqlx::query(sql::GET_INBOX)
            .bind(inbox_id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(rows::inbox).transpose()?)
    }

    async fn delete_inbox(&self, account_id: &str, inbox_id: &str, now: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(sql::MARK_INBOX_DELETED)
            .bind(now.0)
            .bind(inbox_id)
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let blobs: Vec<String> =
            sqlx::query_scalar("DELETE FROM messages WHERE inbox_id = $1 RETURNING blob_id")
                .bind(inbox_id)
                .fetch_all(&mut *tx)
                .await?;
        sqlx::query(sql::DELETE_INBOX_THREAD_MEMBERS)
            .bind(inbox_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::REVOKE_INBOX_TOKENS)
            .bind(now.0)
            .bind(inbox_id)
            .execute(&mut *tx)
            .await?;
        let mut unique = blobs;
        unique.sort();
        unique.dedup();
        for blob in unique {
            drop_orphan_blob(&mut tx, &blob).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn find_inbox(&self, address: &str) -> Result<Option<InboxTarget>> {
        let row = sqlx::query(sql::FIND_INBOX)
            .bind(address)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(rows::inbox_target).transpose()?)
    }
}
