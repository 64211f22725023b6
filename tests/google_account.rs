//! A GoogleAccount connected and removed (AS-04) through the real binary: `switchboard oauth url
//! GoogleAccount/NAME` prints Google's consent URL (offline access, the Contacts and Calendar
//! scopes), a browser passes the fake's consent page, the daemon's `/oauth/google/callback`
//! stores the tokens sealed under `GoogleAccount/NAME`; removing the manifest (with its syncs)
//! drops the stored tokens, and `plan` says so beforehand. No secret in plan, status or logs.
//!
//! Refresh, expiry and `invalid_grant` of the GoogleAccount's grant are covered by the unit
//! tests of `src/sync/tokens.rs` (nothing in the daemon spends a GoogleAccount token yet: the
//! People and Calendar clients build on it).

#[path = "support/oauth_fake.rs"]
mod oauth_fake;
mod support;

use std::process::{Command, Output};
use std::time::Duration;

use switchboard::mail::oauth::Sealer;
use switchboard::store::Store;

use oauth_fake::OAuthFake;
use support::{Daemon, eventually, find, free_port};

const CLIENT_ID: &str = "switchboard-google.apps.example";
const CLIENT_SECRET: &str = "google-client-s3cret";
const ENV: [(&str, &str); 2] = [
    ("SB_GOOGLE_CLIENT_SECRET", CLIENT_SECRET),
    ("SB_TEST_SECRET", "mailbox-password"),
];

/// The GoogleAccount `jonas` (no refresh token in the manifest) and a ContactSync over it.
const ACCOUNT: &str = "apiVersion: switchboard/v1\nkind: GoogleAccount\nmetadata: {name: jonas}\nspec:\n  user: alice\n  email: jonas@example.test\n";
const SYNC: &str = "apiVersion: switchboard/v1\nkind: ContactSync\nmetadata: {name: jonas-contacts}\nspec:\n  account: jonas\n  import: {enabled: true}\n  export: {enabled: true}\n  google: {tag: Jonas}\n";

fn config(port: u16, fake: &OAuthFake) -> Vec<(&'static str, String)> {
    let mut files = support::with_settings(
        &support::base_config(port),
        &format!(
            "  google:\n    clientId: {CLIENT_ID}\n    clientSecret: {{env: SB_GOOGLE_CLIENT_SECRET}}\n    authUrl: {base}/auth\n    tokenUrl: {base}/token\n",
            base = fake.base
        ),
    );
    files.push(("google.yaml", format!("{ACCOUNT}---\n{SYNC}")));
    files
}

fn cli(daemon: &Daemon, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(daemon.config_dir())
        .arg("--state")
        .arg(daemon.dir.path().join("state.db"))
        .args(args)
        .env_remove("SWITCHBOARD_CONFIG")
        .env_remove("SWITCHBOARD_STATE")
        .envs(ENV)
        .output()
        .expect("run switchboard")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The sealed refresh token stored for `GoogleAccount/jonas`, opened; `None` when there is none.
fn stored_refresh(daemon: &Daemon) -> Option<String> {
    let state = daemon.dir.path().join("state.db");
    let stored = Store::open_read_only(&state)
        .expect("store")
        .mail_oauth_tokens("GoogleAccount/jonas")
        .expect("read")?;
    let sealer = Sealer::for_state(&state).expect("key");
    sealer.open(
        "GoogleAccount/jonas",
        "refresh",
        stored.refresh_token.as_deref()?,
    )
}

fn assert_no_secret(what: &str, body: &str, secrets: &[&str]) {
    for secret in secrets
        .iter()
        .chain(&[CLIENT_SECRET, "ya29.", "1//fake-refresh"])
    {
        assert!(!body.contains(secret), "{what} shows a secret: {body}");
    }
}

#[tokio::test]
async fn a_google_account_is_connected_by_consent_and_its_removal_drops_the_stored_token() {
    // REQ: AS-04 (a user's Google account can be connected and removed)
    let fake = OAuthFake::start(CLIENT_ID, CLIENT_SECRET, Duration::from_secs(3600)).await;
    let port = free_port();
    let mut daemon = Daemon::start(port, &config(port, &fake), &ENV);
    daemon.wait_ready().await;

    // The consent URL: Google's parameters, both scopes, offline access, our callback.
    let output = cli(&daemon, &["oauth", "url", "GoogleAccount/jonas"]);
    assert!(output.status.success(), "{}", text(&output));
    let url = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(url.starts_with(&format!("{}/auth?", fake.base)), "{url}");
    assert_no_secret("the consent URL", &url, &[]);
    fake.consent_as("jonas@example.test");
    let response = reqwest::get(&url).await.expect("the consent round trip");
    let landed = response.url().to_string();
    let (status, body) = (
        response.status().as_u16(),
        response.text().await.expect("body"),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("GoogleAccount jonas is connected"), "{body}");
    assert!(body.contains("1 contact or calendar sync"), "{body}");
    let consent = fake.last_consent();
    assert_eq!(
        consent["redirect_uri"],
        format!("http://127.0.0.1:{port}/oauth/google/callback")
    );
    assert_eq!(
        consent["scope"],
        "https://www.googleapis.com/auth/contacts https://www.googleapis.com/auth/calendar"
    );
    assert_eq!(consent["access_type"], "offline");
    assert_eq!(consent["prompt"], "consent");
    assert_eq!(fake.code_grants(), 1);
    let code = url::Url::parse(&landed)
        .expect("landed URL")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    assert_no_secret("the callback page", &body, &[&code]);

    // Stored sealed under the account's grant key: the refresh token the fake issued, never
    // in clear in the state file.
    let refresh = stored_refresh(&daemon).expect("tokens stored for GoogleAccount/jonas");
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
    // The expiry of the consented token is a metric at once.
    let metrics = daemon.metrics().await;
    assert!(
        metrics.contains(
            "oauth_token_expiry_timestamp_seconds{kind=\"GoogleAccount\",name=\"jonas\"}"
        ),
        "{metrics}"
    );

    // Removing the account alone leaves its sync naming nothing: the config is refused, with
    // what to do.
    std::fs::write(daemon.config_dir().join("google.yaml"), SYNC).expect("rewrite");
    let output = cli(&daemon, &["validate"]);
    assert!(!output.status.success());
    let said = text(&output);
    assert!(said.contains("account `jonas` does not exist"), "{said}");
    assert!(said.contains("remove the sync too"), "{said}");

    // Removing it with its sync: plan says the stored token goes and the records stay.
    std::fs::write(daemon.config_dir().join("google.yaml"), "").expect("rewrite");
    let output = cli(&daemon, &["plan"]);
    assert!(output.status.success(), "{}", text(&output));
    let plan = text(&output);
    assert!(
        plan.contains("  - GoogleAccount/jonas will be destroyed"),
        "{plan}"
    );
    assert!(
        plan.contains(
            "      # its OAuth tokens stored at run time (from its consent flow) are deleted"
        ),
        "{plan}"
    );
    assert!(plan.contains("are kept"), "{plan}");
    assert!(
        plan.contains("  - ContactSync/jonas-contacts will be destroyed"),
        "{plan}"
    );
    assert_no_secret("plan", &plan, &[&refresh, &code]);

    daemon.signal("HUP");
    eventually("the removal to apply", &daemon, || async {
        find(&daemon.objects().await, "GoogleAccount", "jonas").is_none()
    })
    .await;
    assert_eq!(stored_refresh(&daemon), None, "the sealed token is deleted");
    let state = daemon.dir.path().join("state.db");
    assert_eq!(
        Store::open_read_only(&state)
            .expect("store")
            .mail_oauth_tokens("GoogleAccount/jonas")
            .expect("read"),
        None
    );
    let metrics = daemon.metrics().await;
    assert!(
        !metrics.contains("kind=\"GoogleAccount\",name=\"jonas\""),
        "the removed grant's series are gone: {metrics}"
    );

    let status = cli(&daemon, &["status"]);
    assert_no_secret("status", &text(&status), &[&refresh, &code]);
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(10));
    assert_no_secret("the daemon's log", &daemon.stderr(), &[&refresh, &code]);
}

#[tokio::test]
async fn a_google_account_needs_the_google_app_and_a_foreign_callback_is_refused() {
    // REQ: AS-04
    let fake = OAuthFake::start(CLIENT_ID, CLIENT_SECRET, Duration::from_secs(3600)).await;
    let port = free_port();
    let mut daemon = Daemon::start(port, &config(port, &fake), &ENV);
    daemon.wait_ready().await;

    // The account's consent comes back to /oauth/google/callback only.
    let output = cli(&daemon, &["oauth", "url", "GoogleAccount/jonas"]);
    assert!(output.status.success(), "{}", text(&output));
    let url = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let state = url::Url::parse(&url)
        .expect("URL")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let foreign = reqwest::get(format!(
        "{}/oauth/microsoft/callback?code=abc&state={state}",
        daemon.base
    ))
    .await
    .expect("GET");
    assert_eq!(foreign.status().as_u16(), 400);
    let body = foreign.text().await.expect("body");
    assert!(body.contains("/oauth/google/callback"), "{body}");
    assert_eq!(
        fake.token_calls(),
        0,
        "a foreign callback exchanges nothing"
    );

    let output = cli(&daemon, &["oauth", "url", "GoogleAccount/nobody"]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("no GoogleAccount named `nobody`"),
        "{}",
        text(&output)
    );

    // Without Settings.google's client the config is refused, saying what to set.
    let settings =
        std::fs::read_to_string(daemon.config_dir().join("settings.yaml")).expect("settings");
    let without_google = settings
        .split("  google:")
        .next()
        .expect("before")
        .to_owned();
    std::fs::write(daemon.config_dir().join("settings.yaml"), without_google).expect("rewrite");
    let output = cli(&daemon, &["validate"]);
    assert!(!output.status.success());
    let said = text(&output);
    assert!(
        said.contains("a GoogleAccount needs the Google app: Settings.google.clientId and Settings.google.clientSecret are not set"),
        "{said}"
    );
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(10));
}
