use super::*;
use crate::bounce::act::{self, Sent};

#[async_trait]
impl Inbound for SqliteStore {
    async fn accept_inbound(&self, message: InboundMessage) -> Result<()> {
        self.write(move |conn| insert_inbound(conn, &message)).await
    }

    async fn resume_own_work(&self) -> Result<u64> {
        // One node owns the file: every lease left in it is from this node's last run.
        self.write(|conn| {
            let jobs = conn
                .prepare_cached(
                    "UPDATE ingest_jobs SET lease_until = NULL WHERE lease_until IS NOT NULL",
                )?
                .execute([])?;
            let recipients = conn
                .prepare_cached(
                    "UPDATE recipients SET lease_until = NULL WHERE lease_until IS NOT NULL",
                )?
                .execute([])?;
            let webhooks = conn
                .prepare_cached(sql::RELEASE_NODE_WEBHOOKS)?
                .execute([""])?;
            Ok((jobs + recipients + webhooks) as u64)
        })
        .await
    }

    async fn claim_ingest(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<IngestJob>> {
        let lease_ms = lease.as_millis() as i64;
        self.write(move |conn| {
            let ids: Vec<String> = conn
                .prepare_cached(
                    // One node owns this file: a job nobody leased is free (the node's own
                    // in-flight jobs are kept apart by the worker).
                    "UPDATE ingest_jobs SET lease_until = $1 WHERE blob_id IN (\
                       SELECT blob_id FROM ingest_jobs WHERE coalesce(lease_until, 0) <= $2 \
                       ORDER BY created_at, blob_id LIMIT $3) \
                     RETURNING blob_id",
                )?
                .query_map(params![now.0 + lease_ms, now.0, limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut stmt = conn.prepare_cached(
                "SELECT b.bytes, (SELECT auth FROM messages m WHERE m.blob_id = b.id LIMIT 1) \
                 FROM blobs b WHERE b.id = $1",
            )?;
            let mut jobs = Vec::with_capacity(ids.len());
            for blob_id in ids {
                let (bytes, auth) = stmt.query_row(params![blob_id], |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, rows::json(r, 1)?))
                })?;
                jobs.push(IngestJob {
                    blob_id,
                    bytes: Arc::new(bytes),
                    auth,
                });
            }
            Ok(jobs)
        })
        .await
    }

    async fn complete_ingest(&self, done: Vec<Ingested>, now: Timestamp) -> Result<Completed> {
        self.write(move |conn| {
            let mut completed = Completed::default();
            for item in &done {
                let (summary, parsed) = (item.summary.as_str(), item.parsed.as_str());
                let copies: Vec<rows::UnreadCopy> = conn
                    .prepare_cached(sql::UNREAD_COPIES)?
                    .query_map(params![item.blob_id], |r| rows::unread_copy(r))?
                    .collect::<rusqlite::Result<_>>()?;
                for copy in copies {
                    join_thread(conn, &item.thread_join(&copy))?;
                    // The inbox row is the per-inbox sequence: list order is the order in which
                    // copies became readable, so a cursor never skips a late one.
                    let seq: i64 = conn
                        .prepare_cached(sql::NEXT_INBOX_SEQ)?
                        .query_row(params![copy.inbox_id], |r| r.get(0))?;
                    conn.prepare_cached(sql::MAKE_MESSAGE_READABLE)?
                        .execute(params![
                            seq,
                            item.from_address,
                            item.subject,
                            summary,
                            parsed,
                            copy.message_id
                        ])?;
                    completed.wakes.push(insert_event(
                        conn,
                        &NewEvent::received(&copy.account_id, &copy.message_id, &copy.inbox_id),
                        now,
                    )?);
                    completed.wakes.push(Wake::inbox(&copy.inbox_id, seq));
                    if let Some(report) = &item.report {
                        apply_report(conn, &copy, report, now, &mut completed)?;
                    }
                }
                conn.prepare_cached(sql::DELETE_INGEST_JOB)?
                    .execute(params![item.blob_id])?;
                // Every copy may have been deleted (with its inbox) before ingest ran.
                drop_orphan_blob(conn, &item.blob_id)?;
            }
            Ok(completed)
        })
        .await
    }
}

/// Links a report to the recipient it is about and applies what it means (`bounce::act`).
fn apply_report(
    conn: &Connection,
    copy: &rows::UnreadCopy,
    report: &crate::bounce::Report,
    now: Timestamp,
    completed: &mut Completed,
) -> Result<()> {
    let candidates: Vec<Sent> = match (&copy.report_for, &report.original_message_id) {
        (Some(recipient_id), _) => conn
            .prepare_cached(sql::SENT_RECIPIENT)?
            .query_map(params![recipient_id, copy.account_id], |r| {
                rows::sent_recipient(r)
            })?
            .collect::<rusqlite::Result<_>>()?,
        // Reports crabmail wrote itself (and local mail) never act: only another server's.
        (None, Some(header_id)) if copy.from_network => conn
            .prepare_cached(sql::SENT_BY_HEADER_ID)?
            .query_map(params![copy.inbox_id, header_id], |r| {
                rows::sent_recipient(r)
            })?
            .collect::<rusqlite::Result<_>>()?,
        _ => Vec::new(),
    };
    let actions = act::decide(report, &candidates, copy.report_for.is_some());
    let linked = act::linked(copy.report_for.as_deref(), &actions);
    conn.prepare_cached(sql::SET_REPORT)?.execute(params![
        report.kind.as_str(),
        linked,
        copy.message_id
    ])?;
    for action in &actions {
        let attempt = action.attempt(report, &copy.message_id, now);
        if action.change == act::Change::LateBounce {
            let changed = conn.prepare_cached(sql::LATE_BOUNCE)?.execute(params![
                attempt.code,
                attempt.enhanced,
                attempt.text,
                now.0,
                action.sent.recipient_id
            ])?;
            if changed == 0 {
                continue;
            }
        }
        conn.prepare_cached(sql::INSERT_ATTEMPT)?.execute(params![
            action.sent.recipient_id,
            attempt.at.0,
            attempt.host,
            attempt.code,
            attempt.enhanced,
            attempt.text,
            attempt.tls
        ])?;
        if let Some(s) = action.suppression(report, now) {
            conn.prepare_cached(sql::INSERT_SUPPRESSION)?
                .execute(params![s.account_id, s.address, s.reason, s.created_at.0])?;
        }
        if let Some(event) = action.event(report, &copy.message_id) {
            completed.wakes.push(insert_event(conn, &event, now)?);
            let sender = (action.sent.account_id.clone(), action.sent.inbox_id.clone());
            if !completed.reported_senders.contains(&sender) {
                completed.reported_senders.push(sender);
            }
        }
    }
    Ok(())
}
