//! Crash safety of the mail sync: the real `switchboard run` daemon syncs a few hundred
//! messages from a real Dovecot and is killed with SIGKILL mid-sync, several times; each restart
//! resumes from the committed checkpoint, and in the end every message is stored exactly once.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchboard::store::Store;
use switchboard::store::mail::EmailQuery;

use support::dovecot::{dovecot, messages};
use support::free_port;

const PASSWORD: &str = "crash-pa55";

fn start(dir: &Path, round: usize) -> Child {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(dir.join("config"))
        .arg("--state")
        .arg(dir.join("state.db"))
        .arg("run")
        .env_remove("NOTIFY_SOCKET")
        .env("SB_MAIL_PASSWORD", PASSWORD)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("stderr-{round}.log"))).expect("log"))
        .spawn()
        .expect("start switchboard")
}

fn log(dir: &Path, round: usize) -> String {
    std::fs::read_to_string(dir.join(format!("stderr-{round}.log"))).unwrap_or_default()
}

/// Stored message count (0 while the state file does not exist or is being created).
fn stored(dir: &Path) -> i64 {
    Store::open_read_only(&dir.join("state.db"))
        .and_then(|s| {
            s.emails(&EmailQuery {
                limit: 1,
                ..EmailQuery::default()
            })
        })
        .map_or(0, |page| page.total)
}

#[test]
fn sigkill_mid_sync_loses_and_duplicates_nothing() {
    // REQ: MB-02 (resumable sync), SPEC Files on disk (kill -9 at any moment loses nothing)
    let server = dovecot();
    let address = "crash@example.test";
    server.add_user(address, PASSWORD);
    let total: usize = 1000;
    let filler = "y".repeat(8_000);
    let letters: Vec<String> = messages("crash", address, total)
        .into_iter()
        .map(|m| m.replace("\r\n\r\nBody", &format!("\r\n\r\n{filler}\r\nBody")))
        .collect();
    server.load(address, "INBOX", &letters);

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    let port = free_port();
    std::fs::write(
        config.join("all.yaml"),
        format!(
            "apiVersion: switchboard/v1\nkind: Settings\nmetadata: {{name: default}}\nspec: {{siteUrl: 'http://127.0.0.1:{port}', listen: '127.0.0.1:{port}'}}\n---\n\
             apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: owner}}\nspec: {{displayName: Owner, email: owner@example.com}}\n---\n\
             apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {{name: dovecot}}\nspec:\n  type: imap\n  title: Test Dovecot\n  domains: [example.test]\n  \
             imap: {{host: 127.0.0.1, port: {imap}, security: none}}\n  smtp: {{host: 127.0.0.1, port: 25, security: none}}\n---\n\
             apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: crash}}\nspec:\n  address: {address}\n  owner: owner\n  password: {{env: SB_MAIL_PASSWORD}}\n",
            imap = server.imap_port,
        ),
    )
    .expect("manifest");

    // Kill the daemon as soon as it has made progress, at a slightly different moment each
    // round, until the sync would complete on its own.
    let mut last = 0;
    let mut kills = 0;
    for round in 0..6 {
        let mut child = start(dir.path(), round);
        let deadline = Instant::now() + Duration::from_secs(30);
        let now = loop {
            let now = stored(dir.path());
            if now > last {
                break now;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the daemon exited with {status}:\n{}",
                    log(dir.path(), round)
                );
            }
            assert!(
                Instant::now() < deadline,
                "no progress:\n{}",
                log(dir.path(), round)
            );
            std::thread::sleep(Duration::from_millis(1));
        };
        std::thread::sleep(Duration::from_millis(3 * round as u64));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let after = stored(dir.path());
        assert!(after >= now, "committed mail never disappears");
        if after as usize == total {
            break;
        }
        kills += 1;
        last = after;
    }
    assert!(
        kills >= 2,
        "the daemon was killed mid-sync at least twice ({kills})"
    );

    // A last, undisturbed run finishes the sync.
    let mut child = start(dir.path(), 99);
    let deadline = Instant::now() + Duration::from_secs(60);
    while (stored(dir.path()) as usize) < total {
        assert!(
            Instant::now() < deadline,
            "the sync did not finish: {} of {total}\n{}",
            stored(dir.path()),
            log(dir.path(), 99)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("stop");
    child.wait().expect("reap");

    let store = Store::open_read_only(&dir.path().join("state.db")).expect("store");
    let page = store
        .emails(&EmailQuery {
            limit: total * 2,
            ..EmailQuery::default()
        })
        .expect("emails");
    assert_eq!(
        page.total as usize, total,
        "every message stored, none twice"
    );
    let mut ids: Vec<String> = page
        .items
        .iter()
        .map(|e| e.message_id.clone().expect("message id"))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "each Message-ID exactly once");
    let folder = store
        .mail_folder("crash", "INBOX")
        .expect("read")
        .expect("checkpoint");
    assert_eq!(folder.messages as usize, total);
}
