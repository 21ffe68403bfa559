use super::*;

#[async_trait]
impl Approvals for SqliteStore {
    async fn held_messages(&self, account_id: &str, limit: usize) -> Result<Vec<String>> {
        let account_id = account_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::HELD_MESSAGES)?;
            let ids = stmt.query_map(params![account_id, limit as i64], |r| r.get(0))?;
            Ok(ids.collect::<rusqlite::Result<Vec<String>>>()?)
        })
        .await
    }

    async fn approve(
        &self,
        account_id: &str,
        message_id: &str,
        check: QuotaCheck,
        now: Timestamp,
    ) -> Result<(Approved, Option<Wake>)> {
        let (account_id, message_id) = (account_id.to_owned(), message_id.to_owned());
        self.write(move |conn| {
            let held: Option<(String, i64, String)> = conn
                .prepare_cached(sql::HELD_OF_MESSAGE)?
                .query_row(params![message_id, account_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            let Some((inbox_id, recipients, return_path)) = held else {
                return Ok((Approved::NotHeld, None));
            };
            let subject = QuotaSubject {
                inbox_id: &inbox_id,
                account_id: &account_id,
                at: now,
                recipients: recipients.max(0) as usize,
                dry_run: false,
                domain: return_path.rsplit_once('@').map(|(_, d)| d),
            };
            let release = match sending::count_release(conn, &check, &subject)? {
                Ok(release) => release,
                Err(refused) => return Ok((Approved::Decided(refused), None)),
            };
            conn.prepare_cached(sql::RELEASE_HELD)?.execute(params![
                release.at.0,
                now.0,
                message_id
            ])?;
            conn.prepare_cached(sql::SET_RELEASE)?
                .execute(params![release.at.0, message_id])?;
            let event = NewEvent::approval(
                &account_id,
                "message.approved",
                &message_id,
                &inbox_id,
                None,
            );
            let wake = insert_event(conn, &event, now)?;
            Ok((Approved::Decided(Enqueued::Queued(release)), Some(wake)))
        })
        .await
    }

    async fn set_approval_required(
        &self,
        account_id: &str,
        inbox_id: &str,
        required: bool,
    ) -> Result<bool> {
        let (account_id, inbox_id) = (account_id.to_owned(), inbox_id.to_owned());
        self.write(move |conn| {
            let n = exec(
                conn,
                sql::SET_APPROVAL_REQUIRED,
                params![required, inbox_id, account_id],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn reject(
        &self,
        account_id: &str,
        message_id: &str,
        now: Timestamp,
    ) -> Result<Option<Wake>> {
        let (account_id, message_id) = (account_id.to_owned(), message_id.to_owned());
        self.write(move |conn| {
            let inbox_id: Option<String> = conn
                .prepare_cached(sql::HELD_OF_MESSAGE)?
                .query_row(params![message_id, account_id], |r| r.get(0))
                .optional()?;
            let Some(inbox_id) = inbox_id else {
                return Ok(None);
            };
            conn.prepare_cached(sql::REJECT_HELD)?
                .execute(params![now.0, message_id, account_id])?;
            let event = NewEvent::approval(
                &account_id,
                "message.rejected",
                &message_id,
                &inbox_id,
                None,
            );
            Ok(Some(insert_event(conn, &event, now)?))
        })
        .await
    }
}
