//! A mailbox's status against the real Dovecot: messages per folder and the progress of a
//! folder's first sync, in `switchboard status` (text and JSON) and `GET /api/v1/objects`.
//!
//! The first sync is interrupted between batches by its own cancellation token (fired from
//! the commit callback), so "loaded N of M" is observed at a known point, not at a moment.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use switchboard::clock::Clock;
use switchboard::config::{ConfigSet, Kind};
use switchboard::connector::resolve_secrets;
use switchboard::connector::{Connector, SyncContext};
use switchboard::engine::apply::changes;
use switchboard::mail::imap::{self, Auth, FolderSync, ImapError, Server};
use switchboard::store::Store;
use switchboard::store::StoreHandle;
use switchboard::telemetry::Metrics;
use tokio_util::sync::CancellationToken;

use support::dovecot::{dovecot, messages};
use support::{Daemon, eventually, find, free_port};

const PASSWORD: &str = "status-Pa55";

/// The manifests of Mailbox `box` at `address`; `password` is its secret reference.
fn manifests(address: &str, port: u16, password: &str) -> String {
    let domain = address.split('@').nth(1).expect("domain");
    format!(
        "apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: owner}}\nspec: {{displayName: Owner, email: owner@example.com}}\n---\n\
         apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {{name: dovecot}}\nspec:\n  type: imap\n  title: Test Dovecot\n  domains: [{domain}]\n  \
         imap: {{host: 127.0.0.1, port: {port}, security: none}}\n  smtp: {{host: 127.0.0.1, port: 25, security: none}}\n---\n\
         apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: box}}\nspec:\n  address: {address}\n  owner: owner\n  password: {password}\n  \
         load: {{period: 1w, folders: all}}\n  send: {{enabled: false}}\n"
    )
}

fn status(state: &Path, format: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--state")
        .arg(state)
        .args(["status", "--format", format])
        .env_remove("SWITCHBOARD_STATE")
        .output()
        .expect("run switchboard status");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn folders(json: &str) -> serde_json::Value {
    let rows: serde_json::Value = serde_json::from_str(json).expect("JSON");
    rows.as_array()
        .expect("rows")
        .iter()
        .find(|r| r["kind"] == "Mailbox" && r["name"] == "box")
        .expect("Mailbox/box")["folders"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_messages_per_folder_and_the_first_sync_progress() {
    // REQ: MB-02 (first sync of the load period, per folder), issue #5 status: messages per
    // folder and first-sync progress
    let server = dovecot();
    let address = "progress@status.example.test";
    server.add_user(address, PASSWORD);
    server.load(address, "INBOX", &messages("progress", address, 650));
    server.load(address, "Archive", &messages("archived", address, 3));

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    std::fs::write(config.join("password.txt"), PASSWORD).expect("password file");
    std::fs::write(
        config.join("mail.yaml"),
        manifests(address, server.imap_port, "{file: password.txt}"),
    )
    .expect("manifest");
    let set: ConfigSet = switchboard::config::load(&[config])
        .into_result()
        .unwrap_or_else(|d| panic!("valid config: {d:?}"));
    let state = dir.path().join("state.db");
    let mut store = Store::open(&state).expect("store");
    store
        .apply(&changes(&set, &[]), chrono::Utc::now())
        .expect("apply");
    let store = StoreHandle::new(store);

    // The first sync of INBOX stops after its first batch committed: the batch already on
    // the wire is committed too (pipelining), then the loop sees the token.
    let imap_server = Server {
        host: "127.0.0.1".into(),
        port: server.imap_port,
        security: switchboard::config::kinds::Security::None,
        ca_file: None,
    };
    let mut session = imap::connect(&imap_server, address, Auth::Password(PASSWORD))
        .await
        .expect("login");
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let on_commit = move |new: u64| {
        if new > 0 {
            stop.cancel();
        }
    };
    let sync = FolderSync {
        mailbox: "box",
        store: &store,
        period: std::time::Duration::from_secs(7 * 24 * 3600),
        own: &[address.to_owned()],
        cancel: &cancel,
        on_commit: &on_commit,
        clock: Clock::system(),
    };
    let stopped = imap::sync_folder(&mut session, "INBOX", &sync, false).await;
    assert!(matches!(stopped, Err(ImapError::Cancelled)), "{stopped:?}");
    let _ = session.logout().await;

    let loaded = 2 * imap::BATCH as u64;
    let json = status(&state, "json");
    assert_eq!(
        folders(&json),
        serde_json::json!([
            {"name": "INBOX", "messages": loaded, "firstSync": {"loaded": loaded, "total": 650}}
        ]),
        "{json}"
    );
    let text = status(&state, "text");
    assert!(
        text.contains(&format!(
            "  INBOX  {loaded} messages  (first sync: {loaded} of 650 loaded)"
        )),
        "{text}"
    );

    // The next run resumes: the first sync completes, the progress goes, every folder counts.
    let object = set.object(Kind::Mailbox, "box").expect("mailbox");
    let connector: Arc<dyn Connector> =
        switchboard::mail::build(object, &set).expect("an IMAP mailbox has a connector");
    let secrets = resolve_secrets(object).expect("secrets");
    let metrics = Metrics::new();
    let report = connector
        .sync(SyncContext {
            object,
            secrets: &secrets,
            cancel: CancellationToken::new(),
            store: &store,
            metrics: &metrics,
            clock: Clock::system(),
        })
        .await
        .expect("the resumed sync succeeds");
    assert_eq!(report.items_in, 650 - loaded + 3, "nothing loaded twice");
    let json = status(&state, "json");
    assert_eq!(
        folders(&json),
        serde_json::json!([
            {"name": "Archive", "messages": 3, "firstSync": null},
            {"name": "INBOX", "messages": 650, "firstSync": null},
            // The test Dovecot creates Sent (special-use \Sent) for every user.
            {"name": "Sent", "messages": 0, "firstSync": null}
        ]),
        "{json}"
    );
    let text = status(&state, "text");
    assert!(text.contains("  Archive  3 messages\n"), "{text}");
    assert!(text.contains("  INBOX    650 messages\n"), "{text}");
    assert!(text.contains("  Sent     0 messages\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_objects_api_lists_a_mailbox_folders_with_their_counts() {
    // REQ: issue #5 status (GET /api/v1/objects shares the status view)
    let server = dovecot();
    let address = "api@status.example.test";
    server.add_user(address, PASSWORD);
    server.load(address, "INBOX", &messages("api", address, 2));
    let port = free_port();
    let mut files = support::base_config(port);
    files.retain(|(name, _)| *name != "mail.yaml");
    files.push((
        "mail.yaml",
        manifests(address, server.imap_port, "{env: SB_MAIL_PASSWORD}"),
    ));
    let mut daemon = Daemon::start(port, &files, &[("SB_MAIL_PASSWORD", PASSWORD)]);
    daemon.wait_ready().await;
    let expected = serde_json::json!([
        {"name": "INBOX", "messages": 2, "firstSync": null},
        {"name": "Sent", "messages": 0, "firstSync": null}
    ]);
    eventually("the mailbox synced", &daemon, || async {
        find(&daemon.objects().await, "Mailbox", "box").is_some_and(|o| o["folders"] == expected)
    })
    .await;
    let objects = daemon.objects().await;
    let queue = find(&objects, "ChatQueue", "support").expect("ChatQueue/support");
    assert!(queue.get("folders").is_none(), "{queue}");
}
