use super::*;

#[async_trait]
impl Uploads for PgStore {
    async fn save_upload(&self, upload: UploadRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(sql::PRUNE_UPLOADS)
            .bind(upload.created_at.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::INSERT_UPLOAD)
            .bind(&upload.id)
            .bind(&upload.account_id)
            .bind(&upload.filename)
            .bind(&upload.content_type)
            .bind(upload.data.len() as i64)
            .bind(&upload.sha256)
            .bind(&upload.data)
            .bind(upload.created_at.0)
            .bind(upload.expires_at.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn upload_usage(&self, account_id: &str, now: Timestamp) -> Result<(i64, i64)> {
        let row = sqlx::query(sql::UPLOAD_USAGE)
            .bind(account_id)
            .bind(now.0)
            .fetch_one(&self.pool)
            .await?;
        Ok((row.try_get(0)?, row.try_get::<i64, _>(1)?))
    }

    async fn get_upload(
        &self,
        account_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<UploadRecord>> {
        let row = sqlx::query(sql::GET_UPLOAD)
            .bind(account_id)
            .bind(id)
            .bind(now.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(rows::upload).transpose()?)
    }
}
