//! [`EngineHandle`]: the read side of the running set, the contract between the engine (its
//! only writer, through the `pub(crate)` `EngineHandle::publish`) and what reads it (HTTP,
//! chat). Readers see the last applied config and its resolved secrets, and may only
//! *request* a sync, which the scheduler coalesces.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::Notify;

use crate::config::types::Secret;
use crate::config::{ConfigSet, Kind};
use crate::store::StoreHandle;
use crate::telemetry::Metrics;

/// Every applied object's secrets, resolved at apply, by `(kind, name)`: the values by JSON
/// pointer (`/token`), or why one could not be read (naming the reference, never a value).
pub type ResolvedSecrets = HashMap<(Kind, String), Result<BTreeMap<String, Secret>, String>>;

/// Whether an object can be synced on request.
#[derive(Clone)]
pub(crate) enum Syncability {
    /// Wake its scheduler task.
    Syncable(Arc<Notify>),
    /// Why not (passive, pending, or its secrets failed).
    NotSyncable(String),
}

/// Why a sync request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncRequestError {
    /// No such object in the running config.
    Unknown,
    /// The object has nothing to run; the reason says why.
    NotSyncable(String),
}

/// The read side of the running set, cheap to clone; given to the HTTP layer.
#[derive(Clone)]
pub struct EngineHandle {
    inner: Arc<Shared>,
}

struct Shared {
    store: StoreHandle,
    metrics: Metrics,
    ready: AtomicBool,
    applied: RwLock<(Arc<ConfigSet>, Arc<ResolvedSecrets>)>,
    syncable: RwLock<HashMap<(Kind, String), Syncability>>,
}

impl EngineHandle {
    /// A handle over `store` with no config applied yet (not ready).
    pub fn new(store: StoreHandle, metrics: Metrics) -> EngineHandle {
        EngineHandle {
            inner: Arc::new(Shared {
                store,
                metrics,
                ready: AtomicBool::new(false),
                applied: RwLock::new((
                    Arc::new(ConfigSet::default()),
                    Arc::new(ResolvedSecrets::new()),
                )),
                syncable: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &StoreHandle {
        &self.inner.store
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// True once a config has been applied (and so the store is open).
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// The last good config.
    pub fn config(&self) -> Arc<ConfigSet> {
        self.applied().0
    }

    /// The last good config with its secrets, resolved when it was applied (one pair, so a
    /// reader never sees one config's objects with another's secrets).
    pub fn applied(&self) -> (Arc<ConfigSet>, Arc<ResolvedSecrets>) {
        let applied = self
            .inner
            .applied
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        (Arc::clone(&applied.0), Arc::clone(&applied.1))
    }

    /// Asks for a run of `kind/name` now; a request during a run yields one follow-up run.
    pub fn request_sync(&self, kind: Kind, name: &str) -> Result<(), SyncRequestError> {
        let map = self
            .inner
            .syncable
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        match map.get(&(kind, name.to_owned())) {
            None => Err(SyncRequestError::Unknown),
            Some(Syncability::NotSyncable(reason)) => {
                Err(SyncRequestError::NotSyncable(reason.clone()))
            }
            Some(Syncability::Syncable(wake)) => {
                wake.notify_one();
                Ok(())
            }
        }
    }

    /// Publishes a newly applied config, its resolved secrets and its running set (engine
    /// only).
    pub(crate) fn publish(
        &self,
        config: Arc<ConfigSet>,
        secrets: ResolvedSecrets,
        syncable: HashMap<(Kind, String), Syncability>,
    ) {
        *self
            .inner
            .applied
            .write()
            .unwrap_or_else(PoisonError::into_inner) = (config, Arc::new(secrets));
        *self
            .inner
            .syncable
            .write()
            .unwrap_or_else(PoisonError::into_inner) = syncable;
        self.inner.ready.store(true, Ordering::Release);
    }
}
