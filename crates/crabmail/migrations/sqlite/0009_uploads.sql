-- Uploads (POST /v1/uploads): bytes an account sends ahead, to attach by id (an MCP client over
-- HTTP passes an id, never base64 inside a tool call). Kept 24 hours.
CREATE TABLE uploads (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL,
    filename     TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    data         BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX uploads_expiry ON uploads(expires_at);
