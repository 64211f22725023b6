//! IMAP IDLE against a real Dovecot (tests/support/dovecot.rs): mail delivered while the
//! daemon idles on INBOX is loaded without waiting for the poll interval, and the idle task
//! stops with the object and with shutdown.
//!
//! The mailbox runs under the engine's real [`Scheduler`] with a one-hour poll interval, so
//! within a test only the start run and runs requested by the IDLE watch can load mail.
//! Progress is observed with bounded polling loops, never timing assertions.

mod support;

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use switchboard::clock::Clock;
use switchboard::config::{ConfigSet, Kind};
use switchboard::connector::Trigger;
use switchboard::connector::resolve_secrets;
use switchboard::engine::apply::changes;
use switchboard::engine::{Job, Scheduler};
use switchboard::store::Store;
use switchboard::store::StoreHandle;
use switchboard::store::mail::EmailQuery;
use switchboard::telemetry::Metrics;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use support::dovecot::{dovecot, message};

const PASSWORD: &str = "idle-Pa55";
/// Far beyond any test: polling cannot be what loads the mail.
const POLL: Duration = Duration::from_secs(3600);
/// The bound of every wait; generous for a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(60);

struct Rig {
    _dir: tempfile::TempDir,
    set: ConfigSet,
    store: StoreHandle,
    metrics: Metrics,
    tracker: TaskTracker,
    cancel: CancellationToken,
    scheduler: Scheduler,
}

fn rig(address: &str) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    std::fs::write(config.join("password.txt"), PASSWORD).expect("password file");
    let domain = address.split('@').nth(1).expect("domain");
    std::fs::write(
        config.join("mail.yaml"),
        format!(
            "apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: owner}}\nspec: {{displayName: Owner, email: owner@example.com}}\n---\n\
             apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {{name: dovecot}}\nspec:\n  type: imap\n  title: Test Dovecot\n  domains: [{domain}]\n  \
             imap: {{host: 127.0.0.1, port: {port}, security: none}}\n  smtp: {{host: 127.0.0.1, port: 25, security: none}}\n  loginFormat: email\n---\n\
             apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: box}}\nspec:\n  address: {address}\n  owner: owner\n  password: {{file: password.txt}}\n  \
             load: {{period: 1w, folders: [INBOX]}}\n",
            port = dovecot().imap_port,
        ),
    )
    .expect("manifest");
    let set = switchboard::config::load(&[config])
        .into_result()
        .unwrap_or_else(|d| panic!("valid config: {d:?}"));
    let mut store = Store::open(&dir.path().join("state.db")).expect("store");
    store
        .apply(&changes(&set, &[]), chrono::Utc::now())
        .expect("apply");
    let store = StoreHandle::new(store);
    let metrics = Metrics::new();
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let scheduler = Scheduler::new(
        tracker.clone(),
        cancel.clone(),
        store.clone(),
        metrics.clone(),
        Clock::system(),
    );
    Rig {
        _dir: dir,
        set,
        store,
        metrics,
        tracker,
        cancel,
        scheduler,
    }
}

impl Rig {
    /// Schedules the mailbox the way the engine does, polled every [`POLL`].
    fn start(&mut self) {
        let object = self
            .set
            .object(Kind::Mailbox, "box")
            .expect("mailbox")
            .clone();
        let connector =
            switchboard::mail::build(&object, &self.set).expect("an IMAP mailbox has a connector");
        let secrets = resolve_secrets(&object).expect("secrets");
        self.scheduler.upsert(
            Job {
                object,
                connector,
                secrets,
                trigger: Trigger::Interval(POLL),
            },
            "idle-test".into(),
        );
    }

    async fn message_ids(&self) -> Vec<String> {
        let page = self
            .store
            .call(|s| {
                s.emails(&EmailQuery {
                    mailbox: Some("box".into()),
                    limit: 1000,
                    ..EmailQuery::default()
                })
            })
            .await
            .expect("emails");
        let mut ids: Vec<String> = page
            .items
            .iter()
            .map(|e| e.message_id.clone().expect("message id"))
            .collect();
        ids.sort();
        ids
    }

    fn successful_runs(&self) -> u64 {
        self.metrics
            .sync_runs_total
            .with_label_values(&["Mailbox", "box", "success"])
            .get()
    }
}

/// Polls `check` until it holds, for at most [`PATIENCE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_delivered_while_idling_is_loaded_without_waiting_for_the_poll() {
    // REQ: MB-02 (new mail is loaded automatically: INBOX watched with IDLE, RFC 2177)
    let address = "idle-deliver@idle.test";
    let server = dovecot();
    server.add_user(address, PASSWORD);
    server.load(
        address,
        "INBOX",
        &[message(
            "a@example.org",
            address,
            "before",
            "idle-before@example.test",
            "old",
        )],
    );
    let mut rig = rig(address);
    rig.start();
    // The start run, then the run the watch asks for once IDLE is established: after the
    // second run the connection idles, and nothing but an IDLE notice can cause a third.
    eventually("the start run and the post-IDLE run", || async {
        rig.successful_runs() >= 2
    })
    .await;
    assert_eq!(rig.message_ids().await, ["idle-before@example.test"]);

    server.append(
        address,
        PASSWORD,
        "INBOX",
        &message(
            "b@example.org",
            address,
            "while idling",
            "idle-during@example.test",
            "new",
        ),
    );
    eventually("the message appended while idling is stored", || async {
        rig.message_ids().await.len() == 2
    })
    .await;
    assert_eq!(
        rig.message_ids().await,
        ["idle-before@example.test", "idle-during@example.test"],
        "each message once"
    );

    rig.cancel.cancel();
    rig.tracker.close();
    // Within the daemon's shutdown grace: `switchboard run` waits no longer.
    assert!(
        tokio::time::timeout(switchboard::engine::SHUTDOWN_GRACE, rig.tracker.wait())
            .await
            .is_ok(),
        "shutdown stops the scheduler task and the idle task"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_mailbox_stops_its_idle_task() {
    // REQ: SPEC run (every task is owned and stops when its object goes), MB-02
    let address = "idle-remove@idle.test";
    let server = dovecot();
    server.add_user(address, PASSWORD);
    let mut rig = rig(address);
    rig.start();
    eventually(
        "IDLE is established (the run it requests succeeded)",
        || async { rig.successful_runs() >= 2 },
    )
    .await;
    assert_eq!(rig.tracker.len(), 2, "the object's task and its idle task");
    rig.scheduler.retain(&HashSet::new());
    eventually("both tasks end once the object is removed", || async {
        rig.tracker.is_empty()
    })
    .await;
    assert!(!rig.cancel.is_cancelled(), "only the object's token fired");
}
