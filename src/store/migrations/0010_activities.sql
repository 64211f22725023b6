-- 0010_activities: meetings and tasks (issue 12, SPEC "Records").
--
-- Append-only; conventions as in 0001_init. An activity keeps what its source gave —
-- location, description and the provider's online-meeting field — and not the meeting link
-- found in them: `meeting` is found by the MeetingService masks of the running config each
-- time an activity is read (OM-01), so a changed mask applies to every activity at once.
-- Organizer and participants are kept by address; their contact (and user) is looked up by
-- that address when read, so a contact created later is linked too.
CREATE TABLE activities (
    id                 INTEGER PRIMARY KEY,
    kind               TEXT    NOT NULL CHECK (kind IN ('meeting', 'task')),
    title              TEXT    NOT NULL,
    description        TEXT,
    location           TEXT,
    start_at           TEXT,
    end_at             TEXT,
    all_day            INTEGER NOT NULL DEFAULT 0 CHECK (all_day IN (0, 1)),
    due_at             TEXT,
    status             TEXT,
    show_in_schedule   INTEGER NOT NULL DEFAULT 1 CHECK (show_in_schedule IN (0, 1)),
    -- The `User` who owns it (a config name, kept as text like chat operators).
    owner              TEXT,
    organizer_email    TEXT,
    online_meeting_url TEXT,
    version            INTEGER NOT NULL DEFAULT 1,
    created_at         TEXT    NOT NULL,
    updated_at         TEXT    NOT NULL,
    deleted_at         TEXT
);
CREATE INDEX activities_by_owner ON activities (owner, start_at);
CREATE INDEX activities_by_start ON activities (coalesce(start_at, due_at));

CREATE TABLE activity_participants (
    activity_id INTEGER NOT NULL REFERENCES activities (id),
    -- Lower-cased.
    email       TEXT    NOT NULL,
    response    TEXT    NOT NULL DEFAULT 'none',
    position    INTEGER NOT NULL,
    PRIMARY KEY (activity_id, email)
);
CREATE INDEX activity_participants_by_email ON activity_participants (email);
