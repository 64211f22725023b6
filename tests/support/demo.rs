//! Running an example's one-command demo (`examples/*/run.sh`) in a test, against this build of
//! `switchboard` and of the `provider-fakes` example, on a free port.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the `provider-fakes` example (a no-op when it is fresh) and answers its path, as
/// cargo reports it.
pub fn provider_fakes() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    // What cargo sets for this test process would reach the build scripts of the nested build
    // and make it (and then the outer one) rebuild: only the user's own settings go through.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_")
            || matches!(
                &*key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
            )
        {
            command.env_remove(&*key);
        }
    }
    let out = command
        .current_dir(repo())
        .args([
            "build",
            "--locked",
            "--quiet",
            "--example",
            "provider-fakes",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build --example provider-fakes failed"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "provider-fakes")
        .and_then(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the provider-fakes executable")
}

/// What a demo run came to.
pub struct Told {
    /// `None` when it did not end within its time.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    /// Both outputs, for assertion messages.
    pub told: String,
}

/// Runs the demo `script` (relative to the repository) with the built binaries on `port`;
/// stopped (SIGTERM, so its trap stops what it started) after `limit`.
pub fn run(script: &str, port: u16, limit: Duration) -> Told {
    let fakes = provider_fakes();
    let mut child = Command::new("bash")
        .arg(repo().join(script))
        .env("SWITCHBOARD_BIN", env!("CARGO_BIN_EXE_switchboard"))
        .env("PROVIDER_FAKES_BIN", &fakes)
        .env("SWITCHBOARD_DEMO_PORT", port.to_string())
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("SWITCHBOARD_CONFIG")
        .env_remove("SWITCHBOARD_STATE")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    let _ = child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout);
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr);
    let told = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    Told {
        status,
        stdout,
        told,
    }
}
