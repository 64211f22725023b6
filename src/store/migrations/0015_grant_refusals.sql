-- 0015_grant_refusals: OAuth grants the token endpoint refused (`invalid_grant`), kept across
-- restarts (BX-04).
--
-- Append-only; conventions as in 0001_init. One row per object holding a grant (a Mailbox, a
-- LinkedInAccount, any kind the grant registry in src/telemetry/grants.rs serves) whose
-- refresh was refused: the grant's fingerprint (hex SHA-256 over what a refresh sends: token
-- URL, client id and secret, refresh token — never a token itself) and the endpoint's reason.
-- While the fingerprint matches, the daemon does not ask the endpoint again, after a restart
-- too; a new token or a config change makes another fingerprint, a successful refresh or
-- consent deletes the row, and so does removing the object from the config.
CREATE TABLE grant_refusals (
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    reason      TEXT NOT NULL,
    refused_at  TEXT NOT NULL,
    PRIMARY KEY (kind, name)
);
