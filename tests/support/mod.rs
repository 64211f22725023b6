//! Runs the real `switchboard run` binary against a temporary config directory and state file,
//! with its stderr captured to a file, and talks to it over loopback HTTP.

#![allow(dead_code)]

pub mod disk;
pub mod dovecot;
pub mod faults;
pub mod radicale;
pub mod records;
pub mod smtp;
pub mod telegram_fake;
pub mod twilio_fake;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The admin's bearer token (User `alice`, admin through Role `admins`).
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// A user without operations (User `bob`).
pub const VIEWER_TOKEN: &str = "test-viewer-token";

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The base config: Settings on `port`, two users, a role, a queue, a mail provider and a
/// mailbox whose password is `{env: SB_TEST_SECRET}`.
pub fn base_config(port: u16) -> Vec<(&'static str, String)> {
    vec![
        (
            "settings.yaml",
            format!(
                "apiVersion: switchboard/v1\nkind: Settings\nmetadata: {{name: default}}\nspec:\n  siteUrl: http://127.0.0.1:{port}\n  listen: 127.0.0.1:{port}\n"
            ),
        ),
        (
            "users.yaml",
            format!(
                "apiVersion: switchboard/v1\nkind: Role\nmetadata: {{name: admins}}\nspec: {{title: Admins, operations: [CanManageAdministration]}}\n---\n\
                 apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: alice}}\nspec:\n  displayName: Alice\n  email: alice@example.com\n  roles: [admins]\n  apiTokenSha256: [{}]\n---\n\
                 apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: bob}}\nspec:\n  displayName: Bob\n  email: bob@example.com\n  apiTokenSha256: [{}]\n",
                sha256_hex(ADMIN_TOKEN),
                sha256_hex(VIEWER_TOKEN)
            ),
        ),
        (
            "chat.yaml",
            "apiVersion: switchboard/v1\nkind: ChatQueue\nmetadata: {name: support}\nspec:\n  title: Support\n  routing: toAll\n  operators:\n    - user: alice\n"
                .to_owned(),
        ),
        // A microsoft365 provider: its connector is not built, so the mailbox stays `pending`
        // and these daemon tests never reach for a real mail server (tests/mail_*.rs do).
        (
            "mail.yaml",
            "apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {name: corp}\nspec:\n  type: microsoft365\n  title: Corp\n  domains: [example.com]\n---\n\
             apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {name: alice-mail}\nspec:\n  address: alice@example.com\n  owner: alice\n  password: {env: SB_TEST_SECRET}\n"
                .to_owned(),
        ),
    ]
}

/// A running daemon; killed on drop if still running.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub child: Child,
    pub base: String,
    pub stderr: PathBuf,
}

impl Daemon {
    /// Writes `files` into a fresh config dir and starts `switchboard run` with `env`.
    pub fn start(port: u16, files: &[(&str, String)], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_with_args(port, files, env, &[])
    }

    /// [`Daemon::start`] on a copy of an existing state file (a fixture).
    pub fn start_on_state(
        port: u16,
        files: &[(&str, String)],
        env: &[(&str, &str)],
        state: &Path,
    ) -> Daemon {
        Daemon::start_inner(port, files, env, &[], Some(state), false)
    }

    /// [`Daemon::start`] with the state file at `state` (on a [`disk::Tmpfs`], say) instead of
    /// `state.db` in the temporary directory.
    pub fn start_with_state_at(
        port: u16,
        files: &[(&str, String)],
        env: &[(&str, &str)],
        state: &Path,
    ) -> Daemon {
        Daemon::start_inner(port, files, env, &[], Some(state), true)
    }

    /// [`Daemon::start`] with extra global flags (such as `--log-format json`).
    pub fn start_with_args(
        port: u16,
        files: &[(&str, String)],
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Daemon {
        Daemon::start_inner(port, files, env, args, None, false)
    }

    fn start_inner(
        port: u16,
        files: &[(&str, String)],
        env: &[(&str, &str)],
        args: &[&str],
        state: Option<&Path>,
        state_at: bool,
    ) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let state_file = match state {
            Some(state) if state_at => state.to_owned(),
            _ => dir.path().join("state.db"),
        };
        if let Some(state) = state.filter(|_| !state_at) {
            std::fs::copy(state, dir.path().join("state.db")).expect("copy the state file");
        }
        let config = dir.path().join("config");
        std::fs::create_dir(&config).expect("config dir");
        for (name, text) in files {
            std::fs::write(config.join(name), text).expect("write manifest");
        }
        let stderr = dir.path().join("stderr.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        command
            .arg("--config")
            .arg(&config)
            .arg("--state")
            .arg(&state_file)
            .args(args)
            .arg("run")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("SWITCHBOARD_CONFIG")
            .env_remove("SWITCHBOARD_STATE")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("start switchboard");
        Daemon {
            dir,
            child,
            base: format!("http://127.0.0.1:{port}"),
            stderr,
        }
    }

    /// The config directory.
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until `/readyz` answers 200 (panics with the daemon's stderr otherwise).
    pub async fn wait_ready(&mut self) {
        let client = switchboard::net::http_client();
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("daemon exited early with {status}:\n{}", self.stderr());
            }
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("daemon not ready after 10 s:\n{}", self.stderr());
    }

    /// Sends a signal with `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// GET `path` with an optional bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = switchboard::net::http_client().get(format!("{}{path}", self.base));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send().await.expect("GET")
    }

    /// POST `path` (empty body) with an optional bearer token.
    pub async fn post(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = switchboard::net::http_client().post(format!("{}{path}", self.base));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send().await.expect("POST")
    }

    /// `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.get("/metrics", None)
            .await
            .text()
            .await
            .expect("metrics body")
    }

    /// `/api/v1/objects` JSON (as the admin).
    pub async fn objects(&self) -> serde_json::Value {
        self.get("/api/v1/objects?limit=1000", Some(ADMIN_TOKEN))
            .await
            .json()
            .await
            .expect("objects JSON")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `check` every 100 ms for up to 10 s (polling, not a timing assertion).
pub async fn eventually<F, Fut>(what: &str, daemon: &Daemon, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_or(what, || daemon.stderr(), check).await
}

/// [`eventually`] with a longer bound, for what follows a retry with backoff (the first retry
/// comes 8 to 12 s after a failure): polls `check` every 100 ms for up to `limit`.
pub async fn eventually_within<F, Fut>(what: &str, limit: Duration, daemon: &Daemon, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    poll(what, limit, || daemon.stderr(), check).await
}

/// [`eventually`] for what is not a [`Daemon`]: on time-out the panic shows `context()` (a
/// script's output, a log).
pub async fn eventually_or<F, Fut>(what: &str, context: impl Fn() -> String, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    poll(what, Duration::from_secs(10), context, check).await
}

/// The one polling loop behind the `eventually` helpers: `check` every 100 ms until it holds
/// or `limit` has passed, then a panic naming `what` with `context()`.
pub(crate) async fn poll<F, Fut>(
    what: &str,
    limit: Duration,
    context: impl Fn() -> String,
    mut check: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "timed out after {limit:?} waiting for: {what}\n{}",
        context()
    );
}

/// Finds `kind/name` in an `/api/v1/objects` answer.
pub fn find<'a>(
    objects: &'a serde_json::Value,
    kind: &str,
    name: &str,
) -> Option<&'a serde_json::Value> {
    objects["items"]
        .as_array()?
        .iter()
        .find(|o| o["kind"] == kind && o["name"] == name)
}

/// Whether `path` exists, for readability in tests.
pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// `files` with `extra` (indented YAML lines such as `  http: {...}`) appended to the Settings
/// spec in `settings.yaml`.
pub fn with_settings(files: &[(&'static str, String)], extra: &str) -> Vec<(&'static str, String)> {
    files
        .iter()
        .map(|(name, text)| {
            if *name == "settings.yaml" {
                (*name, format!("{}\n{extra}\n", text.trim_end()))
            } else {
                (*name, text.clone())
            }
        })
        .collect()
}

/// A raw TCP connection to the daemon, for requests no HTTP client would send.
pub async fn connect(daemon: &Daemon) -> tokio::net::TcpStream {
    let address = daemon.base.trim_start_matches("http://");
    tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to the daemon")
}

/// Waits until the peer closes `stream` (a read gives end-of-file or a reset), reading and
/// discarding what arrives; panics when it stays open for `limit` (a generous bound, not the
/// timing under test).
pub async fn wait_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "the connection stayed open for {limit:?}; received {:?}",
                String::from_utf8_lossy(&received)
            ),
            Ok(Ok(0) | Err(_)) => return received,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// Writes `request` on a fresh connection and reads the answer until the daemon closes it;
/// answers `(status, head, body)`. The request should say `Connection: close`.
pub async fn raw(daemon: &Daemon, request: &[u8]) -> (u16, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut stream = connect(daemon).await;
    // The daemon may answer (and close) before it read everything: a failed write is fine.
    let _ = stream.write_all(request).await;
    let answer = wait_closed(&mut stream, Duration::from_secs(30)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_owned(), body.to_owned())
}

/// The resident set size of process `pid` in KiB (Linux `/proc`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}
