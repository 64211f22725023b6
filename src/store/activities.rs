//! Activities — meetings and tasks (migration `0010_activities`).
//!
//! # Responsibility
//! Typed reads and writes of activities and their participants, each write journaled
//! (`record_changes`, kind `activity`). Organizer and participants are kept by address; a
//! read links each address to its contact (`contact_emails`) as it is then.
//!
//! # What it must not do
//! - Find meeting links: the masks are config (`MeetingService`), applied by the reader
//!   (`records::meeting`), so a changed mask applies at once.
//! - Decide who may see what: the caller passes an [`ActivityViewer`].

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::records::{
    ChangeOp, RecordError, RecordKind, check_version, invalid, journal, normalize_email, touch,
};
use super::{Store, StoreError, db_error, format_ts, parse_ts};

/// A meeting or a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityKind {
    /// A meeting.
    Meeting,
    /// A task.
    Task,
}

impl ActivityKind {
    /// `meeting` | `task`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Meeting => "meeting",
            ActivityKind::Task => "task",
        }
    }

    /// Parses [`ActivityKind::as_str`].
    pub fn parse(text: &str) -> Option<ActivityKind> {
        match text {
            "meeting" => Some(ActivityKind::Meeting),
            "task" => Some(ActivityKind::Task),
            _ => None,
        }
    }
}

/// A participant as stored, with the contact its address names now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// The address, lower-cased.
    pub email: String,
    /// Their answer (`none`, `accepted`, `declined`, `tentative`, ...).
    pub response: String,
    /// The contact with that address, if any.
    pub contact_id: Option<i64>,
}

/// An activity as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// Its id.
    pub id: i64,
    /// Meeting or task.
    pub kind: ActivityKind,
    /// Title.
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// Location.
    pub location: Option<String>,
    /// Start (meetings).
    pub start: Option<DateTime<Utc>>,
    /// End (meetings).
    pub end: Option<DateTime<Utc>>,
    /// All day.
    pub all_day: bool,
    /// Due (tasks).
    pub due: Option<DateTime<Utc>>,
    /// Status, as its source names it.
    pub status: Option<String>,
    /// Shown in the owner's schedule.
    pub show_in_schedule: bool,
    /// The owning `User`.
    pub owner: Option<String>,
    /// The organizer's address and their contact.
    pub organizer: Option<Participant>,
    /// The participants, in the order given.
    pub participants: Vec<Participant>,
    /// The provider's online-meeting field (a join URL).
    pub online_meeting_url: Option<String>,
    /// The zone its times were given in (migration 0013); the times are UTC.
    pub time_zone: Option<String>,
    /// A recurring series' RFC 5545 rule, verbatim.
    pub rrule: Option<String>,
    /// Bumped by every change.
    pub version: i64,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The fields of an activity to write; `None` leaves a field alone (`Some(None)` clears it).
#[derive(Debug, Clone, Default)]
pub struct ActivityChanges {
    /// Meeting or task (required to create).
    pub kind: Option<ActivityKind>,
    /// Title (required to create).
    pub title: Option<String>,
    /// Description.
    pub description: Option<Option<String>>,
    /// Location.
    pub location: Option<Option<String>>,
    /// Start.
    pub start: Option<Option<DateTime<Utc>>>,
    /// End.
    pub end: Option<Option<DateTime<Utc>>>,
    /// All day.
    pub all_day: Option<bool>,
    /// Due.
    pub due: Option<Option<DateTime<Utc>>>,
    /// Status.
    pub status: Option<Option<String>>,
    /// Shown in the schedule.
    pub show_in_schedule: Option<bool>,
    /// Owner (a `User` name; the caller checks it exists).
    pub owner: Option<Option<String>>,
    /// Organizer's address.
    pub organizer: Option<Option<String>>,
    /// Participants: address and response; replaces the list.
    pub participants: Option<Vec<(String, String)>>,
    /// The online-meeting field.
    pub online_meeting_url: Option<Option<String>>,
    /// The zone the times were given in.
    pub time_zone: Option<Option<String>>,
    /// The recurrence rule.
    pub rrule: Option<Option<String>>,
}

/// An activity as a sync read it from its remote side (an iCalendar object).
#[derive(Debug, Clone)]
pub struct RemoteActivity<'a> {
    /// The sync object, as its origin (`CalendarSync/work`).
    pub sync: &'a str,
    /// The item's id there (a DAV href).
    pub remote_id: &'a str,
    /// Its version there (ETag).
    pub version: Option<&'a str>,
    /// The item as read, kept to patch on export.
    pub data: &'a str,
    /// Its iCalendar UID: an activity with that UID is the same one.
    pub uid: Option<&'a str>,
    /// The activity this sync created under that UID, when the UID says so.
    pub own_id: Option<i64>,
    /// The fields it carries.
    pub changes: ActivityChanges,
}

/// Who may see which activities: their own (owner), and those they organize or take part in
/// (by their address). `None` in a query: everything.
#[derive(Debug, Clone)]
pub struct ActivityViewer {
    /// The `User` name.
    pub user: String,
    /// Their address, lower-cased.
    pub email: String,
}

/// The filters of an activity list.
#[derive(Debug, Clone, Default)]
pub struct ActivityQuery {
    /// Only what this viewer may see.
    pub viewer: Option<ActivityViewer>,
    /// Only this owner.
    pub owner: Option<String>,
    /// Only this kind.
    pub kind: Option<ActivityKind>,
    /// Starting (or due) at or after.
    pub from: Option<DateTime<Utc>>,
    /// Starting (or due) before.
    pub to: Option<DateTime<Utc>>,
    /// Skip this many.
    pub offset: usize,
    /// At most this many.
    pub limit: usize,
}

impl Store {
    /// The activity `id`, unless deleted.
    pub fn activity(&self, id: i64) -> Result<Option<Activity>, StoreError> {
        select_activity(&self.conn, id).map_err(|e| self.err(e))
    }

    /// Activities matching `q`, by start (or due) time, then id, and how many match.
    pub fn activities(&self, q: &ActivityQuery) -> Result<(Vec<Activity>, usize), StoreError> {
        list_activities(&self.conn, q).map_err(|e| self.err(e))
    }

    /// Creates an activity (`kind` and `title` required).
    pub fn create_activity(
        &mut self,
        changes: &ActivityChanges,
        origin: &str,
        at: DateTime<Utc>,
    ) -> Result<Activity, RecordError> {
        let kind = changes
            .kind
            .ok_or_else(|| invalid("kind", "meeting or task"))?;
        let title = changes
            .title
            .clone()
            .ok_or_else(|| invalid("title", "required"))?;
        self.record_tx(|tx, path| {
            let at = format_ts(at);
            let id: i64 = tx
                .query_row(
                    "INSERT INTO activities (kind, title, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?3) RETURNING id",
                    params![kind.as_str(), title, at],
                    |r| r.get(0),
                )
                .map_err(|e| db_error(path, e))?;
            write_activity(tx, path, id, changes)?;
            journal(tx, RecordKind::Activity, id, ChangeOp::Create, origin, &at)
                .map_err(|e| db_error(path, e))?;
            read_back(tx, path, id)
        })
    }

    /// Changes an activity; `expected_version` as for contacts.
    pub fn update_activity(
        &mut self,
        id: i64,
        expected_version: Option<i64>,
        changes: &ActivityChanges,
        origin: &str,
        at: DateTime<Utc>,
    ) -> Result<Activity, RecordError> {
        self.record_tx(|tx, path| {
            let at = format_ts(at);
            check_version(tx, path, "activities", "activity", id, expected_version)?;
            write_activity(tx, path, id, changes)?;
            touch(tx, "activities", id, &at)
                .and_then(|()| journal(tx, RecordKind::Activity, id, ChangeOp::Update, origin, &at))
                .map_err(|e| db_error(path, e))?;
            read_back(tx, path, id)
        })
    }

    /// Deletes an activity (a tombstone).
    pub fn delete_activity(
        &mut self,
        id: i64,
        expected_version: Option<i64>,
        origin: &str,
        at: DateTime<Utc>,
    ) -> Result<(), RecordError> {
        self.record_tx(|tx, path| {
            let at = format_ts(at);
            check_version(tx, path, "activities", "activity", id, expected_version)?;
            tx.execute(
                "UPDATE activities SET deleted_at = ?2, version = version + 1, updated_at = ?2
                 WHERE id = ?1",
                params![id, at],
            )
            .and_then(|_| journal(tx, RecordKind::Activity, id, ChangeOp::Delete, origin, &at))
            .map_err(|e| db_error(path, e))?;
            Ok(())
        })
    }
}

impl Store {
    /// Imports one remote activity in one transaction (as `import_remote_contact` does for
    /// contacts): the activity linked to `item.remote_id`, else the one with its iCalendar
    /// UID, else the one this sync created under it (`own_id`), else a new one; its fields
    /// written and journaled with the sync as their origin (so they are not exported back);
    /// the link recorded with the item's version and text, exported up to the journal's end.
    pub fn import_remote_activity(
        &mut self,
        item: &RemoteActivity<'_>,
        at: DateTime<Utc>,
    ) -> Result<Activity, RecordError> {
        self.record_tx(|tx, path| import_activity_in_tx(tx, path, item, at))
    }

    /// [`Store::import_remote_activity`] for a batch (one multiget answer), in ONE
    /// transaction: one commit for the batch instead of one per item. An item the store
    /// refuses is rolled back alone (a savepoint each) and answered `Err(reason)`; a store
    /// failure fails the batch.
    pub fn import_remote_activities(
        &mut self,
        items: &[RemoteActivity<'_>],
        at: DateTime<Utc>,
    ) -> Result<Vec<Result<Activity, String>>, StoreError> {
        self.record_batch_tx(items, |tx, path, item| {
            import_activity_in_tx(tx, path, item, at)
        })
    }

    /// Records the iCalendar UID an activity was exported under (sync metadata: no journal
    /// entry, no version bump).
    pub fn set_activity_ical_uid(&mut self, id: i64, uid: &str) -> Result<(), StoreError> {
        self.ensure_writable()?;
        self.conn
            .execute(
                "UPDATE activities SET ical_uid = ?2 WHERE id = ?1 AND ical_uid IS NULL",
                params![id, uid],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }
}

/// The body of [`Store::import_remote_activity`], inside the caller's transaction.
fn import_activity_in_tx(
    tx: &Connection,
    path: &std::path::Path,
    item: &RemoteActivity<'_>,
    at: DateTime<Utc>,
) -> Result<Activity, RecordError> {
    let db = |e| db_error(path, e);
    let at = format_ts(at);
    let live = |id: i64| -> rusqlite::Result<bool> {
        tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM activities WHERE id = ?1 AND deleted_at IS NULL)",
            [id],
            |r| r.get(0),
        )
    };
    let mut found: Option<i64> = tx
        .query_row(
            "SELECT s.record_id FROM sync_records s JOIN activities a ON a.id = s.record_id
             WHERE s.sync = ?1 AND s.record_kind = 'activity' AND s.remote_id = ?2
               AND a.deleted_at IS NULL",
            params![item.sync, item.remote_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(db)?;
    if found.is_none()
        && let Some(uid) = item.uid
    {
        found = tx
            .query_row(
                "SELECT id FROM activities WHERE ical_uid = ?1 AND deleted_at IS NULL
                 ORDER BY id LIMIT 1",
                [uid],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
    }
    if found.is_none()
        && let Some(own) = item.own_id
        && live(own).map_err(db)?
    {
        found = Some(own);
    }
    let (id, op) = match found {
        Some(id) => (id, ChangeOp::Update),
        None => {
            let kind = item.changes.kind.unwrap_or(ActivityKind::Meeting);
            let title = item
                .changes
                .title
                .clone()
                .filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| "(no title)".to_owned());
            let id = tx
                .query_row(
                    "INSERT INTO activities (kind, title, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?3) RETURNING id",
                    params![kind.as_str(), title, at],
                    |r| r.get(0),
                )
                .map_err(db)?;
            (id, ChangeOp::Create)
        }
    };
    let mut changes = item.changes.clone();
    if changes
        .title
        .as_deref()
        .is_some_and(|t| t.trim().is_empty())
    {
        changes.title = None;
    }
    write_activity(tx, path, id, &changes)?;
    tx.execute(
        "UPDATE activities SET ical_uid = coalesce(?2, ical_uid) WHERE id = ?1",
        params![id, item.uid],
    )
    .map_err(db)?;
    touch(tx, "activities", id, &at).map_err(db)?;
    journal(tx, RecordKind::Activity, id, op, item.sync, &at).map_err(db)?;
    let seq: i64 = tx
        .query_row(
            "SELECT coalesce(max(seq), 0) FROM record_changes",
            [],
            |r| r.get(0),
        )
        .map_err(db)?;
    tx.execute(
        "INSERT INTO sync_records
            (sync, record_kind, record_id, remote_id, remote_version, exported_seq,
             updated_at, remote_data)
         VALUES (?1, 'activity', ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (sync, record_kind, record_id) DO UPDATE SET
            remote_id = excluded.remote_id, remote_version = excluded.remote_version,
            exported_seq = excluded.exported_seq, updated_at = excluded.updated_at,
            remote_data = excluded.remote_data",
        params![
            item.sync,
            id,
            item.remote_id,
            item.version,
            seq,
            at,
            item.data
        ],
    )
    .map_err(db)?;
    read_back(tx, path, id)
}

fn read_back(tx: &Connection, path: &std::path::Path, id: i64) -> Result<Activity, RecordError> {
    select_activity(tx, id)
        .map_err(|e| db_error(path, e))?
        .ok_or(RecordError::NotFound {
            kind: "activity",
            id,
        })
}

fn write_activity(
    tx: &Connection,
    path: &std::path::Path,
    id: i64,
    c: &ActivityChanges,
) -> Result<(), RecordError> {
    let db = |e| db_error(path, e);
    let set = |column: &str, value: rusqlite::types::Value| {
        tx.execute(
            &format!("UPDATE activities SET {column} = ?2 WHERE id = ?1"),
            params![id, value],
        )
        .map(drop)
    };
    use rusqlite::types::Value as V;
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map_or(V::Null, |t| V::Text(t.to_owned()))
    };
    let time = |v: &Option<DateTime<Utc>>| v.map_or(V::Null, |t| V::Text(format_ts(t)));
    if let Some(kind) = c.kind {
        set("kind", V::Text(kind.as_str().to_owned())).map_err(db)?;
    }
    if let Some(title) = &c.title {
        if title.trim().is_empty() || title.chars().count() > 1000 {
            return Err(invalid("title", "1 to 1000 characters"));
        }
        set("title", V::Text(title.trim().to_owned())).map_err(db)?;
    }
    for (column, value) in [
        ("description", &c.description),
        ("location", &c.location),
        ("status", &c.status),
        ("owner", &c.owner),
        ("online_meeting_url", &c.online_meeting_url),
        ("time_zone", &c.time_zone),
        ("rrule", &c.rrule),
    ] {
        if let Some(value) = value {
            set(column, text(value)).map_err(db)?;
        }
    }
    for (column, value) in [
        ("start_at", &c.start),
        ("end_at", &c.end),
        ("due_at", &c.due),
    ] {
        if let Some(value) = value {
            set(column, time(value)).map_err(db)?;
        }
    }
    if let Some(all_day) = c.all_day {
        set("all_day", V::Integer(i64::from(all_day))).map_err(db)?;
    }
    if let Some(show) = c.show_in_schedule {
        set("show_in_schedule", V::Integer(i64::from(show))).map_err(db)?;
    }
    if let Some(organizer) = &c.organizer {
        let email = match organizer {
            None => V::Null,
            Some(raw) => V::Text(
                normalize_email(raw)
                    .ok_or_else(|| invalid("organizer.email", "not an e-mail address"))?,
            ),
        };
        set("organizer_email", email).map_err(db)?;
    }
    if let Some(participants) = &c.participants {
        tx.execute(
            "DELETE FROM activity_participants WHERE activity_id = ?1",
            [id],
        )
        .map_err(db)?;
        for (i, (raw, response)) in participants.iter().enumerate() {
            let email = normalize_email(raw).ok_or_else(|| {
                invalid(format!("participants[{i}].email"), "not an e-mail address")
            })?;
            tx.execute(
                "INSERT OR IGNORE INTO activity_participants (activity_id, email, response, position)
                 VALUES (?1, ?2, ?3, ?4)",
                params![id, email, response, i64::try_from(i).unwrap_or(i64::MAX)],
            )
            .map_err(db)?;
        }
    }
    // The times must make sense together, whatever was changed.
    let (start, end): (Option<String>, Option<String>) = tx
        .query_row(
            "SELECT start_at, end_at FROM activities WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(db)?;
    if let (Some(start), Some(end)) = (start, end)
        && end < start
    {
        return Err(invalid("end", "is before start"));
    }
    Ok(())
}

fn opt_ts(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let text: Option<String> = row.get(index)?;
    Ok(text.as_deref().and_then(parse_ts))
}

fn contact_of(conn: &Connection, email: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT contact_id FROM contact_emails WHERE email = ?1")?
        .query_row([email], |r| r.get(0))
        .optional()
}

fn select_activity(conn: &Connection, id: i64) -> rusqlite::Result<Option<Activity>> {
    let row = conn
        .prepare_cached(
            "SELECT id, kind, title, description, location, start_at, end_at, all_day, due_at,
                    status, show_in_schedule, owner, organizer_email, online_meeting_url,
                    version, created_at, updated_at, time_zone, rrule
             FROM activities WHERE id = ?1 AND deleted_at IS NULL",
        )?
        .query_row([id], |r| {
            let kind: String = r.get(1)?;
            let organizer: Option<String> = r.get(12)?;
            Ok((
                Activity {
                    id: r.get(0)?,
                    kind: ActivityKind::parse(&kind).unwrap_or(ActivityKind::Task),
                    title: r.get(2)?,
                    description: r.get(3)?,
                    location: r.get(4)?,
                    start: opt_ts(r, 5)?,
                    end: opt_ts(r, 6)?,
                    all_day: r.get(7)?,
                    due: opt_ts(r, 8)?,
                    status: r.get(9)?,
                    show_in_schedule: r.get(10)?,
                    owner: r.get(11)?,
                    organizer: None,
                    participants: Vec::new(),
                    online_meeting_url: r.get(13)?,
                    time_zone: r.get(17)?,
                    rrule: r.get(18)?,
                    version: r.get(14)?,
                    created_at: opt_ts(r, 15)?.unwrap_or_default(),
                    updated_at: opt_ts(r, 16)?.unwrap_or_default(),
                },
                organizer,
            ))
        })
        .optional()?;
    let Some((mut activity, organizer)) = row else {
        return Ok(None);
    };
    if let Some(email) = organizer {
        activity.organizer = Some(Participant {
            contact_id: contact_of(conn, &email)?,
            email,
            response: "organizer".to_owned(),
        });
    }
    let people: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT email, response FROM activity_participants WHERE activity_id = ?1
             ORDER BY position",
        )?
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (email, response) in people {
        activity.participants.push(Participant {
            contact_id: contact_of(conn, &email)?,
            email,
            response,
        });
    }
    Ok(Some(activity))
}

fn list_activities(
    conn: &Connection,
    q: &ActivityQuery,
) -> rusqlite::Result<(Vec<Activity>, usize)> {
    let condition = "a.deleted_at IS NULL
        AND (?1 IS NULL OR a.owner = ?1)
        AND (?2 IS NULL OR a.kind = ?2)
        AND (?3 IS NULL OR coalesce(a.start_at, a.due_at) >= ?3)
        AND (?4 IS NULL OR coalesce(a.start_at, a.due_at) < ?4)
        AND (?5 IS NULL OR a.owner = ?5 OR a.organizer_email = ?6
             OR EXISTS (SELECT 1 FROM activity_participants p
                        WHERE p.activity_id = a.id AND p.email = ?6))";
    let viewer = q.viewer.as_ref();
    let args = params![
        q.owner,
        q.kind.map(ActivityKind::as_str),
        q.from.map(format_ts),
        q.to.map(format_ts),
        viewer.map(|v| v.user.as_str()),
        viewer.map(|v| v.email.as_str()),
    ];
    let total: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM activities a WHERE {condition}"
        ))?
        .query_row(args, |r| r.get(0))?;
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
    let ids: Vec<i64> = conn
        .prepare_cached(&format!(
            "SELECT a.id FROM activities a WHERE {condition}
             ORDER BY coalesce(a.start_at, a.due_at), a.id LIMIT ?7 OFFSET ?8"
        ))?
        .query_map(
            params![
                q.owner,
                q.kind.map(ActivityKind::as_str),
                q.from.map(format_ts),
                q.to.map(format_ts),
                viewer.map(|v| v.user.as_str()),
                viewer.map(|v| v.email.as_str()),
                limit,
                offset
            ],
            |r| r.get(0),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(activity) = select_activity(conn, id)? {
            items.push(activity);
        }
    }
    Ok((items, usize::try_from(total).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::ContactChanges;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid timestamp")
    }

    #[test]
    fn participants_link_to_the_contact_of_their_address_as_it_is_when_read() {
        let mut store = Store::open_in_memory().expect("store");
        let meeting = ActivityChanges {
            kind: Some(ActivityKind::Meeting),
            title: Some("Demo".into()),
            start: Some(Some(t(0))),
            end: Some(Some(t(3600))),
            organizer: Some(Some("Ann@Example.com".into())),
            participants: Some(vec![("Carol@Customer.example".into(), "accepted".into())]),
            ..ActivityChanges::default()
        };
        let created = store
            .create_activity(&meeting, "User/ann", t(0))
            .expect("create");
        assert_eq!(created.participants[0].contact_id, None);
        // Carol becomes a contact later: the link follows.
        let carol = store
            .create_contact(
                &ContactChanges {
                    emails: Some(vec!["carol@customer.example".into()]),
                    ..ContactChanges::default()
                },
                "User/ann",
                t(1),
            )
            .expect("contact");
        let read = store.activity(created.id).expect("read").expect("activity");
        assert_eq!(read.participants[0].contact_id, Some(carol.id));
        assert_eq!(
            read.organizer.map(|o| o.email).as_deref(),
            Some("ann@example.com")
        );
        // An end before the start is refused and changes nothing.
        let backwards = ActivityChanges {
            end: Some(Some(t(-1))),
            ..ActivityChanges::default()
        };
        let err = store
            .update_activity(created.id, Some(read.version), &backwards, "User/ann", t(2))
            .unwrap_err();
        assert!(
            matches!(&err, RecordError::Invalid { field, .. } if field == "end"),
            "{err:?}"
        );
        assert_eq!(
            store.activity(created.id).unwrap().unwrap().end,
            Some(t(3600))
        );
        // Every change is journaled as an activity change.
        let kinds: Vec<_> = store
            .changes_since(0, None, 10)
            .expect("journal")
            .into_iter()
            .map(|c| c.kind)
            .collect();
        assert_eq!(kinds, [RecordKind::Activity, RecordKind::Contact]);
    }

    #[test]
    fn a_remote_activity_is_found_again_by_link_uid_or_own_id_and_journaled_as_the_sync() {
        let mut store = Store::open_in_memory().expect("store");
        let remote =
            |href: &'static str, uid: Option<&'static str>, own: Option<i64>| RemoteActivity {
                sync: "CalendarSync/cal",
                remote_id: href,
                version: Some("\"e1\""),
                data: "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
                uid,
                own_id: own,
                changes: ActivityChanges {
                    kind: Some(ActivityKind::Meeting),
                    title: Some("Weekly".into()),
                    time_zone: Some(Some("Europe/Berlin".into())),
                    rrule: Some(Some("FREQ=WEEKLY".into())),
                    ..ActivityChanges::default()
                },
            };
        let a = store
            .import_remote_activity(&remote("/u/work/a.ics", Some("uid-a"), None), t(0))
            .expect("import");
        assert_eq!(a.time_zone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(a.rrule.as_deref(), Some("FREQ=WEEKLY"));
        // the same UID through another calendar is the same activity
        let again = store
            .import_remote_activity(&remote("/u/other/a.ics", Some("uid-a"), None), t(1))
            .expect("import");
        assert_eq!(again.id, a.id);
        // an item this sync created, read back before its link was recorded
        let mine = store
            .create_activity(
                &ActivityChanges {
                    kind: Some(ActivityKind::Task),
                    title: Some("Mine".into()),
                    ..ActivityChanges::default()
                },
                "User/ann",
                t(2),
            )
            .expect("create");
        let found = store
            .import_remote_activity(&remote("/u/work/m.ics", Some("sb-x"), Some(mine.id)), t(3))
            .expect("import");
        assert_eq!(found.id, mine.id);
        let origins: Vec<String> = store
            .changes_since(0, Some("User/ann"), 10)
            .expect("journal")
            .into_iter()
            .map(|c| c.origin)
            .collect();
        assert!(
            origins.iter().all(|o| o == "CalendarSync/cal"),
            "{origins:?}"
        );
        assert_eq!(origins.len(), 3);
    }

    #[test]
    fn a_batch_import_is_one_transaction_and_a_refused_item_is_refused_alone() {
        let mut store = Store::open_in_memory().expect("store");
        let item = |href: &'static str, title: String| RemoteActivity {
            sync: "CalendarSync/cal",
            remote_id: href,
            version: Some("\"e1\""),
            data: "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
            uid: None,
            own_id: None,
            changes: ActivityChanges {
                kind: Some(ActivityKind::Meeting),
                title: Some(title),
                ..ActivityChanges::default()
            },
        };
        let batch = [
            item("/u/work/a.ics", "A".into()),
            item("/u/work/b.ics", "x".repeat(1001)),
            item("/u/work/c.ics", "C".into()),
        ];
        let got = store.import_remote_activities(&batch, t(0)).expect("batch");
        assert_eq!(got.len(), 3);
        assert!(got[0].is_ok() && got[2].is_ok(), "{got:?}");
        assert!(
            got[1].as_ref().is_err_and(|e| e.contains("title")),
            "{got:?}"
        );
        // Nothing of the refused item is left behind: no activity, no link.
        let (all, total) = store
            .activities(&ActivityQuery {
                limit: 10,
                ..ActivityQuery::default()
            })
            .expect("list");
        assert_eq!(total, 2);
        assert_eq!(
            all.iter().map(|a| a.title.as_str()).collect::<Vec<_>>(),
            ["A", "C"]
        );
        let linked = store
            .sync_versions("CalendarSync/cal", RecordKind::Activity)
            .expect("links");
        assert_eq!(linked.len(), 2);
        // The same batch again updates the same two activities.
        let again = store.import_remote_activities(&batch, t(1)).expect("batch");
        assert_eq!(
            again[0].as_ref().map(|a| a.id).ok(),
            got[0].as_ref().map(|a| a.id).ok()
        );
        assert_eq!(
            store
                .activities(&ActivityQuery {
                    limit: 10,
                    ..ActivityQuery::default()
                })
                .expect("list")
                .1,
            2
        );
    }
}
