//! The contact-center demo, `examples/contact-center/run.sh`, runs its whole story in a test,
//! so it cannot rot: against this build of `switchboard` and of the `provider-fakes` example,
//! on a free port, a chat on each channel the example configures must arrive through the
//! provider's signed webhook, be offered, accepted, answered — the answer seen at the
//! provider — and completed, and the Messenger thread handed over by the bot must go back.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the `provider-fakes` example (a no-op when it is fresh) and answers its path, as
/// cargo reports it.
fn provider_fakes() -> PathBuf {
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

#[test]
fn the_contact_center_demo_tells_its_whole_story() {
    // REQ: CH-03, CH-04, CH-09, TG-02, WA-03, WA-05, FB-03, FB-04
    let fakes = provider_fakes();
    let port = support::free_port();
    let mut child = Command::new("bash")
        .arg(repo().join("examples/contact-center/run.sh"))
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
        .expect("run examples/contact-center/run.sh");
    // The story takes seconds; a hung step must not hang the suite. SIGTERM lets the script's
    // trap stop the daemon and the fakes it started.
    let deadline = Instant::now() + Duration::from_secs(120);
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
    assert!(
        status.is_some_and(|s| s.success()),
        "the demo failed ({status:?}):\n{told}"
    );

    // Every channel's answer reached its provider, in the provider's own terms.
    for arrived in [
        "sendMessage chat_id=5551001: \"Hi Ann,",
        "Messages API to whatsapp:+351910000002: \"Hi Bruno,",
        "Send API to PSID-CHLOE: \"Hi Chloe,",
        "signed callback for visitor-17 from lina-park: \"Hi Dev,",
        "Send API to PSID-EMMA: \"Hallo Emma,",
    ] {
        assert!(stdout.contains(arrived), "missing {arrived:?}:\n{told}");
    }
    // The bot's thread: its messages are history, and the thread goes back after the chat.
    assert!(
        stdout.contains("pass_thread_control: thread PSID-EMMA to app 263902037430900"),
        "{told}"
    );
    assert_eq!(
        stdout.matches("→ none: the bot's thread").count(),
        2,
        "{told}"
    );
    assert_eq!(stdout.matches("/complete → completed").count(), 5, "{told}");
    assert!(
        stdout.contains("The story is complete: 5 chats on 5 channels"),
        "{told}"
    );
    // Secrets travel as credentials, never in what the demo prints.
    for secret in [
        "demo-facebook-app-secret",
        "demo-twilio-auth-token",
        "AAdemo-telegram",
    ] {
        assert!(!told.contains(secret), "{secret} was printed:\n{told}");
    }
}
