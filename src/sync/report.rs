//! What a sync connector's run tells the operator beyond the engine's object status: its
//! conflicts (metric and tally), its progress while it runs, and, at the end, the run record
//! the objects view and `switchboard status` show (items moved each way in the last run,
//! conflicts resolved in it and in all). Shared by every record-sync connector (`ContactSync`,
//! `CalendarSync`).
//!
//! One [`RunRecorder`] per connector; runs of one object never overlap (the scheduler's
//! rule), so it is reset by [`RunRecorder::start`] and closed by [`RunRecorder::finish`].
//! The counters are atomics only so that the connector's `&self` methods can count.
//!
//! *Must not*: run SQL (it calls the store), or decide what a run does.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::connector::{ConnectorError, SyncContext, SyncReport};
use crate::store::sync_state::SyncProgress;

/// The run tally of one sync object (`origin` = `Kind/name`).
pub struct RunRecorder {
    origin: String,
    kind: String,
    name: String,
    conflicts: AtomicU64,
    done: AtomicU64,
    known: AtomicU64,
}

impl RunRecorder {
    /// A recorder for the object `kind/name`.
    pub fn new(kind: &str, name: &str) -> RunRecorder {
        RunRecorder {
            origin: format!("{kind}/{name}"),
            kind: kind.to_owned(),
            name: name.to_owned(),
            conflicts: AtomicU64::new(0),
            done: AtomicU64::new(0),
            known: AtomicU64::new(0),
        }
    }

    /// A run begins: nothing counted yet.
    pub fn start(&self) {
        self.conflicts.store(0, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.known.store(0, Ordering::Relaxed);
    }

    /// One conflict resolved: counted in `sync_conflicts_total` and in the run record.
    pub fn conflict(&self, ctx: &SyncContext<'_>) {
        self.conflicts.fetch_add(1, Ordering::Relaxed);
        ctx.metrics
            .sync_conflicts_total
            .with_label_values(&[&self.kind, &self.name])
            .inc();
    }

    /// The run found `n` more items to read or write.
    pub fn known(&self, n: usize) {
        self.known.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// `n` more items done; the progress is written to the store (call it per batch, not per
    /// item). A store failure here fails the run, as any store failure does.
    pub async fn done(&self, ctx: &SyncContext<'_>, n: usize) -> Result<(), ConnectorError> {
        let done = self.done.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        let progress = SyncProgress {
            done,
            known: self.known.load(Ordering::Relaxed).max(done),
        };
        let (origin, at) = (self.origin.clone(), ctx.clock.now());
        ctx.store
            .call(move |s| s.set_sync_progress(&origin, progress, at))
            .await
            .map_err(|e| ConnectorError::Failed(e.to_string()))
    }

    /// The run ended with `result`: its record written (a failed or interrupted run keeps
    /// the last successful run's counts, adds its conflicts to the total and clears the
    /// progress). Returns `result` unchanged, or the store's failure to record a success.
    pub async fn finish(
        &self,
        ctx: &SyncContext<'_>,
        result: Result<SyncReport, ConnectorError>,
    ) -> Result<SyncReport, ConnectorError> {
        let moved = result.as_ref().ok().map(|r| (r.items_in, r.items_out));
        let conflicts = self.conflicts.load(Ordering::Relaxed);
        let (origin, at) = (self.origin.clone(), ctx.clock.now());
        let written = ctx
            .store
            .call(move |s| s.record_sync_run(&origin, moved, conflicts, at))
            .await;
        match (result, written) {
            (Ok(_), Err(e)) => Err(ConnectorError::Failed(e.to_string())),
            (result, Err(e)) => {
                tracing::warn!(sync = %self.origin, error = %e, "could not record the run");
                result
            }
            (result, Ok(())) => result,
        }
    }
}
