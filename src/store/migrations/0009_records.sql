-- 0009_records: the record store — one contact for every channel, accounts, the change
-- journal, per-sync record state and leads (issue 12).
--
-- Append-only; conventions as in 0001_init. This migration rebuilds `contacts` (its `email`
-- column moves out to `contact_emails`), so it runs with foreign keys off, as SQLite's
-- "12-step" ALTER procedure asks; the store checks `PRAGMA foreign_key_check` before it
-- commits. Ids of the mail contacts are kept, so the `contactIds` of stored letters stay
-- valid. After this SQL the store's Rust step (`records::merge_chat_identities`) links every
-- chat identity to the contact that has its e-mail or phone, or to a new one.

-- Companies (CS-02, MB-01).
CREATE TABLE accounts (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    -- Bumped by every change: part of the record's ETag.
    version    INTEGER NOT NULL DEFAULT 1,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    -- A deleted account is kept as a tombstone so the journal and old links still name it.
    deleted_at TEXT
);
CREATE INDEX accounts_by_name ON accounts (name COLLATE NOCASE) WHERE deleted_at IS NULL;

-- The e-mail domains of an account, lower-cased. Several accounts may claim a domain; a
-- contact is linked by domain only when exactly one does.
CREATE TABLE account_domains (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    domain     TEXT    NOT NULL,
    PRIMARY KEY (domain, account_id)
);
CREATE INDEX account_domains_by_account ON account_domains (account_id);

-- One person, whatever channel they came through. Keys (addresses, phones, chat identities)
-- live in their own tables; `sources` records, per field, the origin of its current value
-- (`{"name": "ChatChannel/web"}`), which the merge policy reads (store/records.rs).
CREATE TABLE contacts_v9 (
    id         INTEGER PRIMARY KEY,
    name       TEXT,
    job_title  TEXT,
    account_id INTEGER REFERENCES accounts (id),
    sources    TEXT    NOT NULL DEFAULT '{}',
    version    INTEGER NOT NULL DEFAULT 1,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    -- Deleted through the API: hidden from the records API, its keys released; letters and
    -- chats keep pointing at it (their history stays whole).
    deleted_at TEXT
);
INSERT INTO contacts_v9 (id, name, sources, created_at, updated_at)
    SELECT id, name,
           CASE WHEN name IS NULL THEN '{}' ELSE '{"name":"Mailbox/*"}' END,
           created_at, updated_at
    FROM contacts;

-- A contact's e-mail addresses, lower-cased: an address names one contact.
CREATE TABLE contact_emails (
    email      TEXT    NOT NULL PRIMARY KEY,
    contact_id INTEGER NOT NULL REFERENCES contacts_v9 (id),
    origin     TEXT    NOT NULL
);
CREATE INDEX contact_emails_by_contact ON contact_emails (contact_id);
INSERT INTO contact_emails (email, contact_id, origin)
    SELECT lower(email), id, 'Mailbox/*' FROM contacts ORDER BY id;

-- A contact's phone numbers, normalised (store/records.rs `normalize_phone`): E.164 (`+` and
-- up to 15 digits) when a country code was given, the bare digits otherwise.
CREATE TABLE contact_phones (
    phone      TEXT    NOT NULL PRIMARY KEY,
    contact_id INTEGER NOT NULL REFERENCES contacts_v9 (id),
    origin     TEXT    NOT NULL
);
CREATE INDEX contact_phones_by_contact ON contact_phones (contact_id);

CREATE TABLE contact_tags (
    contact_id INTEGER NOT NULL REFERENCES contacts_v9 (id),
    tag        TEXT    NOT NULL,
    PRIMARY KEY (contact_id, tag)
);
CREATE INDEX contact_tags_by_tag ON contact_tags (tag);

DROP TABLE contacts;
ALTER TABLE contacts_v9 RENAME TO contacts;
-- No index on updated_at: the list query is one statement for every filter, whose plan
-- cannot use it, and every new chat visitor would pay for it.
CREATE INDEX contacts_by_account ON contacts (account_id) WHERE account_id IS NOT NULL;

-- A chat contact was one person per channel identity; it is now the identity: what the
-- channel calls the person (`name`, `email`, `phone` as last given, the hot path's "nothing
-- changed" check) and the contact it belongs to. Chats keep pointing at the identity, so
-- conversations on two channels stay apart (one open chat per identity, CH-05).
ALTER TABLE chat_contacts RENAME TO chat_identities;
ALTER TABLE chat_identities ADD COLUMN contact_id INTEGER REFERENCES contacts (id);
CREATE INDEX chat_identities_by_contact ON chat_identities (contact_id);
ALTER TABLE chats RENAME COLUMN contact_id TO identity_id;
ALTER TABLE chat_cases RENAME COLUMN contact_id TO identity_id;

-- The change journal: every change of a record, in order, with who made it (`User/ann`,
-- `ChatChannel/web`, `Mailbox/sales`, `ContactSync/google`, `Migration/0009`). Sync
-- connectors read "after my last position, not made by me" from it. Rows are never deleted,
-- so the rowid alone is strictly increasing and never reused; AUTOINCREMENT would add a
-- write of `sqlite_sequence` to every change (measured on the chat path: new visitors).
CREATE TABLE record_changes (
    seq         INTEGER PRIMARY KEY,
    record_kind TEXT    NOT NULL CHECK (record_kind IN ('contact', 'account', 'activity', 'lead')),
    record_id   INTEGER NOT NULL,
    op          TEXT    NOT NULL CHECK (op IN ('create', 'update', 'delete')),
    origin      TEXT    NOT NULL,
    at          TEXT    NOT NULL
);
CREATE INDEX record_changes_by_record ON record_changes (record_kind, record_id, seq);

-- What a sync object knows of each record it exchanges: the remote id and version (ETag,
-- change key) and the journal position it last exported.
CREATE TABLE sync_records (
    sync           TEXT    NOT NULL,
    record_kind    TEXT    NOT NULL,
    record_id      INTEGER NOT NULL,
    remote_id      TEXT    NOT NULL,
    remote_version TEXT,
    exported_seq   INTEGER NOT NULL DEFAULT 0,
    updated_at     TEXT    NOT NULL,
    PRIMARY KEY (sync, record_kind, record_id)
);
CREATE UNIQUE INDEX sync_records_by_remote ON sync_records (sync, record_kind, remote_id);

-- LinkedIn leads (filled by the LeadIntegration connector): one row per lead of an
-- integration, whatever was delivered twice.
CREATE TABLE leads (
    id               INTEGER PRIMARY KEY,
    integration      TEXT    NOT NULL,
    form             TEXT    NOT NULL,
    linkedin_lead_id TEXT    NOT NULL,
    submitted_at     TEXT    NOT NULL,
    -- JSON object {column: value}.
    columns          TEXT    NOT NULL DEFAULT '{}',
    contact_id       INTEGER REFERENCES contacts (id),
    duplicate_of     INTEGER REFERENCES leads (id),
    created_at       TEXT    NOT NULL,
    UNIQUE (integration, linkedin_lead_id)
);
CREATE INDEX leads_by_submitted ON leads (integration, form, submitted_at);
