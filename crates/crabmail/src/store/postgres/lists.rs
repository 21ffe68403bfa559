use super::*;

#[async_trait]
impl Lists for PgStore {
    async fn add_list_entry(&self, entry: ListEntry) -> Result<()> {
        sqlx::query(sql::INSERT_LIST_ENTRY)
            .bind(&entry.id)
            .bind(&entry.account_id)
            .bind(&entry.scope)
            .bind(&entry.direction)
            .bind(&entry.action)
            .bind(&entry.pattern)
            .bind(entry.created_at.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_entries(&self, account_id: &str) -> Result<Vec<ListEntry>> {
        let rows = sqlx::query(sql::LIST_ENTRIES)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::list_entry)
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()?)
    }

    async fn delete_list_entry(&self, account_id: &str, id: &str) -> Result<bool> {
        let n = sqlx::query(sql::DELETE_LIST_ENTRY)
            .bind(account_id)
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }
}
