//! The engine's shared state: the store behind one lock, the clock, and the read-only view
//! of the running set that the HTTP layer uses.
//!
//! Only the engine writes the running set ([`EngineHandle`]'s `pub(crate)` setters); HTTP
//! reads it and may only *request* a sync, which the scheduler coalesces.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::config::{ConfigSet, Kind};
use crate::store::{ObjectStatus, Store, StoreError};
use crate::telemetry::Metrics;

/// Wall-clock time as the engine sees it.
///
/// [`Clock::system`] reads the system clock. [`Clock::tokio`] derives wall time from tokio's
/// clock, so tests under `tokio::time::pause()` move cron schedules with `advance`.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Option<(tokio::time::Instant, DateTime<Utc>)>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { base: None }
    }

    /// A clock that reads `start` now and advances with tokio's (pausable) clock.
    pub fn tokio(start: DateTime<Utc>) -> Clock {
        Clock {
            base: Some((tokio::time::Instant::now(), start)),
        }
    }

    /// The current wall-clock time.
    pub fn now(&self) -> DateTime<Utc> {
        match self.base {
            None => Utc::now(),
            Some((instant, at)) => {
                let elapsed = chrono::Duration::from_std(instant.elapsed())
                    .expect("elapsed time fits a chrono duration");
                at + elapsed
            }
        }
    }

    /// The tokio instant at which wall-clock time `at` is reached (now if it has passed).
    pub fn instant_at(&self, at: DateTime<Utc>) -> tokio::time::Instant {
        let wait = (at - self.now()).to_std().unwrap_or_default();
        tokio::time::Instant::now() + wait
    }
}

/// The store, shared by the scheduler and the HTTP layer. rusqlite's connection is not `Sync`,
/// so it sits behind a mutex and every call runs on the blocking pool.
#[derive(Clone)]
pub struct StoreHandle {
    store: Arc<Mutex<Store>>,
}

impl StoreHandle {
    /// Wraps an open store.
    pub fn new(store: Store) -> StoreHandle {
        StoreHandle {
            store: Arc::new(Mutex::new(store)),
        }
    }

    /// Runs `f` with the store on the blocking pool.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = Arc::clone(&self.store);
        let joined = tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a transaction half-applied (SQLite
            // rolls it back), so a poisoned lock is safe to reuse.
            let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut store)
        })
        .await;
        match joined {
            Ok(result) => result,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Recomputes `switchboard_objects{kind,state}` from the store's statuses.
    pub async fn refresh_objects_gauge(&self, metrics: &Metrics) {
        match self.call(|s| s.statuses()).await {
            Ok(statuses) => metrics.set_objects(&count_states(&statuses)),
            Err(e) => tracing::error!(error = %e, "could not read object statuses"),
        }
    }
}

/// `(kind, state, count)` for every pair present.
fn count_states(statuses: &[ObjectStatus]) -> Vec<(String, String, i64)> {
    let mut counts: HashMap<(String, String), i64> = HashMap::new();
    for s in statuses {
        *counts
            .entry((s.kind.clone(), s.state.as_str().to_owned()))
            .or_default() += 1;
    }
    counts.into_iter().map(|((k, s), n)| (k, s, n)).collect()
}

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
    config: RwLock<Arc<ConfigSet>>,
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
                config: RwLock::new(Arc::new(ConfigSet::default())),
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
        Arc::clone(
            &self
                .inner
                .config
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
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

    /// Publishes a newly applied config and its running set (engine only).
    pub(crate) fn publish(
        &self,
        config: Arc<ConfigSet>,
        syncable: HashMap<(Kind, String), Syncability>,
    ) {
        *self
            .inner
            .config
            .write()
            .unwrap_or_else(PoisonError::into_inner) = config;
        *self
            .inner
            .syncable
            .write()
            .unwrap_or_else(PoisonError::into_inner) = syncable;
        self.inner.ready.store(true, Ordering::Release);
    }
}
