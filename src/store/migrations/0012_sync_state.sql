-- Two-way sync state beyond `sync_records` (issue 14, DavAccount contact sync):
-- the item as the remote side last had it (a vCard), so an export patches only the properties
-- Switchboard models and leaves the rest untouched; and per-sync checkpoints by scope (a
-- collection's RFC 6578 sync token, the journal position exported up to, the discovered
-- collections).
ALTER TABLE sync_records ADD COLUMN remote_data TEXT;

CREATE TABLE sync_checkpoints (
    sync       TEXT NOT NULL,
    scope      TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (sync, scope)
);
