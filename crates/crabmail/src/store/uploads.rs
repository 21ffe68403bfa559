//! Uploads: bytes kept a day for sends to attach by id.

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    pub id: String,
    pub account_id: String,
    pub filename: String,
    pub content_type: String,
    /// Hex SHA-256 of `data`.
    pub sha256: String,
    pub data: Vec<u8>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[async_trait]
pub trait Uploads: Send + Sync {
    /// Keeps the upload, and forgets every upload expired at its `created_at`.
    async fn save_upload(&self, upload: UploadRecord) -> Result<()>;
    /// How many uploads the account holds at `now`, and their bytes.
    async fn upload_usage(&self, account_id: &str, now: Timestamp) -> Result<(i64, i64)>;
    /// The account's upload, unless it expired by `now`.
    async fn get_upload(
        &self,
        account_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<UploadRecord>>;
}
