use super::*;

#[async_trait]
impl Reading for SqliteStore {
    async fn list_messages(
        &self,
        account_id: &str,
        inbox_id: &str,
        after: i64,
        limit: usize,
        filter: &ListFilter,
    ) -> Result<Vec<MessageRecord>> {
        let (account_id, inbox_id) = (account_id.to_owned(), inbox_id.to_owned());
        let filter = filter.clone();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::LIST_MESSAGES)?;
            let rows = stmt.query_map(
                params![
                    inbox_id,
                    account_id,
                    after,
                    filter.include_quarantined,
                    filter.report,
                    limit as i64
                ],
                |r| rows::message(r),
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn get_message(
        &self,
        account_id: &str,
        message_id: &str,
    ) -> Result<Option<MessageRecord>> {
        let (account_id, message_id) = (account_id.to_owned(), message_id.to_owned());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::GET_MESSAGE)?
                .query_row(params![message_id, account_id], |r| rows::message(r))
                .optional()?)
        })
        .await
    }

    async fn get_raw(&self, account_id: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        let (account_id, message_id) = (account_id.to_owned(), message_id.to_owned());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::GET_RAW)?
                .query_row(params![message_id, account_id], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn delete_message(&self, account_id: &str, message_id: &str) -> Result<bool> {
        let (account_id, message_id) = (account_id.to_owned(), message_id.to_owned());
        self.write(move |conn| {
            let blob: Option<String> = conn
                .query_row(sql::DELETE_MESSAGE, params![message_id, account_id], |r| {
                    r.get(0)
                })
                .optional()?;
            match blob {
                Some(blob) => {
                    exec(conn, sql::DELETE_MESSAGE_THREAD_MEMBER, params![message_id])?;
                    drop_orphan_blob(conn, &blob)?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
        .await
    }

    async fn inbox_cursor(&self, account_id: &str, inbox_id: &str) -> Result<i64> {
        let (account_id, inbox_id) = (account_id.to_owned(), inbox_id.to_owned());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::INBOX_CURSOR)?
                .query_row(params![inbox_id, account_id], |r| r.get(0))
                .optional()?
                .unwrap_or(0))
        })
        .await
    }

    async fn list_threads(
        &self,
        account_id: &str,
        inbox_id: &str,
        limit: usize,
    ) -> Result<Vec<ThreadRecord>> {
        let (account_id, inbox_id) = (account_id.to_owned(), inbox_id.to_owned());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT thread_id, inbox_id, COUNT(*), MIN(at), MAX(at), group_concat(participants, ' '), \
                 (SELECT subject FROM thread_members f WHERE f.thread_id = t.thread_id ORDER BY at, message_id LIMIT 1) \
                 FROM thread_members t WHERE account_id = $1 AND inbox_id = $2 \
                 GROUP BY thread_id, inbox_id ORDER BY MAX(at) DESC LIMIT $3",
            )?;
            let rows = stmt.query_map(params![account_id, inbox_id, limit as i64], |r| rows::thread(r))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn thread_members(
        &self,
        account_id: &str,
        thread_id: &str,
    ) -> Result<Vec<ThreadMemberRecord>> {
        let (account_id, thread_id) = (account_id.to_owned(), thread_id.to_owned());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::THREAD_MEMBERS)?;
            let rows =
                stmt.query_map(params![thread_id, account_id], |r| rows::thread_member(r))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}
