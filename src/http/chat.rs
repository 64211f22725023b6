//! The operator API of the chat engine and its DTOs: chats, operators, quick replies and the
//! per-operator event stream (SSE).
//!
//! Rights (CH-01): an operator sees the chats offered to them, their own, and every chat of
//! the queues they operate in; a holder of `CanManageChats` sees and may complete every chat.
//! A chat the caller may not see is answered 404, as if it did not exist.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use crate::chat::{ChatError, ChatEvent, EventKind};
use crate::config::kinds::{Operation, QuickReplySpec, UserSpec};
use crate::store::chat::{
    ActionRunRow, CaseRow, ChatFilter, ChatRow, ChatState, MessageRow, OperatorStatus,
};

use super::AppState;
use super::api::{List, Page, page_bounds, ts};
use super::auth::Caller;
use super::error::ApiError;

/// The longest operator message.
pub const MAX_TEXT: usize = 16 * 1024;

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> ApiError {
        match e {
            ChatError::NotFound(m) => ApiError::not_found(m),
            ChatError::Forbidden(m) => ApiError::forbidden(m),
            ChatError::Conflict { code, message } => ApiError::conflict(code, message),
            ChatError::Unavailable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m)
            }
            ChatError::StorageFull(m) => ApiError::storage_full(m),
            ChatError::Store(e) => ApiError::store(e),
        }
    }
}

/// A chat, as SPEC shapes it. `messages` and `offeredTo` are left out of events (read the
/// chat for them).
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatDto {
    id: String,
    channel: String,
    queue: String,
    /// The language of the chat's channel (BCP 47); left out of events.
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<String>,
    state: &'static str,
    operator: Option<String>,
    /// The users the chat is offered to now; empty unless it is offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    offered_to: Option<Vec<String>>,
    contact: ContactDto,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<MessageDto>>,
    /// How many messages the chat has in all; `messages` is one page of them (the list: the
    /// newest [`LIST_MESSAGES`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    messages_total: Option<usize>,
    /// `GET /api/v1/chats/{id}` only: the `cursor` of the next page of messages, or null.
    #[serde(skip_serializing_if = "Option::is_none")]
    messages_next_cursor: Option<Option<String>>,
    /// The chat actions run on it and their outcomes (CH-07); only with the messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    actions: Option<Vec<ActionRunDto>>,
}

/// One run of a chat action: `state` is `pending` (a webhook being delivered), `done` or
/// `failed` (given up; `lastError` says why).
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionRunDto {
    id: String,
    action: String,
    kind: &'static str,
    operator: String,
    state: String,
    attempts: u32,
    last_error: Option<String>,
    case_id: Option<String>,
    at: String,
    finished_at: Option<String>,
}

impl From<ActionRunRow> for ActionRunDto {
    fn from(r: ActionRunRow) -> ActionRunDto {
        ActionRunDto {
            id: r.id.to_string(),
            action: r.action,
            kind: r.kind.as_str(),
            operator: r.operator,
            state: r.state,
            attempts: r.attempts,
            last_error: r.last_error,
            case_id: r.case_id.map(|id| id.to_string()),
            at: ts(r.created_at),
            finished_at: r.finished_at.map(ts),
        }
    }
}

/// A case created from a chat (CH-07).
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaseDto {
    id: String,
    title: String,
    chat_id: String,
    contact: ContactDto,
    queue: String,
    created_by: String,
    created_at: String,
}

impl From<CaseRow> for CaseDto {
    fn from(c: CaseRow) -> CaseDto {
        CaseDto {
            id: c.id.to_string(),
            title: c.title,
            chat_id: c.chat_id.to_string(),
            contact: ContactDto {
                id: c.contact_id.to_string(),
                name: c.contact_name,
            },
            queue: c.queue,
            created_by: c.created_by,
            created_at: ts(c.created_at),
        }
    }
}

/// A chat's contact.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(rename = "ChatContactDto")]
pub struct ContactDto {
    id: String,
    name: String,
}

/// One message.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct MessageDto {
    id: String,
    direction: &'static str,
    text: String,
    at: String,
}

impl ChatDto {
    fn new(chat: ChatRow, messages: Option<Vec<MessageRow>>) -> ChatDto {
        ChatDto {
            id: chat.id.to_string(),
            channel: chat.channel,
            queue: chat.queue,
            language: None,
            state: chat.state.as_str(),
            operator: chat.operator,
            offered_to: None,
            contact: ContactDto {
                id: chat.contact_id.to_string(),
                name: chat.contact_name,
            },
            created_at: ts(chat.created_at),
            messages: messages.map(|m| m.into_iter().map(MessageDto::from).collect()),
            messages_total: None,
            messages_next_cursor: None,
            actions: None,
        }
    }

    /// With `offeredTo`: `offers` while the chat is offered, otherwise empty.
    fn offered_to(mut self, offers: Vec<String>) -> ChatDto {
        self.offered_to = Some(if self.state == ChatState::Offered.as_str() {
            offers
        } else {
            Vec::new()
        });
        self
    }

    /// With `language`: the language of the chat's channel in `snapshot`.
    fn in_language(mut self, snapshot: &crate::chat::snapshot::Snapshot) -> ChatDto {
        self.language = snapshot
            .channels
            .get(&self.channel)
            .map(|c| c.spec.language.as_str().to_owned());
        self
    }
}

impl From<MessageRow> for MessageDto {
    fn from(m: MessageRow) -> MessageDto {
        MessageDto {
            id: m.id.to_string(),
            direction: m.direction.as_str(),
            text: m.text,
            at: ts(m.at),
        }
    }
}

fn supervisor(caller: &Caller) -> bool {
    caller.operations.contains(&Operation::CanManageChats)
}

fn chat_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| no_chat(id))
}

/// `?state=&queue=` of `GET /api/v1/chats`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ChatQuery {
    #[schemars(extend("enum" = ["offered", "active", "completed"]))]
    state: Option<String>,
    queue: Option<String>,
}

/// How many messages `GET /api/v1/chats` embeds per chat: the newest, enough for a queue view
/// to show what the visitor said last. The rest is paged through `GET /api/v1/chats/{id}`; a
/// list of long chats must not answer with every message of every chat on the page.
pub const LIST_MESSAGES: usize = 20;

/// `GET /api/v1/chats`: the chats the caller may see, oldest first, each with its newest
/// [`LIST_MESSAGES`] messages (oldest first) and `messagesTotal`.
pub async fn list_chats(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<Page>,
    Query(query): Query<ChatQuery>,
) -> Result<Json<List<ChatDto>>, ApiError> {
    let (offset, limit) = page_bounds(&page)?;
    let wanted = query
        .state
        .as_deref()
        .map(|s| {
            ChatState::parse(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown state {s:?}; use offered, active or completed"
                ))
            })
        })
        .transpose()?;
    let snapshot = state.chat.snapshot().await;
    let filter = ChatFilter {
        state: wanted,
        queue: query.queue,
        viewer: snapshot.viewer(&caller.user, supervisor(&caller)),
    };
    let chats = state
        .chat
        .store()
        .call(move |s| {
            let (chats, total) = s.chats(&filter, offset, limit)?;
            let ids: Vec<i64> = chats.iter().map(|c| c.id).collect();
            let messages = s.chat_latest_messages(&ids, LIST_MESSAGES)?;
            let offers = s.chat_offers_of(&ids)?;
            Ok((chats, total, messages, offers))
        })
        .await
        .map_err(ApiError::store)?;
    let (chats, total, (messages, mut totals), offers) = (chats.0, chats.1, chats.2, chats.3);
    let mut by_chat: BTreeMap<i64, Vec<MessageRow>> = BTreeMap::new();
    for m in messages {
        by_chat.entry(m.chat_id).or_default().push(m);
    }
    let mut offered: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for o in offers {
        offered.entry(o.chat_id).or_default().push(o.operator);
    }
    let items = chats
        .into_iter()
        .map(|c| {
            let messages = by_chat.remove(&c.id).unwrap_or_default();
            let offers = offered.remove(&c.id).unwrap_or_default();
            let messages_total = totals.remove(&c.id).unwrap_or(0);
            let mut chat = ChatDto::new(c, Some(messages))
                .offered_to(offers)
                .in_language(&snapshot);
            chat.messages_total = Some(messages_total);
            chat
        })
        .collect();
    Ok(Json(List::page(items, total, offset)))
}

/// `GET /api/v1/chats/{id}?limit=&cursor=`: the chat with one page of its messages, oldest
/// first (CH-11); `messagesTotal` and `messagesNextCursor` tell the rest.
pub async fn get_chat(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<ChatDto>, ApiError> {
    let id = chat_id(&id)?;
    let bounds = page_bounds(&page)?;
    Ok(Json(read_visible(&state, &caller, id, bounds).await?))
}

/// Whether `caller` may see `chat`, offered to `offered` (CH-01).
fn may_see(
    snapshot: &crate::chat::snapshot::Snapshot,
    caller: &Caller,
    chat: &ChatRow,
    offered: &[String],
) -> bool {
    supervisor(caller)
        || chat.operator.as_deref() == Some(caller.user.as_str())
        || offered.contains(&caller.user)
        || snapshot.queues_of(&caller.user).contains(&chat.queue)
}

/// The chat and who it is offered to, or 404 — the same 404 as for a chat that does not
/// exist — when the caller may not see it. Every chat endpoint asks this first, so neither a
/// chat's existence nor its state can be probed.
async fn visible(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<(ChatRow, Vec<String>), ApiError> {
    let snapshot = state.chat.snapshot().await;
    let found = state
        .chat
        .store()
        .call(move |s| {
            let Some(chat) = s.chat(id)? else {
                return Ok(None);
            };
            let offered: Vec<String> = s.chat_offers(id)?.into_iter().map(|o| o.operator).collect();
            Ok(Some((chat, offered)))
        })
        .await
        .map_err(ApiError::store)?;
    match found {
        Some((chat, offered)) if may_see(&snapshot, caller, &chat, &offered) => Ok((chat, offered)),
        _ => Err(no_chat(id)),
    }
}

fn no_chat(id: impl std::fmt::Display) -> ApiError {
    ApiError::not_found(format!("no chat {id}"))
}

/// The chat with one page (`(offset, limit)`) of its messages, or 404 when the caller may not
/// see it.
async fn read_visible(
    state: &AppState,
    caller: &Caller,
    id: i64,
    (offset, limit): (usize, usize),
) -> Result<ChatDto, ApiError> {
    let (chat, offered) = visible(state, caller, id).await?;
    let (messages, total, runs) = state
        .chat
        .store()
        .call(move |s| {
            let (messages, total) = s.chat_message_page(id, offset, limit)?;
            Ok((messages, total, s.chat_action_runs(id)?))
        })
        .await
        .map_err(ApiError::store)?;
    let end = offset.saturating_add(messages.len());
    let snapshot = state.chat.snapshot().await;
    let mut dto = ChatDto::new(chat, Some(messages))
        .offered_to(offered)
        .in_language(&snapshot);
    dto.messages_total = Some(total);
    dto.messages_next_cursor = Some((end < total).then(|| end.to_string()));
    dto.actions = Some(runs.into_iter().map(ActionRunDto::from).collect());
    Ok(dto)
}

/// The first page of messages, for the answers of accept and complete.
const FIRST_PAGE: (usize, usize) = (0, super::api::DEFAULT_LIMIT);

/// `POST /api/v1/chats/{id}/actions/{action}` (CH-07): runs an action bound to the chat's
/// queue on a chat the caller may see. Answers 200 with the run when it is done (`createCase`,
/// with its `caseId`), 202 when a webhook run is queued; its outcome shows in the chat's
/// `actions`.
pub async fn run_action(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
) -> Result<(StatusCode, Json<ActionRunDto>), ApiError> {
    let id = chat_id(&id)?;
    visible(&state, &caller, id).await?;
    let run = state.chat.run_action(&caller.user, id, &action).await?;
    let status = if run.state == "pending" {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(ActionRunDto::from(run))))
}

/// The largest notification sound served.
pub const MAX_SOUND: u64 = 16 * 1024 * 1024;

/// The content type of a sound file, by its extension.
fn sound_type(path: &std::path::Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("mp3") => "audio/mpeg",
        Some("ogg" | "oga" | "opus") => "audio/ogg",
        Some("wav") => "audio/wav",
        _ => "application/octet-stream",
    }
}

/// `GET /api/v1/notification-sound` (CH-08): the file of `Settings.chat.notificationSound`
/// for operator clients to play on a new chat; 404 when none is set.
pub async fn notification_sound(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let snapshot = state.chat.snapshot().await;
    let Some(path) = snapshot.notification_sound.clone() else {
        return Err(ApiError::not_found(
            "no notification sound is configured (Settings.chat.notificationSound)",
        ));
    };
    let unreadable = |e: std::io::Error| {
        tracing::warn!(path = %path.display(), error = %e, "the notification sound cannot be read");
        ApiError::not_found(
            "the configured notification sound cannot be read; see the daemon's log",
        )
    };
    let size = tokio::fs::metadata(&path).await.map_err(unreadable)?.len();
    if size > MAX_SOUND {
        return Err(ApiError::internal(format!(
            "the notification sound {} is larger than {MAX_SOUND} bytes",
            path.display()
        )));
    }
    let bytes = tokio::fs::read(&path).await.map_err(unreadable)?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, sound_type(&path)),
            (axum::http::header::CACHE_CONTROL, "private, max-age=300"),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /api/v1/cases`: the cases created from chats the caller may see, oldest first.
pub async fn list_cases(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<List<CaseDto>>, ApiError> {
    let (offset, limit) = page_bounds(&page)?;
    let viewer = state
        .chat
        .snapshot()
        .await
        .viewer(&caller.user, supervisor(&caller));
    let (cases, total) = state
        .chat
        .store()
        .call(move |s| s.chat_cases(viewer.as_ref(), offset, limit))
        .await
        .map_err(ApiError::store)?;
    let items = cases.into_iter().map(CaseDto::from).collect();
    Ok(Json(List::page(items, total, offset)))
}

/// `POST /api/v1/chats/{id}/accept`: 409 `chat-taken` when another operator was first.
pub async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ChatDto>, ApiError> {
    let id = chat_id(&id)?;
    visible(&state, &caller, id).await?;
    state.chat.accept(&caller.user, id).await?;
    Ok(Json(read_visible(&state, &caller, id, FIRST_PAGE).await?))
}

/// `POST /api/v1/chats/{id}/complete`.
pub async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ChatDto>, ApiError> {
    let id = chat_id(&id)?;
    visible(&state, &caller, id).await?;
    state
        .chat
        .complete(&caller.user, id, supervisor(&caller))
        .await?;
    Ok(Json(read_visible(&state, &caller, id, FIRST_PAGE).await?))
}

/// `{"text": "..."}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessageDto {
    /// Not blank; at most 16 KiB.
    #[schemars(regex(pattern = r"\S"))]
    text: String,
}

/// `POST /api/v1/chats/{id}/messages`: stores the message and queues it for the channel;
/// answers 202 with the stored message (delivery follows, retried from the outbox).
pub async fn post_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<NewMessageDto>, JsonRejection>,
) -> Result<(StatusCode, Json<MessageDto>), ApiError> {
    let id = chat_id(&id)?;
    visible(&state, &caller, id).await?;
    let Json(body) = body.map_err(ApiError::json_body)?;
    if body.text.trim().is_empty() {
        return Err(ApiError::bad_request("`text` must not be empty"));
    }
    if body.text.len() > MAX_TEXT {
        return Err(ApiError::payload_too_large(format!(
            "`text` is longer than {MAX_TEXT} bytes"
        )));
    }
    let message = state.chat.send(&caller.user, id, &body.text).await?;
    Ok((StatusCode::ACCEPTED, Json(MessageDto::from(message))))
}

/// `{"status": "active" | "inactive"}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusDto {
    #[schemars(extend("enum" = ["active", "inactive"]))]
    status: String,
}

/// An operator with their status and active chats per queue.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperatorDto {
    name: String,
    display_name: String,
    status: &'static str,
    queues: Vec<QueueLoadDto>,
}

/// Active chats of one operator in one queue.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueLoadDto {
    queue: String,
    active_chats: i64,
}

/// `PUT /api/v1/operators/me/status`: answers the caller as an operator.
pub async fn put_status(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<StatusDto>, JsonRejection>,
) -> Result<Json<OperatorDto>, ApiError> {
    let Json(body) = body.map_err(ApiError::json_body)?;
    let status = OperatorStatus::parse(&body.status).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown status {:?}; use active or inactive",
            body.status
        ))
    })?;
    state.chat.set_status(&caller.user, status).await?;
    let mut operators = operators(&state, vec![caller.user.clone()]).await?;
    Ok(Json(operators.remove(0)))
}

/// `GET /api/v1/operators`: every operator of the caller's queues (all, for `CanManageChats`).
pub async fn list_operators(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<List<OperatorDto>>, ApiError> {
    let (offset, limit) = page_bounds(&page)?;
    let snapshot = state.chat.snapshot().await;
    let mine = snapshot.queues_of(&caller.user);
    let names: Vec<String> = if supervisor(&caller) {
        snapshot.operators()
    } else {
        snapshot
            .operators()
            .into_iter()
            .filter(|o| snapshot.queues_of(o).iter().any(|q| mine.contains(q)))
            .collect()
    };
    let total = names.len();
    let names = names.into_iter().skip(offset).take(limit).collect();
    Ok(Json(List::page(
        operators(&state, names).await?,
        total,
        offset,
    )))
}

async fn operators(state: &AppState, names: Vec<String>) -> Result<Vec<OperatorDto>, ApiError> {
    let snapshot = state.chat.snapshot().await;
    let config = state.engine.config();
    let rows = state
        .chat
        .store()
        .call(move |s| {
            let loads = s.chat_operators(&names)?;
            loads
                .into_iter()
                .map(|l| {
                    let active = s.chat_active_by_queue(&l.name)?;
                    Ok((l, active))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(ApiError::store)?;
    Ok(rows
        .into_iter()
        .map(|(load, active)| {
            let active: BTreeMap<String, i64> = active.into_iter().collect();
            OperatorDto {
                display_name: config
                    .get::<UserSpec>(&load.name)
                    .map_or_else(|| load.name.clone(), |u| u.display_name.clone()),
                status: load.status.as_str(),
                queues: snapshot
                    .queues_of(&load.name)
                    .into_iter()
                    .map(|queue| QueueLoadDto {
                        active_chats: active.get(&queue).copied().unwrap_or(0),
                        queue,
                    })
                    .collect(),
                name: load.name,
            }
        })
        .collect())
}

/// `?language=&queue=` of `GET /api/v1/quick-replies`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct QuickReplyQuery {
    language: Option<String>,
    queue: Option<String>,
}

/// A quick reply.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct QuickReplyDto {
    name: String,
    language: String,
    text: String,
    queues: Option<Vec<String>>,
}

/// `GET /api/v1/quick-replies?language=&queue=`: the replies in that language (BCP 47,
/// compared case-insensitively) offered in that queue (a reply without `queues` is offered in
/// all).
pub async fn quick_replies(
    State(state): State<AppState>,
    _caller: Caller,
    Query(page): Query<Page>,
    Query(query): Query<QuickReplyQuery>,
) -> Result<Json<List<QuickReplyDto>>, ApiError> {
    let (offset, limit) = page_bounds(&page)?;
    let config = state.engine.config();
    let all: Vec<QuickReplyDto> = config
        .specs::<QuickReplySpec>()
        .filter(|(_, r)| {
            query
                .language
                .as_deref()
                .is_none_or(|l| r.language.as_str().eq_ignore_ascii_case(l))
        })
        .filter(|(_, r)| {
            query.queue.as_deref().is_none_or(|q| {
                r.queues
                    .as_ref()
                    .is_none_or(|queues| queues.iter().any(|x| x == q))
            })
        })
        .map(|(o, r)| QuickReplyDto {
            name: o.name.clone(),
            language: r.language.as_str().to_owned(),
            text: r.text.clone(),
            queues: r.queues.clone(),
        })
        .collect();
    let total = all.len();
    let items = all.into_iter().skip(offset).take(limit).collect();
    Ok(Json(List::page(items, total, offset)))
}

/// `GET /api/v1/events`: the caller's events as server-sent events (`chat.offered`,
/// `chat.assigned`, `chat.message`, `chat.completed`, `chat.action`, `operator.status`, and
/// `record.changed` from [`super::records::record_events`], `oauth.reauth-needed` for
/// administrators); a
/// `CanManageChats` holder gets every event. A subscriber that falls too far behind is
/// disconnected: it reconnects and re-reads the chats, which are the truth.
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = state.chat.subscribe();
    let stopping = state.chat.stopping();
    let everything = supervisor(&caller);
    let records = super::records::record_events(state.clone(), &caller).await;
    let grants = grant_events(&state, &caller);
    let stream = futures_util::stream::unfold(
        (receiver, stopping, caller.user),
        move |(mut receiver, stopping, user)| async move {
            loop {
                let next = tokio::select! {
                    () = stopping.cancelled() => return None,
                    next = receiver.recv() => next,
                };
                match next {
                    Ok(event) if everything || event.recipients.contains(&user) => {
                        let sse = sse_event(&event);
                        return Some((Ok(sse), (receiver, stopping, user)));
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_) | RecvError::Closed) => return None,
                }
            }
        },
    );
    let others = futures_util::stream::select(records, grants);
    Sse::new(futures_util::stream::select(stream, others)).keep_alive(KeepAlive::default())
}

/// `oauth.reauth-needed` `{"kind", "name"}` for `CanManageAdministration` holders: a grant
/// whose refresh the token endpoint refused (`invalid_grant`), once per grant (BX-04). Nothing
/// for anyone else. Carries no token, secret or provider text.
fn grant_events(
    state: &AppState,
    caller: &Caller,
) -> impl Stream<Item = Result<Event, Infallible>> + use<> {
    let receiver = caller
        .require(Operation::CanManageAdministration)
        .is_ok()
        .then(|| state.metrics.grants.subscribe());
    let stopping = state.chat.stopping();
    futures_util::stream::unfold((receiver, stopping), |(receiver, stopping)| async move {
        let mut receiver = receiver?;
        loop {
            let next = tokio::select! {
                () = stopping.cancelled() => return None,
                next = receiver.recv() => next,
            };
            match next {
                Ok((kind, name)) => {
                    let data = serde_json::json!({ "kind": kind, "name": name });
                    let event = Event::default()
                        .event("oauth.reauth-needed")
                        .data(data.to_string());
                    return Some((Ok(event), (Some(receiver), stopping)));
                }
                // Missed announcements still show in the objects' status.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

/// The SSE form of an event: its SPEC name and a JSON body.
pub fn sse_event(event: &Arc<ChatEvent>) -> Event {
    let data = match &event.kind {
        EventKind::Offered { chat, accept_by } => serde_json::json!({
            "chat": ChatDto::new(chat.clone(), None),
            "acceptBy": accept_by.map(ts),
        }),
        EventKind::Assigned { chat } | EventKind::Completed { chat } => {
            serde_json::json!({ "chat": ChatDto::new(chat.clone(), None) })
        }
        EventKind::Message { chat_id, message } => serde_json::json!({
            "chatId": chat_id.to_string(),
            "message": MessageDto::from(message.clone()),
        }),
        EventKind::Action {
            chat_id,
            run,
            status,
        } => serde_json::json!({
            "chatId": chat_id.to_string(),
            "run": ActionRunDto::from(run.clone()),
            "httpStatus": status,
        }),
        EventKind::OperatorStatus {
            operator,
            status,
            reason,
        } => serde_json::json!({
            "operator": operator,
            "status": status.as_str(),
            "reason": reason,
        }),
    };
    Event::default()
        .event(event.kind.name())
        .data(data.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: CH-08
    #[test]
    fn sound_types_follow_the_file_extension() {
        let t = |p: &str| sound_type(std::path::Path::new(p));
        assert_eq!(t("ding.mp3"), "audio/mpeg");
        assert_eq!(t("ding.MP3"), "audio/mpeg");
        assert_eq!(t("ding.ogg"), "audio/ogg");
        assert_eq!(t("ding.wav"), "audio/wav");
        assert_eq!(t("ding"), "application/octet-stream");
    }
}
