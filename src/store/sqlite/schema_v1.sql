-- kamshub embedded store, schema version 1.
-- Times are Unix milliseconds (UTC). Secrets are sealed (see src/sealing.rs), never plaintext.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL UNIQUE,          -- lower-cased name: names are unique ignoring case
    created_at  INTEGER NOT NULL
);

CREATE TABLE users (
    id          TEXT PRIMARY KEY,              -- identity provider subject
    email       TEXT NOT NULL UNIQUE,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    role        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX users_by_tenant ON users (tenant_id, created_at);
CREATE INDEX users_by_role ON users (role);

CREATE TABLE channels (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    kind            TEXT NOT NULL,             -- telegram | messenger
    display_name    TEXT NOT NULL,
    external_id     TEXT NOT NULL,             -- bot username | page id
    credentials     TEXT NOT NULL,             -- sealed token
    webhook_secret  TEXT,                      -- sealed; telegram only
    is_active       INTEGER NOT NULL,
    health          TEXT NOT NULL DEFAULT 'ok', -- ok | needs_reauth
    auto_reply      TEXT,                      -- greeting for new conversations
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
-- One bot or page feeds at most one active channel.
CREATE UNIQUE INDEX channels_active_external ON channels (kind, external_id) WHERE is_active = 1;
CREATE INDEX channels_by_tenant ON channels (tenant_id, created_at);

CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    details     TEXT NOT NULL,                 -- JSON, never a secret
    at          INTEGER NOT NULL
);
CREATE INDEX audit_by_tenant ON audit_log (tenant_id, at);

-- Pipeline tables: their unique keys make every effect idempotent.
CREATE TABLE conversations (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL,
    channel_id          TEXT NOT NULL,
    external_thread_id  TEXT NOT NULL,
    title               TEXT,
    last_message_at     INTEGER,               -- provider time of the newest message
    last_order_key      TEXT,                  -- its order key: decides which message is newest
    preview             TEXT,
    message_count       INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (tenant_id, channel_id, external_thread_id)
);
CREATE INDEX conversations_by_recency ON conversations (tenant_id, last_message_at DESC);

CREATE TABLE messages (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL,
    channel_id           TEXT NOT NULL,
    conversation_id      TEXT NOT NULL,
    external_message_id  TEXT,                 -- telegram chatId:messageId | messenger mid; NULL until sent
    send_id              TEXT,                 -- outbound: our sendId
    direction            TEXT NOT NULL,        -- inbound | outbound
    status               TEXT NOT NULL,
    text                 TEXT,
    order_key            TEXT NOT NULL,        -- provider order
    sent_at              INTEGER NOT NULL,
    body                 TEXT NOT NULL,        -- JSON: sender, attachments, kind, reply, versions
    created_at           INTEGER NOT NULL,
    UNIQUE (tenant_id, channel_id, external_message_id),
    UNIQUE (tenant_id, send_id)
);
CREATE INDEX messages_by_conversation ON messages (tenant_id, conversation_id, order_key);

CREATE TABLE inbound_events (
    tenant_id          TEXT NOT NULL,
    channel_id         TEXT NOT NULL,
    provider_event_id  TEXT NOT NULL,
    status             TEXT NOT NULL,          -- RECEIVED | PROCESSING | PROCESSED | FAILED
    outcome            TEXT NOT NULL,          -- message | edit | echo | receipt | ignored: reason
    payload            TEXT NOT NULL,          -- the provider's raw event
    received_at        INTEGER NOT NULL,
    processed_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, channel_id, provider_event_id)
);

CREATE TABLE outbox_send (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL,
    send_id               TEXT NOT NULL,
    channel_id            TEXT NOT NULL,
    conversation_id       TEXT NOT NULL,
    message_id            TEXT NOT NULL,
    text                  TEXT NOT NULL,
    reply_to              TEXT,
    status                TEXT NOT NULL,       -- PENDING | ENQUEUED | SENDING | SENT | FAILED | UNKNOWN
    attempts              INTEGER NOT NULL DEFAULT 0,
    last_error            TEXT,
    next_attempt_at       INTEGER,
    provider_message_ids  TEXT NOT NULL DEFAULT '[]',
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    UNIQUE (tenant_id, send_id)
);
CREATE INDEX outbox_by_status ON outbox_send (status, updated_at);
CREATE INDEX outbox_by_tenant ON outbox_send (tenant_id, created_at);

CREATE TABLE send_log (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL,
    outbox_id            TEXT NOT NULL,
    attempt              INTEGER NOT NULL,
    outcome              TEXT NOT NULL,
    provider_message_id  TEXT,
    detail               TEXT,
    at                   INTEGER NOT NULL
);
CREATE INDEX send_log_by_outbox ON send_log (tenant_id, outbox_id, attempt);
