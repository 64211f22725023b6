//! HTTP: the axum router on `Settings.listen`, the operator API's auth and errors, `/metrics`.
//!
//! This is the only JSON-DTO layer: store rows are mapped to the DTOs in [`api`] here. It reads
//! the running set through [`EngineHandle`] and never changes it (a sync request is only a
//! request). Every response is counted in `switchboard_http_requests_total{route,status}` with
//! the matched route template, never the raw path.

pub mod activities;
pub mod api;
pub mod auth;
pub mod chat;
pub mod console;
pub mod emails;
pub mod error;
pub mod leads;
pub mod me;
pub mod oauth;
pub mod oidc;
pub mod openapi;
pub mod records;
pub mod server;
pub mod webhooks;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::connector::EngineHandle;
use crate::telemetry::Metrics;

pub use auth::{Caller, authenticate};
pub use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The running set (read side).
    pub engine: EngineHandle,
    /// The metrics registry. Behind an `Arc`: axum clones the state for every request, and
    /// `Metrics` is a few dozen reference-counted handles.
    pub metrics: std::sync::Arc<Metrics>,
    /// The chat engine (webhooks and the chat operator API).
    pub chat: crate::chat::ChatService,
    /// The identity server's verifier and its cached keys (`Settings.identityServer`).
    pub oidc: std::sync::Arc<oidc::Verifier>,
}

/// The route label for requests that matched no route.
const UNMATCHED: &str = "unmatched";

/// The router with every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/objects", get(api::list_objects))
        .route("/api/v1/objects/{kind}/{name}/sync", post(api::sync_object))
        // Mail (issue 5).
        .route(
            "/api/v1/emails",
            get(emails::list_emails).post(emails::send_email),
        )
        .route("/oauth/google/callback", get(oauth::google))
        .route("/oauth/microsoft/callback", get(oauth::microsoft))
        .route("/oauth/linkedin/callback", get(oauth::linkedin))
        // Chat: the api channel's webhook and the operator API.
        .route("/webhooks/api/{channel}", post(webhooks::api_inbound))
        .route(
            "/webhooks/telegram/{channel}",
            post(webhooks::telegram_inbound),
        )
        .route("/webhooks/twilio/{channel}", post(webhooks::twilio_inbound))
        .route(
            "/webhooks/messenger",
            get(webhooks::messenger_verify).post(webhooks::messenger_inbound),
        )
        .route("/api/v1/chats", get(chat::list_chats))
        .route("/api/v1/chats/{id}", get(chat::get_chat))
        .route("/api/v1/chats/{id}/accept", post(chat::accept))
        .route("/api/v1/chats/{id}/complete", post(chat::complete))
        .route("/api/v1/chats/{id}/messages", post(chat::post_message))
        .route(
            "/api/v1/chats/{id}/actions/{action}",
            post(chat::run_action),
        )
        .route("/api/v1/cases", get(chat::list_cases))
        .route("/api/v1/notification-sound", get(chat::notification_sound))
        .route("/api/v1/operators", get(chat::list_operators))
        .route("/api/v1/operators/me/status", put(chat::put_status))
        .route("/api/v1/quick-replies", get(chat::quick_replies))
        .route("/api/v1/events", get(chat::events))
        .route("/api/v1/me", get(me::me))
        // The OpenAPI document of /api/v1 and /webhooks; no token needed.
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/api/v1/chat-actions", get(me::chat_actions))
        // The operator console (issue 18).
        .route("/console", get(console::redirect))
        .route("/console/", get(console::index))
        .route("/console/{file}", get(console::asset))
        // Records: contacts, accounts, activities, leads.
        .route(
            "/api/v1/contacts",
            get(records::list_contacts).post(records::create_contact),
        )
        .route(
            "/api/v1/contacts/{id}",
            get(records::get_contact)
                .patch(records::patch_contact)
                .delete(records::delete_contact),
        )
        .route(
            "/api/v1/accounts",
            get(records::list_accounts).post(records::create_account),
        )
        .route(
            "/api/v1/accounts/{id}",
            get(records::get_account)
                .patch(records::patch_account)
                .delete(records::delete_account),
        )
        .route(
            "/api/v1/activities",
            get(activities::list_activities).post(activities::create_activity),
        )
        .route(
            "/api/v1/activities/{id}",
            get(activities::get_activity)
                .patch(activities::patch_activity)
                .delete(activities::delete_activity),
        )
        .route("/api/v1/leads", get(records::list_leads))
        .route("/api/v1/leads/{id}", get(records::get_lead))
        // LinkedIn lead generation (issue 16).
        .route(
            "/webhooks/linkedin",
            get(leads::linkedin_challenge).post(leads::linkedin_inbound),
        )
        .route(
            "/api/v1/lead-integrations/{name}/log",
            get(leads::integration_log),
        )
        .route(
            "/api/v1/lead-integrations/{name}/backfill",
            post(leads::backfill),
        )
        .route(
            "/api/v1/lead-integrations/{name}/backfills/{id}",
            get(leads::backfill_status),
        )
        .fallback(not_found)
        .layer(middleware::from_fn(error::json_errors))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

/// Serves `router(state)` on `listener` within the limits of `Settings.http` (read once, at
/// start) until `shutdown` fires; then requests in a handler finish and the rest are dropped
/// (see [`server`]).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limits = state
        .engine
        .config()
        .settings()
        .map(|s| server::Limits::from(&s.http))
        .unwrap_or_default();
    let connections = server::ConnectionMetrics {
        open: state.metrics.http_connections.clone(),
        refused: state.metrics.http_connections_refused_total.clone(),
    };
    server::serve(listener, router(state), limits, connections, shutdown).await
}

async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED.to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state
        .metrics
        .http_requests_total
        .with_label_values(&[&route, response.status().as_str()])
        .inc();
    response
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.engine.is_ready() {
        "ready".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the configuration is not applied yet",
        )
            .into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, Metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}
