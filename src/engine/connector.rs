//! The connector contract and the registry that builds the running set from objects.
//!
//! A connector moves one object's data (a mailbox, a contact sync). The engine owns *when* it
//! runs (the scheduler) and *what is recorded* (store, metrics); a connector only does one run
//! and reports what it moved. It must not sleep, spawn detached tasks or read globals: all it
//! gets comes through [`SyncContext`], including the cancellation token it must honour.
//!
//! Kinds without a built connector are [`Built::Pending`] with a reason, never a fake success.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::types::Secret;
use crate::config::{ConfigSet, Kind, Object};
use crate::telemetry::Metrics;

use super::handle::StoreHandle;

/// What one successful run moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Items read from the remote side.
    pub items_in: u64,
    /// Items written to the remote side.
    pub items_out: u64,
}

/// Why a run did not succeed. The message is stored and shown as is: it must never contain a
/// secret value (name the reference instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// The run failed; it is retried with backoff.
    #[error("{0}")]
    Failed(String),
    /// The run stopped because its cancellation token fired (shutdown or reload); it saved
    /// its checkpoint and is not counted as a failure.
    #[error("interrupted")]
    Cancelled,
}

/// Everything a run may use.
pub struct SyncContext<'a> {
    /// The object being synced.
    pub object: &'a Object,
    /// Its resolved secrets, by JSON pointer into `spec` (`/password`).
    pub secrets: &'a BTreeMap<String, Secret>,
    /// Fires on shutdown or when the object is replaced; stop at the next checkpoint.
    pub cancel: CancellationToken,
    /// The store, for connectors that keep data and checkpoints (mail). The engine still
    /// records the run's status itself.
    pub store: &'a StoreHandle,
    /// The metrics, for domain counters such as `mail_messages_total`.
    pub metrics: &'a Metrics,
}

/// The boxed future of [`Connector::sync`].
pub type SyncFuture<'a> =
    Pin<Box<dyn Future<Output = Result<SyncReport, ConnectorError>> + Send + 'a>>;

/// One object's sync. Implementations are idempotent and resumable from their checkpoint.
pub trait Connector: Send + Sync {
    /// Runs one sync.
    fn sync<'a>(&'a self, ctx: SyncContext<'a>) -> SyncFuture<'a>;

    /// A long-lived watch of the remote side (IMAP IDLE) that asks for runs through
    /// [`WatchContext::request`] when something changed; `None` (the default) when the
    /// connector has nothing to watch. The scheduler spawns it beside the object's task, on
    /// the same tracker and cancellation token, so it stops when the object is replaced or
    /// removed and on shutdown. It never syncs itself: runs stay the scheduler's.
    fn watch(self: Arc<Self>, ctx: WatchContext) -> Option<WatchFuture> {
        let _ = ctx;
        None
    }
}

/// The boxed future of [`Connector::watch`].
pub type WatchFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Everything a watch may use; owned, because a watch outlives any one run.
pub struct WatchContext {
    /// The object being watched.
    pub object: Object,
    /// Its resolved secrets, by JSON pointer into `spec`.
    pub secrets: BTreeMap<String, Secret>,
    /// Fires on shutdown or when the object is replaced or removed; the watch then returns.
    pub cancel: CancellationToken,
    /// The store (for OAuth 2.0 tokens and the like).
    pub store: StoreHandle,
    /// The metrics.
    pub metrics: Metrics,
    /// Asks the scheduler for a run; requests coalesce (one follow-up run at most).
    pub request: Arc<tokio::sync::Notify>,
}

impl WatchContext {
    /// A [`SyncContext`] borrowing this one, for helpers shared with runs.
    pub fn sync_context(&self) -> SyncContext<'_> {
        SyncContext {
            object: &self.object,
            secrets: &self.secrets,
            cancel: self.cancel.clone(),
            store: &self.store,
            metrics: &self.metrics,
        }
    }
}

/// What the registry made of an object.
pub enum Built {
    /// A connector the scheduler runs.
    Connector(Arc<dyn Connector>),
    /// Pure configuration: ready once applied, nothing to run.
    Passive,
    /// A kind that needs a connector that does not exist yet (or could not be built).
    Pending(String),
}

/// Builds the connector of one object from it and the whole config set.
pub type Factory =
    Arc<dyn Fn(&Object, &ConfigSet) -> Result<Arc<dyn Connector>, String> + Send + Sync>;

/// Kind → connector factory. Adding a connector is one file plus one `register` line.
#[derive(Clone, Default)]
pub struct Registry {
    factories: HashMap<Kind, Factory>,
}

/// Whether objects of `kind` are pure configuration.
pub fn is_passive(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Settings
            | Kind::User
            | Kind::Role
            | Kind::ChatQueue
            | Kind::ChatAction
            | Kind::QuickReply
            | Kind::MailProvider
            | Kind::MeetingService
            | Kind::GoogleAccount
    )
}

/// The issue that will build the connector of a kind, for the pending reason.
fn pending_issue(kind: Kind) -> &'static str {
    match kind {
        Kind::ChatChannel => "chat",
        Kind::Mailbox => "mail",
        Kind::ContactSync | Kind::CalendarSync => "sync",
        Kind::LeadIntegration => "leads",
        _ => "engine",
    }
}

impl Registry {
    /// The registry of the shipped connectors. Kinds not registered here are pending.
    pub fn builtin() -> Registry {
        let mut registry = Registry::default();
        // Mail: imap/gmail providers sync over IMAP, microsoft365 (oauth2) through Graph;
        // exchange mailboxes are pending with their reason (the factory's `Err`).
        registry.register(Kind::Mailbox, crate::mail::build);
        // Chat channels: the api provider reconciles; the others are pending with a reason.
        registry.register(Kind::ChatChannel, crate::chat::channels::build);
        registry
    }

    /// Registers (or replaces) the factory of `kind`; tests use this for a fake connector.
    pub fn register(
        &mut self,
        kind: Kind,
        factory: impl Fn(&Object, &ConfigSet) -> Result<Arc<dyn Connector>, String>
        + Send
        + Sync
        + 'static,
    ) {
        self.factories.insert(kind, Arc::new(factory));
    }

    /// Builds `object`'s part of the running set.
    pub fn build(&self, object: &Object, set: &ConfigSet) -> Built {
        let kind = object.kind();
        if let Some(factory) = self.factories.get(&kind) {
            return match factory(object, set) {
                Ok(connector) => Built::Connector(connector),
                Err(reason) => Built::Pending(reason),
            };
        }
        if is_passive(kind) {
            Built::Passive
        } else {
            Built::Pending(format!(
                "the {kind} connector is not built yet (issue: {})",
                pending_issue(kind)
            ))
        }
    }
}
