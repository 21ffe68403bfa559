use super::*;

#[async_trait]
impl Sending for SqliteStore {
    async fn enqueue(&self, message: QueuedMessage) -> Result<()> {
        self.write(move |conn| {
            if let Some((key, hash)) = &message.idempotency {
                conn.execute(
                    sql::INSERT_IDEMPOTENCY,
                    params![
                        message.account_id,
                        key,
                        hash,
                        message.id,
                        message.created_at.0
                    ],
                )?;
            }
            let size = message.bytes.len() as i64;
            conn.prepare_cached(sql::INSERT_BLOB)?.execute(params![
                message.blob_id,
                size,
                message.bytes.as_slice()
            ])?;
            conn.prepare_cached(sql::INSERT_OUTBOUND)?.execute(params![
                message.id,
                message.account_id,
                message.inbox_id,
                message.blob_id,
                message.return_path,
                message.created_at.0,
                size,
                message.source,
                message.summary,
                message.parsed
            ])?;
            let subject: Option<String> =
                serde_json::from_str::<crabmail_api::SummaryContent>(&message.summary)
                    .ok()
                    .and_then(|s| s.subject);
            join_thread(
                conn,
                &ThreadJoin {
                    message_id: &message.id,
                    account_id: &message.account_id,
                    inbox_id: &message.inbox_id,
                    direction: "outbound",
                    subject: subject.as_deref(),
                    keys: &message.thread,
                    own_address: &message.return_path,
                    at: message.created_at,
                },
            )?;
            let mut insert = conn.prepare_cached(sql::INSERT_RECIPIENT)?;
            for r in &message.recipients {
                insert.execute(params![
                    r.id,
                    message.id,
                    message.account_id,
                    r.address,
                    r.domain,
                    message.created_at.0
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn find_idempotency(
        &self,
        account_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>> {
        let (account_id, key) = (account_id.to_owned(), key.to_owned());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::FIND_IDEMPOTENCY)?
                .query_row(params![account_id, key], |r| {
                    Ok(IdempotencyRecord {
                        request_hash: r.get(0)?,
                        message_id: r.get(1)?,
                        created_at: Timestamp(r.get(2)?),
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn expire_idempotency(
        &self,
        account_id: &str,
        key: &str,
        before: Timestamp,
    ) -> Result<()> {
        let (account_id, key) = (account_id.to_owned(), key.to_owned());
        self.write(move |conn| {
            conn.execute(sql::EXPIRE_IDEMPOTENCY, params![account_id, key, before.0])?;
            Ok(())
        })
        .await
    }

    async fn suppressed(
        &self,
        account_id: &str,
        addresses: Vec<String>,
    ) -> Result<Vec<Suppression>> {
        let account_id = account_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT account_id, address, reason, created_at FROM suppressions \
                 WHERE account_id = $1 AND address = $2",
            )?;
            let mut found = Vec::new();
            for address in addresses {
                if let Some(s) = stmt
                    .query_row(params![account_id, address], suppression_row)
                    .optional()?
                {
                    found.push(s);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn list_suppressions(&self, account_id: &str) -> Result<Vec<Suppression>> {
        let account_id = account_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::LIST_SUPPRESSIONS)?;
            let rows = stmt.query_map(params![account_id], suppression_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn delete_suppression(&self, account_id: &str, address: &str) -> Result<bool> {
        let (account_id, address) = (account_id.to_owned(), address.to_owned());
        self.write(move |conn| {
            let n = conn.execute(sql::DELETE_SUPPRESSION, params![account_id, address])?;
            Ok(n == 1)
        })
        .await
    }

    async fn get_outbound(
        &self,
        account_id: &str,
        message_id: &str,
    ) -> Result<Option<OutboundRecord>> {
        let (account_id, message_id) = (account_id.to_owned(), message_id.to_owned());
        self.read(move |conn| {
            let Some(mut record) = conn
                .prepare_cached(sql::GET_OUTBOUND)?
                .query_row(params![message_id, account_id], |r| {
                    Ok(OutboundRecord {
                        id: r.get(0)?,
                        account_id: r.get(1)?,
                        inbox_id: r.get(2)?,
                        return_path: r.get(3)?,
                        created_at: Timestamp(r.get(4)?),
                        size: r.get(5)?,
                        summary: r.get(6)?,
                        parsed: r.get(7)?,
                        blob_id: r.get(8)?,
                        recipients: Vec::new(),
                        thread_id: r.get(9)?,
                    })
                })
                .optional()?
            else {
                return Ok(None);
            };
            let recipients: Vec<(String, String, String, Option<i64>)> = conn
                .prepare_cached(sql::OUTBOUND_RECIPIENTS)?
                .query_map(params![record.id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut attempts = conn.prepare_cached(sql::RECIPIENT_ATTEMPTS)?;
            for (id, address, status, next) in recipients {
                let list = attempts
                    .query_map(params![id], |r| {
                        Ok(AttemptRecord {
                            at: Timestamp(r.get(0)?),
                            host: r.get(1)?,
                            code: r.get(2)?,
                            enhanced: r.get(3)?,
                            text: r.get(4)?,
                            tls: r.get(5)?,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                record.recipients.push(RecipientRecord {
                    id,
                    address,
                    status: Status::parse(&status),
                    attempts: list,
                    next_attempt_at: next.map(Timestamp),
                });
            }
            Ok(Some(record))
        })
        .await
    }
}
