//! A fake Meta Graph API on 127.0.0.1:0 for one page, following the documented wire format
//! of the calls the messenger channel makes: `GET /{v}/{page-id}?fields=name`, `GET /{v}/app`
//! (the app of the access token), `GET /{v}/{page-id}/subscribed_apps` (`{"data": [{"id",
//! "name"}]}`), the Send API `POST /{v}/me/messages` (`{"recipient_id", "message_id"}`) and
//! the Handover Protocol's `POST /{v}/me/pass_thread_control` (`{"recipient": {"id"},
//! "target_app_id", "metadata"}` → `{"success": true}`). Every call needs `access_token` equal
//! to the page token, else Graph's OAuthException (code 190). Tests script the subscribed apps
//! and failures, and inspect what was sent and passed.
//!
//! It also plays Meta's side of the webhooks: given the app's callback URL and app secret
//! ([`PageState::webhook`]), it delivers a customer's message (or the bot passing the thread
//! to our app) as a `{"object": "page", "entry": [...]}` POST signed with
//! `X-Hub-Signature-256`. With a primary receiver set (Handover Protocol), it keeps each
//! thread's owner as Meta does: a message on a thread our app does not own reaches it as a
//! `standby` event, one on our thread as `messaging`.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// A scripted failure of the next `pass_thread_control`.
#[derive(Debug, Clone, Copy)]
pub enum GraphFailure {
    /// Graph's rate limit: 429 with `Retry-After` seconds and error code 613.
    RateLimited(u64),
    /// Graph's temporary outage: 500 with error code 2.
    ServerError,
}

/// What the fake holds.
#[derive(Debug, Default)]
pub struct PageState {
    /// Apps subscribed to the page's webhooks: `(id, name)`.
    pub subscribed: Vec<(String, String)>,
    /// Accepted Send API bodies.
    pub sent: Vec<Value>,
    /// Accepted `pass_thread_control` bodies.
    pub passed: Vec<Value>,
    /// Failures to answer the next `pass_thread_control`s with.
    pub pass_failures: VecDeque<GraphFailure>,
    /// Every call, as `METHOD path`.
    pub calls: Vec<String>,
    /// The app's webhook: its callback URL and the app secret that signs deliveries.
    pub webhook: Option<(String, String)>,
    /// The Handover Protocol's primary receiver (the bot's app id), when the page has one.
    pub primary: Option<String>,
    /// Who owns each thread (PSID → app id); a thread not listed is the primary's, or ours
    /// on a page without one.
    pub owners: HashMap<String, String>,
    /// Webhook events delivered so far (message ids and timestamps derive from it).
    pub delivered: u64,
}

/// A running fake Graph API.
pub struct MessengerFake {
    /// `http://127.0.0.1:PORT`: the channel's `apiBaseUrl`.
    pub base: String,
    /// The page's id.
    pub page: String,
    /// The app id of the page token (our app).
    pub app: String,
    /// Its state, to script and inspect.
    pub state: Arc<Mutex<PageState>>,
}

#[derive(Clone)]
struct Shared {
    page: String,
    token: String,
    app: (String, String),
    state: Arc<Mutex<PageState>>,
}

impl MessengerFake {
    /// Starts a fake for `page` with the page access `token`, whose token belongs to `app`
    /// (`(id, name)`); the app starts subscribed to the page.
    pub async fn start(page: &str, token: &str, app: (&str, &str)) -> MessengerFake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        MessengerFake::serve(listener, page, token, app)
    }

    /// [`MessengerFake::start`] on a listener the caller bound.
    pub fn serve(
        listener: tokio::net::TcpListener,
        page: &str,
        token: &str,
        app: (&str, &str),
    ) -> MessengerFake {
        let state = Arc::new(Mutex::new(PageState {
            subscribed: vec![(app.0.to_owned(), app.1.to_owned())],
            ..PageState::default()
        }));
        let shared = Shared {
            page: page.to_owned(),
            token: token.to_owned(),
            app: (app.0.to_owned(), app.1.to_owned()),
            state: Arc::clone(&state),
        };
        let router = axum::Router::new()
            .route("/{version}/app", axum::routing::get(get_app))
            .route("/{version}/me/messages", axum::routing::post(send))
            .route(
                "/{version}/me/pass_thread_control",
                axum::routing::post(pass_thread_control),
            )
            .route("/{version}/{page}", axum::routing::get(get_page))
            .route(
                "/{version}/{page}/subscribed_apps",
                axum::routing::get(subscribed_apps),
            )
            .with_state(shared);
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        MessengerFake {
            base,
            page: page.to_owned(),
            app: app.0.to_owned(),
            state,
        }
    }

    /// Locks the state.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, PageState> {
        self.state.lock().expect("fake state")
    }

    /// Makes `bot` the page's primary receiver (it owns every thread until it passes one on)
    /// and subscribes it to the page.
    pub fn set_primary(&self, bot: (&str, &str)) {
        let mut state = self.lock();
        state.primary = Some(bot.0.to_owned());
        state.subscribed.push((bot.0.to_owned(), bot.1.to_owned()));
    }

    /// Whether our app owns the thread of `psid` now.
    pub fn ours(&self, psid: &str) -> bool {
        let state = self.lock();
        match (state.owners.get(psid), &state.primary) {
            (Some(owner), _) => *owner == self.app,
            (None, primary) => primary.is_none(),
        }
    }

    /// A customer (`psid`) writes `text` to the page: delivered to the app's webhook as
    /// `messaging` when our app owns the thread, else as `standby`. Answers the webhook's
    /// HTTP status.
    pub async fn customer_message(&self, psid: &str, text: &str) -> Result<u16, String> {
        let field = if self.ours(psid) {
            "messaging"
        } else {
            "standby"
        };
        let (n, time) = self.next_event();
        let event = json!({"sender": {"id": psid}, "recipient": {"id": self.page},
            "timestamp": time, "message": {"mid": format!("m_fake{n}"), "text": text}});
        self.deliver(field, event).await
    }

    /// The primary receiver (the bot) passes the thread of `psid` to our app, with
    /// `metadata`: the thread is ours, and our app gets the `pass_thread_control` event.
    pub async fn pass_to_us(&self, psid: &str, metadata: &str) -> Result<u16, String> {
        let previous = {
            let mut state = self.lock();
            let previous = state.primary.clone();
            state.owners.insert(psid.to_owned(), self.app.clone());
            previous
        };
        let (_, time) = self.next_event();
        let event = json!({"sender": {"id": psid}, "recipient": {"id": self.page},
            "timestamp": time, "pass_thread_control": {"previous_owner_app_id": previous,
            "new_owner_app_id": self.app, "metadata": metadata}});
        self.deliver("messaging", event).await
    }

    fn next_event(&self) -> (u64, u64) {
        let mut state = self.lock();
        state.delivered += 1;
        (state.delivered, 1_700_000_000_000 + state.delivered)
    }

    /// POSTs one entry of `field` events to the app's webhook, signed as Meta signs.
    async fn deliver(&self, field: &str, event: Value) -> Result<u16, String> {
        let (url, secret) = self
            .lock()
            .webhook
            .clone()
            .ok_or("the app has no webhook (callback URL) configured")?;
        let body =
            json!({"object": "page", "entry": [{"id": self.page, "time": 1, field: [event]}]});
        let bytes = serde_json::to_vec(&body).expect("JSON");
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
        mac.update(&bytes);
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let response = switchboard::net::http_client()
            .post(&url)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-hub-signature-256", signature)
            .body(bytes)
            .send()
            .await
            .map_err(|e| format!("the webhook POST failed: {e}"))?;
        Ok(response.status().as_u16())
    }
}

fn graph_error(status: StatusCode, code: i64, message: &str) -> Response {
    (
        status,
        Json(
            json!({"error": {"message": message, "type": "OAuthException", "code": code,
            "fbtrace_id": "AfakeTrace"}}),
        ),
    )
        .into_response()
}

fn oauth_error() -> Response {
    graph_error(StatusCode::BAD_REQUEST, 190, "Invalid OAuth access token.")
}

fn authorized(shared: &Shared, query: &HashMap<String, String>, call: String) -> bool {
    shared.state.lock().expect("state").calls.push(call);
    query.get("access_token") == Some(&shared.token)
}

async fn get_app(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&shared, &query, "GET app".into()) {
        return oauth_error();
    }
    Json(json!({"id": shared.app.0, "name": shared.app.1})).into_response()
}

async fn get_page(
    State(shared): State<Shared>,
    Path((_, page)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&shared, &query, format!("GET {page}")) || page != shared.page {
        return oauth_error();
    }
    Json(json!({"name": "Test Page", "id": page})).into_response()
}

async fn subscribed_apps(
    State(shared): State<Shared>,
    Path((_, page)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&shared, &query, format!("GET {page}/subscribed_apps")) || page != shared.page {
        return oauth_error();
    }
    let data: Vec<Value> = shared
        .state
        .lock()
        .expect("state")
        .subscribed
        .iter()
        .map(|(id, name)| json!({"id": id, "name": name, "category": "Business"}))
        .collect();
    Json(json!({"data": data})).into_response()
}

async fn send(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&shared, &query, "POST me/messages".into()) {
        return oauth_error();
    }
    let recipient = body["recipient"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut state = shared.state.lock().expect("state");
    state.sent.push(body);
    let id = format!("m_{}", state.sent.len());
    Json(json!({"recipient_id": recipient, "message_id": id})).into_response()
}

/// `target_app_id` as Graph takes it: a number, or a numeric string.
fn app_id(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.clone())
        }
        _ => None,
    }
}

async fn pass_thread_control(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&shared, &query, "POST me/pass_thread_control".into()) {
        return oauth_error();
    }
    let mut state = shared.state.lock().expect("state");
    match state.pass_failures.pop_front() {
        Some(GraphFailure::RateLimited(after)) => {
            let mut response = graph_error(
                StatusCode::TOO_MANY_REQUESTS,
                613,
                "Calls to this api have exceeded the rate limit.",
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                after.to_string().parse().expect("header"),
            );
            return response;
        }
        Some(GraphFailure::ServerError) => {
            return graph_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                2,
                "An unexpected error has occurred. Please retry your request later.",
            );
        }
        None => {}
    }
    let (Some(psid), Some(target)) = (
        body["recipient"]["id"].as_str().map(str::to_owned),
        app_id(&body["target_app_id"]),
    ) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "(#100) The parameter recipient and target_app_id are required",
        );
    };
    state.owners.insert(psid, target);
    state.passed.push(body);
    Json(json!({"success": true})).into_response()
}
