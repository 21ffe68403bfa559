-- Sending: messages submitted by accounts, one queue row per recipient, every attempt,
-- suppressions, idempotency keys, and the per-account event log.

-- A message an account sent. The blob is exactly what is delivered.
CREATE TABLE outbound (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts(id),
    inbox_id     TEXT NOT NULL,
    blob_id      TEXT NOT NULL REFERENCES blobs(id),
    return_path  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    source       TEXT NOT NULL,
    summary      TEXT NOT NULL,
    parsed       TEXT NOT NULL
);
CREATE INDEX outbound_account ON outbound(account_id, created_at);

-- The queue: queued -> deferred -> delivered | bounced | expired | cancelled.
-- next_attempt_at is NULL once the recipient is final.
CREATE TABLE recipients (
    id               TEXT PRIMARY KEY,
    message_id       TEXT NOT NULL REFERENCES outbound(id),
    account_id       TEXT NOT NULL,
    address          TEXT NOT NULL,
    domain           TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    queued_at        INTEGER NOT NULL,
    next_attempt_at  INTEGER,
    lease_until      INTEGER,
    last_code        INTEGER,
    last_enhanced    TEXT,
    last_text        TEXT,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX recipients_due ON recipients(next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX recipients_message ON recipients(message_id);

CREATE TABLE attempts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient_id  TEXT NOT NULL REFERENCES recipients(id),
    at            INTEGER NOT NULL,
    host          TEXT,
    code          INTEGER,
    enhanced      TEXT,
    text          TEXT NOT NULL,
    tls           TEXT
);
CREATE INDEX attempts_recipient ON attempts(recipient_id, id);

CREATE TABLE suppressions (
    account_id  TEXT NOT NULL,
    address     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, address)
);

CREATE TABLE idempotency (
    account_id    TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  BLOB NOT NULL,
    message_id    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (account_id, key)
);

-- What happened to an account's mail, in order; written in the transaction of the change.
-- seq comes from accounts.last_event under the account row's lock, so it never skips.
CREATE TABLE events (
    account_id  TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    message_id  TEXT,
    inbox_id    TEXT,
    recipient   TEXT,
    detail      TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, seq)
);
ALTER TABLE accounts ADD COLUMN last_event INTEGER NOT NULL DEFAULT 0;
