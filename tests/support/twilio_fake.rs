//! A fake Twilio REST API on 127.0.0.1:0 for one account, on the documented wire format:
//! `GET /2010-04-01/Accounts/{Sid}.json` and `POST /2010-04-01/Accounts/{Sid}/Messages.json`
//! (form-encoded `To`, `From`, `Body`), both with HTTP Basic auth (Account SID, auth token);
//! errors are `{"code", "message", "more_info", "status"}`. It records sent messages and can
//! be told to fail the next sends (429 with `Retry-After`, 500) or to report the account
//! suspended or as a trial.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

/// A scripted failure of the next message send.
#[derive(Debug, Clone, Copy)]
pub enum SendFailure {
    /// 429 with `Retry-After` seconds (Twilio error 20429).
    RateLimited(u64),
    /// 500.
    ServerError,
}

/// The account and what happened to it.
#[derive(Debug)]
pub struct AccountState {
    /// `active`, `suspended` or `closed`.
    pub status: String,
    /// `Full` or `Trial`.
    pub kind: String,
    /// Accepted messages: (To, From, Body).
    pub sent: Vec<(String, String, String)>,
    /// Every request: "GET account", "POST message".
    pub calls: Vec<String>,
    /// Failures for the next sends.
    pub send_failures: VecDeque<SendFailure>,
}

/// A running fake for one account.
pub struct TwilioFake {
    /// `http://127.0.0.1:PORT`: the channel's `apiBaseUrl`.
    pub base: String,
    /// Its state.
    pub state: Arc<Mutex<AccountState>>,
}

#[derive(Clone)]
struct Shared {
    sid: String,
    token: String,
    state: Arc<Mutex<AccountState>>,
}

impl TwilioFake {
    /// Starts a fake for account `sid` with `token`, whose status is `status`.
    pub async fn start(sid: &str, token: &str, status: &str) -> TwilioFake {
        let state = Arc::new(Mutex::new(AccountState {
            status: status.to_owned(),
            kind: "Full".to_owned(),
            sent: Vec::new(),
            calls: Vec::new(),
            send_failures: VecDeque::new(),
        }));
        let shared = Shared {
            sid: sid.to_owned(),
            token: token.to_owned(),
            state: Arc::clone(&state),
        };
        let app = axum::Router::new()
            .route("/2010-04-01/Accounts/{file}", axum::routing::get(account))
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                axum::routing::post(message),
            )
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        TwilioFake { base, state }
    }

    /// Locks the state.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, AccountState> {
        self.state.lock().expect("fake state")
    }
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        Json(json!({"code": code, "message": message, "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status.as_u16()})),
    )
        .into_response()
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let expected = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", shared.sid, shared.token));
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        == Some(expected.as_str())
}

async fn account(
    State(shared): State<Shared>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&shared, &headers) {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    if file.strip_suffix(".json") != Some(shared.sid.as_str()) {
        return error(
            StatusCode::NOT_FOUND,
            20404,
            "The requested resource was not found",
        );
    }
    let mut state = shared.state.lock().expect("fake state");
    state.calls.push("GET account".into());
    Json(json!({"sid": shared.sid, "friendly_name": "Sales", "status": state.status, "type": state.kind}))
        .into_response()
}

async fn message(
    State(shared): State<Shared>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&shared, &headers) || sid != shared.sid {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let mut state = shared.state.lock().expect("fake state");
    state.calls.push("POST message".into());
    match state.send_failures.pop_front() {
        Some(SendFailure::RateLimited(after)) => {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
            response.headers_mut().insert(
                header::RETRY_AFTER,
                after.to_string().parse().expect("header"),
            );
            return response;
        }
        Some(SendFailure::ServerError) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                20500,
                "Internal Server Error",
            );
        }
        None => {}
    }
    let (Some(to), Some(from), Some(text)) = (get("To"), get("From"), get("Body")) else {
        return error(
            StatusCode::BAD_REQUEST,
            21604,
            "A 'To' phone number is required.",
        );
    };
    if !to.starts_with("whatsapp:") || !from.starts_with("whatsapp:") {
        return error(
            StatusCode::BAD_REQUEST,
            21910,
            "Invalid From and To pair. From and To should be of the same channel",
        );
    }
    state.sent.push((to.clone(), from.clone(), text.clone()));
    let value: Value = json!({"sid": format!("SM{:032}", state.sent.len()), "status": "queued", "to": to, "from": from, "body": text});
    (StatusCode::CREATED, Json(value)).into_response()
}
