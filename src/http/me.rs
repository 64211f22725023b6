//! `GET /api/v1/me` and `GET /api/v1/chat-actions`: what a console needs to know about its
//! caller — name, rights, status, queues — and the chat actions it may run.

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use crate::config::kinds::{Operation, UserSpec};

use super::AppState;
use super::api::{List, Page, page_bounds};
use super::auth::Caller;
use super::error::ApiError;

/// The caller, as SPEC shapes it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeDto {
    name: String,
    display_name: String,
    email: String,
    /// The operations the caller holds, directly or through a role (`CanManageChats`, ...).
    rights: Vec<&'static str>,
    /// `active` or `inactive` (inactive when never set, and for a user in no queue).
    status: &'static str,
    /// The queues the caller operates in, sorted.
    queues: Vec<String>,
}

/// `GET /api/v1/me`: the caller, however it signed in (an API token or the identity server).
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<MeDto>, ApiError> {
    let config = state.engine.config();
    let user = config.get::<UserSpec>(&caller.user);
    let snapshot = state.chat.snapshot().await;
    let name = caller.user.clone();
    let mut loads = state
        .chat
        .store()
        .call(move |s| s.chat_operators(&[name]))
        .await
        .map_err(ApiError::store)?;
    let status = loads.pop().map_or("inactive", |load| load.status.as_str());
    Ok(Json(MeDto {
        display_name: user.map_or_else(|| caller.user.clone(), |u| u.display_name.clone()),
        email: user
            .map(|u| u.email.as_str().to_owned())
            .unwrap_or_default(),
        rights: caller.operations.iter().map(|o| o.as_str()).collect(),
        status,
        queues: snapshot.queues_of(&caller.user),
        name: caller.user,
    }))
}

/// `?queue=` of `GET /api/v1/chat-actions`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ActionQuery {
    queue: Option<String>,
}

/// A chat action the caller may run.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ChatActionDto {
    name: String,
    title: String,
    queue: String,
}

/// `GET /api/v1/chat-actions?queue=`: the actions bound to the caller's queues (every queue's
/// for `CanManageChats`), by name.
pub async fn chat_actions(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<Page>,
    Query(query): Query<ActionQuery>,
) -> Result<Json<List<ChatActionDto>>, ApiError> {
    let (offset, limit) = page_bounds(&page)?;
    let snapshot = state.chat.snapshot().await;
    let everything = caller.operations.contains(&Operation::CanManageChats);
    let mine = snapshot.queues_of(&caller.user);
    let all: Vec<ChatActionDto> = snapshot
        .actions
        .iter()
        .filter(|(_, a)| everything || mine.contains(&a.queue))
        .filter(|(_, a)| query.queue.as_deref().is_none_or(|q| q == a.queue))
        .map(|(name, a)| ChatActionDto {
            name: name.clone(),
            title: a.title.clone(),
            queue: a.queue.clone(),
        })
        .collect();
    let total = all.len();
    let items = all.into_iter().skip(offset).take(limit).collect();
    Ok(Json(List::page(items, total, offset)))
}
