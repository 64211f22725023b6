-- 0008_mail_status: first-sync progress per IMAP folder, and Microsoft Graph message ids and
-- removals.
--
-- Append-only. A folder's progress is written in the same transaction as the batch it counts,
-- so it never runs ahead of the stored mail.

-- While the first sync of a folder (of its UIDVALIDITY epoch) runs: how many of the messages
-- it found have been loaded, and how many it found (NULL: not counted yet).
ALTER TABLE mail_folders ADD COLUMN initial_loaded INTEGER NOT NULL DEFAULT 0
    CHECK (initial_loaded >= 0);
ALTER TABLE mail_folders ADD COLUMN initial_total INTEGER CHECK (initial_total >= 0);

-- Graph's id of a message (its `@removed` entries name nothing else); NULL for IMAP mail.
ALTER TABLE emails ADD COLUMN graph_id TEXT;
-- A message the server reports deleted or moved out of its folder is kept as history and
-- marked: when, and the server's reason (Graph: `deleted` or `changed`).
ALTER TABLE emails ADD COLUMN removed_at TEXT;
ALTER TABLE emails ADD COLUMN removed_reason TEXT;
CREATE INDEX emails_graph_id ON emails (mailbox, folder, graph_id) WHERE graph_id IS NOT NULL;
-- Per-folder counts of what is still in the folder (status).
CREATE INDEX emails_present ON emails (mailbox, folder) WHERE removed_at IS NULL;
