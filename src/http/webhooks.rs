//! Inbound webhooks of the chat channels. Each handler finds the channel, lets the channel
//! check the token or signature *before* reading the body, bounds the body, lets the channel
//! parse it, and answers 2xx only once the chat engine has durably committed the message.
//!
//! Every request is counted in `switchboard_webhook_requests_total{provider,outcome}`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::chat::channels::{api, messenger, telegram, twilio};
use crate::chat::snapshot::Snapshot;
use crate::config::kinds::ChannelProvider;

use super::AppState;
use super::error::ApiError;

/// The answer to a stored inbound message.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatIdDto {
    chat_id: String,
}

/// `POST /webhooks/api/{channel}`.
///
/// 404 for no such api channel; 401 for a missing or wrong token (nothing is read or stored);
/// 403 `channel-inactive` for a deactivated channel (checked after the token, so only the
/// channel's own client learns it); 413 beyond [`api::MAX_BODY`]; 400 for a malformed body;
/// 200 `{"chatId"}` once stored — the same for a repeated `messageId`.
pub async fn api_inbound(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (outcome, result) = receive_api(&state, &channel, &headers, body).await;
    state
        .metrics
        .webhook_requests_total
        .with_label_values(&["api", outcome])
        .inc();
    result.into_response()
}

async fn receive_api(
    state: &AppState,
    channel: &str,
    headers: &HeaderMap,
    body: Body,
) -> (&'static str, Result<Json<ChatIdDto>, ApiError>) {
    let snapshot = state.chat.snapshot().await;
    let Some(setup) = snapshot
        .channels
        .get(channel)
        .filter(|c| c.provider == ChannelProvider::Api)
    else {
        return unknown_channel(state, channel, "api").await;
    };
    let token = match &setup.inbound_token {
        Ok(token) => token,
        Err(e) => return unreadable_secret(&snapshot, channel, "inboundToken", e),
    };
    if headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .nth(1)
        .is_some()
    {
        return (
            "invalid",
            Err(ApiError::bad_request(
                "the request has more than one Authorization header",
            )),
        );
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !api::token_matches(token, authorization) {
        return (
            "unauthorized",
            Err(ApiError::unauthorized(
                "expected `Authorization: Bearer <the channel's inboundToken>`",
            )),
        );
    }
    if !setup.active {
        return (
            "inactive",
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "channel-inactive",
                format!("ChatChannel {channel} is deactivated and accepts no messages"),
            )),
        );
    }
    let bytes = match read_body(headers, body, api::MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(e) => return ("invalid", Err(e)),
    };
    let inbound = match api::parse_inbound(channel, &bytes) {
        Ok(inbound) => inbound,
        Err(message) => return ("invalid", Err(ApiError::bad_request(message))),
    };
    match state.chat.inbound(inbound).await {
        Ok((chat_id, duplicate)) => (
            if duplicate { "duplicate" } else { "accepted" },
            Ok(Json(ChatIdDto {
                chat_id: chat_id.to_string(),
            })),
        ),
        Err(e) => ("error", Err(e.into())),
    }
}

/// `POST /webhooks/telegram/{channel}` (TG-01..TG-03).
///
/// 404 for no such telegram channel; 401 unless `X-Telegram-Bot-Api-Secret-Token` is the
/// channel's secret token (checked first: nothing is read or stored); 403 for a deactivated
/// channel; 413/400 for an oversized or malformed update; an empty 200 once stored — the same
/// for a repeated `update_id`, and for an update that carries no message (not stored).
pub async fn telegram_inbound(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (outcome, result) = receive_telegram(&state, &channel, &headers, body).await;
    state
        .metrics
        .webhook_requests_total
        .with_label_values(&["telegram", outcome])
        .inc();
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn receive_telegram(
    state: &AppState,
    channel: &str,
    headers: &HeaderMap,
    body: Body,
) -> (&'static str, Result<(), ApiError>) {
    let snapshot = state.chat.snapshot().await;
    let Some(setup) = snapshot
        .channels
        .get(channel)
        .filter(|c| c.provider == ChannelProvider::Telegram)
    else {
        return unknown_channel(state, channel, "telegram").await;
    };
    let token = match setup.secret("/token") {
        Ok(token) => token,
        Err(e) => return unreadable_secret(&snapshot, channel, "token", &e),
    };
    let presented = headers
        .get(telegram::SECRET_HEADER)
        .and_then(|v| v.to_str().ok());
    if !telegram::secret_matches(&telegram::secret_token(token, channel), presented) {
        return (
            "unauthorized",
            Err(ApiError::unauthorized(
                "the X-Telegram-Bot-Api-Secret-Token header is missing or wrong",
            )),
        );
    }
    if !setup.active {
        return ("inactive", Err(inactive(channel)));
    }
    let bytes = match read_body(headers, body, telegram::MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(e) => return ("invalid", Err(e)),
    };
    let inbound = match telegram::parse_update(channel, &bytes) {
        Ok(Some(inbound)) => inbound,
        Ok(None) => return ("ignored", Ok(())),
        Err(message) => return ("invalid", Err(ApiError::bad_request(message))),
    };
    match state.chat.inbound(inbound).await {
        Ok((_, duplicate)) => (if duplicate { "duplicate" } else { "accepted" }, Ok(())),
        Err(e) => ("error", Err(e.into())),
    }
}

/// `POST /webhooks/twilio/{channel}` (WA-01..WA-05).
///
/// 404 for no such whatsapp channel; 413 beyond [`twilio::MAX_BODY`]; 401 without
/// `X-Twilio-Signature`, 403 with a wrong one (nothing stored); 403 for a deactivated channel
/// or a message for another account or number; 503 until the Twilio account has been verified
/// (WA-03); 200 with TwiML once stored — the same for a repeated `MessageSid` — whose
/// `<Message>` tells the client about refused files (WA-02).
pub async fn twilio_inbound(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (outcome, result) = receive_twilio(&state, &channel, uri.query(), &headers, body).await;
    state
        .metrics
        .webhook_requests_total
        .with_label_values(&["twilio", outcome])
        .inc();
    match result {
        Ok(xml) => ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn receive_twilio(
    state: &AppState,
    channel: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> (&'static str, Result<String, ApiError>) {
    let snapshot = state.chat.snapshot().await;
    let Some(setup) = snapshot
        .channels
        .get(channel)
        .filter(|c| c.provider == ChannelProvider::Whatsapp)
    else {
        return unknown_channel(state, channel, "whatsapp").await;
    };
    let token = match setup.secret("/authToken") {
        Ok(token) => token,
        Err(e) => return unreadable_secret(&snapshot, channel, "authToken", &e),
    };
    let Some(presented) = headers
        .get(twilio::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
    else {
        return (
            "unauthorized",
            Err(ApiError::unauthorized(
                "the X-Twilio-Signature header is missing",
            )),
        );
    };
    // The signature covers the form, so the (bounded) body is read first; nothing of it is
    // used before the signature matched.
    let bytes = match read_body(headers, body, twilio::MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(e) => return ("invalid", Err(e)),
    };
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let url = twilio::signed_url(&snapshot.site, channel, query);
    if !twilio::signature_matches(token, &url, &params, Some(presented)) {
        return (
            "forbidden",
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid-signature",
                format!(
                    "X-Twilio-Signature does not match this request to {url}; is siteUrl the URL configured in Twilio?"
                ),
            )),
        );
    }
    if !setup.active {
        return ("inactive", Err(inactive(channel)));
    }
    match verified(state, channel).await {
        Ok(true) => {}
        Ok(false) => {
            return (
                "unverified",
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "channel-unverified",
                    format!(
                        "ChatChannel {channel}'s Twilio account is not verified yet; see `switchboard status`"
                    ),
                )),
            );
        }
        Err(e) => return ("error", Err(e)),
    }
    let received = match twilio::parse_inbound(channel, &setup.spec, &params) {
        Ok(received) => received,
        Err(message) => {
            return (
                "forbidden",
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "wrong-channel",
                    message,
                )),
            );
        }
    };
    match state.chat.inbound(received.inbound).await {
        Ok((_, duplicate)) => (
            if duplicate { "duplicate" } else { "accepted" },
            Ok(twilio::twiml(&received.refused)),
        ),
        Err(e) => ("error", Err(e.into())),
    }
}

/// `GET /webhooks/messenger`: the subscription handshake. Echoes `hub.challenge` when
/// `hub.mode` is `subscribe` and `hub.verify_token` is one of the messenger channels'
/// `verifyToken`; 403 otherwise.
pub async fn messenger_verify(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let snapshot = state.chat.snapshot().await;
    let presented = query
        .get("hub.verify_token")
        .map(String::as_str)
        .unwrap_or_default();
    let known = snapshot.channels.values().any(|c| {
        c.provider == ChannelProvider::FacebookMessenger
            && c.secret("/verifyToken")
                .is_ok_and(|t| messenger::token_matches(t, presented))
    });
    let outcome = match (
        query.get("hub.mode").map(String::as_str),
        query.get("hub.challenge"),
    ) {
        (Some("subscribe"), Some(challenge)) if known => Ok(challenge.clone()),
        _ => Err(ApiError::forbidden(
            "hub.verify_token does not match any messenger channel",
        )),
    };
    state
        .metrics
        .webhook_requests_total
        .with_label_values(&[
            "messenger",
            if outcome.is_ok() {
                "verified"
            } else {
                "forbidden"
            },
        ])
        .inc();
    match outcome {
        Ok(challenge) => challenge.into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /webhooks/messenger` (FB-01, FB-04): 401 without `X-Hub-Signature-256`, 403 when it
/// matches no channel's app secret (nothing stored); 413/400 for oversized or malformed
/// bodies; 200 once every message of a page we serve is stored (a repeated `mid` is stored
/// once). Entries for pages no matching channel serves are skipped. Each event goes to the
/// chat writer as it is; with `handover` (FB-03) the writer decides, on the thread's current
/// owner, what it is (see [`crate::chat::Command::Messenger`]).
pub async fn messenger_inbound(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (outcome, result) = receive_messenger(&state, &headers, body).await;
    state
        .metrics
        .webhook_requests_total
        .with_label_values(&["messenger", outcome])
        .inc();
    match result {
        Ok(()) => "EVENT_RECEIVED".into_response(),
        Err(e) => e.into_response(),
    }
}

async fn receive_messenger(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> (&'static str, Result<(), ApiError>) {
    let Some(signature) = headers
        .get(messenger::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
    else {
        return (
            "unauthorized",
            Err(ApiError::unauthorized(
                "the X-Hub-Signature-256 header is missing",
            )),
        );
    };
    let bytes = match read_body(headers, body, messenger::MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(e) => return ("invalid", Err(e)),
    };
    let snapshot = state.chat.snapshot().await;
    let matching: Vec<(&String, &crate::chat::snapshot::ChannelSetup)> = snapshot
        .channels
        .iter()
        .filter(|(_, c)| c.provider == ChannelProvider::FacebookMessenger)
        .filter(|(_, c)| {
            c.secret("/appSecret")
                .is_ok_and(|s| messenger::signature_matches(s, &bytes, Some(signature)))
        })
        .collect();
    if matching.is_empty() {
        return (
            "forbidden",
            Err(ApiError::forbidden(
                "X-Hub-Signature-256 does not match the app secret of any messenger channel",
            )),
        );
    }
    let messages = match messenger::parse(&bytes) {
        Ok(messages) => messages,
        Err(message) => return ("invalid", Err(ApiError::bad_request(message))),
    };
    let mut outcome = "accepted";
    for (page, event) in messages {
        // FB-01: a page is routed to its channel.
        let Some((name, setup)) = matching
            .iter()
            .find(|(_, c)| c.spec.page_id.as_deref() == Some(page.as_str()))
        else {
            tracing::warn!(
                page = %crate::telemetry::logging::outside(&page, 64),
                "a Messenger event for a page no channel serves was skipped"
            );
            outcome = "ignored";
            continue;
        };
        if !setup.active {
            outcome = "ignored";
            continue;
        }
        // The chat writer sorts the event on the thread's current owner (FB-03).
        let command = crate::chat::Command::Messenger {
            channel: (*name).clone(),
            event,
        };
        if let Err(e) = state.chat.command(command).await {
            return ("error", Err(e.into()));
        }
    }
    (outcome, Ok(()))
}

/// Whether the channel's current generation has been reconciled successfully: for whatsapp,
/// that its Twilio account was verified active (WA-03).
async fn verified(state: &AppState, channel: &str) -> Result<bool, ApiError> {
    let name = channel.to_owned();
    let statuses = state
        .chat
        .store()
        .call(|s| s.statuses())
        .await
        .map_err(ApiError::internal)?;
    Ok(statuses.iter().any(|s| {
        s.kind == "ChatChannel"
            && s.name == name
            && s.state == crate::store::ObjectState::Ready
            && s.last_success_at.is_some_and(|at| at >= s.applied_at)
    }))
}

/// 503 for a channel whose secret cannot be read. The error (which names the file) is logged
/// once per applied config and error, not on every request anyone sends.
fn unreadable_secret<T>(
    snapshot: &Arc<Snapshot>,
    channel: &str,
    field: &str,
    error: &str,
) -> (&'static str, Result<T, ApiError>) {
    type Logged = HashMap<(String, String), (usize, String)>;
    static LOGGED: LazyLock<Mutex<Logged>> = LazyLock::new(Mutex::default);
    // The snapshot's address stands for the applied config it was built from.
    let stamp = Arc::as_ptr(snapshot) as usize;
    let fresh = {
        let mut logged = LOGGED.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = (stamp, error.to_owned());
        logged.insert((channel.to_owned(), field.to_owned()), seen.clone()) != Some(seen)
    };
    if fresh {
        tracing::error!(channel, field, error, "a channel secret cannot be read");
    }
    (
        "error",
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("the channel's {field} cannot be read; see `switchboard status`"),
        )),
    )
}

/// A channel the config does not hold: 403 `channel-inactive` when it was removed while it had
/// chats (CH-10: it is kept deactivated with its history), otherwise 404. The removed channel's
/// credentials left the config with it, so this answer is given without checking them; it tells
/// only that the channel once had chats.
async fn unknown_channel<T>(
    state: &AppState,
    channel: &str,
    provider: &str,
) -> (&'static str, Result<T, ApiError>) {
    let configured = state.chat.snapshot().await.channels.contains_key(channel);
    let name = channel.to_owned();
    // A configured channel of another provider is a wrong route, not a deactivated channel.
    let kept = if configured {
        Ok(false)
    } else {
        state
            .chat
            .store()
            .call(move |s| Ok(s.chat_channels_with_chats()?.contains(&name)))
            .await
    };
    match kept {
        Ok(true) => ("inactive", Err(inactive(channel))),
        Ok(false) => (
            "not-found",
            Err(ApiError::not_found(format!(
                "no {provider} ChatChannel named {channel}"
            ))),
        ),
        Err(e) => ("error", Err(ApiError::internal(e))),
    }
}

fn inactive(channel: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "channel-inactive",
        format!("ChatChannel {channel} is deactivated and accepts no messages"),
    )
}

/// Reads at most `limit` bytes of `body`: 413 beyond (told by `Content-Length` before reading,
/// or found while reading a chunked body), 408 when it does not arrive within
/// `Settings.http.bodyReadTimeout`, 400 when it cannot be read.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    let too_large =
        || ApiError::payload_too_large(format!("the body is larger than {limit} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let inner = e.into_inner();
        if inner
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            too_large()
        } else {
            ApiError::unreadable_body(&*inner)
        }
    })
}
