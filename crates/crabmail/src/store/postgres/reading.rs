use super::*;

#[async_trait]
impl Reading for PgStore {
    async fn list_messages(
        &self,
        account_id: &str,
        inbox_id: &str,
        after: i64,
        limit: usize,
        filter: &ListFilter,
    ) -> Result<Vec<MessageRecord>> {
        let rows = sqlx::query(sql::LIST_MESSAGES)
            .bind(inbox_id)
            .bind(account_id)
            .bind(after)
            .bind(filter.include_quarantined)
            .bind(&filter.report)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::message)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn get_message(
        &self,
        account_id: &str,
        message_id: &str,
    ) -> Result<Option<MessageRecord>> {
        let row = sqlx::query(sql::GET_MESSAGE)
            .bind(message_id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(rows::message).transpose()?)
    }

    async fn get_raw(&self, account_id: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar(sql::GET_RAW)
            .bind(message_id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn delete_message(&self, account_id: &str, message_id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let blob: Option<String> = sqlx::query_scalar(sql::DELETE_MESSAGE)
            .bind(message_id)
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(blob) = blob else {
            return Ok(false);
        };
        sqlx::query(sql::DELETE_MESSAGE_THREAD_MEMBER)
            .bind(message_id)
            .execute(&mut *tx)
            .await?;
        drop_orphan_blob(&mut tx, &blob).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn inbox_cursor(&self, account_id: &str, inbox_id: &str) -> Result<i64> {
        let seq: Option<i64> = sqlx::query_scalar(sql::INBOX_CURSOR)
            .bind(inbox_id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn list_threads(
        &self,
        account_id: &str,
        inbox_id: &str,
        limit: usize,
    ) -> Result<Vec<ThreadRecord>> {
        let rows = sqlx::query(
            "SELECT thread_id, inbox_id, COUNT(*), MIN(at), MAX(at), string_agg(participants, ' '), \
             (SELECT subject FROM thread_members f WHERE f.thread_id = t.thread_id ORDER BY at, message_id LIMIT 1) \
             FROM thread_members t WHERE account_id = $1 AND inbox_id = $2 \
             GROUP BY thread_id, inbox_id ORDER BY MAX(at) DESC LIMIT $3",
        )
        .bind(account_id)
        .bind(inbox_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(rows::thread)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn thread_members(
        &self,
        account_id: &str,
        thread_id: &str,
    ) -> Result<Vec<ThreadMemberRecord>> {
        let rows = sqlx::query(sql::THREAD_MEMBERS)
            .bind(thread_id)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::thread_member)
            .collect::<std::result::Result<_, _>>()?)
    }
}
