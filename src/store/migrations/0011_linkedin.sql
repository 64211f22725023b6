-- 0011_linkedin: LinkedIn lead notifications and the integrations' log (issue 16, LI-05, LI-08).
--
-- Append-only; conventions as in 0001_init. A lead notification is stored before the webhook
-- answers 2xx, once per (integration, form response): a second delivery of the same
-- notification finds the row and stores nothing. The LeadIntegration's connector run takes the
-- rows not done yet, fetches the form response and creates the lead (unique by
-- (integration, linkedin_lead_id) in `leads`), then marks the row done; a failed fetch keeps
-- the row pending with its error for the next run.
CREATE TABLE linkedin_notifications (
    id           INTEGER PRIMARY KEY,
    integration  TEXT    NOT NULL,
    response     TEXT    NOT NULL,
    form         TEXT,
    body         TEXT    NOT NULL,
    received_at  TEXT    NOT NULL,
    done_at      TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    UNIQUE (integration, response)
);
CREATE INDEX linkedin_notifications_pending
    ON linkedin_notifications (integration, id) WHERE done_at IS NULL;

-- What each LeadIntegration did (LI-08), newest first by id. `message` never holds a secret.
CREATE TABLE lead_log (
    id           INTEGER PRIMARY KEY,
    integration  TEXT    NOT NULL,
    at           TEXT    NOT NULL,
    event        TEXT    NOT NULL,
    message      TEXT    NOT NULL,
    lead_id      INTEGER
);
CREATE INDEX lead_log_by_integration ON lead_log (integration, id);
