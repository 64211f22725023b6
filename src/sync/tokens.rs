//! Bearer tokens for the Google and Microsoft 365 sync clients (AS-04, BX-04): the
//! [`TokenProvider`] a People / Calendar / Graph client asks before each request, and the base
//! URLs of Google's APIs for a `GoogleAccount`.
//!
//! - [`google_account`]: the GoogleAccount's grant — the Google app of `Settings.google`
//!   (`authUrl` / `tokenUrl` overridable for a proxy or a test's fake) with the Contacts and
//!   Calendar scopes, and the account's `refreshToken` when its manifest gives one, else the
//!   one its consent (`switchboard oauth url GoogleAccount/NAME`) stored sealed under
//!   `GoogleAccount/NAME`.
//! - [`microsoft_mailbox`]: a Mailbox on a `microsoft365` provider with `auth: oauth2` — the
//!   very grant its mail connector refreshes (stored under the mailbox's name), so one consent
//!   serves mail, contacts and calendars.
//!
//! Both are a [`TokenSource`] with the grant's `(kind, name)`: access tokens are cached,
//! refreshed a minute before they expire and sealed at rest; an `invalid_grant` marks the
//! grant in the daemon's registry (`oauth.reauth-needed` once, `status`, no retry until the
//! config or the token changes) exactly as for mail. Errors become [`RemoteError::Failed`]
//! with what to do (the consent command), never a token or a secret.
//!
//! Secrets are resolved here, at the connector's build (apply), as the other connectors do.

use std::sync::Arc;

use crate::config::kinds::{
    GOOGLE_AUTH_URL, GOOGLE_CALENDAR_API, GOOGLE_PEOPLE_API, GOOGLE_TOKEN_URL, GoogleAccountSpec,
    MailProviderType, MailboxSpec, SettingsSpec,
};
use crate::config::types::Secret;
use crate::config::{ConfigSet, Kind, KindSpec};
use crate::connector::SyncContext;
use crate::mail::ConsentTarget;
use crate::mail::consent::Callback;
use crate::mail::oauth::{OAuthApp, OAuthError, TokenSource};

use super::remote::{RemoteError, RemoteFuture, TokenProvider};

/// The scopes a GoogleAccount's consent asks for: contacts (People API) and calendars.
pub const GOOGLE_SCOPES: [&str; 2] = [
    "https://www.googleapis.com/auth/contacts",
    "https://www.googleapis.com/auth/calendar",
];

/// The kind whose grant [`google_account`] serves.
const GOOGLE_KIND: &str = "GoogleAccount";

/// One grant, with the refresh token its manifest gives (if any).
struct Grant {
    source: TokenSource,
    configured: Option<Secret>,
    kind: &'static str,
    name: String,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TokenProvider for Grant {
    fn token<'a>(&'a self, ctx: &'a SyncContext<'a>, fresh: bool) -> RemoteFuture<'a, String> {
        Box::pin(async move {
            self.source
                .token(
                    ctx.store,
                    &ctx.clock,
                    self.configured.as_ref(),
                    fresh,
                    ctx.metrics,
                )
                .await
                .map_err(|e| failed(self.kind, &self.name, e))
        })
    }
}

/// An OAuth failure as a run failure that says what to do. [`OAuthError`]'s messages carry no
/// token or secret; a refused refresh names the endpoint's `error` only.
fn failed(kind: &str, name: &str, error: OAuthError) -> RemoteError {
    RemoteError::Failed(match error {
        // Both already say how to consent (and, for a blocked grant, that it is not retried).
        OAuthError::ConsentNeeded(message) => message,
        e @ (OAuthError::NoGrant { .. } | OAuthError::NoRefreshToken(_)) => e.to_string(),
        OAuthError::Refused(reason) => format!(
            "{kind}/{name}: the token endpoint refused the refresh ({reason}); check the OAuth \
             application's client id and secret, or consent again with `switchboard oauth url {kind}/{name}`"
        ),
        other => format!("{kind}/{name}: {other}"),
    })
}

/// The Google app of `Settings.google` with `scopes`: its client id and secret (resolved), and
/// its authorization and token endpoints (Google's unless overridden). `Err` says what to set.
pub fn google_app(set: &ConfigSet, scopes: &[&str]) -> Result<OAuthApp, String> {
    const MISSING: &str = "Settings.google (the Google app's clientId and clientSecret) is not set";
    let (settings, google) = set
        .specs::<SettingsSpec>()
        .find_map(|(o, s)| s.google.as_ref().map(|g| (o, g)))
        .ok_or(MISSING)?;
    let client_id = google
        .client_id
        .clone()
        .ok_or("Settings.google.clientId is not set")?;
    let client_secret = google
        .client_secret
        .as_ref()
        .ok_or("Settings.google.clientSecret is not set")?
        .resolve(settings.origin.dir())
        .map_err(|e| format!("Settings.google.clientSecret: {e}"))?;
    Ok(OAuthApp {
        client_id,
        client_secret,
        auth_url: google
            .auth_url
            .as_ref()
            .map_or(GOOGLE_AUTH_URL, |u| u.as_str())
            .to_owned(),
        token_url: google
            .token_url
            .as_ref()
            .map_or(GOOGLE_TOKEN_URL, |u| u.as_str())
            .to_owned(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
    })
}

/// The grant of GoogleAccount `name`. `Err` is a pending reason (no such account, no Google
/// app, a secret that does not resolve).
pub fn google_account(set: &ConfigSet, name: &str) -> Result<Arc<dyn TokenProvider>, String> {
    let object = set
        .object(Kind::GoogleAccount, name)
        .ok_or_else(|| format!("no GoogleAccount named `{name}` in the configuration"))?;
    let spec = GoogleAccountSpec::from_spec(&object.spec)
        .ok_or_else(|| format!("{} is not a GoogleAccount", object.id()))?;
    let app = google_app(set, &GOOGLE_SCOPES)?;
    let configured = spec
        .refresh_token
        .as_ref()
        .map(|r| r.resolve(object.origin.dir()))
        .transpose()
        .map_err(|e| format!("GoogleAccount {name}'s refreshToken: {e}"))?;
    Ok(Arc::new(Grant {
        source: TokenSource::for_grant(GOOGLE_KIND, name, app),
        configured,
        kind: GOOGLE_KIND,
        name: name.to_owned(),
    }))
}

/// The grant of Mailbox `name` on a `microsoft365` provider with `auth: oauth2`: the one its
/// mail connector uses (same stored tokens, same health). `Err` is a pending reason.
pub fn microsoft_mailbox(set: &ConfigSet, name: &str) -> Result<Arc<dyn TokenProvider>, String> {
    let object = set
        .object(Kind::Mailbox, name)
        .ok_or_else(|| format!("no Mailbox named `{name}` in the configuration"))?;
    let spec = MailboxSpec::from_spec(&object.spec)
        .ok_or_else(|| format!("{} is not a Mailbox", object.id()))?;
    let (provider_name, provider) = set
        .mail_provider_of(spec)
        .ok_or_else(|| format!("no MailProvider serves {}", spec.address.as_str()))?;
    match provider.provider_type {
        MailProviderType::Microsoft365 => {}
        MailProviderType::Exchange => {
            return Err(format!(
                "mailbox {name} is on provider {provider_name} of type exchange: contact and calendar sync with on-premises Exchange (EWS) is not built; use a microsoft365 provider with `auth: oauth2`"
            ));
        }
        other => {
            return Err(format!(
                "mailbox {name} is on provider {provider_name} of type {}: contact and calendar sync needs a microsoft365 provider",
                other.as_str()
            ));
        }
    }
    let (app, configured) = crate::mail::oauth_grant(set, name).map_err(|reason| {
        format!(
            "{reason}; contact and calendar sync through Microsoft Graph needs the provider's `auth: oauth2` (with the Contacts, Calendars and Tasks scopes)"
        )
    })?;
    Ok(Arc::new(Grant {
        source: TokenSource::new(name, app),
        configured,
        kind: "Mailbox",
        name: name.to_owned(),
    }))
}

/// The GoogleAccount's `apiBaseUrl` without a trailing `/`, if it has one.
fn api_base_url(set: &ConfigSet, name: &str) -> Option<String> {
    set.get::<GoogleAccountSpec>(name)
        .and_then(|g| g.api_base_url.as_ref())
        .map(|u| u.as_str().trim_end_matches('/').to_owned())
}

/// The base of GoogleAccount `name`'s APIs: its `apiBaseUrl`, else the People API's host.
/// The Calendar API's host differs from the People API's: prefer [`google_people_base`] and
/// [`google_calendar_base`].
pub fn google_api_base(set: &ConfigSet, name: &str) -> String {
    google_people_base(set, name)
}

/// The base of the People API for GoogleAccount `name`: `{base}/v1/people/me/connections` is
/// the real URL (`https://people.googleapis.com`, or the account's `apiBaseUrl`).
pub fn google_people_base(set: &ConfigSet, name: &str) -> String {
    api_base_url(set, name).unwrap_or_else(|| GOOGLE_PEOPLE_API.to_owned())
}

/// The base of the Calendar API for GoogleAccount `name`: `{base}/calendar/v3/calendars/...`
/// is the real URL (`https://www.googleapis.com`, or the account's `apiBaseUrl`).
pub fn google_calendar_base(set: &ConfigSet, name: &str) -> String {
    api_base_url(set, name).unwrap_or_else(|| GOOGLE_CALENDAR_API.to_owned())
}

/// The consent flow of GoogleAccount `name` (AS-04): the Google app with the Contacts and
/// Calendar scopes, `{Settings.siteUrl}/oauth/google/callback`, the tokens stored under
/// `GoogleAccount/NAME`. `Err` says what to fix.
pub fn consent_target(set: &ConfigSet, name: &str) -> Result<ConsentTarget, String> {
    set.object(Kind::GoogleAccount, name)
        .ok_or_else(|| format!("no GoogleAccount named `{name}` in the configuration"))?;
    let app = google_app(set, &GOOGLE_SCOPES)?;
    let site_url = set
        .settings()
        .map(|s| s.site_url.as_str().to_owned())
        .ok_or(
            "the consent flow needs Settings.siteUrl (the public address Google redirects to)",
        )?;
    let callback = Callback::Google;
    Ok(ConsentTarget {
        mailbox: crate::mail::oauth::grant_key(GOOGLE_KIND, name),
        app,
        redirect_uri: callback.redirect_uri(&site_url),
        callback,
    })
}

/// A digest of what the grant of sync account `account` takes from the config (the Google app
/// and the GoogleAccount, or the Mailbox and its provider), secrets hashed, never in clear:
/// for a sync's [`crate::connector::KindConnectors::inputs`], so a new refresh token or client
/// secret rebuilds the connector.
pub fn account_inputs(set: &ConfigSet, account: &str) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    let mut add = |object: &crate::config::Object| {
        let spec = object.spec.to_json().to_string();
        hash.update((spec.len() as u64).to_be_bytes());
        hash.update(spec.as_bytes());
        if let Ok(secrets) = crate::connector::resolve_secrets(object) {
            for (pointer, secret) in secrets {
                for part in [pointer.as_str(), secret.expose()] {
                    hash.update((part.len() as u64).to_be_bytes());
                    hash.update(part.as_bytes());
                }
            }
        }
    };
    if let Some(google) = set.object(Kind::GoogleAccount, account) {
        set.objects
            .iter()
            .filter(|o| o.kind() == Kind::Settings)
            .for_each(&mut add);
        add(google);
    } else if let Some(mailbox) = set.object(Kind::Mailbox, account) {
        add(mailbox);
        if let Some(spec) = MailboxSpec::from_spec(&mailbox.spec)
            && let Some((provider, _)) = set.mail_provider_of(spec)
            && let Some(provider) = set.object(Kind::MailProvider, provider)
        {
            add(provider);
        }
    }
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use axum::extract::State;
    use axum::response::IntoResponse;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::clock::Clock;
    use crate::store::{Store, StoreHandle};
    use crate::telemetry::Metrics;

    const SECRET: &str = "google-client-s3cret";
    const REFRESH: &str = "1//configured-refresh";

    /// A token endpoint in Google's wire format: a form POST answered with
    /// `{access_token, expires_in}`, or `400 {"error": "invalid_grant"}` for a refresh token
    /// it does not know.
    #[derive(Default)]
    struct Endpoint {
        valid: Vec<String>,
        calls: usize,
        last: HashMap<String, String>,
    }

    type Shared = Arc<Mutex<Endpoint>>;

    async fn token(State(state): State<Shared>, body: String) -> axum::response::Response {
        let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let mut s = state.lock().expect("endpoint");
        s.calls += 1;
        s.last = form.clone();
        let known = form
            .get("refresh_token")
            .is_some_and(|r| s.valid.contains(r));
        if form.get("client_secret").map(String::as_str) != Some(SECRET) {
            return (
                axum::http::StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"error": "invalid_client"})),
            )
                .into_response();
        }
        if form.get("grant_type").map(String::as_str) != Some("refresh_token") || !known {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({
                    "error": "invalid_grant",
                    "error_description": "Token has been expired or revoked."
                })),
            )
                .into_response();
        }
        axum::Json(serde_json::json!({
            "access_token": format!("ya29.access-{}", s.calls),
            "expires_in": 3599,
            "scope": GOOGLE_SCOPES.join(" "),
            "token_type": "Bearer",
        }))
        .into_response()
    }

    async fn endpoint() -> (String, Shared) {
        let state = Shared::default();
        let app = axum::Router::new()
            .route("/token", axum::routing::post(token))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, state)
    }

    /// A config with a GoogleAccount `jonas` (its refresh token in a file when `refresh` is
    /// given) and Settings.google pointing at `token_base`, plus `extra` documents.
    fn config(
        dir: &std::path::Path,
        token_base: &str,
        refresh: Option<&str>,
        extra: &str,
    ) -> ConfigSet {
        std::fs::write(dir.join("client-secret"), SECRET).expect("secret");
        let refresh_line = match refresh {
            Some(token) => {
                std::fs::write(dir.join("refresh"), token).expect("refresh");
                "\n  refreshToken: {file: refresh}"
            }
            None => "",
        };
        std::fs::write(
            dir.join("config.yaml"),
            format!(
                "apiVersion: switchboard/v1\nkind: Settings\nmetadata: {{name: default}}\nspec:\n  siteUrl: https://sb.example.com\n  \
                 google:\n    clientId: cid.apps.example\n    clientSecret: {{file: client-secret}}\n    authUrl: {token_base}/auth\n    tokenUrl: {token_base}/token\n---\n\
                 apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: jonas}}\nspec: {{displayName: Jonas, email: jonas@example.com}}\n---\n\
                 apiVersion: switchboard/v1\nkind: GoogleAccount\nmetadata: {{name: jonas}}\nspec:\n  user: jonas\n  email: jonas@example.com{refresh_line}\n{extra}"
            ),
        )
        .expect("config");
        crate::config::load(&[dir.to_path_buf()])
            .into_result()
            .expect("a valid config")
    }

    struct Run {
        set: ConfigSet,
        store: StoreHandle,
        metrics: Metrics,
        secrets: std::collections::BTreeMap<String, Secret>,
    }

    impl Run {
        fn new(dir: &std::path::Path, set: ConfigSet) -> Run {
            Run {
                set,
                store: StoreHandle::new(Store::open(&dir.join("state.db")).expect("store")),
                metrics: Metrics::new(),
                secrets: Default::default(),
            }
        }

        async fn token(
            &self,
            provider: &dyn TokenProvider,
            clock: Clock,
            fresh: bool,
        ) -> Result<String, RemoteError> {
            let ctx = SyncContext {
                object: &self.set.objects[0],
                secrets: &self.secrets,
                cancel: CancellationToken::new(),
                store: &self.store,
                metrics: &self.metrics,
                clock,
            };
            provider.token(&ctx, fresh).await
        }
    }

    #[tokio::test]
    async fn a_google_account_refreshes_its_grant_reuses_it_and_refreshes_near_expiry() {
        // REQ: AS-04, BX-04
        let (base, endpoint) = endpoint().await;
        endpoint
            .lock()
            .expect("endpoint")
            .valid
            .push(REFRESH.into());
        let dir = tempfile::tempdir().expect("tempdir");
        let run = Run::new(dir.path(), config(dir.path(), &base, Some(REFRESH), ""));
        let provider = google_account(&run.set, "jonas").expect("a grant");

        let now = Clock::system();
        let first = run.token(&*provider, now, false).await.expect("token");
        assert_eq!(first, "ya29.access-1");
        {
            let e = endpoint.lock().expect("endpoint");
            assert_eq!(e.last["grant_type"], "refresh_token");
            assert_eq!(e.last["refresh_token"], REFRESH);
            assert_eq!(e.last["client_id"], "cid.apps.example");
        }
        assert_eq!(
            run.token(&*provider, now, false).await.expect("cached"),
            first
        );
        assert_eq!(
            endpoint.lock().expect("endpoint").calls,
            1,
            "a valid token is reused"
        );
        let expiry = run
            .metrics
            .oauth_token_expiry_timestamp_seconds
            .with_label_values(&["GoogleAccount", "jonas"])
            .get();
        assert!(
            expiry > chrono::Utc::now().timestamp() as f64 + 3000.0,
            "{expiry}"
        );

        // Sealed at rest under the account's grant key, not in clear.
        let stored = run
            .store
            .call(|s| s.mail_oauth_tokens("GoogleAccount/jonas"))
            .await
            .expect("read")
            .expect("stored under GoogleAccount/jonas");
        let sealer =
            crate::mail::oauth::Sealer::for_state(&dir.path().join("state.db")).expect("key");
        assert_eq!(
            sealer
                .open(
                    "GoogleAccount/jonas",
                    "access",
                    stored.access_token.as_deref().expect("access")
                )
                .as_deref(),
            Some(first.as_str())
        );

        // A new provider (a rebuilt connector) reuses the stored token; near expiry it refreshes.
        let provider = google_account(&run.set, "jonas").expect("a grant");
        assert_eq!(
            run.token(&*provider, now, false).await.expect("stored"),
            first
        );
        let near_expiry = Clock::tokio(chrono::Utc::now() + chrono::Duration::seconds(3599 - 59));
        let later = run
            .token(&*provider, near_expiry, false)
            .await
            .expect("refreshed");
        assert_eq!(later, "ya29.access-2");
        // A 401 from the API asks for a fresh one even though this one looks valid.
        let forced = run.token(&*provider, now, true).await.expect("forced");
        assert_eq!(forced, "ya29.access-3");
    }

    #[tokio::test]
    async fn invalid_grant_marks_the_grant_once_says_how_to_consent_and_is_not_retried() {
        // REQ: BX-04
        let (base, endpoint) = endpoint().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let run = Run::new(
            dir.path(),
            config(dir.path(), &base, Some("1//revoked"), ""),
        );
        let mut events = run.metrics.grants.subscribe();
        let provider = google_account(&run.set, "jonas").expect("a grant");
        let error = run
            .token(&*provider, Clock::system(), false)
            .await
            .expect_err("refused");
        let RemoteError::Failed(message) = &error else {
            panic!("not Failed: {error:?}");
        };
        assert!(
            message.contains("switchboard oauth url GoogleAccount/jonas"),
            "{message}"
        );
        assert!(message.contains("invalid_grant"), "{message}");
        for secret in [SECRET, "1//revoked"] {
            assert!(!message.contains(secret), "{message}");
        }
        assert_eq!(
            events.try_recv().expect("one oauth.reauth-needed"),
            ("GoogleAccount".to_owned(), "jonas".to_owned())
        );
        assert_eq!(
            run.metrics
                .oauth_refresh_failures_total
                .with_label_values(&["GoogleAccount", "jonas"])
                .get(),
            1
        );
        assert!(
            run.metrics
                .grants
                .needs_consent("GoogleAccount", "jonas")
                .is_some()
        );
        assert!(
            run.metrics.render().contains(
                "oauth_token_expiry_timestamp_seconds{kind=\"GoogleAccount\",name=\"jonas\"} 0"
            ),
            "a grant that never had a token shows as expired"
        );

        // Asked again (the next run, a rebuilt connector): not sent to the endpoint.
        for _ in 0..3 {
            let provider = google_account(&run.set, "jonas").expect("a grant");
            let again = run
                .token(&*provider, Clock::system(), true)
                .await
                .expect_err("blocked");
            assert!(again.to_string().contains("not retried"), "{again}");
        }
        assert_eq!(
            endpoint.lock().expect("endpoint").calls,
            1,
            "no retry storm"
        );
        assert!(events.try_recv().is_err(), "announced once");

        // A consent stores a new refresh token: the grant is tried again and healthy.
        endpoint
            .lock()
            .expect("endpoint")
            .valid
            .push("1//consented".into());
        let sealer =
            crate::mail::oauth::Sealer::for_state(&dir.path().join("state.db")).expect("key");
        let granted: crate::mail::oauth::Grant = serde_json::from_value(serde_json::json!({
            "access_token": "ya29.from-consent", "expires_in": 0, "refresh_token": "1//consented"
        }))
        .expect("grant");
        crate::mail::oauth::store_grant(
            &run.store,
            &sealer,
            "GoogleAccount/jonas",
            &granted,
            chrono::Utc::now(),
        )
        .await
        .expect("store");
        let token = run
            .token(&*provider, Clock::system(), false)
            .await
            .expect("healthy again");
        assert!(token.starts_with("ya29.access-"), "{token}");
        assert_eq!(
            endpoint.lock().expect("endpoint").last["refresh_token"],
            "1//consented"
        );
        assert!(
            run.metrics
                .grants
                .needs_consent("GoogleAccount", "jonas")
                .is_none()
        );
    }

    #[tokio::test]
    async fn without_any_refresh_token_the_run_says_how_to_consent() {
        // REQ: AS-04
        let (base, endpoint) = endpoint().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let run = Run::new(dir.path(), config(dir.path(), &base, None, ""));
        let provider = google_account(&run.set, "jonas").expect("a grant");
        let error = run
            .token(&*provider, Clock::system(), false)
            .await
            .expect_err("nothing to refresh");
        assert!(
            error
                .to_string()
                .contains("switchboard oauth url GoogleAccount/jonas"),
            "{error}"
        );
        assert_eq!(endpoint.lock().expect("endpoint").calls, 0);
    }

    #[test]
    fn api_bases_are_googles_hosts_or_the_accounts_api_base_url() {
        let dir = tempfile::tempdir().expect("tempdir");
        let set = config(
            dir.path(),
            "http://127.0.0.1:9",
            None,
            "---\napiVersion: switchboard/v1\nkind: User\nmetadata: {name: ava}\nspec: {displayName: Ava, email: ava@example.com}\n---\n\
             apiVersion: switchboard/v1\nkind: GoogleAccount\nmetadata: {name: faked}\nspec:\n  user: ava\n  email: ava@example.com\n  apiBaseUrl: http://127.0.0.1:4321/\n",
        );
        assert_eq!(
            google_people_base(&set, "jonas"),
            "https://people.googleapis.com"
        );
        assert_eq!(
            google_calendar_base(&set, "jonas"),
            "https://www.googleapis.com"
        );
        assert_eq!(
            google_api_base(&set, "jonas"),
            "https://people.googleapis.com"
        );
        assert_eq!(google_people_base(&set, "faked"), "http://127.0.0.1:4321");
        assert_eq!(google_calendar_base(&set, "faked"), "http://127.0.0.1:4321");

        let target = consent_target(&set, "jonas").expect("target");
        assert_eq!(target.mailbox, "GoogleAccount/jonas");
        assert_eq!(
            target.redirect_uri,
            "https://sb.example.com/oauth/google/callback"
        );
        assert_eq!(target.app.scopes, GOOGLE_SCOPES);
        assert_eq!(target.app.auth_url, "http://127.0.0.1:9/auth");
        assert!(consent_target(&set, "nobody").is_err());
        assert_ne!(account_inputs(&set, "jonas"), account_inputs(&set, "faked"));
    }

    #[test]
    fn google_defaults_to_googles_oauth_endpoints() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("s"), SECRET).expect("secret");
        std::fs::write(
            dir.path().join("config.yaml"),
            "apiVersion: switchboard/v1\nkind: Settings\nmetadata: {name: default}\nspec:\n  siteUrl: https://sb.example.com\n  \
             google: {clientId: cid, clientSecret: {file: s}}\n",
        )
        .expect("config");
        let set = crate::config::load(&[dir.path().to_path_buf()])
            .into_result()
            .expect("valid");
        let app = google_app(&set, &GOOGLE_SCOPES).expect("app");
        assert_eq!(app.auth_url, "https://accounts.google.com/o/oauth2/v2/auth");
        assert_eq!(app.token_url, "https://oauth2.googleapis.com/token");
        assert_eq!(app.client_secret.expose(), SECRET);
    }

    #[test]
    fn a_microsoft_mailbox_needs_microsoft365_with_oauth2() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("s"), SECRET).expect("secret");
        let provider = |name: &str, kind: &str, domain: &str, auth: &str| {
            format!(
                "apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {{name: {name}}}\nspec:\n  type: {kind}\n  title: T\n  domains: [{domain}]\n{auth}---\n"
            )
        };
        let oauth = "  auth: oauth2\n  oauth2:\n    clientId: c\n    clientSecret: {file: s}\n    authUrl: https://login.microsoftonline.com/common/oauth2/v2.0/authorize\n    tokenUrl: https://login.microsoftonline.com/common/oauth2/v2.0/token\n    scopes: [Contacts.ReadWrite]\n";
        let mailbox = |name: &str, domain: &str, cred: &str| {
            format!(
                "apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: {name}}}\nspec:\n  address: {name}@{domain}\n  owner: ava\n  {cred}\n---\n"
            )
        };
        let text = [
            provider("m365", "microsoft365", "m365.example", oauth),
            provider("basic", "microsoft365", "basic.example", ""),
            provider(
                "onprem",
                "exchange",
                "onprem.example",
                "  exchange: {serviceUrl: https://mail.onprem.example/EWS/Exchange.asmx}\n",
            ),
            mailbox("graph", "m365.example", "oauth2RefreshToken: {file: s}"),
            mailbox("pw", "basic.example", "password: {file: s}"),
            mailbox("ews", "onprem.example", "password: {file: s}"),
            "apiVersion: switchboard/v1\nkind: User\nmetadata: {name: ava}\nspec: {displayName: Ava, email: ava@example.com}\n".into(),
        ]
        .concat();
        std::fs::write(dir.path().join("config.yaml"), text).expect("config");
        let set = crate::config::load(&[dir.path().to_path_buf()])
            .into_result()
            .expect("valid");
        assert!(microsoft_mailbox(&set, "graph").is_ok());
        let reason = |name| microsoft_mailbox(&set, name).err().expect("pending");
        assert!(reason("pw").contains("auth: oauth2"), "{}", reason("pw"));
        assert!(reason("ews").contains("exchange"), "{}", reason("ews"));
        assert!(
            reason("nobody").contains("no Mailbox"),
            "{}",
            reason("nobody")
        );
        for name in ["pw", "ews"] {
            assert!(!reason(name).contains(SECRET));
        }
    }
}
