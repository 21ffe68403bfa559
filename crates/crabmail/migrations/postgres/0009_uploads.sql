-- Uploads (POST /v1/uploads): bytes an account sends ahead, to attach by id (an MCP client over
-- HTTP passes an id, never base64 inside a tool call). Kept 24 hours.
CREATE TABLE uploads (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL,
    filename     TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    data         BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX uploads_expiry ON uploads(expires_at);
