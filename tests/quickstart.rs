//! The quickstart as the README tells it: `examples/quickstart/run.sh`, then the walkthrough's
//! calls, twice in a row. The second run must start empty (chat 1 is the first chat again, not a
//! deduplicated `m-1`), and each run's state must be gone when the script stops.

mod support;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ALICE: &str = "demo-alice-token";
const INBOUND: &str = "demo-inbound-token";

/// The script, running, with what it printed on stderr so far.
struct Quickstart {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Quickstart {
    fn start(port: u16) -> Quickstart {
        let mut child = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/run.sh"))
            // Its own process group, so a failing test can stop the script and its daemon.
            .process_group(0)
            .env("SWITCHBOARD_BIN", env!("CARGO_BIN_EXE_switchboard"))
            .env("SWITCHBOARD_QUICKSTART_PORT", port.to_string())
            .env_remove("SWITCHBOARD_STATE")
            .env_remove("SWITCHBOARD_CONFIG")
            .env_remove("SWITCHBOARD_DEMO_INBOUND_TOKEN")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run examples/quickstart/run.sh");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Quickstart { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The state file the script announced.
    fn state(&self) -> Option<PathBuf> {
        let text = self.stderr();
        let line = text.lines().find(|l| l.starts_with("run.sh: state in "))?;
        let rest = line.strip_prefix("run.sh: state in ")?;
        Some(PathBuf::from(rest.split("; ").next()?))
    }

    /// Ctrl-C's effect, as a signal: the script stops the daemon and removes its files.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "run.sh did not stop on SIGINT");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stderr()
    }
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // The whole group: killing bash alone would leave its daemon running.
            let group = format!("-{}", self.child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = self.child.wait();
        }
    }
}

async fn call(method: reqwest::Method, url: String, token: &str, body: Option<Value>) -> Value {
    let client = switchboard::net::http_client();
    let mut request = client.request(method.clone(), &url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    assert!(
        status.is_success(),
        "{method} {url} answered {status}: {text}"
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The README's walkthrough, call by call.
async fn walkthrough(quickstart: &Quickstart, base: &str) {
    support::eventually_or(
        "the quickstart to be ready",
        || quickstart.stderr(),
        || async {
            switchboard::net::http_client()
                .get(format!("{base}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        },
    )
    .await;
    use reqwest::Method;
    call(
        Method::PUT,
        format!("{base}/api/v1/operators/me/status"),
        ALICE,
        Some(json!({"status": "active"})),
    )
    .await;
    let answer = call(
        Method::POST,
        format!("{base}/webhooks/api/website"),
        INBOUND,
        Some(
            json!({"messageId": "m-1", "from": {"id": "visitor-1", "name": "Vera Visitor"},
                    "text": "Hello, I need help"}),
        ),
    )
    .await;
    assert_eq!(answer, json!({"chatId": "1"}), "{}", quickstart.stderr());
    let offered = call(
        Method::GET,
        format!("{base}/api/v1/chats?state=offered"),
        ALICE,
        None,
    )
    .await;
    assert_eq!(offered["items"][0]["id"], "1", "{offered}");
    call(
        Method::POST,
        format!("{base}/api/v1/chats/1/accept"),
        ALICE,
        None,
    )
    .await;
    call(
        Method::POST,
        format!("{base}/api/v1/chats/1/messages"),
        ALICE,
        Some(json!({"text": "Hi Vera, let me look."})),
    )
    .await;
    call(
        Method::POST,
        format!("{base}/api/v1/chats/1/complete"),
        ALICE,
        None,
    )
    .await;
    let chat = call(Method::GET, format!("{base}/api/v1/chats/1"), ALICE, None).await;
    assert_eq!(chat["state"], "completed", "{chat}");
    assert_eq!(chat["messages"].as_array().map(Vec::len), Some(2), "{chat}");
}

#[tokio::test]
async fn the_quickstart_walkthrough_works_twice_in_a_row() {
    for run in 1..=2 {
        let port = support::free_port();
        let quickstart = Quickstart::start(port);
        walkthrough(&quickstart, &format!("http://127.0.0.1:{port}")).await;
        let state = quickstart.state().expect("the script names its state file");
        assert!(
            state.exists(),
            "run {run}: {} exists while running",
            state.display()
        );
        let told = quickstart.stop();
        assert!(
            !state.exists(),
            "run {run}: the state file {} outlived the quickstart:\n{told}",
            state.display()
        );
        // The happy path warns about nothing: a channel without a callbackUrl is a choice.
        assert!(!told.contains(" WARN "), "run {run} warned:\n{told}");
        assert_eq!(
            told.matches("has no callbackUrl").count(),
            1,
            "run {run}: said once, at apply:\n{told}"
        );
    }
}

#[test]
fn a_port_in_use_is_named_before_anything_starts() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/run.sh"))
        .env("SWITCHBOARD_BIN", env!("CARGO_BIN_EXE_switchboard"))
        .env("SWITCHBOARD_QUICKSTART_PORT", port.to_string())
        .env_remove("SWITCHBOARD_STATE")
        .output()
        .expect("run examples/quickstart/run.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.starts_with(&format!("run.sh: 127.0.0.1:{port} is already in use")),
        "{stderr}"
    );
}
