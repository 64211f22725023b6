//! A fake Microsoft Graph calendar and To Do API (the documented v1.0 wire format) for the
//! Microsoft 365 calendar tests: an axum server on a free loopback port. Include it with
//! `#[path = "support/graph_calendar_fake.rs"] mod graph_calendar_fake;`.
//!
//! - `GET /v1.0/me/calendars`: `{"value": [{"id", "name", "owner"}]}`.
//! - `GET /v1.0/me/calendars/{id}/calendarView/delta?startDateTime&endDateTime`: the events of
//!   the window, `Prefer: odata.maxpagesize` per page; every page but the last carries
//!   `@odata.nextLink` (`$skiptoken`), the last `@odata.deltaLink` (`$deltatoken`). A round from
//!   a delta link lists what changed since: changed events in the window as they are, events
//!   deleted — and, as Graph documents, events changed *outside* the window — as
//!   `{"id", "@removed": {"reason": "deleted"}}`. A series (an event with `recurrence`) is
//!   listed as its occurrence (`type: occurrence`, `seriesMasterId`), as a calendar view does.
//!   Without `startDateTime` / `endDateTime` the first request is a `400`.
//! - `POST /v1.0/me/calendars/{id}/events`: `201` with the event; a `transactionId` seen before
//!   answers the event made then, and makes none (Graph's idempotent create).
//! - `GET | PATCH | DELETE /v1.0/me/events/{id}`: `PATCH` and `DELETE` honour `If-Match`
//!   (`412` on a stale `@odata.etag`), `404` for an unknown id.
//! - `GET /v1.0/me/todo/lists`: `{"value": [{"id", "displayName", "isOwner", "isShared",
//!   "wellknownListName"}]}`.
//! - `GET /v1.0/me/todo/lists/{id}/tasks/delta` (with `$expand=linkedResources` the tasks carry
//!   them), `POST /v1.0/me/todo/lists/{id}/tasks` (with `linkedResources`),
//!   `GET | PATCH | DELETE /v1.0/me/todo/lists/{id}/tasks/{id}` as for events.
//! - Every request needs a bearer token: none, one refused by [`GraphCalendarFake::expire_tokens`]
//!   or one the token validator ([`GraphCalendarFake::validate_with`]) rejects gets `401
//!   InvalidAuthenticationToken`. [`GraphCalendarFake::throttle`] answers the next `n` requests
//!   `429` with `Retry-After`. [`GraphCalendarFake::expire_deltas`] forgets every delta and skip
//!   token: they get `410 Gone` with `syncStateNotFound`.
//! - What Graph would mail: an event created or patched with `attendees`, a change to a meeting
//!   the user organizes that has attendees, and the deletion of one, each add one entry per
//!   attendee to [`GraphCalendarFake::mails`] (to check BX-03).
//! - Every write is recorded ([`GraphCalendarFake::writes`]); hooks change events and tasks
//!   "as a user in Outlook would" (they move the change log on like a write through the API).

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Value, json};

/// The mailbox's own address (the organizer of what it creates).
pub const ME: &str = "sales@corp.example";
/// The default calendar's id.
pub const CALENDAR_ID: &str = "AAMkCalendar";
/// The default To Do list's id.
pub const TASKS_ID: &str = "AAMkTasks";

/// Where an item lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Home {
    /// An event in this calendar.
    Calendar(String),
    /// A task in this list.
    List(String),
}

/// One event or task with its place in the change log.
#[derive(Debug, Clone)]
pub struct Item {
    /// Where it is.
    pub home: Home,
    /// Its JSON as Graph returns it.
    pub json: Value,
    /// The change-log position of its last change.
    pub seq: u64,
    /// Deleted (kept for delta's `@removed`).
    pub deleted: bool,
    version: u64,
}

/// A delta or skip token's state.
#[derive(Debug, Clone)]
struct Round {
    home: Home,
    /// Changes after this position (`None`: a full round).
    after: Option<u64>,
    /// Up to this position (the round's snapshot).
    upto: u64,
    /// Entries already returned in this round.
    offset: usize,
    /// The calendar view's window.
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// `$expand=linkedResources`.
    expand: bool,
}

/// Says whether a bearer token is valid.
type Validator = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The fake's state.
#[derive(Default)]
pub struct Inner {
    /// Calendars: id, name.
    pub calendars: Vec<(String, String)>,
    /// To Do lists: id, name, isOwner, isShared.
    pub lists: Vec<(String, String, bool, bool)>,
    /// Events and tasks by id, in creation order.
    pub items: Vec<(String, Item)>,
    /// The change log's position.
    pub seq: u64,
    /// Entries per page when the client asks for none.
    pub page_size: usize,
    /// Requests still to be answered 429.
    pub throttle: u32,
    /// 429s answered.
    pub throttled: u32,
    /// 410s answered.
    pub gone: u32,
    /// 401s answered.
    pub unauthorized: u32,
    /// Tokens refused from now on.
    pub refused: Vec<String>,
    /// Every bearer token seen.
    pub seen: Vec<String>,
    validator: Option<Validator>,
    rounds: HashMap<String, Round>,
    next_token: u64,
    next_id: u64,
    /// `transactionId` → event id.
    pub transactions: HashMap<String, String>,
    /// Writes: method, path, body.
    pub writes: Vec<(String, String, Value)>,
    /// What Graph would have mailed: `invitation|update|cancellation to address`.
    pub mails: Vec<String>,
    /// Every request: method and path with query.
    pub requests: Vec<String>,
    base: String,
}

impl Inner {
    fn bump(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}", self.next_id)
    }

    fn item(&self, id: &str) -> Option<&Item> {
        self.items
            .iter()
            .find(|(i, it)| i == id && !it.deleted)
            .map(|(_, it)| it)
    }

    fn item_mut(&mut self, id: &str) -> Option<&mut Item> {
        self.items
            .iter_mut()
            .find(|(i, it)| i == id && !it.deleted)
            .map(|(_, it)| it)
    }

    /// Stamps a changed item: new etag, change key, lastModifiedDateTime, log position.
    fn touch(&mut self, id: &str) {
        let seq = self.bump();
        let item = self
            .items
            .iter_mut()
            .find(|(i, _)| i == id)
            .map(|(_, it)| it)
            .expect("item");
        item.version += 1;
        item.seq = seq;
        let tag = format!("{id}-v{}", item.version);
        item.json["@odata.etag"] = json!(format!("W/\"{tag}\""));
        if matches!(item.home, Home::Calendar(_)) {
            item.json["changeKey"] = json!(tag);
        }
        item.json["lastModifiedDateTime"] = json!(Utc::now().to_rfc3339());
    }

    fn insert(&mut self, id: String, home: Home, mut json: Value) {
        json["id"] = json!(id);
        json["createdDateTime"] = json!(Utc::now().to_rfc3339());
        self.items.push((
            id.clone(),
            Item {
                home,
                json,
                seq: 0,
                deleted: false,
                version: 0,
            },
        ));
        self.touch(&id);
    }

    fn mail(&mut self, what: &str, event: &Value) {
        if !event["isOrganizer"].as_bool().unwrap_or(false) {
            return;
        }
        for a in event["attendees"].as_array().cloned().unwrap_or_default() {
            if let Some(address) = a["emailAddress"]["address"].as_str() {
                self.mails.push(format!("{what} to {address}"));
            }
        }
    }
}

/// The running fake.
#[derive(Clone)]
pub struct GraphCalendarFake {
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// Shared with the server.
    pub state: Arc<Mutex<Inner>>,
}

type Shared = State<Arc<Mutex<Inner>>>;

impl GraphCalendarFake {
    /// Starts a fake with one calendar (`Calendar`) and one owned To Do list (`Tasks`).
    pub async fn start(page_size: usize) -> GraphCalendarFake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(Inner {
            page_size,
            calendars: vec![(CALENDAR_ID.into(), "Calendar".into())],
            lists: vec![(TASKS_ID.into(), "Tasks".into(), true, false)],
            base: base.clone(),
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/v1.0/me/calendars", get(calendars))
            .route(
                "/v1.0/me/calendars/{id}/calendarView/delta",
                get(calendar_view_delta),
            )
            .route(
                "/v1.0/me/calendars/{id}/events",
                axum::routing::post(create_event),
            )
            .route(
                "/v1.0/me/events/{id}",
                get(event_item).patch(event_item).delete(event_item),
            )
            .route("/v1.0/me/todo/lists", get(lists))
            .route("/v1.0/me/todo/lists/{id}/tasks/delta", get(tasks_delta))
            .route(
                "/v1.0/me/todo/lists/{id}/tasks",
                axum::routing::post(create_task),
            )
            .route(
                "/v1.0/me/todo/lists/{list}/tasks/{id}",
                get(task_item).patch(task_item).delete(task_item),
            )
            .with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await });
        GraphCalendarFake { base, state }
    }

    /// Runs `f` on the state.
    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.state.lock().expect("fake state"))
    }

    /// Accepts only tokens `valid` accepts (the OAuth fake's `active`).
    pub fn validate_with(&self, valid: impl Fn(&str) -> bool + Send + Sync + 'static) {
        self.with(|s| s.validator = Some(Arc::new(valid)));
    }

    /// Refuses every access token seen so far (as expired): `401` until a fresh one comes.
    pub fn expire_tokens(&self) {
        self.with(|s| {
            let seen = s.seen.clone();
            s.refused.extend(seen);
        });
    }

    /// Forgets every delta and skip token: they get `410 Gone` / `syncStateNotFound`.
    pub fn expire_deltas(&self) {
        self.with(|s| s.rounds.clear());
    }

    /// Answers the next `n` requests with 429 and `Retry-After: 1`.
    pub fn throttle(&self, n: u32) {
        self.with(|s| s.throttle = n);
    }

    /// Adds a calendar; returns its id.
    pub fn add_calendar(&self, name: &str) -> String {
        self.with(|s| {
            let id = s.id("AAMkCal");
            s.calendars.push((id.clone(), name.into()));
            id
        })
    }

    /// Adds a To Do list; `owner` false makes it a list someone else shared with the user.
    pub fn add_list(&self, name: &str, owner: bool) -> String {
        self.with(|s| {
            let id = s.id("AAMkList");
            s.lists.push((id.clone(), name.into(), owner, !owner));
            id
        })
    }

    /// Adds an event to `calendar` as a user in Outlook would (no attendees, the user
    /// organizes it); returns its id.
    pub fn add_event(
        &self,
        calendar: &str,
        subject: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> String {
        self.add_event_json(
            calendar,
            json!({
                "subject": subject,
                "start": dtz(start),
                "end": dtz(end),
            }),
        )
    }

    /// Adds an event with these properties (the rest defaulted as Outlook would).
    pub fn add_event_json(&self, calendar: &str, props: Value) -> String {
        self.with(|s| {
            let id = s.id("AAMkEv");
            let json = new_event(&id, props);
            s.insert(id.clone(), Home::Calendar(calendar.into()), json);
            id
        })
    }

    /// Changes an event as a user in Outlook would.
    pub fn edit_event(&self, id: &str, f: impl FnOnce(&mut Value)) {
        self.with(|s| {
            f(&mut s.item_mut(id).expect("event").json);
            s.touch(id);
        });
    }

    /// Deletes an event or task as a user would.
    pub fn delete_item(&self, id: &str) {
        self.with(|s| {
            s.item_mut(id).expect("item").deleted = true;
            s.touch(id);
        });
    }

    /// Adds a task to `list` as a user in To Do would; returns its id.
    pub fn add_task(&self, list: &str, title: &str, due: Option<DateTime<Utc>>) -> String {
        self.with(|s| {
            let id = s.id("AAMkTask");
            let json = json!({
                "title": title,
                "status": "notStarted",
                "importance": "normal",
                "isReminderOn": false,
                "body": {"content": "", "contentType": "text"},
                "dueDateTime": due.map(dtz),
            });
            s.insert(id.clone(), Home::List(list.into()), json);
            id
        })
    }

    /// Changes a task as a user in To Do would.
    pub fn edit_task(&self, id: &str, f: impl FnOnce(&mut Value)) {
        self.edit_event(id, f);
    }

    /// The live item `id`'s JSON.
    pub fn get(&self, id: &str) -> Option<Value> {
        self.with(|s| s.item(id).map(|i| i.json.clone()))
    }

    /// The live events of `calendar`.
    pub fn events(&self, calendar: &str) -> Vec<Value> {
        self.live(&Home::Calendar(calendar.into()))
    }

    /// The live tasks of `list`.
    pub fn tasks(&self, list: &str) -> Vec<Value> {
        self.live(&Home::List(list.into()))
    }

    fn live(&self, home: &Home) -> Vec<Value> {
        self.with(|s| {
            s.items
                .iter()
                .filter(|(_, i)| &i.home == home && !i.deleted)
                .map(|(_, i)| i.json.clone())
                .collect()
        })
    }

    /// Writes received through the API: method, path, body.
    pub fn writes(&self) -> Vec<(String, String, Value)> {
        self.with(|s| s.writes.clone())
    }

    /// What Graph would have mailed to attendees.
    pub fn mails(&self) -> Vec<String> {
        self.with(|s| s.mails.clone())
    }

    /// Requests answered 429 / 410 / 401 so far.
    pub fn throttled(&self) -> u32 {
        self.with(|s| s.throttled)
    }

    /// 410s answered.
    pub fn gone(&self) -> u32 {
        self.with(|s| s.gone)
    }

    /// 401s answered.
    pub fn unauthorized(&self) -> u32 {
        self.with(|s| s.unauthorized)
    }

    /// Every request: `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.with(|s| s.requests.clone())
    }
}

/// A UTC `dateTimeTimeZone`, as Graph returns one without `Prefer: outlook.timezone`.
pub fn dtz(t: DateTime<Utc>) -> Value {
    json!({"dateTime": t.format("%Y-%m-%dT%H:%M:%S.0000000").to_string(), "timeZone": "UTC"})
}

fn read_dtz(v: &Value) -> Option<DateTime<Utc>> {
    let text = v["dateTime"].as_str()?.trim_end_matches('Z');
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

fn new_event(id: &str, props: Value) -> Value {
    let mut event = json!({
        "@odata.type": "#microsoft.graph.event",
        "iCalUId": format!("040000008200E00074C5B7101A82E008{id}"),
        "subject": "",
        "body": {"contentType": "text", "content": ""},
        "location": {"displayName": ""},
        "isAllDay": false,
        "isCancelled": false,
        "isOrganizer": true,
        "showAs": "busy",
        "type": "singleInstance",
        "organizer": {"emailAddress": {"name": "Sales", "address": ME}},
        "attendees": [],
        "originalStartTimeZone": "UTC",
        "originalEndTimeZone": "UTC",
    });
    if let Value::Object(props) = props {
        for (k, v) in props {
            event[k] = v;
        }
    }
    if event.get("recurrence").is_some_and(Value::is_object) {
        event["type"] = json!("seriesMaster");
    }
    // Graph fills in the attendees' response status
    if let Some(list) = event["attendees"].as_array_mut() {
        for a in list {
            if a.get("status").is_none() {
                a["status"] = json!({"response": "none", "time": "0001-01-01T00:00:00Z"});
            }
        }
    }
    event
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// Auth and throttling, common to every route.
fn gate(s: &mut Inner, method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
    s.requests.push(format!("{method} {path}"));
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let valid = bearer
        .as_ref()
        .is_some_and(|t| !s.refused.contains(t) && s.validator.as_ref().is_none_or(|v| v(t)));
    if let Some(t) = &bearer
        && !s.seen.contains(t)
    {
        s.seen.push(t.clone());
    }
    if !valid {
        s.unauthorized += 1;
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        ));
    }
    if s.throttle > 0 {
        s.throttle -= 1;
        s.throttled += 1;
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "ApplicationThrottled",
            "Application is over its MailboxConcurrency limit.",
        );
        response
            .headers_mut()
            .insert("retry-after", "1".parse().expect("header"));
        return Some(response);
    }
    None
}

fn page_size(s: &Inner, headers: &HeaderMap) -> usize {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix("odata.maxpagesize="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(s.page_size)
        .max(1)
}

fn if_match_fails(headers: &HeaderMap, item: &Item) -> bool {
    headers
        .get("if-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tag| tag != "*" && Some(tag) != item.json["@odata.etag"].as_str())
}

/// The entries a round returns, in log order, and where the round's log ends.
fn entries(s: &Inner, round: &Round) -> Vec<Value> {
    let mut changed: Vec<&(String, Item)> = s
        .items
        .iter()
        .filter(|(_, i)| i.home == round.home && i.seq <= round.upto)
        .filter(|(_, i)| match round.after {
            None => !i.deleted,
            Some(after) => i.seq > after,
        })
        .collect();
    changed.sort_by_key(|(_, i)| i.seq);
    let in_window = |json: &Value| match round.window {
        None => true,
        Some((from, to)) => {
            let start = read_dtz(&json["start"]);
            let end = read_dtz(&json["end"]).or(start);
            start.is_some_and(|st| st < to) && end.is_some_and(|e| e > from)
        }
    };
    let mut out = Vec::new();
    for (id, item) in changed {
        if item.deleted || !in_window(&item.json) {
            if round.after.is_some() {
                out.push(json!({"id": id, "@removed": {"reason": "deleted"}}));
            }
            continue;
        }
        let mut json = item.json.clone();
        if matches!(round.home, Home::List(_))
            && !round.expand
            && let Some(o) = json.as_object_mut()
        {
            o.remove("linkedResources");
        }
        if json["type"] == "seriesMaster" && round.window.is_some() {
            // a calendar view lists the series' occurrences, not its master
            json = json!({
                "@odata.type": "#microsoft.graph.event",
                "id": format!("{id}-occurrence-1"),
                "type": "occurrence",
                "seriesMasterId": id,
                "subject": json["subject"],
                "start": json["start"],
                "end": json["end"],
                "@odata.etag": json["@odata.etag"],
            });
        }
        out.push(json);
    }
    out
}

/// Answers one page of a round, storing the state behind its next or delta link.
fn answer_round(s: &mut Inner, mut round: Round, size: usize, path: &str) -> Response {
    let all = entries(s, &round);
    let page: Vec<Value> = all.iter().skip(round.offset).take(size).cloned().collect();
    round.offset += page.len();
    s.next_token += 1;
    let token = format!("tok{}", s.next_token);
    let mut body = json!({"value": page});
    if round.offset < all.len() {
        body["@odata.nextLink"] = json!(format!("{}{path}?$skiptoken={token}", s.base));
    } else {
        round = Round {
            after: Some(round.upto),
            offset: 0,
            ..round
        };
        body["@odata.deltaLink"] = json!(format!("{}{path}?$deltatoken={token}", s.base));
    }
    s.rounds.insert(token, round);
    axum::Json(body).into_response()
}

/// The round a delta request continues, or a new one; `Err` is the answer.
fn round_of(
    s: &mut Inner,
    query: &HashMap<String, String>,
    new: impl FnOnce(u64) -> Result<Round, Box<Response>>,
) -> Result<Round, Box<Response>> {
    match query.get("$skiptoken").or_else(|| query.get("$deltatoken")) {
        Some(token) => {
            let mut round = match s.rounds.get(token) {
                Some(r) => r.clone(),
                None => {
                    s.gone += 1;
                    return Err(Box::new(error(
                        StatusCode::GONE,
                        "syncStateNotFound",
                        "The sync state generation is not found.",
                    )));
                }
            };
            if query.contains_key("$deltatoken") {
                round.upto = s.seq;
            }
            Ok(round)
        }
        None => new(s.seq),
    }
}

async fn calendars(State(state): Shared, headers: HeaderMap) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(r) = gate(&mut s, &Method::GET, "/v1.0/me/calendars", &headers) {
        return r;
    }
    let value: Vec<Value> = s
        .calendars
        .iter()
        .map(|(id, name)| {
            json!({"id": id, "name": name, "canEdit": true,
                   "owner": {"name": "Sales", "address": ME}})
        })
        .collect();
    axum::Json(json!({"value": value})).into_response()
}

async fn lists(State(state): Shared, headers: HeaderMap) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(r) = gate(&mut s, &Method::GET, "/v1.0/me/todo/lists", &headers) {
        return r;
    }
    let value: Vec<Value> = s
        .lists
        .iter()
        .map(|(id, name, owner, shared)| {
            json!({"@odata.etag": format!("W/\"{id}\""), "id": id, "displayName": name,
                   "isOwner": owner, "isShared": shared,
                   "wellknownListName": if id == TASKS_ID { "defaultList" } else { "none" }})
        })
        .collect();
    axum::Json(json!({"value": value})).into_response()
}

fn parse_param(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

async fn calendar_view_delta(
    State(state): Shared,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = state.lock().expect("fake state");
    let path = format!("/v1.0/me/calendars/{id}/calendarView/delta");
    let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if let Some(r) = gate(
        &mut s,
        &Method::GET,
        &format!("{path}?{}", q.join("&")),
        &headers,
    ) {
        return r;
    }
    if !s.calendars.iter().any(|(c, _)| *c == id) {
        return error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "no such calendar",
        );
    }
    let size = page_size(&s, &headers);
    let home = Home::Calendar(id);
    let round = round_of(&mut s, &query, |upto| {
        let get = |k: &str| {
            query
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .and_then(|(_, v)| parse_param(v))
        };
        match (get("startDateTime"), get("endDateTime")) {
            (Some(from), Some(to)) => Ok(Round {
                home,
                after: None,
                upto,
                offset: 0,
                window: Some((from, to)),
                expand: false,
            }),
            _ => Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                "ErrorInvalidParameter",
                "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
            ))),
        }
    });
    match round {
        Ok(round) => answer_round(&mut s, round, size, &path),
        Err(r) => *r,
    }
}

async fn tasks_delta(
    State(state): Shared,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = state.lock().expect("fake state");
    let path = format!("/v1.0/me/todo/lists/{id}/tasks/delta");
    if let Some(r) = gate(&mut s, &Method::GET, &path, &headers) {
        return r;
    }
    if !s.lists.iter().any(|(l, ..)| *l == id) {
        return error(StatusCode::NOT_FOUND, "ErrorItemNotFound", "no such list");
    }
    let size = page_size(&s, &headers);
    let expand = query
        .get("$expand")
        .is_some_and(|e| e.contains("linkedResources"));
    let home = Home::List(id);
    let round = round_of(&mut s, &query, |upto| {
        Ok(Round {
            home,
            after: None,
            upto,
            offset: 0,
            window: None,
            expand,
        })
    });
    match round {
        Ok(round) => answer_round(&mut s, round, size, &path),
        Err(r) => *r,
    }
}

async fn create_event(
    State(state): Shared,
    Path(calendar): Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut s = state.lock().expect("fake state");
    let path = format!("/v1.0/me/calendars/{calendar}/events");
    if let Some(r) = gate(&mut s, &Method::POST, &path, &headers) {
        return r;
    }
    s.writes.push(("POST".into(), path, body.clone()));
    if let Some(tx) = body["transactionId"].as_str()
        && let Some(existing) = s.transactions.get(tx).cloned()
        && let Some(item) = s.item(&existing)
    {
        return (StatusCode::CREATED, axum::Json(item.json.clone())).into_response();
    }
    let id = s.id("AAMkEv");
    let json = new_event(&id, body.clone());
    if let Some(tx) = body["transactionId"].as_str() {
        s.transactions.insert(tx.to_owned(), id.clone());
    }
    s.mail("invitation", &json);
    s.insert(id.clone(), Home::Calendar(calendar), json);
    let item = s.item(&id).expect("created").json.clone();
    (StatusCode::CREATED, axum::Json(item)).into_response()
}

async fn event_item(
    State(state): Shared,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut s = state.lock().expect("fake state");
    let path = format!("/v1.0/me/events/{id}");
    if let Some(r) = gate(&mut s, &method, &path, &headers) {
        return r;
    }
    one_item(&mut s, &id, method, &headers, &body, path, false)
}

async fn task_item(
    State(state): Shared,
    Path((list, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut s = state.lock().expect("fake state");
    let path = format!("/v1.0/me/todo/lists/{list}/tasks/{id}");
    if let Some(r) = gate(&mut s, &method, &path, &headers) {
        return r;
    }
    if s.item(&id).is_some_and(|i| i.home != Home::List(list)) {
        return error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "not in this list",
        );
    }
    let expand = query
        .get("$expand")
        .is_some_and(|e| e.contains("linkedResources"));
    one_item(&mut s, &id, method, &headers, &body, path, !expand)
}

fn one_item(
    s: &mut Inner,
    id: &str,
    method: Method,
    headers: &HeaderMap,
    body: &[u8],
    path: String,
    strip_links: bool,
) -> Response {
    let Some(item) = s.item(id).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        );
    };
    let is_event = matches!(item.home, Home::Calendar(_));
    match method {
        Method::GET => {
            let mut json = item.json;
            if strip_links && let Some(o) = json.as_object_mut() {
                o.remove("linkedResources");
            }
            axum::Json(json).into_response()
        }
        Method::PATCH => {
            let patch: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            s.writes.push(("PATCH".into(), path, patch.clone()));
            if if_match_fails(headers, &item) {
                return error(
                    StatusCode::PRECONDITION_FAILED,
                    "ErrorIrresolvableConflict",
                    "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
                );
            }
            let Value::Object(patch) = patch else {
                return error(StatusCode::BAD_REQUEST, "BadRequest", "not an object");
            };
            let json = {
                let target = s.item_mut(id).expect("item");
                for (k, v) in &patch {
                    target.json[k] = v.clone();
                }
                target.json.clone()
            };
            if is_event {
                let attendees_only = patch.keys().all(|k| k == "attendees");
                if patch.contains_key("attendees") {
                    s.mail("invitation", &json);
                } else if !attendees_only {
                    s.mail("update", &json);
                }
            }
            s.touch(id);
            axum::Json(s.item(id).expect("item").json.clone()).into_response()
        }
        Method::DELETE => {
            s.writes.push(("DELETE".into(), path, Value::Null));
            if if_match_fails(headers, &item) {
                return error(
                    StatusCode::PRECONDITION_FAILED,
                    "ErrorIrresolvableConflict",
                    "The change key does not match.",
                );
            }
            if is_event {
                s.mail("cancellation", &item.json);
            }
            s.item_mut(id).expect("item").deleted = true;
            s.touch(id);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

async fn create_task(
    State(state): Shared,
    Path(list): Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut s = state.lock().expect("fake state");
    let path = format!("/v1.0/me/todo/lists/{list}/tasks");
    if let Some(r) = gate(&mut s, &Method::POST, &path, &headers) {
        return r;
    }
    s.writes.push(("POST".into(), path, body.clone()));
    if !s.lists.iter().any(|(l, ..)| *l == list) {
        return error(StatusCode::NOT_FOUND, "ErrorItemNotFound", "no such list");
    }
    let id = s.id("AAMkTask");
    let mut json = json!({
        "title": "",
        "status": "notStarted",
        "importance": "normal",
        "isReminderOn": false,
        "body": {"content": "", "contentType": "text"},
    });
    if let Value::Object(props) = body {
        for (k, v) in props {
            json[k] = v;
        }
    }
    if let Some(links) = json["linkedResources"].as_array_mut() {
        for (n, l) in links.iter_mut().enumerate() {
            l["id"] = json!(format!("{id}-link{n}"));
        }
    }
    s.insert(id.clone(), Home::List(list), json);
    let item = s.item(&id).expect("created").json.clone();
    (StatusCode::CREATED, axum::Json(item)).into_response()
}
