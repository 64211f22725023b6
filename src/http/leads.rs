//! LinkedIn lead generation over HTTP: the lead webhook (`POST /webhooks/linkedin`), its
//! validation challenge (`GET /webhooks/linkedin?challengeCode=`) and an integration's log
//! (`GET /api/v1/lead-integrations/{name}/log`, LI-08).
//!
//! The webhook checks `X-LI-Signature` against `Settings.linkedin.clientSecret` before it
//! parses or stores anything, finds the `LeadIntegration` of the notification's ad account,
//! stores the notification durably (once per form response) and only then answers 200; the
//! integration's connector makes the lead (see [`crate::leads`]). Notifications for unknown
//! ad accounts, inactive integrations or inactive forms are acknowledged and not stored.
//! Every request is counted in `switchboard_webhook_requests_total{provider="linkedin",outcome}`.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::config::Kind;
use crate::config::kinds::{LeadIntegrationSpec, SettingsSpec};
use crate::config::types::Secret;
use crate::leads::{api, form_active};

use super::error::ApiError;
use super::webhooks::read_body;
use super::{AppState, Caller};

/// The largest notification body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// The LinkedIn app's client secret as applied, if the config has one.
fn client_secret(state: &AppState) -> Option<Secret> {
    let (config, secrets) = state.engine.applied();
    let (settings, _) = config
        .specs::<SettingsSpec>()
        .find(|(_, s)| s.linkedin.is_some())?;
    secrets
        .get(&(Kind::Settings, settings.name.clone()))?
        .as_ref()
        .ok()?
        .get("/linkedin/clientSecret")
        .cloned()
}

fn count(state: &AppState, outcome: &str) {
    state
        .metrics
        .webhook_requests_total
        .with_label_values(&["linkedin", outcome])
        .inc();
}

/// The validation answer.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeDto {
    challenge_code: String,
    challenge_response: String,
}

/// `GET /webhooks/linkedin?challengeCode=...`: `{"challengeCode", "challengeResponse"}` with
/// the hex HMAC-SHA256 of the code under the client secret; 404 without a LinkedIn app.
pub async fn linkedin_challenge(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(secret) = client_secret(&state) else {
        count(&state, "unknown");
        return ApiError::not_found("no LinkedIn app is configured (Settings.linkedin)")
            .into_response();
    };
    let Some(code) = query.get("challengeCode") else {
        count(&state, "invalid");
        return ApiError::bad_request("the challengeCode parameter is missing").into_response();
    };
    count(&state, "verified");
    Json(ChallengeDto {
        challenge_response: api::challenge_response(secret.expose(), code),
        challenge_code: code.clone(),
    })
    .into_response()
}

/// What the webhook did with a notification.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceivedDto {
    outcome: &'static str,
}

/// `POST /webhooks/linkedin` (LI-05): 401 without `X-LI-Signature`, 403 when it does not
/// match (nothing parsed or stored), 413/400 for oversized or malformed bodies, 200 once the
/// notification is stored (`accepted`, or `duplicate` for one already stored) or deliberately
/// ignored (`ignored`: unknown ad account, inactive integration or form, not `CREATED`).
pub async fn linkedin_inbound(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (outcome, result) = receive(&state, &headers, body).await;
    count(&state, outcome);
    match result {
        Ok(()) => Json(ReceivedDto { outcome }).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn receive(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> (&'static str, Result<(), ApiError>) {
    let Some(signature) = headers
        .get(api::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return (
            "unauthorized",
            Err(ApiError::unauthorized(
                "the X-LI-Signature header is missing",
            )),
        );
    };
    let Some(secret) = client_secret(state) else {
        return (
            "unknown",
            Err(ApiError::not_found(
                "no LinkedIn app is configured (Settings.linkedin)",
            )),
        );
    };
    let bytes = match read_body(headers, body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(e) => return ("invalid", Err(e)),
    };
    if !api::signature_matches(secret.expose(), &bytes, &signature) {
        return (
            "forbidden",
            Err(ApiError::forbidden(
                "X-LI-Signature does not match the LinkedIn app's client secret",
            )),
        );
    }
    let notification: api::Notification = match serde_json::from_slice(&bytes) {
        Ok(n) => n,
        Err(e) => {
            return (
                "invalid",
                Err(ApiError::bad_request(format!(
                    "not a LinkedIn lead notification: {e}"
                ))),
            );
        }
    };
    if notification
        .lead_action
        .as_deref()
        .is_some_and(|a| a != "CREATED")
    {
        return ("ignored", Ok(()));
    }
    let config = state.engine.config();
    let Some((integration, spec)) = config
        .specs::<LeadIntegrationSpec>()
        .find(|(_, s)| Some(s.ad_account_id.as_str()) == notification.ad_account())
        .map(|(o, s)| (o.name.clone(), s.clone()))
    else {
        return ("ignored", Ok(()));
    };
    let form = notification.form_id();
    if !spec.active || form.as_deref().is_some_and(|f| !form_active(&spec, f)) {
        return ("ignored", Ok(()));
    }
    let body = String::from_utf8_lossy(&bytes).into_owned();
    let response = notification.lead_gen_form_response.clone();
    let at = chrono::Utc::now();
    let stored = {
        let integration = integration.clone();
        state
            .engine
            .store()
            .call(move |s| {
                s.record_linkedin_notification(&integration, &response, form.as_deref(), &body, at)
            })
            .await
    };
    match stored {
        Ok(new) => {
            if let Err(e) = state
                .engine
                .request_sync(Kind::LeadIntegration, &integration)
            {
                // Stored: the next sweep makes the lead.
                tracing::warn!(%integration, error = ?e, "lead notification stored, run not requested");
            }
            (if new { "accepted" } else { "duplicate" }, Ok(()))
        }
        Err(e) => ("error", Err(ApiError::store(e))),
    }
}

/// The integrations whose `notifyRole` `caller` holds: the `lead.created` events they get.
pub fn notified_integrations(state: &AppState, caller: &Caller) -> Vec<String> {
    let config = state.engine.config();
    let roles: Vec<String> = config
        .specs::<crate::config::kinds::UserSpec>()
        .find(|(o, _)| o.name == caller.user)
        .map(|(_, u)| u.roles.clone())
        .unwrap_or_default();
    config
        .specs::<LeadIntegrationSpec>()
        .filter(|(_, l)| l.notify_role.as_ref().is_some_and(|r| roles.contains(r)))
        .map(|(o, _)| o.name.clone())
        .collect()
}

/// One entry of an integration's log.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogEntryDto {
    id: String,
    at: String,
    event: String,
    message: String,
    lead_id: Option<String>,
}

/// `{"items": [...]}`, newest first.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LogDto {
    items: Vec<LogEntryDto>,
}

/// `GET /api/v1/lead-integrations/{name}/log` (LI-08): the last 200 entries, newest first,
/// for administrators and the members of the integration's `notifyRole`; 404 otherwise and
/// for no such integration.
pub async fn integration_log(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<LogDto>, ApiError> {
    let known = state
        .engine
        .config()
        .get::<LeadIntegrationSpec>(&name)
        .is_some();
    let allowed = super::records::lead_integrations(&state, &caller)
        .is_none_or(|names| names.contains(&name));
    if !known || !allowed {
        return Err(ApiError::not_found(format!("no LeadIntegration {name}")));
    }
    let entries = state
        .engine
        .store()
        .call(move |s| s.lead_log(&name, 200))
        .await
        .map_err(ApiError::store)?;
    Ok(Json(LogDto {
        items: entries
            .into_iter()
            .map(|e| LogEntryDto {
                id: e.id.to_string(),
                at: e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                event: e.event,
                message: e.message,
                lead_id: e.lead_id.map(|id| id.to_string()),
            })
            .collect(),
    }))
}

/// A backfill as the API shows it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackfillDto {
    id: String,
    integration: String,
    form: Option<String>,
    since: String,
    until: String,
    /// `queued` | `done` | `failed`.
    state: &'static str,
    fetched: i64,
    created: i64,
    known: i64,
    skipped: i64,
    error: Option<String>,
}

impl From<crate::store::leads::LeadBackfill> for BackfillDto {
    fn from(b: crate::store::leads::LeadBackfill) -> BackfillDto {
        let ts =
            |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        BackfillDto {
            id: b.id.to_string(),
            state: match (&b.finished_at, &b.error) {
                (None, _) => "queued",
                (Some(_), None) => "done",
                (Some(_), Some(_)) => "failed",
            },
            integration: b.integration,
            form: b.form,
            since: ts(b.since),
            until: ts(b.until),
            fetched: b.fetched,
            created: b.created,
            known: b.known,
            skipped: b.skipped,
            error: b.error,
        }
    }
}

/// The body of a backfill request (`since` and `until`: `YYYY-MM-DD` or RFC 3339).
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    since: String,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    form: Option<String>,
}

/// `POST /api/v1/lead-integrations/{name}/backfill` (LI-06; `CanManageAdministration`):
/// stores the backfill and asks the integration to run; 202 with the backfill. 404 for no
/// such integration, 409 when it or the form is inactive, 422 for a period LinkedIn cannot
/// serve (more than 90 days back, empty).
pub async fn backfill(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(axum::http::StatusCode, Json<BackfillDto>), ApiError> {
    caller.require(crate::config::kinds::Operation::CanManageAdministration)?;
    let fields = super::records::body_object(&headers, &body, false)?;
    let request: BackfillRequest = serde_json::from_value(serde_json::Value::Object(fields))
        .map_err(|e| ApiError::unprocessable(format!("not a backfill request: {e}")))?;
    let spec = state
        .engine
        .config()
        .get::<LeadIntegrationSpec>(&name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no LeadIntegration {name}")))?;
    if let Some(why) = crate::leads::backfill_refusal(&name, &spec, request.form.as_deref()) {
        return Err(ApiError::conflict("inactive", why));
    }
    let (since, until) =
        crate::leads::backfill_period(&request.since, request.until.as_deref(), chrono::Utc::now())
            .map_err(ApiError::unprocessable)?;
    let stored = {
        let name = name.clone();
        state
            .engine
            .store()
            .call(move |s| {
                s.request_lead_backfill(
                    &name,
                    request.form.as_deref(),
                    since,
                    until,
                    chrono::Utc::now(),
                )
            })
            .await
            .map_err(ApiError::store)?
    };
    if let Err(e) = state.engine.request_sync(Kind::LeadIntegration, &name) {
        // Stored: the integration's next sweep runs it.
        tracing::warn!(integration = %name, error = ?e, "backfill stored, run not requested");
    }
    Ok((axum::http::StatusCode::ACCEPTED, Json(stored.into())))
}

/// `GET /api/v1/lead-integrations/{name}/backfills/{id}`: the backfill with its counts so far
/// (`CanManageAdministration`).
pub async fn backfill_status(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<BackfillDto>, ApiError> {
    caller.require(crate::config::kinds::Operation::CanManageAdministration)?;
    let missing = || ApiError::not_found(format!("no backfill {id} of LeadIntegration {name}"));
    let number: i64 = id.parse().map_err(|_| missing())?;
    let found = state
        .engine
        .store()
        .call(move |s| s.lead_backfill(number))
        .await
        .map_err(ApiError::store)?
        .filter(|b| b.integration == name)
        .ok_or_else(missing)?;
    Ok(Json(found.into()))
}
