//! What the chat engine tells operators, after the change it describes is committed.
//!
//! Events are domain values addressed to operators (User names); the HTTP layer turns them into
//! server-sent events (`GET /api/v1/events`) for the recipients it serves.

use chrono::{DateTime, Utc};

use crate::store::chat::{ActionRunRow, ChatRow, MessageRow, OperatorStatus};

/// One event and whom it is for.
#[derive(Debug, Clone)]
pub struct ChatEvent {
    /// The operators it concerns.
    pub recipients: Vec<String>,
    /// What happened.
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone)]
pub enum EventKind {
    /// `chat.offered`: the chat is offered to the recipients (toAll), or assigned to the one
    /// recipient who must accept it by `accept_by` (leastBusy).
    Offered {
        /// The chat.
        chat: ChatRow,
        /// Accept by then, or the chat moves on (leastBusy only).
        accept_by: Option<DateTime<Utc>>,
    },
    /// `chat.assigned`: an operator accepted the chat; sent to them and to everyone whose
    /// offer is withdrawn by it.
    Assigned {
        /// The chat, now active.
        chat: ChatRow,
    },
    /// `chat.message`: a message was stored.
    Message {
        /// The chat's id.
        chat_id: i64,
        /// The message.
        message: MessageRow,
    },
    /// `chat.completed`.
    Completed {
        /// The chat, now completed.
        chat: ChatRow,
    },
    /// `chat.action`: a chat action run ended — a built-in one at once, a webhook one when
    /// its receiver accepted it or it was given up (CH-07).
    Action {
        /// The chat's id.
        chat_id: i64,
        /// The run, with its outcome (`done` or `failed`, attempts, last error).
        run: ActionRunRow,
        /// The webhook receiver's last HTTP status (`None`: built-in, or no answer came).
        status: Option<u16>,
    },
    /// `operator.status`: the recipient's status changed (by themselves or by a lapsed offer).
    OperatorStatus {
        /// The operator.
        operator: String,
        /// The new status.
        status: OperatorStatus,
        /// Why, when the engine changed it.
        reason: Option<String>,
    },
}

impl EventKind {
    /// The SSE event name of SPEC.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Offered { .. } => "chat.offered",
            EventKind::Assigned { .. } => "chat.assigned",
            EventKind::Message { .. } => "chat.message",
            EventKind::Completed { .. } => "chat.completed",
            EventKind::Action { .. } => "chat.action",
            EventKind::OperatorStatus { .. } => "operator.status",
        }
    }
}
