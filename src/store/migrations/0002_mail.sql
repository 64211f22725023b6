-- 0002_mail: loaded and sent e-mail, per-folder sync checkpoints, and the contacts mail links.
--
-- Append-only, like every migration (see 0001_init.sql). Mail rows are keyed by the Mailbox
-- object's name; they are not tied to `objects` by a foreign key on purpose: removing a
-- mailbox from the config stops its sync but keeps the mail history it loaded.

-- Where each folder's sync stands. A row is written in the same transaction as the messages
-- it covers, so the checkpoint never runs ahead of (or behind) the stored mail.
CREATE TABLE mail_folders (
    mailbox          TEXT    NOT NULL,
    folder           TEXT    NOT NULL,
    uidvalidity      INTEGER NOT NULL,
    -- Every message with a UID up to this one (in this UIDVALIDITY) is stored or was skipped.
    last_uid         INTEGER NOT NULL DEFAULT 0 CHECK (last_uid >= 0),
    -- CONDSTORE's HIGHESTMODSEQ as of the last completed pass, when the server offers it.
    highest_modseq   INTEGER,
    -- The first sync of this UIDVALIDITY (messages since `since`) has completed.
    initial_complete INTEGER NOT NULL DEFAULT 0 CHECK (initial_complete IN (0, 1)),
    -- The INTERNALDATE cut-off of the first sync (load.period before it started).
    since            TEXT    NOT NULL,
    -- Messages stored in this folder (for status).
    messages         INTEGER NOT NULL DEFAULT 0 CHECK (messages >= 0),
    updated_at       TEXT    NOT NULL,
    PRIMARY KEY (mailbox, folder)
);

CREATE TABLE emails (
    id             INTEGER PRIMARY KEY,
    mailbox        TEXT    NOT NULL,
    folder         TEXT    NOT NULL,
    direction      TEXT    NOT NULL CHECK (direction IN ('in', 'out')),
    -- IMAP identity (loaded mail); NULL for mail sent and not loaded back.
    uidvalidity    INTEGER,
    uid            INTEGER,
    -- The Message-ID header without angle brackets, when the message has one.
    message_id     TEXT,
    -- Message-ID, or `sha256:<hex>` of the raw message when it has none: finds the same
    -- message again after a UIDVALIDITY change.
    fingerprint    TEXT    NOT NULL,
    from_address   TEXT,
    from_name      TEXT,
    -- JSON arrays of addresses.
    to_json        TEXT    NOT NULL DEFAULT '[]',
    cc_json        TEXT    NOT NULL DEFAULT '[]',
    subject        TEXT,
    -- The Date header (RFC 3339), or INTERNALDATE when absent or unreadable.
    sent_at        TEXT,
    internal_date  TEXT,
    size           INTEGER NOT NULL DEFAULT 0,
    flags          TEXT    NOT NULL DEFAULT '',
    -- Bodies are capped (see src/mail/mime.rs); `truncated` says one was cut.
    text_body      TEXT,
    html_body      TEXT,
    truncated      INTEGER NOT NULL DEFAULT 0 CHECK (truncated IN (0, 1)),
    -- JSON array of {name, contentType, size}.
    attachments    TEXT    NOT NULL DEFAULT '[]',
    stored_at      TEXT    NOT NULL
);

-- The exactly-once guarantee: a message is stored once per folder and UIDVALIDITY epoch,
-- whatever crashed or was retried.
CREATE UNIQUE INDEX emails_imap_identity
    ON emails (mailbox, folder, uidvalidity, uid) WHERE uid IS NOT NULL;
CREATE INDEX emails_fingerprint ON emails (mailbox, folder, fingerprint);
CREATE INDEX emails_message_id ON emails (message_id);
CREATE INDEX emails_listing ON emails (mailbox, folder, id);

-- People mail was exchanged with, keyed by address (MB-01). Mail enriches them: a display
-- name seen on a message fills an empty name.
CREATE TABLE contacts (
    id         INTEGER PRIMARY KEY,
    email      TEXT    NOT NULL UNIQUE,
    name       TEXT,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
);

CREATE TABLE email_contacts (
    email_id   INTEGER NOT NULL REFERENCES emails (id) ON DELETE CASCADE,
    contact_id INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    PRIMARY KEY (email_id, contact_id)
);
CREATE INDEX email_contacts_contact ON email_contacts (contact_id);

-- The durable outbox: a sent e-mail is stored (direction 'out') together with its row here, in
-- one transaction, before anything goes on the wire. Delivery retries temporary failures
-- (4xx, connection errors) at `next_attempt_at`; a permanent one (5xx) fails the message with
-- the server's reply.
CREATE TABLE mail_outbox (
    email_id        INTEGER PRIMARY KEY REFERENCES emails (id) ON DELETE CASCADE,
    mailbox         TEXT    NOT NULL,
    envelope_from   TEXT    NOT NULL,
    -- JSON array of addresses.
    envelope_to     TEXT    NOT NULL,
    -- The RFC 5322 message as sent.
    raw             BLOB    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('queued', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TEXT    NOT NULL,
    last_error      TEXT,
    updated_at      TEXT    NOT NULL
);
CREATE INDEX mail_outbox_due ON mail_outbox (mailbox, state, next_attempt_at);
