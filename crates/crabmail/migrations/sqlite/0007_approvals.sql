-- Approval mode. A token's scopes (space-separated: send draft read admin; NULL: all four, as
-- every token made before scopes existed). An inbox whose mail to send waits for approval.
-- A recipient 'held' waits for approval (next_attempt_at NULL, so the queue never claims it).
ALTER TABLE tokens ADD COLUMN scopes TEXT;
ALTER TABLE inboxes ADD COLUMN approval_required INTEGER NOT NULL DEFAULT 0;
CREATE INDEX recipients_held ON recipients(account_id) WHERE status = 'held';
