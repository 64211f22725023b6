//! A fake Google Calendar API v3 (the documented wire format of the discovery document
//! `calendar/v3/calendar-api.json` and the synchronisation and error guides) for the Google
//! calendar tests: an axum server on a free loopback port, serving `/calendar/v3/...`.
//!
//! - `GET users/me/calendarList`: the calendars added with [`GCalendarFake::add_calendar`]
//!   (the primary one, the account's address, exists from the start), with `accessRole`.
//! - `GET calendars/{id}/events`: pages of `maxResults` events ordered by id; every page but
//!   the last carries `nextPageToken`, the last `nextSyncToken`. Without a token it lists the
//!   live events (`status: cancelled` ones only with `showDeleted=true`); with `syncToken` it
//!   lists every event changed since, cancelled ones included (deletes are tombstones). Tokens
//!   belong to an epoch: [`GCalendarFake::expire_sync_tokens`] starts a new one, after which an
//!   old token gets `410 Gone` with reason `fullSyncRequired`. `syncToken` with `timeMin`,
//!   `timeMax`, `iCalUID`, `orderBy`, `q` or `updatedMin` is a `400`, as Google refuses it.
//! - `POST calendars/{id}/events` (insert): a client-chosen `id` must be base32hex, 5..1024
//!   characters; an id that exists, even cancelled, is `409 duplicate`. The account becomes the
//!   organizer. `iCalUID` defaults to `{id}@google.com`.
//! - `GET|PUT|DELETE calendars/{id}/events/{eventId}`: `If-Match` with a stale etag is `412
//!   conditionNotMet`; an unknown event `404 notFound`; a delete of a cancelled one `410
//!   deleted`. A `PUT` keeps the read-only fields (`id`, `iCalUID`, `organizer`, `creator`,
//!   `created`) and refuses a change to the main fields of an event organized by someone else
//!   (`403 forbiddenForNonOrganizer`), as an attendee's copy is Google's to update.
//! - Every write records its `sendUpdates` ([`GCalendarFake::writes`]).
//! - A request without `Authorization: Bearer …` (or, after [`GCalendarFake::accept_only`],
//!   with another token) gets `401 authError`; the next [`GCalendarFake::throttle`] requests
//!   get `429 rateLimitExceeded` with `Retry-After: 1` (or, after
//!   [`GCalendarFake::throttle_with_403`], `403 userRateLimitExceeded` without one).
//!
//! Hooks change the calendar as a user in Google would: [`GCalendarFake::add_event`],
//! [`GCalendarFake::add_group_event`] (attendees invited by the account),
//! [`GCalendarFake::add_invitation`] (organized by someone else),
//! [`GCalendarFake::edit_event`], [`GCalendarFake::cancel_event`].

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// One write the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteSeen {
    /// `POST`, `PUT` or `DELETE`.
    pub method: String,
    /// The calendar.
    pub calendar: String,
    /// The event id (for an insert, the one it got).
    pub event: String,
    /// The `sendUpdates` parameter, if given.
    pub send_updates: Option<String>,
    /// The answer's status.
    pub status: u16,
}

/// The fake's state.
#[derive(Debug, Default)]
pub struct Inner {
    /// The account's address (its primary calendar's id).
    pub account: String,
    /// `calendarList` entries.
    pub calendars: Vec<Value>,
    /// Events per calendar, by id (cancelled ones kept).
    pub events: HashMap<String, BTreeMap<String, Value>>,
    /// The change counter when each event last changed, per (calendar, id).
    pub changed: HashMap<(String, String), u64>,
    /// The change counter.
    pub counter: u64,
    /// The token epoch.
    pub epoch: u32,
    /// Requests still to be answered 429.
    pub throttle: u32,
    /// 429s answered.
    pub throttled: u32,
    /// Throttle with Calendar's other rate-limit answer: `403 userRateLimitExceeded`, without
    /// a `Retry-After`.
    pub throttle_403: bool,
    /// 410s answered on listings.
    pub gone: u32,
    /// The only bearer token accepted, when set.
    pub accepted_token: Option<String>,
    /// Every events.list query, in order.
    pub list_queries: Vec<HashMap<String, String>>,
    /// Every write, in order.
    pub writes: Vec<WriteSeen>,
    /// Requests answered (any route).
    pub requests: u64,
    /// The bearer token of the last request.
    pub last_bearer: Option<String>,
    next_id: u64,
}

impl Inner {
    fn bump(&mut self, calendar: &str, id: &str) -> String {
        self.counter += 1;
        self.changed
            .insert((calendar.to_owned(), id.to_owned()), self.counter);
        format!("\"{}\"", 3_181_161_784_712_000u64 + self.counter)
    }

    /// Stores `event` on `calendar` as changed now: new etag and `updated`.
    fn store(&mut self, calendar: &str, mut event: Value) -> Value {
        let id = event["id"].as_str().expect("event id").to_owned();
        event["etag"] = json!(self.bump(calendar, &id));
        event["updated"] = json!(now());
        self.events
            .entry(calendar.to_owned())
            .or_default()
            .insert(id, event.clone());
        event
    }

    fn generated_id(&mut self) -> String {
        self.next_id += 1;
        format!("gev{:08}", self.next_id)
    }
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The running fake.
#[derive(Clone)]
pub struct GCalendarFake {
    /// `http://127.0.0.1:port` (the `apiBaseUrl`; the API is under `/calendar/v3`).
    pub base: String,
    /// Shared with the server.
    pub state: Arc<Mutex<Inner>>,
}

type Shared = State<Arc<Mutex<Inner>>>;

impl GCalendarFake {
    /// Starts a fake for the Google account `account`, whose primary calendar exists.
    pub async fn start(account: &str) -> GCalendarFake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(Inner {
            account: account.to_owned(),
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/calendar/v3/users/me/calendarList", get(calendar_list))
            .route(
                "/calendar/v3/calendars/{cal}/events",
                get(list_events).post(insert_event),
            )
            .route(
                "/calendar/v3/calendars/{cal}/events/{id}",
                get(get_event).put(update_event).delete(delete_event),
            )
            .with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let fake = GCalendarFake { base, state };
        fake.add_calendar(account, account, "owner", true);
        fake
    }

    /// The Calendar API root the remote is given.
    pub fn calendar_base(&self) -> String {
        format!("{}/calendar/v3", self.base)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.state.lock().expect("fake state"))
    }

    /// Adds a calendar to the account's list.
    pub fn add_calendar(&self, id: &str, summary: &str, access_role: &str, primary: bool) {
        self.with(|s| {
            let mut entry = json!({
                "kind": "calendar#calendarListEntry",
                "etag": format!("\"cal-{}\"", s.calendars.len()),
                "id": id, "summary": summary, "timeZone": "Europe/Berlin",
                "accessRole": access_role,
            });
            if primary {
                entry["primary"] = json!(true);
            }
            s.calendars.push(entry);
            s.events.entry(id.to_owned()).or_default();
        });
    }

    /// Creates an event as the account would in Google's UI: `event` gets an id (unless it
    /// has one), `iCalUID`, the account as creator and organizer, `status: confirmed`.
    pub fn add_event(&self, calendar: &str, mut event: Value) -> String {
        self.with(|s| {
            if event.get("id").is_none() {
                event["id"] = json!(s.generated_id());
            }
            let id = event["id"].as_str().expect("id").to_owned();
            let account = s.account.clone();
            let defaults = json!({
                "kind": "calendar#event",
                "status": "confirmed",
                "iCalUID": format!("{id}@google.com"),
                "created": now(),
                "creator": {"email": account, "self": true},
                "organizer": {"email": account, "self": true},
                "sequence": 0,
                "reminders": {"useDefault": true},
                "eventType": "default",
            });
            for (k, v) in defaults.as_object().expect("object") {
                if event.get(k).is_none() {
                    event[k] = v.clone();
                }
            }
            s.store(calendar, event);
            id
        })
    }

    /// A timed event the account organizes, inviting `attendees` (who have not answered yet).
    pub fn add_group_event(
        &self,
        calendar: &str,
        summary: &str,
        start: &str,
        end: &str,
        attendees: &[&str],
    ) -> String {
        let account = self.with(|s| s.account.clone());
        let mut list = vec![
            json!({"email": account, "organizer": true, "self": true, "responseStatus": "accepted"}),
        ];
        list.extend(
            attendees
                .iter()
                .map(|a| json!({"email": a, "responseStatus": "needsAction"})),
        );
        self.add_event(
            calendar,
            json!({
                "summary": summary,
                "start": {"dateTime": start, "timeZone": "Europe/Berlin"},
                "end": {"dateTime": end, "timeZone": "Europe/Berlin"},
                "attendees": list,
            }),
        )
    }

    /// An invitation from `organizer` (someone else) that the account has accepted: its copy
    /// on the account's calendar.
    pub fn add_invitation(
        &self,
        calendar: &str,
        organizer: &str,
        summary: &str,
        start: &str,
        end: &str,
    ) -> String {
        let account = self.with(|s| s.account.clone());
        self.add_event(
            calendar,
            json!({
                "summary": summary,
                "start": {"dateTime": start},
                "end": {"dateTime": end},
                "creator": {"email": organizer},
                "organizer": {"email": organizer},
                "attendees": [
                    {"email": organizer, "organizer": true, "responseStatus": "accepted"},
                    {"email": account, "self": true, "responseStatus": "accepted"},
                ],
            }),
        )
    }

    /// Edits an event as a user would: `f` changes it, then it gets a new etag.
    pub fn edit_event(&self, calendar: &str, id: &str, f: impl FnOnce(&mut Value)) {
        self.with(|s| {
            let mut event = s.events[calendar][id].clone();
            f(&mut event);
            s.store(calendar, event);
        });
    }

    /// Deletes an event as a user would: it stays as `status: cancelled`.
    pub fn cancel_event(&self, calendar: &str, id: &str) {
        self.edit_event(calendar, id, |e| e["status"] = json!("cancelled"));
    }

    /// An event as stored (cancelled ones too).
    pub fn event(&self, calendar: &str, id: &str) -> Option<Value> {
        self.with(|s| s.events.get(calendar).and_then(|m| m.get(id)).cloned())
    }

    /// The live (not cancelled) events of a calendar.
    pub fn live_events(&self, calendar: &str) -> Vec<Value> {
        self.with(|s| {
            s.events
                .get(calendar)
                .map(|m| {
                    m.values()
                        .filter(|e| e["status"] != "cancelled")
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    /// Answers the next `n` requests with 429.
    pub fn throttle(&self, n: u32) {
        self.with(|s| {
            s.throttle = n;
            s.throttle_403 = false;
        });
    }

    /// Answers the next `n` requests with `403 userRateLimitExceeded`.
    pub fn throttle_with_403(&self, n: u32) {
        self.with(|s| {
            s.throttle = n;
            s.throttle_403 = true;
        });
    }

    /// Invalidates every sync and page token issued so far.
    pub fn expire_sync_tokens(&self) {
        self.with(|s| s.epoch += 1);
    }

    /// Accepts only this bearer token from now on.
    pub fn accept_only(&self, token: &str) {
        self.with(|s| s.accepted_token = Some(token.to_owned()));
    }

    /// 429s answered so far.
    pub fn throttled(&self) -> u32 {
        self.with(|s| s.throttled)
    }

    /// 410s answered to listings so far.
    pub fn gone(&self) -> u32 {
        self.with(|s| s.gone)
    }

    /// Every write so far.
    pub fn writes(&self) -> Vec<WriteSeen> {
        self.with(|s| s.writes.clone())
    }

    /// Every events.list query so far.
    pub fn list_queries(&self) -> Vec<HashMap<String, String>> {
        self.with(|s| s.list_queries.clone())
    }

    /// The bearer token of the last request.
    pub fn last_bearer(&self) -> Option<String> {
        self.with(|s| s.last_bearer.clone())
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.with(|s| s.requests)
    }
}

/// Google's error JSON.
fn error(status: StatusCode, domain: &str, reason: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {
            "errors": [{"domain": domain, "reason": reason, "message": message}],
            "code": status.as_u16(),
            "message": message,
        }})),
    )
        .into_response()
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "global", "notFound", "Not Found")
}

/// Auth and throttling, common to every route.
fn gate(s: &mut Inner, headers: &HeaderMap) -> Option<Response> {
    s.requests += 1;
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty());
    s.last_bearer = bearer.map(str::to_owned);
    let ok = match (&bearer, &s.accepted_token) {
        (None, _) => false,
        (Some(t), Some(only)) => t == only,
        (Some(_), None) => true,
    };
    if !ok {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "global",
            "authError",
            "Invalid Credentials",
        ));
    }
    if s.throttle > 0 {
        s.throttle -= 1;
        s.throttled += 1;
        if s.throttle_403 {
            return Some(error(
                StatusCode::FORBIDDEN,
                "usageLimits",
                "userRateLimitExceeded",
                "User Rate Limit Exceeded",
            ));
        }
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "usageLimits",
            "rateLimitExceeded",
            "Rate Limit Exceeded",
        );
        response
            .headers_mut()
            .insert("retry-after", "1".parse().expect("header"));
        return Some(response);
    }
    None
}

fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get("if-match")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn calendar_list(State(state): Shared, headers: HeaderMap) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(r) = gate(&mut s, &headers) {
        return r;
    }
    axum::Json(json!({
        "kind": "calendar#calendarList",
        "etag": "\"list\"",
        "nextSyncToken": format!("cal.{}", s.epoch),
        "items": s.calendars,
    }))
    .into_response()
}

/// `sync.E.N`: changes after counter N, epoch E.
fn parse_sync(token: &str) -> Option<(u32, u64)> {
    let rest = token.strip_prefix("sync.")?;
    let (e, n) = rest.split_once('.')?;
    Some((e.parse().ok()?, n.parse().ok()?))
}

/// `page.E.SINCE.SNAPSHOT.OFFSET` (SINCE `f` for a full listing).
fn parse_page(token: &str) -> Option<(u32, Option<u64>, u64, usize)> {
    let mut parts = token.strip_prefix("page.")?.split('.');
    let epoch = parts.next()?.parse().ok()?;
    let since = match parts.next()? {
        "f" => None,
        n => Some(n.parse().ok()?),
    };
    Some((
        epoch,
        since,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ))
}

async fn list_events(
    State(state): Shared,
    Path(cal): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(r) = gate(&mut s, &headers) {
        return r;
    }
    s.list_queries.push(query.clone());
    let Some(events) = s.events.get(&cal).cloned() else {
        return not_found();
    };
    if query.contains_key("syncToken") {
        for p in [
            "timeMin",
            "timeMax",
            "iCalUID",
            "orderBy",
            "q",
            "updatedMin",
            "privateExtendedProperty",
            "sharedExtendedProperty",
        ] {
            if query.contains_key(p) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "global",
                    "invalid",
                    &format!("{p} cannot be used with syncToken"),
                );
            }
        }
    }
    let gone = |s: &mut Inner| {
        s.gone += 1;
        error(
            StatusCode::GONE,
            "global",
            "fullSyncRequired",
            "Sync token is no longer valid, a full sync is required.",
        )
    };
    let (since, snapshot, offset) = if let Some(p) = query.get("pageToken") {
        match parse_page(p) {
            Some((epoch, since, snapshot, offset)) if epoch == s.epoch => (since, snapshot, offset),
            _ => return gone(&mut s),
        }
    } else if let Some(t) = query.get("syncToken") {
        match parse_sync(t) {
            Some((epoch, n)) if epoch == s.epoch => (Some(n), s.counter, 0),
            _ => return gone(&mut s),
        }
    } else {
        (None, s.counter, 0)
    };
    let show_deleted = since.is_some() || query.get("showDeleted").is_some_and(|v| v == "true");
    let time_min = query
        .get("timeMin")
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let matching: Vec<Value> = events
        .iter()
        .filter(|(id, e)| match since {
            Some(n) => s.changed[&(cal.clone(), (*id).clone())] > n,
            None => show_deleted || e["status"] != "cancelled",
        })
        .filter(|(_, e)| {
            // timeMin bounds an event's end.
            let Some(min) = time_min else { return true };
            let end = e["end"]["dateTime"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp())
                .or_else(|| {
                    e["end"]["date"]
                        .as_str()
                        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                        .map(|d| {
                            d.and_hms_opt(0, 0, 0)
                                .expect("midnight")
                                .and_utc()
                                .timestamp()
                        })
                });
            e.get("recurrence").is_some() || end.is_none_or(|end| end > min.timestamp())
        })
        .map(|(_, e)| e.clone())
        .collect();
    let max: usize = query
        .get("maxResults")
        .and_then(|m| m.parse().ok())
        .unwrap_or(250)
        .clamp(1, 2500);
    let items: Vec<Value> = matching.iter().skip(offset).take(max).cloned().collect();
    let mut body = json!({
        "kind": "calendar#events",
        "etag": format!("\"{}\"", s.counter),
        "summary": cal,
        "timeZone": "Europe/Berlin",
        "accessRole": "owner",
        "updated": now(),
        "items": items,
    });
    if offset + max < matching.len() {
        body["nextPageToken"] = json!(format!(
            "page.{}.{}.{snapshot}.{}",
            s.epoch,
            since.map_or("f".to_owned(), |n| n.to_string()),
            offset + max
        ));
    } else {
        body["nextSyncToken"] = json!(format!("sync.{}.{snapshot}", s.epoch));
    }
    axum::Json(body).into_response()
}

fn record(
    s: &mut Inner,
    method: &str,
    cal: &str,
    event: &str,
    query: &HashMap<String, String>,
    status: StatusCode,
) {
    s.writes.push(WriteSeen {
        method: method.to_owned(),
        calendar: cal.to_owned(),
        event: event.to_owned(),
        send_updates: query.get("sendUpdates").cloned(),
        status: status.as_u16(),
    });
}

fn base32hex(id: &str) -> bool {
    (5..=1024).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='v').contains(&c))
}

async fn insert_event(
    State(state): Shared,
    Path(cal): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    axum::Json(mut event): axum::Json<Value>,
) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(r) = gate(&mut s, &headers) {
        return r;
    }
    if !s.events.contains_key(&cal) {
        return not_found();
    }
    let id = match event["id"].as_str() {
        Some(id) if !base32hex(id) => {
            record(&mut s, "POST", &cal, id, &query, StatusCode::BAD_REQUEST);
            return error(
                StatusCode::BAD_REQUEST,
                "global",
                "invalid",
                "Invalid resource id value.",
            );
        }
        Some(id) => id.to_owned(),
        None => s.generated_id(),
    };
    if s.events[&cal].contains_key(&id) {
        record(&mut s, "POST", &cal, &id, &query, StatusCode::CONFLICT);
        return error(
            StatusCode::CONFLICT,
            "global",
            "duplicate",
            "The requested identifier already exists.",
        );
    }
    if event.get("start").is_none() || event.get("end").is_none() {
        record(&mut s, "POST", &cal, &id, &query, StatusCode::BAD_REQUEST);
        return error(
            StatusCode::BAD_REQUEST,
            "global",
            "required",
            "Missing end time.",
        );
    }
    let account = s.account.clone();
    event["id"] = json!(id);
    event["kind"] = json!("calendar#event");
    if event.get("iCalUID").is_none() {
        event["iCalUID"] = json!(format!("{id}@google.com"));
    }
    event["creator"] = json!({"email": account, "self": true});
    event["organizer"] = json!({"email": account, "self": true});
    event["created"] = json!(now());
    if event.get("status").is_none() {
        event["status"] = json!("confirmed");
    }
    event["sequence"] = json!(0);
    let stored = s.store(&cal, event);
    record(&mut s, "POST", &cal, &id, &query, StatusCode::OK);
    axum::Json(stored).into_response()
}

async fn get_event(
    State(state): Shared,
    Path((cal, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(r) = gate(&mut s, &headers) {
        return r;
    }
    match s.events.get(&cal).and_then(|m| m.get(&id)) {
        Some(e) => axum::Json(e.clone()).into_response(),
        None => not_found(),
    }
}

/// The fields only an event's organizer may change.
const ORGANIZER_FIELDS: [&str; 6] = [
    "summary",
    "description",
    "location",
    "start",
    "end",
    "recurrence",
];

async fn update_event(
    State(state): Shared,
    Path((cal, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    axum::Json(mut event): axum::Json<Value>,
) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(r) = gate(&mut s, &headers) {
        return r;
    }
    let Some(old) = s.events.get(&cal).and_then(|m| m.get(&id)).cloned() else {
        record(&mut s, "PUT", &cal, &id, &query, StatusCode::NOT_FOUND);
        return not_found();
    };
    if let Some(tag) = if_match(&headers)
        && tag != old["etag"].as_str().unwrap_or_default()
    {
        record(
            &mut s,
            "PUT",
            &cal,
            &id,
            &query,
            StatusCode::PRECONDITION_FAILED,
        );
        return error(
            StatusCode::PRECONDITION_FAILED,
            "global",
            "conditionNotMet",
            "Precondition Failed",
        );
    }
    if old["organizer"]["self"] != true
        && ORGANIZER_FIELDS
            .iter()
            .any(|f| event.get(*f) != old.get(*f))
    {
        record(&mut s, "PUT", &cal, &id, &query, StatusCode::FORBIDDEN);
        return error(
            StatusCode::FORBIDDEN,
            "calendar",
            "forbiddenForNonOrganizer",
            "Shared properties can only be changed by the organizer of the event.",
        );
    }
    for k in ["id", "iCalUID", "organizer", "creator", "created", "kind"] {
        match old.get(k) {
            Some(v) => event[k] = v.clone(),
            None => {
                if let Some(o) = event.as_object_mut() {
                    o.remove(k);
                }
            }
        }
    }
    let stored = s.store(&cal, event);
    record(&mut s, "PUT", &cal, &id, &query, StatusCode::OK);
    axum::Json(stored).into_response()
}

async fn delete_event(
    State(state): Shared,
    Path((cal, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(r) = gate(&mut s, &headers) {
        return r;
    }
    let Some(old) = s.events.get(&cal).and_then(|m| m.get(&id)).cloned() else {
        record(&mut s, "DELETE", &cal, &id, &query, StatusCode::NOT_FOUND);
        return not_found();
    };
    if old["status"] == "cancelled" {
        record(&mut s, "DELETE", &cal, &id, &query, StatusCode::GONE);
        return error(
            StatusCode::GONE,
            "global",
            "deleted",
            "Resource has been deleted",
        );
    }
    if let Some(tag) = if_match(&headers)
        && tag != old["etag"].as_str().unwrap_or_default()
    {
        record(
            &mut s,
            "DELETE",
            &cal,
            &id,
            &query,
            StatusCode::PRECONDITION_FAILED,
        );
        return error(
            StatusCode::PRECONDITION_FAILED,
            "global",
            "conditionNotMet",
            "Precondition Failed",
        );
    }
    let mut event = old;
    event["status"] = json!("cancelled");
    s.store(&cal, event);
    record(&mut s, "DELETE", &cal, &id, &query, StatusCode::NO_CONTENT);
    StatusCode::NO_CONTENT.into_response()
}
