//! Microsoft 365 meetings and tasks through Microsoft Graph: the [`CalendarRemote`] of a
//! `CalendarSync` over a Mailbox on a `microsoft365` provider (AS-01, AS-02, BX-03, CS-04,
//! CS-05). The engine (`sync/calendar.rs`) owns the records, `since` for unlinked items, the
//! conflict and delete policies and the checkpoints; this module owns only Graph's wire format.
//!
//! - *Folders*: the calendars of `GET /v1.0/me/calendars` that `importMeetings.calendars`
//!   selects (by display name or id, or `all`) hold events; the To Do lists of
//!   `GET /v1.0/me/todo/lists` that `importTasks.folders` selects hold tasks. AS-01's "only
//!   tasks the syncing user owns": To Do keeps ownership per list (`isOwner`; a task has no
//!   owner of its own), so a list shared with the user by someone else (`isOwner: false`) is
//!   never a task folder, even when named. Folder ids are `calendar:{id}` / `todo:{id}`.
//! - *Events*: `GET /me/calendars/{id}/calendarView/delta?startDateTime&endDateTime`, then each
//!   `@odata.nextLink` until the `@odata.deltaLink`. A calendar view is a window: it starts at
//!   `since` and ends [`HORIZON_YEARS`] after the run that began the round; the window's end is
//!   kept in the cursor, and a delta round whose window has less than [`RENEW_YEARS`] left is
//!   replaced by a new full round (so meetings planned far ahead come in, at most once every
//!   two years a full listing). A view lists occurrences of a series, not its master: an
//!   occurrence or exception stands for its series, read once with `GET /me/events/{master}`
//!   (a recurring meeting is one activity, its `RRULE` from `recurrence`). An `@removed` entry
//!   is confirmed with a `GET` (Graph also reports events that left the window as removed):
//!   only a 404 makes it a removal, else the event is listed as it is. Because the view is a
//!   window, an event listing is never `full` (an event outside it proves no deletion).
//! - *Tasks*: `GET /me/todo/lists/{id}/tasks/delta?$expand=linkedResources` (a `full` listing
//!   when started from scratch). Task ids are `todo:{list}:{task}` (Graph ids hold no `:`).
//! - *Versions*: `@odata.etag` (else `changeKey`); updates and deletes carry it in `If-Match`,
//!   and a `412` is a [`Written::Conflict`], a `404` [`Written::Gone`].
//! - *Idempotent creates*: an event is created with `transactionId` = [`Write::uid`] (Graph
//!   answers a repeated create with the same id by not creating a second event); a task is
//!   created with a `linkedResource` whose `externalId` is the uid, read back as
//!   [`ical::Fields::uid`], so the engine finds it by its uid after a crash between the write
//!   and its link. An event created here reads back with `transactionId` as its uid for the
//!   same reason; other events use `iCalUId`.
//! - *Throttling and tokens*: `429` ends the run with [`RemoteError::Throttled`] and Graph's
//!   `Retry-After` (the scheduler waits, not this module); a `401` asks the token provider for
//!   a fresh token once; `410` or `syncStateNotFound` is [`RemoteError::TokenExpired`]. No
//!   token is ever logged or put in an error.
//! - *Invitations* (BX-03): Graph has no documented parameter that creates or updates a
//!   meeting without mailing its attendees (nothing like Google's `sendUpdates` or CalDAV's
//!   `SCHEDULE-AGENT`): creating an event with attendees sends invitations, changing a meeting
//!   the user organizes sends updates, and deleting it sends cancellations. So attendees are
//!   written only with [`Notify::All`] (Graph cannot limit its mail to external attendees, so
//!   [`Notify::External`] writes none either); with less, a change to a meeting the user
//!   organizes that has attendees is not written (logged, the item left as Graph has it) and
//!   such a meeting is not deleted there. Known gap: the participants of a meeting exported
//!   without them are Switchboard's only; a later change made in Outlook is imported with
//!   Graph's attendee list, which lacks them.
//! - *Times*: read in UTC (Graph's default without `Prefer: outlook.timezone`), written as
//!   UTC `dateTimeTimeZone`s; `originalStartTimeZone` is kept as the zone. Bodies are asked
//!   for as text (`Prefer: outlook.body-content-type="text"`).

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::{Answer, Graph};
use crate::config::kinds::CalendarSyncSpec;
use crate::config::types::AllOrList;
use crate::connector::SyncContext;
use crate::store::records::normalize_email;
use crate::sync::ical::{Fields, ItemKind};
use crate::sync::remote::{
    CalendarRemote, Cursor, Folder, Listed, Next, Notify, Page, RemoteError, RemoteFuture,
    RemoteItem, Write, Written,
};

/// How far ahead of the run that begins a round the calendar view reaches.
pub const HORIZON_YEARS: i64 = 3;
/// A delta round whose window ends sooner than this is replaced by a new full round.
pub const RENEW_YEARS: i64 = 1;
/// Items per page asked for (`Prefer: odata.maxpagesize`).
const PAGE_SIZE: &str = "odata.maxpagesize=50";
/// Bodies as text, not HTML.
const TEXT_BODIES: &str = "outlook.body-content-type=\"text\"";
/// The `applicationName` of the linked resource a task created here carries.
const LINK_APP: &str = "Switchboard";

const CALENDAR_PREFIX: &str = "calendar:";
const LIST_PREFIX: &str = "todo:";

/// Microsoft 365 calendars and To Do lists of one mailbox.
pub struct GraphCalendarRemote {
    graph: Graph,
    calendars: AllOrList,
    lists: AllOrList,
    since: DateTime<Utc>,
}

/// Graph's words for a failed call.
fn failed(what: &str, answer: &Answer) -> RemoteError {
    Graph::failure(what, answer)
}

/// A `2xx` answer's body as JSON.
fn body(what: &str, answer: &Answer) -> Result<Value, RemoteError> {
    answer.json(what)
}

/// A listing cursor as stored: whether the round is a full one, the calendar view's end
/// (events), and Graph's link.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    full: bool,
    end: Option<DateTime<Utc>>,
    url: String,
}

impl Link {
    fn encode(&self) -> String {
        format!(
            "{}|{}|{}",
            if self.full { "F" } else { "D" },
            self.end
                .map(|e| e.to_rfc3339())
                .unwrap_or_else(|| "-".into()),
            self.url
        )
    }

    fn decode(text: &str) -> Option<Link> {
        let mut parts = text.splitn(3, '|');
        let full = match parts.next()? {
            "F" => true,
            "D" => false,
            _ => return None,
        };
        let end = match parts.next()? {
            "-" => None,
            e => Some(DateTime::parse_from_rfc3339(e).ok()?.with_timezone(&Utc)),
        };
        Some(Link {
            full,
            end,
            url: parts.next()?.to_owned(),
        })
    }
}

/// What a Graph id of this remote names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target<'a> {
    Event(&'a str),
    Task { list: &'a str, task: &'a str },
}

fn target(id: &str) -> Target<'_> {
    match id
        .strip_prefix(LIST_PREFIX)
        .and_then(|rest| rest.split_once(':'))
    {
        Some((list, task)) => Target::Task { list, task },
        None => Target::Event(id),
    }
}

fn task_id(list: &str, task: &str) -> String {
    format!("{LIST_PREFIX}{list}:{task}")
}

/// Whether `names` selects a folder with this id and display name.
fn selected(names: &AllOrList, id: &str, name: &str) -> bool {
    match names {
        AllOrList::All(_) => true,
        AllOrList::List(list) => list.iter().any(|n| n == name || n == id),
    }
}

impl GraphCalendarRemote {
    /// A remote over `graph` (the mailbox's grant and the provider's `apiBaseUrl`): event
    /// folders are the calendars `calendars` selects, task folders the To Do lists `lists`
    /// selects; calendar views start at `since`.
    pub fn new(
        graph: Graph,
        calendars: AllOrList,
        lists: AllOrList,
        since: DateTime<Utc>,
    ) -> GraphCalendarRemote {
        GraphCalendarRemote {
            graph,
            calendars,
            lists,
            since,
        }
    }

    /// The remote of a `CalendarSync`: its calendar and list selections, calendar views from
    /// the start of its `since` day (UTC).
    pub fn for_sync(graph: Graph, spec: &CalendarSyncSpec) -> GraphCalendarRemote {
        GraphCalendarRemote::new(
            graph,
            spec.import_meetings.calendars.clone(),
            spec.import_tasks.folders.clone(),
            spec.since.and_time(chrono::NaiveTime::MIN).and_utc(),
        )
    }

    /// `GET`, `PATCH`, `POST` or `DELETE` with bodies asked for as text and Graph's paging.
    async fn call(
        &self,
        ctx: &SyncContext<'_>,
        what: &str,
        method: Method,
        url: &str,
        if_match: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, RemoteError> {
        let mut headers = vec![("Prefer", PAGE_SIZE), ("Prefer", TEXT_BODIES)];
        if let Some(v) = if_match {
            headers.push(("If-Match", v));
        }
        self.graph
            .call(ctx, what, method, url, &headers, body)
            .await
    }

    /// Every entry of a collection (`GET` then each `@odata.nextLink`).
    async fn collect(
        &self,
        ctx: &SyncContext<'_>,
        what: &str,
        first: String,
    ) -> Result<Vec<Value>, RemoteError> {
        let mut url = first;
        let mut all = Vec::new();
        loop {
            let answer = self.call(ctx, what, Method::GET, &url, None, None).await?;
            let mut page = body(what, &answer)?;
            if let Some(Value::Array(values)) = page.get_mut("value").map(Value::take) {
                all.extend(values);
            }
            match page["@odata.nextLink"].as_str() {
                Some(next) => url = next.to_owned(),
                None => return Ok(all),
            }
        }
    }

    /// One item by `GET`; `None` when Graph has it no more (404 / 410).
    async fn fetch(
        &self,
        ctx: &SyncContext<'_>,
        id: &str,
    ) -> Result<Option<RemoteItem<Fields>>, RemoteError> {
        let (url, what) = match target(id) {
            Target::Event(event) => (
                self.graph.url(&["me", "events", event], &[]),
                "read an event",
            ),
            Target::Task { list, task } => (
                self.graph.url(
                    &["me", "todo", "lists", list, "tasks", task],
                    &[("$expand", "linkedResources")],
                ),
                "read a task",
            ),
        };
        let answer = self.call(ctx, what, Method::GET, &url, None, None).await?;
        match answer.status {
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(None),
            _ => {
                let v = body(what, &answer)?;
                Ok(Some(match target(id) {
                    Target::Event(_) => event_item(v),
                    Target::Task { list, .. } => task_item(list, v),
                }))
            }
        }
    }

    /// One page of a delta round at `link`; an expired delta is [`RemoteError::TokenExpired`].
    async fn delta_page(
        &self,
        ctx: &SyncContext<'_>,
        what: &str,
        link: &Link,
    ) -> Result<Value, RemoteError> {
        let answer = self
            .call(ctx, what, Method::GET, &link.url, None, None)
            .await?;
        if !answer.status.is_success() && answer.delta_expired() {
            return Err(RemoteError::TokenExpired);
        }
        body(what, &answer)
    }

    async fn list_events(
        &self,
        ctx: &SyncContext<'_>,
        calendar: &str,
        cursor: Cursor<'_>,
    ) -> Result<Page<Fields>, RemoteError> {
        let now = ctx.clock.now();
        let start = || {
            let end = now + chrono::Duration::days(365 * HORIZON_YEARS);
            Link {
                full: true,
                end: Some(end),
                url: self.graph.url(
                    &["me", "calendars", calendar, "calendarView", "delta"],
                    &[
                        ("startDateTime", &graph_stamp(self.since)),
                        ("endDateTime", &graph_stamp(end)),
                    ],
                ),
            }
        };
        let link = match cursor {
            Cursor::Start => start(),
            Cursor::Token(t) => match Link::decode(t) {
                Some(l)
                    if l.end
                        .is_some_and(|e| e - chrono::Duration::days(365 * RENEW_YEARS) > now) =>
                {
                    Link { full: false, ..l }
                }
                _ => {
                    tracing::info!(
                        calendar,
                        "the calendar view's window nears its end; starting a new round"
                    );
                    start()
                }
            },
            Cursor::Page(p) => Link::decode(p).unwrap_or_else(start),
        };
        let page = self.delta_page(ctx, "calendar view delta", &link).await?;
        let mut items: Vec<Listed<Fields>> = Vec::new();
        let mut removed = Vec::new();
        let mut masters: Vec<String> = Vec::new();
        let take = |items: &mut Vec<Listed<Fields>>, v: Value, masters: &mut Vec<String>| {
            match v["seriesMasterId"]
                .as_str()
                .filter(|_| v["type"] != "seriesMaster")
            {
                Some(master) => {
                    if !masters.iter().any(|m| m == master) {
                        masters.push(master.to_owned());
                    }
                }
                None => {
                    let item = event_item(v);
                    if !items.iter().any(|i| i.id() == item.id) {
                        items.push(Listed::Item(item));
                    }
                }
            }
        };
        for v in page["value"].as_array().cloned().unwrap_or_default() {
            let Some(id) = v["id"].as_str().map(str::to_owned) else {
                continue;
            };
            if v.get("@removed").is_some() {
                // Graph reports events that left the window as removed too: ask
                match self.fetch(ctx, &id).await? {
                    None => removed.push(id),
                    Some(item) => take(
                        &mut items,
                        serde_json::from_str(&item.data).unwrap_or_default(),
                        &mut masters,
                    ),
                }
                continue;
            }
            take(&mut items, v, &mut masters);
        }
        for master in masters {
            if items.iter().any(|i| i.id() == master) {
                continue;
            }
            match self.fetch(ctx, &master).await? {
                Some(item) => items.push(Listed::Item(item)),
                None => removed.push(master),
            }
        }
        Ok(Page {
            items,
            removed,
            next: next_of(&page, &link)?,
            full: false,
        })
    }

    async fn list_tasks(
        &self,
        ctx: &SyncContext<'_>,
        list: &str,
        cursor: Cursor<'_>,
    ) -> Result<Page<Fields>, RemoteError> {
        let start = || Link {
            full: true,
            end: None,
            url: self.graph.url(
                &["me", "todo", "lists", list, "tasks", "delta"],
                &[("$expand", "linkedResources")],
            ),
        };
        let link = match cursor {
            Cursor::Start => start(),
            Cursor::Token(t) => Link::decode(t).map_or_else(start, |l| Link { full: false, ..l }),
            Cursor::Page(p) => Link::decode(p).unwrap_or_else(start),
        };
        let page = self.delta_page(ctx, "To Do tasks delta", &link).await?;
        let mut items = Vec::new();
        let mut removed = Vec::new();
        for v in page["value"].as_array().cloned().unwrap_or_default() {
            let Some(id) = v["id"].as_str() else { continue };
            if v.get("@removed").is_some() {
                removed.push(task_id(list, id));
            } else {
                items.push(Listed::Item(task_item(list, v)));
            }
        }
        Ok(Page {
            items,
            removed,
            next: next_of(&page, &link)?,
            full: link.full,
        })
    }

    async fn write_event(
        &self,
        ctx: &SyncContext<'_>,
        write: Write<'_, Fields>,
        notify: Notify,
    ) -> Result<Written<Fields>, RemoteError> {
        let invite = notify == Notify::All;
        let Some(current) = write.current else {
            let calendar = write
                .folder
                .id
                .strip_prefix(CALENDAR_PREFIX)
                .unwrap_or(&write.folder.id);
            let mut new = event_body(None, write.fields, invite);
            new.insert("transactionId".into(), json!(write.uid));
            let url = self
                .graph
                .url(&["me", "calendars", calendar, "events"], &[]);
            let what = "create an event";
            let answer = self
                .call(
                    ctx,
                    what,
                    Method::POST,
                    &url,
                    None,
                    Some(&Value::Object(new)),
                )
                .await?;
            return Ok(Written::Done(Some(event_item(body(what, &answer)?))));
        };
        let Target::Event(id) = target(&current.id) else {
            return Err(RemoteError::Failed(
                "a task cannot be written as an event".into(),
            ));
        };
        let changes = event_body(Some(&current.fields), write.fields, invite);
        if changes.is_empty() {
            return Ok(Written::Done(Some(current.clone())));
        }
        let json: Value = serde_json::from_str(&current.data).unwrap_or_default();
        if !invite && organizes_meeting(&json) {
            tracing::warn!(
                event = id,
                "not written: changing a meeting the mailbox organizes would send updates to its attendees, which `invitations` does not allow"
            );
            return Ok(Written::Done(Some(current.clone())));
        }
        let url = self.graph.url(&["me", "events", id], &[]);
        let what = "update an event";
        let answer = self
            .call(
                ctx,
                what,
                Method::PATCH,
                &url,
                current.version.as_deref(),
                Some(&Value::Object(changes)),
            )
            .await?;
        written(answer, what, event_item)
    }

    async fn write_task(
        &self,
        ctx: &SyncContext<'_>,
        write: Write<'_, Fields>,
    ) -> Result<Written<Fields>, RemoteError> {
        let Some(current) = write.current else {
            let list = write
                .folder
                .id
                .strip_prefix(LIST_PREFIX)
                .unwrap_or(&write.folder.id)
                .to_owned();
            let mut new = task_body(None, write.fields);
            new.insert(
                "linkedResources".into(),
                json!([{
                    "applicationName": LINK_APP,
                    "externalId": write.uid,
                    "displayName": write.fields.summary.clone().unwrap_or_default(),
                }]),
            );
            let url = self
                .graph
                .url(&["me", "todo", "lists", &list, "tasks"], &[]);
            let what = "create a task";
            let answer = self
                .call(
                    ctx,
                    what,
                    Method::POST,
                    &url,
                    None,
                    Some(&Value::Object(new)),
                )
                .await?;
            return Ok(Written::Done(Some(task_item(&list, body(what, &answer)?))));
        };
        let Target::Task { list, task } = target(&current.id) else {
            return Err(RemoteError::Failed(
                "an event cannot be written as a task".into(),
            ));
        };
        let changes = task_body(Some(&current.fields), write.fields);
        if changes.is_empty() {
            return Ok(Written::Done(Some(current.clone())));
        }
        let url = self
            .graph
            .url(&["me", "todo", "lists", list, "tasks", task], &[]);
        let what = "update a task";
        let answer = self
            .call(
                ctx,
                what,
                Method::PATCH,
                &url,
                current.version.as_deref(),
                Some(&Value::Object(changes)),
            )
            .await?;
        written(answer, what, |v| task_item(list, v))
    }

    async fn remove(
        &self,
        ctx: &SyncContext<'_>,
        id: &str,
        version: Option<&str>,
        notify: Notify,
    ) -> Result<Written<Fields>, RemoteError> {
        let url = match target(id) {
            Target::Event(event) => {
                if notify != Notify::All {
                    let Some(item) = self.fetch(ctx, id).await? else {
                        return Ok(Written::Gone);
                    };
                    let json: Value = serde_json::from_str(&item.data).unwrap_or_default();
                    if organizes_meeting(&json) {
                        tracing::warn!(
                            event,
                            "not deleted: deleting a meeting the mailbox organizes would send cancellations to its attendees, which `invitations` does not allow"
                        );
                        return Ok(Written::Done(None));
                    }
                }
                self.graph.url(&["me", "events", event], &[])
            }
            Target::Task { list, task } => self
                .graph
                .url(&["me", "todo", "lists", list, "tasks", task], &[]),
        };
        let what = "delete an item";
        let answer = self
            .call(ctx, what, Method::DELETE, &url, version, None)
            .await?;
        match answer.status {
            StatusCode::PRECONDITION_FAILED => Ok(Written::Conflict),
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(Written::Gone),
            s if s.is_success() => Ok(Written::Done(None)),
            _ => Err(failed(what, &answer)),
        }
    }
}

/// The outcome of a conditional `PATCH`.
fn written(
    answer: Answer,
    what: &str,
    item: impl FnOnce(Value) -> RemoteItem<Fields>,
) -> Result<Written<Fields>, RemoteError> {
    match answer.status {
        StatusCode::PRECONDITION_FAILED => Ok(Written::Conflict),
        StatusCode::NOT_FOUND | StatusCode::GONE => Ok(Written::Gone),
        _ => Ok(Written::Done(Some(item(body(what, &answer)?)))),
    }
}

/// The page's `Next`: its `@odata.nextLink`, else its `@odata.deltaLink`.
fn next_of(page: &Value, link: &Link) -> Result<Next, RemoteError> {
    if let Some(next) = page["@odata.nextLink"].as_str() {
        return Ok(Next::More(
            Link {
                url: next.to_owned(),
                ..link.clone()
            }
            .encode(),
        ));
    }
    if let Some(delta) = page["@odata.deltaLink"].as_str() {
        return Ok(Next::Done(Some(
            Link {
                full: false,
                end: link.end,
                url: delta.to_owned(),
            }
            .encode(),
        )));
    }
    Err(RemoteError::Failed(
        "a Microsoft Graph delta page carried neither @odata.nextLink nor @odata.deltaLink".into(),
    ))
}

/// Whether an event is a meeting the mailbox organizes, with attendees (any change to it
/// mails them).
fn organizes_meeting(event: &Value) -> bool {
    event["isOrganizer"].as_bool().unwrap_or(true)
        && event["attendees"].as_array().is_some_and(|a| !a.is_empty())
}

/// A time as Graph's query parameters take it.
fn graph_stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A `dateTimeTimeZone` in UTC.
fn date_time_zone(t: DateTime<Utc>) -> Value {
    // Graph writes seven fractional digits; Switchboard's times are whole seconds
    json!({"dateTime": format!("{}.0000000", t.format("%Y-%m-%dT%H:%M:%S")), "timeZone": "UTC"})
}

/// Reads a `dateTimeTimeZone` (`{"dateTime": "2026-01-02T10:00:00.0000000", "timeZone"}`):
/// an IANA zone is resolved, `UTC` (Graph's default) and anything else are read as UTC; the
/// second value says a zone was not understood.
fn read_date_time(v: &Value) -> Option<(DateTime<Utc>, bool)> {
    let text = v["dateTime"].as_str()?;
    let text = text.trim_end_matches('Z');
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    let zone = v["timeZone"].as_str().unwrap_or("UTC");
    if zone.is_empty() || zone.eq_ignore_ascii_case("UTC") {
        return Some((local.and_utc(), false));
    }
    match zone.parse::<chrono_tz::Tz>() {
        Ok(tz) => tz
            .from_local_datetime(&local)
            .earliest()
            .map(|t| (t.with_timezone(&Utc), false)),
        Err(_) => Some((local.and_utc(), true)),
    }
}

fn text(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A Graph `attendee`'s `status.response` as the store's response.
fn response_of(graph: &str) -> &'static str {
    match graph {
        "accepted" | "organizer" => "accepted",
        "tentativelyAccepted" => "tentative",
        "declined" => "declined",
        _ => "none",
    }
}

const WEEKDAYS: [(&str, &str); 7] = [
    ("monday", "MO"),
    ("tuesday", "TU"),
    ("wednesday", "WE"),
    ("thursday", "TH"),
    ("friday", "FR"),
    ("saturday", "SA"),
    ("sunday", "SU"),
];
const INDEXES: [(&str, i32); 5] = [
    ("first", 1),
    ("second", 2),
    ("third", 3),
    ("fourth", 4),
    ("last", -1),
];

/// A `patternedRecurrence` as an `RRULE` value; `None` for a pattern it cannot say.
pub fn rrule_of(recurrence: &Value) -> Option<String> {
    let p = &recurrence["pattern"];
    let interval = p["interval"].as_u64().unwrap_or(1).max(1);
    let days = || -> String {
        p["daysOfWeek"]
            .as_array()
            .map(|d| {
                d.iter()
                    .filter_map(|d| {
                        WEEKDAYS
                            .iter()
                            .find(|(n, _)| Some(*n) == d.as_str())
                            .map(|(_, c)| *c)
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    let setpos = || {
        let index = p["index"].as_str().unwrap_or("first");
        INDEXES
            .iter()
            .find(|(n, _)| *n == index)
            .map_or(1, |(_, i)| *i)
    };
    let mut rule = match p["type"].as_str()? {
        "daily" => format!("FREQ=DAILY;INTERVAL={interval}"),
        "weekly" => format!("FREQ=WEEKLY;INTERVAL={interval};BYDAY={}", days()),
        "absoluteMonthly" => format!(
            "FREQ=MONTHLY;INTERVAL={interval};BYMONTHDAY={}",
            p["dayOfMonth"].as_u64()?
        ),
        "relativeMonthly" => format!(
            "FREQ=MONTHLY;INTERVAL={interval};BYDAY={};BYSETPOS={}",
            days(),
            setpos()
        ),
        "absoluteYearly" => format!(
            "FREQ=YEARLY;INTERVAL={interval};BYMONTH={};BYMONTHDAY={}",
            p["month"].as_u64()?,
            p["dayOfMonth"].as_u64()?
        ),
        "relativeYearly" => format!(
            "FREQ=YEARLY;INTERVAL={interval};BYMONTH={};BYDAY={};BYSETPOS={}",
            p["month"].as_u64()?,
            days(),
            setpos()
        ),
        _ => return None,
    };
    let r = &recurrence["range"];
    match r["type"].as_str() {
        Some("endDate") => {
            let end = NaiveDate::parse_from_str(r["endDate"].as_str()?, "%Y-%m-%d").ok()?;
            rule.push_str(&format!(";UNTIL={}", end.format("%Y%m%d")));
        }
        Some("numbered") => {
            rule.push_str(&format!(";COUNT={}", r["numberOfOccurrences"].as_u64()?));
        }
        _ => {}
    }
    Some(rule)
}

/// An `RRULE` value as a `patternedRecurrence` starting on `start`; `None` for a rule Graph's
/// patterns cannot hold (then the recurrence is not written).
pub fn recurrence_of(rrule: &str, start: DateTime<Utc>) -> Option<Value> {
    let parts: Vec<(String, String)> = rrule
        .split(';')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_uppercase(), v.trim().to_ascii_uppercase()))
        .collect();
    let get = |k: &str| parts.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if parts.iter().any(|(k, _)| {
        !matches!(
            k.as_str(),
            "FREQ"
                | "INTERVAL"
                | "BYDAY"
                | "BYMONTHDAY"
                | "BYMONTH"
                | "BYSETPOS"
                | "COUNT"
                | "UNTIL"
                | "WKST"
        )
    }) {
        return None;
    }
    let interval: u64 = get("INTERVAL").map_or(Some(1), |i| i.parse().ok())?;
    let days: Option<Vec<&str>> = get("BYDAY").map(|d| {
        d.split(',')
            .filter_map(|c| {
                WEEKDAYS
                    .iter()
                    .find(|(_, code)| *code == c)
                    .map(|(n, _)| *n)
            })
            .collect()
    });
    if let (Some(byday), Some(days)) = (get("BYDAY"), &days)
        && byday.split(',').count() != days.len()
    {
        return None; // BYDAY with an ordinal (1MO): not a Graph pattern
    }
    let index = match get("BYSETPOS") {
        None => None,
        Some(p) => Some(
            INDEXES
                .iter()
                .find(|(_, i)| i.to_string() == p)
                .map(|(n, _)| *n)?,
        ),
    };
    let num = |k: &str| get(k).and_then(|v| v.parse::<u64>().ok());
    let mut pattern = Map::new();
    pattern.insert("interval".into(), json!(interval));
    let kind = match (get("FREQ")?, &days, index) {
        ("DAILY", None, None) => "daily",
        ("WEEKLY", _, None) => {
            let days = days.clone().unwrap_or_else(|| {
                vec![WEEKDAYS[start.date_naive().weekday().num_days_from_monday() as usize].0]
            });
            pattern.insert("daysOfWeek".into(), json!(days));
            "weekly"
        }
        ("MONTHLY", None, None) => {
            pattern.insert(
                "dayOfMonth".into(),
                json!(num("BYMONTHDAY").unwrap_or(u64::from(start.day()))),
            );
            "absoluteMonthly"
        }
        ("MONTHLY", Some(d), Some(i)) => {
            pattern.insert("daysOfWeek".into(), json!(d));
            pattern.insert("index".into(), json!(i));
            "relativeMonthly"
        }
        ("YEARLY", None, None) => {
            pattern.insert(
                "month".into(),
                json!(num("BYMONTH").unwrap_or(u64::from(start.month()))),
            );
            pattern.insert(
                "dayOfMonth".into(),
                json!(num("BYMONTHDAY").unwrap_or(u64::from(start.day()))),
            );
            "absoluteYearly"
        }
        ("YEARLY", Some(d), Some(i)) => {
            pattern.insert(
                "month".into(),
                json!(num("BYMONTH").unwrap_or(u64::from(start.month()))),
            );
            pattern.insert("daysOfWeek".into(), json!(d));
            pattern.insert("index".into(), json!(i));
            "relativeYearly"
        }
        _ => return None,
    };
    pattern.insert("type".into(), json!(kind));
    let start_date = start.format("%Y-%m-%d").to_string();
    let range = if let Some(count) = num("COUNT") {
        json!({"type": "numbered", "startDate": start_date, "numberOfOccurrences": count})
    } else if let Some(until) = get("UNTIL") {
        let date = NaiveDate::parse_from_str(until.get(..8)?, "%Y%m%d").ok()?;
        json!({"type": "endDate", "startDate": start_date, "endDate": date.format("%Y-%m-%d").to_string()})
    } else {
        json!({"type": "noEnd", "startDate": start_date})
    };
    Some(json!({"pattern": pattern, "range": range}))
}

/// The neutral fields of a Graph `event`.
pub fn event_fields(v: &Value) -> Fields {
    let mut warnings = Vec::new();
    let mut time = |key: &str| {
        let (t, unknown) = read_date_time(&v[key])?;
        if unknown {
            warnings.push(format!(
                "{key}: time zone {:?} is not an IANA name; read as UTC",
                v[key]["timeZone"].as_str().unwrap_or_default()
            ));
        }
        Some(t)
    };
    let start = time("start");
    let end = time("end");
    let status = if v["isCancelled"].as_bool() == Some(true) {
        "CANCELLED"
    } else if v["showAs"] == "tentative" {
        "TENTATIVE"
    } else {
        "CONFIRMED"
    };
    let mut attendees: Vec<(String, String)> = Vec::new();
    for a in v["attendees"].as_array().into_iter().flatten() {
        if let Some(address) = a["emailAddress"]["address"]
            .as_str()
            .and_then(normalize_email)
            && !attendees.iter().any(|(e, _)| *e == address)
        {
            let response = response_of(a["status"]["response"].as_str().unwrap_or("none"));
            attendees.push((address, response.to_owned()));
        }
    }
    Fields {
        kind: ItemKind::Event,
        uid: text(&v["transactionId"]).or_else(|| text(&v["iCalUId"])),
        summary: text(&v["subject"]),
        description: text(&v["body"]["content"]),
        location: text(&v["location"]["displayName"]),
        start,
        end,
        due: None,
        all_day: v["isAllDay"].as_bool().unwrap_or(false),
        time_zone: text(&v["originalStartTimeZone"]),
        status: Some(status.to_owned()),
        organizer: v["organizer"]["emailAddress"]["address"]
            .as_str()
            .and_then(normalize_email),
        attendees,
        rrule: v
            .get("recurrence")
            .filter(|r| r.is_object())
            .and_then(rrule_of),
        url: text(&v["onlineMeeting"]["joinUrl"]).or_else(|| text(&v["onlineMeetingUrl"])),
        last_modified: v["lastModifiedDateTime"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        warnings,
    }
}

/// A Graph `todoTask` status as an iCalendar `STATUS`.
fn task_status(graph: &str) -> Option<&'static str> {
    Some(match graph {
        "notStarted" | "waitingOnOthers" | "deferred" => "NEEDS-ACTION",
        "inProgress" => "IN-PROCESS",
        "completed" => "COMPLETED",
        _ => return None,
    })
}

/// The neutral fields of a Graph `todoTask`.
pub fn task_fields(v: &Value) -> Fields {
    let uid = v["linkedResources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["applicationName"] == LINK_APP)
        .and_then(|r| text(&r["externalId"]));
    Fields {
        kind: ItemKind::Todo,
        uid,
        summary: text(&v["title"]),
        description: text(&v["body"]["content"]),
        start: read_date_time(&v["startDateTime"]).map(|(t, _)| t),
        due: read_date_time(&v["dueDateTime"]).map(|(t, _)| t),
        status: v["status"]
            .as_str()
            .and_then(task_status)
            .map(str::to_owned),
        last_modified: v["lastModifiedDateTime"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        ..Fields::default()
    }
}

/// The neutral fields of a stored representation ([`RemoteItem::data`]): a task's JSON (it
/// has a `title`, an event none) or an event's; `None` for anything else.
pub fn decode(data: &str) -> Option<Fields> {
    let v: Value = serde_json::from_str(data).ok()?;
    let o = v.as_object()?;
    if o.contains_key("title") && !o.contains_key("subject") {
        Some(task_fields(&v))
    } else if o.contains_key("subject") || o.contains_key("start") {
        Some(event_fields(&v))
    } else {
        None
    }
}

fn version_of(v: &Value) -> Option<String> {
    text(&v["@odata.etag"]).or_else(|| text(&v["changeKey"]))
}

fn event_item(v: Value) -> RemoteItem<Fields> {
    RemoteItem {
        id: v["id"].as_str().unwrap_or_default().to_owned(),
        version: version_of(&v),
        fields: event_fields(&v),
        data: v.to_string(),
    }
}

fn task_item(list: &str, v: Value) -> RemoteItem<Fields> {
    RemoteItem {
        id: task_id(list, v["id"].as_str().unwrap_or_default()),
        version: version_of(&v),
        fields: task_fields(&v),
        data: v.to_string(),
    }
}

/// The properties of an event to send: every modelled one for a create (`old` = `None`),
/// else only those whose value differs from `old`. Attendees only when `invite`.
pub fn event_body(old: Option<&Fields>, new: &Fields, invite: bool) -> Map<String, Value> {
    let blank = Fields::default();
    let creating = old.is_none();
    let old = old.unwrap_or(&blank);
    let mut body = Map::new();
    if creating || old.summary != new.summary {
        body.insert(
            "subject".into(),
            json!(new.summary.clone().unwrap_or_default()),
        );
    }
    if creating || old.description != new.description {
        body.insert(
            "body".into(),
            json!({"contentType": "text", "content": new.description.clone().unwrap_or_default()}),
        );
    }
    if creating || old.location != new.location {
        body.insert(
            "location".into(),
            json!({"displayName": new.location.clone().unwrap_or_default()}),
        );
    }
    if (creating || old.start != new.start || old.end != new.end || old.all_day != new.all_day)
        && let Some(start) = new.start
    {
        let end = new.end.filter(|e| *e > start).unwrap_or(if new.all_day {
            start + chrono::Duration::days(1)
        } else {
            start + chrono::Duration::minutes(30)
        });
        body.insert("start".into(), date_time_zone(start));
        body.insert("end".into(), date_time_zone(end));
        body.insert("isAllDay".into(), json!(new.all_day));
    }
    if (creating || old.rrule != new.rrule)
        && let (Some(rrule), Some(start)) = (&new.rrule, new.start)
    {
        match recurrence_of(rrule, start) {
            Some(r) => {
                body.insert("recurrence".into(), r);
            }
            None => tracing::warn!(
                rrule,
                "a recurrence Graph's patterns cannot hold is not written"
            ),
        }
    }
    if invite && (creating || old.attendees != new.attendees) {
        let attendees: Vec<Value> = new
            .attendees
            .iter()
            .filter(|(a, _)| Some(a) != new.organizer.as_ref())
            .map(|(a, _)| json!({"emailAddress": {"address": a}, "type": "required"}))
            .collect();
        body.insert("attendees".into(), json!(attendees));
    }
    body
}

/// An iCalendar task `STATUS` as Graph's; `None` for one To Do has no word for.
fn graph_task_status(status: &str) -> Option<&'static str> {
    Some(match status.to_ascii_uppercase().as_str() {
        "NEEDS-ACTION" => "notStarted",
        "IN-PROCESS" => "inProgress",
        "COMPLETED" => "completed",
        _ => return None,
    })
}

/// The properties of a task to send, as [`event_body`].
pub fn task_body(old: Option<&Fields>, new: &Fields) -> Map<String, Value> {
    let blank = Fields::default();
    let creating = old.is_none();
    let old = old.unwrap_or(&blank);
    let mut body = Map::new();
    if creating || old.summary != new.summary {
        body.insert(
            "title".into(),
            json!(new.summary.clone().unwrap_or_default()),
        );
    }
    if creating || old.description != new.description {
        body.insert(
            "body".into(),
            json!({"contentType": "text", "content": new.description.clone().unwrap_or_default()}),
        );
    }
    if creating || old.due != new.due {
        body.insert(
            "dueDateTime".into(),
            new.due.map_or(Value::Null, date_time_zone),
        );
    }
    if creating || old.start != new.start {
        body.insert(
            "startDateTime".into(),
            new.start.map_or(Value::Null, date_time_zone),
        );
    }
    if old.status != new.status
        && let Some(status) = new.status.as_deref().and_then(graph_task_status)
    {
        body.insert("status".into(), json!(status));
    }
    body
}

impl CalendarRemote for GraphCalendarRemote {
    fn folders<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
    ) -> RemoteFuture<'a, Vec<(Folder, ItemKind)>> {
        Box::pin(async move {
            let mut folders = Vec::new();
            let calendars = self
                .collect(
                    ctx,
                    "list calendars",
                    self.graph.url(&["me", "calendars"], &[]),
                )
                .await?;
            for c in &calendars {
                let (Some(id), name) = (c["id"].as_str(), c["name"].as_str().unwrap_or_default())
                else {
                    continue;
                };
                if selected(&self.calendars, id, name) {
                    folders.push((
                        Folder {
                            id: format!("{CALENDAR_PREFIX}{id}"),
                            name: name.to_owned(),
                        },
                        ItemKind::Event,
                    ));
                }
            }
            let lists = self
                .collect(
                    ctx,
                    "list To Do lists",
                    self.graph.url(&["me", "todo", "lists"], &[]),
                )
                .await?;
            for l in &lists {
                let (Some(id), name) = (
                    l["id"].as_str(),
                    l["displayName"].as_str().unwrap_or_default(),
                ) else {
                    continue;
                };
                if !selected(&self.lists, id, name) {
                    continue;
                }
                if l["isOwner"].as_bool() == Some(false) {
                    tracing::info!(
                        list = name,
                        "a To Do list shared by another owner is not imported (AS-01)"
                    );
                    continue;
                }
                folders.push((
                    Folder {
                        id: format!("{LIST_PREFIX}{id}"),
                        name: name.to_owned(),
                    },
                    ItemKind::Todo,
                ));
            }
            if let AllOrList::List(names) = &self.calendars {
                for n in names {
                    if !calendars
                        .iter()
                        .any(|c| c["name"] == n.as_str() || c["id"] == n.as_str())
                    {
                        tracing::warn!(calendar = %n, "the mailbox has no calendar of this name");
                    }
                }
            }
            Ok(folders)
        })
    }

    fn list<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        folder: &'a Folder,
        cursor: Cursor<'a>,
    ) -> RemoteFuture<'a, Page<Fields>> {
        Box::pin(async move {
            match folder.id.strip_prefix(LIST_PREFIX) {
                Some(list) => self.list_tasks(ctx, list, cursor).await,
                None => {
                    let calendar = folder
                        .id
                        .strip_prefix(CALENDAR_PREFIX)
                        .unwrap_or(&folder.id);
                    self.list_events(ctx, calendar, cursor).await
                }
            }
        })
    }

    fn read<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        _folder: &'a Folder,
        ids: &'a [String],
    ) -> RemoteFuture<'a, Vec<RemoteItem<Fields>>> {
        Box::pin(async move {
            let mut items = Vec::new();
            for id in ids {
                if let Some(item) = self.fetch(ctx, id).await? {
                    items.push(item);
                }
            }
            Ok(items)
        })
    }

    fn get<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        id: &'a str,
    ) -> RemoteFuture<'a, Option<RemoteItem<Fields>>> {
        Box::pin(self.fetch(ctx, id))
    }

    fn decode(&self, data: &str) -> Option<Fields> {
        decode(data)
    }

    fn holds(&self, folder: &Folder, id: &str) -> bool {
        // a task of list L is `todo:L:T`; an event's id says nothing of its calendar, and an
        // event listing is never full
        id.strip_prefix(folder.id.as_str())
            .is_some_and(|rest| rest.starts_with(':'))
    }

    fn write<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        write: Write<'a, Fields>,
        notify: Notify,
    ) -> RemoteFuture<'a, Written<Fields>> {
        Box::pin(async move {
            let task = match write.current {
                Some(current) => matches!(target(&current.id), Target::Task { .. }),
                None => write.folder.id.starts_with(LIST_PREFIX),
            };
            if task {
                self.write_task(ctx, write).await
            } else {
                self.write_event(ctx, write, notify).await
            }
        })
    }

    fn delete<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        id: &'a str,
        version: Option<&'a str>,
        notify: Notify,
    ) -> RemoteFuture<'a, Written<Fields>> {
        Box::pin(self.remove(ctx, id, version, notify))
    }

    fn requests(&self) -> u64 {
        self.graph.requests()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn an_event_reads_as_a_meeting_with_attendees_their_responses_and_the_join_link() {
        // REQ: AS-01
        let v = json!({
            "id": "AAMkE1",
            "@odata.etag": "W/\"CQAAABYAAA1\"",
            "iCalUId": "040000008200E00074C5B7101A82E008",
            "subject": "Quarterly review",
            "body": {"contentType": "text", "content": "Agenda\n"},
            "location": {"displayName": "Room 4"},
            "start": {"dateTime": "2026-03-02T09:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-03-02T10:00:00.0000000", "timeZone": "UTC"},
            "originalStartTimeZone": "W. Europe Standard Time",
            "isAllDay": false,
            "isCancelled": false,
            "showAs": "busy",
            "organizer": {"emailAddress": {"name": "Sales", "address": "Sales@Corp.example"}},
            "attendees": [
                {"emailAddress": {"address": "ann@client.example"}, "status": {"response": "accepted"}},
                {"emailAddress": {"address": "bo@client.example"}, "status": {"response": "tentativelyAccepted"}},
                {"emailAddress": {"address": "cy@client.example"}, "status": {"response": "notResponded"}}
            ],
            "onlineMeeting": {"joinUrl": "https://teams.microsoft.com/l/meetup-join/1"},
            "lastModifiedDateTime": "2026-02-01T08:00:00Z"
        });
        let item = event_item(v);
        assert_eq!(item.id, "AAMkE1");
        assert_eq!(item.version.as_deref(), Some("W/\"CQAAABYAAA1\""));
        let f = item.fields;
        assert_eq!(f.kind, ItemKind::Event);
        assert_eq!(f.uid.as_deref(), Some("040000008200E00074C5B7101A82E008"));
        assert_eq!(f.summary.as_deref(), Some("Quarterly review"));
        assert_eq!(f.description.as_deref(), Some("Agenda"));
        assert_eq!(f.location.as_deref(), Some("Room 4"));
        assert_eq!(f.start, Some(utc("2026-03-02T09:00:00Z")));
        assert_eq!(f.end, Some(utc("2026-03-02T10:00:00Z")));
        assert_eq!(f.time_zone.as_deref(), Some("W. Europe Standard Time"));
        assert_eq!(f.status.as_deref(), Some("CONFIRMED"));
        assert_eq!(f.organizer.as_deref(), Some("sales@corp.example"));
        assert_eq!(
            f.attendees,
            vec![
                ("ann@client.example".to_owned(), "accepted".to_owned()),
                ("bo@client.example".to_owned(), "tentative".to_owned()),
                ("cy@client.example".to_owned(), "none".to_owned()),
            ]
        );
        assert_eq!(
            f.url.as_deref(),
            Some("https://teams.microsoft.com/l/meetup-join/1")
        );
        assert_eq!(f.last_modified, Some(utc("2026-02-01T08:00:00Z")));
    }

    #[test]
    fn an_event_created_here_reads_back_with_its_transaction_id_as_uid() {
        let f =
            event_fields(&json!({"id": "x", "iCalUId": "ical", "transactionId": "switchboard-1"}));
        assert_eq!(f.uid.as_deref(), Some("switchboard-1"));
    }

    #[test]
    fn times_in_an_iana_zone_are_resolved_and_an_unknown_zone_is_a_warning() {
        let f = event_fields(&json!({
            "start": {"dateTime": "2026-07-01T09:00:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2026-07-01T10:00:00", "timeZone": "Pacific Standard Time"},
        }));
        assert_eq!(f.start, Some(utc("2026-07-01T07:00:00Z")));
        assert_eq!(f.end, Some(utc("2026-07-01T10:00:00Z")));
        assert_eq!(f.warnings.len(), 1);
    }

    #[test]
    fn cancelled_and_tentative_events_say_so() {
        assert_eq!(
            event_fields(&json!({"isCancelled": true}))
                .status
                .as_deref(),
            Some("CANCELLED")
        );
        assert_eq!(
            event_fields(&json!({"showAs": "tentative"}))
                .status
                .as_deref(),
            Some("TENTATIVE")
        );
    }

    #[test]
    fn a_task_reads_with_its_due_date_status_and_the_uid_of_its_link() {
        let item = task_item(
            "L1",
            json!({
                "id": "T1",
                "@odata.etag": "W/\"t1\"",
                "title": "Call back",
                "body": {"content": "", "contentType": "text"},
                "status": "inProgress",
                "dueDateTime": {"dateTime": "2026-03-05T00:00:00.0000000", "timeZone": "UTC"},
                "linkedResources": [
                    {"applicationName": "Other", "externalId": "nope"},
                    {"applicationName": "Switchboard", "externalId": "switchboard-abc-activity-7"}
                ],
                "lastModifiedDateTime": "2026-02-01T08:00:00.1234567Z"
            }),
        );
        assert_eq!(item.id, "todo:L1:T1");
        assert_eq!(
            target(&item.id),
            Target::Task {
                list: "L1",
                task: "T1"
            }
        );
        let f = item.fields;
        assert_eq!(f.kind, ItemKind::Todo);
        assert_eq!(f.summary.as_deref(), Some("Call back"));
        assert_eq!(f.description, None);
        assert_eq!(f.status.as_deref(), Some("IN-PROCESS"));
        assert_eq!(f.due, Some(utc("2026-03-05T00:00:00Z")));
        assert_eq!(f.uid.as_deref(), Some("switchboard-abc-activity-7"));
        assert!(f.last_modified.is_some());
    }

    #[test]
    fn stored_json_decodes_as_the_event_or_task_it_is() {
        let event = event_item(json!({"id": "E", "subject": "Demo"}));
        assert_eq!(decode(&event.data), Some(event.fields));
        let task = task_item(
            "L",
            json!({"id": "T", "title": "Call", "status": "completed"}),
        );
        assert_eq!(decode(&task.data), Some(task.fields));
        assert_eq!(decode("{}"), None);
        assert_eq!(decode("BEGIN:VCALENDAR"), None);
    }

    #[test]
    fn event_ids_are_not_task_ids() {
        assert_eq!(target("AAMkAGI2=="), Target::Event("AAMkAGI2=="));
    }

    fn meeting() -> Fields {
        Fields {
            kind: ItemKind::Event,
            summary: Some("Demo".into()),
            start: Some(utc("2026-03-02T09:00:00Z")),
            end: Some(utc("2026-03-02T10:00:00Z")),
            organizer: Some("sales@corp.example".into()),
            attendees: vec![
                ("sales@corp.example".into(), "accepted".into()),
                ("ann@client.example".into(), "none".into()),
            ],
            ..Fields::default()
        }
    }

    #[test]
    fn a_new_event_carries_attendees_only_when_invitations_are_allowed() {
        // REQ: BX-03
        let quiet = event_body(None, &meeting(), false);
        assert!(!quiet.contains_key("attendees"));
        assert_eq!(quiet["subject"], "Demo");
        assert_eq!(quiet["start"]["dateTime"], "2026-03-02T09:00:00.0000000");
        assert_eq!(quiet["start"]["timeZone"], "UTC");
        assert_eq!(quiet["isAllDay"], false);
        let loud = event_body(None, &meeting(), true);
        assert_eq!(
            loud["attendees"],
            json!([{"emailAddress": {"address": "ann@client.example"}, "type": "required"}])
        );
    }

    #[test]
    fn an_update_sends_only_what_changed_and_nothing_when_nothing_did() {
        let old = meeting();
        assert!(event_body(Some(&old), &old, true).is_empty());
        let mut new = old.clone();
        new.location = Some("Room 1".into());
        let body = event_body(Some(&old), &new, false);
        assert_eq!(body.len(), 1);
        assert_eq!(body["location"]["displayName"], "Room 1");
        new.end = Some(utc("2026-03-02T11:00:00Z"));
        let body = event_body(Some(&old), &new, false);
        assert!(body.contains_key("start") && body.contains_key("end"));
    }

    #[test]
    fn an_all_day_event_without_an_end_lasts_its_day() {
        let f = Fields {
            start: Some(utc("2026-03-02T00:00:00Z")),
            all_day: true,
            ..Fields::default()
        };
        let body = event_body(None, &f, false);
        assert_eq!(body["end"]["dateTime"], "2026-03-03T00:00:00.0000000");
        assert_eq!(body["isAllDay"], true);
    }

    #[test]
    fn a_task_body_maps_status_and_due_and_skips_statuses_to_do_lacks() {
        let old = Fields {
            kind: ItemKind::Todo,
            summary: Some("Call".into()),
            status: Some("NEEDS-ACTION".into()),
            ..Fields::default()
        };
        let mut new = old.clone();
        new.status = Some("COMPLETED".into());
        new.due = Some(utc("2026-03-05T00:00:00Z"));
        let body = task_body(Some(&old), &new);
        assert_eq!(body["status"], "completed");
        assert_eq!(body["dueDateTime"]["timeZone"], "UTC");
        assert_eq!(body.len(), 2);
        new.status = Some("CANCELLED".into());
        new.due = old.due;
        assert!(task_body(Some(&old), &new).is_empty());
        let created = task_body(None, &old);
        assert_eq!(created["title"], "Call");
        assert_eq!(created["dueDateTime"], Value::Null);
    }

    #[test]
    fn recurrence_patterns_become_rrules_and_back() {
        let weekly = json!({
            "pattern": {"type": "weekly", "interval": 2, "daysOfWeek": ["monday", "thursday"]},
            "range": {"type": "endDate", "startDate": "2026-03-02", "endDate": "2026-06-30"}
        });
        let rule = rrule_of(&weekly).expect("rule");
        assert_eq!(rule, "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;UNTIL=20260630");
        let back = recurrence_of(&rule, utc("2026-03-02T09:00:00Z")).expect("pattern");
        assert_eq!(back["pattern"]["type"], "weekly");
        assert_eq!(back["pattern"]["daysOfWeek"], json!(["monday", "thursday"]));
        assert_eq!(back["range"]["endDate"], "2026-06-30");

        let monthly = json!({
            "pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"},
            "range": {"type": "numbered", "startDate": "2026-03-27", "numberOfOccurrences": 10}
        });
        let rule = rrule_of(&monthly).expect("rule");
        assert_eq!(
            rule,
            "FREQ=MONTHLY;INTERVAL=1;BYDAY=FR;BYSETPOS=-1;COUNT=10"
        );
        let back = recurrence_of(&rule, utc("2026-03-27T09:00:00Z")).expect("pattern");
        assert_eq!(back["pattern"]["index"], "last");
        assert_eq!(back["range"]["numberOfOccurrences"], 10);

        assert_eq!(
            rrule_of(
                &json!({"pattern": {"type": "daily", "interval": 1}, "range": {"type": "noEnd"}})
            )
            .as_deref(),
            Some("FREQ=DAILY;INTERVAL=1")
        );
        // an ordinal BYDAY or BYHOUR is beyond Graph's patterns
        assert!(recurrence_of("FREQ=MONTHLY;BYDAY=2MO", utc("2026-03-02T09:00:00Z")).is_none());
        assert!(recurrence_of("FREQ=DAILY;BYHOUR=9", utc("2026-03-02T09:00:00Z")).is_none());
    }

    #[test]
    fn cursors_keep_the_round_kind_and_the_window_end() {
        let link = Link {
            full: true,
            end: Some(utc("2029-01-01T00:00:00Z")),
            url: "https://graph.microsoft.com/v1.0/me/calendarView/delta?$skiptoken=a|b".into(),
        };
        assert_eq!(Link::decode(&link.encode()), Some(link));
        let task = Link {
            full: false,
            end: None,
            url: "https://x/delta?$deltatoken=1".into(),
        };
        assert_eq!(Link::decode(&task.encode()), Some(task));
        assert_eq!(Link::decode("https://x"), None);
    }

    #[test]
    fn a_meeting_organized_here_with_attendees_is_one_a_write_would_mail() {
        assert!(organizes_meeting(
            &json!({"isOrganizer": true, "attendees": [{}]})
        ));
        assert!(!organizes_meeting(
            &json!({"isOrganizer": false, "attendees": [{}]})
        ));
        assert!(!organizes_meeting(
            &json!({"isOrganizer": true, "attendees": []})
        ));
    }

    #[test]
    fn folders_are_selected_by_name_or_id() {
        let list = AllOrList::List(vec!["Work".into(), "AAMkC2".into()]);
        assert!(selected(&list, "AAMkC1", "Work"));
        assert!(selected(&list, "AAMkC2", "Other"));
        assert!(!selected(&list, "AAMkC3", "Home"));
        assert!(selected(&AllOrList::default(), "x", "y"));
    }
}
