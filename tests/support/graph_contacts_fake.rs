//! A fake Microsoft Graph contacts API (the documented v1.0 wire format) for the Microsoft 365
//! contact sync tests: an axum server on a free loopback port.
//!
//! - `GET /v1.0/me/contactFolders`: the default folder's child folders,
//!   `{"value": [{"id", "displayName", "parentFolderId"}]}`.
//! - `GET /v1.0/me/contacts` and `/v1.0/me/contactFolders/{id}/contacts`: the folder's contacts
//!   (the first: the default folder, [`DEFAULT_FOLDER_ID`]); `$select`, and `$filter` on a
//!   single-value extended property (`singleValueExtendedProperties/Any(ep: ep/id eq '…' and
//!   ep/value eq '…')`, id case-sensitive, value case-insensitive, as documented).
//! - `GET /v1.0/me/contacts/delta` and `/v1.0/me/contactFolders/{id}/contacts/delta`: a delta
//!   round. Without a token, every contact of the folder; with a `$deltatoken`, each contact
//!   changed since (once, as it is now) and `{"id", "@removed": {"reason": "deleted"}}` for one
//!   deleted or moved out. Pages of `min(page_size, Prefer: odata.maxpagesize)` with
//!   `@odata.nextLink` (`$skiptoken`), the last with `@odata.deltaLink`; `$select` of the first
//!   request is carried in the tokens. [`GraphContactsFake::expire_delta`] forgets every token:
//!   an old one gets `410 Gone` `syncStateNotFound`.
//! - `POST …/contacts` (201, the contact), `GET` / `PATCH` (200, the contact) / `DELETE` (204)
//!   `/v1.0/me/contacts/{id}`; `If-Match` other than the contact's `@odata.etag` (or `*`) gets
//!   `412 ErrorIrresolvableConflict`, an unknown id `404 ErrorItemNotFound`. A contact's
//!   `@odata.etag` is `W/"{changeKey}"`, new on every change. `singleValueExtendedProperties` of
//!   a create are kept (and not returned, as Graph returns them only on `$expand`).
//! - Every request needs a bearer token; a token seen before [`GraphContactsFake::expire_tokens`]
//!   gets `401 InvalidAuthenticationToken` (as an expired access token does). The next
//!   [`GraphContactsFake::throttle`] requests get `429` with `Retry-After`.
//! - Test hooks change contacts and folders "as a user in Outlook would", race a write with a
//!   user's edit, or lose a create's answer after storing it.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// The default contact folder's id.
pub const DEFAULT_FOLDER_ID: &str = "AAMkDefaultContacts=";

/// A contact as the fake holds it.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The folder it is in.
    pub folder: String,
    /// Its JSON (with `id`, `@odata.etag`, `changeKey`, `parentFolderId`, ...).
    pub json: Value,
    /// Its single-value extended properties.
    pub extended: Vec<Value>,
}

/// A delta round in progress or completed: what it reports, and the token after it.
#[derive(Debug, Clone)]
struct Round {
    entries: Vec<Value>,
    folder: String,
    end: usize,
    select: Option<String>,
}

/// The fake's state.
#[derive(Debug, Default)]
pub struct Inner {
    /// Child folders of the default folder: (id, displayName).
    pub folders: Vec<(String, String)>,
    /// Contacts by id, in creation order.
    pub contacts: Vec<(String, Stored)>,
    /// Every change: (folder, contact id), in order.
    pub log: Vec<(String, String)>,
    /// Delta rounds (tokens name one).
    rounds: Vec<Round>,
    /// Entries per page.
    pub page_size: usize,
    /// The token epoch.
    pub epoch: u32,
    /// Requests still to be answered 429.
    pub throttle: u32,
    /// Its Retry-After, in seconds.
    pub retry_after: u64,
    /// 429s answered.
    pub throttled: u32,
    /// 410s answered.
    pub gone: u32,
    /// 401s answered.
    pub unauthorized: u32,
    /// 412s answered.
    pub conflicts: u32,
    /// Bearer tokens seen.
    pub seen: HashSet<String>,
    /// Bearer tokens refused.
    pub expired: HashSet<String>,
    /// Every request: `METHOD path?query`.
    pub requests: Vec<String>,
    /// A user's edit applied just before the next write to that contact (a race with the sync).
    pub edit_before_write: Option<(String, Value)>,
    /// Creates still to be stored and then answered `503` (the answer lost, as in a crash).
    pub lose_create_answers: u32,
    next_id: u64,
    next_version: u64,
    base: String,
}

impl Inner {
    fn find(&self, id: &str) -> Option<&Stored> {
        self.contacts.iter().find(|(i, _)| i == id).map(|(_, c)| c)
    }

    fn find_mut(&mut self, id: &str) -> Option<&mut Stored> {
        self.contacts
            .iter_mut()
            .find(|(i, _)| i == id)
            .map(|(_, c)| c)
    }

    fn folder_exists(&self, folder: &str) -> bool {
        folder == DEFAULT_FOLDER_ID || self.folders.iter().any(|(id, _)| id == folder)
    }

    fn stamp(&mut self, json: &mut Value) {
        self.next_version += 1;
        let key = format!("CQAAABYAAAB{}", self.next_version);
        json["changeKey"] = json!(key);
        json["@odata.etag"] = json!(format!("W/\"{key}\""));
        json["lastModifiedDateTime"] = json!(
            chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        );
    }

    fn create(&mut self, folder: &str, mut body: Value) -> Value {
        self.next_id += 1;
        let id = format!("AAMkContact{}+/=", self.next_id);
        let extended = body
            .as_object_mut()
            .and_then(|o| o.remove("singleValueExtendedProperties"))
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        let mut json = json!({
            "@odata.type": "#microsoft.graph.contact",
            "id": id,
            "createdDateTime": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "parentFolderId": folder,
            "displayName": null, "givenName": null, "surname": null, "jobTitle": null,
            "companyName": null, "mobilePhone": null, "businessPhones": [], "homePhones": [],
            "emailAddresses": [], "categories": [], "personalNotes": "",
        });
        merge(&mut json, &body);
        self.stamp(&mut json);
        self.contacts.push((
            id.clone(),
            Stored {
                folder: folder.to_owned(),
                json: json.clone(),
                extended,
            },
        ));
        self.log.push((folder.to_owned(), id));
        json
    }

    fn update(&mut self, id: &str, body: &Value) -> Option<Value> {
        let mut json = self.find(id)?.json.clone();
        merge(&mut json, body);
        self.stamp(&mut json);
        let stored = self.find_mut(id)?;
        stored.json = json.clone();
        let folder = stored.folder.clone();
        self.log.push((folder, id.to_owned()));
        Some(json)
    }

    fn remove(&mut self, id: &str) -> bool {
        let Some(at) = self.contacts.iter().position(|(i, _)| i == id) else {
            return false;
        };
        let (_, stored) = self.contacts.remove(at);
        self.log.push((stored.folder, id.to_owned()));
        true
    }

    fn live(&self, folder: &str) -> Vec<Value> {
        self.contacts
            .iter()
            .filter(|(_, c)| c.folder == folder)
            .map(|(_, c)| c.json.clone())
            .collect()
    }
}

/// Sets the body's writable properties on `json` (read-only ones are ignored, as Graph does).
fn merge(json: &mut Value, body: &Value) {
    const READ_ONLY: &[&str] = &[
        "id",
        "changeKey",
        "@odata.etag",
        "createdDateTime",
        "lastModifiedDateTime",
        "parentFolderId",
    ];
    if let (Some(json), Some(body)) = (json.as_object_mut(), body.as_object()) {
        for (k, v) in body {
            if !READ_ONLY.contains(&k.as_str()) {
                json.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Only the `$select`ed properties (plus `id` and `@odata.etag`, which Graph always returns).
fn select(json: &Value, select: Option<&str>) -> Value {
    let Some(select) = select else {
        return json.clone();
    };
    let keep: Vec<&str> = select.split(',').map(str::trim).collect();
    let mut out = serde_json::Map::new();
    if let Some(o) = json.as_object() {
        for (k, v) in o {
            if k == "id" || k == "@odata.etag" || keep.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// The running fake.
#[derive(Clone)]
pub struct GraphContactsFake {
    /// `http://127.0.0.1:port` (the provider's `apiBaseUrl`).
    pub base: String,
    /// Shared with the server.
    pub state: Arc<Mutex<Inner>>,
}

impl GraphContactsFake {
    /// Starts a fake with an empty default folder, answering `page_size` entries a page.
    pub async fn start(page_size: usize) -> GraphContactsFake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(Inner {
            page_size,
            retry_after: 1,
            base: base.clone(),
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/v1.0/me/contactFolders", get(folders))
            .route("/v1.0/me/contacts", get(list_default).post(create_default))
            .route("/v1.0/me/contacts/delta", get(delta_default))
            .route(
                "/v1.0/me/contacts/{id}",
                get(read).patch(update).delete(remove),
            )
            .route(
                "/v1.0/me/contactFolders/{folder}/contacts",
                get(list_in).post(create_in),
            )
            .route(
                "/v1.0/me/contactFolders/{folder}/contacts/delta",
                get(delta_in),
            )
            .with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await });
        GraphContactsFake { base, state }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.state.lock().expect("fake state"))
    }

    /// Adds a contact folder (a child of the default one) as a user would; returns its id.
    pub fn add_folder(&self, name: &str) -> String {
        self.with(|s| {
            let id = format!("AAMkFolder{}=", s.folders.len() + 1);
            s.folders.push((id.clone(), name.into()));
            id
        })
    }

    /// A user adds a contact in `folder` (an id; [`DEFAULT_FOLDER_ID`] for Contacts); returns
    /// its id.
    pub fn add_contact(&self, folder: &str, contact: Value) -> String {
        self.with(|s| {
            assert!(s.folder_exists(folder), "no folder {folder}");
            s.create(folder, contact)["id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
    }

    /// A user edits contact `id` (the properties of `patch`).
    pub fn edit_contact(&self, id: &str, patch: Value) {
        self.with(|s| s.update(id, &patch).expect("contact to edit"));
    }

    /// A user deletes contact `id`.
    pub fn delete_contact(&self, id: &str) {
        self.with(|s| assert!(s.remove(id), "no contact {id}"));
    }

    /// Just before the next write (PATCH / DELETE) to `id`, a user edits it: the write's
    /// `If-Match` is stale.
    pub fn edit_before_next_write(&self, id: &str, patch: Value) {
        self.with(|s| s.edit_before_write = Some((id.to_owned(), patch)));
    }

    /// The next `n` creates are stored, but their answer is a `503` (the client cannot know
    /// they were made, as after a crash between the write and its link).
    pub fn lose_create_answers(&self, n: u32) {
        self.with(|s| s.lose_create_answers = n);
    }

    /// The contacts `folder` holds now.
    pub fn contacts(&self, folder: &str) -> Vec<Value> {
        self.with(|s| s.live(folder))
    }

    /// Every contact, of every folder.
    pub fn all_contacts(&self) -> Vec<Value> {
        self.with(|s| s.contacts.iter().map(|(_, c)| c.json.clone()).collect())
    }

    /// The contact with `address` among its e-mail addresses, if any.
    pub fn by_email(&self, address: &str) -> Option<Value> {
        self.all_contacts().into_iter().find(|c| {
            c["emailAddresses"].as_array().is_some_and(|a| {
                a.iter().any(|e| {
                    e["address"]
                        .as_str()
                        .is_some_and(|x| x.eq_ignore_ascii_case(address))
                })
            })
        })
    }

    /// Contact `id`'s single-value extended properties.
    pub fn extended(&self, id: &str) -> Vec<Value> {
        self.with(|s| s.find(id).map(|c| c.extended.clone()).unwrap_or_default())
    }

    /// Forgets every delta and skip token issued so far (the next use gets 410).
    pub fn expire_delta(&self) {
        self.with(|s| s.epoch += 1);
    }

    /// Refuses every access token seen so far (401), as when they expire.
    pub fn expire_tokens(&self) {
        self.with(|s| {
            let seen: Vec<String> = s.seen.iter().cloned().collect();
            s.expired.extend(seen);
        });
    }

    /// Answers the next `n` requests with 429 and `Retry-After: seconds`.
    pub fn throttle(&self, n: u32, seconds: u64) {
        self.with(|s| {
            s.throttle = n;
            s.retry_after = seconds;
        });
    }

    /// 429s answered so far.
    pub fn throttled(&self) -> u32 {
        self.with(|s| s.throttled)
    }

    /// 410s answered so far.
    pub fn gone(&self) -> u32 {
        self.with(|s| s.gone)
    }

    /// 401s answered so far.
    pub fn unauthorized(&self) -> u32 {
        self.with(|s| s.unauthorized)
    }

    /// 412s answered so far.
    pub fn conflicts(&self) -> u32 {
        self.with(|s| s.conflicts)
    }

    /// Bearer tokens seen so far (to check none leaks).
    pub fn tokens_seen(&self) -> Vec<String> {
        self.with(|s| s.seen.iter().cloned().collect())
    }

    /// Every request so far, `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.with(|s| s.requests.clone())
    }

    /// Requests so far whose method is `method` (`POST`, `PATCH`, `DELETE`).
    pub fn writes(&self, method: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.starts_with(&format!("{method} ")))
            .count()
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

type Shared = State<Arc<Mutex<Inner>>>;

/// Logging, auth and throttling, common to every route.
fn gate(s: &mut Inner, method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
    s.requests.push(format!("{method} {uri}"));
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let Some(bearer) = bearer else {
        s.unauthorized += 1;
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        ));
    };
    if s.expired.contains(&bearer) {
        s.unauthorized += 1;
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Lifetime validation failed, the token is expired.",
        ));
    }
    s.seen.insert(bearer);
    if s.throttle > 0 {
        s.throttle -= 1;
        s.throttled += 1;
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "ApplicationThrottled",
            "Application is over its MailboxConcurrency limit.",
        );
        response.headers_mut().insert(
            "retry-after",
            s.retry_after.to_string().parse().expect("header"),
        );
        return Some(response);
    }
    None
}

async fn folders(State(state): Shared, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(r) = gate(&mut s, &method, &uri, &headers) {
        return r;
    }
    let value: Vec<_> = s
        .folders
        .iter()
        .map(|(id, name)| json!({"id": id, "displayName": name, "parentFolderId": DEFAULT_FOLDER_ID}))
        .collect();
    axum::Json(json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('me')/contactFolders",
        "value": value
    }))
    .into_response()
}

/// `ep/id eq '…'` and `ep/value eq '…'` of an extended-property `$filter`.
fn extended_filter(filter: &str) -> Option<(String, String)> {
    let quoted = |key: &str| -> Option<String> {
        let start = filter.find(key)? + key.len();
        let rest = &filter[start..];
        // '' is an escaped quote
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    return Some(out);
                }
            } else {
                out.push(c);
            }
        }
        None
    };
    Some((quoted("ep/id eq '")?, quoted("ep/value eq '")?))
}

fn list(
    state: &Arc<Mutex<Inner>>,
    folder: &str,
    query: &HashMap<String, String>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(r) = gate(&mut s, method, uri, headers) {
        return r;
    }
    if !s.folder_exists(folder) {
        return error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        );
    }
    let mut value: Vec<Value> = Vec::new();
    let wanted = query.get("$filter").map(|f| extended_filter(f));
    if let Some(None) = wanted {
        return error(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidUrlQueryFilter",
            "The fake understands only an extended-property filter.",
        );
    }
    for (_, c) in s.contacts.iter().filter(|(_, c)| c.folder == folder) {
        if let Some(Some((id, val))) = &wanted {
            let hit = c.extended.iter().any(|p| {
                p["id"].as_str() == Some(id.as_str())
                    && p["value"]
                        .as_str()
                        .is_some_and(|v| v.eq_ignore_ascii_case(val))
            });
            if !hit {
                continue;
            }
        }
        value.push(select(&c.json, query.get("$select").map(String::as_str)));
    }
    axum::Json(json!({ "value": value })).into_response()
}

async fn list_default(
    State(state): Shared,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    list(&state, DEFAULT_FOLDER_ID, &query, &method, &uri, &headers)
}

async fn list_in(
    State(state): Shared,
    Path(folder): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    list(&state, &folder, &query, &method, &uri, &headers)
}

/// `E.K.O`: epoch, round, offset.
fn parse_token(text: &str) -> Option<(u32, usize, usize)> {
    let mut p = text.split('.');
    Some((
        p.next()?.parse().ok()?,
        p.next()?.parse().ok()?,
        p.next()?.parse().ok()?,
    ))
}

#[allow(clippy::too_many_arguments)]
fn delta(
    state: &Arc<Mutex<Inner>>,
    folder: &str,
    path: &str,
    query: &HashMap<String, String>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(r) = gate(&mut s, method, uri, headers) {
        return r;
    }
    if !s.folder_exists(folder) {
        return error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        );
    }
    let expired = |s: &mut Inner| {
        s.gone += 1;
        error(
            StatusCode::GONE,
            "syncStateNotFound",
            "The sync state generation is not found or expired.",
        )
    };
    // (round, offset)
    let (round, offset) = if let Some(t) = query.get("$skiptoken") {
        match parse_token(t) {
            Some((e, k, o)) if e == s.epoch && k < s.rounds.len() => (k, o),
            _ => return expired(&mut s),
        }
    } else {
        let (since, selected) = match query.get("$deltatoken") {
            None => (None, query.get("$select").cloned()),
            Some(t) => match parse_token(t) {
                Some((e, k, _)) if e == s.epoch && k < s.rounds.len() => {
                    let r = &s.rounds[k];
                    (Some(r.end), r.select.clone())
                }
                _ => return expired(&mut s),
            },
        };
        let entries = match since {
            None => s.live(folder),
            Some(from) => {
                let mut ids: Vec<String> = Vec::new();
                for (f, id) in &s.log[from..] {
                    if f == folder {
                        ids.retain(|i| i != id);
                        ids.push(id.clone());
                    }
                }
                ids.iter()
                    .map(|id| match s.find(id).filter(|c| c.folder == folder) {
                        Some(c) => c.json.clone(),
                        None => json!({"id": id, "@removed": {"reason": "deleted"}}),
                    })
                    .collect()
            }
        };
        let entries = entries
            .iter()
            .map(|e| {
                if e.get("@removed").is_some() {
                    e.clone()
                } else {
                    select(e, selected.as_deref())
                }
            })
            .collect();
        let end = s.log.len();
        s.rounds.push(Round {
            entries,
            folder: folder.to_owned(),
            end,
            select: selected,
        });
        (s.rounds.len() - 1, 0)
    };
    let asked = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("odata.maxpagesize="))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    let size = s.page_size.min(asked).max(1);
    let r = &s.rounds[round];
    let value: Vec<Value> = r.entries.iter().skip(offset).take(size).cloned().collect();
    let more = offset + size < r.entries.len();
    let link = if more {
        (
            "@odata.nextLink",
            format!(
                "{}{path}?$skiptoken={}.{round}.{}",
                s.base,
                s.epoch,
                offset + size
            ),
        )
    } else {
        (
            "@odata.deltaLink",
            format!("{}{path}?$deltatoken={}.{round}.0", s.base, s.epoch),
        )
    };
    let mut body = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(contact)",
        "value": value,
    });
    body[link.0] = json!(link.1);
    let mut response = axum::Json(body).into_response();
    if asked != usize::MAX {
        response.headers_mut().insert(
            "preference-applied",
            format!("odata.maxpagesize={size}").parse().expect("header"),
        );
    }
    response
}

async fn delta_default(
    State(state): Shared,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    delta(
        &state,
        DEFAULT_FOLDER_ID,
        "/v1.0/me/contacts/delta",
        &query,
        &method,
        &uri,
        &headers,
    )
}

async fn delta_in(
    State(state): Shared,
    Path(folder): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = format!(
        "/v1.0/me/contactFolders/{}/contacts/delta",
        url::form_urlencoded::byte_serialize(folder.as_bytes()).collect::<String>()
    );
    delta(&state, &folder, &path, &query, &method, &uri, &headers)
}

fn create(
    state: &Arc<Mutex<Inner>>,
    folder: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(r) = gate(&mut s, method, uri, headers) {
        return r;
    }
    if !s.folder_exists(folder) {
        return error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, "BadRequest", "Unreadable JSON.");
    };
    let json = s.create(folder, body);
    if s.lose_create_answers > 0 {
        s.lose_create_answers -= 1;
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The service is temporarily unavailable.",
        );
    }
    (StatusCode::CREATED, axum::Json(json)).into_response()
}

async fn create_default(
    State(state): Shared,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    create(&state, DEFAULT_FOLDER_ID, &method, &uri, &headers, &body)
}

async fn create_in(
    State(state): Shared,
    Path(folder): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    create(&state, &folder, &method, &uri, &headers, &body)
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

async fn read(
    State(state): Shared,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(r) = gate(&mut s, &method, &uri, &headers) {
        return r;
    }
    match s.find(&id) {
        Some(c) => {
            axum::Json(select(&c.json, query.get("$select").map(String::as_str))).into_response()
        }
        None => not_found(),
    }
}

/// The user's racing edit, then the `If-Match` check: `Some` is the answer to give.
fn precondition(s: &mut Inner, id: &str, headers: &HeaderMap) -> Option<Response> {
    if s.edit_before_write.as_ref().is_some_and(|(i, _)| i == id) {
        let (_, patch) = s.edit_before_write.take().expect("edit");
        s.update(id, &patch);
    }
    let current = s.find(id)?.json["@odata.etag"].clone();
    let wanted = headers.get("if-match").and_then(|v| v.to_str().ok())?;
    if wanted != "*" && Some(wanted) != current.as_str() {
        s.conflicts += 1;
        return Some(error(
            StatusCode::PRECONDITION_FAILED,
            "ErrorIrresolvableConflict",
            "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
        ));
    }
    None
}

async fn update(
    State(state): Shared,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(r) = gate(&mut s, &method, &uri, &headers) {
        return r;
    }
    if s.find(&id).is_none() {
        return not_found();
    }
    if let Some(r) = precondition(&mut s, &id, &headers) {
        return r;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "BadRequest", "Unreadable JSON.");
    };
    match s.update(&id, &body) {
        Some(json) => axum::Json(json).into_response(),
        None => not_found(),
    }
}

async fn remove(
    State(state): Shared,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(r) = gate(&mut s, &method, &uri, &headers) {
        return r;
    }
    if s.find(&id).is_none() {
        return not_found();
    }
    if let Some(r) = precondition(&mut s, &id, &headers) {
        return r;
    }
    s.remove(&id);
    StatusCode::NO_CONTENT.into_response()
}
