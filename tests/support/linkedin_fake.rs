//! A fake LinkedIn for the lead tests (the documented wire format of the Lead Sync API, the
//! OAuth 2.0 token endpoint and lead notifications): an axum server on a free loopback port.
//!
//! - `POST /oauth/v2/accessToken` (`grant_type=refresh_token`, `refresh_token`, `client_id`,
//!   `client_secret`): `{"access_token", "expires_in", "refresh_token", ...}`; a wrong
//!   client or refresh token gets `400 {"error": "invalid_grant"}`. With
//!   `grant_type=authorization_code` (`code`, `redirect_uri`) it exchanges a code from the
//!   consent page, single use and only with the `redirect_uri` it was issued for, for an access
//!   token and a new refresh token (3-legged OAuth, as LinkedIn documents it).
//! - `GET /oauth/v2/authorization?response_type=code&client_id&redirect_uri&state&scope`: the
//!   consent page; as if the member signed in and allowed, `302` to `redirect_uri?code&state`
//!   (with no consenting member, `error=user_cancelled_authorize`).
//! - `GET /rest/leadFormResponses/{id}` and `GET /rest/leadForms/{id}`: need
//!   `Authorization: Bearer` with a token it granted and not expired
//!   (`401 {"status": 401, "serviceErrorCode": 65601, "code": "EXPIRED_ACCESS_TOKEN"}`), and a
//!   `LinkedIn-Version` header (`400 VERSION_MISSING`); the next [`LinkedInFake::throttle`]
//!   requests get `429` with `Retry-After: 1`.
//! - `GET /rest/leadFormResponses?q=owner&owner=(sponsoredAccount:{urn})&leadType=(leadType:SPONSORED)
//!   &submittedAtTimeRange=(start:{ms},end:{ms})&count=&start=`: the owner finder, the same
//!   gate; the responses of that ad account submitted in `[start, end)`, oldest first, one
//!   page of `count` (at most 100) from `start`, as `{"paging": {"start", "count", "total",
//!   "links"}, "elements": [...]}`; 400 without `q=owner` or a well-formed owner / lead type.
//! - `GET /rest/leadNotifications?q=criteria&owner=(sponsoredAccount:{urn})&leadType=(leadType:SPONSORED)`,
//!   `POST /rest/leadNotifications` (`{"webhook", "owner": {"sponsoredAccount"}, "leadType"}`,
//!   201 with `x-restli-id`) and `DELETE /rest/leadNotifications/{id}` (204): the lead
//!   notification subscriptions, kept in [`Inner::subscriptions`].
//! - [`notification`] builds a lead notification body and [`sign`] its `X-LI-Signature` (hex
//!   HMAC-SHA256 of `hmacsha256=` + body, keyed with the app's client secret).

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// The LinkedIn app's client id in the tests.
pub const CLIENT_ID: &str = "li-client";
/// Its client secret.
pub const CLIENT_SECRET: &str = "li-client-secret";
/// The refresh token of the test's LinkedInAccount.
pub const REFRESH_TOKEN: &str = "li-refresh-token";

/// The fake's state.
#[derive(Debug, Default)]
pub struct Inner {
    /// The LinkedIn app's client id ([`CLIENT_ID`] unless started with [`LinkedInFake::start_as`]).
    pub client_id: String,
    /// Its client secret.
    pub client_secret: String,
    /// The refresh tokens members granted the app (honoured beside the consented ones).
    pub refresh_tokens: HashSet<String>,
    /// Forms by id.
    pub forms: HashMap<String, Value>,
    /// Form responses by id.
    pub responses: HashMap<String, Value>,
    /// Access tokens granted and still valid.
    pub valid: HashSet<String>,
    /// Refresh grants answered.
    pub grants: u32,
    /// Refresh requests refused (`invalid_grant`).
    pub refused: u32,
    /// Whether the consent page consents (else the member declines).
    pub consenting: bool,
    /// Outstanding authorization codes: code → redirect_uri.
    pub codes: HashMap<String, String>,
    /// Refresh tokens issued by code exchanges (honoured beside [`REFRESH_TOKEN`]).
    pub consented: HashSet<String>,
    /// The query of the last consent request.
    pub last_consent: HashMap<String, String>,
    /// Requests still to be answered 429.
    pub throttle: u32,
    /// 429s answered.
    pub throttled: u32,
    /// 401s answered.
    pub unauthorized: u32,
    /// Every API path asked, in order.
    pub requests: Vec<String>,
    /// Lead notification subscriptions by id: `(owner URN, webhook URL)`.
    pub subscriptions: std::collections::BTreeMap<u64, (String, String)>,
    /// Subscriptions created so far (ids are never reused).
    pub subscribed: u64,
}

/// The running fake.
#[derive(Clone)]
pub struct LinkedInFake {
    /// `http://127.0.0.1:port` (the LeadIntegration's `apiBaseUrl`).
    pub base: String,
    /// Shared with the server.
    pub state: Arc<Mutex<Inner>>,
}

impl LinkedInFake {
    /// Starts the fake for the tests' app ([`CLIENT_ID`], [`CLIENT_SECRET`]) and member
    /// ([`REFRESH_TOKEN`]).
    pub async fn start() -> LinkedInFake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake");
        LinkedInFake::serve(listener, CLIENT_ID, CLIENT_SECRET, &[REFRESH_TOKEN])
    }

    /// Starts the fake on `listener` for the app `client_id`/`client_secret`, honouring the
    /// members' `refresh_tokens` (the demo's, from its config).
    pub fn serve(
        listener: tokio::net::TcpListener,
        client_id: &str,
        client_secret: &str,
        refresh_tokens: &[&str],
    ) -> LinkedInFake {
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(Inner {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            refresh_tokens: refresh_tokens.iter().map(|t| (*t).to_owned()).collect(),
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/oauth/v2/accessToken", post(token))
            .route("/oauth/v2/authorization", get(authorization))
            .route("/rest/leadFormResponses", get(find_responses))
            .route(
                "/rest/leadNotifications",
                get(find_subscriptions).post(subscribe),
            )
            .route(
                "/rest/leadNotifications/{id}",
                axum::routing::delete(unsubscribe),
            )
            .route("/rest/leadFormResponses/{id}", get(response))
            .route("/rest/leadForms/{id}", get(form))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await });
        LinkedInFake { base, state }
    }

    /// Runs `f` on the state.
    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.state.lock().expect("fake state"))
    }

    /// Adds form `id` with `questions` (`(questionId, name, predefinedField)`), a checkbox
    /// (`consentId` 9, `marketing_consent`) and a hidden field `utm_campaign`.
    pub fn add_form(&self, id: &str, questions: &[(u32, &str, Option<&str>)]) {
        let questions: Vec<Value> = questions
            .iter()
            .map(|(qid, name, predefined)| {
                let mut q = json!({"questionId": qid, "name": name, "questionDetails": {"textQuestionDetails": {}}});
                if let Some(p) = predefined {
                    q["predefinedField"] = json!(p);
                }
                q
            })
            .collect();
        let form = json!({
            "id": id.parse::<u64>().unwrap_or_default(),
            "name": format!("Form {id}"),
            "state": "PUBLISHED",
            "content": {
                "questions": questions,
                "consents": [{"consentId": 9, "name": "marketing_consent"}],
                "hiddenFields": [{"name": "utm_campaign", "value": "spring"}]
            }
        });
        self.with(|s| s.forms.insert(id.to_owned(), form));
    }

    /// Adds the response `id` to form `form` with text `answers` (`(questionId, text)`), on
    /// the tests' ad account 508912345.
    pub fn add_response(&self, id: &str, form: &str, submitted_ms: i64, answers: &[(u32, &str)]) {
        self.add_response_on("508912345", id, form, submitted_ms, answers);
    }

    /// [`LinkedInFake::add_response`] on `ad_account`.
    pub fn add_response_on(
        &self,
        ad_account: &str,
        id: &str,
        form: &str,
        submitted_ms: i64,
        answers: &[(u32, &str)],
    ) {
        let answers: Vec<Value> = answers
            .iter()
            .map(|(qid, text)| json!({"questionId": qid, "answerDetails": {"textQuestionAnswer": {"answer": text}}}))
            .collect();
        let response = json!({
            "id": id,
            "owner": {"sponsoredAccount": format!("urn:li:sponsoredAccount:{ad_account}")},
            "leadType": "SPONSORED",
            "versionedLeadGenFormUrn": format!("urn:li:versionedLeadGenForm:(urn:li:leadGenForm:{form},1)"),
            "submittedAt": submitted_ms,
            "testLead": false,
            "formResponse": {
                "answers": answers,
                "consentResponses": [{"consentId": 9, "accepted": true}]
            }
        });
        self.with(|s| s.responses.insert(id.to_owned(), response));
    }

    /// Expires every access token granted so far.
    pub fn expire_tokens(&self) {
        self.with(|s| s.valid.clear());
    }

    /// The next `n` API requests get 429.
    pub fn throttle(&self, n: u32) {
        self.with(|s| s.throttle = n);
    }

    /// Refresh grants answered.
    pub fn grants(&self) -> u32 {
        self.with(|s| s.grants)
    }

    /// Refresh requests refused with `invalid_grant`.
    pub fn refused(&self) -> u32 {
        self.with(|s| s.refused)
    }

    /// How many API requests asked for `path` (such as `leadFormResponses/r1`).
    pub fn asked(&self, path: &str) -> usize {
        self.with(|s| s.requests.iter().filter(|p| *p == path).count())
    }
}

/// A lead notification of response `response` of form `form` on ad account `ad_account`.
pub fn notification(ad_account: &str, response: &str, form: &str) -> String {
    json!({
        "type": "LEAD_ACTION",
        "leadGenFormResponse": format!("urn:li:leadGenFormResponse:{response}"),
        "leadGenForm": format!("urn:li:versionedLeadGenForm:(urn:li:leadGenForm:{form},1)"),
        "owner": {"sponsoredAccount": format!("urn:li:sponsoredAccount:{ad_account}")},
        "leadAction": "CREATED",
        "occuredAt": 1_765_000_000_000_i64,
        "leadType": "SPONSORED"
    })
    .to_string()
}

fn hmac_hex(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// `X-LI-Signature` of `body` as LinkedIn computes it.
pub fn sign(secret: &str, body: &str) -> String {
    hmac_hex(secret, &[b"hmacsha256=", body.as_bytes()])
}

/// The `challengeResponse` LinkedIn expects for `code`.
pub fn challenge_response(secret: &str, code: &str) -> String {
    hmac_hex(secret, &[code.as_bytes()])
}

async fn token(State(state): State<Arc<Mutex<Inner>>>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.get(k).map(String::as_str);
    let (client_id, client_secret) = {
        let s = state.lock().expect("fake state");
        (s.client_id.clone(), s.client_secret.clone())
    };
    let app = field("client_id") == Some(client_id.as_str())
        && field("client_secret") == Some(client_secret.as_str());
    if field("grant_type") == Some("authorization_code") && app {
        let mut s = state.lock().expect("fake state");
        let issued = field("code").and_then(|c| s.codes.remove(c));
        if issued.is_none() || issued.as_deref() != field("redirect_uri") {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_grant", "error_description": "the authorization code is invalid or was used"})),
            )
                .into_response();
        }
        s.grants += 1;
        let access = format!("li-access-{}", s.grants);
        s.valid.insert(access.clone());
        let refresh = format!("li-consented-refresh-{}", rand::random::<u32>());
        s.consented.insert(refresh.clone());
        return Json(json!({
            "access_token": access,
            "expires_in": 5_183_999,
            "refresh_token": refresh,
            "refresh_token_expires_in": 31_535_999,
            "scope": "r_marketing_leadgen_automation"
        }))
        .into_response();
    }
    let granted = field("refresh_token").is_some_and(|r| {
        let s = state.lock().expect("fake state");
        s.consented.contains(r) || s.refresh_tokens.contains(r)
    });
    if field("grant_type") != Some("refresh_token") || !app || !granted {
        state.lock().expect("fake state").refused += 1;
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": "the refresh token is invalid"})),
        )
            .into_response();
    }
    let mut s = state.lock().expect("fake state");
    s.grants += 1;
    let access = format!("li-access-{}", s.grants);
    s.valid.insert(access.clone());
    Json(json!({
        "access_token": access,
        "expires_in": 5_183_999,
        "refresh_token": field("refresh_token").unwrap_or_default(),
        "refresh_token_expires_in": 31_535_999,
        "scope": "r_marketing_leadgen_automation"
    }))
    .into_response()
}

async fn authorization(
    State(state): State<Arc<Mutex<Inner>>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let q: HashMap<String, String> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let mut s = state.lock().expect("fake state");
    s.last_consent = q.clone();
    if q.get("response_type").map(String::as_str) != Some("code")
        || q.get("client_id") != Some(&s.client_id)
    {
        return (StatusCode::BAD_REQUEST, "invalid_request").into_response();
    }
    let Some(mut back) = q.get("redirect_uri").and_then(|r| url::Url::parse(r).ok()) else {
        return (StatusCode::BAD_REQUEST, "invalid redirect_uri").into_response();
    };
    {
        let mut pairs = back.query_pairs_mut();
        if s.consenting {
            let code = format!("AQ-fake-code-{}", rand::random::<u32>());
            s.codes.insert(
                code.clone(),
                q.get("redirect_uri").cloned().unwrap_or_default(),
            );
            pairs.append_pair("code", &code);
        } else {
            pairs.append_pair("error", "user_cancelled_authorize");
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

/// The checks every API request passes, in LinkedIn's order; `Some` is the refusal.
fn gate(s: &mut Inner, headers: &HeaderMap, path: String) -> Option<Response> {
    s.requests.push(path);
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|t| s.valid.contains(t)) {
        s.unauthorized += 1;
        return Some((
            StatusCode::UNAUTHORIZED,
            Json(json!({"status": 401, "serviceErrorCode": 65601, "code": "EXPIRED_ACCESS_TOKEN", "message": "The token used in the request has expired"})),
        )
            .into_response());
    }
    if headers.get("linkedin-version").is_none() {
        return Some((
            StatusCode::BAD_REQUEST,
            Json(json!({"status": 400, "code": "VERSION_MISSING", "message": "A version must be present. Please specify a version by adding the LinkedIn-Version header."})),
        )
            .into_response());
    }
    if s.throttle > 0 {
        s.throttle -= 1;
        s.throttled += 1;
        return Some((
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            Json(json!({"status": 429, "code": "TOO_MANY_REQUESTS", "message": "Resource level throttle limit reached"})),
        )
            .into_response());
    }
    None
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"status": 404, "code": "NOT_FOUND", "message": "Not found"})),
    )
        .into_response()
}

async fn response(
    State(state): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(answer) = gate(&mut s, &headers, format!("leadFormResponses/{id}")) {
        return answer;
    }
    s.responses
        .get(&id)
        .map_or_else(not_found, |r| Json(r.clone()).into_response())
}

async fn form(
    State(state): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(answer) = gate(&mut s, &headers, format!("leadForms/{id}")) {
        return answer;
    }
    s.forms
        .get(&id)
        .map_or_else(not_found, |f| Json(f.clone()).into_response())
}

/// `(start:1,end:2)` as `(1, 2)`.
fn time_range(text: &str) -> Option<(i64, i64)> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    let (start, end) = inner.split_once(',')?;
    Some((
        start.strip_prefix("start:")?.parse().ok()?,
        end.strip_prefix("end:")?.parse().ok()?,
    ))
}

async fn find_responses(
    State(state): State<Arc<Mutex<Inner>>>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = state.lock().expect("fake state");
    let start: usize = query.get("start").and_then(|v| v.parse().ok()).unwrap_or(0);
    if let Some(answer) = gate(
        &mut s,
        &headers,
        format!("leadFormResponses?q=owner&start={start}"),
    ) {
        return answer;
    }
    let bad = |message: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"status": 400, "code": "ILLEGAL_ARGUMENT", "message": message})),
        )
            .into_response()
    };
    if query.get("q").map(String::as_str) != Some("owner") {
        return bad("q=owner is required");
    }
    let Some(owner) = query
        .get("owner")
        .and_then(|o| o.strip_prefix("(sponsoredAccount:"))
        .and_then(|o| o.strip_suffix(')'))
    else {
        return bad("owner must be (sponsoredAccount:urn:li:sponsoredAccount:{id})");
    };
    if query.get("leadType").map(String::as_str) != Some("(leadType:SPONSORED)") {
        return bad("leadType must be (leadType:SPONSORED) for a sponsored account");
    }
    let range = match query.get("submittedAtTimeRange") {
        None => None,
        Some(text) => match time_range(text) {
            Some(r) => Some(r),
            None => return bad("submittedAtTimeRange must be (start:{ms},end:{ms})"),
        },
    };
    let count: usize = query
        .get("count")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .min(100);
    let mut found: Vec<&Value> = s
        .responses
        .values()
        .filter(|r| r["owner"]["sponsoredAccount"] == owner)
        .filter(|r| {
            let at = r["submittedAt"].as_i64().unwrap_or_default();
            range.is_none_or(|(from, to)| from <= at && at < to)
        })
        .collect();
    found.sort_by_key(|r| {
        (
            r["submittedAt"].as_i64(),
            r["id"].as_str().map(str::to_owned),
        )
    });
    let total = found.len();
    let elements: Vec<Value> = found.into_iter().skip(start).take(count).cloned().collect();
    Json(json!({
        "paging": {"start": start, "count": count, "total": total, "links": []},
        "elements": elements
    }))
    .into_response()
}

impl LinkedInFake {
    /// The webhook URLs subscribed for the ad account `ad_account`.
    pub fn subscriptions(&self, ad_account: &str) -> Vec<String> {
        let owner = format!("urn:li:sponsoredAccount:{ad_account}");
        self.with(|s| {
            s.subscriptions
                .values()
                .filter(|(o, _)| *o == owner)
                .map(|(_, url)| url.clone())
                .collect()
        })
    }
}

impl LinkedInFake {
    /// What LinkedIn does when a member submits a lead form: POSTs the lead notification of
    /// `response` (form `form`, ad account `ad_account`) to every webhook subscribed for the
    /// ad account, signed with the app's client secret. Answers `(webhook, status and body)`
    /// per subscription; none when the ad account has no subscription.
    pub async fn notify(
        &self,
        ad_account: &str,
        response: &str,
        form: &str,
    ) -> Vec<(String, Result<(u16, String), String>)> {
        let body = notification(ad_account, response, form);
        let signature = self.with(|s| sign(&s.client_secret, &body));
        let client = switchboard::net::http_client();
        let mut answers = Vec::new();
        for url in self.subscriptions(ad_account) {
            let answer = match client
                .post(&url)
                .header("content-type", "application/json")
                .header("X-LI-Signature", &signature)
                .body(body.clone())
                .send()
                .await
            {
                Ok(r) => {
                    let status = r.status().as_u16();
                    Ok((status, r.text().await.unwrap_or_default()))
                }
                Err(e) => Err(format!("the POST failed: {e}")),
            };
            answers.push((url, answer));
        }
        answers
    }
}

async fn find_subscriptions(
    State(state): State<Arc<Mutex<Inner>>>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(answer) = gate(&mut s, &headers, "leadNotifications?q=criteria".into()) {
        return answer;
    }
    let owner = query
        .get("owner")
        .and_then(|o| o.strip_prefix("(sponsoredAccount:"))
        .and_then(|o| o.strip_suffix(')'));
    if query.get("q").map(String::as_str) != Some("criteria") || owner.is_none() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"status": 400, "code": "ILLEGAL_ARGUMENT", "message": "q=criteria and owner are required"})),
        )
            .into_response();
    }
    let elements: Vec<Value> = s
        .subscriptions
        .iter()
        .filter(|(_, (o, _))| Some(o.as_str()) == owner)
        .map(|(id, (o, url))| json!({"id": id, "owner": {"sponsoredAccount": o}, "leadType": "SPONSORED", "webhook": url}))
        .collect();
    Json(json!({"paging": {"start": 0, "count": 10, "links": [], "total": elements.len()}, "elements": elements}))
        .into_response()
}

async fn subscribe(
    State(state): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(answer) = gate(&mut s, &headers, "POST leadNotifications".into()) {
        return answer;
    }
    let (Some(owner), Some(url)) = (
        body["owner"]["sponsoredAccount"].as_str(),
        body["webhook"].as_str(),
    ) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"status": 422, "message": "owner.sponsoredAccount and webhook are required"})),
        )
            .into_response();
    };
    s.subscribed += 1;
    let id = s.subscribed;
    s.subscriptions
        .insert(id, (owner.to_owned(), url.to_owned()));
    (StatusCode::CREATED, [("x-restli-id", id.to_string())]).into_response()
}

async fn unsubscribe(
    State(state): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut s = state.lock().expect("fake state");
    if let Some(answer) = gate(&mut s, &headers, format!("DELETE leadNotifications/{id}")) {
        return answer;
    }
    match id
        .parse::<u64>()
        .ok()
        .and_then(|id| s.subscriptions.remove(&id))
    {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => not_found(),
    }
}
