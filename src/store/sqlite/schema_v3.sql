-- Operations: why an inbound event failed (for `dlq peek`), and leases (one redrive per queue).
ALTER TABLE inbound_events ADD COLUMN error TEXT;               -- the last failed attempt's error
ALTER TABLE inbound_events ADD COLUMN receive_count INTEGER;    -- that attempt's receive count
ALTER TABLE inbound_events ADD COLUMN failed_at INTEGER;        -- when it failed

CREATE TABLE leases (
    name         TEXT PRIMARY KEY,
    holder_id    TEXT NOT NULL,
    actor        TEXT NOT NULL,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    acquired_at  INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
