//! Google Calendar API v3 as a [`CalendarRemote`]: a `CalendarSync` over a `GoogleAccount`
//! (AS-03, BX-03, CS-04, CS-05). Only the wire format lives here; the engine owns links,
//! conflicts, deletes and checkpoints.
//!
//! - *Folders*: the account's calendar list (`users/me/calendarList`, paged), selected by
//!   `importMeetings.calendars`: `all` is every calendar the account owns or can write (not the
//!   read-only ones it merely subscribes to: holidays, other people's calendars), a list names
//!   calendars by title (`summary`, or the user's own `summaryOverride`), by id, or `primary`,
//!   in the order given. The primary calendar comes first under `all`, as new activities are
//!   created in the first folder. Every folder holds meetings: **Google Calendar holds no
//!   tasks** (those are Google Tasks, a separate API that is not synced), so a task-kind
//!   activity is never exported to Google; a write of one is refused.
//! - *Listing* (`events.list`, `singleEvents=false` so a recurring series is one item, as the
//!   engine models it): without a token, a full listing (`full: true`); with the
//!   `nextSyncToken` of the last completed one, only what changed since (`showDeleted` is
//!   implied there: a `status: cancelled` event is a removal). A `410 Gone` on a sync token is
//!   [`RemoteError::TokenExpired`]: the engine lists again from the start. `nextPageToken`
//!   cursors carry which kind of listing they page (`f|page` or `s|syncToken|page`), since
//!   Google wants the same parameters on every page. `timeMin` is not sent: a full listing
//!   must list every linked item (an activity exported from here may start before `since`,
//!   and a full listing after an expired token would report it removed); the engine applies
//!   `since` to items it has not linked yet.
//! - *Items*: the remote id is `{calendarId}/{eventId}` (an event id is unique only within a
//!   calendar, and `get` / `delete` get only the id); the version is the event's `etag`; the
//!   data is the event's JSON as Google sent it, so an update sends back every field the
//!   engine does not model (reminders, colour, conference data, attachments, extended
//!   properties, `sequence`). Instances of a recurring series (`recurringEventId`: moved or
//!   cancelled occurrences) and special event types (out of office, focus time, working
//!   location, birthdays) are not activities and are skipped.
//! - *Fields*: `uid` is the `iCalUID` (the key shared by every attendee's copy of an event);
//!   `organizer` the organizer's address (AS-03: the engine decides from it whose changes
//!   propagate); attendees with their `responseStatus` (`needsAction` is the store's `none`);
//!   `date` start/end are all-day (the end is exclusive, as in iCalendar); a `dateTime` is
//!   read with its offset, or in its `timeZone` when it has none; the `timeZone` is kept; the
//!   online-meeting link is the conference's video entry point, else `hangoutLink` (both are
//!   Google's, read-only here); `updated` is `last_modified`.
//! - *Writes*: an update patches the modelled fields that changed into the stored JSON and
//!   `PUT`s it with `If-Match: etag` (`412` → [`Written::Conflict`], `404` / `410` →
//!   [`Written::Gone`]); nothing changed → no request. A create `POST`s a new event whose
//!   `id` is derived from the engine's stable uid (base32hex, as Google requires) and whose
//!   `iCalUID` is that uid, so a create retried after a crash meets `409` and answers
//!   [`Written::Exists`] with the event the first attempt made (one deleted since is brought
//!   back), never a second copy. `sendUpdates` follows
//!   [`Notify`] (BX-03): `none`, `externalOnly`, `all`. The organizer cannot be set (Google
//!   makes the account the organizer of what it creates). AS-03: an update of an event the
//!   account does not organize (an invitation's copy, unless `guestsCanModify`) is not sent —
//!   Google lets only the organizer change it — and answers `Done` with the event as it was,
//!   so a change made here to someone else's meeting stays here and the run goes on.
//! - *Errors* (the shared [`GoogleClient`]): `401` asks the [`TokenProvider`] for a fresh token
//!   and retries once; `429`, and `403` with reason `rateLimitExceeded` /
//!   `userRateLimitExceeded`, end the run as [`RemoteError::Throttled`] with the `Retry-After`
//!   (the scheduler waits, not this code); other failures carry Google's error reason and
//!   message, never a token. Paths are built from percent-encoded segments (calendar ids hold
//!   `@` and `#`).

use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use reqwest::Method;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use url::Url;

use super::{GoogleClient, GoogleError};
use crate::config::ConfigSet;
use crate::config::types::AllOrList;
use crate::connector::SyncContext;
use crate::store::records::normalize_email;
use crate::sync::ical::{Fields, ItemKind};
use crate::sync::remote::{
    CalendarRemote, Cursor, Folder, Listed, Next, Notify, Page, RemoteError, RemoteFuture,
    RemoteItem, TokenProvider, Write, Written,
};

use std::sync::Arc;

/// Events per listing page (Google's default; at most 2500).
const PAGE_SIZE: u32 = 250;
/// Calendars per `calendarList` page (Google's maximum).
const CALENDAR_PAGE_SIZE: u32 = 250;

/// Google's Calendar API root for an account: `{apiBaseUrl}/calendar/v3`, Google's own host
/// when the account names none.
pub fn calendar_base(api_base_url: Option<&str>) -> String {
    format!(
        "{}/calendar/v3",
        api_base_url
            .unwrap_or("https://www.googleapis.com")
            .trim_end_matches('/')
    )
}

/// A Google account's calendars as the wire side of a `CalendarSync`.
pub struct GoogleCalendarRemote {
    /// The Calendar API, rooted at `.../calendar/v3`.
    client: GoogleClient,
    /// `importMeetings.calendars`.
    calendars: AllOrList,
    page_size: u32,
    /// The selection, found once.
    folders: Mutex<Option<Vec<Folder>>>,
}

impl GoogleCalendarRemote {
    /// A remote on the Calendar API at `base` (see [`calendar_base`]), with bearer tokens from
    /// `tokens`, over the calendars `calendars` selects. `Err` when `base` is no URL.
    pub fn new(
        base: &str,
        tokens: Arc<dyn TokenProvider>,
        calendars: AllOrList,
    ) -> Result<GoogleCalendarRemote, String> {
        let base = Url::parse(base.trim_end_matches('/'))
            .map_err(|e| format!("the Google Calendar API URL `{base}`: {e}"))?;
        if base.cannot_be_a_base() {
            return Err(format!(
                "the Google Calendar API URL `{base}` is no base URL"
            ));
        }
        Ok(GoogleCalendarRemote {
            client: GoogleClient::new(base.as_str(), tokens),
            calendars,
            page_size: PAGE_SIZE,
            folders: Mutex::new(None),
        })
    }

    /// The remote of GoogleAccount `account` (its grant, its `apiBaseUrl`) over the calendars
    /// `calendars` selects: what `remote_for` builds for a CalendarSync over a GoogleAccount.
    /// `Err` is a pending reason.
    pub fn for_account(
        set: &ConfigSet,
        account: &str,
        calendars: AllOrList,
    ) -> Result<GoogleCalendarRemote, String> {
        let tokens = crate::sync::tokens::google_account(set, account)?;
        let base = calendar_base(Some(&crate::sync::tokens::google_calendar_base(
            set, account,
        )));
        GoogleCalendarRemote::new(&base, tokens, calendars)
    }

    /// The same with `n` events per listing page (tests page with few events).
    pub fn with_page_size(mut self, n: u32) -> GoogleCalendarRemote {
        self.page_size = n.clamp(1, 2500);
        self
    }

    /// `method` on the path of `segments` (each percent-encoded), every error answer a failure.
    async fn call(
        &self,
        ctx: &SyncContext<'_>,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, RemoteError> {
        self.client
            .send_to(ctx, method.clone(), segments, query, None, None)
            .await?
            .map_err(|e| failed(&method, segments, e))
    }

    /// The calendars `importMeetings.calendars` selects, discovered once.
    async fn discover(&self, ctx: &SyncContext<'_>) -> Result<Vec<Folder>, RemoteError> {
        if let Some(known) = self.folders.lock().expect("folders").clone() {
            return Ok(known);
        }
        let mut entries = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut query = vec![("maxResults", CALENDAR_PAGE_SIZE.to_string())];
            if let Some(p) = &page {
                query.push(("pageToken", p.clone()));
            }
            let body = self
                .call(ctx, Method::GET, &["users", "me", "calendarList"], &query)
                .await?;
            entries.extend(body["items"].as_array().cloned().unwrap_or_default());
            match body["nextPageToken"].as_str() {
                Some(p) => page = Some(p.to_owned()),
                None => break,
            }
        }
        let selected = select_calendars(&entries, &self.calendars);
        if selected.is_empty() {
            let names: Vec<String> = entries.iter().map(calendar_name).collect();
            return Err(RemoteError::Failed(format!(
                "no Google calendar matches importMeetings.calendars (found: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        }
        *self.folders.lock().expect("folders") = Some(selected.clone());
        Ok(selected)
    }

    async fn list_page(
        &self,
        ctx: &SyncContext<'_>,
        folder: &Folder,
        cursor: Cursor<'_>,
    ) -> Result<Page<Fields>, RemoteError> {
        let (sync_token, page_token) = match cursor {
            Cursor::Start => (None, None),
            Cursor::Token(t) => (Some(t.to_owned()), None),
            Cursor::Page(p) => match parse_page_cursor(p) {
                Some((sync, page)) => (sync, Some(page)),
                // A cursor this code did not write: start again.
                None => return Err(RemoteError::TokenExpired),
            },
        };
        let full = sync_token.is_none();
        let mut query = vec![
            ("maxResults", self.page_size.to_string()),
            ("singleEvents", "false".to_owned()),
        ];
        match &sync_token {
            Some(t) => query.push(("syncToken", t.clone())),
            None => query.push(("showDeleted", "false".to_owned())),
        }
        if let Some(p) = &page_token {
            query.push(("pageToken", p.clone()));
        }
        let segments = ["calendars", folder.id.as_str(), "events"];
        let body = match self
            .client
            .send_to(ctx, Method::GET, &segments, &query, None, None)
            .await?
        {
            Ok(body) => body,
            Err(e) if e.http == 410 => return Err(RemoteError::TokenExpired),
            Err(e) => return Err(failed(&Method::GET, &segments, e)),
        };
        let mut items = Vec::new();
        let mut removed = Vec::new();
        for event in body["items"].as_array().into_iter().flatten() {
            let Some(event_id) = event["id"].as_str() else {
                continue;
            };
            if event.get("recurringEventId").is_some() || !is_meeting(event) {
                continue;
            }
            let id = item_id(&folder.id, event_id);
            if event["status"] == "cancelled" {
                if !full {
                    removed.push(id);
                }
                continue;
            }
            items.push(Listed::Item(to_item(&folder.id, event)));
        }
        let next = match body["nextPageToken"].as_str() {
            Some(p) => Next::More(page_cursor(sync_token.as_deref(), p)),
            None => Next::Done(body["nextSyncToken"].as_str().map(str::to_owned)),
        };
        Ok(Page {
            items,
            removed,
            next,
            full,
        })
    }

    async fn get_item(
        &self,
        ctx: &SyncContext<'_>,
        id: &str,
    ) -> Result<Option<RemoteItem<Fields>>, RemoteError> {
        let (calendar, event) = split_id(id)?;
        let segments = ["calendars", calendar, "events", event];
        match self
            .client
            .send_to(ctx, Method::GET, &segments, &[], None, None)
            .await?
        {
            Ok(body) if body["status"] == "cancelled" => Ok(None),
            Ok(body) => Ok(Some(to_item(calendar, &body))),
            Err(e) if matches!(e.http, 404 | 410) => Ok(None),
            Err(e) => Err(failed(&Method::GET, &segments, e)),
        }
    }

    /// `PUT`s `event` over the event `id` on `calendar`, conditionally on `etag`.
    async fn put(
        &self,
        ctx: &SyncContext<'_>,
        calendar: &str,
        event_id: &str,
        event: &Value,
        etag: Option<&str>,
        notify: Notify,
    ) -> Result<Written<Fields>, RemoteError> {
        let segments = ["calendars", calendar, "events", event_id];
        let query = [
            ("sendUpdates", send_updates(notify).to_owned()),
            ("conferenceDataVersion", "1".to_owned()),
        ];
        let answer = self
            .client
            .send_to(ctx, Method::PUT, &segments, &query, Some(event), etag)
            .await?;
        written(answer, &Method::PUT, &segments, |body| {
            Some(to_item(calendar, &body))
        })
    }

    async fn write_item(
        &self,
        ctx: &SyncContext<'_>,
        write: Write<'_, Fields>,
        notify: Notify,
    ) -> Result<Written<Fields>, RemoteError> {
        if write.fields.kind == ItemKind::Todo {
            return Err(RemoteError::Failed(
                "Google Calendar holds no tasks: a task is not exported to a Google account".into(),
            ));
        }
        if let Some(current) = write.current {
            let (calendar, event_id) = split_id(&current.id)?;
            let old: Value = serde_json::from_str(&current.data).map_err(|e| {
                RemoteError::Failed(format!("the stored Google event {}: {e}", current.id))
            })?;
            let new = patch_event(&old, write.fields);
            // AS-03: only the organizer's changes propagate. On an attendee's copy Google lets
            // only the organizer change the event (403 forbiddenForNonOrganizer) unless guests
            // may modify it: a change made here stays here, and the run goes on.
            if new == old || !may_modify(&old) {
                return Ok(Written::Done(Some(current.clone())));
            }
            return self
                .put(
                    ctx,
                    calendar,
                    event_id,
                    &new,
                    current.version.as_deref(),
                    notify,
                )
                .await;
        }
        let calendar = write.folder.id.as_str();
        let event_id = event_id_for(write.uid);
        let body = new_event(&event_id, write.uid, write.fields);
        let segments = ["calendars", calendar, "events"];
        let query = [("sendUpdates", send_updates(notify).to_owned())];
        match self
            .client
            .send_to(ctx, Method::POST, &segments, &query, Some(&body), None)
            .await?
        {
            Ok(made) => return Ok(Written::Done(Some(to_item(calendar, &made)))),
            Err(e) if e.http == 409 => {}
            Err(e) => return Err(failed(&Method::POST, &segments, e)),
        }
        // 409: the id exists, made by an earlier attempt of this create: the engine links
        // that one and writes again as an update. One deleted since (Google keeps it as a
        // cancelled event, and its id stays taken) is brought back with these fields.
        let segments = ["calendars", calendar, "events", event_id.as_str()];
        let existing = match self
            .client
            .send_to(ctx, Method::GET, &segments, &[], None, None)
            .await?
        {
            Ok(existing) => existing,
            Err(e) if e.http == 404 => {
                return Err(RemoteError::Failed(format!(
                    "Google Calendar refused event {event_id} as a duplicate but does not have it"
                )));
            }
            Err(e) => return Err(failed(&Method::GET, &segments, e)),
        };
        if existing["status"] != "cancelled" {
            return Ok(Written::Exists(to_item(calendar, &existing)));
        }
        let mut new = patch_event(&existing, write.fields);
        new["status"] = json!(
            write
                .fields
                .status
                .as_deref()
                .and_then(google_status)
                .unwrap_or("confirmed")
        );
        let etag = existing["etag"].as_str().map(str::to_owned);
        self.put(ctx, calendar, &event_id, &new, etag.as_deref(), notify)
            .await
    }

    async fn delete_item(
        &self,
        ctx: &SyncContext<'_>,
        id: &str,
        version: Option<&str>,
        notify: Notify,
    ) -> Result<Written<Fields>, RemoteError> {
        let (calendar, event) = split_id(id)?;
        let segments = ["calendars", calendar, "events", event];
        let query = [("sendUpdates", send_updates(notify).to_owned())];
        let answer = self
            .client
            .send_to(ctx, Method::DELETE, &segments, &query, None, version)
            .await?;
        written(answer, &Method::DELETE, &segments, |_| None)
    }
}

impl CalendarRemote for GoogleCalendarRemote {
    fn folders<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
    ) -> RemoteFuture<'a, Vec<(Folder, ItemKind)>> {
        Box::pin(async move {
            Ok(self
                .discover(ctx)
                .await?
                .into_iter()
                .map(|f| (f, ItemKind::Event))
                .collect())
        })
    }

    fn list<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        folder: &'a Folder,
        cursor: Cursor<'a>,
    ) -> RemoteFuture<'a, Page<Fields>> {
        Box::pin(self.list_page(ctx, folder, cursor))
    }

    fn read<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        _folder: &'a Folder,
        ids: &'a [String],
    ) -> RemoteFuture<'a, Vec<RemoteItem<Fields>>> {
        // Listings carry whole events, so the engine has nothing to read; this serves anyway.
        Box::pin(async move {
            let mut out = Vec::new();
            for id in ids {
                out.extend(self.get_item(ctx, id).await?);
            }
            Ok(out)
        })
    }

    fn get<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        id: &'a str,
    ) -> RemoteFuture<'a, Option<RemoteItem<Fields>>> {
        Box::pin(self.get_item(ctx, id))
    }

    fn decode(&self, data: &str) -> Option<Fields> {
        decode(data)
    }

    fn holds(&self, folder: &Folder, id: &str) -> bool {
        split_id(id).is_ok_and(|(calendar, _)| calendar == folder.id)
    }

    fn write<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        write: Write<'a, Fields>,
        notify: Notify,
    ) -> RemoteFuture<'a, Written<Fields>> {
        Box::pin(self.write_item(ctx, write, notify))
    }

    fn delete<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        id: &'a str,
        version: Option<&'a str>,
        notify: Notify,
    ) -> RemoteFuture<'a, Written<Fields>> {
        Box::pin(self.delete_item(ctx, id, version, notify))
    }

    fn requests(&self) -> u64 {
        self.client.requests()
    }
}

/// Whether the account may change `event`'s shared fields: it organizes it (`organizer.self`),
/// or the organizer lets guests modify it (`guestsCanModify`).
fn may_modify(event: &Value) -> bool {
    event["organizer"]["self"] == true || event["guestsCanModify"] == true
}

/// Google's `sendUpdates` for a [`Notify`] (BX-03).
pub fn send_updates(notify: Notify) -> &'static str {
    match notify {
        Notify::None => "none",
        Notify::External => "externalOnly",
        Notify::All => "all",
    }
}

/// An error answer no caller maps, as a failure naming the method and the path.
fn failed(method: &Method, segments: &[&str], error: GoogleError) -> RemoteError {
    error.into_remote(&format!("Google Calendar {method} {}", segments.join("/")))
}

/// A conditional write's answer: `412` is [`Written::Conflict`] (a stale etag), `404` / `410`
/// [`Written::Gone`], a success what `done` makes of the answer's body.
fn written(
    answer: Result<Value, GoogleError>,
    method: &Method,
    segments: &[&str],
    done: impl FnOnce(Value) -> Option<RemoteItem<Fields>>,
) -> Result<Written<Fields>, RemoteError> {
    match answer {
        Ok(body) => Ok(Written::Done(done(body))),
        Err(e) if e.http == 412 => Ok(Written::Conflict),
        Err(e) if matches!(e.http, 404 | 410) => Ok(Written::Gone),
        Err(e) => Err(failed(method, segments, e)),
    }
}

/// What an operator calls a calendar-list entry.
fn calendar_name(entry: &Value) -> String {
    entry["summaryOverride"]
        .as_str()
        .or_else(|| entry["summary"].as_str())
        .or_else(|| entry["id"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The calendars of `entries` (a `calendarList`) that `names` selects, as folders.
fn select_calendars(entries: &[Value], names: &AllOrList) -> Vec<Folder> {
    let folder = |e: &Value| Folder {
        id: e["id"].as_str().unwrap_or_default().to_owned(),
        name: calendar_name(e),
    };
    let entries: Vec<&Value> = entries
        .iter()
        .filter(|e| e["id"].as_str().is_some_and(|id| !id.is_empty()))
        .filter(|e| e["deleted"] != true)
        .collect();
    match names {
        AllOrList::All(_) => {
            let mut own: Vec<&Value> = entries
                .into_iter()
                .filter(|e| matches!(e["accessRole"].as_str(), Some("owner" | "writer")))
                .collect();
            // The primary calendar first: creates go to the first folder.
            own.sort_by_key(|e| e["primary"] != true);
            own.into_iter().map(folder).collect()
        }
        AllOrList::List(names) => {
            let mut out: Vec<Folder> = Vec::new();
            for name in names {
                let found = entries.iter().find(|e| {
                    e["id"].as_str() == Some(name.as_str())
                        || e["summary"].as_str() == Some(name.as_str())
                        || e["summaryOverride"].as_str() == Some(name.as_str())
                        || (name == "primary" && e["primary"] == true)
                });
                if let Some(e) = found {
                    let f = folder(e);
                    if !out.contains(&f) {
                        out.push(f);
                    }
                }
            }
            out
        }
    }
}

/// Whether an event is a meeting (a regular event or one Gmail made), not an out-of-office,
/// focus-time, working-location or birthday entry.
fn is_meeting(event: &Value) -> bool {
    matches!(
        event["eventType"].as_str(),
        None | Some("default" | "fromGmail")
    )
}

/// The remote id of event `event` on `calendar`.
fn item_id(calendar: &str, event: &str) -> String {
    format!("{calendar}/{event}")
}

/// The calendar and event of a remote id. Calendar ids hold no `/` (they are addresses or
/// `primary`); event ids are base32hex, with `_` in an instance's.
fn split_id(id: &str) -> Result<(&str, &str), RemoteError> {
    id.rsplit_once('/')
        .filter(|(c, e)| !c.is_empty() && !e.is_empty())
        .ok_or_else(|| RemoteError::Failed(format!("`{id}` is no Google Calendar item id")))
}

/// The listing cursor stored between pages: which listing it pages, and Google's page token.
fn page_cursor(sync_token: Option<&str>, page: &str) -> String {
    match sync_token {
        None => format!("f|{page}"),
        Some(t) => format!("s|{t}|{page}"),
    }
}

/// `(sync token of an incremental listing, page token)` of a [`page_cursor`].
fn parse_page_cursor(cursor: &str) -> Option<(Option<String>, String)> {
    if let Some(page) = cursor.strip_prefix("f|") {
        return Some((None, page.to_owned()));
    }
    let (sync, page) = cursor.strip_prefix("s|")?.rsplit_once('|')?;
    Some((Some(sync.to_owned()), page.to_owned()))
}

/// The event id Switchboard gives the event it creates for `uid`: base32hex (`0-9a-v`), as
/// Google requires of a client-chosen id, and the same on every attempt.
pub fn event_id_for(uid: &str) -> String {
    format!("sb{}", &hex::encode(Sha256::digest(uid.as_bytes()))[..40])
}

/// An event as a [`RemoteItem`].
fn to_item(calendar: &str, event: &Value) -> RemoteItem<Fields> {
    RemoteItem {
        id: item_id(calendar, event["id"].as_str().unwrap_or_default()),
        version: event["etag"].as_str().map(str::to_owned),
        data: event.to_string(),
        fields: fields_of(event),
    }
}

/// The store's response for a Google `responseStatus`.
fn response_of(status: Option<&str>) -> String {
    match status {
        None | Some("needsAction") | Some("") => "none".to_owned(),
        Some(other) => other.to_ascii_lowercase(),
    }
}

/// Google's `responseStatus` for the store's response.
fn response_status(response: &str) -> &'static str {
    match response.to_ascii_lowercase().as_str() {
        "accepted" => "accepted",
        "declined" => "declined",
        "tentative" => "tentative",
        _ => "needsAction",
    }
}

/// An `EventDateTime` read: (UTC instant, all-day, its time zone).
fn read_time(value: &Value, warnings: &mut Vec<String>) -> Option<(DateTime<Utc>, bool)> {
    if let Some(date) = value["date"].as_str() {
        let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
        return Some((d.and_hms_opt(0, 0, 0)?.and_utc(), true));
    }
    let text = value["dateTime"].as_str()?;
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some((t.with_timezone(&Utc), false));
    }
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    match value["timeZone"]
        .as_str()
        .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
    {
        Some(tz) => tz
            .from_local_datetime(&local)
            .earliest()
            .map(|t| (t.with_timezone(&Utc), false)),
        None => {
            warnings.push(format!(
                "the time `{text}` names no offset and no known time zone; read as UTC"
            ));
            Some((local.and_utc(), false))
        }
    }
}

/// The neutral fields of an item's stored data (the event JSON kept with the link); `None`
/// when it is no event.
pub fn decode(data: &str) -> Option<Fields> {
    serde_json::from_str::<Value>(data)
        .ok()
        .filter(Value::is_object)
        .map(|event| fields_of(&event))
}

/// The neutral fields of an event.
pub fn fields_of(event: &Value) -> Fields {
    let text = |k: &str| {
        event[k]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let mut warnings = Vec::new();
    let start = read_time(&event["start"], &mut warnings);
    let end = read_time(&event["end"], &mut warnings);
    let mut attendees: Vec<(String, String)> = Vec::new();
    for a in event["attendees"].as_array().into_iter().flatten() {
        if let Some(email) = a["email"].as_str().and_then(normalize_email)
            && !attendees.iter().any(|(e, _)| *e == email)
        {
            attendees.push((email, response_of(a["responseStatus"].as_str())));
        }
    }
    let video = event["conferenceData"]["entryPoints"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["entryPointType"] == "video")
        .and_then(|e| e["uri"].as_str())
        .map(str::to_owned);
    Fields {
        kind: ItemKind::Event,
        uid: text("iCalUID"),
        summary: text("summary"),
        description: text("description"),
        location: text("location"),
        start: start.map(|s| s.0),
        end: end.map(|e| e.0),
        due: None,
        all_day: start.is_some_and(|s| s.1),
        time_zone: event["start"]["timeZone"]
            .as_str()
            .or_else(|| event["end"]["timeZone"].as_str())
            .map(str::to_owned),
        status: text("status").map(|s| s.to_ascii_uppercase()),
        organizer: event["organizer"]["email"]
            .as_str()
            .and_then(normalize_email),
        attendees,
        rrule: event["recurrence"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find_map(|l| l.strip_prefix("RRULE:"))
            .map(|r| r.trim().to_owned()),
        url: video.or_else(|| text("hangoutLink")),
        last_modified: event["updated"]
            .as_str()
            .and_then(|u| DateTime::parse_from_rfc3339(u).ok())
            .map(|t| t.with_timezone(&Utc)),
        warnings,
    }
}

/// An `EventDateTime` for `t`: a `date` when all-day, else a `dateTime` in `zone` when it is an
/// IANA name (with it as `timeZone`), else in UTC (`timeZone: UTC` when `recurring`, as Google
/// requires a zone to expand a series in).
fn write_time(t: DateTime<Utc>, all_day: bool, zone: Option<&str>, recurring: bool) -> Value {
    if all_day {
        return json!({"date": t.format("%Y-%m-%d").to_string()});
    }
    if let Some(zone) = zone
        && let Ok(tz) = zone.parse::<chrono_tz::Tz>()
    {
        let local = t.with_timezone(&tz);
        return json!({
            "dateTime": local.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            "timeZone": zone,
        });
    }
    let mut v = json!({"dateTime": t.format("%Y-%m-%dT%H:%M:%SZ").to_string()});
    if recurring {
        v["timeZone"] = json!("UTC");
    }
    v
}

/// Sets `key` to `value`, or removes it for `None`.
fn set_text(event: &mut Map<String, Value>, key: &str, value: Option<&String>) {
    match value {
        Some(v) => {
            event.insert(key.to_owned(), json!(v));
        }
        None => {
            event.remove(key);
        }
    }
}

/// `fields`' start and end as `EventDateTime`s (an all-day event lasts at least a day; a timed
/// one without an end ends when it starts).
fn times(fields: &Fields) -> Option<(Value, Value)> {
    let start = fields.start?;
    let end = match fields.end {
        Some(e) if e > start || (!fields.all_day && e == start) => e,
        _ if fields.all_day => start + chrono::Duration::days(1),
        _ => start,
    };
    let zone = fields.time_zone.as_deref();
    let recurring = fields.rrule.is_some();
    Some((
        write_time(start, fields.all_day, zone, recurring),
        write_time(end, fields.all_day, zone, recurring),
    ))
}

/// `event` with the modelled fields of `fields` that differ from what it holds written in;
/// everything else as it was. The organizer is Google's to set and stays.
pub fn patch_event(event: &Value, fields: &Fields) -> Value {
    let old = fields_of(event);
    let mut new = event.clone();
    let Some(obj) = new.as_object_mut() else {
        return new;
    };
    if old.summary != fields.summary {
        set_text(obj, "summary", fields.summary.as_ref());
    }
    if old.description != fields.description {
        set_text(obj, "description", fields.description.as_ref());
    }
    if old.location != fields.location {
        set_text(obj, "location", fields.location.as_ref());
    }
    let times_changed = old.start != fields.start
        || old.end != fields.end
        || old.all_day != fields.all_day
        || (old.time_zone != fields.time_zone && fields.time_zone.is_some());
    if times_changed && let Some((start, end)) = times(fields) {
        obj.insert("start".into(), start);
        obj.insert("end".into(), end);
    }
    if old.status != fields.status
        && let Some(status) = fields.status.as_deref().and_then(google_status)
    {
        obj.insert("status".into(), json!(status));
    }
    if old.attendees != fields.attendees {
        let before: Vec<Value> = obj
            .get("attendees")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let list: Vec<Value> = fields
            .attendees
            .iter()
            .map(|(email, response)| {
                let mut a = before
                    .iter()
                    .find(|a| {
                        a["email"].as_str().and_then(normalize_email).as_deref()
                            == Some(email.as_str())
                    })
                    .cloned()
                    .unwrap_or_else(
                        || json!({"email": email, "responseStatus": response_status(response)}),
                    );
                if response_of(a["responseStatus"].as_str()) != *response {
                    a["responseStatus"] = json!(response_status(response));
                }
                a
            })
            .collect();
        if list.is_empty() {
            obj.remove("attendees");
        } else {
            obj.insert("attendees".into(), Value::Array(list));
        }
    }
    if old.rrule != fields.rrule {
        let mut lines: Vec<Value> = obj
            .get("recurrence")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|l| !l.as_str().is_some_and(|l| l.starts_with("RRULE:")))
            .collect();
        if let Some(r) = &fields.rrule {
            lines.insert(0, json!(format!("RRULE:{r}")));
        }
        if lines.is_empty() {
            obj.remove("recurrence");
        } else {
            obj.insert("recurrence".into(), Value::Array(lines));
        }
        // A series needs a zone to expand in.
        if fields.rrule.is_some() && !fields.all_day {
            for key in ["start", "end"] {
                if let Some(t) = obj.get_mut(key)
                    && t.get("dateTime").is_some()
                    && t.get("timeZone").is_none()
                {
                    t["timeZone"] = json!("UTC");
                }
            }
        }
    }
    new
}

/// Google's event `status` for a stored one: `confirmed` / `tentative`. `CANCELLED` is not
/// written (a cancelled Google event is a deleted one: deletes follow CS-05's policy).
fn google_status(status: &str) -> Option<&'static str> {
    match status.to_ascii_uppercase().as_str() {
        "CONFIRMED" => Some("confirmed"),
        "TENTATIVE" => Some("tentative"),
        _ => None,
    }
}

/// The body of `events.insert` for a new event with id `event_id` and iCalendar UID `uid`.
pub fn new_event(event_id: &str, uid: &str, fields: &Fields) -> Value {
    patch_event(&json!({"id": event_id, "iCalUID": uid}), fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::types::AllLiteral;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn group_event() -> Value {
        json!({
            "kind": "calendar#event",
            "etag": "\"3181161784712000\"",
            "id": "abc123def456",
            "status": "confirmed",
            "iCalUID": "abc123def456@google.com",
            "summary": "Quarterly review",
            "description": "<b>Agenda</b>",
            "location": "Blue room",
            "updated": "2026-03-01T08:00:00.000Z",
            "creator": {"email": "ann@corp.example", "self": true},
            "organizer": {"email": "Ann@Corp.example", "self": true},
            "start": {"dateTime": "2026-03-02T10:00:00+01:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2026-03-02T11:30:00+01:00", "timeZone": "Europe/Berlin"},
            "attendees": [
                {"email": "ann@corp.example", "organizer": true, "self": true, "responseStatus": "accepted"},
                {"email": "Bob@Customer.example", "displayName": "Bob", "responseStatus": "needsAction"},
                {"email": "carol@customer.example", "optional": true, "responseStatus": "tentative"}
            ],
            "reminders": {"useDefault": false, "overrides": [{"method": "popup", "minutes": 5}]},
            "conferenceData": {"entryPoints": [
                {"entryPointType": "phone", "uri": "tel:+1-555-0100"},
                {"entryPointType": "video", "uri": "https://meet.google.com/abc-defg-hij"}
            ]},
            "hangoutLink": "https://meet.google.com/abc-defg-hij",
            "sequence": 2
        })
    }

    #[test]
    fn a_group_event_reads_its_organizer_attendees_and_zone() {
        // REQ: AS-03
        let f = fields_of(&group_event());
        assert_eq!(f.kind, ItemKind::Event);
        assert_eq!(f.uid.as_deref(), Some("abc123def456@google.com"));
        assert_eq!(f.summary.as_deref(), Some("Quarterly review"));
        assert_eq!(f.description.as_deref(), Some("<b>Agenda</b>"));
        assert_eq!(f.start, Some(utc("2026-03-02T09:00:00Z")));
        assert_eq!(f.end, Some(utc("2026-03-02T10:30:00Z")));
        assert!(!f.all_day);
        assert_eq!(f.time_zone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(f.status.as_deref(), Some("CONFIRMED"));
        assert_eq!(f.organizer.as_deref(), Some("ann@corp.example"));
        assert_eq!(
            f.attendees,
            vec![
                ("ann@corp.example".into(), "accepted".into()),
                ("bob@customer.example".into(), "none".into()),
                ("carol@customer.example".into(), "tentative".into()),
            ]
        );
        assert_eq!(
            f.url.as_deref(),
            Some("https://meet.google.com/abc-defg-hij")
        );
        assert_eq!(f.last_modified, Some(utc("2026-03-01T08:00:00Z")));
        assert!(f.warnings.is_empty());
    }

    #[test]
    fn an_all_day_event_is_midnight_utc_with_an_exclusive_end() {
        let f = fields_of(&json!({
            "id": "e1", "iCalUID": "u1", "summary": "Offsite",
            "start": {"date": "2026-04-10"}, "end": {"date": "2026-04-12"}
        }));
        assert!(f.all_day);
        assert_eq!(f.start, Some(utc("2026-04-10T00:00:00Z")));
        assert_eq!(f.end, Some(utc("2026-04-12T00:00:00Z")));
        assert_eq!(f.time_zone, None);
        // Written back unchanged, nothing moves; moved by a day, dates are written.
        let event = json!({"id": "e1", "start": {"date": "2026-04-10"}, "end": {"date": "2026-04-12"}, "summary": "Offsite", "iCalUID": "u1"});
        assert_eq!(patch_event(&event, &f), event);
        let mut moved = f.clone();
        moved.start = Some(utc("2026-04-11T00:00:00Z"));
        moved.end = Some(utc("2026-04-13T00:00:00Z"));
        let new = patch_event(&event, &moved);
        assert_eq!(new["start"], json!({"date": "2026-04-11"}));
        assert_eq!(new["end"], json!({"date": "2026-04-13"}));
    }

    #[test]
    fn a_local_time_without_offset_is_read_in_its_zone_and_an_unknown_zone_warns() {
        let f = fields_of(&json!({
            "start": {"dateTime": "2026-07-01T09:00:00", "timeZone": "America/New_York"},
            "end": {"dateTime": "2026-07-01T10:00:00", "timeZone": "America/New_York"}
        }));
        assert_eq!(f.start, Some(utc("2026-07-01T13:00:00Z")));
        assert_eq!(f.end, Some(utc("2026-07-01T14:00:00Z")));
        assert_eq!(f.time_zone.as_deref(), Some("America/New_York"));
        let f = fields_of(&json!({
            "start": {"dateTime": "2026-07-01T09:00:00", "timeZone": "Mars/Olympus"},
            "end": {"dateTime": "2026-07-01T10:00:00Z"}
        }));
        assert_eq!(f.start, Some(utc("2026-07-01T09:00:00Z")));
        assert_eq!(f.warnings.len(), 1);
    }

    #[test]
    fn a_changed_time_is_written_in_the_events_zone() {
        let event = group_event();
        let mut f = fields_of(&event);
        f.start = Some(utc("2026-03-02T13:00:00Z"));
        f.end = Some(utc("2026-03-02T14:00:00Z"));
        let new = patch_event(&event, &f);
        assert_eq!(
            new["start"],
            json!({"dateTime": "2026-03-02T14:00:00+01:00", "timeZone": "Europe/Berlin"})
        );
        assert_eq!(
            new["end"],
            json!({"dateTime": "2026-03-02T15:00:00+01:00", "timeZone": "Europe/Berlin"})
        );
        // What the engine does not model is sent back as read.
        assert_eq!(new["reminders"], event["reminders"]);
        assert_eq!(new["conferenceData"], event["conferenceData"]);
        assert_eq!(new["sequence"], 2);
        assert_eq!(fields_of(&new).start, f.start);
    }

    #[test]
    fn no_modelled_change_leaves_the_event_as_read() {
        let event = group_event();
        assert_eq!(patch_event(&event, &fields_of(&event)), event);
        assert_eq!(decode(&event.to_string()), Some(fields_of(&event)));
        assert_eq!(decode("not json"), None);
    }

    #[test]
    fn attendees_keep_their_google_details_and_take_new_responses() {
        let event = group_event();
        let mut f = fields_of(&event);
        f.attendees = vec![
            ("ann@corp.example".into(), "accepted".into()),
            ("bob@customer.example".into(), "declined".into()),
            ("dave@customer.example".into(), "none".into()),
        ];
        let new = patch_event(&event, &f);
        let list = new["attendees"].as_array().expect("attendees");
        assert_eq!(list.len(), 3);
        assert_eq!(list[0], event["attendees"][0]);
        assert_eq!(list[1]["displayName"], "Bob");
        assert_eq!(list[1]["responseStatus"], "declined");
        assert_eq!(
            list[2],
            json!({"email": "dave@customer.example", "responseStatus": "needsAction"})
        );
        assert_eq!(fields_of(&new).attendees, f.attendees);
    }

    #[test]
    fn cancelled_status_is_not_written_and_tentative_is() {
        let event = group_event();
        let mut f = fields_of(&event);
        f.status = Some("CANCELLED".into());
        assert_eq!(patch_event(&event, &f)["status"], "confirmed");
        f.status = Some("TENTATIVE".into());
        assert_eq!(patch_event(&event, &f)["status"], "tentative");
    }

    #[test]
    fn a_recurring_series_keeps_its_exceptions_and_gets_a_zone() {
        let event = json!({
            "id": "s1", "iCalUID": "s1@google.com", "summary": "Standup",
            "start": {"dateTime": "2026-03-02T09:00:00Z"}, "end": {"dateTime": "2026-03-02T09:15:00Z"},
            "recurrence": ["RRULE:FREQ=DAILY;COUNT=5", "EXDATE:20260304T090000Z"]
        });
        let mut f = fields_of(&event);
        assert_eq!(f.rrule.as_deref(), Some("FREQ=DAILY;COUNT=5"));
        f.rrule = Some("FREQ=WEEKLY;BYDAY=MO".into());
        let new = patch_event(&event, &f);
        assert_eq!(
            new["recurrence"],
            json!(["RRULE:FREQ=WEEKLY;BYDAY=MO", "EXDATE:20260304T090000Z"])
        );
        assert_eq!(new["start"]["timeZone"], "UTC");
    }

    #[test]
    fn a_new_event_carries_the_stable_id_and_uid() {
        let f = Fields {
            summary: Some("Demo".into()),
            start: Some(utc("2026-05-05T12:00:00Z")),
            end: Some(utc("2026-05-05T13:00:00Z")),
            time_zone: Some("Europe/Paris".into()),
            attendees: vec![("bob@customer.example".into(), "none".into())],
            ..Fields::default()
        };
        let id = event_id_for("switchboard-abc-activity-7");
        assert_eq!(id, event_id_for("switchboard-abc-activity-7"));
        assert!(id.len() >= 5);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='v').contains(&c))
        );
        let body = new_event(&id, "switchboard-abc-activity-7", &f);
        assert_eq!(body["id"], json!(id));
        assert_eq!(body["iCalUID"], "switchboard-abc-activity-7");
        assert_eq!(body["summary"], "Demo");
        assert_eq!(
            body["start"],
            json!({"dateTime": "2026-05-05T14:00:00+02:00", "timeZone": "Europe/Paris"})
        );
        assert_eq!(
            body["attendees"],
            json!([{"email": "bob@customer.example", "responseStatus": "needsAction"}])
        );
        assert!(body.get("organizer").is_none());
        // An all-day activity without an end lasts its day.
        let day = Fields {
            summary: Some("Holiday".into()),
            start: Some(utc("2026-05-05T00:00:00Z")),
            all_day: true,
            ..Fields::default()
        };
        let body = new_event(&id, "u", &day);
        assert_eq!(body["end"], json!({"date": "2026-05-06"}));
    }

    #[test]
    fn only_the_organizer_or_a_guest_allowed_to_may_modify() {
        // REQ: AS-03
        assert!(may_modify(&group_event()));
        let invitation = json!({"organizer": {"email": "dave@partner.example"}});
        assert!(!may_modify(&invitation));
        let open = json!({"organizer": {"email": "dave@partner.example"}, "guestsCanModify": true});
        assert!(may_modify(&open));
    }

    #[test]
    fn notify_maps_to_send_updates() {
        // REQ: BX-03
        assert_eq!(send_updates(Notify::None), "none");
        assert_eq!(send_updates(Notify::External), "externalOnly");
        assert_eq!(send_updates(Notify::All), "all");
    }

    #[test]
    fn special_event_types_are_not_meetings() {
        assert!(is_meeting(&json!({})));
        assert!(is_meeting(&json!({"eventType": "default"})));
        assert!(!is_meeting(&json!({"eventType": "outOfOffice"})));
        assert!(!is_meeting(&json!({"eventType": "workingLocation"})));
        assert!(!is_meeting(&json!({"eventType": "birthday"})));
    }

    #[test]
    fn calendars_are_selected_by_title_id_or_all_writable_primary_first() {
        let list = vec![
            json!({"id": "team@group.calendar.google.com", "summary": "Team", "accessRole": "writer"}),
            json!({"id": "ann@corp.example", "summary": "ann@corp.example", "accessRole": "owner", "primary": true}),
            json!({"id": "en.usa#holiday@group.v.calendar.google.com", "summary": "Holidays", "accessRole": "reader"}),
            json!({"id": "x@group.calendar.google.com", "summary": "Old", "summaryOverride": "Sales", "accessRole": "owner"}),
        ];
        let all = select_calendars(&list, &AllOrList::All(AllLiteral::All));
        let ids: Vec<&str> = all.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "ann@corp.example",
                "team@group.calendar.google.com",
                "x@group.calendar.google.com"
            ]
        );
        assert_eq!(all[2].name, "Sales");
        let some = select_calendars(
            &list,
            &AllOrList::List(vec![
                "Sales".into(),
                "primary".into(),
                "en.usa#holiday@group.v.calendar.google.com".into(),
                "Nope".into(),
            ]),
        );
        let ids: Vec<&str> = some.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "x@group.calendar.google.com",
                "ann@corp.example",
                "en.usa#holiday@group.v.calendar.google.com"
            ]
        );
    }

    #[test]
    fn page_cursors_say_which_listing_they_page() {
        assert_eq!(
            parse_page_cursor(&page_cursor(None, "p1")),
            Some((None, "p1".into()))
        );
        assert_eq!(
            parse_page_cursor(&page_cursor(Some("CPDAlvWDx70CEPDAlvWDx70CGAU="), "p2")),
            Some((Some("CPDAlvWDx70CEPDAlvWDx70CGAU=".into()), "p2".into()))
        );
        assert_eq!(parse_page_cursor("something else"), None);
        assert_eq!(split_id("a@b.example/e1").ok(), Some(("a@b.example", "e1")));
        assert!(split_id("e1").is_err());
    }

    #[test]
    fn the_api_root_follows_api_base_url() {
        assert_eq!(
            calendar_base(None),
            "https://www.googleapis.com/calendar/v3"
        );
        assert_eq!(
            calendar_base(Some("http://127.0.0.1:9/")),
            "http://127.0.0.1:9/calendar/v3"
        );
    }
}
