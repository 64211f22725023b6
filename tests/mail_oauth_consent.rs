//! The OAuth 2.0 authorization-code flow end to end: `switchboard oauth url` prints the consent
//! URL, a browser (reqwest following redirects) passes the fake's consent page, the real
//! daemon's `/oauth/google/callback` verifies the signed state, exchanges the code, stores the
//! tokens sealed and syncs the mailbox, which has no `oauth2RefreshToken` in its manifest.
//! Bad, foreign and replayed callbacks answer 400 in words a person can act on, never with a
//! secret.

#[path = "support/oauth_fake.rs"]
mod oauth_fake;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use switchboard::mail::oauth::Sealer;
use switchboard::store::Store;

use oauth_fake::OAuthFake;
use support::{Daemon, eventually, find, free_port};

const CLIENT_ID: &str = "switchboard-consent.apps.example";
const CLIENT_SECRET: &str = "consent-client-s3cret";

fn config(port: u16, fake: &OAuthFake) -> Vec<(&'static str, String)> {
    let mut files: Vec<_> = support::base_config(port)
        .into_iter()
        .filter(|(name, _)| *name != "mail.yaml")
        .collect();
    // Nothing listens on the IMAP and SMTP ports: the mailbox does not load, and its outbox is
    // empty, so a run only needs an access token.
    let (imap, smtp) = (free_port(), free_port());
    let base = &fake.base;
    files.push((
        "mail.yaml",
        format!(
            "apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {{name: gmail-test}}\nspec:\n  type: gmail\n  title: Gmail (fake)\n  domains: [example.test]\n  \
             imap: {{host: 127.0.0.1, port: {imap}}}\n  smtp: {{host: 127.0.0.1, port: {smtp}}}\n  auth: oauth2\n  \
             oauth2:\n    clientId: {CLIENT_ID}\n    clientSecret: {{env: SB_OAUTH_CLIENT_SECRET}}\n    authUrl: {base}/auth\n    tokenUrl: {base}/token\n    scopes: ['https://mail.google.com/']\n---\n\
             apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: sales}}\nspec:\n  address: sales@example.test\n  owner: alice\n  load: {{enabled: false}}\n"
        ),
    ));
    files
}

fn consent_url(daemon: &Daemon) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(daemon.config_dir())
        .arg("--state")
        .arg(daemon.dir.path().join("state.db"))
        .args(["oauth", "url", "Mailbox/sales"])
        .env_remove("SWITCHBOARD_CONFIG")
        .env_remove("SWITCHBOARD_STATE")
        .env("SB_OAUTH_CLIENT_SECRET", CLIENT_SECRET)
        .output()
        .expect("run switchboard oauth url");
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        output.status.success(),
        "oauth url failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn state_of(url: &str) -> String {
    url::Url::parse(url)
        .expect("a URL")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("a state parameter")
}

async fn get(url: &str) -> (u16, String, String) {
    let response = reqwest::get(url).await.expect("GET");
    let (status, at) = (response.status().as_u16(), response.url().to_string());
    (status, response.text().await.expect("body"), at)
}

fn assert_no_secret(body: &str, code: &str) {
    assert!(!body.contains(CLIENT_SECRET), "{body}");
    assert!(!body.contains("ya29."), "{body}");
    assert!(!body.contains("1//"), "{body}");
    assert!(code.is_empty() || !body.contains(code), "{body}");
}

#[tokio::test]
async fn consent_stores_sealed_tokens_and_the_mailbox_syncs_without_a_configured_refresh_token() {
    // REQ: EP-04, EP-06 (Gmail OAuth 2.0: consent URL, callback, tokens stored encrypted)
    let fake = OAuthFake::start(CLIENT_ID, CLIENT_SECRET, Duration::from_secs(3600)).await;
    let port = free_port();
    let mut daemon = Daemon::start(
        port,
        &config(port, &fake),
        &[("SB_OAUTH_CLIENT_SECRET", CLIENT_SECRET)],
    );
    daemon.wait_ready().await;

    // Before consent a run fails and says how to consent. (The mailbox does not load mail, so
    // it runs only on request: the run after consent is the callback's request.)
    let response = daemon
        .post(
            "/api/v1/objects/Mailbox/sales/sync",
            Some(support::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(response.status().as_u16(), 202);
    eventually("the mailbox asks for consent", &daemon, || async {
        let objects = daemon.objects().await;
        find(&objects, "Mailbox", "sales")
            .and_then(|o| o["lastError"].as_str())
            .is_some_and(|e| e.contains("switchboard oauth url Mailbox/sales"))
    })
    .await;

    let url = consent_url(&daemon);
    assert!(url.starts_with(&format!("{}/auth?", fake.base)), "{url}");
    fake.consent_as("sales@example.test");
    let (status, body, landed) = get(&url).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("mailbox sales is connected"), "{body}");
    let consent = fake.last_consent();
    assert_eq!(
        consent["redirect_uri"],
        format!("http://127.0.0.1:{port}/oauth/google/callback")
    );
    assert_eq!(consent["access_type"], "offline");
    assert_eq!(consent["prompt"], "consent");
    assert_eq!(consent["scope"], "https://mail.google.com/");
    assert_eq!(fake.code_grants(), 1);

    // The callback asked for a sync; it succeeds with the stored access token (no refresh).
    eventually("the mailbox syncs after consent", &daemon, || async {
        let objects = daemon.objects().await;
        find(&objects, "Mailbox", "sales")
            .is_some_and(|o| o["state"] == "ready" && o["runsOk"].as_i64() >= Some(1))
    })
    .await;
    assert_eq!(
        fake.grants(),
        0,
        "the access token from the code is used as is"
    );

    // The code is single use: the same callback again is the provider's invalid_grant.
    let code = url::Url::parse(&landed)
        .expect("landed URL")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let (status, body, _) = get(&landed).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_grant"), "{body}");
    assert_no_secret(&body, &code);

    // Tokens at rest: sealed for this mailbox, the refresh token is the one the fake issued,
    // and neither is in clear in the state file.
    let state = daemon.dir.path().join("state.db");
    let stored = Store::open(&state)
        .expect("store")
        .mail_oauth_tokens("sales")
        .expect("read")
        .expect("tokens stored");
    let sealer = Sealer::for_state(&state).expect("key");
    let refresh = sealer
        .open(
            "sales",
            "refresh",
            stored.refresh_token.as_deref().expect("refresh"),
        )
        .expect("opens");
    assert!(refresh.starts_with("1//fake-refresh-"), "{refresh}");
    for file in ["state.db", "state.db-wal"] {
        let bytes = std::fs::read(daemon.dir.path().join(file)).unwrap_or_default();
        assert!(
            !bytes
                .windows(refresh.len())
                .any(|w| w == refresh.as_bytes()),
            "{file} holds the refresh token in clear"
        );
    }
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(10));
}

#[tokio::test]
async fn forged_foreign_and_declined_callbacks_answer_400_with_what_to_do() {
    // REQ: EP-05, EP-06
    let fake = OAuthFake::start(CLIENT_ID, CLIENT_SECRET, Duration::from_secs(3600)).await;
    let port = free_port();
    let mut daemon = Daemon::start(
        port,
        &config(port, &fake),
        &[("SB_OAUTH_CLIENT_SECRET", CLIENT_SECRET)],
    );
    daemon.wait_ready().await;
    let callback = |provider: &str, query: &str| {
        format!("http://127.0.0.1:{port}/oauth/{provider}/callback?{query}")
    };

    // A state this daemon did not sign.
    let (status, body, _) = get(&callback("google", "code=4/x&state=sales.0.9999999999.00")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not one this daemon issued"), "{body}");

    // A genuine state at the other provider's callback.
    let state = state_of(&consent_url(&daemon));
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("code", "4/x")
        .append_pair("state", &state)
        .finish();
    let (status, body, _) = get(&callback("microsoft", &query)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("/oauth/google/callback"), "{body}");

    // A code the token endpoint does not know.
    let (status, body, _) = get(&callback("google", &query)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_grant"), "{body}");
    assert_no_secret(&body, "");

    // The user declines at the consent page.
    let (status, body, _) = get(&consent_url(&daemon)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("access_denied"), "{body}");

    // Missing parameters.
    let (status, body, _) = get(&callback("google", "")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(fake.code_grants(), 0);
    assert!(Path::new(&daemon.dir.path().join("state.db")).exists());
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(10));
}
