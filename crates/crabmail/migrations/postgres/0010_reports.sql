-- Reports from other servers about mail we sent (bounces, complaints, auto-replies).
-- report_kind: bounce, complaint or auto_reply, set when ingest reads the copy (the list filters
-- on it). report_for: the recipient (recipients.id) the report is about, known at RCPT time for
-- mail to a signed return path and found at ingest otherwise.
ALTER TABLE messages ADD COLUMN report_kind TEXT;
ALTER TABLE messages ADD COLUMN report_for TEXT;

-- Keys this installation makes once and every node shares (the return-path key).
CREATE TABLE secrets (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
