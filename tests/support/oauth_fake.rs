//! A fake OAuth 2.0 token endpoint (Google / Microsoft identity platform wire format) for the
//! mail OAuth tests: an axum server on a free loopback port.
//!
//! - `GET /auth` (the consent page): checks `response_type=code` and the client id, records
//!   the query, and — as if the user signed in as [`OAuthFake::consent_as`] and consented —
//!   redirects (302) to `redirect_uri?code=…&state=…`; with no consenting user it redirects
//!   with `error=access_denied`, as Google does when the user declines.
//! - `POST /token` (form): the `refresh_token` grant and the `authorization_code` grant. Checks
//!   the client id and secret, and the refresh token, or the code (single use, and the same
//!   `redirect_uri` as the consent request); answers `{"access_token", "expires_in",
//!   "token_type": "Bearer"}` (plus a new `refresh_token` for a code) with a new short-lived
//!   token each time, or `400 {"error": "invalid_grant"}` / `401 {"error": "invalid_client"}`
//!   as the real endpoints do.
//! - `POST /introspect` (form `token=`): RFC 7662 introspection, `{"active": bool, "email"}`;
//!   an expired or unknown token is inactive. (What Dovecot's oauth2 passdb asks.)
//!
//! Tokens expire on the wall clock after the lifetime the test sets.

// Each test binary uses a different part of the fake.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

/// The fake's state, shared with the test.
#[derive(Debug)]
pub struct Inner {
    /// Expected client id.
    pub client_id: String,
    /// Expected client secret.
    pub client_secret: String,
    /// The refresh tokens it honours, with the user (e-mail) each stands for.
    pub refresh_tokens: HashMap<String, String>,
    /// `expires_in` of the tokens it issues.
    pub lifetime: Duration,
    /// Issued access tokens: token → (user, expiry).
    pub issued: HashMap<String, (String, Instant)>,
    /// How many refresh grants succeeded.
    pub grants: usize,
    /// Tokens revoked by the test (inactive although not expired).
    pub revoked: Vec<String>,
    /// Who "signs in" at the consent page (`None`: the user declines).
    pub consenting: Option<String>,
    /// Outstanding authorization codes: code → (user, redirect_uri).
    pub codes: HashMap<String, (String, String)>,
    /// The query of the last consent request.
    pub last_consent: HashMap<String, String>,
    /// How many authorization-code grants succeeded.
    pub code_grants: usize,
    /// Every `POST /token`, answered or refused (a retry storm shows here).
    pub token_calls: usize,
}

/// A running fake.
pub struct OAuthFake {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Shared state.
    pub state: Arc<Mutex<Inner>>,
}

impl OAuthFake {
    /// Starts a fake for one client; tokens live `lifetime`.
    pub async fn start(client_id: &str, client_secret: &str, lifetime: Duration) -> OAuthFake {
        let state = Arc::new(Mutex::new(Inner {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            refresh_tokens: HashMap::new(),
            lifetime,
            issued: HashMap::new(),
            grants: 0,
            revoked: Vec::new(),
            consenting: None,
            codes: HashMap::new(),
            last_consent: HashMap::new(),
            code_grants: 0,
            token_calls: 0,
        }));
        let app = Router::new()
            .route("/auth", get(consent))
            .route("/token", post(token))
            .route("/introspect", post(introspect))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        OAuthFake { base, state }
    }

    /// Honours `refresh_token` for `user`.
    pub fn allow(&self, refresh_token: &str, user: &str) {
        self.state
            .lock()
            .expect("fake state")
            .refresh_tokens
            .insert(refresh_token.into(), user.into());
    }

    /// The consent page acts as if `user` signed in and consented.
    pub fn consent_as(&self, user: &str) {
        self.state.lock().expect("fake state").consenting = Some(user.into());
    }

    /// The query of the last consent request.
    pub fn last_consent(&self) -> HashMap<String, String> {
        self.state.lock().expect("fake state").last_consent.clone()
    }

    /// Successful authorization-code grants so far.
    pub fn code_grants(&self) -> usize {
        self.state.lock().expect("fake state").code_grants
    }

    /// Every `POST /token` so far, granted or refused.
    pub fn token_calls(&self) -> usize {
        self.state.lock().expect("fake state").token_calls
    }

    /// Successful refresh grants so far.
    pub fn grants(&self) -> usize {
        self.state.lock().expect("fake state").grants
    }

    /// Makes every issued token inactive.
    pub fn revoke_all(&self) {
        let mut s = self.state.lock().expect("fake state");
        let all: Vec<String> = s.issued.keys().cloned().collect();
        s.revoked.extend(all);
    }

    /// Whether `token` is active now.
    pub fn active(&self, token: &str) -> bool {
        let s = self.state.lock().expect("fake state");
        is_active(&s, token).is_some()
    }
}

fn is_active(s: &Inner, token: &str) -> Option<String> {
    let (user, expiry) = s.issued.get(token)?;
    (Instant::now() < *expiry && !s.revoked.iter().any(|r| r == token)).then(|| user.clone())
}

fn form(body: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(serde_json::json!({"error": error}))).into_response()
}

async fn consent(
    State(state): State<Arc<Mutex<Inner>>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let q = form(query.as_deref().unwrap_or_default());
    let mut s = state.lock().expect("fake state");
    s.last_consent = q.clone();
    if q.get("response_type").map(String::as_str) != Some("code")
        || q.get("client_id") != Some(&s.client_id)
    {
        return (StatusCode::BAD_REQUEST, "invalid_request").into_response();
    }
    let Some(redirect) = q.get("redirect_uri").and_then(|r| url::Url::parse(r).ok()) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri_mismatch").into_response();
    };
    let mut back = redirect.clone();
    {
        let mut pairs = back.query_pairs_mut();
        match s.consenting.clone() {
            Some(user) => {
                let code = format!("4/fake-code-{}", rand::random::<u32>());
                let raw = q.get("redirect_uri").cloned().unwrap_or_default();
                s.codes.insert(code.clone(), (user, raw));
                pairs.append_pair("code", &code);
            }
            None => {
                pairs.append_pair("error", "access_denied");
            }
        }
        if let Some(st) = q.get("state") {
            pairs.append_pair("state", st);
        }
    }
    (
        StatusCode::FOUND,
        [(axum::http::header::LOCATION, back.to_string())],
    )
        .into_response()
}

fn issue(s: &mut Inner, user: String) -> (String, u64) {
    let access = format!(
        "ya29.fake-{}-{}",
        s.grants + s.code_grants,
        rand::random::<u32>()
    );
    let lifetime = s.lifetime;
    s.issued
        .insert(access.clone(), (user, Instant::now() + lifetime));
    (access, lifetime.as_secs())
}

async fn token(State(state): State<Arc<Mutex<Inner>>>, body: String) -> Response {
    let f = form(&body);
    let mut s = state.lock().expect("fake state");
    s.token_calls += 1;
    if f.get("client_id") != Some(&s.client_id) || f.get("client_secret") != Some(&s.client_secret)
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if f.get("grant_type").map(String::as_str) == Some("authorization_code") {
        // A code is single use, and only with the redirect_uri it was issued for.
        let Some((user, redirect)) = f.get("code").and_then(|c| s.codes.remove(c)) else {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
        };
        if f.get("redirect_uri") != Some(&redirect) {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
        }
        s.code_grants += 1;
        let refresh = format!("1//fake-refresh-{}", rand::random::<u32>());
        s.refresh_tokens.insert(refresh.clone(), user.clone());
        let (access, lifetime) = issue(&mut s, user);
        return axum::Json(serde_json::json!({
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": lifetime,
            "token_type": "Bearer",
        }))
        .into_response();
    }
    if f.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let Some(user) = f
        .get("refresh_token")
        .and_then(|r| s.refresh_tokens.get(r))
        .cloned()
    else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    s.grants += 1;
    let (access, lifetime) = issue(&mut s, user);
    axum::Json(serde_json::json!({
        "access_token": access,
        "expires_in": lifetime,
        "token_type": "Bearer",
    }))
    .into_response()
}

async fn introspect(State(state): State<Arc<Mutex<Inner>>>, body: String) -> Response {
    let f = form(&body);
    let s = state.lock().expect("fake state");
    let token = f.get("token").cloned().unwrap_or_default();
    match is_active(&s, &token) {
        Some(user) => axum::Json(serde_json::json!({"active": true, "email": user})),
        None => axum::Json(serde_json::json!({"active": false})),
    }
    .into_response()
}
