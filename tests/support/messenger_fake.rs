//! A fake Meta Graph API on 127.0.0.1:0 for one page, following the documented wire format
//! of the calls the messenger channel makes: `GET /{v}/{page-id}?fields=name`, `GET /{v}/app`
//! (the app of the access token), `GET /{v}/{page-id}/subscribed_apps` (`{"data": [{"id",
//! "name"}]}`), and the Send API `POST /{v}/me/messages` (`{"recipient_id", "message_id"}`).
//! Every call needs `access_token` equal to the page token, else Graph's OAuthException
//! (code 190). Tests script the subscribed apps and inspect what was sent.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// What the fake holds.
#[derive(Debug, Default)]
pub struct PageState {
    /// Apps subscribed to the page's webhooks: `(id, name)`.
    pub subscribed: Vec<(String, String)>,
    /// Accepted Send API bodies.
    pub sent: Vec<Value>,
    /// Every call, as `METHOD path`.
    pub calls: Vec<String>,
}

/// A running fake Graph API.
pub struct MessengerFake {
    /// `http://127.0.0.1:PORT`: the channel's `apiBaseUrl`.
    pub base: String,
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
        let app = axum::Router::new()
            .route("/{version}/app", axum::routing::get(get_app))
            .route("/{version}/me/messages", axum::routing::post(send))
            .route("/{version}/{page}", axum::routing::get(get_page))
            .route(
                "/{version}/{page}/subscribed_apps",
                axum::routing::get(subscribed_apps),
            )
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        MessengerFake { base, state }
    }

    /// Locks the state.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, PageState> {
        self.state.lock().expect("fake state")
    }
}

fn oauth_error() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}})),
    )
        .into_response()
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
