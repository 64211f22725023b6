//! The state file's disk-full episodes, logged once each.
//!
//! A full disk fails every write until space returns; logging each failed request would flood
//! the log exactly when there is no room for it. [`full`] logs the first failure of an episode
//! at ERROR and sets the `switchboard_state_disk_full` gauge; [`writable`], called after a
//! write succeeded, ends the episode with one INFO line. Later failures of the same episode
//! are logged at DEBUG only. A daemon that receives nothing while the disk is full would never
//! learn that space returned, so [`watch_recovery`] also ends the episode once the state
//! directory's file system has [`ROOM`] free again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use prometheus::IntGauge;
use std::sync::LazyLock;

static FULL: AtomicBool = AtomicBool::new(false);

/// `switchboard_state_disk_full`: 1 while the state file's disk is full, else 0. Registered
/// by [`crate::telemetry::Metrics::new`].
pub(crate) static GAUGE: LazyLock<IntGauge> = LazyLock::new(|| {
    IntGauge::new(
        "switchboard_state_disk_full",
        "1 while writes to the state file fail because its disk is full",
    )
    .expect("a valid metric")
});

/// Reports a write that failed because the disk is full; logs only when an episode starts.
pub fn full(error: &dyn std::fmt::Display) {
    if FULL.swap(true, Ordering::SeqCst) {
        tracing::debug!(error = %error, "the state file's disk is still full");
    } else {
        GAUGE.set(1);
        tracing::error!(
            error = %error,
            "the state file's disk is full: writes are refused (webhooks answer 503) until space is freed; \
             this is logged once until it recovers"
        );
    }
}

/// Reports a write that succeeded; ends an episode, if one was on.
pub fn writable() {
    if FULL.swap(false, Ordering::SeqCst) {
        GAUGE.set(0);
        tracing::info!("the state file's disk has room again: writes succeed");
    }
}

/// Whether a disk-full episode is on.
pub fn is_full() -> bool {
    FULL.load(Ordering::SeqCst)
}

/// The free space (for unprivileged writers) at which a full disk counts as having room again:
/// enough for SQLite to grow the WAL by a few hundred pages, so the next write is unlikely to
/// fail at once and start a new episode.
pub const ROOM: u64 = 1024 * 1024;

/// How often [`watch_recovery`] looks at the file system during an episode.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);

/// Whether the file system holding `dir` has at least [`ROOM`] bytes available. `None` when it
/// cannot be asked (then only a successful write ends an episode).
pub fn has_room(dir: &Path) -> Option<bool> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    let available = stat.f_bavail.saturating_mul(stat.f_frsize);
    Some(available >= ROOM && stat.f_favail > 0)
}

/// Ends a disk-full episode when the state directory has room again, even if nothing writes.
/// Looks every [`PROBE_EVERY`] while an episode is on; costs one atomic load otherwise.
pub async fn watch_recovery(state_dir: PathBuf, cancel: CancellationToken) {
    let mut every = tokio::time::interval(PROBE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = every.tick() => {}
        }
        if is_full() && has_room(&state_dir) == Some(true) {
            writable();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_with_room_has_room_and_a_missing_one_cannot_be_asked() {
        let dir = std::env::temp_dir();
        // The build machine's temp directory has more than a megabyte free.
        assert_eq!(has_room(&dir), Some(true));
        assert_eq!(has_room(Path::new("/no/such/directory/here")), None);
    }
}
