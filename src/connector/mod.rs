//! The connector contract: the leaf both the engine and the domains (chat, mail, later
//! records, sync, leads) import, so neither depends on the other.
//!
//! A connector moves one object's data (a mailbox, a contact sync). The engine owns *when* it
//! runs (the scheduler) and *what is recorded* (store, metrics); a connector only does one run
//! and reports what it moved. It must not sleep, spawn detached tasks or read globals: all it
//! gets comes through [`SyncContext`], including the cancellation token it must honour and the
//! clock it must read time from.
//!
//! Per-kind behaviour (which connector, when it runs on its own, what to undo when its object
//! leaves the config) is a [`KindConnectors`] a domain implements and the composition root
//! (`daemon`) registers in the [`Registry`]. Kinds without a built connector are
//! [`Built::Pending`] with a reason, never a fake success.
//!
//! *Must not* import anything but `config`, `store`, `telemetry` and `clock` (`tests/tidy.rs`).

pub mod registry;
pub mod running;
pub mod secrets;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Object;
use crate::config::types::Secret;
use crate::store::StoreHandle;
use crate::telemetry::Metrics;

pub use registry::{Built, Kept, KindConnectors, Registry, RetireFuture, Trigger};
pub(crate) use running::Syncability;
pub use running::{EngineHandle, ResolvedSecrets, SyncRequestError};
pub use secrets::{resolve_all, resolve_secrets, secret_refs};

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
    /// The provider asked to be left alone (HTTP 429 with `Retry-After`): the scheduler runs
    /// the object again after `retry_after`, not sooner (connectors never sleep it out).
    #[error("{message} (throttled: retried in {}s)", retry_after.as_secs())]
    Throttled {
        /// What was throttled.
        message: String,
        /// How long the provider asked to wait.
        retry_after: std::time::Duration,
    },
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
    /// The time to use (token expiry, "since" windows, timestamps); never `Utc::now()`.
    pub clock: Clock,
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
    /// The time to use.
    pub clock: Clock,
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
            clock: self.clock,
        }
    }
}
