use super::*;
use crate::outbound::quota;

#[async_trait]
impl Sending for PgStore {
    async fn enqueue(&self, message: QueuedMessage) -> Result<(Enqueued, Option<Wake>)> {
        let mut tx = self.begin().await?;
        let release = match &message.quota {
            _ if message.held_for.is_some() => quota::Release {
                at: message.created_at,
                held_by: None,
            },
            Some(check) => match count_release(&mut tx, check, &message.quota_subject()).await? {
                Ok(release) => release,
                Err(refused) => return Ok((refused, None)),
            },
            None if message.dry_run => {
                return Ok((
                    Enqueued::DryRun(quota::Release {
                        at: message.created_at,
                        held_by: None,
                    }),
                    None,
                ));
            }
            None => quota::Release {
                at: message.created_at,
                held_by: None,
            },
        };
        if let Some((key, hash)) = &message.idempotency {
            sqlx::query(sql::INSERT_IDEMPOTENCY)
                .bind(&message.account_id)
                .bind(key)
                .bind(hash)
                .bind(&message.id)
                .bind(message.created_at.0)
                .execute(&mut *tx)
                .await?;
        }
        let size = insert_blob(&mut tx, &message.blob_id, &message.bytes).await?;
        sqlx::query(sql::INSERT_OUTBOUND)
            .bind(&message.id)
            .bind(&message.account_id)
            .bind(&message.inbox_id)
            .bind(&message.blob_id)
            .bind(&message.return_path)
            .bind(message.created_at.0)
            .bind(size)
            .bind(message.source)
            .bind(rows::json_text(&message.summary))
            .bind(rows::json_text(&message.parsed))
            .bind(release.at.0)
            .execute(&mut *tx)
            .await?;
        join_thread(&mut tx, &message.thread_join()).await?;
        let insert = if message.held_for.is_some() {
            sql::INSERT_HELD_RECIPIENT
        } else {
            sql::INSERT_RECIPIENT
        };
        for r in &message.recipients {
            sqlx::query(insert)
                .bind(&r.id)
                .bind(&message.id)
                .bind(&message.account_id)
                .bind(&r.address)
                .bind(&r.domain)
                .bind(release.at.0)
                .execute(&mut *tx)
                .await?;
        }
        let wake = match message.enqueue_event(&release) {
            Some(event) => Some(insert_event(&mut tx, &event, message.created_at).await?),
            None => None,
        };
        // DURABILITY: committed before the 202 or 250 that acknowledges the message.
        tx.commit().await?;
        let done = if message.held_for.is_some() {
            Enqueued::Held
        } else {
            Enqueued::Queued(release)
        };
        Ok((done, wake))
    }

    async fn find_idempotency(
        &self,
        account_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>> {
        let row = sqlx::query(sql::FIND_IDEMPOTENCY)
            .bind(account_id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(rows::idempotency).transpose()?)
    }

    async fn expire_idempotency(
        &self,
        account_id: &str,
        key: &str,
        before: Timestamp,
    ) -> Result<()> {
        sqlx::query(sql::EXPIRE_IDEMPOTENCY)
            .bind(account_id)
            .bind(key)
            .bind(before.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn suppressed(
        &self,
        account_id: &str,
        addresses: Vec<String>,
    ) -> Result<Vec<Suppression>> {
        let rows = sqlx::query(
            "SELECT account_id, address, reason, created_at FROM suppressions \
             WHERE account_id = $1 AND address = ANY($2)",
        )
        .bind(account_id)
        .bind(&addresses)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(rows::suppression)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn list_suppressions(&self, account_id: &str) -> Result<Vec<Suppression>> {
        let rows = sqlx::query(sql::LIST_SUPPRESSIONS)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::suppression)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn delete_suppression(&self, account_id: &str, address: &str) -> Result<bool> {
        let done = sqlx::query(sql::DELETE_SUPPRESSION)
            .bind(account_id)
            .bind(address)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn get_outbound(
        &self,
        account_id: &str,
        message_id: &str,
    ) -> Result<Option<OutboundRecord>> {
        let Some(row) = sqlx::query(sql::GET_OUTBOUND)
            .bind(message_id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let mut record = rows::outbound(&row)?;
        let recipients = sqlx::query(sql::OUTBOUND_RECIPIENTS)
            .bind(&record.id)
            .fetch_all(&self.pool)
            .await?;
        for r in recipients {
            let mut recipient = rows::recipient(&r)?;
            recipient.attempts = sqlx::query(sql::RECIPIENT_ATTEMPTS)
                .bind(&recipient.id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(rows::attempt)
                .collect::<std::result::Result<_, _>>()?;
            record.recipients.push(recipient);
        }
        Ok(Some(record))
    }
}

/// Locks the account (so nodes sharing the database count one quota), reads the counts of the
/// message's inbox and account, decides its release, and counts it there.
pub(super) async fn count_release(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    check: &QuotaCheck,
    message: &QuotaSubject<'_>,
) -> Result<std::result::Result<quota::Release, Enqueued>> {
    let now = message.at;
    sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
        .bind(message.account_id)
        .execute(&mut **tx)
        .await?;
    let verified: Option<i64> = match message.domain {
        Some(domain) => {
            sqlx::query_scalar(sql::DOMAIN_VERIFIED)
                .bind(domain)
                .fetch_optional(&mut **tx)
                .await?
        }
        None => None,
    };
    // Only a custom domain is counted as one (the shared domain has no warm-up).
    let domain_key = message
        .domain
        .filter(|_| verified.is_some())
        .map(quota::domain_key);
    let counts = sqlx::query(sql::QUOTA_COUNTS)
        .bind(message.inbox_id)
        .bind(message.account_id)
        .bind(domain_key.as_deref().unwrap_or(""))
        .bind(now.0 - quota::HORIZON)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(rows::quota_bucket)
        .collect::<std::result::Result<Vec<_>, sqlx::Error>>()?;
    let overrides = sqlx::query(sql::SEND_LIMITS_OF_TWO)
        .bind(message.inbox_id)
        .bind(message.account_id)
        .bind(message.account_id)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(rows::send_limits)
        .collect::<std::result::Result<Vec<_>, sqlx::Error>>()?;
    let paused = sqlx::query(sql::PAUSE_OF_TWO)
        .bind(message.inbox_id)
        .bind(message.account_id)
        .fetch_optional(&mut **tx)
        .await?
        .as_ref()
        .map(rows::pause)
        .transpose()?;
    let created: Option<i64> = sqlx::query_scalar(sql::INBOX_CREATED)
        .bind(message.inbox_id)
        .fetch_optional(&mut **tx)
        .await?;
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
            sqlx::query(sql::QUOTA_PRUNE)
                .bind(scope)
                .bind(now.0 - quota::HORIZON)
                .execute(&mut **tx)
                .await?;
        }
        sqlx::query(sql::QUOTA_ADD)
            .bind(scope)
            .bind(second.start)
            .bind(second.recipients)
            .bind(minute.start)
            .execute(&mut **tx)
            .await?;
    }
    Ok(Ok(release))
}
