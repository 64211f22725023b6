//! A fake OAuth 2.0 token endpoint (Google / Microsoft identity platform wire format) for the
//! mail OAuth tests: an axum server on a free loopback port.
//!
//! - `POST /token` (form): the `refresh_token` grant. Checks the client id and secret and the
//!   refresh token; answers `{"access_token", "expires_in", "token_type": "Bearer"}` with a new,
//!   short-lived token each time, or `400 {"error": "invalid_grant"}` / `401
//!   {"error": "invalid_client"}` as the real endpoints do.
//! - `POST /introspect` (form `token=`): RFC 7662 introspection, `{"active": bool, "email"}`;
//!   an expired or unknown token is inactive. (What Dovecot's oauth2 passdb asks.)
//!
//! Tokens expire on the wall clock after the lifetime the test sets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

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
        }));
        let app = Router::new()
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

async fn token(State(state): State<Arc<Mutex<Inner>>>, body: String) -> Response {
    let f = form(&body);
    let mut s = state.lock().expect("fake state");
    if f.get("client_id") != Some(&s.client_id) || f.get("client_secret") != Some(&s.client_secret)
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
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
    let access = format!("ya29.fake-{}-{}", s.grants, rand::random::<u32>());
    let lifetime = s.lifetime;
    s.issued
        .insert(access.clone(), (user, Instant::now() + lifetime));
    axum::Json(serde_json::json!({
        "access_token": access,
        "expires_in": lifetime.as_secs(),
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
