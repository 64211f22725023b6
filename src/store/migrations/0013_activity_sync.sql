-- 0013_activity_sync: what a two-way calendar sync (CalendarSync over CalDAV, issue 14) needs
-- beyond 0010's activities.
--
-- Times stay in UTC (start_at, end_at, due_at); `time_zone` is the zone the source wrote them in
-- (an IANA name, or a provider's own such as Outlook's `W. Europe Standard Time`), so a write
-- back keeps the event in its zone. `rrule` is a recurring event's RFC 5545 rule, verbatim: a
-- series is one activity, never expanded. `ical_uid` is the iCalendar UID, so the same event
-- reached through two calendars (or an item Switchboard created, read back) is one activity.
ALTER TABLE activities ADD COLUMN time_zone TEXT;
ALTER TABLE activities ADD COLUMN rrule TEXT;
ALTER TABLE activities ADD COLUMN ical_uid TEXT;
CREATE INDEX activities_by_ical_uid ON activities (ical_uid) WHERE ical_uid IS NOT NULL;
