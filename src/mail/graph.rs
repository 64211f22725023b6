//! Microsoft 365 through Microsoft Graph (EP-05): mail delta sync per folder and `sendMail`.
//!
//! One folder's sync is a delta round: `GET /v1.0/me/mailFolders/{id}/messages/delta`, then
//! each `@odata.nextLink` until a page carries the `@odata.deltaLink`, which the next round
//! starts from. Every page is committed with the link that follows it in one transaction
//! (`Store::commit_graph_page`), so a stop resumes where it left off and loses nothing.
//! `429` waits `Retry-After` (at most [`MAX_RETRY_AFTER`], a few times); a delta token the
//! service forgot (`410 Gone`, or the error code `syncStateNotFound`) starts a full round,
//! which stores nothing twice because a message already stored with the same
//! internetMessageId is skipped. A message with `hasAttachments` gets its attachments'
//! metadata from `GET /v1.0/me/messages/{id}/attachments?$select=name,contentType,size,isInline`
//! (never their content), before its page commits. An `@removed` entry (reason `deleted` or
//! `changed`: deleted, or moved out of the folder) marks the stored message removed and keeps
//! it — a decision made for history: a letter loaded into contacts' history stays there
//! whatever the mailbox does with it later, as mail of a mailbox removed from the config does.
//! A message reported in another folder (a move) takes that folder instead of being stored
//! again. Sending posts the outbox's MIME bytes (base64, `text/plain`) to
//! `POST /v1.0/me/sendMail`, so the Message-ID stays the one stored.
//!
//! This module must not run SQL (it calls `store::mail`), read secrets (it gets an access
//! token) or know manifests (it gets a [`GraphApi`]).

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::store::StoreError;
use crate::store::StoreHandle;
use crate::store::mail::{
    AttachmentMeta, Direction, GraphItem, GraphRemoval, MailAddress, NewEmail,
};

use super::mime::BODY_CAP;
use super::smtp::SendError;

/// Part of a send error when Graph refused the access token (the outbox refreshes it once).
pub const TOKEN_REFUSED: &str = "Microsoft Graph refused the access token";
/// Graph's base URL when the provider names none.
pub const DEFAULT_BASE_URL: &str = "https://graph.microsoft.com";
/// How many times one request is retried after `429 Too Many Requests`.
const MAX_THROTTLED: u32 = 5;
/// The longest `Retry-After` honoured in one wait; a longer one fails the run (the
/// scheduler's backoff takes over).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
/// Messages per page asked for (`Prefer: odata.maxpagesize`).
const PAGE_SIZE: u32 = 100;
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Where Graph is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphApi {
    /// Base URL without a trailing slash (`https://graph.microsoft.com`).
    pub base: String,
}

/// Why a Graph step failed. Messages carry the service's own words, never a token.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The request did not get an answer.
    #[error("Microsoft Graph {what}: {error}")]
    Transport {
        /// What was asked.
        what: String,
        /// Why.
        error: String,
    },
    /// The service refused the access token (401).
    #[error("Microsoft Graph refused the access token: {0}")]
    Unauthorized(String),
    /// The service answered an error.
    #[error("Microsoft Graph {what} failed: {status} {message}")]
    Service {
        /// What was asked.
        what: String,
        /// HTTP status.
        status: u16,
        /// The service's error code and message.
        message: String,
    },
    /// The delta token expired (410 / syncStateNotFound): start a full round.
    #[error("the delta token of {0} is no longer valid")]
    SyncStateNotFound(String),
    /// Throttled for longer than this run waits.
    #[error("Microsoft Graph throttled {what} (Retry-After {seconds}s)")]
    Throttled {
        /// What was asked.
        what: String,
        /// The service's Retry-After.
        seconds: u64,
    },
    /// A folder the mailbox lists is not in the account.
    #[error("the account has no mail folder named {}", .0.join(", "))]
    MissingFolders(Vec<String>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cancellation token fired; every committed page stays.
    #[error("interrupted")]
    Cancelled,
}

/// A Graph mail folder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailFolder {
    /// Graph's id.
    pub id: String,
    /// The name shown to users (stored as the folder name).
    pub display_name: String,
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta_link: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct GraphMessage {
    id: String,
    /// Present when the message left the folder: `{"reason": "deleted" | "changed"}`.
    #[serde(rename = "@removed")]
    removed: Option<RemovedEntry>,
    /// Whether it has (non-inline) attachments; their metadata is a separate request.
    has_attachments: bool,
    internet_message_id: Option<String>,
    subject: Option<String>,
    from: Option<Recipient>,
    to_recipients: Vec<Recipient>,
    cc_recipients: Vec<Recipient>,
    received_date_time: Option<DateTime<Utc>>,
    sent_date_time: Option<DateTime<Utc>>,
    body: Option<ItemBody>,
    is_read: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RemovedEntry {
    reason: Option<String>,
}

/// An attachment's metadata as `GET /me/messages/{id}/attachments?$select=...` lists it (its
/// content is never asked for).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct GraphAttachment {
    name: Option<String>,
    content_type: Option<String>,
    size: u64,
    is_inline: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Recipient {
    email_address: EmailAddress,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EmailAddress {
    name: Option<String>,
    address: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ItemBody {
    content_type: String,
    content: String,
}

impl Recipient {
    fn address(&self) -> Option<MailAddress> {
        Some(MailAddress {
            address: self.email_address.address.clone()?,
            name: self.email_address.name.clone().filter(|n| !n.is_empty()),
        })
    }
}

impl GraphMessage {
    fn into_email(self) -> NewEmail {
        let message_id = self
            .internet_message_id
            .as_deref()
            .map(|id| {
                id.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
            .filter(|id| !id.is_empty());
        let fingerprint = message_id
            .clone()
            .unwrap_or_else(|| format!("graph:{}", self.id));
        let (mut text, mut html) = (None, None);
        let mut truncated = false;
        if let Some(body) = self.body {
            let mut content = body.content;
            if content.len() > BODY_CAP {
                let mut cut = BODY_CAP;
                while !content.is_char_boundary(cut) {
                    cut -= 1;
                }
                content.truncate(cut);
                truncated = true;
            }
            if body.content_type.eq_ignore_ascii_case("html") {
                html = Some(content);
            } else {
                text = Some(content);
            }
        }
        NewEmail {
            direction: Direction::In,
            uid: None,
            message_id,
            fingerprint,
            from: self.from.as_ref().and_then(Recipient::address),
            to: self
                .to_recipients
                .iter()
                .filter_map(Recipient::address)
                .collect(),
            cc: self
                .cc_recipients
                .iter()
                .filter_map(Recipient::address)
                .collect(),
            subject: self.subject,
            date: self.sent_date_time,
            internal_date: self.received_date_time,
            size: 0,
            flags: if self.is_read {
                "\\Seen".into()
            } else {
                String::new()
            },
            text,
            html,
            truncated,
            attachments: Vec::new(),
        }
    }
}

/// A Graph client for one mailbox's access token.
pub struct GraphClient<'a> {
    api: &'a GraphApi,
    http: reqwest::Client,
    token: String,
    cancel: &'a CancellationToken,
}

impl<'a> GraphClient<'a> {
    /// A client that authenticates with `token`.
    pub fn new(api: &'a GraphApi, token: String, cancel: &'a CancellationToken) -> Self {
        GraphClient {
            api,
            http: crate::net::http_client_builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .unwrap_or_default(),
            token,
            cancel,
        }
    }

    /// Sends one request built by `build`, waiting out `429` with its `Retry-After`.
    async fn send(
        &self,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, GraphError> {
        let mut throttled = 0;
        loop {
            let response = build().bearer_auth(&self.token).send().await.map_err(|e| {
                GraphError::Transport {
                    what: what.to_owned(),
                    error: e.to_string(),
                }
            })?;
            if response.status() != StatusCode::TOO_MANY_REQUESTS {
                return Ok(response);
            }
            let seconds = crate::net::retry_after(&response).map_or(10, |d| d.as_secs());
            throttled += 1;
            if throttled > MAX_THROTTLED || Duration::from_secs(seconds) > MAX_RETRY_AFTER {
                return Err(GraphError::Throttled {
                    what: what.to_owned(),
                    seconds,
                });
            }
            tracing::info!(
                what,
                seconds,
                "Microsoft Graph throttled the request; waiting Retry-After"
            );
            tokio::select! {
                () = self.cancel.cancelled() => return Err(GraphError::Cancelled),
                () = tokio::time::sleep(Duration::from_secs(seconds)) => {}
            }
        }
    }

    /// The body of a successful answer, or the error it stands for.
    async fn json<T: serde::de::DeserializeOwned>(
        what: &str,
        response: reqwest::Response,
    ) -> Result<T, GraphError> {
        let status = response.status();
        let text = response.text().await.map_err(|e| GraphError::Transport {
            what: what.to_owned(),
            error: e.to_string(),
        })?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| GraphError::Service {
                what: what.to_owned(),
                status: status.as_u16(),
                message: format!("unreadable answer: {e}"),
            });
        }
        Err(error_of(what, status, &text))
    }

    /// Every mail folder of the account (following `@odata.nextLink`).
    pub async fn folders(&self) -> Result<Vec<MailFolder>, GraphError> {
        let mut url = format!("{}/v1.0/me/mailFolders?$top=100", self.api.base);
        let mut all = Vec::new();
        loop {
            let response = self
                .send("list mail folders", || self.http.get(&url))
                .await?;
            let page: Page<MailFolder> = Self::json("list mail folders", response).await?;
            all.extend(page.value);
            match page.next_link {
                Some(next) => url = next,
                None => return Ok(all),
            }
        }
    }

    /// Runs `folder`'s delta round from its stored link (or from the start) and commits
    /// each page. Returns how many messages were new.
    pub async fn sync_folder(
        &self,
        store: &StoreHandle,
        clock: &Clock,
        mailbox: &str,
        folder: &MailFolder,
        since: DateTime<Utc>,
        own: &[String],
    ) -> Result<u64, GraphError> {
        let (m, f) = (mailbox.to_owned(), folder.display_name.clone());
        let stored = store.call(move |s| s.graph_link(&m, &f)).await?;
        match self
            .round(store, clock, mailbox, folder, stored.clone(), since, own)
            .await
        {
            Err(GraphError::SyncStateNotFound(_)) if stored.is_some() => {
                tracing::info!(mailbox, folder = %folder.display_name, "the delta token expired; starting a full resync");
                self.round(store, clock, mailbox, folder, None, since, own)
                    .await
            }
            other => other,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn round(
        &self,
        store: &StoreHandle,
        clock: &Clock,
        mailbox: &str,
        folder: &MailFolder,
        from: Option<String>,
        since: DateTime<Utc>,
        own: &[String],
    ) -> Result<u64, GraphError> {
        let mut url = match from {
            Some(link) => link,
            None => {
                let mut url = url::Url::parse(&format!(
                    "{}/v1.0/me/mailFolders/{}/messages/delta",
                    self.api.base, folder.id
                ))
                .map_err(|e| GraphError::Transport {
                    what: "delta".into(),
                    error: e.to_string(),
                })?;
                url.query_pairs_mut().append_pair(
                    "$filter",
                    &format!("receivedDateTime ge {}", since.format("%Y-%m-%dT%H:%M:%SZ")),
                );
                url.to_string()
            }
        };
        let what = format!("delta of {}", folder.display_name);
        let mut new = 0;
        loop {
            if self.cancel.is_cancelled() {
                return Err(GraphError::Cancelled);
            }
            let response = self
                .send(&what, || {
                    self.http
                        .get(&url)
                        .header("Prefer", format!("odata.maxpagesize={PAGE_SIZE}"))
                })
                .await?;
            let page: Page<GraphMessage> = match Self::json(&what, response).await {
                Err(GraphError::Service { status: 410, .. }) => {
                    return Err(GraphError::SyncStateNotFound(folder.display_name.clone()));
                }
                Err(GraphError::Service { message, .. })
                    if message.starts_with("syncStateNotFound") =>
                {
                    return Err(GraphError::SyncStateNotFound(folder.display_name.clone()));
                }
                other => other?,
            };
            let mut items = Vec::new();
            let mut removals = Vec::new();
            for message in page.value {
                if let Some(entry) = message.removed {
                    removals.push(GraphRemoval {
                        id: message.id,
                        reason: entry.reason.unwrap_or_else(|| "deleted".into()),
                    });
                    continue;
                }
                let attachments = if message.has_attachments {
                    self.attachments(&message.id).await?
                } else {
                    Vec::new()
                };
                let id = message.id.clone();
                let mut email = message.into_email();
                email.attachments = attachments;
                items.push(GraphItem { id, email });
            }
            let (link, complete) = match (page.next_link, page.delta_link) {
                (Some(next), _) => (next, false),
                (None, Some(delta)) => (delta, true),
                (None, None) => {
                    return Err(GraphError::Service {
                        what,
                        status: 200,
                        message:
                            "a delta page carried neither @odata.nextLink nor @odata.deltaLink"
                                .into(),
                    });
                }
            };
            let (m, f, l, own) = (
                mailbox.to_owned(),
                folder.display_name.clone(),
                link.clone(),
                own.to_vec(),
            );
            let at = clock.now();
            let committed = store
                .call(move |s| {
                    s.commit_graph_page(&m, &f, &items, &removals, Some(&l), complete, &own, at)
                })
                .await?;
            if committed.removed > 0 {
                tracing::info!(
                    mailbox,
                    folder = %folder.display_name,
                    removed = committed.removed,
                    "messages removed on the server are marked removed and kept"
                );
            }
            new += committed.new;
            if complete {
                return Ok(new);
            }
            url = link;
        }
    }

    /// The metadata of a message's attachments (name, content type, size; never the
    /// content), following `@odata.nextLink`. Inline attachments (images in the HTML body) are
    /// left out, as Graph's `hasAttachments` leaves them out.
    async fn attachments(&self, message: &str) -> Result<Vec<AttachmentMeta>, GraphError> {
        let bad = |e: String| GraphError::Transport {
            what: "list attachments".into(),
            error: e,
        };
        let mut url = url::Url::parse(&format!("{}/v1.0/me/messages", self.api.base))
            .map_err(|e| bad(e.to_string()))?;
        // Graph ids are base64 and may hold `/`, `+` and `=`: one escaped path segment.
        url.path_segments_mut()
            .map_err(|()| bad("the Graph base URL cannot take a path".into()))?
            .push(message)
            .push("attachments");
        url.query_pairs_mut()
            .append_pair("$select", "name,contentType,size,isInline");
        let mut url = url.to_string();
        let what = "list attachments";
        let mut all = Vec::new();
        loop {
            let response = self.send(what, || self.http.get(&url)).await?;
            let page: Page<GraphAttachment> = Self::json(what, response).await?;
            all.extend(page.value.into_iter().filter(|a| !a.is_inline).map(|a| {
                AttachmentMeta {
                    name: a.name.filter(|n| !n.is_empty()),
                    content_type: a
                        .content_type
                        .filter(|t| !t.is_empty())
                        .unwrap_or_else(|| "application/octet-stream".into()),
                    size: a.size,
                }
            }));
            match page.next_link {
                Some(next) => url = next,
                None => return Ok(all),
            }
        }
    }

    /// Sends `raw` (an RFC 5322 message) with `POST /v1.0/me/sendMail`; Graph saves it in
    /// Sent Items.
    pub async fn send_mail(&self, raw: &[u8]) -> Result<(), SendError> {
        let body = base64::engine::general_purpose::STANDARD.encode(raw);
        let url = format!("{}/v1.0/me/sendMail", self.api.base);
        let response = self
            .send("sendMail", || {
                self.http
                    .post(&url)
                    .header(reqwest::header::CONTENT_TYPE, "text/plain")
                    .body(body.clone())
            })
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e @ (GraphError::Transport { .. } | GraphError::Throttled { .. })) => {
                return Err(SendError::Temporary(e.to_string()));
            }
            Err(e) => return Err(SendError::Temporary(e.to_string())),
        };
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let error = error_of("sendMail", status, &text).to_string();
        if status.is_server_error() {
            Err(SendError::Temporary(error))
        } else {
            Err(SendError::Permanent(error))
        }
    }
}

/// Graph's words for an error answer: `code: message` from its `{"error": {"code",
/// "message"}}` body, else the body's first 200 characters. Shared with the contact and calendar
/// sync's Graph client (`sync::graph`).
pub fn error_message(body: &str) -> String {
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Envelope {
        error: Detail,
    }
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Detail {
        code: String,
        message: String,
    }
    let detail = serde_json::from_str::<Envelope>(body)
        .map(|e| e.error)
        .unwrap_or_default();
    if detail.code.is_empty() {
        body.chars().take(200).collect()
    } else {
        format!("{}: {}", detail.code, detail.message)
    }
}

/// The error a non-2xx answer stands for, with Graph's `{"error": {"code", "message"}}`.
fn error_of(what: &str, status: StatusCode, body: &str) -> GraphError {
    let message = error_message(body);
    if status == StatusCode::UNAUTHORIZED {
        return GraphError::Unauthorized(message);
    }
    GraphError::Service {
        what: what.to_owned(),
        status: status.as_u16(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_graph_message_becomes_an_email_keyed_by_its_internet_message_id() {
        let m: GraphMessage = serde_json::from_value(serde_json::json!({
            "id": "AAMk1",
            "internetMessageId": "<abc@example.com>",
            "subject": "Hi",
            "from": {"emailAddress": {"name": "Bob", "address": "bob@example.com"}},
            "toRecipients": [{"emailAddress": {"name": "", "address": "me@example.com"}}],
            "receivedDateTime": "2026-01-02T03:04:05Z",
            "body": {"contentType": "html", "content": "<p>Hi</p>"},
            "isRead": true
        }))
        .expect("message");
        let e = m.into_email();
        assert_eq!(e.fingerprint, "abc@example.com");
        assert_eq!(e.message_id.as_deref(), Some("abc@example.com"));
        assert_eq!(e.html.as_deref(), Some("<p>Hi</p>"));
        assert_eq!(e.to[0].name, None);
        assert_eq!(e.flags, "\\Seen");
    }

    #[test]
    fn removed_entries_and_attachment_flags_are_read() {
        let page: Page<GraphMessage> = serde_json::from_value(serde_json::json!({
            "value": [
                {"id": "AAMk1", "@removed": {"reason": "changed"}},
                {"id": "AAMk2", "hasAttachments": true, "internetMessageId": "<x@y>"}
            ],
            "@odata.deltaLink": "https://graph.example/delta?$deltatoken=1"
        }))
        .expect("page");
        assert_eq!(
            page.value[0]
                .removed
                .as_ref()
                .and_then(|r| r.reason.as_deref()),
            Some("changed")
        );
        assert!(page.value[1].removed.is_none());
        assert!(page.value[1].has_attachments);
    }

    #[test]
    fn sync_state_not_found_and_401_are_told_apart() {
        let e = error_of(
            "delta",
            StatusCode::BAD_REQUEST,
            r#"{"error":{"code":"syncStateNotFound","message":"gone"}}"#,
        );
        assert!(
            matches!(e, GraphError::Service { ref message, .. } if message.starts_with("syncStateNotFound"))
        );
        assert!(matches!(
            error_of("x", StatusCode::UNAUTHORIZED, "{}"),
            GraphError::Unauthorized(_)
        ));
    }
}
