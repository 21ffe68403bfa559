-- Webhooks (webhook/): endpoints an account registers, each with its own cursor into the
-- account's event log. The event log is the durable outbox: an event is written in the
-- transaction of the change it reports, and an endpoint's cursor only moves past an event once
-- it was delivered, filtered out, or given up on, so every event reaches every endpoint at least
-- once and in order.
CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL,
    url             TEXT NOT NULL,
    -- whsec_<base64>: the signing key; the previous one still signs until previous_until.
    secret          TEXT NOT NULL,
    previous_secret TEXT,
    previous_until  BIGINT,
    -- Space-separated event types; NULL: every type. inbox_id NULL: every inbox.
    event_types     TEXT,
    inbox_id        TEXT,
    -- active | disabled (disabled_reason says why: the endpoint answered 410, or an operator).
    status          TEXT NOT NULL,
    disabled_reason TEXT,
    -- The last event seq settled; failed attempts at the next one; when to try it.
    cursor          BIGINT NOT NULL,
    attempt         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- The claim delivering for this endpoint now (a random id), its node, and until when.
    lease           TEXT,
    lease_node      TEXT,
    lease_until     BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL
);
CREATE INDEX webhooks_account ON webhooks(account_id);
CREATE INDEX webhooks_due ON webhooks(next_attempt_at) WHERE status = 'active';

-- Every attempt, for GET /v1/webhooks/{id}/deliveries (kept 7 days).
CREATE TABLE webhook_deliveries (
    id          TEXT PRIMARY KEY,
    webhook_id  TEXT NOT NULL,
    event_seq   BIGINT NOT NULL,
    attempt     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    -- The endpoint's HTTP status, when it answered; else what went wrong.
    code        BIGINT,
    error       TEXT,
    -- delivered | retrying | failed (gave up after the last retry) | disabled (410)
    outcome     TEXT NOT NULL,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries(webhook_id, at);
