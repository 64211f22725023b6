//! The running set: apply, reload, scheduler, connectors, shutdown and sd_notify.
//!
//! [`run_daemon`] is `switchboard run`: load and validate the config (invalid → exit 1), open the
//! store, apply, serve HTTP, run the scheduler and the reload loop, and stop gracefully on
//! SIGTERM/SIGINT. Every task hangs off one [`CancellationToken`] and one [`TaskTracker`].
//!
//! This module must not run SQL (the store does), build JSON DTOs (http does) or read secrets
//! anywhere but at apply time.

pub mod apply;
pub mod connector;
pub mod handle;
pub mod reload;
pub mod scheduler;
pub mod systemd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::diagnostics::render_text;
use crate::config::{Kind, Object};
use crate::store::{ObjectState, Store, SyncOutcome};
use crate::telemetry::Metrics;

pub use apply::Engine;
pub use connector::{
    Built, Connector, ConnectorError, Registry, SyncContext, SyncReport, WatchContext, WatchFuture,
};
pub use handle::{Clock, EngineHandle, StoreHandle, SyncRequestError};
pub use scheduler::{Job, Scheduler, Trigger};

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

/// Runs the daemon until SIGTERM/SIGINT. Exit 0 after a graceful stop, 1 when it cannot start.
pub fn run_daemon(opts: DaemonOptions) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(daemon(opts))
}

async fn daemon(opts: DaemonOptions) -> ExitCode {
    // Take over SIGHUP, SIGTERM and SIGINT before anything slow: their default action kills
    // the process, and systemd may send a reload as soon as the unit is up.
    let signals = Signals::install();
    let dirs = opts.config_dirs.clone();
    let outcome = tokio::task::spawn_blocking(move || crate::config::load(&dirs))
        .await
        .expect("loading the config does not panic");
    let Some(set) = outcome.set else {
        // REQ: SPEC run (an invalid config at start is an error, not an empty daemon)
        eprint!("{}", render_text(&outcome.diagnostics, &outcome.sources));
        eprintln!("error: the configuration is invalid; fix it and start again");
        return ExitCode::from(1);
    };
    let state = opts.state.clone();
    let store = match tokio::task::spawn_blocking(move || Store::open(&state))
        .await
        .expect("opening the store does not panic")
    {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };

    let metrics = Metrics::new();
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let clock = Clock::system();
    let handle = EngineHandle::new(StoreHandle::new(store), metrics.clone());
    let scheduler = Scheduler::new(
        tracker.clone(),
        cancel.clone(),
        handle.store().clone(),
        metrics.clone(),
        clock,
    );
    let mut engine = Engine::new(Registry::builtin(), handle.clone(), scheduler, clock);
    let listen = set.listen();
    if let Err(e) = engine.apply(set).await {
        eprintln!("error: could not apply the configuration: {e}");
        return ExitCode::from(1);
    }
    reload::succeeded(&metrics);

    let chat = match crate::chat::ChatService::start(
        &opts.state,
        handle.clone(),
        clock,
        &tracker,
        cancel.clone(),
    )
    .await
    {
        Ok(chat) => chat,
        Err(e) => {
            eprintln!("error: cannot start the chat engine: {e}");
            cancel.cancel();
            tracker.close();
            tracker.wait().await;
            return ExitCode::from(1);
        }
    };

    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: cannot listen on {listen} (Settings.listen): {e}; pick a free address or stop the process using it"
            );
            cancel.cancel();
            tracker.close();
            tracker.wait().await;
            return ExitCode::from(1);
        }
    };
    tracing::info!(%listen, "listening");
    let state = crate::http::AppState {
        engine: handle.clone(),
        metrics: std::sync::Arc::new(metrics.clone()),
        chat,
    };
    tracker.spawn({
        let cancel = cancel.clone();
        async move {
            if let Err(e) = crate::http::serve(listener, state, cancel.clone()).await {
                tracing::error!(error = %e, "the HTTP server stopped; shutting down");
                cancel.cancel();
            }
        }
    });
    let Signals {
        hangup,
        terminate,
        interrupt,
    } = signals;
    tracker.spawn(reload::run(
        engine,
        opts.config_dirs.clone(),
        hangup,
        cancel.clone(),
    ));
    if let Some(every) = systemd::watchdog_interval() {
        tracker.spawn(systemd::watchdog(every, cancel.clone()));
    }
    systemd::ready();
    tracing::info!("switchboard is running");

    wait_for_stop(terminate, interrupt, &cancel).await;
    // REQ: SPEC run (graceful stop on SIGTERM/SIGINT; in-flight syncs checkpoint)
    systemd::stopping();
    tracing::info!("stopping");
    cancel.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "some tasks did not stop within {}s; exiting anyway",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// The signals the daemon handles, registered once at start.
struct Signals {
    hangup: Option<Signal>,
    terminate: Option<Signal>,
    interrupt: Option<Signal>,
}

impl Signals {
    fn install() -> Signals {
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
async fn wait_for_stop(
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
/// load the config, open the store, run the connector once, record the result. Returns a
/// one-line summary, or an error message that says what to do.
pub fn sync_once(opts: &DaemonOptions, kind: Kind, name: &str) -> Result<String, String> {
    sync_once_with(opts, &Registry::builtin(), kind, name)
}

/// [`sync_once`] with a given registry.
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
    let secrets = apply::resolve_secrets(&object).map_err(|e| format!("{id}: {e}"))?;
    let mut store = Store::open(&opts.state).map_err(|e| e.to_string())?;
    let applied = store.applied_objects().map_err(|e| e.to_string())?;
    if !applied
        .iter()
        .any(|o| o.kind == kind.as_str() && o.name == name)
    {
        return Err(format!(
            "{id} is not applied yet; start the daemon (`switchboard run`) to apply the configuration first"
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let started = chrono::Utc::now();
    store
        .record_sync_start(kind.as_str(), name, started)
        .map_err(|e| e.to_string())?;
    // The connector's own connection to the same file (WAL: both may be open at once).
    let connector_store = StoreHandle::new(Store::open(&opts.state).map_err(|e| e.to_string())?);
    let metrics = Metrics::new();
    let result = runtime.block_on(connector.sync(SyncContext {
        object: &object,
        secrets: &secrets,
        cancel: CancellationToken::new(),
        store: &connector_store,
        metrics: &metrics,
    }));
    let at = chrono::Utc::now();
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
        Err(ConnectorError::Failed(error)) => {
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
