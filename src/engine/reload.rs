//! Reloading: watch every config directory (debounced) and SIGHUP; load, validate and apply.
//!
//! A config that fails validation is rejected whole: its diagnostics are logged, the failure is
//! counted, and the last good config keeps running (the [`Engine`] is untouched). The watcher's
//! callback runs on notify's own thread and only forwards into a channel.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::diagnostics::render_text;

use super::apply::Engine;
use super::systemd;

/// How long the config directories must be quiet before a change is reloaded (editors write
/// files in several steps).
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Starts watching `dirs`; events arrive on the returned receiver. The watcher stops when
/// dropped. A directory that cannot be watched is logged; SIGHUP still reloads it.
pub fn watch(
    dirs: &[PathBuf],
) -> (
    Option<notify::RecommendedWatcher>,
    mpsc::UnboundedReceiver<()>,
) {
    use notify::{EventKind, RecursiveMode, Watcher};
    let (tx, rx) = mpsc::unbounded_channel();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, EventKind::Access(_))
        {
            let _ = tx.send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the config directories; reload with SIGHUP");
            return (None, rx);
        }
    };
    for dir in dirs {
        if let Err(e) = watcher.watch(dir, RecursiveMode::Recursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch a config directory; reload with SIGHUP");
        }
    }
    (Some(watcher), rx)
}

/// The reload loop: owns the engine until `cancel` fires. `watching` is what [`watch`]
/// returned (made before the daemon serves, so an edit made once it answers is seen);
/// `hangups` is the SIGHUP stream the daemon installed at start (`None` when it could not).
pub async fn run(
    mut engine: Engine,
    dirs: Vec<PathBuf>,
    watching: (
        Option<notify::RecommendedWatcher>,
        mpsc::UnboundedReceiver<()>,
    ),
    mut hangups: Option<tokio::signal::unix::Signal>,
    cancel: CancellationToken,
) {
    let (_watcher, mut changes) = watching;
    loop {
        let why = tokio::select! {
            () = cancel.cancelled() => return,
            Some(()) = changes.recv() => {
                // Debounce: wait for a quiet period.
                while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, changes.recv()).await {}
                "config files changed"
            }
            Some(()) = super::next_signal(&mut hangups) => "SIGHUP",
        };
        tracing::info!(trigger = why, "reloading the configuration");
        systemd::reloading();
        reload(&mut engine, &dirs).await;
        systemd::ready();
    }
}

/// Loads `dirs` and applies the result, or keeps the last good config. Returns whether the new
/// config was applied.
pub async fn reload(engine: &mut Engine, dirs: &[PathBuf]) -> bool {
    let metrics = engine.handle().metrics().clone();
    let dirs = dirs.to_vec();
    let outcome = tokio::task::spawn_blocking(move || crate::config::load(&dirs))
        .await
        .expect("loading the config does not panic");
    let failed = |metrics: &crate::telemetry::Metrics| {
        metrics.config_last_reload_successful.set(0);
        metrics
            .config_reloads_total
            .with_label_values(&["failure"])
            .inc();
    };
    let set = match outcome.set {
        Some(set) => set,
        None => {
            for d in &outcome.diagnostics {
                let text = render_text(std::slice::from_ref(d), &outcome.sources);
                tracing::error!("{}", text.trim_end());
            }
            tracing::error!(
                errors = outcome.diagnostics.len(),
                "the new configuration is invalid and was rejected; the last good configuration keeps running"
            );
            failed(&metrics);
            return false;
        }
    };
    if let Some(current) = engine.current()
        && current.listen() != set.listen()
    {
        tracing::warn!(
            old = %current.listen(),
            new = %set.listen(),
            "Settings.listen changed; restart the daemon to listen on the new address"
        );
    }
    match engine.apply(set).await {
        Ok(()) => {
            succeeded(&metrics);
            tracing::info!("configuration applied");
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "could not apply the new configuration; the last good configuration keeps running");
            failed(&metrics);
            false
        }
    }
}

/// Records a successful (re)load in the metrics.
pub fn succeeded(metrics: &crate::telemetry::Metrics) {
    metrics.config_last_reload_successful.set(1);
    metrics
        .config_last_reload_success_timestamp_seconds
        .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
    metrics
        .config_reloads_total
        .with_label_values(&["success"])
        .inc();
}
