-- Threads that lead to a conversation kept under another thread: a group's old chat id after it
-- became a supergroup (Telegram `migrate_to_chat_id`). Looked up when no conversation holds the
-- thread itself.
CREATE TABLE thread_aliases (
    tenant_id        TEXT NOT NULL,
    channel_id       TEXT NOT NULL,
    thread_id        TEXT NOT NULL,
    conversation_id  TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, channel_id, thread_id)
);
CREATE INDEX thread_aliases_by_conversation ON thread_aliases (conversation_id);
