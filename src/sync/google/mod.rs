//! Google's REST APIs (People: `people.rs`; Calendar: `calendar.rs`) on the shared reqwest
//! client (`crate::net`): one small client every Google remote uses.
//!
//! - The base URL is the API's root (`https://people.googleapis.com`,
//!   `https://www.googleapis.com/calendar/v3`, or the same under a GoogleAccount's
//!   `apiBaseUrl`); callers pass paths such as `v1/people/me/connections`
//!   ([`GoogleClient::send`]), or path segments that are percent-encoded one by one
//!   ([`GoogleClient::send_to`]: Calendar ids hold `@` and `#`), and may send `If-Match`.
//! - The bearer comes from a [`TokenProvider`]; a `401` is retried once with a fresh token.
//! - `429`, and `403` with reason `rateLimitExceeded` / `userRateLimitExceeded` (Google's
//!   documented rate-limit answers), become [`RemoteError::Throttled`] with the answer's
//!   `Retry-After` (the scheduler waits, the client never sleeps).
//! - Google's error body (`{"error": {"code", "message", "status", "details": [{"reason"}]}}`) is
//!   read into a [`GoogleError`] the caller maps (a stale etag, an expired sync token, a 404), or
//!   turns into a clear message with [`GoogleError::into_remote`].
//!
//! *Must not*: put the access token anywhere but the `Authorization` header (errors name the
//! method, the path and Google's answer), sleep, or know a domain (`people.rs` maps persons,
//! `calendar.rs` events).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::connector::SyncContext;

use super::remote::{RemoteError, TokenProvider};

pub mod calendar;
pub mod people;

/// The People API's own root.
pub const PEOPLE_BASE: &str = "https://people.googleapis.com";

/// How long to wait after a `429` without a `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

/// An error answer from a Google API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleError {
    /// The HTTP status.
    pub http: u16,
    /// `error.status` (`FAILED_PRECONDITION`, `NOT_FOUND`, ...), empty when absent.
    pub status: String,
    /// `error.message`.
    pub message: String,
    /// The `reason`s of `error.details` (`google.rpc.ErrorInfo`) and of the v1 `error.errors`
    /// (`failedPrecondition`, `EXPIRED_SYNC_TOKEN`, ...).
    pub reasons: Vec<String>,
}

impl GoogleError {
    /// Reads an error answer's body (anything that is not Google's JSON gives only the status).
    pub fn parse(http: u16, body: &str) -> GoogleError {
        let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let error = &json["error"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let mut reasons = Vec::new();
        for list in [&error["details"], &error["errors"]] {
            for detail in list.as_array().into_iter().flatten() {
                if let Some(reason) = detail["reason"].as_str() {
                    reasons.push(reason.to_owned());
                }
            }
        }
        GoogleError {
            http,
            status: text(&error["status"]),
            message: text(&error["message"]),
            reasons,
        }
    }

    /// Whether a detail gives `reason`.
    pub fn has_reason(&self, reason: &str) -> bool {
        self.reasons.iter().any(|r| r.eq_ignore_ascii_case(reason))
    }

    /// The sync token expired: `EXPIRED_SYNC_TOKEN` (the People API today, on a `400`), or a
    /// `410 Gone` (the People API before, the Calendar API).
    pub fn sync_token_expired(&self) -> bool {
        self.http == 410 || self.has_reason("EXPIRED_SYNC_TOKEN")
    }

    /// A precondition failed (a stale etag): `400 FAILED_PRECONDITION` / reason
    /// `failedPrecondition`, or `412`, and not an expired sync token.
    pub fn precondition_failed(&self) -> bool {
        !self.sync_token_expired()
            && (self.http == 412
                || self.status == "FAILED_PRECONDITION"
                || self.has_reason("failedPrecondition"))
    }

    /// Google asks to slow down: `429`, or `403` with reason `rateLimitExceeded` /
    /// `userRateLimitExceeded` (how the Calendar API answers a rate limit).
    pub fn rate_limited(&self) -> bool {
        self.http == 429
            || (self.http == 403
                && (self.has_reason("rateLimitExceeded")
                    || self.has_reason("userRateLimitExceeded")))
    }

    /// `what` failed with this answer, as a run error.
    pub fn into_remote(self, what: &str) -> RemoteError {
        RemoteError::Failed(self.describe(what))
    }

    /// `"{what}: Google answered 400 FAILED_PRECONDITION: {message}"` (the first reason where
    /// the answer has no `status`, as the Calendar API's v1-style errors: `403
    /// forbiddenForNonOrganizer`).
    pub fn describe(&self, what: &str) -> String {
        let mut text = format!("{what}: Google answered {}", self.http);
        let label = match self.reasons.first() {
            Some(reason) if self.status.is_empty() => reason.as_str(),
            _ => self.status.as_str(),
        };
        if !label.is_empty() {
            text.push(' ');
            text.push_str(label);
        }
        if !self.message.is_empty() {
            text.push_str(": ");
            text.push_str(&self.message);
        }
        text
    }
}

/// Where a request goes, under the API's root.
#[derive(Clone, Copy)]
enum Target<'a> {
    /// A path as written (`v1/people/c1:updateContact`).
    Path(&'a str),
    /// Path segments, each percent-encoded.
    Segments(&'a [&'a str]),
}

/// A Google API client: a base URL and a bearer.
pub struct GoogleClient {
    http: reqwest::Client,
    base: String,
    tokens: Arc<dyn TokenProvider>,
    requests: AtomicU64,
}

impl std::fmt::Debug for GoogleClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl GoogleClient {
    /// A client of the API rooted at `base` (no trailing slash needed).
    pub fn new(base: &str, tokens: Arc<dyn TokenProvider>) -> GoogleClient {
        GoogleClient {
            http: crate::net::http_client_builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("an HTTP client with rustls (ring) builds"),
            base: base.trim_end_matches('/').to_owned(),
            tokens,
            requests: AtomicU64::new(0),
        }
    }

    /// The API's root.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Requests sent so far (retries included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Sends `method path?query` with an optional JSON body. `Ok(Ok(json))` for a 2xx (an empty
    /// body reads as `{}`), `Ok(Err(error))` for an error answer the caller may map; `Err` for a
    /// transport failure, throttling, a second 401 or a cancellation.
    pub async fn send(
        &self,
        ctx: &SyncContext<'_>,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Result<Value, GoogleError>, RemoteError> {
        self.execute(ctx, method, Target::Path(path), query, body, None)
            .await
    }

    /// [`GoogleClient::send`] to the path made of `segments`, each percent-encoded (a Calendar
    /// id holds `@` and `#`, and a `#` written into a URL would start its fragment), with an
    /// `If-Match: etag` when `if_match` names one.
    pub async fn send_to(
        &self,
        ctx: &SyncContext<'_>,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Result<Value, GoogleError>, RemoteError> {
        self.execute(
            ctx,
            method,
            Target::Segments(segments),
            query,
            body,
            if_match,
        )
        .await
    }

    /// What a message calls a request to `target` (never its query: it may hold tokens), and
    /// its URL.
    fn resolve(
        &self,
        method: &Method,
        target: Target<'_>,
    ) -> Result<(String, url::Url), RemoteError> {
        let (what, url) = match target {
            Target::Path(path) => {
                let path = path.trim_start_matches('/');
                let url = url::Url::parse(&format!("{}/{path}", self.base));
                (format!("{method} {path}"), url.map_err(|e| e.to_string()))
            }
            Target::Segments(segments) => (
                format!("{method} {}", segments.join("/")),
                self.url_of(segments),
            ),
        };
        let url = url.map_err(|e| {
            RemoteError::Failed(format!("{what}: bad API URL `{}`: {e}", self.base))
        })?;
        Ok((what, url))
    }

    /// The base URL with `segments` appended, each percent-encoded.
    fn url_of(&self, segments: &[&str]) -> Result<url::Url, String> {
        let mut url = url::Url::parse(&self.base).map_err(|e| e.to_string())?;
        url.path_segments_mut()
            .map_err(|()| "no base URL".to_owned())?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// One request with the bearer: a `401` gets a fresh token and one more try; `429`, and
    /// `403` with a rate-limit reason, are [`RemoteError::Throttled`].
    async fn execute(
        &self,
        ctx: &SyncContext<'_>,
        method: Method,
        target: Target<'_>,
        query: &[(&str, String)],
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Result<Value, GoogleError>, RemoteError> {
        let (what, mut url) = self.resolve(&method, target)?;
        let what = what.as_str();
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut fresh = false;
        loop {
            let token = self.tokens.token(ctx, fresh).await?;
            let mut call = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token);
            if let Some(etag) = if_match {
                call = call.header(reqwest::header::IF_MATCH, etag);
            }
            if let Some(body) = body {
                call = call.json(body);
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let response = tokio::select! {
                biased;
                () = ctx.cancel.cancelled() => return Err(RemoteError::Cancelled),
                r = call.send() => r.map_err(|e| {
                    RemoteError::Failed(format!("{what}: {}", e.without_url()))
                })?,
            };
            let status = response.status().as_u16();
            if status == 401 && !fresh {
                fresh = true;
                continue;
            }
            let retry_after = crate::net::retry_after(&response).unwrap_or(DEFAULT_RETRY_AFTER);
            let text = tokio::select! {
                biased;
                () = ctx.cancel.cancelled() => return Err(RemoteError::Cancelled),
                t = response.text() => t.map_err(|e| {
                    RemoteError::Failed(format!("{what}: {}", e.without_url()))
                })?,
            };
            if (200..300).contains(&status) {
                if text.trim().is_empty() {
                    return Ok(Ok(Value::Object(Default::default())));
                }
                return serde_json::from_str(&text).map(Ok).map_err(|e| {
                    RemoteError::Failed(format!("{what}: Google's answer is not JSON: {e}"))
                });
            }
            let error = GoogleError::parse(status, &text);
            if error.rate_limited() {
                return Err(RemoteError::Throttled {
                    message: format!("{what}: Google throttled the request ({status})"),
                    retry_after,
                });
            }
            if status == 401 {
                return Err(RemoteError::Failed(format!(
                    "{} (a fresh access token was refused too)",
                    error.describe(what)
                )));
            }
            return Ok(Err(error));
        }
    }

    /// [`GoogleClient::send`] where every error answer fails the call.
    pub async fn call(
        &self,
        ctx: &SyncContext<'_>,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, RemoteError> {
        let what = format!("{method} {}", path.trim_start_matches('/'));
        self.send(ctx, method, path, query, body)
            .await?
            .map_err(|e| e.into_remote(&what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_expired_sync_token_answer() {
        let body = r#"{"error": {"code": 400, "message": "Sync token is expired. Clear local cache and retry call without the sync token.",
            "status": "FAILED_PRECONDITION",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "EXPIRED_SYNC_TOKEN", "domain": "people.googleapis.com"}]}}"#;
        let error = GoogleError::parse(400, body);
        assert!(error.sync_token_expired());
        assert!(!error.precondition_failed(), "not a stale etag");
        assert!(GoogleError::parse(410, "").sync_token_expired());
    }

    #[test]
    fn reads_a_stale_etag_and_describes_it() {
        let body = r#"{"error": {"code": 400, "message": "Request person.etag is different than the current person.etag.",
            "status": "FAILED_PRECONDITION", "errors": [{"reason": "failedPrecondition"}]}}"#;
        let error = GoogleError::parse(400, body);
        assert!(error.precondition_failed());
        assert!(!error.sync_token_expired());
        assert_eq!(
            error.describe("PATCH v1/people/c1:updateContact"),
            "PATCH v1/people/c1:updateContact: Google answered 400 FAILED_PRECONDITION: \
             Request person.etag is different than the current person.etag."
        );
    }

    #[test]
    fn reads_the_calendar_apis_v1_errors_and_rate_limits() {
        let body = r#"{"error": {"errors": [{"domain": "global", "reason": "fullSyncRequired", "message": "Sync token is no longer valid, a full sync is required."}], "code": 410, "message": "Sync token is no longer valid, a full sync is required."}}"#;
        let error = GoogleError::parse(410, body);
        assert!(error.sync_token_expired());
        assert_eq!(
            error.describe("GET calendars/a@b/events"),
            "GET calendars/a@b/events: Google answered 410 fullSyncRequired: \
             Sync token is no longer valid, a full sync is required."
        );
        let limited = |reason: &str| {
            let body = format!(
                r#"{{"error": {{"errors": [{{"domain": "usageLimits", "reason": "{reason}"}}], "code": 403, "message": "Rate Limit Exceeded"}}}}"#
            );
            GoogleError::parse(403, &body).rate_limited()
        };
        assert!(limited("rateLimitExceeded"));
        assert!(limited("userRateLimitExceeded"));
        assert!(!limited("forbiddenForNonOrganizer"));
        assert!(GoogleError::parse(429, "").rate_limited());
    }

    struct NoTokens;

    impl TokenProvider for NoTokens {
        fn token<'a>(
            &'a self,
            _ctx: &'a SyncContext<'a>,
            _fresh: bool,
        ) -> super::super::remote::RemoteFuture<'a, String> {
            Box::pin(async { Err(RemoteError::Failed("no token here".into())) })
        }
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        let client = GoogleClient::new("http://127.0.0.1:9/calendar/v3/", Arc::new(NoTokens));
        let url = client
            .url_of(&[
                "calendars",
                "en.usa#holiday@group.v.calendar.google.com",
                "events",
            ])
            .expect("url");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/calendar/v3/calendars/en.usa%23holiday@group.v.calendar.google.com/events"
        );
        assert_eq!(url.fragment(), None);
    }

    #[test]
    fn a_body_that_is_not_json_gives_the_status() {
        let error = GoogleError::parse(502, "<html>bad gateway</html>");
        assert_eq!(error.describe("GET x"), "GET x: Google answered 502");
        assert!(!error.precondition_failed());
    }
}
