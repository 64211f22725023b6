//! OAuth token health end to end on the real daemon against the fake token endpoint: a mailbox
//! whose refresh token the endpoint refuses (`invalid_grant`) counts one refresh failure,
//! raises one `oauth.reauth-needed` event, says in its status that consent is needed and how,
//! and does not ask the endpoint again however often it runs; a consent (the
//! authorization-code flow) stores a new token and it syncs again, with its token's expiry in
//! the metrics. No token or secret in the metrics, the events or the status.

#[path = "support/oauth_fake.rs"]
mod oauth_fake;
mod support;

use std::process::Command;
use std::time::Duration;

use oauth_fake::OAuthFake;
use support::{ADMIN_TOKEN, Daemon, eventually, find, free_port};

const CLIENT_ID: &str = "switchboard-health.apps.example";
const CLIENT_SECRET: &str = "health-client-s3cret";
const REVOKED: &str = "1//revoked-refresh-token";

fn config(port: u16, fake: &OAuthFake) -> Vec<(&'static str, String)> {
    let mut files: Vec<_> = support::base_config(port)
        .into_iter()
        .filter(|(name, _)| *name != "mail.yaml")
        .collect();
    let (imap, smtp) = (free_port(), free_port());
    let base = &fake.base;
    // Two mailboxes with refresh tokens the endpoint does not honour; neither loads mail, so
    // each runs only when asked.
    files.push((
        "mail.yaml",
        format!(
            "apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {{name: gmail-test}}\nspec:\n  type: gmail\n  title: Gmail (fake)\n  domains: [example.test]\n  \
             imap: {{host: 127.0.0.1, port: {imap}}}\n  smtp: {{host: 127.0.0.1, port: {smtp}}}\n  auth: oauth2\n  \
             oauth2:\n    clientId: {CLIENT_ID}\n    clientSecret: {{env: SB_OAUTH_CLIENT_SECRET}}\n    authUrl: {base}/auth\n    tokenUrl: {base}/token\n    scopes: ['https://mail.google.com/']\n---\n\
             apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: sales}}\nspec:\n  address: sales@example.test\n  owner: alice\n  load: {{enabled: false}}\n  oauth2RefreshToken: {{env: SB_REVOKED}}\n---\n\
             apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: support}}\nspec:\n  address: support@example.test\n  owner: alice\n  load: {{enabled: false}}\n  oauth2RefreshToken: {{env: SB_REVOKED}}\n"
        ),
    ));
    files
}

/// An open `GET /api/v1/events` stream, read event by event.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(daemon: &Daemon, token: &str) -> Events {
        let response = switchboard::net::http_client()
            .get(format!("{}/api/v1/events", daemon.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET /api/v1/events");
        assert_eq!(response.status(), 200);
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// The next event named `name` with its raw data; panics after 10 s.
    async fn next(&mut self, name: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        event = Some(e.trim().to_owned());
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                if event.as_deref() == Some(name) {
                    return data;
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no {name} event within 10 s"))
                .expect("read the event stream")
                .expect("the stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

fn metric(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

fn assert_no_secret(text: &str) {
    for secret in [CLIENT_SECRET, REVOKED, "ya29.", "1//"] {
        assert!(!text.contains(secret), "a secret leaked: {text}");
    }
}

async fn runs(daemon: &Daemon, name: &str) -> i64 {
    let objects = daemon.objects().await;
    find(&objects, "Mailbox", name)
        .map(|o| o["runsFailed"].as_i64().unwrap_or(0) + o["runsOk"].as_i64().unwrap_or(0))
        .unwrap_or(0)
}

#[tokio::test]
async fn a_refused_grant_is_announced_once_stops_retrying_and_recovers_after_consent() {
    // REQ: BX-04, AS-04
    let fake = OAuthFake::start(CLIENT_ID, CLIENT_SECRET, Duration::from_secs(3600)).await;
    let port = free_port();
    let mut daemon = Daemon::start(
        port,
        &config(port, &fake),
        &[
            ("SB_OAUTH_CLIENT_SECRET", CLIENT_SECRET),
            ("SB_REVOKED", REVOKED),
        ],
    );
    daemon.wait_ready().await;
    let mut admin_events = Events::open(&daemon, ADMIN_TOKEN).await;

    let sync = |name: &'static str| {
        let daemon = &daemon;
        async move {
            let response = daemon
                .post(
                    &format!("/api/v1/objects/Mailbox/{name}/sync"),
                    Some(ADMIN_TOKEN),
                )
                .await;
            assert_eq!(response.status().as_u16(), 202);
        }
    };

    // The first run asks the endpoint once, is refused, and announces it.
    sync("sales").await;
    let data = admin_events.next("oauth.reauth-needed").await;
    assert_no_secret(&data);
    let event: serde_json::Value = serde_json::from_str(&data).expect("JSON");
    assert_eq!(
        event,
        serde_json::json!({"kind": "Mailbox", "name": "sales"})
    );
    eventually("the status says consent is needed", &daemon, || async {
        let objects = daemon.objects().await;
        find(&objects, "Mailbox", "sales")
            .and_then(|o| o["lastError"].as_str())
            .is_some_and(|e| {
                e.contains("needs consent again")
                    && e.contains("switchboard oauth url Mailbox/sales")
            })
    })
    .await;
    assert_eq!(fake.token_calls(), 1);

    // More runs: none reaches the endpoint, and none announces again.
    for expected in 2..=4 {
        sync("sales").await;
        eventually("the run ends", &daemon, || async {
            runs(&daemon, "sales").await >= expected
        })
        .await;
    }
    assert_eq!(
        fake.token_calls(),
        1,
        "no retry storm against the token endpoint"
    );
    // The next announcement is the other mailbox's: none for `sales` came in between.
    sync("support").await;
    let next: serde_json::Value =
        serde_json::from_str(&admin_events.next("oauth.reauth-needed").await).expect("JSON");
    assert_eq!(
        next,
        serde_json::json!({"kind": "Mailbox", "name": "support"})
    );
    assert_eq!(fake.token_calls(), 2);

    let metrics = daemon.metrics().await;
    assert_no_secret(&metrics);
    assert_eq!(
        metric(
            &metrics,
            "switchboard_oauth_refresh_failures_total",
            r#"kind="Mailbox",name="sales""#
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "switchboard_oauth_token_expiry_timestamp_seconds",
            r#"kind="Mailbox",name="support""#
        ),
        Some(0.0),
        "a grant that never had a token shows as expired: {metrics}"
    );
    let objects = daemon.objects().await;
    assert_no_secret(&objects.to_string());

    // Consent stores a new refresh token: the mailbox is healthy again and its token's
    // expiry shows.
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(daemon.config_dir())
        .arg("--state")
        .arg(daemon.dir.path().join("state.db"))
        .args(["oauth", "url", "Mailbox/sales"])
        .env_remove("SWITCHBOARD_CONFIG")
        .env_remove("SWITCHBOARD_STATE")
        .env("SB_OAUTH_CLIENT_SECRET", CLIENT_SECRET)
        .env("SB_REVOKED", REVOKED)
        .output()
        .expect("run switchboard oauth url");
    assert!(output.status.success(), "{output:?}");
    let url = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    fake.consent_as("sales@example.test");
    let page = reqwest::get(&url).await.expect("consent");
    assert_eq!(page.status().as_u16(), 200);
    let before = chrono::Utc::now().timestamp() as f64;
    eventually("the mailbox syncs after consent", &daemon, || async {
        let objects = daemon.objects().await;
        find(&objects, "Mailbox", "sales").is_some_and(|o| o["state"] == "ready")
    })
    .await;
    // The stored refresh token differs from the refused one: a forced refresh is tried again.
    let calls = fake.token_calls();
    let metrics = daemon.metrics().await;
    let expiry = metric(
        &metrics,
        "switchboard_oauth_token_expiry_timestamp_seconds",
        r#"kind="Mailbox",name="sales""#,
    )
    .expect("an expiry for the consented grant");
    assert!(
        expiry > before + 3000.0 && expiry < before + 3700.0,
        "expiry {expiry} is about an hour after {before}"
    );
    assert_no_secret(&metrics);
    sync("sales").await;
    eventually("the mailbox syncs again", &daemon, || async {
        let objects = daemon.objects().await;
        find(&objects, "Mailbox", "sales")
            .is_some_and(|o| o["state"] == "ready" && o["runsOk"].as_i64() >= Some(2))
    })
    .await;
    assert_eq!(
        fake.token_calls(),
        calls,
        "the consented access token is used as is"
    );
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(10));
}

/// Runs `switchboard status` on `state` and answers its output.
fn status(state: &std::path::Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--state")
        .arg(state)
        .arg("status")
        .env_remove("SWITCHBOARD_CONFIG")
        .env_remove("SWITCHBOARD_STATE")
        .output()
        .expect("run switchboard status");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn a_refused_grant_stays_refused_across_a_restart() {
    // REQ: BX-04
    let fake = OAuthFake::start(CLIENT_ID, CLIENT_SECRET, Duration::from_secs(3600)).await;
    let env = [
        ("SB_OAUTH_CLIENT_SECRET", CLIENT_SECRET),
        ("SB_REVOKED", REVOKED),
    ];
    let port = free_port();
    let mut daemon = Daemon::start(port, &config(port, &fake), &env);
    daemon.wait_ready().await;
    let mut events = Events::open(&daemon, ADMIN_TOKEN).await;
    let response = daemon
        .post("/api/v1/objects/Mailbox/sales/sync", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&events.next("oauth.reauth-needed").await)
            .expect("JSON"),
        serde_json::json!({"kind": "Mailbox", "name": "sales"})
    );
    assert_eq!(fake.token_calls(), 1);
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).is_some());
    let state = daemon.dir.path().join("state.db");
    // The store keeps the refusal's fingerprint and reason, never the token.
    let text = status(&state);
    let line = text
        .lines()
        .find(|l| l.starts_with("Mailbox/sales "))
        .unwrap_or_else(|| panic!("no Mailbox/sales row:\n{text}"));
    assert!(
        line.contains("error") && line.contains("needs consent again"),
        "{text}"
    );
    for file in ["state.db", "state.db-wal"] {
        let bytes = std::fs::read(daemon.dir.path().join(file)).unwrap_or_default();
        assert!(
            !bytes
                .windows(REVOKED.len())
                .any(|w| w == REVOKED.as_bytes()),
            "{file} holds the refresh token in clear"
        );
    }

    // The same state and config: the refused grant is not asked again, nor announced again.
    let port = free_port();
    let mut daemon = Daemon::start_on_state(port, &config(port, &fake), &env, &state);
    daemon.wait_ready().await;
    let mut events = Events::open(&daemon, ADMIN_TOKEN).await;
    let before = runs(&daemon, "sales").await;
    let response = daemon
        .post("/api/v1/objects/Mailbox/sales/sync", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(response.status().as_u16(), 202);
    eventually("the run ends", &daemon, || async {
        runs(&daemon, "sales").await > before
    })
    .await;
    assert_eq!(fake.token_calls(), 1, "not asked again after the restart");
    let objects = daemon.objects().await;
    let sales = find(&objects, "Mailbox", "sales").expect("listed");
    assert!(
        sales["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("needs consent again")),
        "{sales}"
    );
    // The next announcement is the other mailbox's: none for `sales` came before it.
    let response = daemon
        .post("/api/v1/objects/Mailbox/support/sync", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&events.next("oauth.reauth-needed").await)
            .expect("JSON"),
        serde_json::json!({"kind": "Mailbox", "name": "support"})
    );
    assert_eq!(fake.token_calls(), 2);
    let metrics = daemon.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "switchboard_oauth_token_expiry_timestamp_seconds",
            r#"kind="Mailbox",name="sales""#
        ),
        Some(0.0),
        "the consent alert keeps firing after the restart: {metrics}"
    );

    // Restarted with a new refresh token in the config: the grant is tried again.
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).is_some());
    let state = daemon.dir.path().join("state.db");
    let mut env = env.to_vec();
    env.push(("SB_NEW_TOKEN", "1//another-revoked-token"));
    let port = free_port();
    let mut files = config(port, &fake);
    for (name, text) in &mut files {
        if *name == "mail.yaml" {
            *text = text.replacen(
                "oauth2RefreshToken: {env: SB_REVOKED}",
                "oauth2RefreshToken: {env: SB_NEW_TOKEN}",
                1,
            );
        }
    }
    let mut daemon = Daemon::start_on_state(port, &files, &env, &state);
    daemon.wait_ready().await;
    let response = daemon
        .post("/api/v1/objects/Mailbox/sales/sync", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(response.status().as_u16(), 202);
    eventually("the changed grant is asked", &daemon, || async {
        fake.token_calls() == 3
    })
    .await;
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(10));
}
