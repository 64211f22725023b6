//! `switchboard leads backfill INTEGRATION [--form ID] --since DATE [--until DATE]` (LI-06):
//! load every lead form response submitted in the period — through the running daemon when
//! one answers on `Settings.listen` (`POST /api/v1/lead-integrations/{name}/backfill`, then
//! following its progress), otherwise in this process like `sync`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Kind;
use crate::config::kinds::LeadIntegrationSpec;
use crate::daemon::{self, DaemonOptions};
use crate::store::Store;
use crate::store::leads::LeadBackfill;

use super::sync::TOKEN_ENV;

/// How often the daemon is asked how a backfill is doing.
const POLL: Duration = Duration::from_millis(500);

/// Runs `leads backfill`.
pub fn backfill(
    dirs: &[PathBuf],
    state: &Path,
    integration: &str,
    form: Option<&str>,
    since: &str,
    until: Option<&str>,
) -> ExitCode {
    let name = integration
        .strip_prefix("LeadIntegration/")
        .unwrap_or(integration);
    let set = match super::load_valid(dirs) {
        Ok(set) => set,
        Err(code) => return code,
    };
    let Some(spec) = set.get::<LeadIntegrationSpec>(name) else {
        return super::fail(format!(
            "no LeadIntegration named `{name}` in the configuration"
        ));
    };
    if let Some(why) = crate::leads::backfill_refusal(name, spec, form) {
        return super::fail(why);
    }
    let (since_at, until_at) = match crate::leads::backfill_period(since, until, chrono::Utc::now())
    {
        Ok(period) => period,
        Err(e) => return super::fail(e),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let body = serde_json::json!({"since": since, "until": until, "form": form});
    match runtime.block_on(through_daemon(set.listen(), name, &body)) {
        Ok(Ok(summary)) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Ok(Err(message)) => super::fail(message),
        Err(NoDaemon) => {
            let requested = Store::open(state).and_then(|mut s| {
                s.request_lead_backfill(name, form, since_at, until_at, chrono::Utc::now())
            });
            let id = match requested {
                Ok(b) => b.id,
                Err(e) => return super::fail(e.to_string()),
            };
            let opts = DaemonOptions {
                config_dirs: dirs.to_vec(),
                state: state.to_path_buf(),
            };
            let run = daemon::sync_once(&opts, Kind::LeadIntegration, name);
            let done = Store::open(state).and_then(|s| s.lead_backfill(id));
            match (run, done) {
                (_, Ok(Some(b))) if b.finished_at.is_some() => finished(name, &b),
                (Err(e), _) => super::fail(format!(
                    "LeadIntegration/{name}: backfill {id} interrupted ({e}); run the command again to resume it"
                )),
                (Ok(_), Ok(_)) => super::fail(format!(
                    "LeadIntegration/{name}: backfill {id} did not finish; run the command again to resume it"
                )),
                (Ok(_), Err(e)) => super::fail(e.to_string()),
            }
        }
    }
}

fn summary(name: &str, b: &LeadBackfill) -> String {
    format!(
        "LeadIntegration/{name}: backfill {}: {} responses read, {} leads created, {} already leads, {} skipped",
        b.id, b.fetched, b.created, b.known, b.skipped
    )
}

fn finished(name: &str, b: &LeadBackfill) -> ExitCode {
    match &b.error {
        None => {
            println!("{}", summary(name, b));
            ExitCode::SUCCESS
        }
        Some(e) => super::fail(format!("{} — stopped: {e}", summary(name, b))),
    }
}

struct NoDaemon;

/// Asks the daemon for the backfill and follows it to its end: the summary, or why not.
async fn through_daemon(
    addr: std::net::SocketAddr,
    name: &str,
    body: &serde_json::Value,
) -> Result<Result<String, String>, NoDaemon> {
    let client = crate::net::http_client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client builds");
    let token = std::env::var(TOKEN_ENV).ok();
    let with_token = |r: reqwest::RequestBuilder| match &token {
        Some(t) => r.bearer_auth(t),
        None => r,
    };
    let base = format!("http://{addr}/api/v1/lead-integrations/{name}");
    let sent = with_token(client.post(format!("{base}/backfill")).json(body))
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Err(NoDaemon),
        Err(e) => return Ok(Err(format!("the daemon at {addr} did not answer: {e}"))),
    };
    let mut answer = match read(response, addr, token.is_some()).await {
        Ok(a) => a,
        Err(e) => return Ok(Err(e)),
    };
    let id = answer["id"].as_str().unwrap_or_default().to_owned();
    println!("LeadIntegration/{name}: backfill {id} queued in the daemon at {addr}");
    while answer["state"] == "queued" {
        tokio::time::sleep(POLL).await;
        let polled = with_token(client.get(format!("{base}/backfills/{id}")))
            .send()
            .await;
        answer = match polled {
            Ok(r) => match read(r, addr, token.is_some()).await {
                Ok(a) => a,
                Err(e) => return Ok(Err(e)),
            },
            Err(e) => return Ok(Err(format!("the daemon at {addr} did not answer: {e}"))),
        };
    }
    let line = format!(
        "LeadIntegration/{name}: backfill {id}: {} responses read, {} leads created, {} already leads, {} skipped",
        answer["fetched"], answer["created"], answer["known"], answer["skipped"]
    );
    Ok(match answer["error"].as_str() {
        None => Ok(line),
        Some(e) => Err(format!("{line} — stopped: {e}")),
    })
}

async fn read(
    response: reqwest::Response,
    addr: std::net::SocketAddr,
    had_token: bool,
) -> Result<serde_json::Value, String> {
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if status.is_success() {
        return Ok(body);
    }
    let message = body["error"]["message"].as_str().unwrap_or("no message");
    Err(match (status.as_u16(), had_token) {
        (401, false) => format!(
            "the daemon at {addr} needs a token: set {TOKEN_ENV} to a token whose SHA-256 is in a User's apiTokenSha256"
        ),
        (403, _) => format!(
            "the daemon at {addr} refused: {message} (a backfill takes a user with CanManageAdministration)"
        ),
        _ => format!("the daemon at {addr} answered {status}: {message}"),
    })
}
