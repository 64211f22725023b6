//! Disk trouble under the real daemon: the state file's disk fills up while webhooks arrive
//! or mail is synced (a small tmpfs), and a state directory that cannot be written at start.
//!
//! Needs root (it mounts tmpfs file systems); see `tests/support/disk.rs`.

mod chat_support;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use chat_support::{INBOUND, files, message};
use support::disk::Tmpfs;
use support::dovecot::{dovecot, messages};
use support::{ADMIN_TOKEN, Daemon, eventually, eventually_within, find, free_port};
use switchboard::store::Store;
use switchboard::store::chat::{ChatFilter, Direction};

/// POSTs an api-channel message whose text is its id and `size` bytes of padding.
async fn post(daemon: &Daemon, id: &str, size: usize) -> reqwest::Response {
    switchboard::net::http_client()
        .post(format!("{}/webhooks/api/web", daemon.base))
        .bearer_auth(INBOUND)
        .json(&message(
            id,
            "visitor-1",
            &format!("{id} {}", "x".repeat(size)),
        ))
        .send()
        .await
        .expect("POST")
}

/// The ids (first word of the text) of every inbound message stored, with repeats (a doubled
/// one shows twice).
fn stored_ids(state: &std::path::Path) -> Vec<String> {
    let store = Store::open_read_only(state).expect("state file");
    let (chats, _) = store.chats(&ChatFilter::default(), 0, 1000).expect("chats");
    let ids: Vec<i64> = chats.iter().map(|c| c.id).collect();
    store
        .chat_messages(&ids)
        .expect("messages")
        .into_iter()
        .filter(|m| m.direction == Direction::In)
        .filter_map(|m| m.text.split(' ').next().map(str::to_owned))
        .collect()
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

// REQ: SPEC HTTP (the api channel: 2xx only once stored)
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_answers_503_keeps_running_and_recovers_when_space_returns() {
    let disk = Tmpfs::mount("16m", "");
    let state = disk.path().join("state.db");
    let port = free_port();
    let mut daemon = Daemon::start_with_state_at(
        port,
        &files(port, "http://127.0.0.1:9/callback", "toAll"),
        &[],
        &state,
    );
    daemon.wait_ready().await;
    assert_eq!(post(&daemon, "before", 10).await.status(), 200);

    disk.fill();
    // Messages keep coming. Those that fit in pages SQLite already holds may still be stored
    // (and acknowledged); once a write needs a new page, the daemon must refuse rather than
    // acknowledge what it cannot store.
    let mut acknowledged = BTreeSet::new();
    let mut refused = Vec::new();
    for n in 0..400 {
        let id = format!("full-{n}");
        let response = post(&daemon, &id, 8 * 1024).await;
        match response.status().as_u16() {
            200 => {
                acknowledged.insert(id);
            }
            503 => {
                assert_eq!(response.headers()["retry-after"], "30");
                let body: serde_json::Value = response.json().await.expect("error JSON");
                assert_eq!(body["error"]["code"], "storage-full", "{body}");
                refused.push(id);
                if refused.len() == 5 {
                    break;
                }
            }
            other => panic!("{id}: {other}\n{}", daemon.stderr()),
        }
    }
    assert_eq!(
        refused.len(),
        5,
        "no 503 while the disk was full:\n{}",
        daemon.stderr()
    );

    // Still running, still serving, and the episode is logged once, not per request.
    assert!(daemon.child.try_wait().expect("try_wait").is_none());
    assert_eq!(daemon.get("/healthz", None).await.status(), 200);
    assert!(
        daemon
            .metrics()
            .await
            .contains("switchboard_state_disk_full 1")
    );
    let log = daemon.stderr();
    assert_eq!(count(&log, "the state file's disk is full"), 1, "{log}");
    assert!(!log.contains("panicked"), "{log}");

    // Space returns: the refused deliveries, retried by their senders, are stored; the
    // acknowledged ones, delivered again, are recognized and not doubled.
    disk.free();
    // Nothing writes yet: the daemon notices the room by itself (an operator watching the
    // gauge must not have to wait for the next delivery).
    eventually(
        "the recovery is noticed without a write",
        &daemon,
        || async {
            daemon
                .metrics()
                .await
                .contains("switchboard_state_disk_full 0")
        },
    )
    .await;
    let log = daemon.stderr();
    assert_eq!(
        count(&log, "the state file's disk has room again"),
        1,
        "{log}"
    );
    for id in &refused {
        let response = post(&daemon, id, 8 * 1024).await;
        assert_eq!(
            response.status(),
            200,
            "{id} after space returned\n{}",
            daemon.stderr()
        );
    }
    if let Some(id) = acknowledged.iter().next() {
        assert_eq!(post(&daemon, id, 8 * 1024).await.status(), 200);
    }
    eventually("the recovery is logged", &daemon, || async {
        daemon
            .stderr()
            .contains("the state file's disk has room again")
    })
    .await;
    assert!(
        daemon
            .metrics()
            .await
            .contains("switchboard_state_disk_full 0")
    );

    let ids = stored_ids(&state);
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "a message was stored twice: {ids:?}"
    );
    let mut expected: BTreeSet<String> = acknowledged;
    expected.extend(refused);
    expected.insert("before".into());
    let got: BTreeSet<String> = ids.into_iter().collect();
    assert_eq!(got, expected);

    daemon.signal("TERM");
    assert!(
        daemon.wait_exit(Duration::from_secs(15)).is_some(),
        "{}",
        daemon.stderr()
    );
}

/// Starts the daemon on `state` and expects it to exit 1 with one clear error.
fn refused_at_start(state: &std::path::Path, dir: &std::path::Path) {
    let port = free_port();
    let mut daemon = Daemon::start_with_state_at(
        port,
        &files(port, "http://127.0.0.1:9/callback", "toAll"),
        &[],
        state,
    );
    let status = daemon
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the daemon kept running:\n{}", daemon.stderr()));
    let log = daemon.stderr();
    assert_eq!(status.code(), Some(1), "{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    let error = errors[0];
    assert!(
        error.contains(&format!(
            "the state directory {} cannot be written",
            dir.display()
        )),
        "{log}"
    );
    assert!(error.contains("Read-only file system"), "{log}");
    assert!(error.contains("remount it read-write"), "{log}");
    assert!(
        !log.contains("panicked") && !log.contains("backtrace"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_state_directory_at_start_gives_one_clear_error() {
    // Nothing there yet: the state file cannot be created.
    let disk = Tmpfs::mount("4m", "ro");
    refused_at_start(&disk.path().join("state.db"), disk.path());

    // A state file from an earlier run, on a file system since remounted read-only.
    let disk = Tmpfs::mount("4m", "");
    let state = disk.path().join("state.db");
    drop(Store::open(&state).expect("create a state file"));
    disk.remount(true);
    refused_at_start(&state, disk.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_fails_the_mail_run_and_the_retry_stores_every_letter_once() {
    // REQ: MB-02 (a failed run resumes from its checkpoint)
    const PASSWORD: &str = "diskfull-pa55";
    let server = dovecot();
    let address = "diskfull@example.test";
    server.add_user(address, PASSWORD);
    server.load(address, "INBOX", &messages("before", address, 20));
    let disk = Tmpfs::mount("32m", "");
    let state = disk.path().join("state.db");
    let port = free_port();
    let token = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        ADMIN_TOKEN.as_bytes(),
    ));
    let files = vec![(
        "all.yaml",
        format!(
            "apiVersion: switchboard/v1\nkind: Settings\nmetadata: {{name: default}}\nspec: {{siteUrl: 'http://127.0.0.1:{port}', listen: '127.0.0.1:{port}'}}\n---\n\
             apiVersion: switchboard/v1\nkind: Role\nmetadata: {{name: admins}}\nspec: {{title: Admins, operations: [CanManageAdministration]}}\n---\n\
             apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: owner}}\nspec: {{displayName: Owner, email: owner@example.com, roles: [admins], apiTokenSha256: [{token}]}}\n---\n\
             apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {{name: dovecot}}\nspec:\n  type: imap\n  title: Test Dovecot\n  domains: [example.test]\n  \
             imap: {{host: 127.0.0.1, port: {imap}, security: none}}\n  smtp: {{host: 127.0.0.1, port: 9, security: none}}\n---\n\
             apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: box}}\nspec:\n  address: {address}\n  owner: owner\n  password: {{env: SB_MAIL_PASSWORD}}\n",
            imap = server.imap_port,
        ),
    )];
    let mut daemon =
        Daemon::start_with_state_at(port, &files, &[("SB_MAIL_PASSWORD", PASSWORD)], &state);
    daemon.wait_ready().await;
    let inbox = |objects: &serde_json::Value| {
        find(objects, "Mailbox", "box").and_then(|m| {
            m["folders"]
                .as_array()?
                .iter()
                .find(|f| f["name"] == "INBOX")?["messages"]
                .as_u64()
        })
    };
    eventually("the first sync", &daemon, || async {
        inbox(&daemon.objects().await) == Some(20)
    })
    .await;

    // The disk fills up; a letter larger than anything SQLite has room for arrives.
    disk.fill();
    let large = messages("large", address, 1)[0].replace(
        "\r\n\r\nBody",
        &format!("\r\n\r\n{}\r\nBody", "q".repeat(6 * 1024 * 1024)),
    );
    server.append(address, PASSWORD, "INBOX", &large);
    eventually("the run failed on the full disk", &daemon, || async {
        daemon.stderr().contains("the state file's disk is full")
    })
    .await;
    assert!(daemon.child.try_wait().expect("try_wait").is_none());
    assert_eq!(
        inbox(&daemon.objects().await),
        Some(20),
        "nothing half-stored"
    );

    // Space returns; the next run (asked for by the IDLE watch, or the backoff's retry) stores
    // the letter, once, from the checkpoint that the failed run did not move.
    disk.free();
    eventually_within(
        "the retry stored the letter",
        Duration::from_secs(90),
        &daemon,
        || async { inbox(&daemon.objects().await) == Some(21) },
    )
    .await;
    // The end of the episode is logged by the write that found room or by the free-space
    // probe, whichever comes first; either may follow the letter's commit.
    eventually("the recovery is logged", &daemon, || async {
        daemon
            .stderr()
            .contains("the state file's disk has room again")
    })
    .await;
    let log = daemon.stderr();
    assert_eq!(count(&log, "the state file's disk is full"), 1, "{log}");
    assert!(!log.contains("panicked"), "{log}");
}
