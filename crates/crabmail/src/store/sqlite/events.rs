use super::*;

#[async_trait]
impl Events for SqliteStore {
    async fn list_events(
        &self,
        account_id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>> {
        let account_id = account_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::LIST_EVENTS)?;
            let rows =
                stmt.query_map(params![account_id, after, limit as i64], |r| rows::event(r))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn follow_arrivals(&self, _notify: Arc<dyn Fn(Wake) + Send + Sync>) -> Result<()> {
        Ok(())
    }
}
