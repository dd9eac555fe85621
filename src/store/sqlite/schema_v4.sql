-- Events and outgoing webhooks: each tenant's event log, its webhook endpoints, and webhook
-- deliveries in the outbox next to replies.

-- The last event id given out per tenant: ids are gap-free and never reused (pruning keeps it).
CREATE TABLE event_counters (
    tenant_id  TEXT PRIMARY KEY,
    last_id    INTEGER NOT NULL,
    last_at    INTEGER NOT NULL               -- time of that event: later events are never earlier
);

CREATE TABLE events (
    tenant_id        TEXT NOT NULL,
    id               INTEGER NOT NULL,         -- 1, 2, 3, ... per tenant
    type             TEXT NOT NULL,            -- message.received | reply.sent | ...
    at               INTEGER NOT NULL,
    conversation_id  TEXT,
    data             TEXT NOT NULL,            -- JSON: the thing it is about, as it was then
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX events_by_time ON events (at);

CREATE TABLE webhooks (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    url              TEXT NOT NULL,
    event_types      TEXT NOT NULL,            -- JSON list; empty: every type
    description      TEXT,
    secret           TEXT NOT NULL,            -- sealed signing secret
    state            TEXT NOT NULL,            -- enabled | disabled
    disabled_reason  TEXT,
    health           TEXT NOT NULL,            -- JSON: failures, last success, last error, ...
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX webhooks_by_tenant ON webhooks (tenant_id, created_at);

-- The outbox holds replies and webhook deliveries: a reply's columns become optional, a
-- delivery's are added. SQLite cannot drop NOT NULL in place, so the table is rebuilt.
CREATE TABLE outbox_items (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL,
    send_id               TEXT NOT NULL,
    kind                  TEXT NOT NULL,       -- reply | webhook
    channel_id            TEXT,                -- reply
    conversation_id       TEXT,                -- reply; webhook: the event's, if any
    message_id            TEXT,                -- reply
    text                  TEXT,                -- reply
    reply_to              TEXT,                -- reply
    webhook_id            TEXT,                -- webhook
    event_id              INTEGER,             -- webhook
    event_type            TEXT,                -- webhook
    status                TEXT NOT NULL,       -- PENDING | ENQUEUED | SENDING | SENT | FAILED | UNKNOWN
    attempts              INTEGER NOT NULL DEFAULT 0,
    last_error            TEXT,
    next_attempt_at       INTEGER,
    provider_message_ids  TEXT NOT NULL DEFAULT '[]',
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    UNIQUE (tenant_id, send_id)
);
INSERT INTO outbox_items (id, tenant_id, send_id, kind, channel_id, conversation_id, message_id, text, reply_to,
                          status, attempts, last_error, next_attempt_at, provider_message_ids, created_at, updated_at)
    SELECT id, tenant_id, send_id, 'reply', channel_id, conversation_id, message_id, text, reply_to,
           status, attempts, last_error, next_attempt_at, provider_message_ids, created_at, updated_at
    FROM outbox_send;
DROP TABLE outbox_send;
ALTER TABLE outbox_items RENAME TO outbox_send;
CREATE INDEX outbox_by_status ON outbox_send (status, updated_at);
CREATE INDEX outbox_by_tenant ON outbox_send (tenant_id, created_at);
CREATE INDEX outbox_by_webhook ON outbox_send (webhook_id, created_at) WHERE webhook_id IS NOT NULL;
