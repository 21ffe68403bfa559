-- Approval mode, and allow and block lists. A token's scopes (space-separated: send draft read admin; NULL: all four, as
-- every token made before scopes existed). An inbox whose mail to send waits for approval.
-- A recipient 'held' waits for approval (next_attempt_at NULL, so the queue never claims it).
ALTER TABLE tokens ADD COLUMN scopes TEXT;
ALTER TABLE inboxes ADD COLUMN approval_required INTEGER NOT NULL DEFAULT 0;
CREATE INDEX recipients_held ON recipients(account_id) WHERE status = 'held';

-- Allow and block lists (account/lists.rs): per account (scope = account id) or per inbox
-- (scope = inbox id), for receiving (from) and sending (to); pattern is an address or a domain.
CREATE TABLE list_entries (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    scope       TEXT NOT NULL,
    direction   TEXT NOT NULL,
    action      TEXT NOT NULL,
    pattern     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (scope, direction, pattern)
);
CREATE INDEX list_entries_account ON list_entries(account_id);
