//! The composition root: the one place that wires the domains to the engine. It builds the
//! connector [`Registry`] from chat and mail, starts the chat service, builds
//! [`http::AppState`] and serves it, and runs the daemon's lifecycle with the engine's pieces.
//! `cli` calls it; nothing else imports it.
//!
//! [`run_daemon`] is `switchboard run`: load and validate the config (invalid → exit 1), open the
//! store, bind the listener (taken → exit 1 before any connector touches a provider), apply,
//! start the chat service, serve HTTP, run the scheduler and the reload loop, and stop gracefully on
//! SIGTERM/SIGINT.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chat::ChatService;
use crate::clock::Clock;
use crate::config::Kind;
use crate::config::diagnostics::render_text;
use crate::connector::{EngineHandle, Registry};
use crate::engine::{self, Engine, Scheduler, Signals};
use crate::http::{self, AppState};
use crate::store::{Store, StoreHandle};
use crate::telemetry::Metrics;

pub use crate::engine::DaemonOptions;

/// The registry of the shipped connectors. Kinds not registered here are passive or pending.
pub fn registry() -> Registry {
    let mut registry = Registry::default();
    // Mail: imap/gmail providers sync over IMAP, microsoft365 (oauth2) through Graph;
    // exchange mailboxes are pending with their reason.
    registry.register(Kind::Mailbox, crate::mail::MailboxConnectors);
    // Chat channels: each provider's reconciler, every `RECONCILE_INTERVAL`; a removed
    // Telegram channel takes its webhook back.
    registry.register(Kind::ChatChannel, crate::chat::channels::ChannelConnectors);
    // LinkedIn lead generation: each active integration turns its stored notifications into
    // leads, on request (the webhook) and every `leads::SWEEP_INTERVAL`.
    registry.register(Kind::LeadIntegration, crate::leads::LeadConnectors);
    // Contact sync: over a DavAccount (CardDAV), two-way; other accounts are pending.
    registry.register(Kind::ContactSync, crate::sync::ContactSyncConnectors);
    registry.register(Kind::CalendarSync, crate::sync::CalendarSyncConnectors);
    registry
}

/// Runs one object's sync in this process (for `switchboard sync` when no daemon answers),
/// with the shipped connectors. See [`engine::sync_once_with`].
pub fn sync_once(opts: &DaemonOptions, kind: Kind, name: &str) -> Result<String, String> {
    engine::sync_once_with(opts, &registry(), kind, name)
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
    let store = match tokio::task::spawn_blocking(move || {
        let mut store = Store::open(&state)?;
        match store.mark_interrupted_runs() {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                objects = n,
                "runs interrupted when the daemon last stopped resume on their next run"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not mark the runs the last stop interrupted")
            }
        }
        Ok::<_, crate::store::StoreError>(store)
    })
    .await
    .expect("opening the store does not panic")
    {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };

    // Bind before anything touches a provider: a daemon that cannot serve exits having
    // changed nothing outside (no webhook registered, no mailbox synced; issue 20).
    let listen = set.listen();
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: cannot listen on {listen} (Settings.listen): {e}; pick a free address or stop the process using it"
            );
            return ExitCode::from(1);
        }
    };
    tracing::info!(%listen, "listening");

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
    // Grants refused before the restart stay refused (BX-04): loaded before anything runs.
    if let Err(e) = metrics
        .grants
        .persist(handle.store(), &tracker, cancel.clone())
        .await
    {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    for (kind, name) in metrics.grants.marked() {
        if Kind::parse(&kind).is_some_and(|k| set.object(k, &name).is_some()) {
            // Not refreshed since: its access token shows as expired, so the consent alert
            // (`SwitchboardOAuthConsentNeeded`) keeps firing across the restart.
            metrics
                .oauth_token_expiry_timestamp_seconds
                .with_label_values(&[&kind, &name]);
        } else {
            // Removed from the config while the daemon was down.
            metrics.grants.forget(&kind, &name);
        }
    }
    let mut engine = Engine::new(registry(), handle.clone(), scheduler, clock);
    if let Err(e) = engine.apply(set).await {
        eprintln!("error: could not apply the configuration: {e}");
        return ExitCode::from(1);
    }
    engine::reload::succeeded(&metrics);

    let chat = match ChatService::start(
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

    // Watch the config before serving: an edit made once the daemon answers is reloaded.
    let watching = engine::reload::watch(&opts.config_dirs);
    let state = AppState {
        engine: handle.clone(),
        metrics: std::sync::Arc::new(metrics.clone()),
        chat,
        oidc: std::sync::Arc::new(http::oidc::Verifier::new(clock)),
    };
    tracker.spawn({
        let cancel = cancel.clone();
        async move {
            if let Err(e) = http::serve(listener, state, cancel.clone()).await {
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
    tracker.spawn(engine::reload::run(
        engine,
        opts.config_dirs.clone(),
        watching,
        hangup,
        cancel.clone(),
    ));
    tracker.spawn(crate::telemetry::disk::watch_recovery(
        state_dir(&opts.state),
        cancel.clone(),
    ));
    if let Some(every) = engine::systemd::watchdog_interval() {
        tracker.spawn(engine::systemd::watchdog(every, cancel.clone()));
    }
    engine::systemd::ready();
    tracing::info!("switchboard is running");

    engine::wait_for_stop(terminate, interrupt, &cancel).await;
    // REQ: SPEC run (graceful stop on SIGTERM/SIGINT; in-flight syncs checkpoint)
    engine::systemd::stopping();
    tracing::info!("stopping");
    cancel.cancel();
    tracker.close();
    if tokio::time::timeout(engine::SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "some tasks did not stop within {}s; exiting anyway",
            engine::SHUTDOWN_GRACE.as_secs()
        );
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// The directory that holds the state file (its file system is the one that fills up).
fn state_dir(state: &std::path::Path) -> std::path::PathBuf {
    match state.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    }
}
