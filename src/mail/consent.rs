//! The OAuth 2.0 authorization-code flow that gives a grant its refresh token: a mailbox's
//! (EP-04..06), a GoogleAccount's (AS-04) and a LinkedInAccount's (LI-01) — one flow, whatever
//! the provider.
//!
//! `switchboard oauth url KIND/NAME` prints the provider's consent URL; the provider sends
//! the browser back to `{Settings.siteUrl}/oauth/{google|microsoft|linkedin}/callback?code&state`,
//! and the daemon exchanges the code at the token endpoint and stores the tokens sealed.
//!
//! The *subject* a state names is the key the tokens are stored under: a mailbox's name
//! (`sales`, as before), or `KIND/NAME` for other kinds (`GoogleAccount/jonas`,
//! `LinkedInAccount/alice`; object names never contain `/`, so the two cannot meet: see
//! [`super::oauth::grant_key`]). The domain that owns the kind resolves the application
//! ([`super::mailbox::consent_target`], `sync::tokens::consent_target`,
//! `leads::consent_target`).
//!
//! The `state` parameter carries the subject, a random nonce and an expiry, signed with
//! HMAC-SHA256 under a subkey of the store's sealing key ([`Sealer::sign`]). So the daemon
//! verifies it without remembering anything (the CLI that signed it may be another process),
//! a forged or edited state names no mailbox, and an old one is refused. The authorization
//! code itself is single-use at the provider, which is what stops a replayed callback.
//!
//! This module must not run SQL (it calls the store's mail API through [`store_grant`]) or
//! read manifests: [`super::mailbox::consent_target`] resolves the mailbox's application.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::oauth::{Grant, OAuthApp, OAuthError, Sealer, grant, store_grant};
use crate::store::StoreHandle;

/// How long a consent URL stays usable: time to sign in, pass a second factor and consent.
pub const STATE_TTL: Duration = Duration::from_secs(30 * 60);

/// The redirect endpoint a provider's consent flow comes back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callback {
    /// `/oauth/google/callback` (Gmail, and generic OAuth 2.0 servers).
    Google,
    /// `/oauth/microsoft/callback` (Microsoft 365, Exchange Online, Outlook.com).
    Microsoft,
    /// `/oauth/linkedin/callback` (LinkedInAccount).
    LinkedIn,
}

impl Callback {
    /// The path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Callback::Google => "google",
            Callback::Microsoft => "microsoft",
            Callback::LinkedIn => "linkedin",
        }
    }

    /// The redirect URI under `site_url` (`Settings.siteUrl`).
    pub fn redirect_uri(self, site_url: &str) -> String {
        format!(
            "{}/oauth/{}/callback",
            site_url.trim_end_matches('/'),
            self.as_str()
        )
    }

    /// The callback of an `imap` provider, by its authorization endpoint's host: Microsoft's
    /// identity platform hosts go to `microsoft`, everything else to `google` (Google's
    /// parameters are plain OAuth 2.0 that other servers ignore).
    pub fn by_auth_url(auth_url: &str) -> Callback {
        let host = url::Url::parse(auth_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_default();
        let microsoft = ["microsoftonline.com", "live.com", "microsoft.com"]
            .iter()
            .any(|d| host == *d || host.ends_with(&format!(".{d}")));
        if microsoft {
            Callback::Microsoft
        } else {
            Callback::Google
        }
    }
}

/// Why a consent could not be completed. Messages are shown to the person in the browser:
/// never a token or a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// The state is missing, malformed or not signed by this daemon's key.
    #[error(
        "the `state` parameter is not one this daemon issued; start again with `switchboard oauth url KIND/NAME`"
    )]
    BadState,
    /// The state is older than [`STATE_TTL`].
    #[error(
        "this consent link has expired (links are valid for {} minutes); print a new one with `switchboard oauth url KIND/NAME`",
        STATE_TTL.as_secs() / 60
    )]
    Expired,
    /// The provider sent the browser back with an error (the user declined, for instance).
    #[error("the provider did not grant access: {0}")]
    Denied(String),
    /// The state names a mailbox that cannot take this callback.
    #[error("{0}")]
    Mailbox(String),
    /// The token endpoint granted no refresh token, so the mailbox could not sync later.
    #[error(
        "the provider granted no refresh token; revoke the app's access in the account settings and consent again"
    )]
    NoRefreshToken,
    /// The code exchange failed.
    #[error("the authorization code could not be exchanged: {0}")]
    Exchange(OAuthError),
    /// The tokens could not be stored (ours, not the user's).
    #[error("the tokens could not be stored: {0}")]
    Store(OAuthError),
}

/// A signed `state` for `mailbox`, valid until `now + STATE_TTL`.
///
/// Format: `hex(mailbox).hex(nonce).expiry-unix-seconds.hex(hmac)`, all URL-safe.
pub fn sign_state(sealer: &Sealer, mailbox: &str, now: DateTime<Utc>) -> String {
    let nonce: [u8; 16] = rand::random();
    let expiry = now.timestamp() + STATE_TTL.as_secs() as i64;
    let body = format!(
        "{}.{}.{expiry}",
        hex::encode(mailbox.as_bytes()),
        hex::encode(nonce)
    );
    let tag = sealer.sign(body.as_bytes());
    format!("{body}.{}", hex::encode(tag))
}

/// The mailbox a `state` was signed for, if it is genuine and not expired at `now`.
pub fn verify_state(
    sealer: &Sealer,
    state: &str,
    now: DateTime<Utc>,
) -> Result<String, ConsentError> {
    let (body, tag) = state.rsplit_once('.').ok_or(ConsentError::BadState)?;
    let tag = hex::decode(tag).map_err(|_| ConsentError::BadState)?;
    if !sealer.verify(body.as_bytes(), &tag) {
        return Err(ConsentError::BadState);
    }
    let mut parts = body.split('.');
    let (Some(mailbox), Some(_nonce), Some(expiry), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ConsentError::BadState);
    };
    let expiry: i64 = expiry.parse().map_err(|_| ConsentError::BadState)?;
    if now.timestamp() > expiry {
        return Err(ConsentError::Expired);
    }
    hex::decode(mailbox)
        .ok()
        .and_then(|m| String::from_utf8(m).ok())
        .ok_or(ConsentError::BadState)
}

/// The consent URL: `app.auth_url` with the authorization-code request's parameters. Google
/// returns a refresh token only with `access_type=offline` (and again on a repeat consent only
/// with `prompt=consent`); Microsoft only when `offline_access` is among the scopes.
pub fn consent_url(
    app: &OAuthApp,
    callback: Callback,
    redirect_uri: &str,
    state: &str,
) -> Result<String, String> {
    let mut url = url::Url::parse(&app.auth_url)
        .map_err(|e| format!("the provider's oauth2.authUrl is not a URL: {e}"))?;
    let mut scopes = app.scopes.clone();
    if callback == Callback::Microsoft && !scopes.iter().any(|s| s == "offline_access") {
        scopes.push("offline_access".into());
    }
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &app.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", state);
        match callback {
            Callback::Google => {
                query
                    .append_pair("access_type", "offline")
                    .append_pair("prompt", "consent");
            }
            Callback::Microsoft => {
                query.append_pair("response_mode", "query");
            }
            // LinkedIn's 3-legged flow takes just the standard parameters; a refresh token
            // comes with the code for applications LinkedIn enabled for refresh tokens.
            Callback::LinkedIn => {}
        }
    }
    Ok(url.into())
}

/// Exchanges `code` (the `authorization_code` grant) and stores the tokens sealed for
/// `mailbox`. A grant without a refresh token is refused: the mailbox could not sync once
/// the access token expires. `now` is when the grant counts from.
#[allow(clippy::too_many_arguments)]
pub async fn complete(
    http: &reqwest::Client,
    store: &StoreHandle,
    sealer: &Sealer,
    mailbox: &str,
    app: &OAuthApp,
    code: &str,
    redirect_uri: &str,
    now: DateTime<Utc>,
) -> Result<Grant, ConsentError> {
    let granted = grant(
        http,
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ],
    )
    .await
    .map_err(ConsentError::Exchange)?;
    if granted.refresh_token.is_none() {
        return Err(ConsentError::NoRefreshToken);
    }
    store_grant(store, sealer, mailbox, &granted, now)
        .await
        .map_err(ConsentError::Store)?;
    Ok(granted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::types::{Secret, SecretRef};

    fn app(dir: &std::path::Path) -> OAuthApp {
        std::fs::write(dir.join("s"), "secret").expect("write");
        let client_secret: Secret = SecretRef::File("s".into()).resolve(dir).expect("resolve");
        OAuthApp {
            client_id: "cid".into(),
            client_secret,
            auth_url: "https://accounts.google.com/o/oauth2/v2/auth".into(),
            token_url: "https://oauth2.googleapis.com/token".into(),
            scopes: vec!["https://mail.google.com/".into()],
        }
    }

    #[test]
    fn a_state_names_its_mailbox_until_it_expires() {
        // REQ: EP-06
        let sealer = Sealer::from_key(&[1; 32]);
        let now = Utc::now();
        let state = sign_state(&sealer, "sales-team", now);
        assert_eq!(
            verify_state(&sealer, &state, now).expect("genuine"),
            "sales-team"
        );
        assert_ne!(
            state,
            sign_state(&sealer, "sales-team", now),
            "each state has its own nonce"
        );
        let later = now
            + chrono::Duration::from_std(STATE_TTL).expect("ttl")
            + chrono::Duration::seconds(1);
        assert!(matches!(
            verify_state(&sealer, &state, later),
            Err(ConsentError::Expired)
        ));
    }

    #[test]
    fn a_forged_or_edited_state_is_refused() {
        // REQ: EP-06
        let sealer = Sealer::from_key(&[1; 32]);
        let now = Utc::now();
        let state = sign_state(&sealer, "sales", now);
        let other_key = Sealer::from_key(&[2; 32]);
        assert!(matches!(
            verify_state(&other_key, &state, now),
            Err(ConsentError::BadState)
        ));
        // Point it at another mailbox, keeping the signature.
        let (_, rest) = state.split_once('.').expect("dots");
        let edited = format!("{}.{rest}", hex::encode("support"));
        assert!(matches!(
            verify_state(&sealer, &edited, now),
            Err(ConsentError::BadState)
        ));
        // Push the expiry out.
        let parts: Vec<&str> = state.split('.').collect();
        let later = format!("{}.{}.{}.{}", parts[0], parts[1], i64::MAX, parts[3]);
        assert!(matches!(
            verify_state(&sealer, &later, now),
            Err(ConsentError::BadState)
        ));
        for junk in ["", "abc", "a.b.c.d", "...."] {
            assert!(matches!(
                verify_state(&sealer, junk, now),
                Err(ConsentError::BadState)
            ));
        }
    }

    #[test]
    fn google_consent_asks_for_offline_access_and_microsoft_for_offline_access_scope() {
        // REQ: EP-05, EP-06
        let dir = tempfile::tempdir().expect("tempdir");
        let google = app(dir.path());
        let url = consent_url(
            &google,
            Callback::Google,
            "https://sb.example.com/oauth/google/callback",
            "st",
        )
        .expect("url");
        let parsed = url::Url::parse(&url).expect("parse");
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(parsed.host_str(), Some("accounts.google.com"));
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "cid");
        assert_eq!(
            q["redirect_uri"],
            "https://sb.example.com/oauth/google/callback"
        );
        assert_eq!(q["scope"], "https://mail.google.com/");
        assert_eq!(q["access_type"], "offline");
        assert_eq!(q["prompt"], "consent");
        assert_eq!(q["state"], "st");
        assert!(
            !url.contains("secret"),
            "the client secret is never in the URL"
        );

        let mut ms = google.clone();
        ms.auth_url = "https://login.microsoftonline.com/common/oauth2/v2.0/authorize".into();
        ms.scopes = vec!["https://outlook.office.com/IMAP.AccessAsUser.All".into()];
        let callback = Callback::by_auth_url(&ms.auth_url);
        assert_eq!(callback, Callback::Microsoft);
        let url =
            consent_url(&ms, callback, "https://x/oauth/microsoft/callback", "st").expect("url");
        let parsed = url::Url::parse(&url).expect("parse");
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(
            q["scope"],
            "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"
        );
        assert!(!q.contains_key("access_type"));
    }

    #[test]
    fn linkedin_consent_is_the_plain_authorization_code_request() {
        // REQ: LI-01
        let dir = tempfile::tempdir().expect("tempdir");
        let mut linkedin = app(dir.path());
        linkedin.auth_url = "https://www.linkedin.com/oauth/v2/authorization".into();
        linkedin.scopes = vec!["r_marketing_leadgen_automation".into()];
        let redirect = Callback::LinkedIn.redirect_uri("https://sb.example.com");
        assert_eq!(redirect, "https://sb.example.com/oauth/linkedin/callback");
        let url = consent_url(&linkedin, Callback::LinkedIn, &redirect, "st").expect("url");
        let parsed = url::Url::parse(&url).expect("parse");
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(parsed.host_str(), Some("www.linkedin.com"));
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["scope"], "r_marketing_leadgen_automation");
        assert_eq!(q["redirect_uri"], redirect);
        assert_eq!(q.len(), 5, "no provider-specific extras: {q:?}");
        // The subject names the kind: a state for an account is not a mailbox's.
        let sealer = Sealer::from_key(&[3; 32]);
        let state = sign_state(&sealer, "LinkedInAccount/alice", Utc::now());
        assert_eq!(
            verify_state(&sealer, &state, Utc::now()).expect("genuine"),
            "LinkedInAccount/alice"
        );
    }

    #[test]
    fn the_callback_follows_the_authorization_host() {
        assert_eq!(
            Callback::by_auth_url("https://login.live.com/oauth20_authorize.srf"),
            Callback::Microsoft
        );
        assert_eq!(
            Callback::by_auth_url("https://accounts.google.com/o/oauth2/auth"),
            Callback::Google
        );
        assert_eq!(
            Callback::by_auth_url("https://evilmicrosoft.com/auth"),
            Callback::Google
        );
        assert_eq!(
            Callback::Google.redirect_uri("https://sb.example.com/"),
            "https://sb.example.com/oauth/google/callback"
        );
    }
}
