//! `switchboard sync KIND/NAME`: run one object's sync now — through the running daemon when
//! one answers on `Settings.listen`, otherwise in this process.
//!
//! Going through the daemon keeps one writer per store and respects its "never two runs of one
//! object at once" rule; the in-process path is for laptops and cron jobs with no daemon: it
//! first applies the current config to the store, as `run` would.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::Kind;
use crate::daemon::{self, DaemonOptions};

/// Environment variable holding the bearer token `sync` presents to the daemon.
pub const TOKEN_ENV: &str = "SWITCHBOARD_TOKEN";

/// Parses `Kind/name`, checks the object exists, then asks the daemon or runs in-process.
pub fn run(dirs: &[PathBuf], state: &Path, object: &str) -> ExitCode {
    let Some((kind, name)) = object.split_once('/') else {
        return super::fail(format!(
            "expected KIND/NAME, like Mailbox/sales, got `{object}`"
        ));
    };
    let Some(kind) = Kind::parse(kind) else {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        return super::fail(format!(
            "unknown kind `{kind}`; expected one of {}",
            names.join(", ")
        ));
    };
    let set = match super::load_valid(dirs) {
        Ok(set) => set,
        Err(code) => return code,
    };
    if set.object(kind, name).is_none() {
        return super::fail(format!("no {kind} named `{name}` in the configuration"));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    match runtime.block_on(ask_daemon(set.listen(), kind, name)) {
        Ok(DaemonAnswer::Queued) => {
            println!(
                "{kind}/{name}: sync requested from the running daemon; see `switchboard status`"
            );
            ExitCode::SUCCESS
        }
        Ok(DaemonAnswer::Refused(message)) => super::fail(message),
        Err(NoDaemon) => {
            let opts = DaemonOptions {
                config_dirs: dirs.to_vec(),
                state: state.to_path_buf(),
            };
            // The engine's answers name the object already; a store error does not.
            let id = format!("{kind}/{name}");
            let named = |text: String| {
                if text.starts_with(&id) {
                    text
                } else {
                    format!("{id}: {text}")
                }
            };
            match daemon::sync_once(&opts, kind, name) {
                Ok(summary) => {
                    println!("{}", named(summary));
                    ExitCode::SUCCESS
                }
                Err(e) => super::fail(named(e)),
            }
        }
    }
}

/// Who may ask the daemon to sync an object of `kind` (the rule of
/// `POST /api/v1/objects/{kind}/{name}/sync`, EP-09 and MB-04).
fn who_may(kind: Kind) -> &'static str {
    match kind {
        Kind::Mailbox => {
            "a Mailbox may be synced by a user with CanManageAdministration, by its owner, or by a user with its `configure` right — who also needs CanManageSharedMailboxSync when the mailbox is shared"
        }
        _ => "syncing it takes a user with CanManageAdministration",
    }
}

enum DaemonAnswer {
    Queued,
    Refused(String),
}

struct NoDaemon;

async fn ask_daemon(
    addr: std::net::SocketAddr,
    kind: Kind,
    name: &str,
) -> Result<DaemonAnswer, NoDaemon> {
    let client = crate::net::http_client_builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("an HTTP client builds");
    let mut request = client.post(format!("http://{addr}/api/v1/objects/{kind}/{name}/sync"));
    let token = std::env::var(TOKEN_ENV).ok();
    if let Some(token) = &token {
        request = request.bearer_auth(token);
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Err(NoDaemon),
        Err(e) => {
            return Ok(DaemonAnswer::Refused(format!(
                "the daemon at {addr} did not answer: {e}"
            )));
        }
    };
    let status = response.status();
    if status.is_success() {
        return Ok(DaemonAnswer::Queued);
    }
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or("no message")
        .to_owned();
    Ok(DaemonAnswer::Refused(match (status.as_u16(), &token) {
        (401, None) => format!(
            "the daemon at {addr} needs a token: set {TOKEN_ENV} to a token whose SHA-256 is in a User's apiTokenSha256"
        ),
        (403, _) => format!(
            "the daemon at {addr} refused: {message} ({})",
            who_may(kind)
        ),
        _ => format!("the daemon at {addr} answered {status}: {message}"),
    }))
}
