use super::*;

#[async_trait]
impl Approvals for PgStore {
    async fn held_messages(&self, account_id: &str, limit: usize) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(sql::HELD_MESSAGES)
            .bind(account_id)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn approve(
        &self,
        account_id: &str,
        message_id: &str,
        check: QuotaCheck,
        now: Timestamp,
    ) -> Result<(Approved, Option<Wake>)> {
        let mut tx = self.begin().await?;
        // The account's lock first: two approvals of one message count it once.
        sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        let held: Option<(String, i64, String)> = sqlx::query_as(sql::HELD_OF_MESSAGE)
            .bind(message_id)
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((inbox_id, recipients, return_path)) = held else {
            return Ok((Approved::NotHeld, None));
        };
        let subject = QuotaSubject {
            inbox_id: &inbox_id,
            account_id,
            at: now,
            recipients: recipients.max(0) as usize,
            dry_run: false,
            domain: return_path.rsplit_once('@').map(|(_, d)| d),
        };
        let release = match sending::count_release(&mut tx, &check, &subject).await? {
            Ok(release) => release,
            Err(refused) => return Ok((Approved::Decided(refused), None)),
        };
        sqlx::query(sql::RELEASE_HELD)
            .bind(release.at.0)
            .bind(now.0)
            .bind(message_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::SET_RELEASE)
            .bind(release.at.0)
            .bind(message_id)
            .execute(&mut *tx)
            .await?;
        let event = NewEvent::approval(account_id, "message.approved", message_id, &inbox_id, None);
        let wake = insert_event(&mut tx, &event, now).await?;
        tx.commit().await?;
        Ok((Approved::Decided(Enqueued::Queued(release)), Some(wake)))
    }

    async fn set_approval_required(
        &self,
        account_id: &str,
        inbox_id: &str,
        required: bool,
    ) -> Result<bool> {
        let n = sqlx::query(sql::SET_APPROVAL_REQUIRED)
            .bind(required)
            .bind(inbox_id)
            .bind(account_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    async fn reject(
        &self,
        account_id: &str,
        message_id: &str,
        now: Timestamp,
    ) -> Result<Option<Wake>> {
        let mut tx = self.begin().await?;
        let held: Option<(String, i64, String)> = sqlx::query_as(sql::HELD_OF_MESSAGE)
            .bind(message_id)
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((inbox_id, _, _)) = held else {
            return Ok(None);
        };
        sqlx::query(sql::REJECT_HELD)
            .bind(now.0)
            .bind(message_id)
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        let event = NewEvent::approval(account_id, "message.rejected", message_id, &inbox_id, None);
        let wake = insert_event(&mut tx, &event, now).await?;
        tx.commit().await?;
        Ok(Some(wake))
    }
}
