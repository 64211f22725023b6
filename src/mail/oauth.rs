//! OAuth 2.0 for mail logins (EP-04..06): access tokens from a provider's token endpoint, kept
//! fresh, sealed at rest, and presented as XOAUTH2.
//!
//! A [`TokenSource`] belongs to one grant: a mailbox connector's ([`TokenSource::new`]) or
//! another object's, such as a GoogleAccount's ([`TokenSource::for_grant`]; the stored tokens
//! are keyed by [`grant_key`]). It hands out an access token that is
//! valid for at least [`REFRESH_EARLY`]; otherwise it runs the `refresh_token` grant against the
//! provider's `oauth2.tokenUrl` with the provider's client id and secret. The refresh token is
//! the one obtained at run time (the authorization-code flow, or a rotated one the endpoint
//! returned), else the mailbox's `oauth2RefreshToken`. Tokens obtained at run time are stored
//! only sealed (see [`Sealer`]); a restart reuses a still-valid access token without asking
//! the endpoint again. After an authentication failure the caller asks once more with
//! `force = true`, which refreshes even a token that looks valid (it may have been revoked).
//!
//! The token call is a plain form POST through reqwest (no `oauth2` crate: one grant, and that
//! crate's defaults drag in a second reqwest); redirects are not followed, so the client secret
//! never goes anywhere but the configured URL. This module must not run SQL or know manifests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};

use crate::clock::Clock;
use crate::config::types::Secret;
use crate::store::StoreError;
use crate::store::StoreHandle;
use crate::store::mail::OAuthTokens;
use crate::telemetry::Metrics;
use crate::telemetry::grants::{consent_needed, fingerprint};

type HmacSha256 = Hmac<sha2::Sha256>;

/// A token is refreshed when it has less than this left.
pub const REFRESH_EARLY: Duration = Duration::from_secs(60);
/// How long a token call may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);
/// The systemd credential that holds the sealing key, when the daemon runs with one.
pub const KEY_CREDENTIAL: &str = "switchboard-key";

/// A provider's OAuth 2.0 application.
#[derive(Clone)]
pub struct OAuthApp {
    /// Client ID.
    pub client_id: String,
    /// Client secret (resolved).
    pub client_secret: Secret,
    /// Authorization endpoint (the consent page).
    pub auth_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// Scopes asked for.
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &"(sensitive)")
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

/// Why no access token could be had. Never carries a token or a secret.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The endpoint answered with an OAuth error (`invalid_grant`: consent again).
    #[error("the token endpoint refused the refresh: {0}")]
    Refused(String),
    /// The endpoint could not be reached or answered nonsense.
    #[error("token endpoint: {0}")]
    Transport(String),
    /// There is no refresh token at all (for this mailbox).
    #[error(
        "no OAuth 2.0 refresh token: set the mailbox's oauth2RefreshToken or complete the consent flow (`switchboard oauth url Mailbox/{0}`)"
    )]
    NoRefreshToken(String),
    /// There is no refresh token at all for the grant of another kind's object (a
    /// GoogleAccount): neither in its manifest nor from a consent.
    #[error(
        "{kind}/{name} has no OAuth 2.0 refresh token yet: run `switchboard oauth url {kind}/{name}` and open the URL signed in as the account's owner (or set its refreshToken)"
    )]
    NoGrant {
        /// The object's kind.
        kind: String,
        /// Its name.
        name: String,
    },
    /// The grant was refused before (`invalid_grant`) and nothing changed since: not asked
    /// again until a consent stores a new token or the config changes (BX-04).
    #[error("{0}")]
    ConsentNeeded(String),
    /// The sealing key could not be read or created.
    #[error("the token sealing key {path}: {reason}")]
    Key {
        /// Key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a token endpoint granted. Its `Debug` shows no token.
#[derive(Clone, serde::Deserialize)]
pub struct Grant {
    /// The access token.
    pub access_token: String,
    /// Seconds it lives (an hour when the endpoint does not say).
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// A new refresh token (rotation, or the authorization-code flow).
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("access_token", &"(sensitive)")
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "(sensitive)"),
            )
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The HTTP client for token endpoints: no redirects.
pub fn http_client() -> reqwest::Client {
    crate::net::http_client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TOKEN_TIMEOUT)
        .build()
        .expect("an HTTP client with default TLS settings builds")
}

/// POSTs a grant (`grant_type` and its fields) with the app's client credentials.
pub(crate) async fn grant(
    http: &reqwest::Client,
    app: &OAuthApp,
    fields: &[(&str, &str)],
) -> Result<Grant, OAuthError> {
    // Built in a block: the serializer is not `Send` and must not live across an await.
    let body = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields {
            form.append_pair(k, v);
        }
        form.append_pair("client_id", &app.client_id);
        form.append_pair("client_secret", app.client_secret.expose());
        form.finish()
    };
    let response = http
        .post(&app.token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| OAuthError::Transport(e.without_url().to_string()))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| OAuthError::Transport(e.without_url().to_string()))?;
    if status.is_success() {
        return serde_json::from_slice(&body)
            .map_err(|e| OAuthError::Transport(format!("unreadable token answer: {e}")));
    }
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => Err(OAuthError::Refused(match e.error_description {
            Some(d) => format!("{} ({d})", e.error),
            None => e.error,
        })),
        Err(_) => Err(OAuthError::Transport(format!("HTTP {status}"))),
    }
}

/// The `refresh_token` grant.
pub async fn refresh(
    http: &reqwest::Client,
    app: &OAuthApp,
    refresh_token: &str,
) -> Result<Grant, OAuthError> {
    grant(
        http,
        app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// The kind whose grants are stored under the bare object name (as before other kinds had
/// grants): a mailbox's tokens never move.
const MAILBOX: &str = "Mailbox";

/// The key the tokens of `kind`/`name`'s grant are stored and sealed under: a Mailbox's
/// name (`sales`), or `KIND/NAME` for another kind (`GoogleAccount/jonas`,
/// `LinkedInAccount/alice`). Object names never contain `/`, so the two cannot meet; the
/// store deletes a `KIND/NAME` grant with its object ([`crate::store::Store::apply`]).
pub fn grant_key(kind: &str, name: &str) -> String {
    if kind == MAILBOX {
        name.to_owned()
    } else {
        format!("{kind}/{name}")
    }
}

/// Whether a token endpoint's refusal means the grant itself is gone (RFC 6749 §5.2:
/// `invalid_grant`, the refresh token is invalid, expired or revoked), so only a new consent
/// helps. Other refusals (`invalid_client`, a misconfigured app) are retried as usual.
pub fn needs_consent(reason: &str) -> bool {
    reason == "invalid_grant" || reason.starts_with("invalid_grant ")
}

/// Sets `oauth_token_expiry_timestamp_seconds{kind,name}`.
pub fn set_expiry(metrics: &Metrics, kind: &str, name: &str, at: DateTime<Utc>) {
    metrics
        .oauth_token_expiry_timestamp_seconds
        .with_label_values(&[kind, name])
        .set(at.timestamp() as f64);
}

/// The SASL XOAUTH2 initial response (before base64), as Google and Microsoft document it.
pub fn xoauth2(user: &str, access_token: &str) -> String {
    format!("user={user}\x01auth=Bearer {access_token}\x01\x01")
}

/// Seals and opens tokens with XChaCha20-Poly1305 under the store's key.
///
/// The key (32 bytes, hex) comes from the systemd credential [`KEY_CREDENTIAL`] when
/// `$CREDENTIALS_DIRECTORY` has it, otherwise from `<state file>.key`, created mode 0600 on
/// first use. Each sealed value is `nonce (24 random bytes) ‖ ciphertext`, and the mailbox
/// name and field are bound as associated data, so a value moved to another row does not open.
///
/// The same key also signs the consent flow's `state` (see [`super::consent`]) through a
/// subkey derived with HMAC-SHA256 under a fixed label: one secret to provision and rotate,
/// and the CLI that prints a consent URL and the daemon that verifies it agree without
/// sharing anything else. The derived key never encrypts and the cipher key never signs.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    signing_key: [u8; 32],
}

impl Sealer {
    /// The key for the state file at `state`.
    pub fn for_state(state: &Path) -> Result<Sealer, OAuthError> {
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            let path = Path::new(&dir).join(KEY_CREDENTIAL);
            if path.exists() {
                return Sealer::read(&path);
            }
        }
        if state.as_os_str() == ":memory:" {
            return Ok(Sealer::from_key(&rand::random::<[u8; 32]>()));
        }
        let mut path = state.as_os_str().to_owned();
        path.push(".key");
        let path = PathBuf::from(path);
        if !path.exists() {
            Sealer::create(&path)?;
        }
        Sealer::read(&path)
    }

    fn create(path: &Path) -> Result<(), OAuthError> {
        use std::os::unix::fs::OpenOptionsExt;
        let key_error = |e: std::io::Error| OAuthError::Key {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut file) => {
                let key: [u8; 32] = rand::random();
                file.write_all(hex::encode(key).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(key_error)
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(key_error(e)),
        }
    }

    fn read(path: &Path) -> Result<Sealer, OAuthError> {
        let text = std::fs::read_to_string(path).map_err(|e| OAuthError::Key {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let key: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| OAuthError::Key {
                path: path.to_owned(),
                reason: "expected 64 hex digits (32 bytes)".into(),
            })?;
        Ok(Sealer::from_key(&key))
    }

    /// A sealer with this key.
    pub fn from_key(key: &[u8; 32]) -> Sealer {
        let mut derive = <HmacSha256 as Mac>::new_from_slice(key)
            .expect("HMAC-SHA256 takes a key of any length");
        derive.update(b"switchboard/oauth-state/v1");
        Sealer {
            cipher: XChaCha20Poly1305::new(key.into()),
            signing_key: derive.finalize().into_bytes().into(),
        }
    }

    /// The HMAC-SHA256 of `data` under the signing subkey.
    pub fn sign(&self, data: &[u8]) -> [u8; 32] {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.signing_key)
            .expect("HMAC-SHA256 takes a key of any length");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is the signature of `data` (compared in constant time).
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.signing_key)
            .expect("HMAC-SHA256 takes a key of any length");
        mac.update(data);
        mac.verify_slice(tag).is_ok()
    }

    /// Seals `plain` for `(mailbox, field)`.
    pub fn seal(&self, mailbox: &str, field: &str, plain: &str) -> Vec<u8> {
        let nonce: [u8; 24] = rand::random();
        let aad = format!("switchboard/mail-oauth/{mailbox}/{field}");
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any message under 256 GiB");
        [nonce.as_slice(), &sealed].concat()
    }

    /// Opens a value sealed for `(mailbox, field)`; `None` when it was tampered with, moved,
    /// or sealed under another key (the caller then refreshes from scratch).
    pub fn open(&self, mailbox: &str, field: &str, sealed: &[u8]) -> Option<String> {
        if sealed.len() < 24 {
            return None;
        }
        let (nonce, body) = sealed.split_at(24);
        let aad = format!("switchboard/mail-oauth/{mailbox}/{field}");
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: aad.as_bytes(),
                },
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

#[derive(Clone)]
struct Cached {
    token: String,
    expires_at: DateTime<Utc>,
}

/// Access tokens for one grant (a mailbox's, a GoogleAccount's).
pub struct TokenSource {
    /// The kind of the object that holds the grant: the `kind` label of the `oauth_*` metrics
    /// and of the grant registry.
    kind: String,
    /// The object's name: the `name` label.
    name: String,
    /// Where its tokens are stored ([`grant_key`]).
    key: String,
    app: OAuthApp,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A source for `mailbox` with `app`.
    pub fn new(mailbox: &str, app: OAuthApp) -> TokenSource {
        TokenSource::for_grant(MAILBOX, mailbox, app)
    }

    /// A source for the grant of the object `kind`/`name` with `app`: its tokens are stored
    /// under [`grant_key`], its health is reported as `{kind, name}`.
    pub fn for_grant(kind: &str, name: &str, app: OAuthApp) -> TokenSource {
        TokenSource {
            kind: kind.to_owned(),
            name: name.to_owned(),
            key: grant_key(kind, name),
            app,
            http: http_client(),
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The provider's OAuth 2.0 application.
    pub fn app(&self) -> &OAuthApp {
        &self.app
    }

    /// An access token valid for at least [`REFRESH_EARLY`]; with `force`, a new one.
    /// `configured` is the refresh token of the manifest (a mailbox's `oauth2RefreshToken`, a
    /// GoogleAccount's `refreshToken`), used while no refresh token obtained at run time is
    /// stored.
    pub async fn token(
        &self,
        store: &StoreHandle,
        clock: &Clock,
        configured: Option<&Secret>,
        force: bool,
        metrics: &Metrics,
    ) -> Result<String, OAuthError> {
        // One refresh at a time per grant: a second caller waits and reuses the result.
        let mut cached = self.cached.lock().await;
        let fresh = |c: &Cached| {
            c.expires_at - chrono::Duration::from_std(REFRESH_EARLY).unwrap_or_default()
                > clock.now()
        };
        if !force && let Some(c) = cached.as_ref().filter(|c| fresh(c)) {
            return Ok(c.token.clone());
        }
        let key = self.key.clone();
        let (sealer, stored) = store
            .call(move |s| {
                let sealer = Sealer::for_state(s.path());
                Ok((sealer, s.mail_oauth_tokens(&key)?))
            })
            .await?;
        let sealer = sealer?;
        if !force
            && let Some(stored) = &stored
            && let (Some(sealed), Some(expires_at)) = (&stored.access_token, stored.expires_at)
            && let Some(token) = sealer.open(&self.key, "access", sealed)
        {
            let c = Cached { token, expires_at };
            if fresh(&c) {
                set_expiry(metrics, &self.kind, &self.name, expires_at);
                *cached = Some(c.clone());
                return Ok(c.token);
            }
        }
        let refresh_token = stored
            .as_ref()
            .and_then(|s| s.refresh_token.as_deref())
            .and_then(|sealed| sealer.open(&self.key, "refresh", sealed))
            .or_else(|| configured.map(|s| s.expose().to_owned()))
            .ok_or_else(|| {
                if self.kind == MAILBOX {
                    OAuthError::NoRefreshToken(self.name.clone())
                } else {
                    OAuthError::NoGrant {
                        kind: self.kind.clone(),
                        name: self.name.clone(),
                    }
                }
            })?;
        let grant_print = fingerprint(&[
            &self.app.token_url,
            &self.app.client_id,
            self.app.client_secret.expose(),
            &refresh_token,
        ]);
        let (kind, name) = (self.kind.as_str(), self.name.as_str());
        if let Some(reason) = metrics.grants.blocked(kind, name, &grant_print) {
            return Err(OAuthError::ConsentNeeded(consent_needed(
                kind, name, &reason,
            )));
        }
        let granted = match refresh(&self.http, &self.app, &refresh_token).await {
            Ok(granted) => granted,
            Err(error) => {
                metrics
                    .oauth_refresh_failures_total
                    .with_label_values(&[kind, name])
                    .inc();
                if let OAuthError::Refused(reason) = &error
                    && needs_consent(reason)
                {
                    // A grant that never had a token shows as expired (0), so the consent
                    // alert fires for it too; a known expiry is kept.
                    metrics
                        .oauth_token_expiry_timestamp_seconds
                        .with_label_values(&[kind, name]);
                    metrics.grants.refused(kind, name, grant_print, reason);
                    return Err(OAuthError::ConsentNeeded(consent_needed(
                        kind, name, reason,
                    )));
                }
                return Err(error);
            }
        };
        metrics.grants.granted(kind, name);
        let c = self.remember(store, &sealer, granted, clock.now()).await?;
        set_expiry(metrics, kind, name, c.expires_at);
        *cached = Some(c.clone());
        Ok(c.token)
    }

    /// Stores a grant (sealed) and returns it as the cached token.
    async fn remember(
        &self,
        store: &StoreHandle,
        sealer: &Sealer,
        granted: Grant,
        now: DateTime<Utc>,
    ) -> Result<Cached, OAuthError> {
        let expires_at = store_grant(store, sealer, &self.key, &granted, now).await?;
        Ok(Cached {
            token: granted.access_token,
            expires_at,
        })
    }
}

/// Seals and stores `granted` as the tokens under `mailbox` (a [`grant_key`]; a grant without
/// a refresh token keeps the stored one), granted at `now`. Returns when the access token
/// expires.
pub async fn store_grant(
    store: &StoreHandle,
    sealer: &Sealer,
    mailbox: &str,
    granted: &Grant,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, OAuthError> {
    let expires_at = now + chrono::Duration::seconds(granted.expires_in.unwrap_or(3600) as i64);
    let tokens = OAuthTokens {
        access_token: Some(sealer.seal(mailbox, "access", &granted.access_token)),
        expires_at: Some(expires_at),
        refresh_token: granted
            .refresh_token
            .as_deref()
            .map(|r| sealer.seal(mailbox, "refresh", r)),
    };
    let mailbox = mailbox.to_owned();
    store
        .call(move |s| s.set_mail_oauth_tokens(&mailbox, &tokens, now))
        .await?;
    Ok(expires_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoauth2_is_the_documented_sasl_string() {
        // REQ: EP-04, EP-06
        assert_eq!(
            xoauth2(
                "someuser@example.com",
                "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
            ),
            "user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
        );
    }

    #[test]
    fn sealed_tokens_open_only_for_their_row_and_key() {
        let sealer = Sealer::from_key(&[7; 32]);
        let sealed = sealer.seal("sales", "access", "ya29.secret");
        assert!(
            !sealed
                .windows(b"ya29".len())
                .any(|w| w == b"ya29".as_slice()),
            "the plaintext is not in the sealed bytes"
        );
        assert_eq!(
            sealer.open("sales", "access", &sealed).as_deref(),
            Some("ya29.secret")
        );
        assert_eq!(sealer.open("support", "access", &sealed), None);
        assert_eq!(sealer.open("sales", "refresh", &sealed), None);
        assert_eq!(
            Sealer::from_key(&[8; 32]).open("sales", "access", &sealed),
            None
        );
    }

    #[test]
    fn the_key_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state.db");
        let a = Sealer::for_state(&state).expect("create");
        let key = dir.path().join("state.db.key");
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let sealed = a.seal("m", "access", "t");
        let b = Sealer::for_state(&state).expect("reuse");
        assert_eq!(b.open("m", "access", &sealed).as_deref(), Some("t"));
    }
}
