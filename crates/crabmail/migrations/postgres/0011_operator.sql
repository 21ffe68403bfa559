-- An operator may disable an account: its tokens stop working (API, MCP and SMTP AUTH); mail to
-- its inboxes is still accepted, so nothing sent to it is lost while it is disabled.
ALTER TABLE accounts ADD COLUMN disabled_at BIGINT;
