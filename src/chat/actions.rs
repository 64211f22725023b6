//! Chat actions (CH-07): the webhook delivery of an action run.
//!
//! An operator's `POST /api/v1/chats/{id}/actions/{action}` becomes a [`Command::RunAction`]
//! (see `commands.rs`): the built-in `createCase` is done inside that command; a webhook run is
//! stored `pending` and delivered here, by the outbox task, with the outbox's timeout, backoff
//! and `Retry-After` handling. Each attempt is recorded on the run through the writer, so the
//! outcome shows on the chat; when a run ends (delivered, or given up) the writer also sends a
//! `chat.action` event with the receiver's HTTP status to the operators who may see the chat.
//! Delivery is at-least-once: the body carries `runId` for the receiver to deduplicate.
//!
//! The body is `{"chatId", "contactId", "action", "runId", "queue", "operator", "at"}`, signed
//! as the api channel signs callbacks: `X-Switchboard-Signature: sha256=<hex HMAC-SHA256 of the
//! body keyed by the action's secret>`.
//!
//! This module must not write the store: it answers the attempt's outcome, the caller records it.
//!
//! [`Command::RunAction`]: super::Command::RunAction

use serde::Serialize;

use crate::store::chat::ActionRunRow;

use super::channels::api::post_signed_answer;
use super::outbox::Failure;
use super::snapshot::Snapshot;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookBody<'a> {
    chat_id: String,
    contact_id: String,
    action: &'a str,
    run_id: String,
    queue: &'a str,
    operator: &'a str,
    at: String,
}

/// The JSON body POSTed for `run`.
pub fn webhook_body(run: &ActionRunRow) -> Vec<u8> {
    serde_json::to_vec(&WebhookBody {
        chat_id: run.chat_id.to_string(),
        contact_id: run.contact_id.to_string(),
        action: &run.action,
        run_id: run.id.to_string(),
        queue: &run.queue,
        operator: &run.operator,
        at: run
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
    .expect("the action body serializes")
}

/// What one delivery attempt of a webhook action run came to: the receiver's HTTP status
/// (`None` when none answered, or no request was made) and the outbox's verdict.
#[derive(Debug)]
pub(super) struct Attempt {
    /// The receiver's status.
    pub status: Option<u16>,
    /// Delivered, or why not (and whether to retry).
    pub outcome: Result<(), Failure>,
}

/// One delivery attempt of a webhook action run.
pub(super) async fn deliver(
    http: &reqwest::Client,
    snapshot: &Snapshot,
    run: &ActionRunRow,
) -> Attempt {
    let unsent = |failure: Failure| Attempt {
        status: None,
        outcome: Err(failure),
    };
    let permanent = |error: String| Failure {
        error,
        retry: false,
        after: None,
    };
    let Some(action) = snapshot.actions.get(&run.action) else {
        return unsent(permanent(format!(
            "chat action {} is no longer configured; the run is given up",
            run.action
        )));
    };
    let Some((url, secret)) = &action.webhook else {
        return unsent(permanent(format!(
            "chat action {} is no longer a webhook; the run is given up",
            run.action
        )));
    };
    let secret = match secret {
        Ok(secret) => secret,
        Err(e) => {
            return unsent(Failure {
                error: format!("the action's webhook secret cannot be read: {e}"),
                retry: true,
                after: None,
            });
        }
    };
    let (status, outcome) =
        post_signed_answer(http, url, secret, webhook_body(run), "the action webhook").await;
    Attempt { status, outcome }
}
