-- 0006_mail_graph: Microsoft Graph delta checkpoints, one per mailbox folder (EP-05).
--
-- Append-only. `link` is where the folder's sync resumes: an `@odata.nextLink` while a
-- delta round is in progress, the round's `@odata.deltaLink` once it completed. It is written
-- in the same transaction as the page of messages it follows, so it never runs ahead of the
-- stored mail. NULL (or no row) means: start a full round.
CREATE TABLE mail_graph_folders (
    mailbox    TEXT    NOT NULL,
    folder     TEXT    NOT NULL,
    link       TEXT,
    complete   INTEGER NOT NULL DEFAULT 0 CHECK (complete IN (0, 1)),
    messages   INTEGER NOT NULL DEFAULT 0 CHECK (messages >= 0),
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (mailbox, folder)
);
-- Graph has no UIDs: a message is known by its internetMessageId (the fingerprint).
CREATE INDEX emails_mailbox_fingerprint ON emails (mailbox, fingerprint);
