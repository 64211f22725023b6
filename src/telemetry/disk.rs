//! The state file's disk-full episodes, logged once each.
//!
//! A full disk fails every write until space returns; logging each failed request would flood
//! the log exactly when there is no room for it. [`full`] logs the first failure of an episode
//! at ERROR and sets the `switchboard_state_disk_full` gauge; [`writable`], called after a
//! write succeeded, ends the episode with one INFO line. Later failures of the same episode
//! are logged at DEBUG only.

use std::sync::atomic::{AtomicBool, Ordering};

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
