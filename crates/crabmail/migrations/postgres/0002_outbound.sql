-- Sending: messages submitted by accounts, one queue row per recipient, every attempt,
-- suppressions, idempotency keys, and the per-account event log.

-- A message an account sent. The blob is exactly what is delivered.
CREATE TABLE outbound (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts(id),
    inbox_id     TEXT NOT NULL,
    blob_id      TEXT NOT NULL REFERENCES blobs(id),
    return_path  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    size         BIGINT NOT NULL,
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
    attempts         BIGINT NOT NULL DEFAULT 0,
    queued_at        BIGINT NOT NULL,
    next_attempt_at  BIGINT,
    lease_until      BIGINT,
    last_code        BIGINT,
    last_enhanced    TEXT,
    last_text        TEXT,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX recipients_due ON recipients(next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX recipients_message ON recipients(message_id);

CREATE TABLE attempts (
    id            BIGSERIAL PRIMARY KEY,
    recipient_id  TEXT NOT NULL REFERENCES recipients(id),
    at            BIGINT NOT NULL,
    host          TEXT,
    code          BIGINT,
    enhanced      TEXT,
    text          TEXT NOT NULL,
    tls           TEXT
);
CREATE INDEX attempts_recipient ON attempts(recipient_id, id);

CREATE TABLE suppressions (
    account_id  TEXT NOT NULL,
    address     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, address)
);

CREATE TABLE idempotency (
    account_id    TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  BYTEA NOT NULL,
    message_id    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (account_id, key)
);

-- What happened to an account's mail, in order; written in the transaction of the change.
-- seq comes from accounts.last_event under the account row's lock, so it never skips.
CREATE TABLE events (
    account_id  TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    message_id  TEXT,
    inbox_id    TEXT,
    recipient   TEXT,
    detail      TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, seq)
);
ALTER TABLE accounts ADD COLUMN last_event BIGINT NOT NULL DEFAULT 0;
