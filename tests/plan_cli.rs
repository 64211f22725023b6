//! `switchboard plan` against a real state file: create / update / delete, field paths with
//! old → new values, secret references shown as references, exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use switchboard::store::{ObjectChange, Store};

const SETTINGS: &str = "apiVersion: switchboard/v1
kind: Settings
metadata: {name: default}
spec:
  siteUrl: https://switchboard.example.com
";

const QUEUE: &str = "apiVersion: switchboard/v1
kind: ChatQueue
metadata: {name: support}
spec:
  title: Support
  routing: toAll
  operators:
    - user: alice
";

const USERS: &str = "apiVersion: switchboard/v1
kind: User
metadata: {name: alice}
spec:
  displayName: Alice
  email: alice@example.com
---
apiVersion: switchboard/v1
kind: Role
metadata: {name: leads}
spec:
  title: Team leads
";

const CHANNEL: &str = "apiVersion: switchboard/v1
kind: ChatChannel
metadata: {name: site}
spec:
  provider: api
  title: Web site
  queue: support
  language: en-US
  inboundToken: {env: PLAN_TEST_INBOUND_TOKEN}
";

fn switchboard(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .current_dir(dir)
        .args(["-c", "conf", "--state", "state.db"])
        .args(args)
        .env("PLAN_TEST_INBOUND_TOKEN", "plan-secret-value-7f3a")
        .output()
        .expect("switchboard runs")
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    std::fs::write(dir.join("conf").join(name), text).unwrap();
}

/// Records the current config as applied, as `run` does at start.
fn apply(dir: &Path) {
    let set = switchboard::config::load(&[dir.join("conf")])
        .into_result()
        .expect("config is valid");
    let changes: Vec<ObjectChange> = set
        .objects
        .iter()
        .map(|o| ObjectChange::Upsert {
            kind: o.kind().to_string(),
            name: o.name.clone(),
            spec: o.spec.to_json(),
        })
        .collect();
    let mut store = Store::open(&dir.join("state.db")).unwrap();
    store.apply(&changes, chrono::Utc::now()).unwrap();
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    write(&dir, "settings.yaml", SETTINGS);
    write(&dir, "queue.yaml", QUEUE);
    write(&dir, "users.yaml", USERS);
    write(&dir, "channel.yaml", CHANNEL);
    (tmp, dir)
}

#[test]
fn fresh_state_plans_every_object_as_create_and_exits_2_with_detailed_exitcode() {
    let (_tmp, dir) = setup();
    let out = switchboard(&dir, &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert!(
        text.contains("  + ChatQueue/support will be created\n"),
        "{text}"
    );
    assert!(
        text.ends_with("Plan: 5 to add, 0 to change, 0 to destroy.\n"),
        "{text}"
    );
    // Without the flag, changes still exit 0.
    assert_eq!(switchboard(&dir, &["plan"]).status.code(), Some(0));
}

#[test]
fn applied_config_plans_no_changes_and_exits_0() {
    let (_tmp, dir) = setup();
    apply(&dir);
    let out = switchboard(&dir, &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        "No changes. The applied state matches the configuration.\n"
    );
}

#[test]
fn edits_show_changed_fields_old_to_new_and_deletions() {
    let (_tmp, dir) = setup();
    apply(&dir);
    write(
        &dir,
        "queue.yaml",
        &QUEUE.replace(
            "routing: toAll",
            "routing: leastBusy\n  completionTimeout: 30m",
        ),
    );
    write(
        &dir,
        "channel.yaml",
        &CHANNEL.replace(
            "{env: PLAN_TEST_INBOUND_TOKEN}",
            "{credential: site-inbound}",
        ),
    );
    write(&dir, "users.yaml", USERS.split("---").next().unwrap());
    let out = switchboard(&dir, &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    // The secret's value never shows; its reference does.
    assert!(!text.contains("plan-secret-value-7f3a"));
    insta::assert_snapshot!(text);
}

#[test]
fn invalid_config_exits_1_with_diagnostics_and_no_plan() {
    let (_tmp, dir) = setup();
    write(
        &dir,
        "queue.yaml",
        &QUEUE.replace("routing: toAll", "routing: roundRobin"),
    );
    let out = switchboard(&dir, &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("conf/queue.yaml:6:12"), "{err}");
}

#[test]
fn a_state_file_from_a_newer_release_is_refused_with_a_clear_message() {
    let (_tmp, dir) = setup();
    apply(&dir);
    raise_schema_version(&dir.join("state.db"));
    let out = switchboard(&dir, &["plan"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("newer release"), "{err}");
}

/// Raises the file's schema version the way a newer release would: `PRAGMA user_version` is
/// the big-endian u32 at byte 60 of the SQLite header (the store checkpoints on close).
fn raise_schema_version(path: &Path) {
    drop(Store::open(path).unwrap());
    let mut bytes = std::fs::read(path).unwrap();
    bytes[60..64].copy_from_slice(&99u32.to_be_bytes());
    std::fs::write(path, bytes).unwrap();
}
