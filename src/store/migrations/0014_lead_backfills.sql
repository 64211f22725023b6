-- 0014_lead_backfills: LinkedIn lead backfills (issue 16, LI-06).
--
-- Append-only; conventions as in 0001_init. A backfill is asked for through the API or the
-- CLI (`leads backfill`) and stored first; the LeadIntegration's connector run pages through
-- the Lead Sync API's `leadFormResponses` owner finder for the period and moves `next_start`
-- (the finder's `start`) after each page, in the same transaction that counts the page's
-- leads, so a run cut by a crash resumes at the page it was on. Leads stay unique by
-- (integration, linkedin_lead_id) in `leads`: a page read twice creates nothing new.
CREATE TABLE lead_backfills (
    id            INTEGER PRIMARY KEY,
    integration   TEXT    NOT NULL,
    form          TEXT,
    since         TEXT    NOT NULL,
    until         TEXT    NOT NULL,
    requested_at  TEXT    NOT NULL,
    next_start    INTEGER NOT NULL DEFAULT 0,
    fetched       INTEGER NOT NULL DEFAULT 0,
    created       INTEGER NOT NULL DEFAULT 0,
    known         INTEGER NOT NULL DEFAULT 0,
    skipped       INTEGER NOT NULL DEFAULT 0,
    finished_at   TEXT,
    error         TEXT
);
CREATE INDEX lead_backfills_pending
    ON lead_backfills (integration, id) WHERE finished_at IS NULL;
