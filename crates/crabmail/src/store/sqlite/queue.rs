use super::*;

#[async_trait]
impl Queue for SqliteStore {
    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<Claimed>> {
        self.write(move |conn| {
            let ids: Vec<String> = conn
                .prepare_cached(
                    "UPDATE recipients SET lease_until = $1 WHERE id IN (\
                       SELECT id FROM recipients WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $2 \
                       AND (lease_until IS NULL OR lease_until <= $2) ORDER BY next_attempt_at LIMIT $3) \
                     RETURNING id",
                )?
                .query_map(params![lease_until.0, now.0, limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut stmt = conn.prepare_cached(sql::CLAIMED)?;
            let mut claimed = Vec::with_capacity(ids.len());
            for id in ids {
                claimed.push(stmt.query_row(params![id], |r| rows::claimed(r))?);
            }
            Ok(claimed)
        })
        .await
    }

    async fn next_due(&self) -> Result<Option<Timestamp>> {
        self.read(|conn| {
            let due: Option<i64> = conn
                .prepare_cached(
                    "SELECT min(max(next_attempt_at, coalesce(lease_until, 0))) FROM recipients \
                     WHERE next_attempt_at IS NOT NULL",
                )?
                .query_row([], |r| r.get(0))?;
            Ok(due.map(Timestamp))
        })
        .await
    }

    async fn load_blob(&self, blob_id: &str) -> Result<Option<Vec<u8>>> {
        self.read_point(|conn| {
            Ok(conn
                .prepare_cached(sql::LOAD_BLOB)?
                .query_row(params![blob_id], |r| r.get(0))
                .optional()?)
        })
    }

    async fn record_outcomes(&self, outcomes: Outcomes, now: Timestamp) -> Result<Vec<Wake>> {
        self.write_urgent(move |conn| {
            let mut wakes = Vec::new();
            for result in &outcomes.results {
                let a = &result.attempt;
                let updated = conn.prepare_cached(sql::RECORD_OUTCOME)?.execute(params![
                    result.status.as_str(),
                    result.next_attempt_at.map(|t| t.0),
                    a.code,
                    a.enhanced,
                    a.text,
                    now.0,
                    result.recipient_id
                ])?;
                if updated == 0 {
                    continue; // cancelled while in flight
                }
                conn.prepare_cached(sql::INSERT_ATTEMPT)?.execute(params![
                    result.recipient_id,
                    a.at.0,
                    a.host,
                    a.code,
                    a.enhanced,
                    a.text,
                    a.tls
                ])?;
                wakes.push(insert_event(conn, &NewEvent::outcome(result), now)?);
            }
            for message in &outcomes.inbound {
                insert_inbound(conn, message)?;
            }
            for s in &outcomes.suppress {
                exec(
                    conn,
                    sql::INSERT_SUPPRESSION,
                    params![s.account_id, s.address, s.reason, s.created_at.0],
                )?;
            }
            Ok(wakes)
        })
        .await
    }

    async fn queue_entries(&self, limit: usize) -> Result<Vec<QueueEntry>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::QUEUE_ENTRIES)?;
            let rows = stmt.query_map(params![limit as i64], |r| rows::queue_entry(r))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn outbound_owner(&self, message_id: &str) -> Result<Option<String>> {
        let message_id = message_id.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::OUTBOUND_OWNER)?
                .query_row(params![message_id], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn retry_now(&self, message_id: &str, now: Timestamp) -> Result<usize> {
        let message_id = message_id.to_owned();
        self.write(move |conn| Ok(exec(conn, sql::RETRY_NOW, params![now.0, message_id])?))
            .await
    }

    async fn cancel(&self, message_id: &str, now: Timestamp) -> Result<usize> {
        let message_id = message_id.to_owned();
        self.write(move |conn| {
            let cancelled: Vec<(String, String, String)> = conn
                .prepare_cached(
                    "UPDATE recipients SET status = 'cancelled', next_attempt_at = NULL, lease_until = NULL, \
                     updated_at = $1 WHERE message_id = $2 AND next_attempt_at IS NOT NULL \
                     RETURNING account_id, address, (SELECT inbox_id FROM outbound WHERE id = message_id)",
                )?
                .query_map(params![now.0, message_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (account_id, address, inbox_id) in &cancelled {
                insert_event(
                    conn,
                    &NewEvent::cancelled(account_id, &message_id, inbox_id, address),
                    now,
                )?;
            }
            Ok(cancelled.len())
        })
        .await
    }

    async fn return_path_owner(&self, recipient_id: &str) -> Result<Option<InboxTarget>> {
        let recipient_id = recipient_id.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::RETURN_PATH_OWNER)?
                .query_row(params![recipient_id], |r| rows::inbox_target(r))
                .optional()?)
        })
        .await
    }

    async fn backlog(&self, now: Timestamp) -> Result<crate::metrics::Backlog> {
        self.read(move |conn| {
            let row = |sql: &str| -> rusqlite::Result<(i64, Option<i64>)> {
                conn.prepare_cached(sql)?
                    .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            };
            Ok(crate::metrics::Backlog::at(
                now,
                row(sql::QUEUE_BACKLOG)?,
                row(sql::INGEST_BACKLOG)?,
            ))
        })
        .await
    }
}
