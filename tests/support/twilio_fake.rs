//! A fake Twilio REST API on 127.0.0.1:0 for one account, on the documented wire format:
//! `GET /2010-04-01/Accounts/{Sid}.json` and `POST /2010-04-01/Accounts/{Sid}/Messages.json`
//! (form-encoded `To`, `From`, `Body`), both with HTTP Basic auth (Account SID, auth token);
//! errors are `{"code", "message", "more_info", "status"}`. It records sent messages and can
//! be told to fail the next sends (429 with `Retry-After`, 500) or to report the account
//! suspended or as a trial. It also plays Twilio's side of the inbound webhook: a customer's
//! WhatsApp message to one of the account's numbers is POSTed, form-encoded and signed with
//! `X-Twilio-Signature`, to the URL configured for that number ([`AccountState::webhooks`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha1::Sha1;

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
    /// Each number's "a message comes in" webhook URL (`+1...` → URL).
    pub webhooks: BTreeMap<String, String>,
    /// Inbound messages delivered so far (message SIDs derive from it).
    pub delivered: u64,
}

/// A running fake for one account.
pub struct TwilioFake {
    /// `http://127.0.0.1:PORT`: the channel's `apiBaseUrl`.
    pub base: String,
    /// The Account SID.
    pub sid: String,
    /// The account's auth token (it signs webhooks).
    token: String,
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        TwilioFake::serve(listener, sid, token, status)
    }

    /// [`TwilioFake::start`] on a listener the caller bound.
    pub fn serve(
        listener: tokio::net::TcpListener,
        sid: &str,
        token: &str,
        status: &str,
    ) -> TwilioFake {
        let state = Arc::new(Mutex::new(AccountState {
            status: status.to_owned(),
            kind: "Full".to_owned(),
            sent: Vec::new(),
            calls: Vec::new(),
            send_failures: VecDeque::new(),
            webhooks: BTreeMap::new(),
            delivered: 0,
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
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        TwilioFake {
            base,
            sid: sid.to_owned(),
            token: token.to_owned(),
            state,
        }
    }

    /// Locks the state.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, AccountState> {
        self.state.lock().expect("fake state")
    }

    /// `from` (a phone number, `+...`, shown as `profile_name`) writes `text` on WhatsApp to
    /// the account's number `to`: Twilio POSTs the form to `to`'s webhook, signed. Answers the
    /// webhook's HTTP status.
    pub async fn customer_message(
        &self,
        to: &str,
        from: &str,
        profile_name: &str,
        text: &str,
    ) -> Result<u16, String> {
        let (url, n) = {
            let mut state = self.lock();
            let url = state
                .webhooks
                .get(to)
                .cloned()
                .ok_or_else(|| format!("no webhook is configured for {to}"))?;
            state.delivered += 1;
            (url, state.delivered)
        };
        let message_sid = format!("SM{n:032x}");
        let params: Vec<(String, String)> = [
            ("MessageSid", message_sid.as_str()),
            ("SmsMessageSid", message_sid.as_str()),
            ("AccountSid", self.sid.as_str()),
            ("From", &format!("whatsapp:{from}")),
            ("To", &format!("whatsapp:{to}")),
            ("Body", text),
            ("NumMedia", "0"),
            ("NumSegments", "1"),
            ("ProfileName", profile_name),
            ("WaId", from.trim_start_matches('+')),
            ("ApiVersion", "2010-04-01"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        let response = switchboard::net::http_client()
            .post(&url)
            .header("x-twilio-signature", sign(&self.token, &url, &params))
            .header(
                header::CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=UTF-8",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| format!("the webhook POST failed: {e}"))?;
        Ok(response.status().as_u16())
    }
}

/// Twilio's request signature: `base64(HMAC-SHA1(auth token, URL + every key and value, sorted
/// by key))`.
fn sign(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).expect("any key");
    mac.update(url.as_bytes());
    for (key, value) in sorted {
        mac.update(key.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
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
