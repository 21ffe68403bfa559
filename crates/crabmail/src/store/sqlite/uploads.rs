use super::*;

#[async_trait]
impl Uploads for SqliteStore {
    async fn save_upload(&self, upload: UploadRecord) -> Result<()> {
        self.write(move |conn| {
            exec(conn, sql::PRUNE_UPLOADS, params![upload.created_at.0])?;
            exec(
                conn,
                sql::INSERT_UPLOAD,
                params![
                    upload.id,
                    upload.account_id,
                    upload.filename,
                    upload.content_type,
                    upload.data.len() as i64,
                    upload.sha256,
                    upload.data,
                    upload.created_at.0,
                    upload.expires_at.0
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn upload_usage(&self, account_id: &str, now: Timestamp) -> Result<(i64, i64)> {
        let account_id = account_id.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::UPLOAD_USAGE)?
                .query_row(params![account_id, now.0], |r| Ok((r.get(0)?, r.get(1)?)))?)
        })
        .await
    }

    async fn get_upload(
        &self,
        account_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<UploadRecord>> {
        let (account_id, id) = (account_id.to_owned(), id.to_owned());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::GET_UPLOAD)?
                .query_row(params![account_id, id, now.0], |r| rows::upload(r))
                .optional()?)
        })
        .await
    }
}
