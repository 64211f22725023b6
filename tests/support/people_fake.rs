//! A fake Google People API (v1, the wire format of Google's discovery document
//! `people/v1/people-api.json`) for the Google contact tests: an axum server on a free loopback
//! port, serving under `/v1/...` what a GoogleAccount's `apiBaseUrl` points at.
//!
//! - `GET /v1/people/me/connections`: `personFields` is required (400 `INVALID_ARGUMENT`
//!   without it) and restricts the fields answered. Pages of [`Inner::page_size`] persons with
//!   `nextPageToken`; the last page carries `nextSyncToken` when `requestSyncToken=true`. With a
//!   `syncToken`, only persons changed since (a membership change is a change), and persons
//!   deleted since as `{"resourceName", "etag", "metadata": {"deleted": true}}`. A page request
//!   must repeat the first request's `syncToken` (400 otherwise, as Google wants every parameter
//!   repeated). [`PeopleFake::expire_sync_tokens`] makes every earlier sync token answer
//!   `400 FAILED_PRECONDITION` with a `google.rpc.ErrorInfo` of reason `EXPIRED_SYNC_TOKEN`
//!   (what the People API answers today; older docs said 410).
//! - `GET /v1/people/{id}`, `GET /v1/people:batchGet?resourceNames=…` (50 at most; a missing
//!   person is a response with `status.code` 5), `POST /v1/people:createContact` (the person
//!   joins `contactGroups/myContacts` too, as in Google), `PATCH
//!   /v1/people/{id}:updateContact?updatePersonFields=…` (the body's `etag` must be the
//!   current one, else `400 FAILED_PRECONDITION` / reason `failedPrecondition`; the body needs
//!   `metadata.sources`; each field of the mask is replaced, or cleared when the body lacks it),
//!   `DELETE /v1/people/{id}:deleteContact`.
//! - `GET /v1/contactGroups` (paged), `POST /v1/contactGroups` (409 `ALREADY_EXISTS` for a
//!   name taken), `GET /v1/contactGroups/{id}?maxMembers=`, `POST
//!   /v1/contactGroups/{id}/members:modify` (`notFoundResourceNames`,
//!   `canNotRemoveLastContactGroupResourceNames`).
//! - Every request needs `Authorization: Bearer` with a valid token (401 `UNAUTHENTICATED`
//!   otherwise): the fake's own [`PeopleFake::token`], or — after [`PeopleFake::accept_any_token`]
//!   — any token (an OAuth fake issues them) not seen before [`PeopleFake::expire_tokens`].
//!   The next [`PeopleFake::throttle`] requests get `429 RESOURCE_EXHAUSTED` with `Retry-After`
//!   ([`PeopleFake::throttle_after`]: after a few that pass).
//! - Test hooks change contacts "as a user in Google would": [`PeopleFake::add`],
//!   [`PeopleFake::edit`], [`PeopleFake::delete`], [`PeopleFake::move_into`],
//!   [`PeopleFake::move_out`].

#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Google's "My Contacts" system group.
pub const MY_CONTACTS: &str = "contactGroups/myContacts";

/// The fields `updatePersonFields` may name.
const UPDATABLE: &[&str] = &[
    "addresses",
    "biographies",
    "birthdays",
    "calendarUrls",
    "clientData",
    "emailAddresses",
    "events",
    "externalIds",
    "genders",
    "imClients",
    "interests",
    "locales",
    "locations",
    "memberships",
    "miscKeywords",
    "names",
    "nicknames",
    "occupations",
    "organizations",
    "phoneNumbers",
    "relations",
    "sipAddresses",
    "urls",
    "userDefined",
];

/// A stored person: its JSON (all fields), when it last changed, and whether it is deleted.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The person as Google holds it.
    pub json: Value,
    /// The change counter at its last change.
    pub seq: u64,
    /// Deleted (kept as a tombstone for deltas).
    pub deleted: bool,
}

impl Stored {
    fn id(&self) -> &str {
        self.json["resourceName"].as_str().expect("resourceName")
    }
}

/// A contact group: resource name, name, type.
#[derive(Debug, Clone)]
pub struct Group {
    /// `contactGroups/{id}`.
    pub resource_name: String,
    /// Its name.
    pub name: String,
    /// `USER_CONTACT_GROUP` or `SYSTEM_CONTACT_GROUP`.
    pub group_type: &'static str,
}

/// The fake's state.
#[derive(Debug)]
pub struct Inner {
    /// Persons in creation order (deleted ones stay as tombstones).
    pub persons: Vec<Stored>,
    /// Contact groups in creation order.
    pub groups: Vec<Group>,
    /// The change counter.
    pub seq: u64,
    /// The sync-token epoch; [`PeopleFake::expire_sync_tokens`] starts a new one.
    pub epoch: u32,
    /// Persons (and groups) per page.
    pub page_size: usize,
    /// Requests still to be answered 429.
    pub throttle: u32,
    /// Requests still to be answered normally before the 429s start.
    pub throttle_after: u32,
    /// `Retry-After` of a 429, in seconds.
    pub retry_after: u64,
    /// 429s answered.
    pub throttled: u32,
    /// The fake's own valid token's generation.
    pub generation: u32,
    /// Accept any bearer not revoked (tokens issued by an OAuth fake).
    pub accept_any: bool,
    /// Tokens refused after [`PeopleFake::expire_tokens`].
    pub revoked: HashSet<String>,
    /// Every bearer seen.
    pub seen: HashSet<String>,
    /// 401s answered.
    pub unauthorized: u32,
    /// Persons created through the API.
    pub creates: u32,
    /// Updates refused for a stale etag.
    pub stale: u32,
    /// Expired sync tokens refused.
    pub expired: u32,
    /// Every request, as `METHOD /path?query`.
    pub log: Vec<String>,
    /// A user's edit (top-level fields to set) applied to a person just before the next
    /// `updateContact` reaches it: a change made between a client's read and its write.
    pub edit_before_update: Option<(String, Value)>,
    next_id: u64,
}

/// The running fake.
#[derive(Clone)]
pub struct PeopleFake {
    /// `http://127.0.0.1:port` (a GoogleAccount's `apiBaseUrl`).
    pub base: String,
    /// Shared with the server.
    pub state: Arc<Mutex<Inner>>,
}

impl PeopleFake {
    /// Starts a fake with no contacts and only the My Contacts group.
    pub async fn start() -> PeopleFake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(Inner {
            persons: Vec::new(),
            groups: vec![Group {
                resource_name: MY_CONTACTS.into(),
                name: "myContacts".into(),
                group_type: "SYSTEM_CONTACT_GROUP",
            }],
            seq: 0,
            epoch: 1,
            page_size: 100,
            throttle: 0,
            throttle_after: 0,
            retry_after: 1,
            throttled: 0,
            generation: 1,
            accept_any: false,
            revoked: HashSet::new(),
            seen: HashSet::new(),
            unauthorized: 0,
            creates: 0,
            stale: 0,
            expired: 0,
            log: Vec::new(),
            edit_before_update: None,
            next_id: 0,
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await });
        PeopleFake { base, state }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.state.lock().expect("fake state"))
    }

    /// Persons and groups per page.
    pub fn set_page_size(&self, size: usize) {
        self.with(|s| s.page_size = size.max(1));
    }

    /// The access token the fake accepts now.
    pub fn token(&self) -> String {
        self.with(|s| s.token())
    }

    /// Accept any bearer (issued by an OAuth fake) until [`PeopleFake::expire_tokens`].
    pub fn accept_any_token(&self) {
        self.with(|s| s.accept_any = true);
    }

    /// Every token accepted so far expires: requests with them get 401 until the client
    /// refreshes (a new [`PeopleFake::token`], or any new token in accept-any mode).
    pub fn expire_tokens(&self) {
        self.with(|s| {
            s.generation += 1;
            let seen: Vec<String> = s.seen.iter().cloned().collect();
            s.revoked.extend(seen);
        });
    }

    /// Every sync token given so far expires.
    pub fn expire_sync_tokens(&self) {
        self.with(|s| s.epoch += 1);
    }

    /// The next `n` requests get 429 with `Retry-After`.
    pub fn throttle(&self, n: u32) {
        self.with(|s| s.throttle = n);
    }

    /// After `ok` more requests, the next `n` get 429 (a listing throttled mid-way).
    pub fn throttle_after(&self, ok: u32, n: u32) {
        self.with(|s| {
            s.throttle_after = ok;
            s.throttle = n;
        });
    }

    /// The `Retry-After` of a 429, in seconds.
    pub fn set_retry_after(&self, seconds: u64) {
        self.with(|s| s.retry_after = seconds);
    }

    /// Creates a user contact group (as the user would in Google); its resource name.
    pub fn create_group(&self, name: &str) -> String {
        self.with(|s| s.create_group(name))
    }

    /// The resource name of the group named `name`.
    pub fn group_id(&self, name: &str) -> Option<String> {
        self.with(|s| s.group_named(name).map(|g| g.resource_name.clone()))
    }

    /// The live persons in group `name`.
    pub fn members(&self, name: &str) -> Vec<String> {
        self.with(|s| {
            let Some(group) = s.group_named(name).map(|g| g.resource_name.clone()) else {
                return Vec::new();
            };
            s.members(&group)
        })
    }

    /// Adds a contact (as the user would), in the named groups (and My Contacts); its id.
    pub fn add(&self, name: &str, emails: &[&str], groups: &[&str]) -> String {
        self.with(|s| {
            let mut memberships = vec![membership(MY_CONTACTS)];
            for g in groups {
                let id = s
                    .group_named(g)
                    .unwrap_or_else(|| panic!("no group {g}"))
                    .resource_name
                    .clone();
                memberships.push(membership(&id));
            }
            let (given, family) = name.rsplit_once(' ').unwrap_or((name, ""));
            let mut person = json!({
                "names": [{"givenName": given, "familyName": family}],
                "emailAddresses": emails.iter().map(|e| json!({"value": e, "type": "work"})).collect::<Vec<_>>(),
                "memberships": memberships,
                "biographies": [{"value": "kept in Google", "contentType": "TEXT_PLAIN"}],
            });
            if family.is_empty() {
                person["names"] = json!([{"givenName": given}]);
            }
            s.insert(person)
        })
    }

    /// Changes a person (as the user would): its etag and sync position move on.
    pub fn edit(&self, id: &str, f: impl FnOnce(&mut Value)) {
        self.with(|s| {
            let at = s.live(id).unwrap_or_else(|| panic!("no person {id}"));
            f(&mut s.persons[at].json);
            s.touch(at);
        });
    }

    /// The user edits person `id` (sets the top-level `fields`) just before the next
    /// `updateContact` of it arrives: that write's etag is stale.
    pub fn edit_before_next_update(&self, id: &str, fields: Value) {
        self.with(|s| s.edit_before_update = Some((id.to_owned(), fields)));
    }

    /// Deletes a person (as the user would).
    pub fn delete(&self, id: &str) {
        self.with(|s| {
            let at = s.live(id).unwrap_or_else(|| panic!("no person {id}"));
            s.remove(at);
        });
    }

    /// Moves a person into the group named `group`.
    pub fn move_into(&self, id: &str, group: &str) {
        let group = self.group_id(group).expect("group");
        self.edit(id, |p| {
            p["memberships"]
                .as_array_mut()
                .expect("memberships")
                .push(membership(&group));
        });
    }

    /// Takes a person out of the group named `group`.
    pub fn move_out(&self, id: &str, group: &str) {
        let group = self.group_id(group).expect("group");
        self.edit(id, |p| {
            p["memberships"]
                .as_array_mut()
                .expect("memberships")
                .retain(|m| m["contactGroupMembership"]["contactGroupResourceName"] != group);
        });
    }

    /// A live person, all fields.
    pub fn person(&self, id: &str) -> Option<Value> {
        self.with(|s| s.live(id).map(|at| s.persons[at].json.clone()))
    }

    /// Every live person.
    pub fn persons(&self) -> Vec<Value> {
        self.with(|s| {
            s.persons
                .iter()
                .filter(|p| !p.deleted)
                .map(|p| p.json.clone())
                .collect()
        })
    }

    /// Live persons carrying the external id `{type: "switchboard", value: uid}`.
    pub fn with_external_id(&self, uid: &str) -> Vec<String> {
        self.persons()
            .into_iter()
            .filter(|p| {
                p["externalIds"].as_array().is_some_and(|ids| {
                    ids.iter()
                        .any(|e| e["type"] == "switchboard" && e["value"] == uid)
                })
            })
            .map(|p| p["resourceName"].as_str().expect("id").to_owned())
            .collect()
    }

    /// The primary display name of a live person.
    pub fn name_of(&self, id: &str) -> Option<String> {
        self.person(id)
            .and_then(|p| p["names"][0]["displayName"].as_str().map(str::to_owned))
    }

    /// Persons created through the API.
    pub fn creates(&self) -> u32 {
        self.with(|s| s.creates)
    }

    /// Updates refused for a stale etag.
    pub fn stale(&self) -> u32 {
        self.with(|s| s.stale)
    }

    /// Expired sync tokens refused.
    pub fn expired(&self) -> u32 {
        self.with(|s| s.expired)
    }

    /// 429s answered.
    pub fn throttled(&self) -> u32 {
        self.with(|s| s.throttled)
    }

    /// 401s answered.
    pub fn unauthorized(&self) -> u32 {
        self.with(|s| s.unauthorized)
    }

    /// Every bearer token seen.
    pub fn tokens_seen(&self) -> Vec<String> {
        self.with(|s| s.seen.iter().cloned().collect())
    }

    /// The request log (`METHOD /path?query`).
    pub fn log(&self) -> Vec<String> {
        self.with(|s| s.log.clone())
    }
}

fn membership(group: &str) -> Value {
    json!({"contactGroupMembership": {
        "contactGroupId": group.strip_prefix("contactGroups/").unwrap_or(group),
        "contactGroupResourceName": group,
    }})
}

fn group_of(m: &Value) -> Option<String> {
    let m = &m["contactGroupMembership"];
    m["contactGroupResourceName"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            m["contactGroupId"]
                .as_str()
                .map(|id| format!("contactGroups/{id}"))
        })
}

impl Inner {
    fn token(&self) -> String {
        format!("ya29.people-fake-{}", self.generation)
    }

    fn valid(&self, token: &str) -> bool {
        if self.accept_any {
            !token.is_empty() && !self.revoked.contains(token)
        } else {
            token == self.token()
        }
    }

    fn group_named(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    fn create_group(&mut self, name: &str) -> String {
        self.next_id += 1;
        let resource_name = format!("contactGroups/{:x}", 0x5a00 + self.next_id);
        self.groups.push(Group {
            resource_name: resource_name.clone(),
            name: name.to_owned(),
            group_type: "USER_CONTACT_GROUP",
        });
        resource_name
    }

    fn members(&self, group: &str) -> Vec<String> {
        self.persons
            .iter()
            .filter(|p| !p.deleted)
            .filter(|p| {
                p.json["memberships"]
                    .as_array()
                    .is_some_and(|ms| ms.iter().any(|m| group_of(m).as_deref() == Some(group)))
            })
            .map(|p| p.id().to_owned())
            .collect()
    }

    fn live(&self, id: &str) -> Option<usize> {
        self.persons.iter().position(|p| !p.deleted && p.id() == id)
    }

    /// Stores a new person; its id.
    fn insert(&mut self, mut person: Value) -> String {
        self.next_id += 1;
        let id = format!("people/c{}", 7_000_000 + self.next_id);
        person["resourceName"] = json!(id);
        self.persons.push(Stored {
            json: person,
            seq: 0,
            deleted: false,
        });
        let at = self.persons.len() - 1;
        self.touch(at);
        id
    }

    /// A change: new etag, new sync position, derived fields computed as Google does.
    fn touch(&mut self, at: usize) {
        self.seq += 1;
        let seq = self.seq;
        let p = &mut self.persons[at];
        p.seq = seq;
        let etag = format!("%EgcBAgkLLjc9GgQBAgUHIgw{seq:08}");
        let id = p.id().trim_start_matches("people/").to_owned();
        let json = &mut p.json;
        json["etag"] = json!(etag);
        json["metadata"] = json!({"sources": [{
            "type": "CONTACT", "id": id, "etag": format!("#{etag}"),
            "updateTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        }], "objectType": "PERSON"});
        if let Some(names) = json["names"].as_array_mut() {
            for (i, n) in names.iter_mut().enumerate() {
                let structured: Vec<&str> = [
                    "honorificPrefix",
                    "givenName",
                    "middleName",
                    "familyName",
                    "honorificSuffix",
                ]
                .iter()
                .filter_map(|k| n[*k].as_str())
                .filter(|s| !s.is_empty())
                .collect();
                let display = if structured.is_empty() {
                    n["unstructuredName"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                } else {
                    structured.join(" ")
                };
                n["displayName"] = json!(display);
                n["metadata"] = json!({"primary": i == 0, "source": {"type": "CONTACT", "id": id}});
            }
        }
        if let Some(phones) = json["phoneNumbers"].as_array_mut() {
            for phone in phones {
                let value = phone["value"].as_str().unwrap_or_default();
                if value.starts_with('+') {
                    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
                    phone["canonicalForm"] = json!(format!("+{digits}"));
                }
            }
        }
    }

    fn remove(&mut self, at: usize) {
        let id = self.persons[at].id().to_owned();
        self.persons[at].json = json!({"resourceName": id});
        self.persons[at].deleted = true;
        self.touch(at);
        let p = &mut self.persons[at].json;
        p["metadata"] = json!({"deleted": true});
    }
}

/// Google's error body.
fn error(code: u16, status: &str, message: &str, details: Value) -> Response {
    let mut body = json!({"error": {"code": code, "message": message, "status": status}});
    if !details.is_null() {
        body["error"]["details"] = details;
    }
    (
        StatusCode::from_u16(code).expect("status"),
        axum::Json(body),
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    axum::Json(body).into_response()
}

fn not_found(what: &str) -> Response {
    error(
        404,
        "NOT_FOUND",
        &format!("Requested entity was not found: {what}"),
        Value::Null,
    )
}

fn invalid(message: &str) -> Response {
    error(400, "INVALID_ARGUMENT", message, Value::Null)
}

/// The person with only `fields` (a comma list; `None`: all), plus resourceName and etag.
fn masked(person: &Value, fields: Option<&str>) -> Value {
    let Some(fields) = fields else {
        return person.clone();
    };
    let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
    let mut out = serde_json::Map::new();
    for (k, v) in person.as_object().expect("object") {
        if k == "resourceName" || k == "etag" || wanted.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

async fn handle(
    State(state): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = state.lock().expect("fake state");
    s.log.push(format!(
        "{method} {}{}",
        uri.path(),
        uri.query().map(|q| format!("?{q}")).unwrap_or_default()
    ));
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    if !bearer.is_empty() {
        s.seen.insert(bearer.clone());
    }
    if !s.valid(&bearer) {
        s.unauthorized += 1;
        let mut r = error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            Value::Null,
        );
        r.headers_mut().insert(
            "www-authenticate",
            "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\""
                .parse()
                .expect("header"),
        );
        return r;
    }
    if s.throttle > 0 && s.throttle_after > 0 {
        s.throttle_after -= 1;
    } else if s.throttle > 0 {
        s.throttle -= 1;
        s.throttled += 1;
        let mut r = error(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute per user' of service 'people.googleapis.com'.",
            json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED", "domain": "googleapis.com"}]),
        );
        r.headers_mut().insert(
            "retry-after",
            s.retry_after.to_string().parse().expect("header"),
        );
        return r;
    }
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return invalid(&format!("Invalid JSON payload received. {e}")),
        }
    };
    let Some(path) = uri.path().strip_prefix("/v1/") else {
        return not_found(uri.path());
    };
    let path = path.to_owned();
    match (method, path.as_str()) {
        (Method::GET, "people/me/connections") => connections(&mut s, &q),
        (Method::GET, "people:batchGet") => {
            let Some(fields) = q("personFields") else {
                return invalid(
                    "personFields mask is required. Please specify one or more valid paths.",
                );
            };
            let names: Vec<&String> = query
                .iter()
                .filter(|(k, _)| k == "resourceNames")
                .map(|(_, v)| v)
                .collect();
            if names.is_empty() || names.len() > 50 {
                return invalid("resourceNames must hold 1 to 50 resource names");
            }
            let responses: Vec<Value> = names
                .iter()
                .map(|name| match s.live(name) {
                    Some(at) => json!({"requestedResourceName": name, "httpStatusCode": 200,
                        "person": masked(&s.persons[at].json, Some(&fields)), "status": {}}),
                    None => json!({"requestedResourceName": name, "httpStatusCode": 404,
                        "status": {"code": 5, "message": "Requested entity was not found."}}),
                })
                .collect();
            ok(json!({"responses": responses}))
        }
        (Method::POST, "people:createContact") => create_contact(&mut s, body, q("personFields")),
        (Method::GET, "contactGroups") => {
            let size = q("pageSize")
                .and_then(|v| v.parse().ok())
                .unwrap_or(s.page_size)
                .min(s.page_size);
            let offset: usize = q("pageToken")
                .and_then(|t| t.strip_prefix("g.").and_then(|n| n.parse().ok()))
                .unwrap_or(0);
            let all: Vec<Value> = s
                .groups
                .iter()
                .map(|g| json!({
                    "resourceName": g.resource_name, "etag": format!("#g{}", g.resource_name.len()),
                    "name": g.name, "formattedName": g.name, "groupType": g.group_type,
                    "memberCount": s.members(&g.resource_name).len(),
                    "metadata": {"updateTime": "2026-12-01T00:00:00Z"},
                }))
                .collect();
            let page: Vec<Value> = all.iter().skip(offset).take(size).cloned().collect();
            let mut answer = json!({"contactGroups": page, "totalItems": all.len()});
            if offset + size < all.len() {
                answer["nextPageToken"] = json!(format!("g.{}", offset + size));
            } else {
                answer["nextSyncToken"] = json!(format!("gs.{}", s.seq));
            }
            ok(answer)
        }
        (Method::POST, "contactGroups") => {
            let Some(name) = body["contactGroup"]["name"]
                .as_str()
                .filter(|n| !n.is_empty())
            else {
                return invalid("contactGroup.name is required");
            };
            if s.groups
                .iter()
                .any(|g| g.group_type == "USER_CONTACT_GROUP" && g.name == name)
            {
                return error(
                    409,
                    "ALREADY_EXISTS",
                    "Contact group name already exists.",
                    Value::Null,
                );
            }
            let id = s.create_group(name);
            ok(
                json!({"resourceName": id, "etag": "#new", "name": name, "formattedName": name,
                      "groupType": "USER_CONTACT_GROUP", "metadata": {"updateTime": "2026-12-01T00:00:00Z"}}),
            )
        }
        (method, p) if p.starts_with("contactGroups/") => {
            let rest = &p["contactGroups/".len()..];
            let (id, action) = match rest.split_once('/') {
                Some((id, action)) => (id, Some(action)),
                None => (rest, None),
            };
            let group = format!("contactGroups/{id}");
            let Some(g) = s.groups.iter().find(|g| g.resource_name == group).cloned() else {
                return not_found(&group);
            };
            match (method, action) {
                (Method::GET, None) => {
                    let members = s.members(&group);
                    let max: usize = q("maxMembers").and_then(|v| v.parse().ok()).unwrap_or(0);
                    let mut answer = json!({"resourceName": group, "etag": "#g", "name": g.name,
                        "formattedName": g.name, "groupType": g.group_type, "memberCount": members.len()});
                    if max > 0 {
                        answer["memberResourceNames"] =
                            json!(members.into_iter().take(max).collect::<Vec<_>>());
                    }
                    ok(answer)
                }
                (Method::POST, Some("members:modify")) => modify(&mut s, &g, &body),
                _ => not_found(p),
            }
        }
        (method, p) if p.starts_with("people/") => {
            let rest = &p["people/".len()..];
            let (id, verb) = match rest.split_once(':') {
                Some((id, verb)) => (format!("people/{id}"), Some(verb)),
                None => (format!("people/{rest}"), None),
            };
            match (method, verb) {
                (Method::GET, None) => {
                    let Some(fields) = q("personFields") else {
                        return invalid(
                            "personFields mask is required. Please specify one or more valid paths.",
                        );
                    };
                    match s.live(&id) {
                        Some(at) => ok(masked(&s.persons[at].json, Some(&fields))),
                        None => not_found(&id),
                    }
                }
                (Method::PATCH, Some("updateContact")) => update_contact(
                    &mut s,
                    &id,
                    body,
                    q("updatePersonFields"),
                    q("personFields"),
                ),
                (Method::DELETE, Some("deleteContact")) => match s.live(&id) {
                    Some(at) => {
                        s.remove(at);
                        ok(json!({}))
                    }
                    None => not_found(&id),
                },
                _ => not_found(p),
            }
        }
        _ => not_found(&path),
    }
}

fn connections(s: &mut Inner, q: &dyn Fn(&str) -> Option<String>) -> Response {
    let Some(fields) = q("personFields") else {
        return invalid("personFields mask is required. Please specify one or more valid paths.");
    };
    let sync = q("syncToken");
    let from = match &sync {
        None => None,
        Some(token) => {
            let parts: Vec<&str> = token.split('.').collect();
            let (Some(epoch), Some(seq)) = (
                parts.get(1).and_then(|v| v.parse::<u32>().ok()),
                parts.get(2).and_then(|v| v.parse::<u64>().ok()),
            ) else {
                return invalid("Invalid sync token.");
            };
            if parts.first() != Some(&"st") {
                return invalid("Invalid sync token.");
            }
            if epoch != s.epoch {
                s.expired += 1;
                return error(
                    400,
                    "FAILED_PRECONDITION",
                    "Sync token is expired. Clear local cache and retry call without the sync token.",
                    json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "EXPIRED_SYNC_TOKEN", "domain": "people.googleapis.com"}]),
                );
            }
            Some(seq)
        }
    };
    // Page token: pt.{offset}.{snapshot}.{syncToken or "-"}
    let (offset, snapshot) = match q("pageToken") {
        None => (0, s.seq),
        Some(token) => {
            let mut parts = token.splitn(4, '.');
            let (Some("pt"), Some(offset), Some(snapshot), Some(of_sync)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return invalid("Invalid page token.");
            };
            if of_sync != sync.as_deref().unwrap_or("-") {
                return invalid(
                    "Parameters provided with a page token must match the call that provided the page token (syncToken).",
                );
            }
            match (offset.parse::<usize>(), snapshot.parse::<u64>()) {
                (Ok(o), Ok(n)) => (o, n),
                _ => return invalid("Invalid page token."),
            }
        }
    };
    let listed: Vec<Value> = s
        .persons
        .iter()
        .filter(|p| match from {
            None => !p.deleted,
            Some(from) => p.seq > from,
        })
        .map(|p| {
            if p.deleted {
                p.json.clone()
            } else {
                masked(&p.json, Some(&fields))
            }
        })
        .collect();
    let total = listed.len();
    let page: Vec<Value> = listed.into_iter().skip(offset).take(s.page_size).collect();
    let mut answer = json!({"connections": page, "totalItems": total, "totalPeople": total});
    if offset + s.page_size < total {
        answer["nextPageToken"] = json!(format!(
            "pt.{}.{snapshot}.{}",
            offset + s.page_size,
            sync.as_deref().unwrap_or("-")
        ));
    } else if q("requestSyncToken").as_deref() == Some("true") {
        answer["nextSyncToken"] = json!(format!("st.{}.{snapshot}", s.epoch));
    }
    ok(answer)
}

/// Keeps the client-settable fields of a person body.
fn settable(body: &Value) -> serde_json::Map<String, Value> {
    body.as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| UPDATABLE.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The memberships of a body, checked; an error answer for a bad one.
fn normalized_memberships(s: &Inner, list: &Value) -> Result<Vec<Value>, Box<Response>> {
    let mut out = Vec::new();
    for m in list.as_array().into_iter().flatten() {
        let Some(group) = group_of(m) else {
            return Err(Box::new(invalid(
                "A contact group membership needs contactGroupResourceName.",
            )));
        };
        match s.groups.iter().find(|g| g.resource_name == group) {
            Some(g) if g.group_type == "USER_CONTACT_GROUP" || g.resource_name == MY_CONTACTS => {}
            Some(_) => {
                return Err(Box::new(invalid(
                    "Cannot add contacts to a system contact group.",
                )));
            }
            None => {
                return Err(Box::new(error(
                    400,
                    "FAILED_PRECONDITION",
                    &format!("Contact group {group} not found."),
                    Value::Null,
                )));
            }
        }
        out.push(membership(&group));
    }
    Ok(out)
}

fn create_contact(s: &mut Inner, body: Value, fields: Option<String>) -> Response {
    if !body.is_object() {
        return invalid("A person is required.");
    }
    let mut person = Value::Object(settable(&body));
    let mut memberships = match normalized_memberships(s, &body["memberships"]) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    if !memberships
        .iter()
        .any(|m| group_of(m).as_deref() == Some(MY_CONTACTS))
    {
        memberships.insert(0, membership(MY_CONTACTS));
    }
    person["memberships"] = json!(memberships);
    s.creates += 1;
    let id = s.insert(person);
    let at = s.live(&id).expect("just made");
    ok(masked(&s.persons[at].json, fields.as_deref()))
}

fn update_contact(
    s: &mut Inner,
    id: &str,
    body: Value,
    mask: Option<String>,
    fields: Option<String>,
) -> Response {
    let Some(mask) = mask.filter(|m| !m.is_empty()) else {
        return invalid(
            "updatePersonFields mask is required. Please specify one or more valid paths.",
        );
    };
    let Some(at) = s.live(id) else {
        return not_found(id);
    };
    if s.edit_before_update
        .as_ref()
        .is_some_and(|(of, _)| of == id)
    {
        let (_, fields) = s.edit_before_update.take().expect("an edit");
        for (k, v) in fields.as_object().expect("fields").clone() {
            s.persons[at].json[k] = v;
        }
        s.touch(at);
    }
    if body["metadata"]["sources"]
        .as_array()
        .is_none_or(|a| a.is_empty())
    {
        return invalid("Request must set person.metadata.sources.");
    }
    if body["etag"] != s.persons[at].json["etag"] {
        s.stale += 1;
        // The v1 error format's reason, as Google's docs name it ("failedPrecondition").
        let message = "Request person.etag is different than the current person.etag. Clear local cache and get the latest person.";
        let body = json!({"error": {"code": 400, "status": "FAILED_PRECONDITION", "message": message,
            "errors": [{"message": message, "domain": "global", "reason": "failedPrecondition"}]}});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let mut updates = Vec::new();
    for field in mask.split(',').map(str::trim) {
        if !UPDATABLE.contains(&field) {
            return invalid(&format!(
                "Invalid updatePersonFields mask path: \"{field}\"."
            ));
        }
        if field == "memberships" {
            match normalized_memberships(s, &body["memberships"]) {
                Ok(m) if !m.is_empty() => updates.push((field.to_owned(), Some(json!(m)))),
                Ok(_) => {
                    return invalid("A contact must have at least one contact group membership.");
                }
                Err(r) => return *r,
            }
        } else {
            updates.push((
                field.to_owned(),
                body.get(field).filter(|v| !v.is_null()).cloned(),
            ));
        }
    }
    let person = s.persons[at].json.as_object_mut().expect("object");
    for (field, value) in updates {
        match value {
            Some(v) => {
                person.insert(field, v);
            }
            None => {
                person.remove(&field);
            }
        }
    }
    s.touch(at);
    ok(masked(&s.persons[at].json, fields.as_deref()))
}

fn modify(s: &mut Inner, group: &Group, body: &Value) -> Response {
    let names = |k: &str| -> Vec<String> {
        body[k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let (add, remove) = (names("resourceNamesToAdd"), names("resourceNamesToRemove"));
    if add.len() + remove.len() > 1000 {
        return invalid("At most 1000 resource names.");
    }
    if !add.is_empty()
        && group.group_type != "USER_CONTACT_GROUP"
        && group.resource_name != MY_CONTACTS
    {
        return invalid("Cannot add contacts to a system contact group.");
    }
    let mut not_found = Vec::new();
    let mut last = Vec::new();
    for id in add {
        let Some(at) = s.live(&id) else {
            not_found.push(id);
            continue;
        };
        let ms = s.persons[at].json["memberships"]
            .as_array_mut()
            .expect("memberships");
        if !ms
            .iter()
            .any(|m| group_of(m).as_deref() == Some(group.resource_name.as_str()))
        {
            ms.push(membership(&group.resource_name));
            s.touch(at);
        }
    }
    for id in remove {
        let Some(at) = s.live(&id) else {
            not_found.push(id);
            continue;
        };
        let ms = s.persons[at].json["memberships"]
            .as_array_mut()
            .expect("memberships");
        let before = ms.len();
        let keep: Vec<Value> = ms
            .iter()
            .filter(|m| group_of(m).as_deref() != Some(group.resource_name.as_str()))
            .cloned()
            .collect();
        if keep.len() == before {
            continue;
        }
        if keep.is_empty() {
            last.push(id);
            continue;
        }
        *ms = keep;
        s.touch(at);
    }
    let mut answer = json!({});
    if !not_found.is_empty() {
        answer["notFoundResourceNames"] = json!(not_found);
    }
    if !last.is_empty() {
        answer["canNotRemoveLastContactGroupResourceNames"] = json!(last);
    }
    ok(answer)
}
