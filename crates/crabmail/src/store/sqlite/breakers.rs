use super::*;
use crate::outbound::breaker::Metrics;

#[async_trait]
impl Breakers for SqliteStore {
    async fn breaker_metrics(
        &self,
        scope: QuotaScope<'_>,
        sent_from: Timestamp,
        attempts_from: Timestamp,
    ) -> Result<Metrics> {
        let key = scope.key().to_owned();
        let inbox = matches!(scope, QuotaScope::Inbox { .. });
        self.read(move |conn| {
            let resumed: i64 = conn
                .prepare_cached(sql::BREAKER_COUNTS_FROM)?
                .query_row(params![key], |r| r.get(0))
                .optional()?
                .unwrap_or(0);
            let sent_from = sent_from.0.max(resumed);
            let attempts_from = attempts_from.0.max(resumed);
            let (finals, attempts) = if inbox {
                (sql::FINAL_RECIPIENTS_OF_INBOX, sql::ATTEMPTS_OF_INBOX)
            } else {
                (sql::FINAL_RECIPIENTS_OF_ACCOUNT, sql::ATTEMPTS_OF_ACCOUNT)
            };
            let (recipients, hard_bounces) = conn
                .prepare_cached(finals)?
                .query_row(params![key, sent_from], |r| rows::two_counts(r))?;
            let (attempts, deferrals) = conn
                .prepare_cached(attempts)?
                .query_row(params![key, sent_from, attempts_from], |r| {
                    rows::two_counts(r)
                })?;
            Ok(Metrics {
                recipients,
                hard_bounces,
                attempts,
                deferrals,
            })
        })
        .await
    }

    async fn pause(
        &self,
        scope: QuotaScope<'_>,
        reason: &str,
        metrics: Option<serde_json::Value>,
        now: Timestamp,
    ) -> Result<Option<Wake>> {
        let (key, account_id) = (scope.key().to_owned(), scope.account_id().to_owned());
        let inbox_id = match scope {
            QuotaScope::Inbox { inbox_id, .. } => Some(inbox_id.to_owned()),
            QuotaScope::Account(_) => None,
        };
        let reason = reason.to_owned();
        self.write(move |conn| {
            let changed = exec(
                conn,
                sql::PAUSE,
                params![
                    key,
                    account_id,
                    now.0,
                    reason,
                    rows::to_json(metrics.as_ref())
                ],
            )?;
            if changed == 0 {
                return Ok(None);
            }
            let scope = scope_of(&account_id, inbox_id.as_deref());
            let event = pause_event(&scope, "sending.paused", Some(&reason), metrics.as_ref());
            Ok(Some(insert_event(conn, &event, now)?))
        })
        .await
    }

    async fn resume(&self, scope: QuotaScope<'_>, now: Timestamp) -> Result<Option<Wake>> {
        let (key, account_id) = (scope.key().to_owned(), scope.account_id().to_owned());
        let inbox_id = match scope {
            QuotaScope::Inbox { inbox_id, .. } => Some(inbox_id.to_owned()),
            QuotaScope::Account(_) => None,
        };
        self.write(move |conn| {
            if exec(conn, sql::RESUME, params![now.0, key])? == 0 {
                return Ok(None);
            }
            let scope = scope_of(&account_id, inbox_id.as_deref());
            let event = pause_event(&scope, "sending.resumed", None, None);
            Ok(Some(insert_event(conn, &event, now)?))
        })
        .await
    }

    async fn pauses(&self, account_id: &str) -> Result<Vec<Pause>> {
        let account_id = account_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql::PAUSES_OF_ACCOUNT)?;
            let rows = stmt.query_map(params![account_id], |r| rows::pause(r))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

fn scope_of<'a>(account_id: &'a str, inbox_id: Option<&'a str>) -> QuotaScope<'a> {
    match inbox_id {
        Some(inbox_id) => QuotaScope::Inbox {
            account_id,
            inbox_id,
        },
        None => QuotaScope::Account(account_id),
    }
}
