//! The chat engine: contacts, chats, routing, durable timers, the outbox, and the channels
//! messages arrive on (CH-01..CH-11).
//!
//! # Shape
//! [`ChatService`] is a cheap handle. Behind it run three tasks, all on the daemon's
//! [`TaskTracker`] and stopped by its [`CancellationToken`]:
//!
//! - the **writer** (`writer.rs`): the only code that changes chat state. Requests become
//!   [`Command`]s on a bounded channel; the writer takes what has queued up (up to
//!   [`MAX_BATCH`]), runs it in ONE store transaction on the blocking pool — each command in
//!   its own savepoint, routing included ([`commands`]) — commits, and only then answers each
//!   request and publishes its events. That is group commit: one fsync for many webhooks, and
//!   a 2xx always means "durably stored". One writer also means accepts and routing never race.
//! - the **timer** task (`timers.rs`): sleeps until the earliest durable deadline in the store
//!   (an accept deadline, a completion timeout) and sends a [`Command::Tick`]. Deadlines live in
//!   the store, so they survive a restart; time comes from the engine's [`Clock`], so tests
//!   drive it with `tokio::time::pause`.
//! - the **outbox** task (`outbox.rs`): delivers operator messages through their channel,
//!   webhook chat actions (`actions.rs`) and, when a chat on a Messenger thread the bot passed
//!   to us completes, the thread's way back to the bot (FB-03), retrying with backoff; its
//!   attempts are recorded through the writer.
//!
//! Reads (lists, a chat with its messages) use a separate connection ([`ChatService::store`]):
//! WAL lets them run beside the writer and they see only committed data.
//!
//! # What it must not do
//! - Run SQL (the store does), or build JSON DTOs (http does; channels own their wire formats).
//! - Acknowledge anything before its batch committed, or deduplicate in memory.
//! - Sleep or spawn detached tasks: every wait is on the engine's clock, every task tracked.

mod actions;
pub mod channels;
pub mod commands;
pub mod events;
mod outbox;
pub mod routing;
pub mod snapshot;
mod timers;
mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::config::ConfigSet;
use crate::connector::EngineHandle;
use crate::store::StoreHandle;
use crate::store::chat::{ActionRunRow, ChatRow, MessageRow, OperatorStatus};
use crate::store::{Store, StoreError};

pub use commands::{ChatError, Command, Inbound, Reply};
pub use events::{ChatEvent, EventKind};
pub use snapshot::Snapshot;

/// The most commands committed in one transaction.
pub const MAX_BATCH: usize = 512;
/// How many commands may wait for the writer before senders wait (backpressure).
pub const QUEUE_DEPTH: usize = 8192;
/// How many events a slow SSE subscriber may fall behind before its stream is closed (it
/// reconnects and re-reads the chats).
pub const EVENT_BUFFER: usize = 1024;

/// A handle on the running chat engine. Cheap to clone.
#[derive(Clone)]
pub struct ChatService {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::Sender<writer::Envelope>,
    reader: StoreHandle,
    engine: EngineHandle,
    clock: Clock,
    events: broadcast::Sender<Arc<ChatEvent>>,
    snapshot: Mutex<Option<(Arc<ConfigSet>, Arc<Snapshot>)>>,
    wake_timers: Notify,
    wake_outbox: Notify,
    cancel: CancellationToken,
    http: reqwest::Client,
}

impl ChatService {
    /// Opens the chat engine's connections to the state file at `state` and starts its tasks on
    /// `tracker`; they stop when `cancel` fires.
    pub async fn start(
        state: &Path,
        engine: EngineHandle,
        clock: Clock,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Result<ChatService, StoreError> {
        let path = state.to_owned();
        let (writer_store, reader_store) = tokio::task::spawn_blocking(move || {
            Ok::<_, StoreError>((Store::open(&path)?, Store::open(&path)?))
        })
        .await
        .expect("opening the store does not panic")?;
        let (commands, receiver) = mpsc::channel(QUEUE_DEPTH);
        let http = crate::net::http_client_builder()
            .timeout(outbox::SEND_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| StoreError::Database {
                path: state.to_owned(),
                source: format!("cannot build the HTTP client for chat delivery: {e}").into(),
            })?;
        let service = ChatService {
            inner: Arc::new(Inner {
                commands,
                reader: StoreHandle::new(reader_store),
                engine,
                clock,
                events: broadcast::channel(EVENT_BUFFER).0,
                snapshot: Mutex::new(None),
                wake_timers: Notify::new(),
                wake_outbox: Notify::new(),
                cancel,
                http,
            }),
        };
        service.init_gauges().await?;
        tracker.spawn(writer::run(
            service.clone(),
            receiver,
            StoreHandle::new(writer_store),
        ));
        tracker.spawn(timers::run(service.clone()));
        tracker.spawn(outbox::run(service.clone()));
        Ok(service)
    }

    /// The read connection: lists, chats with their messages, operator loads.
    pub fn store(&self) -> &StoreHandle {
        &self.inner.reader
    }

    /// The chat view of the running config, with the secrets resolved when it was applied.
    pub async fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot_of_running().await.1
    }

    async fn snapshot_of_running(&self) -> (Arc<ConfigSet>, Arc<Snapshot>) {
        let (config, secrets) = self.inner.engine.applied();
        if let Some((seen, snapshot)) = &*self.lock_snapshot()
            && Arc::ptr_eq(seen, &config)
        {
            return (Arc::clone(seen), Arc::clone(snapshot));
        }
        // Once per applied config; no file is read here.
        let snapshot = Arc::new(Snapshot::build(&config, &secrets));
        *self.lock_snapshot() = Some((Arc::clone(&config), Arc::clone(&snapshot)));
        (config, snapshot)
    }

    fn lock_snapshot(&self) -> std::sync::MutexGuard<'_, Option<(Arc<ConfigSet>, Arc<Snapshot>)>> {
        self.inner
            .snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every event from now on (the SSE stream filters them per operator).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ChatEvent>> {
        self.inner.events.subscribe()
    }

    /// Fires when the daemon stops; long-lived responses (SSE) end with it.
    pub fn stopping(&self) -> CancellationToken {
        self.inner.cancel.clone()
    }

    /// Stores an inbound message; answers its chat once durably committed, and whether it was
    /// a repeated delivery.
    pub async fn inbound(&self, message: Inbound) -> Result<(i64, bool), ChatError> {
        match self.command(Command::Inbound(message)).await? {
            Reply::Inbound { chat_id, duplicate } => Ok((chat_id, duplicate)),
            other => Err(unexpected(&other)),
        }
    }

    /// `user` accepts an offered chat.
    pub async fn accept(&self, user: &str, chat_id: i64) -> Result<ChatRow, ChatError> {
        let command = Command::Accept {
            user: user.to_owned(),
            chat_id,
        };
        match self.command(command).await? {
            Reply::Chat(chat) => Ok(chat),
            other => Err(unexpected(&other)),
        }
    }

    /// Completes a chat (its operator, or a supervisor).
    pub async fn complete(
        &self,
        user: &str,
        chat_id: i64,
        supervisor: bool,
    ) -> Result<ChatRow, ChatError> {
        let command = Command::Complete {
            user: user.to_owned(),
            chat_id,
            supervisor,
        };
        match self.command(command).await? {
            Reply::Chat(chat) => Ok(chat),
            other => Err(unexpected(&other)),
        }
    }

    /// The chat's operator writes to the client; the message is stored and queued for delivery.
    pub async fn send(
        &self,
        user: &str,
        chat_id: i64,
        text: &str,
    ) -> Result<MessageRow, ChatError> {
        let command = Command::Send {
            user: user.to_owned(),
            chat_id,
            text: text.to_owned(),
        };
        match self.command(command).await? {
            Reply::Message(message) => Ok(message),
            other => Err(unexpected(&other)),
        }
    }

    /// An operator sets their own status.
    pub async fn set_status(
        &self,
        user: &str,
        status: OperatorStatus,
    ) -> Result<OperatorStatus, ChatError> {
        let command = Command::SetStatus {
            user: user.to_owned(),
            status,
        };
        match self.command(command).await? {
            Reply::Status(status) => Ok(status),
            other => Err(unexpected(&other)),
        }
    }

    /// `user` runs the chat action `action` on a chat they may see (CH-07).
    pub async fn run_action(
        &self,
        user: &str,
        chat_id: i64,
        action: &str,
    ) -> Result<ActionRunRow, ChatError> {
        let command = Command::RunAction {
            user: user.to_owned(),
            chat_id,
            action: action.to_owned(),
        };
        match self.command(command).await? {
            Reply::Action(run) => Ok(run),
            other => Err(unexpected(&other)),
        }
    }

    /// Fires the durable timers due now (the timer task calls this; so can tests).
    pub async fn tick(&self) -> Result<(), ChatError> {
        self.command(Command::Tick).await.map(drop)
    }

    /// Sends a command to the writer and waits until its batch committed.
    pub async fn command(&self, command: Command) -> Result<Reply, ChatError> {
        let stopping = || ChatError::Unavailable("the chat engine is stopping; retry".into());
        let (reply, answer) = oneshot::channel();
        let envelope = writer::Envelope {
            command,
            at: self.inner.clock.now(),
            reply,
        };
        self.inner
            .commands
            .send(envelope)
            .await
            .map_err(|_| stopping())?;
        answer.await.map_err(|_| stopping())?
    }

    /// Sets the `chats{queue,state}` gauge from the store, once at start.
    async fn init_gauges(&self) -> Result<(), StoreError> {
        let counts = self.inner.reader.call(|s| s.chat_counts()).await?;
        let metrics = self.inner.engine.metrics();
        for (queue, state, n) in counts {
            metrics
                .chats
                .with_label_values(&[&queue, state.as_str()])
                .set(n);
        }
        Ok(())
    }
}

fn unexpected(reply: &Reply) -> ChatError {
    ChatError::Unavailable(format!(
        "the chat engine answered {reply:?} unexpectedly; this is a bug, please report it"
    ))
}

#[cfg(test)]
mod tests;
