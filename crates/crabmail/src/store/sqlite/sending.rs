use super::*;
use crate::outbound::quota;

#[async_trait]
impl Sending for SqliteStore {
    async fn enqueue(&self, message: QueuedMessage) -> Result<(Enqueued, Option<Wake>)> {
        // Serialised here, not on the writer thread every commit waits for.
        let summary = rows::json_text(&message.summary);
        let parsed = rows::json_text(&message.parsed);
        self.write(move |conn| {
            // The one writer makes this read and the count below one step: no other send of
            // the account can come between.
            let release = match &message.quota {
                _ if message.held_for.is_some() => quota::Release {
                    at: message.created_at,
                    held_by: None,
                },
                Some(check) => match count_release(conn, check, &message.quota_subject())? {
                    Ok(release) => release,
                    Err(refused) => return Ok((refused, None)),
                },
                None if message.dry_run => {
                    let release = quota::Release {
                        at: message.created_at,
                        held_by: None,
                    };
                    return Ok((Enqueued::DryRun(release), None));
                }
                None => quota::Release {
                    at: message.created_at,
                    held_by: None,
                },
            };
            if let Some((key, hash)) = &message.idempotency {
                exec(
                    conn,
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
            let size = insert_blob(conn, &message.blob_id, &message.bytes)?;
            conn.prepare_cached(sql::INSERT_OUTBOUND)?.execute(params![
                message.id,
                message.account_id,
                message.inbox_id,
                message.blob_id,
                message.return_path,
                message.created_at.0,
                size,
                message.source,
                summary,
                parsed,
                release.at.0
            ])?;
            join_thread(conn, &message.thread_join())?;
            let mut insert = conn.prepare_cached(if message.held_for.is_some() {
                sql::INSERT_HELD_RECIPIENT
            } else {
                sql::INSERT_RECIPIENT
            })?;
            for r in &message.recipients {
                insert.execute(params![
                    r.id,
                    message.id,
                    message.account_id,
                    r.address,
                    r.domain,
                    release.at.0
                ])?;
            }
            let wake = match message.enqueue_event(&release) {
                Some(event) => Some(insert_event(conn, &event, message.created_at)?),
                None => None,
            };
            if message.held_for.is_some() {
                return Ok((Enqueued::Held, wake));
            }
            Ok((Enqueued::Queued(release), wake))
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
                .query_row(params![account_id, key], |r| rows::idempotency(r))
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
            exec(
                conn,
                sql::EXPIRE_IDEMPOTENCY,
                params![account_id, key, before.0],
            )?;
            Ok(())
        })
        .await
    }

    async fn suppressed(
        &self,
        account_id: &str,
        addresses: Vec<String>,
    ) -> Result<Vec<Suppression>> {
        self.read_point(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT account_id, address, reason, created_at FROM suppressions \
                 WHERE account_id = $1 AND address = $2",
            )?;
            let mut found = Vec::new();
            for address in addresses {
                if let Some(s) = stmt
                    .query_row(params![account_id, address], |r| rows::suppression(r))
                    .optional()?
                {
                    found.push(s);
                }
            }
            Ok(found)
        })
    }

    async fn list_suppressions(&self, account_id: &str) -> Result<Vec<Suppression>> {
        let account_id = account_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::LIST_SUPPRESSIONS)?;
            let rows = stmt.query_map(params![account_id], |r| rows::suppression(r))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn delete_suppression(&self, account_id: &str, address: &str) -> Result<bool> {
        let (account_id, address) = (account_id.to_owned(), address.to_owned());
        self.write(move |conn| {
            let n = exec(conn, sql::DELETE_SUPPRESSION, params![account_id, address])?;
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
                .query_row(params![message_id, account_id], |r| rows::outbound(r))
                .optional()?
            else {
                return Ok(None);
            };
            let mut recipients: Vec<RecipientRecord> = conn
                .prepare_cached(sql::OUTBOUND_RECIPIENTS)?
                .query_map(params![record.id], |r| rows::recipient(r))?
                .collect::<rusqlite::Result<_>>()?;
            let mut attempts = conn.prepare_cached(sql::RECIPIENT_ATTEMPTS)?;
            for recipient in &mut recipients {
                recipient.attempts = attempts
                    .query_map(params![recipient.id], |r| rows::attempt(r))?
                    .collect::<rusqlite::Result<_>>()?;
            }
            record.recipients = recipients;
            Ok(Some(record))
        })
        .await
    }
}

/// Reads the counts of the message's inbox and account, decides its release, and counts it there.
pub(super) fn count_release(
    conn: &Connection,
    check: &QuotaCheck,
    message: &QuotaSubject<'_>,
) -> Result<std::result::Result<quota::Release, Enqueued>> {
    let now = message.at;
    let verified: Option<i64> = match message.domain {
        Some(domain) => conn
            .prepare_cached(sql::DOMAIN_VERIFIED)?
            .query_row(params![domain], |r| r.get(0))
            .optional()?,
        None => None,
    };
    // Only a custom domain is counted as one (the shared domain has no warm-up).
    let domain_key = message
        .domain
        .filter(|_| verified.is_some())
        .map(quota::domain_key);
    let counts: Vec<(String, quota::Bucket)> = conn
        .prepare_cached(sql::QUOTA_COUNTS)?
        .query_map(
            params![
                message.inbox_id,
                message.account_id,
                domain_key.as_deref().unwrap_or(""),
                now.0 - quota::HORIZON
            ],
            |r| rows::quota_bucket(r),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let overrides: Vec<_> = conn
        .prepare_cached(sql::SEND_LIMITS_OF_TWO)?
        .query_map(
            params![message.inbox_id, message.account_id, message.account_id],
            |r| rows::send_limits(r),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let paused = conn
        .prepare_cached(sql::PAUSE_OF_TWO)?
        .query_row(params![message.inbox_id, message.account_id], |r| {
            rows::pause(r)
        })
        .optional()?;
    let created: Option<i64> = conn
        .prepare_cached(sql::INBOX_CREATED)?
        .query_row(params![message.inbox_id], |r| r.get(0))
        .optional()?;
    let release = match decide(
        check,
        message,
        &counts,
        &overrides,
        paused,
        created.map(Timestamp),
        verified.map(Timestamp),
    ) {
        Ok(release) => release,
        Err(refused) => return Ok(Err(refused)),
    };
    let [second, minute] = quota::Bucket::of(release.at, message.recipients as i64);
    for scope in [message.inbox_id, message.account_id]
        .into_iter()
        .chain(domain_key.as_deref())
    {
        if prune_due(&counts, scope, now) {
            conn.prepare_cached(sql::QUOTA_PRUNE)?
                .execute(params![scope, now.0 - quota::HORIZON])?;
        }
        conn.prepare_cached(sql::QUOTA_ADD)?.execute(params![
            scope,
            second.start,
            second.recipients,
            minute.start
        ])?;
    }
    Ok(Ok(release))
}
