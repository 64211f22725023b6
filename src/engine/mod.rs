//! The running set: apply, reload, scheduler, shutdown pieces and sd_notify.
//!
//! The engine runs connectors through the contract in [`crate::connector`] and knows no domain:
//! the composition root (`crate::daemon`) builds the [`Registry`] from chat and mail, starts
//! the chat service and serves HTTP, using the pieces here ([`Engine`], [`Scheduler`],
//! [`reload`], [`Signals`], [`systemd`]). Every task hangs off one [`CancellationToken`] and
//! one [`tokio_util::task::TaskTracker`].
//!
//! This module must not run SQL (the store does), build JSON DTOs (http does), read secrets
//! anywhere but at apply time, or import a domain (`chat`, `mail`, `http`, ...;
//! `tests/tidy.rs` checks).

pub mod apply;
pub mod reload;
pub mod scheduler;
pub mod systemd;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{ConfigSet, Kind, Object};
use crate::connector::{Built, ConnectorError, Registry, SyncContext, resolve_secrets};
use crate::store::{ObjectState, ObjectStatus, Store, StoreHandle, SyncOutcome};
use crate::telemetry::Metrics;

pub use apply::Engine;
pub use scheduler::{Job, Scheduler};

/// How long shutdown waits for in-flight work before exiting anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// What `switchboard run` needs.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// `--config` directories.
    pub config_dirs: Vec<PathBuf>,
    /// `--state` file.
    pub state: PathBuf,
}

/// The signals the daemon handles, registered once at start.
pub struct Signals {
    /// SIGHUP: reload.
    pub hangup: Option<Signal>,
    /// SIGTERM: stop.
    pub terminate: Option<Signal>,
    /// SIGINT: stop.
    pub interrupt: Option<Signal>,
}

impl Signals {
    /// Takes over SIGHUP, SIGTERM and SIGINT (their default action kills the process).
    pub fn install() -> Signals {
        let install = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot handle {name}");
                None
            }
        };
        Signals {
            hangup: install(SignalKind::hangup(), "SIGHUP"),
            terminate: install(SignalKind::terminate(), "SIGTERM"),
            interrupt: install(SignalKind::interrupt(), "SIGINT"),
        }
    }
}

/// Receives one delivery of `s`; never resolves when the signal could not be installed.
pub(crate) async fn next_signal(s: &mut Option<Signal>) -> Option<()> {
    match s {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// Resolves on SIGTERM, SIGINT, or when `cancel` fires (a fatal task error).
pub async fn wait_for_stop(
    mut term: Option<Signal>,
    mut int: Option<Signal>,
    cancel: &CancellationToken,
) {
    tokio::select! {
        _ = next_signal(&mut term) => tracing::info!("SIGTERM received"),
        _ = next_signal(&mut int) => tracing::info!("SIGINT received"),
        () = cancel.cancelled() => {}
    }
}

/// Runs one object's sync in this process (for `switchboard sync` when no daemon answers):
/// load the config, open the store, run the connector `registry` builds once, record the
/// result. Returns a one-line summary, or an error message that says what to do.
pub fn sync_once_with(
    opts: &DaemonOptions,
    registry: &Registry,
    kind: Kind,
    name: &str,
) -> Result<String, String> {
    let outcome = crate::config::load(&opts.config_dirs);
    let Some(set) = outcome.set else {
        return Err(format!(
            "the configuration is invalid ({} errors); run `switchboard validate`",
            outcome.diagnostics.len()
        ));
    };
    let id = format!("{kind}/{name}");
    let object: Object = set
        .object(kind, name)
        .cloned()
        .ok_or_else(|| format!("{id} is not in the configuration"))?;
    let connector = match registry.build(&object, &set) {
        Built::Connector(c) => c,
        Built::Passive => {
            return Err(format!(
                "{id} is configuration only; there is nothing to sync"
            ));
        }
        Built::Pending(reason) => return Err(format!("{id} cannot sync: {reason}")),
    };
    let mut store = Store::open(&opts.state).map_err(|e| e.to_string())?;
    // As `run` would: the current config becomes the applied one first, so a cron job or a
    // laptop needs no daemon (SPEC `sync`).
    let clock = Clock::system();
    let kept = apply::record(&mut store, &set, registry, clock.now()).map_err(|e| e.to_string())?;
    record_states(&mut store, registry, &set, &kept).map_err(|e| e.to_string())?;
    let secrets = resolve_secrets(&object).map_err(|e| format!("{id}: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let started = clock.now();
    store
        .record_sync_start(kind.as_str(), name, started)
        .map_err(|e| e.to_string())?;
    // The connector's own connection to the same file (WAL: both may be open at once).
    let connector_store = StoreHandle::new(Store::open(&opts.state).map_err(|e| e.to_string())?);
    let metrics = Metrics::new();
    let result = runtime.block_on(async {
        // The grants the daemon found refused stay refused here too (BX-04), and a refusal
        // seen here is kept for the daemon.
        let (writer, stop) = (
            tokio_util::task::TaskTracker::new(),
            CancellationToken::new(),
        );
        if let Err(e) = metrics
            .grants
            .persist(&connector_store, &writer, stop.clone())
            .await
        {
            tracing::warn!(error = %e, "the refused OAuth grants could not be read");
        }
        let result = connector
            .sync(SyncContext {
                object: &object,
                secrets: &secrets,
                cancel: CancellationToken::new(),
                store: &connector_store,
                metrics: &metrics,
                clock,
            })
            .await;
        stop.cancel();
        writer.close();
        writer.wait().await;
        result
    });
    let at = clock.now();
    let k = kind.as_str();
    match result {
        Ok(report) => {
            let outcome = SyncOutcome::Success {
                items_in: report.items_in,
                items_out: report.items_out,
            };
            store
                .record_sync_result(k, name, &outcome, at)
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "{id}: synced ({} in, {} out)",
                report.items_in, report.items_out
            ))
        }
        Err(failure @ (ConnectorError::Failed(_) | ConnectorError::Throttled { .. })) => {
            let error = match failure {
                ConnectorError::Failed(error) => error,
                other => other.to_string(),
            };
            let outcome = SyncOutcome::Failure {
                error: error.clone(),
            };
            store
                .record_sync_result(k, name, &outcome, at)
                .map_err(|e| e.to_string())?;
            Err(format!("{id}: sync failed: {error}"))
        }
        Err(ConnectorError::Cancelled) => {
            store
                .set_state(k, name, ObjectState::Pending, Some("interrupted"))
                .map_err(|e| e.to_string())?;
            Err(format!("{id}: sync interrupted"))
        }
    }
}

/// The states an apply gives objects that run no connector: passive ones `ready`, pending ones
/// with their reason, unreadable secrets `error` (naming the reference), removed objects their
/// kind kept (deactivated) `pending`. Connector objects keep what their runs recorded.
fn record_states(
    store: &mut Store,
    registry: &Registry,
    set: &ConfigSet,
    kept: &[(String, String, String)],
) -> Result<(), crate::store::StoreError> {
    for object in &set.objects {
        let (kind, name) = (object.kind().as_str(), object.name.as_str());
        match resolve_secrets(object) {
            Err(e) => store.set_state(kind, name, ObjectState::Error, Some(&e.to_string()))?,
            Ok(_) => match registry.build(object, set) {
                Built::Passive => store.set_state(kind, name, ObjectState::Ready, None)?,
                Built::Pending(reason) => {
                    store.set_state(kind, name, ObjectState::Pending, Some(&reason))?
                }
                Built::Connector(_) => {}
            },
        }
    }
    for (kind, name, reason) in kept {
        store.set_state(kind, name, ObjectState::Pending, Some(reason))?;
    }
    Ok(())
}

/// Recomputes `switchboard_objects{kind,state}` from the store's statuses.
pub(crate) async fn refresh_objects_gauge(store: &StoreHandle, metrics: &Metrics) {
    match store.call(|s| s.statuses()).await {
        Ok(statuses) => metrics.set_objects(&count_states(&statuses)),
        Err(e) => tracing::error!(error = %e, "could not read object statuses"),
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
