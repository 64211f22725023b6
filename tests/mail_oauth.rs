//! OAuth 2.0 access tokens for mail logins against a fake token endpoint that issues
//! short-lived tokens: refreshed from the refresh token, reused while valid, refreshed again
//! near expiry and on demand (after an auth failure), sealed in the store, reused after a
//! restart, and a refused refresh token reported in the endpoint's words.

#[path = "support/oauth_fake.rs"]
mod oauth_fake;

use std::path::Path;
use std::time::Duration;

use switchboard::clock::Clock;
use switchboard::config::types::{Secret, SecretRef};
use switchboard::mail::oauth::{OAuthApp, OAuthError, TokenSource};
use switchboard::store::{Store, StoreHandle};
use switchboard::telemetry::Metrics;

use oauth_fake::OAuthFake;

const CLIENT_ID: &str = "switchboard-test.apps.example";
const CLIENT_SECRET: &str = "client-s3cret";
const REFRESH: &str = "1//refresh-token-of-sales";

fn secret(dir: &Path, name: &str, value: &str) -> Secret {
    std::fs::write(dir.join(name), value).expect("secret file");
    SecretRef::File(name.into()).resolve(dir).expect("resolve")
}

fn app(dir: &Path, fake: &OAuthFake) -> OAuthApp {
    OAuthApp {
        client_id: CLIENT_ID.into(),
        client_secret: secret(dir, "client-secret", CLIENT_SECRET),
        auth_url: format!("{}/auth", fake.base),
        token_url: format!("{}/token", fake.base),
        scopes: vec!["https://mail.google.com/".into()],
    }
}

#[tokio::test]
async fn tokens_are_refreshed_before_expiry_and_on_demand_and_sealed_at_rest() {
    // REQ: EP-04 (oauth2 with client id and secret), EP-06 (Gmail's OAuth path)
    // Tokens live an hour; one with less than 60 s left is refreshed. Time is the injected
    // clock's, so "near expiry" is a clock 59 min 1 s ahead, not a sleep.
    let fake = OAuthFake::start(CLIENT_ID, CLIENT_SECRET, Duration::from_secs(3600)).await;
    let now = Clock::system();
    fake.allow(REFRESH, "sales@example.test");
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.db");
    let store = StoreHandle::new(Store::open(&state).expect("store"));
    let configured = secret(dir.path(), "refresh", REFRESH);

    let metrics = Metrics::new();
    let source = TokenSource::new("sales", app(dir.path(), &fake));
    let first = source
        .token(&store, &now, Some(&configured), false, &metrics)
        .await
        .expect("a token from the refresh token");
    assert!(fake.active(&first));
    assert_eq!(fake.grants(), 1);
    let again = source
        .token(&store, &now, Some(&configured), false, &metrics)
        .await
        .expect("cached");
    assert_eq!(again, first, "a valid token is reused");
    assert_eq!(fake.grants(), 1);

    // After a restart (a new source on the same store) the sealed token is reused.
    drop(source);
    let source = TokenSource::new("sales", app(dir.path(), &fake));
    let reused = source
        .token(&store, &now, Some(&configured), false, &metrics)
        .await
        .expect("stored");
    assert_eq!(reused, first);
    assert_eq!(
        fake.grants(),
        1,
        "no grant after a restart while the token is valid"
    );

    // An auth failure asks for a new token even though this one looks valid.
    fake.revoke_all();
    let forced = source
        .token(&store, &now, Some(&configured), true, &metrics)
        .await
        .expect("forced");
    assert_ne!(forced, first);
    assert!(fake.active(&forced));
    assert_eq!(fake.grants(), 2);

    // Near expiry (less than a minute left) it is refreshed before use.
    let near_expiry = Clock::tokio(chrono::Utc::now() + chrono::Duration::seconds(3600 - 59));
    let later = source
        .token(&store, &near_expiry, Some(&configured), false, &metrics)
        .await
        .expect("refreshed");
    assert_ne!(later, forced);
    assert_eq!(fake.grants(), 3);

    // At rest: no token in clear in the state file (or its WAL), and a 0600 key beside it.
    drop(store);
    for file in ["state.db", "state.db-wal"] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
        for token in [&first, &forced, &later] {
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "{file} holds an access token in clear"
            );
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("state.db.key"))
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn a_refused_refresh_token_is_reported_in_the_endpoints_words() {
    // REQ: EP-04
    let fake = OAuthFake::start(CLIENT_ID, CLIENT_SECRET, Duration::from_secs(3600)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = StoreHandle::new(Store::open(&dir.path().join("state.db")).expect("store"));
    let metrics = Metrics::new();
    let source = TokenSource::new("sales", app(dir.path(), &fake));
    let now = Clock::system();
    let unknown = secret(dir.path(), "refresh", "1//revoked");
    let error = source
        .token(&store, &now, Some(&unknown), false, &metrics)
        .await
        .expect_err("an unknown refresh token is refused");
    assert!(
        matches!(&error, OAuthError::ConsentNeeded(e) if e.contains("(invalid_grant)")),
        "{error}"
    );
    let error = source
        .token(&store, &now, None, false, &metrics)
        .await
        .expect_err("no refresh token at all");
    assert!(
        matches!(&error, OAuthError::NoRefreshToken(m) if m == "sales"),
        "{error}"
    );
    assert!(
        !error.to_string().contains(CLIENT_SECRET),
        "errors never carry the client secret"
    );
}
