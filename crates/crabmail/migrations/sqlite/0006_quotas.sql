-- Sending quotas (outbound/quota.rs). A message leaves at its release_at: when it was sent, or
-- later when a quota held it. send_ledger counts what each inbox and account sent (or will send)
-- per step of time (a second, step 1000; a minute, step 60000); scope is the inbox's or the
-- account's id. send_limits holds what an account set for itself or an inbox, over the defaults.
ALTER TABLE outbound ADD COLUMN release_at INTEGER NOT NULL DEFAULT 0;
UPDATE outbound SET release_at = created_at;
CREATE INDEX outbound_inbox_release ON outbound(inbox_id, release_at);
CREATE INDEX outbound_account_release ON outbound(account_id, release_at);

CREATE TABLE send_ledger (
    scope       TEXT NOT NULL,
    step        INTEGER NOT NULL,
    bucket      INTEGER NOT NULL,
    messages    INTEGER NOT NULL,
    recipients  INTEGER NOT NULL,
    PRIMARY KEY (scope, step, bucket)
);

CREATE TABLE send_limits (
    scope       TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    limits      TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Circuit breakers (outbound/breaker.rs): a scope (inbox or account id) whose sending is paused,
-- why, since when and on which figures; counts_from restarts the figures after a resume.
CREATE TABLE send_breakers (
    scope        TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL,
    paused_at    INTEGER,
    reason       TEXT,
    metrics      TEXT,
    counts_from  INTEGER NOT NULL DEFAULT 0
);
