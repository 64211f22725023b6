//! LinkedIn's side of lead generation: the webhook's signature and validation challenge, the
//! lead notification, and a client of the versioned Lead Sync API.
//!
//! - **Signature** (`X-LI-Signature`): the hex HMAC-SHA256, keyed with the app's client
//!   secret, of the raw POST body prefixed by `hmacsha256=`, as LinkedIn's webhook guide
//!   documents it. Compared in constant time.
//! - **Validation** (`GET ?challengeCode=`): `{"challengeCode", "challengeResponse"}` where the
//!   response is the hex HMAC-SHA256 of the code keyed with the client secret.
//! - **Client**: `GET {apiBaseUrl}/rest/leadFormResponses/{id}` and `/rest/leadForms/{id}`
//!   with `LinkedIn-Version`, `X-Restli-Protocol-Version: 2.0.0` and a bearer from the
//!   refresh token of one of the integration's `LinkedInAccount`s. A 401 refreshes the access
//!   token and retries once; 429 waits `Retry-After` (bounded) and 5xx backs off, a few
//!   times, before the run fails and its notification stays pending for the next run.

use std::sync::Mutex;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::kinds::LINKEDIN_API;
use crate::config::types::Secret;
use crate::mail::oauth::{
    OAuthApp, OAuthError, Sealer, needs_consent, refresh, set_expiry, store_grant,
};
use crate::store::StoreHandle;
use crate::telemetry::Metrics;
use crate::telemetry::grants::{consent_needed, fingerprint};

/// The kind of the objects whose grants this client refreshes (token health, BX-04).
const ACCOUNT_KIND: &str = "LinkedInAccount";

/// The header of the notification signature.
pub const SIGNATURE_HEADER: &str = "x-li-signature";
/// The Marketing API version asked for (`LinkedIn-Version: YYYYMM`).
pub const API_VERSION: &str = "202509";
/// LinkedIn's authorization (consent) page, used when `apiBaseUrl` is LinkedIn's own.
const AUTH_URL: &str = "https://www.linkedin.com/oauth/v2/authorization";
/// LinkedIn's token endpoint, used when `apiBaseUrl` is LinkedIn's own.
const TOKEN_URL: &str = "https://www.linkedin.com/oauth/v2/accessToken";
/// The longest `Retry-After` honoured within a run; longer waits fail the run instead.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Attempts per call for 429 and 5xx answers.
const ATTEMPTS: u32 = 4;

fn hmac_hex(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// `X-LI-Signature` for `body`: hex HMAC-SHA256 of `hmacsha256=` + body.
pub fn signature(client_secret: &str, body: &[u8]) -> String {
    hmac_hex(client_secret, &[b"hmacsha256=", body])
}

/// Whether `presented` is the signature of `body` (constant time; case-insensitive hex).
pub fn signature_matches(client_secret: &str, body: &[u8], presented: &str) -> bool {
    use subtle::ConstantTimeEq;
    let expected = signature(client_secret, body);
    let presented = presented.trim().to_ascii_lowercase();
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// The validation challenge's `challengeResponse`.
pub fn challenge_response(client_secret: &str, code: &str) -> String {
    hmac_hex(client_secret, &[code.as_bytes()])
}

/// A lead notification (`leadAction` `CREATED`, `DELETED`, ...), as LinkedIn posts it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// `LEAD_ACTION`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// `urn:li:leadGenFormResponse:{id}`.
    pub lead_gen_form_response: String,
    /// `urn:li:versionedLeadGenForm:(urn:li:leadGenForm:{id},{version})` or
    /// `urn:li:leadGenForm:{id}`.
    #[serde(default)]
    pub lead_gen_form: Option<String>,
    /// The form's owner (`sponsoredAccount`: `urn:li:sponsoredAccount:{adAccountId}`).
    #[serde(default)]
    pub owner: Owner,
    /// `CREATED`, `DELETED`.
    #[serde(default)]
    pub lead_action: Option<String>,
}

/// The owner of a form.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    /// `urn:li:sponsoredAccount:{id}`.
    #[serde(default)]
    pub sponsored_account: Option<String>,
}

impl Notification {
    /// The ad account id the notification is for.
    pub fn ad_account(&self) -> Option<&str> {
        self.owner
            .sponsored_account
            .as_deref()
            .map(|urn| urn.rsplit(':').next().unwrap_or(urn))
    }

    /// The form id (`7123456` of either URN form).
    pub fn form_id(&self) -> Option<String> {
        self.lead_gen_form.as_deref().map(form_id)
    }
}

/// The numeric form id in `urn:li:leadGenForm:7`, `urn:li:versionedLeadGenForm:(urn:li:leadGenForm:7,1)`
/// or `7`.
pub fn form_id(urn: &str) -> String {
    let inner = urn
        .split_once("urn:li:leadGenForm:")
        .map_or(urn, |(_, rest)| rest);
    inner.split([',', ')']).next().unwrap_or(inner).to_owned()
}

/// The id in `urn:li:leadGenFormResponse:{id}` (or the id itself).
pub fn response_id(urn: &str) -> &str {
    urn.strip_prefix("urn:li:leadGenFormResponse:")
        .unwrap_or(urn)
}

/// Why a call failed. Never carries a token or the client secret.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No access token could be had (`token-error` in the log).
    #[error("LinkedInAccount {account}: {error}")]
    Token {
        /// The account.
        account: String,
        /// Why.
        error: OAuthError,
    },
    /// LinkedIn answered an error.
    #[error("LinkedIn answered {status} to {what}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// What was asked (`leadFormResponses/{id}`).
        what: String,
        /// LinkedIn's `message`, when it gave one.
        message: String,
    },
    /// LinkedIn could not be reached or answered nonsense.
    #[error("LinkedIn {what}: {message}")]
    Transport {
        /// What was asked.
        what: String,
        /// Why.
        message: String,
    },
    /// The run was cancelled.
    #[error("interrupted")]
    Cancelled,
}

/// A `LinkedInAccount` that can reach the ad account.
pub struct Account {
    /// Its name.
    pub name: String,
    /// Its `refreshToken` from the manifest; `None`: the one its consent flow stored (sealed).
    pub refresh_token: Option<Secret>,
}

/// The key a LinkedInAccount's tokens are sealed and stored under (beside the mailboxes'
/// grants, whose keys are bare names).
pub fn grant_key(account: &str) -> String {
    crate::mail::oauth::grant_key(ACCOUNT_KIND, account)
}

/// LinkedIn's OAuth 2.0 application for `api_base` (LinkedIn's when `None` or its own):
/// `www.linkedin.com/oauth/v2/{authorization,accessToken}`, or the same paths under a fake's
/// or a proxy's base.
pub fn app(api_base: Option<&str>, client_id: &str, client_secret: Secret) -> OAuthApp {
    let base = api_base.unwrap_or(LINKEDIN_API).trim_end_matches('/');
    let (auth_url, token_url) = if base == LINKEDIN_API {
        (AUTH_URL.to_owned(), TOKEN_URL.to_owned())
    } else {
        (
            format!("{base}/oauth/v2/authorization"),
            format!("{base}/oauth/v2/accessToken"),
        )
    };
    OAuthApp {
        client_id: client_id.to_owned(),
        client_secret,
        auth_url,
        token_url,
        scopes: vec!["r_marketing_leadgen_automation".into()],
    }
}

/// The Lead Sync API of one integration.
pub struct Client {
    http: reqwest::Client,
    base: String,
    app: OAuthApp,
    accounts: Vec<Account>,
    /// The access token in use and the account it belongs to (index), in memory only.
    token: Mutex<Option<(usize, String)>>,
    /// Accounts whose grant LinkedIn refused (`invalid_grant`: revoked or expired): not asked
    /// again by this client, which is rebuilt when the config (or a token in it) changes.
    revoked: Mutex<Vec<bool>>,
    /// Refusals not reported yet: `(account, reason)`, without any token.
    refusals: Mutex<Vec<(String, String)>>,
    /// The daemon's metrics and clock, from the first run ([`Client::attach`]): token health.
    health: std::sync::OnceLock<(Metrics, Clock, StoreHandle)>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Client {
    /// A client of `api_base` (LinkedIn's when `None`) for `accounts`, with the app's client id
    /// and secret for refreshes.
    pub fn new(
        api_base: Option<&str>,
        client_id: &str,
        client_secret: Secret,
        accounts: Vec<Account>,
    ) -> Client {
        let base = api_base.unwrap_or(LINKEDIN_API).trim_end_matches('/');
        Client {
            http: crate::net::http_client_builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client with default TLS settings builds"),
            base: base.to_owned(),
            app: app(Some(base), client_id, client_secret),
            revoked: Mutex::new(vec![false; accounts.len()]),
            refusals: Mutex::new(Vec::new()),
            accounts,
            token: Mutex::new(None),
            health: std::sync::OnceLock::new(),
        }
    }

    /// Reports token health (`oauth_*` metrics, `oauth.reauth-needed`) to `metrics`, with
    /// times from `clock`; the first call wins (one daemon, one registry).
    /// Stored (consented) refresh tokens are read from `store`.
    pub fn attach(&self, metrics: &Metrics, clock: Clock, store: &StoreHandle) {
        let _ = self.health.set((metrics.clone(), clock, store.clone()));
    }

    fn fingerprint(&self, refresh_token: &str) -> [u8; 32] {
        fingerprint(&[
            &self.app.token_url,
            &self.app.client_id,
            self.app.client_secret.expose(),
            refresh_token,
        ])
    }

    /// The refresh token of `account`: the one its consent stored (newest), else its
    /// manifest's. `Err` says how to get one.
    async fn refresh_token(
        &self,
        account: &Account,
    ) -> Result<(String, bool, Option<String>), OAuthError> {
        if let Some((_, _, store)) = self.health.get() {
            let key = grant_key(&account.name);
            let lookup = key.clone();
            let (sealer, stored) = store
                .call(move |s| Ok((Sealer::for_state(s.path()), s.mail_oauth_tokens(&lookup)?)))
                .await?;
            let sealer = sealer?;
            let clock = self.health.get().map(|(_, c, _)| *c);
            if let Some(stored) = stored
                && let Some(token) = stored
                    .refresh_token
                    .as_deref()
                    .and_then(|sealed| sealer.open(&key, "refresh", sealed))
            {
                // A stored access token still good for a minute is used as is (the one the
                // consent's code exchange granted, or the last refresh's).
                let access = match (&stored.access_token, stored.expires_at, clock) {
                    (Some(sealed), Some(expires_at), Some(clock))
                        if expires_at - chrono::Duration::seconds(60) > clock.now() =>
                    {
                        sealer.open(&key, "access", sealed)
                    }
                    _ => None,
                };
                return Ok((token, true, access));
            }
        }
        match &account.refresh_token {
            Some(token) => Ok((token.expose().to_owned(), false, None)),
            None => Err(OAuthError::ConsentNeeded(format!(
                "{ACCOUNT_KIND}/{name} has no refresh token yet: run `switchboard oauth url {ACCOUNT_KIND}/{name}` \
                 and open the URL signed in as the account's owner (or set its refreshToken)",
                name = account.name
            ))),
        }
    }

    /// The accounts whose grant was refused since the last call, with LinkedIn's reason; each
    /// is reported once (LI-07: it needs the consent again).
    pub fn take_refusals(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *locked(&self.refusals))
    }

    /// An access token: the one in use, or one refreshed from the first account that grants.
    async fn access_token(&self, fresh: bool) -> Result<String, ApiError> {
        if !fresh
            && let Some((_, token)) = self
                .token
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        {
            return Ok(token);
        }
        let mut last = None;
        for (i, account) in self.accounts.iter().enumerate() {
            // Without the daemon's grant registry (before the first run) a refusal seen by
            // this client is final; with it, the registry decides by the token's fingerprint.
            if self.health.get().is_none() && locked(&self.revoked)[i] {
                last = Some(ApiError::Token {
                    account: account.name.clone(),
                    error: OAuthError::Refused(
                        "the grant was refused before; consent again".into(),
                    ),
                });
                continue;
            }
            let (refresh_token, stored) = match self.refresh_token(account).await {
                Ok((_, _, Some(access))) if !fresh => {
                    *locked(&self.token) = Some((i, access.clone()));
                    return Ok(access);
                }
                Ok((refresh_token, stored, _)) => (refresh_token, stored),
                Err(error) => {
                    last = Some(ApiError::Token {
                        account: account.name.clone(),
                        error,
                    });
                    continue;
                }
            };
            let print = self.fingerprint(&refresh_token);
            if let Some((metrics, _, _)) = self.health.get()
                && let Some(reason) = metrics.grants.blocked(ACCOUNT_KIND, &account.name, &print)
            {
                // Refused before (by this or another integration's client): not asked again
                // until the token or the config changes; reported once by this client.
                if !std::mem::replace(&mut locked(&self.revoked)[i], true) {
                    locked(&self.refusals).push((account.name.clone(), reason.clone()));
                }
                last = Some(ApiError::Token {
                    account: account.name.clone(),
                    error: OAuthError::ConsentNeeded(consent_needed(
                        ACCOUNT_KIND,
                        &account.name,
                        &reason,
                    )),
                });
                continue;
            }
            match refresh(&self.http, &self.app, &refresh_token).await {
                Ok(mut grant) => {
                    locked(&self.revoked)[i] = false;
                    if let Some((metrics, clock, store)) = self.health.get() {
                        metrics.grants.granted(ACCOUNT_KIND, &account.name);
                        // LinkedIn's access tokens live 60 days unless it says otherwise.
                        grant.expires_in.get_or_insert(60 * 24 * 3600);
                        let now = clock.now();
                        let expires = now
                            + chrono::Duration::seconds(grant.expires_in.unwrap_or_default() as i64);
                        set_expiry(metrics, ACCOUNT_KIND, &account.name, expires);
                        if stored {
                            // A consented grant: keep a rotated refresh token, sealed.
                            let sealer = store.call(|s| Ok(Sealer::for_state(s.path()))).await;
                            if let Ok(Ok(sealer)) = sealer
                                && let Err(e) = store_grant(
                                    store,
                                    &sealer,
                                    &grant_key(&account.name),
                                    &grant,
                                    now,
                                )
                                .await
                            {
                                tracing::warn!(account = %account.name, error = %e, "the refreshed LinkedIn grant could not be stored");
                            }
                        }
                    }
                    *self
                        .token
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some((i, grant.access_token.clone()));
                    return Ok(grant.access_token);
                }
                Err(error) => {
                    tracing::warn!(account = %account.name, %error, "LinkedIn token refresh failed");
                    if let Some((metrics, _, _)) = self.health.get() {
                        metrics
                            .oauth_refresh_failures_total
                            .with_label_values(&[ACCOUNT_KIND, &account.name])
                            .inc();
                    }
                    if let OAuthError::Refused(reason) = &error {
                        // invalid_grant and the like: asking again will not help (LI-07).
                        locked(&self.revoked)[i] = true;
                        locked(&self.refusals).push((account.name.clone(), reason.clone()));
                        if needs_consent(reason)
                            && let Some((metrics, _, _)) = self.health.get()
                        {
                            // Never had a token: shows as expired (0); a known expiry is kept.
                            metrics
                                .oauth_token_expiry_timestamp_seconds
                                .with_label_values(&[ACCOUNT_KIND, &account.name]);
                            metrics
                                .grants
                                .refused(ACCOUNT_KIND, &account.name, print, reason);
                        }
                    }
                    last = Some(ApiError::Token {
                        account: account.name.clone(),
                        error,
                    });
                }
            }
        }
        Err(last.unwrap_or_else(|| ApiError::Token {
            account: "(none)".into(),
            error: OAuthError::Transport("the integration names no usable LinkedInAccount".into()),
        }))
    }

    /// GETs `{base}/rest/{path}` as JSON with the retries of the module docs.
    pub async fn get(
        &self,
        path: &str,
        cancel: &CancellationToken,
    ) -> Result<serde_json::Value, ApiError> {
        self.call(reqwest::Method::GET, path, None, cancel).await
    }

    /// Calls `{base}/rest/{path}` with `body` as JSON, with the retries of the module docs;
    /// an empty answer (201, 204) is `null`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        cancel: &CancellationToken,
    ) -> Result<serde_json::Value, ApiError> {
        let url = format!("{}/rest/{path}", self.base);
        let what = path.to_owned();
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.access_token(false).await?;
            let mut request = self.http.request(method.clone(), &url);
            if let Some(body) = body {
                request = request.json(body);
            }
            let sent = request
                .bearer_auth(&token)
                .header("LinkedIn-Version", API_VERSION)
                .header("X-Restli-Protocol-Version", "2.0.0")
                .send();
            let response = tokio::select! {
                r = sent => r.map_err(|e| ApiError::Transport {
                    what: what.clone(),
                    message: e.without_url().to_string(),
                })?,
                () = cancel.cancelled() => return Err(ApiError::Cancelled),
            };
            let status = response.status();
            let wait = if status.is_success() {
                let bytes = response.bytes().await.map_err(|e| ApiError::Transport {
                    what: what.clone(),
                    message: format!("unreadable answer: {}", e.without_url()),
                })?;
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    return Ok(serde_json::Value::Null);
                }
                return serde_json::from_slice(&bytes).map_err(|e| ApiError::Transport {
                    what: what.clone(),
                    message: format!("unreadable answer: {e}"),
                });
            } else if status.as_u16() == 401 && !refreshed {
                // Expired or revoked access token: refresh once and retry.
                refreshed = true;
                self.access_token(true).await?;
                attempt -= 1;
                None
            } else if status.as_u16() == 429 && attempt < ATTEMPTS {
                let after = crate::net::retry_after(&response).unwrap_or(Duration::from_secs(1));
                if after > MAX_RETRY_AFTER {
                    return Err(error_of(status.as_u16(), what, response).await);
                }
                Some(after)
            } else if status.is_server_error() && attempt < ATTEMPTS {
                Some(Duration::from_millis(500 * 2u64.pow(attempt)))
            } else {
                return Err(error_of(status.as_u16(), what, response).await);
            };
            if let Some(wait) = wait {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = cancel.cancelled() => return Err(ApiError::Cancelled),
                }
            }
        }
    }
}

async fn error_of(status: u16, what: String, response: reqwest::Response) -> ApiError {
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        message: Option<String>,
    }
    let message = response
        .json::<Body>()
        .await
        .ok()
        .and_then(|b| b.message)
        .unwrap_or_default();
    ApiError::Status {
        status,
        what,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_and_challenge_are_hex_hmacs() {
        let body = br#"{"type":"LEAD_ACTION"}"#;
        let sig = signature("secret", body);
        assert_eq!(sig.len(), 64);
        assert!(signature_matches("secret", body, &sig));
        assert!(signature_matches("secret", body, &sig.to_uppercase()));
        assert!(!signature_matches("other", body, &sig));
        assert!(!signature_matches("secret", b"{}", &sig));
        // Not the HMAC of the bare body: LinkedIn prefixes it.
        assert_ne!(sig, hmac_hex("secret", &[body]));
        assert_eq!(
            challenge_response("secret", "abc"),
            hmac_hex("secret", &[b"abc"])
        );
    }

    #[test]
    fn form_and_response_ids_come_out_of_their_urns() {
        assert_eq!(
            form_id("urn:li:versionedLeadGenForm:(urn:li:leadGenForm:7123456,1)"),
            "7123456"
        );
        assert_eq!(form_id("urn:li:leadGenForm:42"), "42");
        assert_eq!(form_id("42"), "42");
        assert_eq!(response_id("urn:li:leadGenFormResponse:abc-1"), "abc-1");
    }
}
