//! Row mapping both backends share: each record is read from a result row once, here, whatever
//! the driver. `Cells` is the little a mapper needs of a row (a typed column by index or name);
//! rusqlite's `Row` and sqlx's `PgRow` provide it.
//!
//! A stored value that does not parse (an unknown status, a count out of range) is an error, not a
//! default: it means the database holds something this version did not write.

use super::*;
use crate::ingest::thread::split_participants;
use sqlx::Postgres;
use sqlx::postgres::PgRow;

/// A column position or name, as both drivers understand it.
pub(super) trait Col:
    rusqlite::RowIndex + sqlx::ColumnIndex<PgRow> + Copy + std::fmt::Debug
{
}
impl Col for usize {}
impl Col for &str {}

/// A value both drivers can decode.
pub(super) trait Cell:
    rusqlite::types::FromSql + for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>
{
}
impl<T> Cell for T where
    T: rusqlite::types::FromSql + for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>
{
}

/// What a row mapper reads from a row.
pub(super) trait Cells {
    type Error;
    fn cell<T: Cell, C: Col>(&self, col: C) -> std::result::Result<T, Self::Error>;
    /// The error for a value that decoded but means nothing to us.
    fn invalid(&self, col: impl Col, what: String) -> Self::Error;
}

impl Cells for rusqlite::Row<'_> {
    type Error = rusqlite::Error;

    fn cell<T: Cell, C: Col>(&self, col: C) -> rusqlite::Result<T> {
        self.get(col)
    }

    fn invalid(&self, col: impl Col, what: String) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("column {col:?}: {what}").into(),
        )
    }
}

impl Cells for PgRow {
    type Error = sqlx::Error;

    fn cell<T: Cell, C: Col>(&self, col: C) -> std::result::Result<T, sqlx::Error> {
        sqlx::Row::try_get(self, col)
    }

    fn invalid(&self, col: impl Col, what: String) -> sqlx::Error {
        sqlx::Error::Decode(format!("column {col:?}: {what}").into())
    }
}

type Mapped<T, R> = std::result::Result<T, <R as Cells>::Error>;

fn ts<R: Cells>(r: &R, col: impl Col) -> Mapped<Timestamp, R> {
    Ok(Timestamp(r.cell(col)?))
}

fn opt_ts<R: Cells>(r: &R, col: impl Col) -> Mapped<Option<Timestamp>, R> {
    Ok(r.cell::<Option<i64>, _>(col)?.map(Timestamp))
}

fn status<R: Cells>(r: &R, col: impl Col) -> Mapped<Status, R> {
    let text: String = r.cell(col)?;
    Status::parse(&text).ok_or_else(|| r.invalid(col, format!("unknown status `{text}`")))
}

fn count<R: Cells>(r: &R, col: impl Col) -> Mapped<u32, R> {
    let n: i64 = r.cell(col)?;
    u32::try_from(n).map_err(|_| r.invalid(col, format!("count {n} out of range")))
}

/// A JSON column holding a typed value (None when NULL); JSON that does not parse is an error.
pub(super) fn json<R: Cells, T: serde::de::DeserializeOwned>(
    r: &R,
    col: impl Col,
) -> Mapped<Option<T>, R> {
    let Some(text) = r.cell::<Option<String>, _>(col)? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| r.invalid(col, format!("JSON: {e}")))
}

/// A JSON column kept as text until someone needs the value (NULL reads as `{}`).
pub(super) fn lazy_json<R: Cells, T>(r: &R, col: impl Col) -> Mapped<Json<T>, R> {
    let text: Option<String> = r.cell(col)?;
    Ok(Json::stored(text.unwrap_or_else(|| "{}".into())))
}

/// The text a JSON column stores for a typed value.
pub(super) fn to_json<T: serde::Serialize>(value: Option<&T>) -> Option<String> {
    value.map(json_text)
}

/// The text of a typed value in a JSON column (our types always serialise).
pub(super) fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

pub(super) fn token<R: Cells>(r: &R) -> Mapped<TokenRecord, R> {
    Ok(TokenRecord {
        id: r.cell("id")?,
        account_id: r.cell("account_id")?,
        inbox_id: r.cell("inbox_id")?,
        name: r.cell("name")?,
        created_at: ts(r, "created_at")?,
        scopes: r.cell("scopes")?,
    })
}

pub(super) fn inbox<R: Cells>(r: &R) -> Mapped<InboxRecord, R> {
    Ok(InboxRecord {
        id: r.cell("id")?,
        account_id: r.cell("account_id")?,
        address: r.cell("address")?,
        display_name: r.cell("display_name")?,
        created_at: ts(r, "created_at")?,
        approval_required: r.cell("approval_required")?,
    })
}

/// From `sql::LIST_MESSAGES` and `sql::GET_MESSAGE`.
pub(super) fn message<R: Cells>(r: &R) -> Mapped<MessageRecord, R> {
    Ok(MessageRecord {
        id: r.cell("id")?,
        inbox_id: r.cell("inbox_id")?,
        account_id: r.cell("account_id")?,
        seq: r.cell("seq")?,
        received_at: ts(r, "received_at")?,
        size: r.cell("size")?,
        envelope: Envelope {
            return_path: r.cell("return_path")?,
            remote_ip: r.cell("remote_ip")?,
            helo: r.cell("helo")?,
            tls: r.cell("tls")?,
        },
        recipient: r.cell("recipient")?,
        summary: json(r, "summary")?.unwrap_or_default(),
        parsed: lazy_json(r, "parsed")?,
        auth: json(r, "auth")?,
        quarantined: r.cell("quarantined")?,
        thread_id: r.cell("thread_id")?,
        report_kind: r.cell("report_kind")?,
        report_for: match (
            r.cell::<Option<String>, _>("report_for")?,
            r.cell::<Option<String>, _>("report_message")?,
        ) {
            (Some(recipient), Some(message)) => Some((recipient, message)),
            _ => None,
        },
    })
}

/// From `sql::THREAD_MEMBERS`.
pub(super) fn thread_member<R: Cells>(r: &R) -> Mapped<ThreadMemberRecord, R> {
    Ok(ThreadMemberRecord {
        message_id: r.cell(0)?,
        inbox_id: r.cell(1)?,
        thread_id: r.cell(2)?,
        direction: r.cell(3)?,
        subject: r.cell(4)?,
        participants: split_participants(&r.cell::<String, _>(5)?),
        at: ts(r, 6)?,
    })
}

/// From each backend's thread listing (they aggregate participants differently).
pub(super) fn thread<R: Cells>(r: &R) -> Mapped<ThreadRecord, R> {
    Ok(ThreadRecord {
        thread_id: r.cell(0)?,
        inbox_id: r.cell(1)?,
        message_count: r.cell(2)?,
        first_at: ts(r, 3)?,
        last_at: ts(r, 4)?,
        participants: split_participants(&r.cell::<Option<String>, _>(5)?.unwrap_or_default()),
        subject: r.cell(6)?,
    })
}

/// From `sql::LIST_SUPPRESSIONS`, `sql::ALL_SUPPRESSIONS` and the backends' lookups.
pub(super) fn suppression<R: Cells>(r: &R) -> Mapped<Suppression, R> {
    Ok(Suppression {
        account_id: r.cell(0)?,
        address: r.cell(1)?,
        reason: r.cell(2)?,
        created_at: ts(r, 3)?,
    })
}

/// From `sql::CLAIMED` (and PostgreSQL's many-at-once form of it).
pub(super) fn claimed<R: Cells>(r: &R) -> Mapped<Claimed, R> {
    Ok(Claimed {
        recipient_id: r.cell(0)?,
        message_id: r.cell(1)?,
        account_id: r.cell(2)?,
        inbox_id: r.cell(3)?,
        return_path: r.cell(4)?,
        blob_id: r.cell(5)?,
        address: r.cell(6)?,
        domain: r.cell(7)?,
        attempts: count(r, 8)?,
        queued_at: ts(r, 9)?,
    })
}

/// From `sql::QUEUE_ENTRIES`.
pub(super) fn queue_entry<R: Cells>(r: &R) -> Mapped<QueueEntry, R> {
    Ok(QueueEntry {
        message_id: r.cell(0)?,
        account_id: r.cell(1)?,
        return_path: r.cell(2)?,
        address: r.cell(3)?,
        status: status(r, 4)?,
        attempts: count(r, 5)?,
        next_attempt_at: opt_ts(r, 6)?,
        last_text: r.cell(7)?,
    })
}

/// From `sql::FIND_IDEMPOTENCY`.
pub(super) fn idempotency<R: Cells>(r: &R) -> Mapped<IdempotencyRecord, R> {
    Ok(IdempotencyRecord {
        request_hash: r.cell(0)?,
        message_id: r.cell(1)?,
        created_at: ts(r, 2)?,
    })
}

/// From `sql::GET_OUTBOUND`; the recipients are read separately.
pub(super) fn outbound<R: Cells>(r: &R) -> Mapped<OutboundRecord, R> {
    Ok(OutboundRecord {
        id: r.cell(0)?,
        account_id: r.cell(1)?,
        inbox_id: r.cell(2)?,
        return_path: r.cell(3)?,
        created_at: ts(r, 4)?,
        size: r.cell(5)?,
        summary: json(r, 6)?.unwrap_or_default(),
        parsed: lazy_json(r, 7)?,
        blob_id: r.cell(8)?,
        recipients: Vec::new(),
        thread_id: r.cell(9)?,
        release_at: ts(r, 10)?,
    })
}

/// From `sql::QUOTA_COUNTS`: a scope's count for one step of time.
pub(super) fn quota_bucket<R: Cells>(r: &R) -> Mapped<(String, crate::outbound::quota::Bucket), R> {
    Ok((
        r.cell(0)?,
        crate::outbound::quota::Bucket {
            step: r.cell(1)?,
            start: r.cell(2)?,
            messages: r.cell(3)?,
            recipients: r.cell(4)?,
        },
    ))
}

/// From `sql::SEND_LIMITS_OF_TWO`: what an account set for a scope.
pub(super) fn send_limits<R: Cells>(
    r: &R,
) -> Mapped<(String, crate::outbound::quota::LimitOverrides), R> {
    Ok((r.cell(0)?, json(r, 1)?.unwrap_or_default()))
}

/// From `sql::HELD_IN_INBOX` / `HELD_IN_ACCOUNT`: how many are held, and the first release.
pub(super) fn held<R: Cells>(r: &R) -> Mapped<(u64, Option<Timestamp>), R> {
    let count: i64 = r.cell(0)?;
    Ok((count.max(0) as u64, opt_ts(r, 1)?))
}

/// From `sql::OUTBOUND_RECIPIENTS`; the attempts are read separately.
pub(super) fn recipient<R: Cells>(r: &R) -> Mapped<RecipientRecord, R> {
    Ok(RecipientRecord {
        id: r.cell(0)?,
        address: r.cell(1)?,
        status: status(r, 2)?,
        attempts: Vec::new(),
        next_attempt_at: opt_ts(r, 3)?,
    })
}

/// From `sql::RECIPIENT_ATTEMPTS`.
pub(super) fn attempt<R: Cells>(r: &R) -> Mapped<AttemptRecord, R> {
    let code = r
        .cell::<Option<i64>, _>(2)?
        .map(|c| u16::try_from(c).map_err(|_| r.invalid(2, format!("reply code {c}"))))
        .transpose()?;
    Ok(AttemptRecord {
        at: ts(r, 0)?,
        host: r.cell(1)?,
        code,
        enhanced: r.cell(3)?,
        text: r.cell(4)?,
        tls: r.cell(5)?,
    })
}

/// From `sql::LIST_EVENTS`.
pub(super) fn event<R: Cells>(r: &R) -> Mapped<EventRecord, R> {
    Ok(EventRecord {
        seq: r.cell(0)?,
        kind: r.cell(1)?,
        message_id: r.cell(2)?,
        inbox_id: r.cell(3)?,
        recipient: r.cell(4)?,
        detail: json(r, 5)?,
        created_at: ts(r, 6)?,
    })
}

/// From the domain statements of `sql` (`domain_columns!`).
pub(super) fn domain<R: Cells>(r: &R) -> Mapped<DomainRecord, R> {
    Ok(DomainRecord {
        id: r.cell(0)?,
        account_id: r.cell(1)?,
        name: r.cell(2)?,
        created_at: ts(r, 3)?,
        verified_at: opt_ts(r, 4)?,
    })
}

/// A copy of a message waiting to become readable (`sql::UNREAD_COPIES`).
pub(super) struct UnreadCopy {
    pub message_id: String,
    pub inbox_id: String,
    pub account_id: String,
    pub received_at: Timestamp,
    /// The inbox's address: left out of the thread's participants.
    pub own_address: String,
    /// The recipient of ours a report to a signed return path is about.
    pub report_for: Option<String>,
    /// It came through the MX (not a local delivery or a report crabmail wrote itself): only
    /// then may it act on mail we sent.
    pub from_network: bool,
}

pub(super) fn unread_copy<R: Cells>(r: &R) -> Mapped<UnreadCopy, R> {
    Ok(UnreadCopy {
        message_id: r.cell(0)?,
        inbox_id: r.cell(1)?,
        account_id: r.cell(2)?,
        received_at: ts(r, 3)?,
        own_address: r.cell(4)?,
        report_for: r.cell(5)?,
        from_network: r.cell::<String, _>(6)? != crate::ingest::accept::LOCAL,
    })
}

/// From `sql::DKIM_KEYS`.
pub(super) fn dkim_key<R: Cells>(r: &R) -> Mapped<DkimKeyRecord, R> {
    Ok(DkimKeyRecord {
        domain_id: r.cell(0)?,
        selector: r.cell(1)?,
        algorithm: r.cell(2)?,
        private_key: r.cell(3)?,
        public_key: r.cell(4)?,
        created_at: ts(r, 5)?,
        retired_at: opt_ts(r, 6)?,
    })
}

/// From `sql::PAUSES_OF_ACCOUNT` / `PAUSE_OF_TWO`.
pub(super) fn pause<R: Cells>(r: &R) -> Mapped<Pause, R> {
    Ok(Pause {
        scope: r.cell(0)?,
        account_id: r.cell(1)?,
        since: ts(r, 2)?,
        reason: r.cell::<Option<String>, _>(3)?.unwrap_or_default(),
        metrics: json(r, 4)?,
    })
}

/// From the breaker figures' queries: (count, part).
pub(super) fn two_counts<R: Cells>(r: &R) -> Mapped<(u64, u64), R> {
    let whole: i64 = r.cell(0)?;
    let part: i64 = r.cell(1)?;
    Ok((whole.max(0) as u64, part.max(0) as u64))
}

/// From `sql::LIST_ENTRIES`.
pub(super) fn list_entry<R: Cells>(r: &R) -> Mapped<ListEntry, R> {
    Ok(ListEntry {
        id: r.cell(0)?,
        account_id: r.cell(1)?,
        scope: r.cell(2)?,
        direction: r.cell(3)?,
        action: r.cell(4)?,
        pattern: r.cell(5)?,
        created_at: ts(r, 6)?,
    })
}

pub(super) fn webhook<R: Cells>(r: &R) -> Mapped<WebhookRecord, R> {
    let types: Option<String> = r.cell(6)?;
    Ok(WebhookRecord {
        id: r.cell(0)?,
        account_id: r.cell(1)?,
        url: r.cell(2)?,
        secret: r.cell(3)?,
        previous_secret: r.cell(4)?,
        previous_until: opt_ts(r, 5)?,
        event_types: types
            .map(|t| t.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        inbox_id: r.cell(7)?,
        status: r.cell(8)?,
        disabled_reason: r.cell(9)?,
        cursor: r.cell(10)?,
        attempt: r.cell(11)?,
        next_attempt_at: ts(r, 12)?,
        created_at: ts(r, 13)?,
    })
}

pub(super) fn webhook_delivery<R: Cells>(r: &R) -> Mapped<WebhookDelivery, R> {
    Ok(WebhookDelivery {
        id: r.cell(0)?,
        webhook_id: r.cell(1)?,
        event_seq: r.cell(2)?,
        attempt: r.cell(3)?,
        at: ts(r, 4)?,
        code: r.cell(5)?,
        error: r.cell(6)?,
        outcome: r.cell(7)?,
        duration_ms: r.cell(8)?,
    })
}

pub(super) fn upload<R: Cells>(r: &R) -> Mapped<UploadRecord, R> {
    Ok(UploadRecord {
        id: r.cell(0)?,
        account_id: r.cell(1)?,
        filename: r.cell(2)?,
        content_type: r.cell(3)?,
        sha256: r.cell(4)?,
        data: r.cell(5)?,
        created_at: ts(r, 6)?,
        expires_at: ts(r, 7)?,
    })
}

/// Event types as stored: space-separated, NULL for every type.
pub(super) fn event_types_text(types: &[String]) -> Option<String> {
    (!types.is_empty()).then(|| types.join(" "))
}

/// From `sql::FIND_INBOX` and `sql::RETURN_PATH_OWNER`.
pub(super) fn inbox_target<R: Cells>(r: &R) -> Mapped<InboxTarget, R> {
    Ok(InboxTarget {
        inbox_id: r.cell(0)?,
        account_id: r.cell(1)?,
        approval_required: r.cell(2)?,
    })
}

/// From `sql::SENT_RECIPIENT` and `sql::SENT_BY_HEADER_ID`.
pub(super) fn sent_recipient<R: Cells>(r: &R) -> Mapped<crate::bounce::act::Sent, R> {
    Ok(crate::bounce::act::Sent {
        recipient_id: r.cell(0)?,
        message_id: r.cell(1)?,
        inbox_id: r.cell(2)?,
        account_id: r.cell(3)?,
        address: r.cell(4)?,
        status: status(r, 5)?,
    })
}

/// From `sql::ACCOUNT_USAGE`.
pub(super) fn account_usage<R: Cells>(r: &R) -> Mapped<AccountUsage, R> {
    Ok(AccountUsage {
        id: r.cell(0)?,
        created_at: ts(r, 1)?,
        disabled_at: opt_ts(r, 2)?,
        inboxes: r.cell(3)?,
        received: r.cell(4)?,
        sent: r.cell(5)?,
        tokens: r.cell(6)?,
    })
}

/// From `sql::RECENT_ATTEMPTS`.
pub(super) fn recent_attempt<R: Cells>(r: &R) -> Mapped<RecentAttempt, R> {
    Ok(RecentAttempt {
        attempt: AttemptRecord {
            at: ts(r, 0)?,
            host: r.cell(1)?,
            code: r
                .cell::<Option<i64>, _>(2)?
                .and_then(|c| u16::try_from(c).ok()),
            enhanced: r.cell(3)?,
            text: r.cell(4)?,
            tls: r.cell(5)?,
        },
        message_id: r.cell(6)?,
        account_id: r.cell(7)?,
        address: r.cell(8)?,
    })
}

/// From `sql::RECENT_RISK`.
pub(super) fn recent_risk<R: Cells>(r: &R) -> Mapped<RecentRisk, R> {
    let summary: Option<crabmail_api::SummaryContent> = json(r, 4)?;
    Ok(RecentRisk {
        message_id: r.cell(0)?,
        account_id: r.cell(1)?,
        received_at: ts(r, 2)?,
        subject: r.cell(3)?,
        security: summary.and_then(|s| s.security),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T>(
        select: &str,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let conn = rusqlite::Connection::open_in_memory().expect("sqlite in memory");
        conn.query_row(select, [], f)
    }

    #[test]
    fn a_stored_value_we_never_write_is_an_error_not_a_default() {
        assert_eq!(
            read("SELECT 'bounced'", |r| status(r, 0)).ok(),
            Some(Status::Bounced)
        );
        // An unknown status once read as "cancelled" and silently stopped deliveries.
        assert!(read("SELECT 'frozen'", |r| status(r, 0)).is_err());
        assert!(read("SELECT -1", |r| count(r, 0)).is_err());
        assert!(read("SELECT 70000", |r| count(r, 0)).is_ok());
        let attempt_row = "SELECT 1, 'mx', 70000, NULL, 'text', NULL";
        assert!(
            read(attempt_row, |r| attempt(r)).is_err(),
            "a reply code above 65535"
        );
        let attempt_row = "SELECT 1, 'mx', 250, '2.0.0', 'ok', NULL";
        assert_eq!(
            read(attempt_row, |r| attempt(r)).map(|a| a.code).ok(),
            Some(Some(250))
        );
    }
}
