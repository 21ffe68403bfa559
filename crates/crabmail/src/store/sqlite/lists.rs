use super::*;

#[async_trait]
impl Lists for SqliteStore {
    async fn add_list_entry(&self, entry: ListEntry) -> Result<()> {
        self.write(move |conn| {
            exec(
                conn,
                sql::INSERT_LIST_ENTRY,
                params![
                    entry.id,
                    entry.account_id,
                    entry.scope,
                    entry.direction,
                    entry.action,
                    entry.pattern,
                    entry.created_at.0
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_entries(&self, account_id: &str) -> Result<Vec<ListEntry>> {
        let account_id = account_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::LIST_ENTRIES)?;
            let rows = stmt.query_map(params![account_id], |r| rows::list_entry(r))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn delete_list_entry(&self, account_id: &str, id: &str) -> Result<bool> {
        let (account_id, id) = (account_id.to_owned(), id.to_owned());
        self.write(
            move |conn| Ok(exec(conn, sql::DELETE_LIST_ENTRY, params![account_id, id])? == 1),
        )
        .await
    }
}
