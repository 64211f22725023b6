//! `GET /api/v1/emails`: stored e-mail the caller may read (MB-04), with SPEC's shape, filters
//! (`mailbox`, `folder`, `messageId`) and paging (`limit`, opaque `cursor`).
//!
//! `POST /api/v1/emails`: send (MB-03). The message is composed, stored (direction `out`) and
//! queued in the durable outbox in one transaction, and the answer is 202 with the stored
//! e-mail; the mailbox's connector delivers it (asked to run at once), retrying temporary
//! failures, so a crash between the answer and the delivery loses nothing.
//!
//! Rights come from [`crate::mail::access`]; rows from the store's mail API. Paging is keyset
//! (newest stored first, the cursor is the last id seen), so mail arriving between two pages
//! neither repeats nor skips an item.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};

use crate::config::Kind;
use crate::mail::access;
use crate::mail::mailbox::{SendRefusal, sender};
use crate::mail::smtp::{SENT_FOLDER, compose};
use crate::store::mail::{EmailQuery, EmailRecord};

use super::AppState;
use super::api::{DEFAULT_LIMIT, MAX_LIMIT};
use super::auth::Caller;
use super::error::ApiError;

/// The query string of `GET /api/v1/emails`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmailsQuery {
    /// How many e-mails at most (1 to 1000, 100 when absent).
    #[schemars(range(min = 1, max = 1000))]
    limit: Option<usize>,
    /// The `nextCursor` of the previous page.
    #[schemars(regex(pattern = r"^[0-9]+$"))]
    cursor: Option<String>,
    mailbox: Option<String>,
    folder: Option<String>,
    message_id: Option<String>,
}

/// An attachment's metadata.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentDto {
    name: Option<String>,
    content_type: String,
    size: u64,
}

/// An e-mail, as SPEC gives it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailDto {
    id: String,
    mailbox: String,
    folder: String,
    message_id: Option<String>,
    direction: &'static str,
    from: Option<String>,
    to: Vec<String>,
    cc: Vec<String>,
    subject: Option<String>,
    date: Option<String>,
    text: Option<String>,
    html: Option<String>,
    attachments: Vec<AttachmentDto>,
    contact_ids: Vec<String>,
    /// Sent mail only: where its delivery stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery: Option<DeliveryDto>,
    /// Only when the server reported it removed from its folder: it is kept as history.
    #[serde(skip_serializing_if = "Option::is_none")]
    removed: Option<RemovedDto>,
}

/// When and why the server reported an e-mail removed from its folder.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RemovedDto {
    at: String,
    reason: String,
}

/// The delivery of a sent e-mail.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDto {
    state: String,
    attempts: i64,
    last_error: Option<String>,
}

impl From<EmailRecord> for EmailDto {
    fn from(e: EmailRecord) -> Self {
        EmailDto {
            id: e.id.to_string(),
            mailbox: e.mailbox,
            folder: e.folder,
            message_id: e.message_id,
            direction: e.direction.as_str(),
            from: e.from.map(|f| f.address),
            to: e.to.into_iter().map(|a| a.address).collect(),
            cc: e.cc.into_iter().map(|a| a.address).collect(),
            subject: e.subject,
            date: e
                .date
                .map(|d| d.to_rfc3339_opts(SecondsFormat::Millis, true)),
            text: e.text,
            html: e.html,
            attachments: e
                .attachments
                .into_iter()
                .map(|a| AttachmentDto {
                    name: a.name,
                    content_type: a.content_type,
                    size: a.size,
                })
                .collect(),
            contact_ids: e.contact_ids.iter().map(i64::to_string).collect(),
            delivery: e.delivery.map(|d| DeliveryDto {
                state: d.state,
                attempts: d.attempts,
                last_error: d.last_error,
            }),
            removed: e.removed.map(|r| RemovedDto {
                at: r.at.to_rfc3339_opts(SecondsFormat::Millis, true),
                reason: r.reason,
            }),
        }
    }
}

/// The list answer.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailList {
    items: Vec<EmailDto>,
    total: i64,
    next_cursor: Option<String>,
}

/// `GET /api/v1/emails`.
pub async fn list_emails(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<EmailsQuery>,
) -> Result<Json<EmailList>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let before = match &q.cursor {
        None => None,
        Some(c) => Some(c.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
            ApiError::bad_request("invalid cursor; pass back a nextCursor value")
        })?),
    };
    let readable = access::readable(&state.engine.config(), &caller.user);
    if let Some(mailbox) = &q.mailbox
        && !readable.contains(mailbox)
    {
        return Err(ApiError::forbidden(format!(
            "user {} may not read mailbox {mailbox}",
            caller.user
        )));
    }
    let query = EmailQuery {
        mailboxes: Some(readable),
        mailbox: q.mailbox,
        folder: q.folder,
        message_id: q.message_id,
        id: None,
        before,
        limit,
    };
    let page = state
        .engine
        .store()
        .call(move |s| s.emails(&query))
        .await
        .map_err(ApiError::store)?;
    Ok(Json(EmailList {
        items: page.items.into_iter().map(EmailDto::from).collect(),
        total: page.total,
        next_cursor: page.next_before.map(|id| id.to_string()),
    }))
}

/// The body of `POST /api/v1/emails`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendRequest {
    mailbox: Option<String>,
    to: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    subject: String,
    text: Option<String>,
    html: Option<String>,
}

/// `POST /api/v1/emails`.
pub async fn send_email(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<EmailDto>), ApiError> {
    let request: SendRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;
    let (mailbox, mut draft) = sender(
        &state.engine.config(),
        &caller.user,
        request.mailbox.as_deref(),
    )
    .map_err(|refusal| match refusal {
        SendRefusal::Unknown(_) => ApiError::not_found(refusal.to_string()),
        SendRefusal::Forbidden { .. } => ApiError::forbidden(refusal.to_string()),
        SendRefusal::Unprocessable(_) => ApiError::unprocessable(refusal.to_string()),
    })?;
    draft.to = request.to;
    draft.cc = request.cc;
    draft.subject = request.subject;
    draft.text = request.text;
    draft.html = request.html;
    let now = chrono::Utc::now();
    let composed = compose(&draft, now).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let name = mailbox.clone();
    let id = state
        .engine
        .store()
        .call(move |s| s.enqueue_mail(&name, SENT_FOLDER, &composed.email, &composed.outgoing, now))
        .await
        .map_err(ApiError::store)?;
    // Deliver now. When the mailbox cannot run (its secret is missing, say), the message stays
    // queued and its state says so; the request itself was accepted.
    if let Err(e) = state.engine.request_sync(Kind::Mailbox, &mailbox) {
        tracing::warn!(%mailbox, error = ?e, "a sent message waits: the mailbox cannot run now");
    }
    let page = state
        .engine
        .store()
        .call(move |s| {
            s.emails(&EmailQuery {
                id: Some(id),
                limit: 1,
                ..EmailQuery::default()
            })
        })
        .await
        .map_err(ApiError::store)?;
    let email =
        page.items.into_iter().next().ok_or_else(|| {
            ApiError::internal(format!("e-mail {id} vanished after it was stored"))
        })?;
    Ok((StatusCode::ACCEPTED, Json(EmailDto::from(email))))
}
