-- 0001_init: the applied objects and how each one is doing.
--
-- Migrations are append-only: never edit a file that has been released; add the next
-- numbered file instead and register it in `MIGRATIONS` in src/store/mod.rs. Each file runs
-- in its own transaction (the store opens and commits it), so do not write BEGIN/COMMIT here.
--
-- Timestamps are RFC 3339 UTC text with millisecond precision ('2025-01-31T12:00:00.000Z'):
-- readable in the sqlite3 CLI and, having a fixed width, they sort chronologically as text.
-- Tables are deliberately not STRICT so that older sqlite3 CLIs can still open the file.

-- What was applied: one row per object of the last applied config.
CREATE TABLE objects (
    kind        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    -- Canonical JSON of the spec: object keys sorted, no insignificant whitespace.
    -- Holds secret references only, never secret values.
    spec        TEXT    NOT NULL,
    -- Lowercase hex sha256 of `spec`.
    spec_hash   TEXT    NOT NULL,
    -- 1 on insert, +1 each time the spec changes.
    generation  INTEGER NOT NULL CHECK (generation >= 1),
    -- When this generation was applied.
    applied_at  TEXT    NOT NULL,
    PRIMARY KEY (kind, name)
);

-- How each applied object is doing. No row yet means "pending: not synced yet".
CREATE TABLE object_status (
    kind            TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('ready', 'syncing', 'error', 'pending')),
    -- Human-readable explanation of `state`, if any.
    reason          TEXT,
    last_started_at TEXT,
    last_success_at TEXT,
    last_error      TEXT,
    last_error_at   TEXT,
    runs_ok         INTEGER NOT NULL DEFAULT 0 CHECK (runs_ok >= 0),
    runs_failed     INTEGER NOT NULL DEFAULT 0 CHECK (runs_failed >= 0),
    items_in        INTEGER NOT NULL DEFAULT 0 CHECK (items_in >= 0),
    items_out       INTEGER NOT NULL DEFAULT 0 CHECK (items_out >= 0),
    PRIMARY KEY (kind, name),
    FOREIGN KEY (kind, name) REFERENCES objects (kind, name) ON DELETE CASCADE
);
