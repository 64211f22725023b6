//! Microsoft Graph for the contact and calendar sync (a Mailbox on a `microsoft365` provider):
//! the one small client the Graph remotes (`contacts.rs`, `calendar.rs`) share.
//!
//! [`Graph`] knows Graph's conventions and nothing of contacts or events:
//! - the base is the provider's `apiBaseUrl` ([`crate::mail::graph::DEFAULT_BASE_URL`] when
//!   absent), as mail's Graph client takes it, and every path is under `{base}/v1.0/`
//!   ([`Graph::url`] escapes ids, which are base64 and may hold `/`, `+`, `=`);
//! - the bearer comes from a [`TokenProvider`] (the mailbox's OAuth grant); a `401` is retried
//!   once with a fresh token, a second `401` fails the call (the token never appears in a
//!   message);
//! - `429` becomes [`RemoteError::Throttled`] with its `Retry-After` (10 s when absent): the
//!   run ends and the scheduler retries; nothing sleeps here;
//! - an expired delta (`410 Gone`, or the codes `syncStateNotFound` / `resyncRequired`) becomes
//!   [`RemoteError::TokenExpired`] ([`Graph::page`]), so the engine lists the folder again;
//! - any other error answer is read into `what failed: status code: message` with Graph's
//!   `{"error": {"code", "message"}}` ([`Graph::failure`]);
//! - a collection page's `@odata.nextLink` / `@odata.deltaLink` become the engine's [`Next`]
//!   ([`GraphPage::next`]); links are followed only on the base's own origin, so the bearer
//!   never goes elsewhere.
//!
//! - `calendar.rs`: the `CalendarRemote` over calendars (`calendarView/delta`) and To Do lists.
//!
//! Statuses a caller decides on (`404`, `412` on a conditional write) come back as an
//! [`Answer`] from [`Graph::call`].
//!
//! `contacts.rs` is the contacts remote (`GraphContactsRemote`).

pub mod contacts;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::ConfigSet;
use crate::config::kinds::{AuthMethod, MailProviderType, MailboxSpec};
use crate::connector::SyncContext;
use crate::mail::graph::{DEFAULT_BASE_URL, error_message};

use super::remote::{Next, RemoteError, TokenProvider};

pub mod calendar;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The wait assumed when a `429` names none.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(10);

/// A Graph client for one grant. Cheap to share behind an `Arc`; counts its requests.
pub struct Graph {
    /// `{apiBaseUrl}` without a trailing slash.
    base: String,
    http: reqwest::Client,
    tokens: Arc<dyn TokenProvider>,
    requests: AtomicU64,
}

/// An answer the caller reads: any status but `401` and `429` (which [`Graph::call`] handles).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body, as text.
    pub body: String,
}

impl Answer {
    /// The body read as `T` (a `2xx` answer's), or a failure naming `what`.
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, RemoteError> {
        if !self.status.is_success() {
            return Err(Graph::failure(what, self));
        }
        serde_json::from_str(&self.body).map_err(|e| {
            RemoteError::Failed(format!("Microsoft Graph {what}: unreadable answer: {e}"))
        })
    }

    /// Whether this is Graph saying a delta link is no longer valid.
    pub fn delta_expired(&self) -> bool {
        if self.status == StatusCode::GONE {
            return true;
        }
        let message = error_message(&self.body).to_ascii_lowercase();
        message.starts_with("syncstatenotfound") || message.starts_with("resyncrequired")
    }
}

/// One page of a Graph collection (a listing or a delta round).
#[derive(Debug, Deserialize)]
pub struct GraphPage<T> {
    /// The page's entries.
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    /// The next page, when there is one.
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
    /// The link the next delta round starts from (on a delta round's last page).
    #[serde(rename = "@odata.deltaLink")]
    pub delta_link: Option<String>,
}

impl<T> GraphPage<T> {
    /// The engine's view of what follows: a next link is a page cursor, a delta link the
    /// token of the next run, neither (a plain listing's last page) no token.
    pub fn next(&self) -> Next {
        match (&self.next_link, &self.delta_link) {
            (Some(next), _) => Next::More(next.clone()),
            (None, delta) => Next::Done(delta.clone()),
        }
    }
}

/// The Graph base URL (the provider's `apiBaseUrl`, `None` for Graph's own host) of Mailbox
/// `name`, when it can sync through Graph: its provider is `microsoft365` with `auth: oauth2`.
/// `Err` is the pending reason.
pub fn mailbox_api_base(set: &ConfigSet, name: &str) -> Result<Option<String>, String> {
    let mailbox = set
        .get::<MailboxSpec>(name)
        .ok_or_else(|| format!("no Mailbox named {name}"))?;
    let (provider_name, provider) = set
        .mail_provider_of(mailbox)
        .ok_or_else(|| format!("no MailProvider serves {}", mailbox.address.as_str()))?;
    match provider.provider_type {
        MailProviderType::Microsoft365 if provider.auth == AuthMethod::Oauth2 => Ok(provider
            .api_base_url
            .as_ref()
            .map(|u| u.as_str().to_owned())),
        MailProviderType::Microsoft365 => Err(format!(
            "Mailbox {name}: contacts and calendars sync through Microsoft Graph, which needs `auth: oauth2` on MailProvider {provider_name}"
        )),
        _ => Err(format!(
            "Mailbox {name}: contact and calendar sync over a mailbox needs a microsoft365 provider (MailProvider {provider_name} is not one)"
        )),
    }
}

impl Graph {
    /// A client for the provider's `apiBaseUrl` (`None`: Graph's own host) with `tokens`.
    pub fn new(api_base_url: Option<&str>, tokens: Arc<dyn TokenProvider>) -> Graph {
        Graph {
            base: api_base_url
                .unwrap_or(DEFAULT_BASE_URL)
                .trim_end_matches('/')
                .to_owned(),
            http: crate::net::http_client_builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .unwrap_or_default(),
            tokens,
            requests: AtomicU64::new(0),
        }
    }

    /// `{base}/v1.0/{segments joined by /}`, each segment escaped as one path segment, then
    /// `query` (already unescaped pairs: `$filter`, `$select`).
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> String {
        let mut url = match url::Url::parse(&format!("{}/v1.0", self.base)) {
            Ok(url) => url,
            // An unparsable base fails on the first request with reqwest's own message.
            Err(_) => return format!("{}/v1.0/{}", self.base, segments.join("/")),
        };
        if let Ok(mut path) = url.path_segments_mut() {
            path.extend(segments);
        }
        if !query.is_empty() {
            // Spaces as `%20`, not form encoding's `+`: OData reads `$filter` literally.
            let escape = |s: &str| {
                url::form_urlencoded::byte_serialize(s.as_bytes())
                    .collect::<String>()
                    .replace('+', "%20")
            };
            let query: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
                .collect();
            url.set_query(Some(&query.join("&")));
        }
        url.to_string()
    }

    /// Requests made so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Sends one request: the bearer from the grant (a fresh one after a `401`, once), `429` as
    /// [`RemoteError::Throttled`], the run's cancellation honoured. `headers` such as
    /// `If-Match` or `Prefer`; `body` sent as JSON.
    pub async fn call(
        &self,
        ctx: &SyncContext<'_>,
        what: &str,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, RemoteError> {
        if !self.same_origin(url) {
            return Err(RemoteError::Failed(format!(
                "Microsoft Graph {what}: a link outside {} is not followed",
                self.base
            )));
        }
        let mut fresh = false;
        loop {
            let token = self.tokens.token(ctx, fresh).await?;
            let mut request = self
                .http
                .request(method.clone(), url)
                .bearer_auth(&token)
                .header(reqwest::header::ACCEPT, "application/json");
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let response = tokio::select! {
                () = ctx.cancel.cancelled() => return Err(RemoteError::Cancelled),
                r = request.send() => r.map_err(|e| {
                    RemoteError::Failed(format!("Microsoft Graph {what}: {}", e.without_url()))
                })?,
            };
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                let retry_after = crate::net::retry_after(&response).unwrap_or(DEFAULT_RETRY_AFTER);
                return Err(RemoteError::Throttled {
                    message: format!(
                        "Microsoft Graph throttled {what} (Retry-After {}s)",
                        retry_after.as_secs()
                    ),
                    retry_after,
                });
            }
            let body = tokio::select! {
                () = ctx.cancel.cancelled() => return Err(RemoteError::Cancelled),
                b = response.text() => b.map_err(|e| {
                    RemoteError::Failed(format!("Microsoft Graph {what}: {}", e.without_url()))
                })?,
            };
            let answer = Answer { status, body };
            if status == StatusCode::UNAUTHORIZED {
                if !fresh {
                    tracing::debug!(
                        what,
                        "Microsoft Graph refused the access token; refreshing it once"
                    );
                    fresh = true;
                    continue;
                }
                return Err(RemoteError::Failed(format!(
                    "Microsoft Graph refused the access token ({what}): {}",
                    error_message(&answer.body)
                )));
            }
            return Ok(answer);
        }
    }

    /// `GET url` read as `T`; any error answer fails.
    pub async fn get<T: DeserializeOwned>(
        &self,
        ctx: &SyncContext<'_>,
        what: &str,
        url: &str,
    ) -> Result<T, RemoteError> {
        self.call(ctx, what, Method::GET, url, &[], None)
            .await?
            .json(what)
    }

    /// One page of a collection or delta round at `url` (a first URL, a next link or a delta
    /// link), asking for `page_size` entries (`Prefer: odata.maxpagesize`). An expired delta
    /// is [`RemoteError::TokenExpired`].
    pub async fn page<T: DeserializeOwned>(
        &self,
        ctx: &SyncContext<'_>,
        what: &str,
        url: &str,
        page_size: u32,
    ) -> Result<GraphPage<T>, RemoteError> {
        let prefer = format!("odata.maxpagesize={page_size}");
        let answer = self
            .call(ctx, what, Method::GET, url, &[("Prefer", &prefer)], None)
            .await?;
        if !answer.status.is_success() && answer.delta_expired() {
            return Err(RemoteError::TokenExpired);
        }
        answer.json(what)
    }

    /// Every entry of a collection, following `@odata.nextLink`.
    pub async fn all<T: DeserializeOwned>(
        &self,
        ctx: &SyncContext<'_>,
        what: &str,
        url: &str,
    ) -> Result<Vec<T>, RemoteError> {
        let mut url = url.to_owned();
        let mut all = Vec::new();
        loop {
            let page: GraphPage<T> = self.get(ctx, what, &url).await?;
            all.extend(page.value);
            match page.next_link {
                Some(next) => url = next,
                None => return Ok(all),
            }
        }
    }

    /// The failure an error answer stands for: `Microsoft Graph {what} failed: 404 code:
    /// message`.
    pub fn failure(what: &str, answer: &Answer) -> RemoteError {
        RemoteError::Failed(format!(
            "Microsoft Graph {what} failed: {} {}",
            answer.status.as_u16(),
            error_message(&answer.body)
        ))
    }

    /// Whether `url` is on the base's scheme, host and port.
    fn same_origin(&self, url: &str) -> bool {
        match (url::Url::parse(url), url::Url::parse(&self.base)) {
            (Ok(url), Ok(base)) => url.origin() == base.origin(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::remote::RemoteFuture;

    struct NoTokens;
    impl TokenProvider for NoTokens {
        fn token<'a>(&'a self, _: &'a SyncContext<'a>, _: bool) -> RemoteFuture<'a, String> {
            Box::pin(async { Ok(String::new()) })
        }
    }

    #[test]
    fn urls_escape_ids_and_keep_the_base_path() {
        let g = Graph::new(Some("http://127.0.0.1:9/graph/"), Arc::new(NoTokens));
        assert_eq!(
            g.url(
                &["me", "contacts", "AAMk/a+b="],
                &[("$select", "id,displayName")]
            ),
            "http://127.0.0.1:9/graph/v1.0/me/contacts/AAMk%2Fa+b=?%24select=id%2CdisplayName"
        );
        let g = Graph::new(None, Arc::new(NoTokens));
        assert_eq!(
            g.url(&["me", "contactFolders"], &[]),
            "https://graph.microsoft.com/v1.0/me/contactFolders"
        );
        assert!(g.same_origin("https://graph.microsoft.com/v1.0/me/contacts/delta?$deltatoken=x"));
        assert!(!g.same_origin("https://evil.example/v1.0/me/contacts"));
    }

    #[test]
    fn expired_deltas_are_recognised_in_both_forms() {
        let gone = Answer {
            status: StatusCode::GONE,
            body: String::new(),
        };
        assert!(gone.delta_expired());
        let state = Answer {
            status: StatusCode::BAD_REQUEST,
            body: r#"{"error":{"code":"SyncStateNotFound","message":"x"}}"#.into(),
        };
        assert!(state.delta_expired());
        let resync = Answer {
            status: StatusCode::BAD_REQUEST,
            body: r#"{"error":{"code":"resyncRequired","message":"x"}}"#.into(),
        };
        assert!(resync.delta_expired());
        let other = Answer {
            status: StatusCode::NOT_FOUND,
            body: r#"{"error":{"code":"ErrorItemNotFound","message":"gone"}}"#.into(),
        };
        assert!(!other.delta_expired());
        assert_eq!(
            Graph::failure("read contact", &other).to_string(),
            "Microsoft Graph read contact failed: 404 ErrorItemNotFound: gone"
        );
    }

    #[test]
    fn links_become_cursors() {
        let page: GraphPage<serde_json::Value> = serde_json::from_value(serde_json::json!({
            "value": [{"id": "1"}],
            "@odata.nextLink": "https://g/v1.0/me/contacts/delta?$skiptoken=a"
        }))
        .expect("page");
        assert_eq!(
            page.next(),
            Next::More("https://g/v1.0/me/contacts/delta?$skiptoken=a".into())
        );
        let page: GraphPage<serde_json::Value> = serde_json::from_value(serde_json::json!({
            "value": [],
            "@odata.deltaLink": "https://g/v1.0/me/contacts/delta?$deltatoken=b"
        }))
        .expect("page");
        assert_eq!(
            page.next(),
            Next::Done(Some(
                "https://g/v1.0/me/contacts/delta?$deltatoken=b".into()
            ))
        );
    }
}
