//! The daemon as systemd and an operator see it: sd_notify messages over a real notify socket,
//! and secrets from env, file and credential staying out of every output of every verb.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{ADMIN_TOKEN, Daemon, base_config, free_port};

/// Reads datagrams until one contains `needle` (or panics after 10 s with what arrived).
fn expect_notify(socket: &UnixDatagram, needle: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            seen.push(msg.clone());
            if msg.lines().any(|l| l == needle) {
                return;
            }
        }
    }
    panic!("no `{needle}` from the daemon; received: {seen:?}");
}

// REQ: SPEC run (tells systemd READY/RELOADING/STOPPING and pets the watchdog)
#[tokio::test(flavor = "multi_thread")]
async fn notifies_systemd_of_ready_reload_watchdog_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = free_port();
    let mut daemon = Daemon::start(
        port,
        &base_config(port),
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            // 400 ms: the daemon pings at half of it.
            ("WATCHDOG_USEC", "400000"),
            ("SB_TEST_SECRET", "x"),
        ],
    );
    let mut seen = Vec::new();
    expect_notify(&socket, "READY=1", &mut seen);
    expect_notify(&socket, "WATCHDOG=1", &mut seen);
    expect_notify(&socket, "WATCHDOG=1", &mut seen);

    daemon.signal("HUP");
    expect_notify(&socket, "RELOADING=1", &mut seen);
    let reloading = seen.last().unwrap().clone();
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "RELOADING=1 comes with MONOTONIC_USEC: {reloading:?}"
    );
    expect_notify(&socket, "READY=1", &mut seen);

    daemon.signal("TERM");
    expect_notify(&socket, "STOPPING=1", &mut seen);
    let status = daemon.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status}");
}

const ENV_SECRET: &str = "sb-env-secret-5b1e";
const FILE_SECRET: &str = "sb-file-secret-92cd";
const CREDENTIAL_SECRET: &str = "sb-credential-secret-d07a";

fn switchboard(daemon: &Daemon, credentials: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(daemon.config_dir())
        .arg("--state")
        .arg(daemon.dir.path().join("state.db"))
        .args(args)
        .env("SB_ENV_SECRET", ENV_SECRET)
        .env("CREDENTIALS_DIRECTORY", credentials)
        .env("SWITCHBOARD_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("switchboard runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// REQ: SPEC manifests (secrets are never printed: not in logs, plan, status, metrics or errors)
#[tokio::test(flavor = "multi_thread")]
async fn secrets_from_env_file_and_credential_never_appear_in_any_output() {
    let port = free_port();
    let credentials = tempfile::tempdir().unwrap();
    std::fs::write(credentials.path().join("bot-token"), CREDENTIAL_SECRET).unwrap();
    let password = credentials.path().join("bob-password.txt");
    std::fs::write(&password, format!("{FILE_SECRET}\n")).unwrap();
    let mut files = base_config(port);
    files.push((
        "secrets.yaml",
        format!("apiVersion: switchboard/v1\nkind: ChatChannel\nmetadata: {{name: site}}\nspec:\n  provider: api\n  title: Site\n  queue: support\n  language: en-US\n  inboundToken: {{env: SB_ENV_SECRET}}\n---\n\
         apiVersion: switchboard/v1\nkind: ChatChannel\nmetadata: {{name: bot}}\nspec:\n  provider: telegram\n  title: Bot\n  queue: support\n  language: en-US\n  token: {{credential: bot-token}}\n---\n\
         apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: bob-mail}}\nspec:\n  address: bob@example.com\n  owner: bob\n  password: {{file: {}}}\n---\n\
         apiVersion: switchboard/v1\nkind: ChatAction\nmetadata: {{name: notify}}\nspec:\n  title: Notify\n  queue: support\n  webhook: {{url: 'https://hooks.example.com/x', secret: {{file: missing-secret.txt}}}}\n",
            password.display()
        ),
    ));
    let mut daemon = Daemon::start(
        port,
        &files,
        &[
            ("SB_TEST_SECRET", ENV_SECRET),
            ("SB_ENV_SECRET", ENV_SECRET),
            (
                "CREDENTIALS_DIRECTORY",
                credentials.path().to_str().unwrap(),
            ),
            ("RUST_LOG", "debug"),
        ],
    );
    daemon.wait_ready().await;

    let mut outputs = vec![
        (
            "validate",
            switchboard(&daemon, credentials.path(), &["validate"]),
        ),
        (
            "validate json",
            switchboard(
                &daemon,
                credentials.path(),
                &["validate", "--format", "json"],
            ),
        ),
        ("plan", switchboard(&daemon, credentials.path(), &["plan"])),
        (
            "status",
            switchboard(&daemon, credentials.path(), &["status"]),
        ),
        (
            "status json",
            switchboard(&daemon, credentials.path(), &["status", "--format", "json"]),
        ),
        (
            "sync via daemon",
            switchboard(&daemon, credentials.path(), &["sync", "Mailbox/bob-mail"]),
        ),
        ("metrics", daemon.metrics().await),
        ("objects", daemon.objects().await.to_string()),
    ];
    // The missing secret file is reported by its reference, not by any value.
    let objects = daemon.objects().await;
    let action = support::find(&objects, "ChatAction", "notify").expect("listed");
    assert_eq!(action["state"], "error", "{action}");
    assert!(
        action["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("missing-secret.txt"),
        "{action}"
    );

    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(10)).expect("exits");
    outputs.push((
        "sync in-process",
        switchboard(&daemon, credentials.path(), &["sync", "ChatChannel/bot"]),
    ));
    outputs.push(("daemon log", daemon.stderr()));

    for (what, text) in &outputs {
        for secret in [ENV_SECRET, FILE_SECRET, CREDENTIAL_SECRET] {
            assert!(
                !text.contains(secret),
                "{what} printed a secret value:\n{text}"
            );
        }
    }
}

// REQ: SPEC metrics (`promtool check metrics` clean on what the daemon serves)
// REQ: SPEC cli (--log-format json)
#[tokio::test(flavor = "multi_thread")]
async fn live_metrics_pass_promtool_and_json_logs_are_one_object_per_line() {
    let port = free_port();
    let mut daemon = Daemon::start_with_args(
        port,
        &base_config(port),
        &[("SB_TEST_SECRET", "x")],
        &["--log-format", "json"],
    );
    daemon.wait_ready().await;
    // Some traffic, so the per-route and per-object series exist.
    daemon.objects().await;
    daemon.get("/api/v1/objects", None).await;
    daemon
        .post("/api/v1/objects/Mailbox/alice-mail/sync", Some(ADMIN_TOKEN))
        .await;
    let metrics = daemon.metrics().await;

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package `prometheus`; .ci/run installs it)");
    use std::io::Write as _;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(10)).expect("exits");
    let log = daemon.stderr();
    assert!(log.lines().count() >= 3, "{log}");
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
}
