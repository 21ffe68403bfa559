use super::*;
use crate::outbound::quota::{self, LimitOverrides};

#[async_trait]
impl Quotas for SqliteStore {
    async fn send_limits(&self, scope: QuotaScope<'_>) -> Result<LimitOverrides> {
        let (key, account_id) = (scope.key().to_owned(), scope.account_id().to_owned());
        self.read(move |conn| {
            let found = conn
                .prepare_cached(sql::SEND_LIMITS)?
                .query_row(params![key, account_id], |r| rows::json(r, 0))
                .optional()?;
            Ok(found.flatten().unwrap_or_default())
        })
        .await
    }

    async fn set_send_limits(
        &self,
        scope: QuotaScope<'_>,
        limits: LimitOverrides,
        now: Timestamp,
    ) -> Result<()> {
        let (key, account_id) = (scope.key().to_owned(), scope.account_id().to_owned());
        let limits = rows::json_text(&limits);
        self.write(move |conn| {
            exec(
                conn,
                sql::SET_SEND_LIMITS,
                params![key, account_id, limits, now.0],
            )?;
            Ok(())
        })
        .await
    }

    async fn quota_use(&self, scope: QuotaScope<'_>, now: Timestamp) -> Result<QuotaUse> {
        let (key, account_id) = (scope.key().to_owned(), scope.account_id().to_owned());
        let inbox = matches!(scope, QuotaScope::Inbox { .. });
        self.read(move |conn| {
            let buckets = conn
                .prepare_cached(sql::QUOTA_COUNT_ONE)?
                .query_map(params![key, now.0 - quota::HORIZON], |r| {
                    rows::quota_bucket(r)
                })?
                .map(|r| r.map(|(_, b)| b))
                .collect::<rusqlite::Result<_>>()?;
            let (held, next_release) = if inbox {
                conn.prepare_cached(sql::HELD_IN_INBOX)?
                    .query_row(params![key, account_id, now.0], |r| rows::held(r))?
            } else {
                conn.prepare_cached(sql::HELD_IN_ACCOUNT)?
                    .query_row(params![account_id, now.0], |r| rows::held(r))?
            };
            Ok(QuotaUse {
                buckets,
                held,
                next_release,
            })
        })
        .await
    }
}
