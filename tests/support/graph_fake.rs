//! A fake Microsoft Graph mail API (the documented v1.0 wire format) for the Microsoft 365
//! tests: an axum server on a free loopback port.
//!
//! - `GET /v1.0/me/mailFolders`: `{"value": [{"id", "displayName"}]}`.
//! - `GET /v1.0/me/mailFolders/{id}/messages/delta`: pages of [`GraphFake::page_size`]
//!   messages; every page but the last carries `@odata.nextLink` (`$skiptoken`), the last
//!   `@odata.deltaLink` (`$deltatoken`), from which the next round returns only what changed
//!   since: new messages, and `{"id", "@removed": {"reason": "deleted"}}` for one deleted or
//!   moved out of the folder (a moved message gets a new id in its new folder, as Graph ids
//!   change on a move). A full round (no token) returns the messages the folder holds, no
//!   removals. Tokens belong to an epoch; [`GraphFake::expire_tokens`] starts a new one,
//!   after which an old token gets `410 Gone` with `{"error": {"code": "syncStateNotFound"}}`.
//! - Messages carry `hasAttachments` (true when a non-inline attachment exists);
//!   `GET /v1.0/me/messages/{id}/attachments` lists `#microsoft.graph.fileAttachment`s with
//!   `id`, `name`, `contentType`, `size`, `isInline`, `lastModifiedDateTime` and
//!   `contentBytes`, or only the `$select`ed properties (plus `@odata.type` and `id`).
//! - `POST /v1.0/me/sendMail` with `Content-Type: text/plain` and base64 MIME: `202`, and the
//!   message appears in Sent Items, as Graph saves it there.
//! - Any request without a bearer token gets `401 InvalidAuthenticationToken`; the next
//!   [`GraphFake::throttle`] requests get `429` with `Retry-After: 1`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;

/// Inbox's id.
pub const INBOX_ID: &str = "AAMkInbox";
/// Sent Items' id.
pub const SENT_ID: &str = "AAMkSentItems";

/// The fake's state.
#[derive(Debug, Default)]
pub struct Inner {
    /// Messages per folder id, in arrival order.
    pub messages: HashMap<String, Vec<serde_json::Value>>,
    /// Messages per page.
    pub page_size: usize,
    /// Requests still to be answered 429.
    pub throttle: u32,
    /// 429s answered.
    pub throttled: u32,
    /// The current token epoch.
    pub epoch: u32,
    /// 410s answered.
    pub gone: u32,
    /// Every delta request's query, in order.
    pub delta_queries: Vec<HashMap<String, String>>,
    /// MIME messages received by sendMail.
    pub sent: Vec<String>,
    /// Folder ids and display names, in listing order.
    pub folders: Vec<(String, String)>,
    /// Attachments per message id.
    pub attachments: HashMap<String, Vec<serde_json::Value>>,
    /// Every attachments request's query, in order.
    pub attachment_queries: Vec<HashMap<String, String>>,
    base: String,
}

impl Inner {
    /// The messages `folder` holds now: those of its change log not removed since.
    fn live(&self, folder: &str) -> Vec<(usize, serde_json::Value)> {
        let log = &self.messages[folder];
        log.iter()
            .enumerate()
            .filter(|(_, m)| m.get("@removed").is_none())
            .filter(|(_, m)| {
                !log.iter()
                    .any(|r| r.get("@removed").is_some() && r["id"] == m["id"])
            })
            .map(|(i, m)| (i, m.clone()))
            .collect()
    }

    /// The id of the live message of `folder` whose internetMessageId is `<imid>`.
    fn id_of(&self, folder: &str, imid: &str) -> String {
        self.live(folder)
            .into_iter()
            .find(|(_, m)| m["internetMessageId"] == format!("<{imid}>"))
            .map(|(_, m)| m["id"].as_str().expect("id").to_owned())
            .unwrap_or_else(|| panic!("no message <{imid}> in {folder}"))
    }
}

/// The running fake.
#[derive(Clone)]
pub struct GraphFake {
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// Shared with the server.
    pub state: Arc<Mutex<Inner>>,
}

impl GraphFake {
    /// Starts a fake with an empty Inbox and Sent Items.
    pub async fn start(page_size: usize) -> GraphFake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(Inner {
            page_size,
            messages: HashMap::from([(INBOX_ID.into(), Vec::new()), (SENT_ID.into(), Vec::new())]),
            folders: vec![
                (INBOX_ID.into(), "Inbox".into()),
                (SENT_ID.into(), "Sent Items".into()),
            ],
            base: base.clone(),
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/v1.0/me/mailFolders", get(folders))
            .route("/v1.0/me/mailFolders/{id}/messages/delta", get(delta))
            .route("/v1.0/me/sendMail", post(send_mail))
            .route("/v1.0/me/messages/{id}/attachments", get(attachments))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await });
        GraphFake { base, state }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.state.lock().expect("fake state"))
    }

    /// Delivers a message to the Inbox.
    pub fn deliver(&self, internet_message_id: &str, subject: &str) {
        self.with(|s| {
            let list = s.messages.get_mut(INBOX_ID).expect("inbox");
            let id = format!("AAMkMsg{}", list.len() + 1);
            list.push(message(
                &id,
                internet_message_id,
                subject,
                "bob@customer.example",
            ));
        });
    }

    /// Delivers a message to the Inbox with attachments `(name, contentType, size, isInline)`.
    pub fn deliver_with_attachments(
        &self,
        internet_message_id: &str,
        subject: &str,
        files: &[(&str, &str, u64, bool)],
    ) {
        self.deliver(internet_message_id, subject);
        self.with(|s| {
            let base = s.base.clone();
            let inbox = s.messages.get_mut(INBOX_ID).expect("inbox");
            let message = inbox.last_mut().expect("just delivered");
            let id = message["id"].as_str().expect("id").to_owned();
            message["hasAttachments"] = files.iter().any(|f| !f.3).into();
            let list = files
                .iter()
                .enumerate()
                .map(|(i, (name, content_type, size, inline))| {
                    serde_json::json!({
                        "@odata.type": "#microsoft.graph.fileAttachment",
                        "@odata.mediaContentType": content_type,
                        "id": format!("AAMkAtt{i}"),
                        "lastModifiedDateTime": "2026-01-02T03:04:05Z",
                        "name": name,
                        "contentType": content_type,
                        "size": size,
                        "isInline": inline,
                        "contentId": if *inline { Some(format!("{name}@{base}")) } else { None },
                        "contentBytes": base64::engine::general_purpose::STANDARD
                            .encode(vec![b'x'; *size as usize]),
                    })
                })
                .collect();
            s.attachments.insert(id, list);
        });
    }

    /// Adds an (empty) mail folder.
    pub fn add_folder(&self, id: &str, display_name: &str) {
        self.with(|s| {
            s.messages.insert(id.into(), Vec::new());
            s.folders.push((id.into(), display_name.into()));
        });
    }

    /// Deletes the message `<imid>` from the folder `folder` (an id): delta reports it
    /// `@removed` with reason `deleted`.
    pub fn delete(&self, folder: &str, imid: &str) {
        self.with(|s| {
            let id = s.id_of(folder, imid);
            s.messages
                .get_mut(folder)
                .expect("folder")
                .push(serde_json::json!({"id": id, "@removed": {"reason": "deleted"}}));
        });
    }

    /// Moves the message `<imid>` from `from` to `to` (folder ids): removed from the first
    /// (reason `deleted`, as the documentation says of a move), new in the second, with a new
    /// id.
    pub fn move_message(&self, from: &str, to: &str, imid: &str) {
        self.with(|s| {
            let id = s.id_of(from, imid);
            let mut message = s
                .live(from)
                .into_iter()
                .find(|(_, m)| m["id"] == id.as_str())
                .expect("message")
                .1;
            s.messages
                .get_mut(from)
                .expect("folder")
                .push(serde_json::json!({"id": id, "@removed": {"reason": "deleted"}}));
            message["id"] = format!("{id}-moved-to-{to}").into();
            s.messages.get_mut(to).expect("folder").push(message);
        });
    }

    /// The queries of every attachments request.
    pub fn attachment_queries(&self) -> Vec<HashMap<String, String>> {
        self.with(|s| s.attachment_queries.clone())
    }

    /// Answers the next `n` requests with 429.
    pub fn throttle(&self, n: u32) {
        self.with(|s| s.throttle = n);
    }

    /// Forgets every delta token issued so far.
    pub fn expire_tokens(&self) {
        self.with(|s| s.epoch += 1);
    }

    /// 429s answered so far.
    pub fn throttled(&self) -> u32 {
        self.with(|s| s.throttled)
    }

    /// 410s answered so far.
    pub fn gone(&self) -> u32 {
        self.with(|s| s.gone)
    }

    /// The queries of every delta request.
    pub fn delta_queries(&self) -> Vec<HashMap<String, String>> {
        self.with(|s| s.delta_queries.clone())
    }

    /// MIME messages received by sendMail.
    pub fn sent(&self) -> Vec<String> {
        self.with(|s| s.sent.clone())
    }
}

/// A Graph message resource as delta returns it.
pub fn message(
    id: &str,
    internet_message_id: &str,
    subject: &str,
    from: &str,
) -> serde_json::Value {
    serde_json::json!({
        "@odata.type": "#microsoft.graph.message",
        "id": id,
        "internetMessageId": format!("<{internet_message_id}>"),
        "subject": subject,
        "from": {"emailAddress": {"name": "Bob", "address": from}},
        "toRecipients": [{"emailAddress": {"name": "Sales", "address": "sales@corp.example"}}],
        "ccRecipients": [],
        "receivedDateTime": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "sentDateTime": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "isRead": false,
        "hasAttachments": false,
        "body": {"contentType": "text", "content": format!("Body of {subject}")}
    })
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// Auth and throttling, common to every route.
fn gate(state: &mut Inner, headers: &HeaderMap) -> Option<Response> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty());
    if bearer.is_none() {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        ));
    }
    if state.throttle > 0 {
        state.throttle -= 1;
        state.throttled += 1;
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

async fn folders(State(state): State<Arc<Mutex<Inner>>>, headers: HeaderMap) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(r) = gate(&mut s, &headers) {
        return r;
    }
    let value: Vec<_> = s
        .folders
        .iter()
        .map(|(id, name)| {
            serde_json::json!({"id": id, "displayName": name, "totalItemCount": s.live(id).len()})
        })
        .collect();
    axum::Json(serde_json::json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('me')/mailFolders",
        "value": value
    }))
    .into_response()
}

/// `E.N.f` (a full round) or `E.N.d` (changes since a deltaLink) → (epoch, log position,
/// full).
fn token(text: &str) -> Option<(u32, usize, bool)> {
    let mut parts = text.split('.');
    let (e, n, kind) = (parts.next()?, parts.next()?, parts.next()?);
    Some((e.parse().ok()?, n.parse().ok()?, kind == "f"))
}

async fn delta(
    State(state): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(r) = gate(&mut s, &headers) {
        return r;
    }
    s.delta_queries.push(query.clone());
    let Some(log) = s.messages.get(&id).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        );
    };
    let given = query.get("$skiptoken").or_else(|| query.get("$deltatoken"));
    let (position, full) = match given {
        None => (0, true),
        Some(t) => match token(t) {
            Some((epoch, n, full)) if epoch == s.epoch => (n, full),
            _ => {
                s.gone += 1;
                return error(
                    StatusCode::GONE,
                    "syncStateNotFound",
                    "The sync state generation is not found or expired.",
                );
            }
        },
    };
    // (log position, entry) of what this round reports from `position` on.
    let entries: Vec<(usize, serde_json::Value)> = if full {
        s.live(&id)
            .into_iter()
            .filter(|(i, _)| *i >= position)
            .collect()
    } else {
        log.iter()
            .enumerate()
            .skip(position)
            .map(|(i, m)| (i, m.clone()))
            .collect()
    };
    let page_size = s.page_size;
    let value: Vec<_> = entries
        .iter()
        .take(page_size)
        .map(|(_, m)| m.clone())
        .collect();
    let link = format!("{}/v1.0/me/mailFolders/{id}/messages/delta", s.base);
    let mut page = serde_json::json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(message)",
        "value": value,
    });
    if entries.len() > page_size {
        let next = entries[page_size].0;
        let kind = if full { "f" } else { "d" };
        page["@odata.nextLink"] = format!("{link}?$skiptoken={}.{next}.{kind}", s.epoch).into();
    } else {
        page["@odata.deltaLink"] = format!("{link}?$deltatoken={}.{}.d", s.epoch, log.len()).into();
    }
    axum::Json(page).into_response()
}

async fn attachments(
    State(state): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(r) = gate(&mut s, &headers) {
        return r;
    }
    s.attachment_queries.push(query.clone());
    let Some(list) = s.attachments.get(&id).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        );
    };
    let value: Vec<serde_json::Value> = match query.get("$select") {
        None => list,
        Some(select) => {
            let keep: Vec<&str> = select.split(',').map(str::trim).collect();
            list.into_iter()
                .map(|a| {
                    let mut out = serde_json::Map::new();
                    for (k, v) in a.as_object().expect("object") {
                        if k == "@odata.type"
                            || k == "@odata.mediaContentType"
                            || k == "id"
                            || keep.contains(&k.as_str())
                        {
                            out.insert(k.clone(), v.clone());
                        }
                    }
                    serde_json::Value::Object(out)
                })
                .collect()
        }
    };
    axum::Json(serde_json::json!({
        "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#users('me')/messages('{id}')/attachments"),
        "value": value
    }))
    .into_response()
}

async fn send_mail(
    State(state): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(r) = gate(&mut s, &headers) {
        return r;
    }
    let text_plain = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !text_plain {
        return error(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRequest",
            "expected MIME as base64 text/plain",
        );
    }
    let Ok(mime) = base64::engine::general_purpose::STANDARD.decode(body.trim_ascii()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "ErrorMimeContentInvalidBase64String",
            "Invalid base64 string for MIME content.",
        );
    };
    let mime = String::from_utf8_lossy(&mime).into_owned();
    let message_id = mime
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .map(|v| {
            v.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
        .unwrap_or_default();
    let sent = s.messages.get_mut(SENT_ID).expect("sent items");
    let id = format!("AAMkSent{}", sent.len() + 1);
    sent.push(message(&id, &message_id, "sent", "sales@corp.example"));
    s.sent.push(mime);
    StatusCode::ACCEPTED.into_response()
}
