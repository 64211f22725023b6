//! Telling systemd how the daemon is doing (`Type=notify`): READY, RELOADING, STOPPING and
//! watchdog pings. Every call is a no-op without `NOTIFY_SOCKET`, so a plain process on a laptop
//! behaves the same. Failures to notify are logged, never fatal.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

fn notify(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

/// The first config is applied and HTTP is listening (or a reload finished).
pub fn ready() {
    notify(&[NotifyState::Ready]);
}

/// A reload starts; systemd wants `MONOTONIC_USEC` with `RELOADING=1`.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

/// Shutdown starts.
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// The interval at which to ping the watchdog (half of `WATCHDOG_USEC`), when it is enabled.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

/// Pings the watchdog every `every` until `cancel` fires.
pub async fn watchdog(every: Duration, cancel: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => notify(&[NotifyState::Watchdog]),
        }
    }
}
