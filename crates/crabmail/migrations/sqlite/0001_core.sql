-- Accounts, tokens, invites, inboxes and inbound messages.
CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    hash        BLOB NOT NULL UNIQUE,
    inbox_id    TEXT,
    name        TEXT,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX tokens_account ON tokens(account_id);

CREATE TABLE invites (
    hash        BLOB PRIMARY KEY,
    created_at  INTEGER NOT NULL,
    used_by     TEXT,
    used_at     INTEGER
);

-- A deleted inbox keeps its row (deleted_at set) so its address is never handed out again.
CREATE TABLE inboxes (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    address       TEXT NOT NULL UNIQUE,
    display_name  TEXT,
    created_at    INTEGER NOT NULL,
    deleted_at    INTEGER,
    last_seq      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX inboxes_account ON inboxes(account_id);

-- Raw message bytes exactly as received, stored once however many inboxes get a copy.
CREATE TABLE blobs (
    id     TEXT PRIMARY KEY,
    size   INTEGER NOT NULL,
    bytes  BLOB NOT NULL
);

-- One row per inbox copy. seq is NULL until ingest has made the copy readable.
CREATE TABLE messages (
    id            TEXT PRIMARY KEY,
    inbox_id      TEXT NOT NULL REFERENCES inboxes(id),
    account_id    TEXT NOT NULL,
    blob_id       TEXT NOT NULL REFERENCES blobs(id),
    seq           INTEGER,
    received_at   INTEGER NOT NULL,
    size          INTEGER NOT NULL,
    return_path   TEXT NOT NULL,
    recipient     TEXT NOT NULL,
    remote_ip     TEXT NOT NULL,
    helo          TEXT NOT NULL,
    tls           INTEGER NOT NULL,
    from_address  TEXT,
    subject       TEXT,
    summary       TEXT,
    parsed        TEXT
);
CREATE UNIQUE INDEX messages_inbox_seq ON messages(inbox_id, seq);
CREATE INDEX messages_blob ON messages(blob_id);

-- Blobs whose copies still wait for parsing; the worker resumes these after a crash.
CREATE TABLE ingest_jobs (
    blob_id     TEXT PRIMARY KEY REFERENCES blobs(id),
    created_at  INTEGER NOT NULL
);
