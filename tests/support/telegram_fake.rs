//! A fake Telegram Bot API on 127.0.0.1:0, following the documented wire format: methods at
//! `/bot<token>/<method>` taking JSON, answers `{"ok": true, "result": ...}` or
//! `{"ok": false, "error_code", "description", "parameters"?: {"retry_after"}}`. It keeps the
//! one webhook registration a bot has (`setWebhook`, `getWebhookInfo`, `deleteWebhook`),
//! records `sendMessage`s, and can be told to fail the next sends (429 with `retry_after`, 5xx)
//! or to have its webhook moved by "another installation". It also plays Telegram's side of
//! the webhook: a customer's message becomes an `Update` POSTed to the registered URL with the
//! registered `X-Telegram-Bot-Api-Secret-Token`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A scripted failure of the next `sendMessage`.
#[derive(Debug, Clone, Copy)]
pub enum SendFailure {
    /// 429 Too Many Requests with `parameters.retry_after` seconds.
    RateLimited(u64),
    /// 502 Bad Gateway.
    ServerError,
}

/// What the fake holds.
#[derive(Debug, Default)]
pub struct BotState {
    /// The registered webhook URL ("" when none).
    pub webhook_url: String,
    /// The registered secret token.
    pub secret_token: Option<String>,
    /// The registered allowed_updates.
    pub allowed_updates: Option<Vec<String>>,
    /// Every method called, in order.
    pub calls: Vec<String>,
    /// Accepted `sendMessage` bodies.
    pub sent: Vec<Value>,
    /// Failures to answer the next `sendMessage`s with.
    pub send_failures: VecDeque<SendFailure>,
    /// The last `update_id` delivered to the webhook.
    pub last_update_id: i64,
}

/// A running fake Bot API for one bot.
pub struct TelegramFake {
    /// `http://127.0.0.1:PORT`: the channel's `apiBaseUrl`.
    pub base: String,
    /// The bot's token.
    pub token: String,
    /// Its state, to script and inspect.
    pub state: Arc<Mutex<BotState>>,
}

#[derive(Clone)]
struct Shared {
    token: String,
    state: Arc<Mutex<BotState>>,
}

impl TelegramFake {
    /// Starts a fake for the bot with `token`.
    pub async fn start(token: &str) -> TelegramFake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        TelegramFake::serve(listener, token)
    }

    /// [`TelegramFake::start`] on a listener the caller bound.
    pub fn serve(listener: tokio::net::TcpListener, token: &str) -> TelegramFake {
        let state = Arc::new(Mutex::new(BotState::default()));
        let shared = Shared {
            token: token.to_owned(),
            state: Arc::clone(&state),
        };
        let app = axum::Router::new()
            .route("/{bot}/{method}", axum::routing::post(method).get(method))
            .with_state(shared);
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        TelegramFake {
            base,
            token: token.to_owned(),
            state,
        }
    }

    /// Locks the state.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, BotState> {
        self.state.lock().expect("fake state")
    }

    /// How often `name` was called.
    pub fn count(&self, name: &str) -> usize {
        self.lock().calls.iter().filter(|c| *c == name).count()
    }

    /// A user writes `text` to the bot in a private chat: Telegram POSTs the `Update` to the
    /// registered webhook with its secret token. Answers the webhook's HTTP status.
    pub async fn customer_message(
        &self,
        user_id: i64,
        first_name: &str,
        text: &str,
    ) -> Result<u16, String> {
        let (url, secret, update_id) = {
            let mut state = self.lock();
            if state.webhook_url.is_empty() {
                return Err("the bot has no webhook registered (setWebhook)".into());
            }
            state.last_update_id += 1;
            (
                state.webhook_url.clone(),
                state.secret_token.clone(),
                state.last_update_id,
            )
        };
        let update = json!({"update_id": update_id, "message": {"message_id": update_id,
            "from": {"id": user_id, "is_bot": false, "first_name": first_name},
            "chat": {"id": user_id, "type": "private", "first_name": first_name},
            "date": 1_700_000_000 + update_id, "text": text}});
        let mut request = switchboard::net::http_client().post(&url).json(&update);
        if let Some(secret) = secret {
            request = request.header("x-telegram-bot-api-secret-token", secret);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("the webhook POST failed: {e}"))?;
        Ok(response.status().as_u16())
    }
}

fn error(status: StatusCode, description: &str, parameters: Option<Value>) -> Response {
    let mut body = json!({"ok": false, "error_code": status.as_u16(), "description": description});
    if let Some(p) = parameters {
        body["parameters"] = p;
    }
    (status, Json(body)).into_response()
}

fn ok(result: Value) -> Response {
    Json(json!({"ok": true, "result": result})).into_response()
}

async fn method(
    State(shared): State<Shared>,
    Path((bot, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if bot.strip_prefix("bot") != Some(shared.token.as_str()) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized", None);
    }
    let params: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: can't parse JSON",
                    None,
                );
            }
        }
    };
    let mut state = shared.state.lock().expect("fake state");
    state.calls.push(name.clone());
    match name.as_str() {
        "getMe" => ok(
            json!({"id": 7001, "is_bot": true, "first_name": "Support", "username": "sb_support_bot"}),
        ),
        "setWebhook" => {
            let Some(url) = params["url"].as_str() else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: bad webhook: URL is empty",
                    None,
                );
            };
            if let Some(secret) = params["secret_token"].as_str()
                && (secret.is_empty()
                    || secret.len() > 256
                    || !secret
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
            {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: secret token contains unallowed characters",
                    None,
                );
            }
            state.webhook_url = url.to_owned();
            state.secret_token = params["secret_token"].as_str().map(str::to_owned);
            state.allowed_updates = params["allowed_updates"].as_array().map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            });
            Json(json!({"ok": true, "result": true, "description": "Webhook was set"}))
                .into_response()
        }
        "getWebhookInfo" => {
            let mut info = json!({"url": state.webhook_url, "has_custom_certificate": false, "pending_update_count": 0});
            if !state.webhook_url.is_empty()
                && let Some(allowed) = &state.allowed_updates
            {
                info["allowed_updates"] = json!(allowed);
            }
            ok(info)
        }
        "deleteWebhook" => {
            state.webhook_url.clear();
            state.secret_token = None;
            state.allowed_updates = None;
            Json(json!({"ok": true, "result": true, "description": "Webhook was deleted"}))
                .into_response()
        }
        "sendMessage" => match state.send_failures.pop_front() {
            Some(SendFailure::RateLimited(after)) => error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too Many Requests: retry after {after}"),
                Some(json!({"retry_after": after})),
            ),
            Some(SendFailure::ServerError) => error(StatusCode::BAD_GATEWAY, "Bad Gateway", None),
            None => {
                if params["chat_id"].is_null() || params["text"].as_str().is_none_or(str::is_empty)
                {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "Bad Request: message text is empty",
                        None,
                    );
                }
                state.sent.push(params.clone());
                let id = state.sent.len();
                ok(
                    json!({"message_id": id, "chat": {"id": params["chat_id"]}, "date": 0, "text": params["text"]}),
                )
            }
        },
        _ => error(StatusCode::NOT_FOUND, "Not Found", None),
    }
}
