-- Conversations: one row per message (received or sent) with the keys that place it in a thread.
-- participants: space-separated addresses, lower-cased, without the inbox's own address.
CREATE TABLE thread_members (
    message_id    TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL,
    inbox_id      TEXT NOT NULL,
    thread_id     TEXT NOT NULL,
    direction     TEXT NOT NULL,
    header_id     TEXT,
    subject       TEXT,
    subject_key   TEXT NOT NULL,
    participants  TEXT NOT NULL,
    at            INTEGER NOT NULL
);
CREATE INDEX thread_members_header ON thread_members(inbox_id, header_id);
CREATE INDEX thread_members_subject ON thread_members(inbox_id, subject_key, at);
CREATE INDEX thread_members_thread ON thread_members(thread_id, at);
CREATE INDEX thread_members_inbox ON thread_members(inbox_id, at);
