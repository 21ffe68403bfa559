//! SQL both backends run as written: SQLite and PostgreSQL read `$n` parameters alike
//! (SQLite numbers them by first appearance, so each statement uses them in order).

/// The columns `MessageRecord` is read from.
macro_rules! message_columns {
    () => {
        "id, inbox_id, account_id, seq, received_at, size, return_path, recipient, remote_ip, helo, \
         tls, summary, parsed, auth, quarantined, report_kind, report_for, \
         (SELECT thread_id FROM thread_members t WHERE t.message_id = messages.id) AS thread_id, \
         (SELECT r.message_id FROM recipients r WHERE r.id = messages.report_for) AS report_message"
    };
}

/// The columns `DomainRecord` is read from.
macro_rules! domain_columns {
    () => {
        "id, account_id, name, created_at, verified_at"
    };
}

pub const LIST_MESSAGES: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE inbox_id = $1 AND account_id = $2 AND seq > $3 \
     AND (NOT quarantined OR $4) \
     AND (CAST($5 AS TEXT) IS NULL OR coalesce(report_kind, 'none') = $5 \
          OR ($5 = 'any' AND report_kind IS NOT NULL)) ORDER BY seq LIMIT $6"
);
pub const GET_MESSAGE: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE id = $1 AND account_id = $2 AND seq IS NOT NULL"
);
pub const SHARED_DOMAIN: &str = concat!(
    "SELECT ",
    domain_columns!(),
    " FROM domains WHERE account_id IS NULL AND name = $1"
);
pub const LIST_DOMAINS: &str = concat!(
    "SELECT ",
    domain_columns!(),
    " FROM domains WHERE account_id = $1 ORDER BY created_at, id"
);
pub const GET_DOMAIN: &str = concat!(
    "SELECT ",
    domain_columns!(),
    " FROM domains WHERE id = $1 AND account_id = $2"
);
/// An account's own verified domain wins over the shared one of the same name.
pub const HOSTED_DOMAIN: &str = concat!(
    "SELECT ",
    domain_columns!(),
    " FROM domains WHERE name = $1 AND verified_at IS NOT NULL ORDER BY account_id IS NULL DESC LIMIT 1"
);
/// A leased recipient with what delivery needs of its message (SQLite: one id per statement).
pub const CLAIMED: &str = "SELECT r.id, r.message_id, r.account_id, o.inbox_id, o.return_path, o.blob_id, \
     r.address, r.domain, r.attempts, r.queued_at FROM recipients r JOIN outbound o ON o.id = r.message_id \
     WHERE r.id = $1";

pub const THREAD_OF_HEADER_ID: &str =
    "SELECT thread_id FROM thread_members WHERE inbox_id = $1 AND header_id = $2 LIMIT 1";
pub const THREADS_BY_SUBJECT: &str = "SELECT thread_id, participants FROM thread_members WHERE inbox_id = $1 \
                 AND subject_key = $2 AND at >= $3 ORDER BY at DESC LIMIT 20";
pub const INSERT_DOMAIN: &str = "INSERT INTO domains (id, account_id, name, created_at, verified_at) VALUES ($1, $2, $3, $4, $5)";
pub const INSERT_DKIM_KEY: &str = "INSERT INTO dkim_keys (domain_id, selector, algorithm, private_key, public_key, created_at, retired_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub const DROP_ORPHAN_BLOB: &str = "DELETE FROM blobs WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM messages WHERE blob_id = $1) \
         AND NOT EXISTS (SELECT 1 FROM ingest_jobs WHERE blob_id = $1)";
pub const USE_INVITE: &str =
    "UPDATE invites SET used_by = $1, used_at = $2 WHERE hash = $3 AND used_by IS NULL";
pub const INSERT_ACCOUNT: &str = "INSERT INTO accounts (id, created_at) VALUES ($1, $2)";
pub const INSERT_INVITE: &str = "INSERT INTO invites (hash, created_at) VALUES ($1, $2)";
/// A disabled account's tokens are not found.
pub const FIND_TOKEN: &str = "SELECT t.id, t.account_id, t.inbox_id, t.name, t.created_at, t.scopes FROM tokens t \
                     JOIN accounts a ON a.id = t.account_id \
                     WHERE t.hash = $1 AND t.revoked_at IS NULL AND a.disabled_at IS NULL";
pub const LIST_TOKENS: &str = "SELECT id, account_id, inbox_id, name, created_at, scopes FROM tokens \
                 WHERE account_id = $1 AND revoked_at IS NULL ORDER BY created_at, id";
pub const REVOKE_TOKEN: &str =
    "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND account_id = $3 AND revoked_at IS NULL";
pub const INSERT_INBOX: &str = "INSERT INTO inboxes (id, account_id, address, display_name, created_at) \
                 VALUES ($1, $2, $3, $4, $5)";
pub const LIST_INBOXES: &str = "SELECT id, account_id, address, display_name, created_at, approval_required FROM inboxes \
                 WHERE account_id = $1 AND deleted_at IS NULL ORDER BY created_at, id";
pub const GET_INBOX: &str = "SELECT id, account_id, address, display_name, created_at, approval_required FROM inboxes \
                     WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL";
pub const MARK_INBOX_DELETED: &str =
    "UPDATE inboxes SET deleted_at = $1 WHERE id = $2 AND account_id = $3 AND deleted_at IS NULL";
pub const DELETE_INBOX_THREAD_MEMBERS: &str = "DELETE FROM thread_members WHERE inbox_id = $1";
pub const REVOKE_INBOX_TOKENS: &str =
    "UPDATE tokens SET revoked_at = $1 WHERE inbox_id = $2 AND revoked_at IS NULL";
pub const FIND_INBOX: &str = "SELECT id, account_id, approval_required FROM inboxes WHERE address = $1 AND deleted_at IS NULL";
pub const NEXT_INBOX_SEQ: &str =
    "UPDATE inboxes SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq";
pub const MAKE_MESSAGE_READABLE: &str = "UPDATE messages SET seq = $1, from_address = $2, subject = $3, summary = $4, \
                         parsed = $5 WHERE id = $6";
pub const DELETE_INGEST_JOB: &str = "DELETE FROM ingest_jobs WHERE blob_id = $1";
pub const GET_RAW: &str = "SELECT b.bytes FROM messages m JOIN blobs b ON b.id = m.blob_id \
                     WHERE m.id = $1 AND m.account_id = $2 AND m.seq IS NOT NULL";
pub const DELETE_MESSAGE: &str = "DELETE FROM messages WHERE id = $1 AND account_id = $2 AND seq IS NOT NULL \
                     RETURNING blob_id";
pub const DELETE_MESSAGE_THREAD_MEMBER: &str = "DELETE FROM thread_members WHERE message_id = $1";
pub const INBOX_CURSOR: &str = "SELECT last_seq FROM inboxes WHERE id = $1 AND account_id = $2";
pub const THREAD_MEMBERS: &str = "SELECT message_id, inbox_id, thread_id, direction, subject, participants, at \
                 FROM thread_members WHERE thread_id = $1 AND account_id = $2 ORDER BY at, message_id";
pub const INSERT_IDEMPOTENCY: &str = "INSERT INTO idempotency (account_id, key, request_hash, message_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5)";
pub const INSERT_BLOB: &str = "INSERT INTO blobs (id, size, bytes) VALUES ($1, $2, $3)";
pub const INSERT_OUTBOUND: &str = "INSERT INTO outbound (id, account_id, inbox_id, blob_id, return_path, created_at, size, \
                 source, summary, parsed, release_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
pub const INSERT_RECIPIENT: &str = "INSERT INTO recipients (id, message_id, account_id, address, domain, status, queued_at, \
                 next_attempt_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'queued', $6, $6, $6)";
pub const INSERT_HELD_RECIPIENT: &str = "INSERT INTO recipients (id, message_id, account_id, address, domain, status, queued_at, \
                 next_attempt_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'held', $6, NULL, $6)";
pub const FIND_IDEMPOTENCY: &str = "SELECT request_hash, message_id, created_at FROM idempotency WHERE account_id = $1 AND key = $2";
pub const EXPIRE_IDEMPOTENCY: &str =
    "DELETE FROM idempotency WHERE account_id = $1 AND key = $2 AND created_at < $3";
pub const LIST_SUPPRESSIONS: &str = "SELECT account_id, address, reason, created_at FROM suppressions \
                 WHERE account_id = $1 ORDER BY created_at, address";
pub const DELETE_SUPPRESSION: &str =
    "DELETE FROM suppressions WHERE account_id = $1 AND address = $2";
pub const LOAD_BLOB: &str = "SELECT bytes FROM blobs WHERE id = $1";
pub const RECORD_OUTCOME: &str = "UPDATE recipients SET status = $1, attempts = attempts + 1, next_attempt_at = $2, \
                         lease_until = NULL, last_code = $3, last_enhanced = $4, last_text = $5, updated_at = $6 \
                         WHERE id = $7 AND next_attempt_at IS NOT NULL";
pub const INSERT_ATTEMPT: &str = "INSERT INTO attempts (recipient_id, at, host, code, enhanced, text, tls) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub const INSERT_SUPPRESSION: &str = "INSERT INTO suppressions (account_id, address, reason, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (account_id, address) DO NOTHING";
pub const GET_OUTBOUND: &str = "SELECT id, account_id, inbox_id, return_path, created_at, size, summary, parsed, blob_id, \
                     (SELECT thread_id FROM thread_members t WHERE t.message_id = outbound.id), release_at \
                     FROM outbound WHERE id = $1 AND account_id = $2";
pub const OUTBOUND_RECIPIENTS: &str =
    "SELECT id, address, status, next_attempt_at FROM recipients WHERE message_id = $1 ORDER BY id";
pub const RECIPIENT_ATTEMPTS: &str =
    "SELECT at, host, code, enhanced, text, tls FROM attempts WHERE recipient_id = $1 ORDER BY id";
pub const LIST_EVENTS: &str = "SELECT seq, kind, message_id, inbox_id, recipient, detail, created_at FROM events \
                 WHERE account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";
pub const QUEUE_ENTRIES: &str = "SELECT r.message_id, r.account_id, o.return_path, r.address, r.status, r.attempts, \
                 r.next_attempt_at, r.last_text FROM recipients r JOIN outbound o ON o.id = r.message_id \
                 WHERE r.next_attempt_at IS NOT NULL ORDER BY r.next_attempt_at, r.id LIMIT $1";
pub const OUTBOUND_OWNER: &str = "SELECT account_id FROM outbound WHERE id = $1";
pub const RETRY_NOW: &str = "UPDATE recipients SET next_attempt_at = $1, updated_at = $1 \
                 WHERE message_id = $2 AND next_attempt_at IS NOT NULL";
pub const VERIFY_DOMAIN: &str =
    "UPDATE domains SET verified_at = $1 WHERE id = $2 AND account_id = $3 AND verified_at IS NULL";
pub const COUNT_DOMAIN_INBOXES: &str =
    "SELECT count(*) FROM inboxes WHERE account_id = $1 AND deleted_at IS NULL AND address LIKE $2";
pub const DELETE_DOMAIN_KEYS: &str = "DELETE FROM dkim_keys WHERE domain_id = $1";
pub const DELETE_DOMAIN: &str = "DELETE FROM domains WHERE id = $1";
pub const DKIM_KEYS: &str = "SELECT domain_id, selector, algorithm, private_key, public_key, created_at, retired_at \
                 FROM dkim_keys WHERE domain_id = $1 ORDER BY created_at DESC, selector";
pub const RETIRE_DKIM_KEYS: &str =
    "UPDATE dkim_keys SET retired_at = $1 WHERE domain_id = $2 AND retired_at IS NULL";
pub const INSERT_INBOUND: &str = "INSERT INTO messages (id, inbox_id, account_id, blob_id, received_at, size, \
         return_path, recipient, remote_ip, helo, tls, auth, quarantined, report_for) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
pub const NEXT_EVENT_SEQ: &str =
    "UPDATE accounts SET last_event = last_event + 1 WHERE id = $1 RETURNING last_event";
pub const INSERT_EVENT: &str = "INSERT INTO events (account_id, seq, kind, message_id, inbox_id, recipient, detail, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub const INSERT_TOKEN: &str = "INSERT INTO tokens (id, account_id, hash, inbox_id, name, created_at, scopes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)";
/// A message's place in a thread; a message already placed keeps its place.
pub const INSERT_THREAD_MEMBER: &str = "INSERT INTO thread_members (message_id, account_id, inbox_id, \
     thread_id, direction, header_id, subject, subject_key, participants, at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (message_id) DO NOTHING";

/// The copies of a blob not yet readable, with their inbox's address (`rows::unread_copy`).
macro_rules! unread_copies {
    () => {
        "SELECT m.id, m.inbox_id, m.account_id, m.received_at, i.address, m.report_for, m.remote_ip FROM messages m \
         JOIN inboxes i ON i.id = m.inbox_id WHERE m.blob_id = $1 AND m.seq IS NULL ORDER BY m.id"
    };
}

pub const UNREAD_COPIES: &str = unread_copies!();
/// PostgreSQL: locked, so two nodes completing one blob give each copy one sequence number.
pub const UNREAD_COPIES_LOCKED: &str = concat!(unread_copies!(), " FOR UPDATE OF m");

// Sending quotas (store/quotas.rs).
pub const QUOTA_COUNTS: &str = "SELECT scope, step, bucket, messages, recipients FROM send_ledger \
                 WHERE scope IN ($1, $2, $3) AND bucket >= $4";
/// When a custom sending domain was verified: its warm-up starts there (the shared domain, which
/// no account owns, has none).
pub const DOMAIN_VERIFIED: &str = "SELECT verified_at FROM domains \
                 WHERE name = $1 AND verified_at IS NOT NULL AND account_id IS NOT NULL";
pub const QUOTA_COUNT_ONE: &str = "SELECT scope, step, bucket, messages, recipients FROM send_ledger \
                 WHERE scope = $1 AND bucket >= $2";
/// One message released at a moment, counted in its second and its minute. (SQLite numbers
/// `$n` parameters in order of appearance, so they appear in order.)
pub const QUOTA_ADD: &str = "INSERT INTO send_ledger (scope, step, bucket, messages, recipients) \
                 VALUES ($1, 1000, $2, 1, $3), ($1, 60000, $4, 1, $3) ON CONFLICT (scope, step, bucket) \
                 DO UPDATE SET messages = send_ledger.messages + 1, recipients = send_ledger.recipients + excluded.recipients";
pub const QUOTA_PRUNE: &str = "DELETE FROM send_ledger WHERE scope = $1 AND bucket < $2";
pub const SEND_LIMITS_OF_TWO: &str =
    "SELECT scope, limits FROM send_limits WHERE scope IN ($1, $2) AND account_id = $3";
pub const SEND_LIMITS: &str = "SELECT limits FROM send_limits WHERE scope = $1 AND account_id = $2";
pub const SET_SEND_LIMITS: &str = "INSERT INTO send_limits (scope, account_id, limits, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (scope) DO UPDATE SET limits = excluded.limits, updated_at = excluded.updated_at";
pub const HELD_IN_INBOX: &str = "SELECT count(*), min(release_at) FROM outbound WHERE inbox_id = $1 AND account_id = $2 AND release_at > $3";
pub const HELD_IN_ACCOUNT: &str =
    "SELECT count(*), min(release_at) FROM outbound WHERE account_id = $1 AND release_at > $2";

// Circuit breakers (store/breakers.rs).
pub const BREAKER_COUNTS_FROM: &str = "SELECT counts_from FROM send_breakers WHERE scope = $1";
pub const FINAL_RECIPIENTS_OF_INBOX: &str = "SELECT count(*), \
                 COALESCE(sum(CASE WHEN r.status = 'bounced' AND r.last_enhanced LIKE '5.1.%' THEN 1 ELSE 0 END), 0) \
                 FROM outbound o JOIN recipients r ON r.message_id = o.id \
                 WHERE o.inbox_id = $1 AND o.release_at > $2 AND r.status IN ('delivered', 'bounced', 'expired')";
pub const FINAL_RECIPIENTS_OF_ACCOUNT: &str = "SELECT count(*), \
                 COALESCE(sum(CASE WHEN r.status = 'bounced' AND r.last_enhanced LIKE '5.1.%' THEN 1 ELSE 0 END), 0) \
                 FROM outbound o JOIN recipients r ON r.message_id = o.id \
                 WHERE o.account_id = $1 AND o.release_at > $2 AND r.status IN ('delivered', 'bounced', 'expired')";
pub const ATTEMPTS_OF_INBOX: &str = "SELECT count(*), \
                 COALESCE(sum(CASE WHEN a.code BETWEEN 400 AND 499 OR (a.code IS NULL AND a.enhanced LIKE '4.%') THEN 1 ELSE 0 END), 0) \
                 FROM outbound o JOIN recipients r ON r.message_id = o.id JOIN attempts a ON a.recipient_id = r.id \
                 WHERE o.inbox_id = $1 AND o.release_at > $2 AND a.at > $3";
pub const ATTEMPTS_OF_ACCOUNT: &str = "SELECT count(*), \
                 COALESCE(sum(CASE WHEN a.code BETWEEN 400 AND 499 OR (a.code IS NULL AND a.enhanced LIKE '4.%') THEN 1 ELSE 0 END), 0) \
                 FROM outbound o JOIN recipients r ON r.message_id = o.id JOIN attempts a ON a.recipient_id = r.id \
                 WHERE o.account_id = $1 AND o.release_at > $2 AND a.at > $3";
/// Pauses a scope not paused already (one row changed: it is newly paused).
pub const PAUSE: &str = "INSERT INTO send_breakers (scope, account_id, paused_at, reason, metrics) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (scope) DO UPDATE SET paused_at = excluded.paused_at, reason = excluded.reason, \
                 metrics = excluded.metrics WHERE send_breakers.paused_at IS NULL";
pub const RESUME: &str = "UPDATE send_breakers SET paused_at = NULL, reason = NULL, metrics = NULL, counts_from = $1 \
                 WHERE scope = $2 AND paused_at IS NOT NULL";
pub const PAUSES_OF_ACCOUNT: &str = "SELECT scope, account_id, paused_at, reason, metrics FROM send_breakers \
                 WHERE account_id = $1 AND paused_at IS NOT NULL ORDER BY scope";
pub const PAUSE_OF_TWO: &str = "SELECT scope, account_id, paused_at, reason, metrics FROM send_breakers \
                 WHERE scope IN ($1, $2) AND paused_at IS NOT NULL ORDER BY scope LIMIT 1";

// Approvals (store/approvals.rs).
pub const HELD_MESSAGES: &str = "SELECT o.id FROM outbound o WHERE o.account_id = $1 AND EXISTS \
                 (SELECT 1 FROM recipients r WHERE r.message_id = o.id AND r.status = 'held') \
                 ORDER BY o.created_at, o.id LIMIT $2";
pub const HELD_OF_MESSAGE: &str = "SELECT o.inbox_id, count(*), o.return_path FROM outbound o \
                 JOIN recipients r ON r.message_id = o.id \
                 WHERE o.id = $1 AND o.account_id = $2 AND r.status = 'held' GROUP BY o.inbox_id, o.return_path";
pub const RELEASE_HELD: &str = "UPDATE recipients SET status = 'queued', next_attempt_at = $1, queued_at = $1, \
                 updated_at = $2 WHERE message_id = $3 AND status = 'held'";
pub const SET_RELEASE: &str = "UPDATE outbound SET release_at = $1 WHERE id = $2";
pub const REJECT_HELD: &str = "UPDATE recipients SET status = 'cancelled', next_attempt_at = NULL, updated_at = $1 \
                 WHERE message_id = $2 AND account_id = $3 AND status = 'held'";
pub const SET_APPROVAL_REQUIRED: &str = "UPDATE inboxes SET approval_required = $1 \
                 WHERE id = $2 AND account_id = $3 AND deleted_at IS NULL";

// Allow and block lists (store/lists.rs).
pub const INSERT_LIST_ENTRY: &str = "INSERT INTO list_entries (id, account_id, scope, direction, action, pattern, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub const LIST_ENTRIES: &str = "SELECT id, account_id, scope, direction, action, pattern, created_at FROM list_entries \
                 WHERE account_id = $1 ORDER BY created_at, id";
pub const DELETE_LIST_ENTRY: &str = "DELETE FROM list_entries WHERE account_id = $1 AND id = $2";

/// The columns `WebhookRecord` is read from.
macro_rules! webhook_columns {
    () => {
        "id, account_id, url, secret, previous_secret, previous_until, event_types, inbox_id, \
         status, disabled_reason, cursor, attempt, next_attempt_at, created_at"
    };
}

pub const INSERT_WEBHOOK: &str = concat!(
    "INSERT INTO webhooks (id, account_id, url, secret, event_types, inbox_id, status, cursor, \
     attempt, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'active', \
     (SELECT last_event FROM accounts WHERE id = $2), 0, $7, $8) RETURNING ",
    webhook_columns!()
);
pub const LIST_WEBHOOKS: &str = concat!(
    "SELECT ",
    webhook_columns!(),
    " FROM webhooks WHERE account_id = $1 ORDER BY created_at, id"
);
pub const GET_WEBHOOK: &str = concat!(
    "SELECT ",
    webhook_columns!(),
    " FROM webhooks WHERE account_id = $1 AND id = $2"
);
pub const DELETE_WEBHOOK: &str = "DELETE FROM webhooks WHERE account_id = $1 AND id = $2";
pub const DELETE_WEBHOOK_LOG: &str = "DELETE FROM webhook_deliveries WHERE webhook_id = $1";
pub const ROTATE_WEBHOOK: &str = concat!(
    "UPDATE webhooks SET previous_secret = secret, previous_until = $1, secret = $2 \
     WHERE account_id = $3 AND id = $4 RETURNING ",
    webhook_columns!()
);
pub const REPLAY_WEBHOOK: &str = concat!(
    "UPDATE webhooks SET cursor = $1, attempt = 0, next_attempt_at = $2, status = 'active', \
     disabled_reason = NULL, lease = NULL, lease_until = 0 \
     WHERE account_id = $3 AND id = $4 RETURNING ",
    webhook_columns!()
);
/// The outer `lease_until` test is checked again on the locked row by PostgreSQL, so two nodes
/// claiming at once never both get an endpoint.
pub const CLAIM_WEBHOOKS: &str = concat!(
    "UPDATE webhooks SET lease = $1, lease_node = $2, lease_until = $3 WHERE lease_until <= $4 \
     AND id IN (SELECT w.id FROM webhooks w JOIN accounts a ON a.id = w.account_id \
      WHERE w.status = 'active' AND w.next_attempt_at <= $4 AND w.lease_until <= $4 \
      AND a.last_event > w.cursor ORDER BY w.next_attempt_at LIMIT $5) RETURNING ",
    webhook_columns!()
);
/// Whether any endpoint is due: read before claiming, so an idle dispatcher never writes.
pub const WEBHOOKS_DUE: &str = "SELECT 1 FROM webhooks w JOIN accounts a ON a.id = w.account_id \
     WHERE w.status = 'active' AND w.next_attempt_at <= $1 AND w.lease_until <= $1 \
     AND a.last_event > w.cursor LIMIT 1";
pub const WEBHOOK_PROGRESS: &str = "UPDATE webhooks SET cursor = $1, attempt = $2, \
     next_attempt_at = $3, status = $4, disabled_reason = $5 WHERE id = $6 AND lease = $7";
pub const RELEASE_WEBHOOK: &str =
    "UPDATE webhooks SET lease = NULL, lease_until = 0 WHERE id = $1 AND lease = $2";
/// At start: the endpoints this node was delivering for when it stopped are free at once.
pub const RELEASE_NODE_WEBHOOKS: &str =
    "UPDATE webhooks SET lease = NULL, lease_until = 0 WHERE lease_node = $1";
pub const INSERT_WEBHOOK_DELIVERY: &str = "INSERT INTO webhook_deliveries (id, webhook_id, \
     event_seq, attempt, at, code, error, outcome, duration_ms) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub const PRUNE_WEBHOOK_LOG: &str =
    "DELETE FROM webhook_deliveries WHERE webhook_id = $1 AND at < $2";
pub const WEBHOOK_DELIVERIES: &str = "SELECT d.id, d.webhook_id, d.event_seq, d.attempt, d.at, \
     d.code, d.error, d.outcome, d.duration_ms FROM webhook_deliveries d \
     JOIN webhooks w ON w.id = d.webhook_id WHERE w.account_id = $1 AND d.webhook_id = $2 \
     ORDER BY d.at DESC, d.id DESC LIMIT $3";

pub const INSERT_UPLOAD: &str = "INSERT INTO uploads (id, account_id, filename, content_type, \
     size, sha256, data, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub const UPLOAD_USAGE: &str = "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM uploads \
     WHERE account_id = $1 AND expires_at > $2";
pub const PRUNE_UPLOADS: &str = "DELETE FROM uploads WHERE expires_at <= $1";
pub const GET_UPLOAD: &str = "SELECT id, account_id, filename, content_type, sha256, data, \
     created_at, expires_at FROM uploads WHERE account_id = $1 AND id = $2 AND expires_at > $3";

pub const INBOX_CREATED: &str = "SELECT created_at FROM inboxes WHERE id = $1";

// Reports from other servers about mail we sent (store/inbound.rs, `bounce::act`).
/// The inbox that sent the message a signed return path's recipient belongs to.
pub const RETURN_PATH_OWNER: &str = "SELECT i.id, i.account_id, i.approval_required FROM recipients r \
     JOIN outbound o ON o.id = r.message_id JOIN inboxes i ON i.id = o.inbox_id \
     WHERE r.id = $1 AND i.deleted_at IS NULL";
/// One recipient of the account's sent mail (`rows::sent_recipient`).
pub const SENT_RECIPIENT: &str = "SELECT r.id, r.message_id, o.inbox_id, o.account_id, r.address, r.status \
     FROM recipients r JOIN outbound o ON o.id = r.message_id WHERE r.id = $1 AND o.account_id = $2";
/// The recipients of the message an inbox sent with this Message-ID (`rows::sent_recipient`).
pub const SENT_BY_HEADER_ID: &str = "SELECT r.id, r.message_id, o.inbox_id, o.account_id, r.address, r.status \
     FROM thread_members t JOIN outbound o ON o.id = t.message_id JOIN recipients r ON r.message_id = o.id \
     WHERE t.inbox_id = $1 AND t.header_id = $2 AND t.direction = 'outbound' ORDER BY r.id LIMIT 100";
/// A delivered recipient a report says failed after all.
pub const LATE_BOUNCE: &str = "UPDATE recipients SET status = 'bounced', last_code = $1, last_enhanced = $2, \
     last_text = $3, updated_at = $4 WHERE id = $5 AND status = 'delivered'";
pub const SET_REPORT: &str = "UPDATE messages SET report_kind = $1, report_for = $2 WHERE id = $3";
pub const INSERT_SECRET: &str = "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) \
     ON CONFLICT (name) DO NOTHING";
pub const GET_SECRET: &str = "SELECT value FROM secrets WHERE name = $1";

// Metrics (store/queue.rs `backlog`): what waits, and since when.
pub const QUEUE_BACKLOG: &str =
    "SELECT count(*), min(queued_at) FROM recipients WHERE next_attempt_at IS NOT NULL";
pub const INGEST_BACKLOG: &str = "SELECT count(*), min(created_at) FROM ingest_jobs";

// Operator commands (store/operator.rs).
/// The columns `AccountUsage` is read from.
macro_rules! account_usage_columns {
    () => {
        "SELECT a.id, a.created_at, a.disabled_at, \
         (SELECT count(*) FROM inboxes i WHERE i.account_id = a.id AND i.deleted_at IS NULL), \
         (SELECT count(*) FROM messages m WHERE m.account_id = a.id AND m.seq IS NOT NULL), \
         (SELECT count(*) FROM outbound o WHERE o.account_id = a.id), \
         (SELECT count(*) FROM tokens t WHERE t.account_id = a.id AND t.revoked_at IS NULL) \
         FROM accounts a "
    };
}
pub const ACCOUNT_USAGE: &str = concat!(
    account_usage_columns!(),
    "ORDER BY a.created_at, a.id LIMIT $1"
);
pub const ONE_ACCOUNT_USAGE: &str = concat!(account_usage_columns!(), "WHERE a.id = $1");
pub const SET_ACCOUNT_DISABLED: &str = "UPDATE accounts SET disabled_at = $1 WHERE id = $2";
pub const REVOKE_ACCOUNT_TOKENS: &str =
    "UPDATE tokens SET revoked_at = $1 WHERE account_id = $2 AND revoked_at IS NULL";

pub const RECENT_ATTEMPTS: &str = "SELECT a.at, a.host, a.code, a.enhanced, a.text, a.tls, \
     r.message_id, r.account_id, r.address FROM attempts a JOIN recipients r ON r.id = a.recipient_id \
     ORDER BY a.id DESC LIMIT $1";
pub const ALL_SUPPRESSIONS: &str = "SELECT account_id, address, reason, created_at FROM suppressions \
     ORDER BY created_at DESC LIMIT $1";
pub const RECENT_RISK: &str = "SELECT id, account_id, received_at, subject, summary FROM messages \
     WHERE seq IS NOT NULL ORDER BY received_at DESC LIMIT $1";

pub const ALL_DOMAINS: &str = concat!(
    "SELECT ",
    domain_columns!(),
    " FROM domains ORDER BY created_at, id LIMIT $1"
);

pub const ALL_INBOXES: &str = "SELECT id, account_id, address, display_name, created_at, approval_required \
     FROM inboxes WHERE deleted_at IS NULL ORDER BY account_id, created_at, id LIMIT $1";

#[cfg(test)]
mod tests {
    /// SQLite numbers `$n` parameters in the order they first appear, whatever `n` says, so a
    /// statement both backends run must name them in order (`$1` first, then `$2`, ...).
    #[test]
    fn parameters_appear_in_order() {
        let source = include_str!("sql.rs");
        let source = &source[..source.find("#[cfg(test)]").unwrap_or(source.len())];
        for statement in source.split("pub const ").skip(1) {
            let name = statement.split(':').next().unwrap_or_default();
            let mut seen: Vec<u32> = Vec::new();
            let mut rest = statement;
            while let Some(at) = rest.find('$') {
                rest = &rest[at + 1..];
                let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                if let Ok(n) = digits.parse::<u32>()
                    && !seen.contains(&n)
                {
                    seen.push(n);
                }
            }
            let expected: Vec<u32> = (1..=seen.len() as u32).collect();
            assert_eq!(seen, expected, "{name}: parameters out of order");
        }
    }
}
