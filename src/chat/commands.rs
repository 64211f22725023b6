//! The chat writer's commands and what each does inside a batch transaction.
//!
//! Every change to the chat domain is a [`Command`] executed here, on the writer's blocking
//! thread, in the transaction of its batch and in a savepoint of its own: a refused command
//! (a second accept, a forged chat id) rolls back alone. Routing runs inside the same savepoint
//! as the command that made it necessary (a new chat, a freed operator, a lapsed offer), so a
//! chat is never stored without having been distributed, and distribution always sees the
//! committed loads of every earlier command — one writer means no two accepts can race.
//!
//! Side effects outside the store (events, metrics, waking the timer and outbox tasks) are
//! collected as [`Effects`] and applied by the caller only after the batch commits.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::config::kinds::{ChannelProvider, Routing};
use crate::store::StoreError;
use crate::store::chat::{
    ActionKind, ActionRunRow, ChatRow, ChatState, ChatTx, CompletedBy, Direction, MessageRow,
    NewContact, NewMessage, OfferRow, OperatorLoad, OperatorStatus,
};

use super::channels::messenger::Received;
use super::events::{ChatEvent, EventKind};
use super::routing;
use super::snapshot::Snapshot;

/// An inbound message, as a channel parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The `ChatChannel` it arrived on.
    pub channel: String,
    /// The provider's message id: the deduplication key.
    pub provider_id: String,
    /// The sender's identity on the channel.
    pub contact_id: String,
    /// The sender's display name.
    pub name: String,
    /// The sender's e-mail, if given.
    pub email: Option<String>,
    /// The sender's phone, if given.
    pub phone: Option<String>,
    /// The text.
    pub text: String,
}

/// A change to the chat domain.
#[derive(Debug, Clone)]
pub enum Command {
    /// Store a client message (dedupe, find or open the chat, route a new one).
    Inbound(Inbound),
    /// Store a message of a conversation an external bot handles (Messenger handover, FB-03):
    /// history with no operator, never routed.
    History(Inbound),
    /// A Messenger webhook event on `channel`, as the channel parsed it. The writer sorts it
    /// on the thread's current owner (FB-03): with `handover`, a message in a thread the bot
    /// owns is history, one in ours an inbound message, a pass to us opens a chat; without
    /// `handover` only messages count.
    Messenger {
        /// The channel the event's page belongs to.
        channel: String,
        /// The event.
        event: Received,
    },
    /// Record who owns a Messenger thread (FB-03).
    ThreadOwner {
        /// The channel.
        channel: String,
        /// The contact's page-scoped id.
        psid: String,
        /// We own it now (control was passed to us); otherwise the primary receiver does.
        ours: bool,
        /// The deduplication key of the event that says so, when it has one: an event already
        /// stored (a redelivery, maybe after the thread went back to the bot) changes nothing.
        event: Option<String>,
    },
    /// An operator accepts an offered chat.
    Accept {
        /// The operator.
        user: String,
        /// The chat.
        chat_id: i64,
    },
    /// Complete a chat: its operator, or a supervisor.
    Complete {
        /// Who asks.
        user: String,
        /// The chat.
        chat_id: i64,
        /// Holds `CanManageChats`.
        supervisor: bool,
    },
    /// An operator writes to the client.
    Send {
        /// The operator.
        user: String,
        /// The chat.
        chat_id: i64,
        /// The text.
        text: String,
    },
    /// An operator sets their own status.
    SetStatus {
        /// The operator.
        user: String,
        /// The new status.
        status: OperatorStatus,
    },
    /// Fire every durable timer due at the command's time.
    Tick,
    /// The outbox delivered a message.
    Delivered {
        /// The outbox entry.
        outbox_id: i64,
    },
    /// An operator runs a chat action (CH-07) on a chat they may see (http checked that).
    RunAction {
        /// The operator.
        user: String,
        /// The chat.
        chat_id: i64,
        /// The `ChatAction` name.
        action: String,
    },
    /// The outbox made a delivery attempt of a webhook action run.
    ActionAttempted {
        /// The run.
        run_id: i64,
        /// What went wrong (no secret); `None` = delivered.
        error: Option<String>,
        /// When to try again; `None` gives up (ignored when delivered).
        retry_at: Option<DateTime<Utc>>,
        /// The receiver's HTTP status, when one answered (told in the `chat.action` event).
        status: Option<u16>,
    },
    /// The outbox made an attempt to pass a Messenger thread back to the bot (FB-03).
    HandbackAttempted {
        /// The hand-back.
        id: i64,
        /// What went wrong (no secret); `None` = Graph accepted it.
        error: Option<String>,
        /// When to try again; `None` gives up (ignored when accepted).
        retry_at: Option<DateTime<Utc>>,
    },
    /// The outbox failed to deliver a message.
    DeliveryFailed {
        /// The outbox entry.
        outbox_id: i64,
        /// What went wrong (no secret).
        error: String,
        /// When to try again; `None` gives up.
        retry_at: Option<DateTime<Utc>>,
    },
}

/// What a command answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The chat of an inbound message, and whether it had been stored before.
    Inbound {
        /// The chat.
        chat_id: i64,
        /// The same delivery was stored earlier.
        duplicate: bool,
    },
    /// The chat after the change.
    Chat(ChatRow),
    /// The stored message.
    Message(MessageRow),
    /// The operator's status after the change.
    Status(OperatorStatus),
    /// The recorded action run.
    Action(ActionRunRow),
    /// Done.
    Done,
}

/// Why a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// No such chat (or not one the caller may see).
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The chat's state does not allow it.
    #[error("{message}")]
    Conflict {
        /// A stable code for clients.
        code: &'static str,
        /// What happened and what to do.
        message: String,
    },
    /// The chat engine cannot take the command now (stopping, or its store failed).
    #[error("{0}")]
    Unavailable(String),
    /// The disk holding the state file is full: nothing of the command was stored; retry later.
    #[error("{0}")]
    StorageFull(String),
    /// The store failed inside the command; it was rolled back.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn conflict(code: &'static str, message: String) -> ChatError {
    ChatError::Conflict { code, message }
}

/// What a committed batch changes outside the store.
#[derive(Debug, Default)]
pub struct Effects {
    /// Events to publish.
    pub events: Vec<ChatEvent>,
    /// `(queue, from, to)` state changes, for the `chats` gauge.
    pub transitions: Vec<(String, Option<ChatState>, ChatState)>,
    /// `(queue, seconds)` from arrival to first distribution.
    pub assignments: Vec<(String, f64)>,
    /// `(channel, direction)` per stored message.
    pub messages: Vec<(String, Direction)>,
    /// A durable timer was set.
    pub wake_timers: bool,
    /// A message was queued for delivery.
    pub wake_outbox: bool,
    /// Some operator's status changed.
    pub operators_changed: bool,
}

impl Effects {
    fn merge(&mut self, other: Effects) {
        self.events.extend(other.events);
        self.transitions.extend(other.transitions);
        self.assignments.extend(other.assignments);
        self.messages.extend(other.messages);
        self.wake_timers |= other.wake_timers;
        self.wake_outbox |= other.wake_outbox;
        self.operators_changed |= other.operators_changed;
    }
}

/// The outcome of one batch.
#[derive(Debug)]
pub struct BatchOutcome {
    /// One answer per command, in order.
    pub replies: Vec<Result<Reply, ChatError>>,
    /// What to do once committed.
    pub effects: Effects,
    /// `(queue, status, count)` of every queue's operators, when they may have changed.
    pub operators: Option<Vec<(String, OperatorStatus, i64)>>,
}

/// Runs `commands` (each with its time) in `tx`. With `redistribute`, every queue is routed
/// first (a new config or a fresh start may have made operators available).
pub fn execute(
    tx: &mut ChatTx<'_>,
    snapshot: &Snapshot,
    redistribute: bool,
    commands: Vec<(Command, DateTime<Utc>)>,
) -> Result<BatchOutcome, StoreError> {
    let mut effects = Effects::default();
    if redistribute && let Some((_, at)) = commands.first() {
        let queues: BTreeSet<String> = snapshot.queues.keys().cloned().collect();
        let fx = tx.savepoint(|tx| {
            let mut work = Work::new(tx, snapshot, *at);
            work.dirty = queues;
            work.distribute()?;
            Ok::<_, StoreError>(work.fx)
        })?;
        effects.merge(fx);
    }
    let mut replies = Vec::with_capacity(commands.len());
    for (command, at) in commands {
        let result = tx.savepoint(|tx| {
            let mut work = Work::new(tx, snapshot, at);
            let reply = work.run(command)?;
            work.distribute()?;
            Ok::<_, ChatError>((reply, work.fx))
        });
        // A full disk fails the whole batch: SQLite may have rolled the transaction back, so
        // nothing of it may be acknowledged.
        let result = match result {
            Err(ChatError::Store(e)) if e.is_disk_full() => return Err(e),
            other => other,
        };
        replies.push(result.map(|(reply, fx)| {
            effects.merge(fx);
            reply
        }));
    }
    let operators = if redistribute || effects.operators_changed {
        Some(operator_counts(tx, snapshot)?)
    } else {
        None
    };
    Ok(BatchOutcome {
        replies,
        effects,
        operators,
    })
}

fn operator_counts(
    tx: &mut ChatTx<'_>,
    snapshot: &Snapshot,
) -> Result<Vec<(String, OperatorStatus, i64)>, StoreError> {
    let mut status = BTreeMap::new();
    for name in snapshot.operators() {
        let load = tx.operator(&name)?;
        status.insert(name, load.status);
    }
    let mut counts = Vec::new();
    for (queue, setup) in &snapshot.queues {
        for s in [OperatorStatus::Active, OperatorStatus::Inactive] {
            let n = setup.members.iter().filter(|m| status[*m] == s).count();
            counts.push((queue.clone(), s, i64::try_from(n).unwrap_or(i64::MAX)));
        }
    }
    Ok(counts)
}

/// One command's work: the transaction, the config view, the command's time, what it changed
/// outside the store, and the queues that need routing before it ends.
struct Work<'w, 'c> {
    tx: &'w mut ChatTx<'c>,
    snapshot: &'w Snapshot,
    at: DateTime<Utc>,
    fx: Effects,
    /// Queues whose waiting chats need routing (an operator may have room now).
    dirty: BTreeSet<String>,
    /// New chats to route. Only they need routing, not their queue's backlog: a backlog chat
    /// still waits because no operator had room, and every change that gives an operator room
    /// marks the queue dirty.
    fresh: Vec<ChatRow>,
}

impl<'w, 'c> Work<'w, 'c> {
    fn new(tx: &'w mut ChatTx<'c>, snapshot: &'w Snapshot, at: DateTime<Utc>) -> Self {
        Work {
            tx,
            snapshot,
            at,
            fx: Effects::default(),
            dirty: BTreeSet::new(),
            fresh: Vec::new(),
        }
    }

    fn run(&mut self, command: Command) -> Result<Reply, ChatError> {
        match command {
            Command::Inbound(m) => self.inbound(m),
            Command::History(m) => self.history(m),
            Command::Messenger { channel, event } => self.messenger(channel, event),
            Command::ThreadOwner {
                channel,
                psid,
                ours,
                event,
            } => self.thread_owner(&channel, &psid, ours, event.as_deref()),
            Command::Accept { user, chat_id } => self.accept(&user, chat_id),
            Command::Complete {
                user,
                chat_id,
                supervisor,
            } => self.complete(&user, chat_id, supervisor),
            Command::Send {
                user,
                chat_id,
                text,
            } => self.send(&user, chat_id, &text),
            Command::SetStatus { user, status } => self.set_status(&user, status),
            Command::Tick => self.tick().map(|()| Reply::Done),
            Command::RunAction {
                user,
                chat_id,
                action,
            } => self.run_action(&user, chat_id, &action),
            Command::ActionAttempted {
                run_id,
                error,
                retry_at,
                status,
            } => {
                let ended = error.is_none() || retry_at.is_none();
                if self
                    .tx
                    .action_attempted(run_id, error.as_deref(), retry_at, self.at)?
                    && ended
                {
                    self.action_ended(run_id, status)?;
                }
                Ok(Reply::Done)
            }
            Command::Delivered { outbox_id } => {
                self.tx.outbox_sent(outbox_id, self.at)?;
                Ok(Reply::Done)
            }
            Command::HandbackAttempted {
                id,
                error,
                retry_at,
            } => {
                self.tx
                    .handback_attempted(id, error.as_deref(), retry_at, self.at)?;
                Ok(Reply::Done)
            }
            Command::DeliveryFailed {
                outbox_id,
                error,
                retry_at,
            } => {
                self.tx.outbox_failed(outbox_id, &error, retry_at)?;
                Ok(Reply::Done)
            }
        }
    }

    /// Records who owns a Messenger thread, unless the event that says so (`event`, its
    /// deduplication key) was stored already: a redelivery, maybe after the thread went back
    /// to the bot, changes nothing.
    fn thread_owner(
        &mut self,
        channel: &str,
        psid: &str,
        ours: bool,
        event: Option<&str>,
    ) -> Result<Reply, ChatError> {
        let seen = match event {
            Some(id) => self.tx.delivered(channel, id)?.is_some(),
            None => false,
        };
        if !seen {
            self.tx.set_thread_owner(channel, psid, ours, self.at)?;
        }
        Ok(Reply::Done)
    }

    /// One Messenger event (FB-03): sorted here, in the writer, on the thread's current owner,
    /// so a message racing a `pass_thread_control` sees the ownership the pass left.
    fn messenger(&mut self, channel: String, event: Received) -> Result<Reply, ChatError> {
        let primary = self
            .snapshot
            .channels
            .get(&channel)
            .and_then(|c| c.spec.handover.as_ref())
            .map(|h| h.primary_receiver_app_id.clone());
        let Some(primary) = primary else {
            // Without handover only messages count.
            return match event {
                Received::Message(mut m) => {
                    m.channel = channel;
                    self.inbound(m)
                }
                _ => Ok(Reply::Done),
            };
        };
        match event {
            Received::Message(mut m) => {
                m.channel = channel;
                if self.tx.thread_ours(&m.channel, &m.contact_id)? {
                    self.inbound(m)
                } else {
                    self.history(m)
                }
            }
            Received::Standby(mut m) => {
                m.channel = channel;
                self.history(m)
            }
            Received::Passed {
                psid,
                to,
                event_id,
                metadata,
            } => {
                let ours = to != primary;
                // A pass to us opens a chat whose first message is keyed by this event.
                self.thread_owner(&channel, &psid, ours, ours.then_some(event_id.as_str()))?;
                if !ours {
                    return Ok(Reply::Done);
                }
                // The chat opens with a note of the handover, deduplicated like a message.
                let text = match metadata {
                    Some(note) => format!("[the bot passed the conversation: {note}]"),
                    None => "[the bot passed the conversation]".to_owned(),
                };
                self.inbound(Inbound {
                    channel,
                    provider_id: event_id,
                    contact_id: psid.clone(),
                    name: psid,
                    email: None,
                    phone: None,
                    text,
                })
            }
            Received::Taken { psid } => self.thread_owner(&channel, &psid, false, None),
        }
    }

    fn chat(&mut self, chat_id: i64) -> Result<ChatRow, ChatError> {
        self.tx
            .chat(chat_id)?
            .ok_or_else(|| ChatError::NotFound(format!("no chat {chat_id}")))
    }

    /// Who follows a chat's messages: its operator, or while offered, whoever holds an offer.
    fn watchers(&mut self, chat: &ChatRow) -> Result<Vec<String>, StoreError> {
        Ok(match (&chat.operator, chat.state) {
            (Some(operator), ChatState::Active) => vec![operator.clone()],
            (_, ChatState::Offered) => self
                .tx
                .offers(chat.id)?
                .into_iter()
                .map(|o| o.operator)
                .collect(),
            _ => Vec::new(),
        })
    }

    fn event(&mut self, recipients: Vec<String>, kind: EventKind) {
        if !recipients.is_empty() {
            self.fx.events.push(ChatEvent { recipients, kind });
        }
    }

    /// The queue of the channel `m` arrived on, and its sender's contact (found or created).
    fn arrival(&mut self, m: &Inbound) -> Result<(String, i64), ChatError> {
        let queue = self
            .snapshot
            .channels
            .get(&m.channel)
            .map(|c| c.queue.clone())
            .ok_or_else(|| ChatError::NotFound(format!("no chat channel {}", m.channel)))?;
        let contact = self.tx.contact(
            NewContact {
                channel: &m.channel,
                external_id: &m.contact_id,
                name: &m.name,
                email: m.email.as_deref(),
                phone: m.phone.as_deref(),
            },
            self.at,
        )?;
        Ok((queue, contact))
    }

    fn inbound(&mut self, m: Inbound) -> Result<Reply, ChatError> {
        if let Some(chat_id) = self.tx.delivered(&m.channel, &m.provider_id)? {
            return Ok(Reply::Inbound {
                chat_id,
                duplicate: true,
            });
        }
        let (queue, contact) = self.arrival(&m)?;
        // A client message after completion finds no open chat and opens a new one (CH-05).
        let chat = match self.tx.open_chat_of(contact)? {
            Some(chat) => chat,
            None => {
                let id = self.tx.create_chat(&m.channel, &queue, contact, self.at)?;
                self.fx.transitions.push((queue, None, ChatState::Offered));
                let chat = self.chat(id)?;
                self.fresh.push(chat.clone());
                chat
            }
        };
        let message = NewMessage {
            chat_id: chat.id,
            channel: &m.channel,
            direction: Direction::In,
            provider_id: Some(&m.provider_id),
            author: None,
            text: &m.text,
            at: self.at,
        };
        let id = self.tx.add_message(message)?;
        self.fx.messages.push((m.channel.clone(), Direction::In));
        let watchers = self.watchers(&chat)?;
        self.event(
            watchers,
            EventKind::Message {
                chat_id: chat.id,
                message: MessageRow {
                    id,
                    chat_id: chat.id,
                    direction: Direction::In,
                    author: None,
                    text: m.text,
                    at: self.at,
                },
            },
        );
        Ok(Reply::Inbound {
            chat_id: chat.id,
            duplicate: false,
        })
    }

    /// REQ: FB-03 — a bot-handled message joins the contact's bot-history chat (completed, no
    /// operator); nothing is routed and no operator is told.
    fn history(&mut self, m: Inbound) -> Result<Reply, ChatError> {
        if let Some(chat_id) = self.tx.delivered(&m.channel, &m.provider_id)? {
            return Ok(Reply::Inbound {
                chat_id,
                duplicate: true,
            });
        }
        let (queue, contact) = self.arrival(&m)?;
        let chat_id = match self.tx.bot_history_chat_of(contact)? {
            Some(id) => id,
            None => {
                let id = self
                    .tx
                    .create_bot_history_chat(&m.channel, &queue, contact, self.at)?;
                self.fx
                    .transitions
                    .push((queue, None, ChatState::Completed));
                id
            }
        };
        self.tx.add_message(NewMessage {
            chat_id,
            channel: &m.channel,
            direction: Direction::In,
            provider_id: Some(&m.provider_id),
            author: None,
            text: &m.text,
            at: self.at,
        })?;
        self.fx.messages.push((m.channel.clone(), Direction::In));
        Ok(Reply::Inbound {
            chat_id,
            duplicate: false,
        })
    }

    fn accept(&mut self, user: &str, chat_id: i64) -> Result<Reply, ChatError> {
        let chat = self.chat(chat_id)?;
        match (chat.state, chat.operator.as_deref()) {
            (ChatState::Completed, _) => {
                return Err(conflict(
                    "chat-completed",
                    format!("chat {chat_id} is already completed"),
                ));
            }
            (ChatState::Active, Some(operator)) if operator == user => {
                return Ok(Reply::Chat(chat));
            }
            (ChatState::Active, _) => {
                // REQ: CH-03 (the first accept wins; a second one is a conflict)
                return Err(conflict(
                    "chat-taken",
                    format!("chat {chat_id} was accepted by another operator"),
                ));
            }
            (ChatState::Offered, _) => {}
        }
        let offer = self
            .tx
            .offers(chat_id)?
            .into_iter()
            .find(|o| o.operator == user)
            .ok_or_else(|| {
                ChatError::Forbidden(format!("chat {chat_id} is not offered to {user}"))
            })?;
        let load = self.tx.operator(user)?;
        let others = load.in_work.saturating_sub(u32::from(offer.exclusive));
        if others >= self.snapshot.capacity {
            // REQ: CH-06
            return Err(conflict(
                "at-capacity",
                format!(
                    "{user} already handles {others} chats, the most allowed at once \
                     (Settings.chat.simultaneousChats = {}); complete one first",
                    self.snapshot.capacity
                ),
            ));
        }
        let mut recipients = self.tx.activate(chat_id, user, self.at)?;
        self.fx.transitions.push((
            chat.queue.clone(),
            Some(ChatState::Offered),
            ChatState::Active,
        ));
        let chat = self.chat(chat_id)?;
        recipients.insert(0, user.to_owned());
        self.event(recipients, EventKind::Assigned { chat: chat.clone() });
        Ok(Reply::Chat(chat))
    }

    fn complete(&mut self, user: &str, chat_id: i64, supervisor: bool) -> Result<Reply, ChatError> {
        let chat = self.chat(chat_id)?;
        if chat.state == ChatState::Completed {
            return Err(conflict(
                "chat-completed",
                format!("chat {chat_id} is already completed"),
            ));
        }
        let own = chat.state == ChatState::Active && chat.operator.as_deref() == Some(user);
        if !own && !supervisor {
            return Err(ChatError::Forbidden(format!(
                "only the chat's operator (or a holder of CanManageChats) may complete chat {chat_id}"
            )));
        }
        self.finish(chat, CompletedBy::Operator).map(Reply::Chat)
    }

    /// Completes a chat, frees its operator's capacity and tells everyone concerned.
    fn finish(&mut self, chat: ChatRow, by: CompletedBy) -> Result<ChatRow, ChatError> {
        let mut recipients = self.tx.complete(chat.id, by, self.at)?;
        self.fx
            .transitions
            .push((chat.queue.clone(), Some(chat.state), ChatState::Completed));
        recipients.extend(chat.operator.iter().cloned());
        for operator in &recipients {
            self.dirty.extend(self.snapshot.queues_of(operator));
        }
        self.hand_back(&chat)?;
        let done = self.chat(chat.id)?;
        self.event(recipients, EventKind::Completed { chat: done.clone() });
        Ok(done)
    }

    /// REQ: FB-03 — a chat on a Messenger thread the bot passed to us ends by passing the
    /// thread back to the primary receiver: the call is queued for the outbox in this
    /// transaction, and the thread is the bot's from now on (later messages are its history).
    fn hand_back(&mut self, chat: &ChatRow) -> Result<(), StoreError> {
        let handover = self.snapshot.channels.get(&chat.channel).is_some_and(|c| {
            c.provider == ChannelProvider::FacebookMessenger && c.spec.handover.is_some()
        });
        if !handover
            || !self
                .tx
                .thread_ours(&chat.channel, &chat.contact_external_id)?
        {
            return Ok(());
        }
        self.tx.queue_handback(chat.id, self.at)?;
        self.tx
            .set_thread_owner(&chat.channel, &chat.contact_external_id, false, self.at)?;
        self.fx.wake_outbox = true;
        Ok(())
    }

    fn send(&mut self, user: &str, chat_id: i64, text: &str) -> Result<Reply, ChatError> {
        let chat = self.chat(chat_id)?;
        match chat.state {
            ChatState::Offered => {
                return Err(conflict(
                    "chat-not-accepted",
                    format!("chat {chat_id} has not been accepted; accept it first"),
                ));
            }
            ChatState::Completed => {
                return Err(conflict(
                    "chat-completed",
                    format!(
                        "chat {chat_id} is completed; the client's next message opens a new chat"
                    ),
                ));
            }
            ChatState::Active if chat.operator.as_deref() != Some(user) => {
                return Err(ChatError::Forbidden(format!(
                    "chat {chat_id} is handled by another operator"
                )));
            }
            ChatState::Active => {}
        }
        let id = self.tx.add_message(NewMessage {
            chat_id,
            channel: &chat.channel,
            direction: Direction::Out,
            provider_id: None,
            author: Some(user),
            text,
            at: self.at,
        })?;
        // An api channel without a callbackUrl has nowhere to deliver to: the site reads the
        // answer from the chat's history, so there is nothing to queue (and nothing failed).
        let delivers = self
            .snapshot
            .channels
            .get(&chat.channel)
            .is_none_or(|c| c.provider != ChannelProvider::Api || c.callback.is_some());
        if delivers {
            self.tx.enqueue(id, self.at)?;
        }
        // REQ: CH-05 (the completion timeout counts from the last outgoing message)
        let complete_at = self
            .snapshot
            .queues
            .get(&chat.queue)
            .and_then(|q| q.completion_timeout)
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| self.at + d);
        self.tx.set_last_out(chat_id, self.at, complete_at)?;
        self.fx
            .messages
            .push((chat.channel.clone(), Direction::Out));
        self.fx.wake_outbox |= delivers;
        self.fx.wake_timers |= complete_at.is_some();
        let message = MessageRow {
            id,
            chat_id,
            direction: Direction::Out,
            author: Some(user.to_owned()),
            text: text.to_owned(),
            at: self.at,
        };
        self.event(
            vec![user.to_owned()],
            EventKind::Message {
                chat_id,
                message: message.clone(),
            },
        );
        Ok(Reply::Message(message))
    }

    /// REQ: CH-07 — a builtin `createCase` stores the case with its run; a webhook run is
    /// queued for the outbox task, which POSTs it and records the outcome on the run.
    fn run_action(&mut self, user: &str, chat_id: i64, name: &str) -> Result<Reply, ChatError> {
        let chat = self.chat(chat_id)?;
        let action = self
            .snapshot
            .actions
            .get(name)
            .ok_or_else(|| ChatError::NotFound(format!("no chat action {name}")))?;
        if action.queue != chat.queue {
            return Err(conflict(
                "action-not-in-queue",
                format!(
                    "action {name} is bound to queue {}, and chat {chat_id} is in queue {}",
                    action.queue, chat.queue
                ),
            ));
        }
        let run = if action.webhook.is_some() {
            self.fx.wake_outbox = true;
            self.tx
                .add_action_run(chat_id, name, ActionKind::Webhook, user, None, self.at)?
        } else {
            let case = self.tx.create_case(&chat, &action.title, user, self.at)?;
            let run = self.tx.add_action_run(
                chat_id,
                name,
                ActionKind::CreateCase,
                user,
                Some(case),
                self.at,
            )?;
            let viewers = self.viewers(&chat)?;
            self.event(
                viewers,
                EventKind::Action {
                    chat_id,
                    run: run.clone(),
                    status: None,
                },
            );
            run
        };
        Ok(Reply::Action(run))
    }

    /// REQ: CH-07 — a webhook run ended (delivered, or given up): its outcome goes to the
    /// operators who may see the chat, with the receiver's last HTTP status.
    fn action_ended(&mut self, run_id: i64, status: Option<u16>) -> Result<(), ChatError> {
        let Some(run) = self.tx.action_run(run_id)? else {
            return Ok(());
        };
        let chat = self.chat(run.chat_id)?;
        let viewers = self.viewers(&chat)?;
        self.event(
            viewers,
            EventKind::Action {
                chat_id: chat.id,
                run,
                status,
            },
        );
        Ok(())
    }

    /// Who may see a chat (CH-01): its queue's operators, its operator, and whoever holds an
    /// offer of it. Supervisors (`CanManageChats`) see every event anyway.
    fn viewers(&mut self, chat: &ChatRow) -> Result<Vec<String>, StoreError> {
        let mut who: BTreeSet<String> = self
            .snapshot
            .queues
            .get(&chat.queue)
            .map(|q| q.members.iter().cloned().collect())
            .unwrap_or_default();
        who.extend(chat.operator.iter().cloned());
        who.extend(self.tx.offers(chat.id)?.into_iter().map(|o| o.operator));
        Ok(who.into_iter().collect())
    }

    fn set_status(&mut self, user: &str, status: OperatorStatus) -> Result<Reply, ChatError> {
        if self.snapshot.queues_of(user).is_empty() {
            return Err(ChatError::Forbidden(format!(
                "{user} is not an operator of any ChatQueue"
            )));
        }
        self.change_status(user, status, None)?;
        Ok(Reply::Status(status))
    }

    /// Sets a status; going inactive withdraws the operator's offers, going active makes their
    /// queues route again.
    fn change_status(
        &mut self,
        user: &str,
        status: OperatorStatus,
        reason: Option<String>,
    ) -> Result<(), StoreError> {
        if !self.tx.set_operator_status(user, status, self.at)? {
            return Ok(());
        }
        self.fx.operators_changed = true;
        self.event(
            vec![user.to_owned()],
            EventKind::OperatorStatus {
                operator: user.to_owned(),
                status,
                reason,
            },
        );
        match status {
            OperatorStatus::Active => self.dirty.extend(self.snapshot.queues_of(user)),
            OperatorStatus::Inactive => {
                for offer in self.tx.offers_to(user)? {
                    self.tx.remove_offer(offer.chat_id, user)?;
                    if offer.exclusive
                        && let Some(chat) = self.tx.chat(offer.chat_id)?
                    {
                        self.dirty.insert(chat.queue);
                    }
                }
            }
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<(), ChatError> {
        for offer in self.tx.lapsed_offers(self.at)? {
            // Withdrawn already, when an earlier lapse made the same operator inactive.
            if !self.tx.remove_offer(offer.chat_id, &offer.operator)? {
                continue;
            }
            let chat = self.chat(offer.chat_id)?;
            self.dirty.insert(chat.queue);
            // REQ: CH-04 (who lets an assignment lapse becomes inactive; the chat moves on)
            let reason = format!(
                "did not accept chat {} within the accept timeout (Settings.chat.acceptTimeout)",
                offer.chat_id
            );
            self.change_status(&offer.operator, OperatorStatus::Inactive, Some(reason))?;
        }
        for chat in self.tx.due_completions(self.at)? {
            self.finish(chat, CompletedBy::Timeout)?;
        }
        Ok(())
    }

    /// The loads of a queue's members, read once per command (one load per operator across
    /// all queues, CH-06).
    fn members(
        &mut self,
        queue: &str,
        loads: &mut BTreeMap<String, OperatorLoad>,
    ) -> Result<Vec<OperatorLoad>, StoreError> {
        let Some(setup) = self.snapshot.queues.get(queue) else {
            return Ok(Vec::new()); // a queue that left the config: its chats wait
        };
        let mut members = Vec::with_capacity(setup.members.len());
        for name in &setup.members {
            if !loads.contains_key(name) {
                let load = self.tx.operator(name)?;
                loads.insert(name.clone(), load);
            }
            members.push(loads[name].clone());
        }
        Ok(members)
    }

    /// Routes the new chats and the waiting chats of the dirty queues, oldest first across
    /// them. A queue where nobody has room is not even read.
    fn distribute(&mut self) -> Result<(), StoreError> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut waiting = std::mem::take(&mut self.fresh);
        let mut loads: BTreeMap<String, OperatorLoad> = BTreeMap::new();
        let capacity = self.snapshot.capacity;
        for queue in &dirty {
            let members = self.members(queue, &mut loads)?;
            if members.iter().any(|l| routing::has_room(l, capacity)) {
                waiting.extend(self.tx.waiting_chats(queue)?);
            }
        }
        waiting.sort_by_key(|c| c.id);
        waiting.dedup_by_key(|c| c.id);
        for chat in waiting {
            let members = self.members(&chat.queue, &mut loads)?;
            if !members.iter().any(|l| routing::has_room(l, capacity)) {
                continue;
            }
            let rule = self.snapshot.queues[&chat.queue].routing;
            let offers = self.tx.offers(chat.id)?;
            let (chosen, exclusive): (Vec<String>, bool) = match rule {
                Routing::LeastBusy if offers.is_empty() => (
                    routing::least_busy(&members, capacity)
                        .map(|i| members[i].name.clone())
                        .into_iter()
                        .collect(),
                    true,
                ),
                Routing::LeastBusy => (Vec::new(), true),
                Routing::ToAll => (
                    routing::to_all(&members, capacity)
                        .filter(|l| !offers.iter().any(|o| o.operator == l.name))
                        .map(|l| l.name.clone())
                        .collect(),
                    false,
                ),
            };
            if chosen.is_empty() {
                continue;
            }
            let deadline = exclusive
                .then(|| chrono::Duration::from_std(self.snapshot.accept_timeout).ok())
                .flatten()
                .map(|d| self.at + d);
            for operator in &chosen {
                self.tx.add_offer(&OfferRow {
                    chat_id: chat.id,
                    operator: operator.clone(),
                    exclusive,
                    offered_at: self.at,
                    deadline,
                })?;
                if exclusive && let Some(load) = loads.get_mut(operator) {
                    load.in_work += 1;
                }
            }
            if self.tx.mark_distributed(chat.id, self.at)? {
                let waited = (self.at - chat.created_at).num_microseconds().unwrap_or(0);
                self.fx
                    .assignments
                    .push((chat.queue.clone(), waited as f64 / 1e6));
            }
            self.fx.wake_timers |= deadline.is_some();
            self.event(
                chosen,
                EventKind::Offered {
                    chat,
                    accept_by: deadline,
                },
            );
        }
        Ok(())
    }
}
