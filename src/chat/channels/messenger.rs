//! The Facebook Messenger channel (FB-01, FB-04), on the Graph API's documented wire format.
//!
//! - **Verification**: `GET /webhooks/messenger?hub.mode=subscribe&hub.verify_token=…&
//!   hub.challenge=…` echoes the challenge when the token is one of the channels' `verifyToken`.
//! - **Inbound**: `POST /webhooks/messenger` must carry `X-Hub-Signature-256: sha256=<hex
//!   HMAC-SHA256 of the raw body keyed by the app secret>`, checked before the body is parsed.
//!   One app may serve several pages, so the body is accepted when it matches the app secret
//!   of at least one channel, and each `entry[]` is routed by its page id (`entry.id`) to the
//!   channel of that page *among the channels whose secret matched*. `message.mid` is the
//!   deduplication key; echoes of our own messages are skipped.
//! - **Outbound**: the Send API, `POST /{version}/me/messages?access_token=…` with
//!   `{"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text"}}`.
//! - **Reconcile**: `GET /{version}/{pageId}?fields=name` with the page token proves the app may
//!   manage the page (FB-01); `GET /{version}/app` names our app and
//!   `GET /{version}/{pageId}/subscribed_apps` lists the apps receiving the page's webhooks: any
//!   other app (besides the handover's primary receiver) is a conflict — one page, one
//!   installation, the last configured one receiving the messages (FB-02) — and the channel
//!   goes to `error` saying so instead of silently losing messages.
//! - **Handover Protocol** (FB-03), with `handover: {primaryReceiverAppId}`: the bot (the
//!   primary receiver) owns every thread until it passes control. Messages of a thread it owns,
//!   and `standby` events (messages we see as the secondary receiver), are stored as history
//!   with no operator and never routed; a `pass_thread_control` to another app than the primary
//!   (us) opens a chat and routes it like any other; a `take_thread_control`, or control passed
//!   back to the primary, returns the thread to the bot. When a chat on a thread passed to us
//!   completes (by its operator or the completion timeout), Switchboard passes the thread back
//!   itself: `POST /{version}/me/pass_thread_control?access_token=…` with
//!   `{"recipient": {"id": PSID}, "target_app_id": primaryReceiverAppId, "metadata"}`, queued
//!   durably with the completion and made by the outbox task after the chat's last replies
//!   (retried on 429, 5xx and Graph's rate limits); the thread is the bot's from then on.
//!
//! The page token travels in the query string: no message here includes a URL.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::kinds::{ChatChannelSpec, api_base};
use crate::config::types::Secret;
use crate::config::{ConfigSet, KindSpec, Object};
use crate::connector::SyncFuture;
use crate::connector::{ConnectorError, SyncContext, SyncReport};
use crate::store::chat::OutboxItem;

use super::super::commands::Inbound;
use super::super::outbox::Failure;
use super::super::snapshot::ChannelSetup;

/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// The largest webhook body accepted.
pub const MAX_BODY: usize = 512 * 1024;
/// The Graph API version called.
pub const GRAPH_VERSION: &str = "v19.0";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `header` is `sha256=<hex HMAC-SHA256 of body keyed by app_secret>` (constant time).
pub fn signature_matches(app_secret: &Secret, body: &[u8], header: Option<&str>) -> bool {
    let Some(presented) = header
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let mut mac =
        Hmac::<Sha256>::new_from_slice(app_secret.expose().as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&presented).is_ok()
}

/// Whether `presented` is `expected` (constant time, as digests).
pub fn token_matches(expected: &Secret, presented: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.expose().as_bytes());
    !expected.expose().is_empty() && bool::from(a.ct_eq(&b))
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    id: String,
    #[serde(default)]
    messaging: Vec<Event>,
    #[serde(default)]
    standby: Vec<Event>,
}

#[derive(Deserialize)]
struct Event {
    sender: Party,
    #[serde(default)]
    timestamp: i64,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    pass_thread_control: Option<PassThreadControl>,
    #[serde(default)]
    take_thread_control: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct PassThreadControl {
    new_owner_app_id: serde_json::Value,
    #[serde(default)]
    metadata: Option<String>,
}

/// One event of a Messenger webhook, for the page it came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A message in a thread (its `channel` left for the caller to fill in).
    Message(Inbound),
    /// A message seen in standby: the thread belongs to another app (FB-03).
    Standby(Inbound),
    /// Thread control was passed to the app `to` (`pass_thread_control`).
    Passed {
        /// The contact's page-scoped id.
        psid: String,
        /// The new owner's app id.
        to: String,
        /// The deduplication key of the event.
        event_id: String,
        /// What the passing app said.
        metadata: Option<String>,
    },
    /// The primary receiver took the thread back (`take_thread_control`).
    Taken {
        /// The contact's page-scoped id.
        psid: String,
    },
}

#[derive(Deserialize)]
struct Party {
    id: String,
}

#[derive(Deserialize)]
struct Message {
    mid: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    is_echo: bool,
    #[serde(default)]
    attachments: Vec<serde_json::Value>,
}

fn inbound(sender: &str, message: Message) -> Inbound {
    let text = match (message.text, message.attachments.len()) {
        (Some(text), _) => text,
        (None, 0) => "[an empty message]".to_owned(),
        (None, n) => format!("[{n} attachment(s)]"),
    };
    Inbound {
        channel: String::new(),
        provider_id: message.mid,
        contact_id: sender.to_owned(),
        name: sender.to_owned(),
        email: None,
        phone: None,
        text,
    }
}

/// Parses an authenticated webhook body into events per page: `(pageId, event)`. Echoes of
/// our own messages, reads and deliveries are skipped.
pub fn parse(body: &[u8]) -> Result<Vec<(String, Received)>, String> {
    let body: Body =
        serde_json::from_slice(body).map_err(|e| format!("invalid Messenger webhook body: {e}"))?;
    let mut found = Vec::new();
    for entry in body.entry {
        for event in entry.messaging {
            let psid = event.sender.id;
            let received = if let Some(message) = event.message {
                if message.is_echo {
                    continue;
                }
                Received::Message(inbound(&psid, message))
            } else if let Some(pass) = event.pass_thread_control {
                let to = match pass.new_owner_app_id {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                Received::Passed {
                    event_id: format!("handover:{psid}:{}:{to}", event.timestamp),
                    psid,
                    to,
                    metadata: pass.metadata.filter(|m| !m.trim().is_empty()),
                }
            } else if event.take_thread_control.is_some() {
                Received::Taken { psid }
            } else {
                continue;
            };
            found.push((entry.id.clone(), received));
        }
        for event in entry.standby {
            if let Some(message) = event.message.filter(|m| !m.is_echo) {
                found.push((
                    entry.id.clone(),
                    Received::Standby(inbound(&event.sender.id, message)),
                ));
            }
        }
    }
    Ok(found)
}

fn base(spec: &ChatChannelSpec) -> String {
    spec.api_base_url
        .as_ref()
        .map_or(api_base::GRAPH, |u| u.as_str())
        .trim_end_matches('/')
        .to_owned()
}

/// `{apiBaseUrl}/{version}/{path}?pairs`.
fn graph_url(
    spec: &ChatChannelSpec,
    path: &str,
    pairs: &[(&str, &str)],
) -> Result<url::Url, Failure> {
    let mut url =
        url::Url::parse(&format!("{}/{GRAPH_VERSION}/{path}", base(spec))).map_err(|e| {
            Failure {
                error: format!("the Graph API URL is invalid: {e}"),
                retry: false,
                after: None,
            }
        })?;
    url.query_pairs_mut().extend_pairs(pairs);
    Ok(url)
}

/// One delivery attempt through the Send API.
pub(crate) async fn deliver(
    http: &reqwest::Client,
    channel: &ChannelSetup,
    item: &OutboxItem,
) -> Result<(), Failure> {
    let body = json!({
        "recipient": {"id": item.contact_external_id},
        "messaging_type": "RESPONSE",
        "message": {"text": item.text},
    });
    post_to_graph(http, channel, "me/messages", "the Send API", &body).await
}

/// POSTs `body` to the page's Graph `path` with its access token; `what` names the call in
/// errors (which never carry the URL: it holds the token).
async fn post_to_graph(
    http: &reqwest::Client,
    channel: &ChannelSetup,
    path: &str,
    what: &str,
    body: &serde_json::Value,
) -> Result<(), Failure> {
    let token = channel.secret("/pageAccessToken").map_err(|e| Failure {
        error: format!("the page access token cannot be read: {e}"),
        retry: true,
        after: None,
    })?;
    let response = http
        .post(graph_url(
            &channel.spec,
            path,
            &[("access_token", token.expose())],
        )?)
        .timeout(CALL_TIMEOUT)
        .json(body)
        .send()
        .await
        .map_err(|e| Failure {
            error: format!("the {what} request failed: {}", e.without_url()),
            retry: true,
            after: None,
        })?;
    if response.status().is_success() {
        return Ok(());
    }
    Err(graph_failure(what, response).await)
}

/// What a Graph error answer means for the outbox: Graph's message and code (never the URL,
/// which carries the token), retried on 5xx, 429 and Graph's rate-limit and outage codes.
async fn graph_failure(what: &str, response: reqwest::Response) -> Failure {
    let status = response.status();
    let after = super::super::outbox::retry_after(&response);
    let error: serde_json::Value = response.json().await.unwrap_or_default();
    let code = error["error"]["code"].as_i64().unwrap_or_default();
    Failure {
        error: format!(
            "{what} answered {status} (Graph error {code}: {})",
            error["error"]["message"].as_str().unwrap_or_default()
        ),
        // 4 and 613 are Graph's rate limits; 2 a temporary outage.
        retry: status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || matches!(code, 2 | 4 | 613),
        after,
    }
}

/// What the bot is told when a thread comes back (`metadata` of `pass_thread_control`).
pub const HANDBACK_METADATA: &str = "switchboard: the chat with an operator was completed";

/// The body of Graph's `POST /{version}/me/pass_thread_control`: the thread (`recipient.id`,
/// the contact's PSID), the app that gets it and a note for that app. Graph documents
/// `target_app_id` as a number; an id that is not one is sent as written.
pub fn pass_thread_control_body(psid: &str, target_app_id: &str) -> serde_json::Value {
    let target = target_app_id
        .parse::<u64>()
        .map_or_else(|_| json!(target_app_id), |id| json!(id));
    json!({
        "recipient": {"id": psid},
        "target_app_id": target,
        "metadata": HANDBACK_METADATA,
    })
}

/// One attempt to pass the thread of `psid` back to the channel's primary receiver (FB-03).
pub(crate) async fn pass_thread_control(
    http: &reqwest::Client,
    channel: &ChannelSetup,
    psid: &str,
) -> Result<(), Failure> {
    let Some(handover) = &channel.spec.handover else {
        return Err(Failure {
            error: "the channel no longer has a handover; the thread stays with Switchboard".into(),
            retry: false,
            after: None,
        });
    };
    let body = pass_thread_control_body(psid, &handover.primary_receiver_app_id);
    post_to_graph(
        http,
        channel,
        "me/pass_thread_control",
        "pass_thread_control",
        &body,
    )
    .await
}

/// A messenger channel's reconciler.
pub struct Reconciler {
    spec: ChatChannelSpec,
    http: reqwest::Client,
}

/// Builds the reconciler of a facebookMessenger `ChatChannel`, or says why it is pending.
pub fn build(object: &Object, _set: &ConfigSet) -> Result<Reconciler, String> {
    let spec = ChatChannelSpec::from_spec(&object.spec)
        .ok_or_else(|| format!("{} is not a ChatChannel", object.id()))?
        .clone();
    let http = crate::net::http_client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    Ok(Reconciler { spec, http })
}

#[derive(Deserialize)]
struct App {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Apps {
    #[serde(default)]
    data: Vec<App>,
}

impl Reconciler {
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: &Secret,
    ) -> Result<T, ConnectorError> {
        let failed = ConnectorError::Failed;
        let url = graph_url(&self.spec, path, &[("access_token", token.expose())])
            .map_err(|f| failed(f.error))?;
        let response = self
            .http
            .get(url)
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|e| failed(format!("cannot reach the Graph API: {}", e.without_url())))?;
        let status = response.status();
        if !status.is_success() {
            return Err(failed(format!(
                "the Graph API answered {status} to GET /{path}"
            )));
        }
        response
            .json()
            .await
            .map_err(|e| failed(format!("the Graph API's answer to GET /{path}: {e}")))
    }

    /// FB-02: the page's webhooks go to every subscribed app; another installation's app
    /// means one of the two silently misses messages. Reported as a conflict.
    async fn check_subscriptions(&self, page: &str, token: &Secret) -> Result<(), ConnectorError> {
        let ours: App = self.get("app", token).await?;
        let apps: Apps = self.get(&format!("{page}/subscribed_apps"), token).await?;
        let primary = self
            .spec
            .handover
            .as_ref()
            .map(|h| h.primary_receiver_app_id.as_str());
        let others: Vec<String> = apps
            .data
            .iter()
            .filter(|a| a.id != ours.id && Some(a.id.as_str()) != primary)
            .map(|a| match &a.name {
                Some(name) => format!("{name} ({})", a.id),
                None => a.id.clone(),
            })
            .collect();
        if !others.is_empty() {
            return Err(ConnectorError::Failed(format!(
                "conflict: page {page} is also subscribed by {}; a page serves one installation \
                 and the last one configured receives its messages (FB-02). Unsubscribe the \
                 other app from the page (or remove this channel), then run \
                 `switchboard sync ChatChannel/<name>`",
                others.join(", ")
            )));
        }
        if !apps.data.iter().any(|a| a.id == ours.id) {
            return Err(ConnectorError::Failed(format!(
                "the app is not subscribed to page {page}, so no message reaches Switchboard; \
                 subscribe it (POST /{page}/subscribed_apps) and sync again"
            )));
        }
        Ok(())
    }
}

impl crate::connector::Connector for Reconciler {
    fn sync<'a>(&'a self, ctx: SyncContext<'a>) -> SyncFuture<'a> {
        Box::pin(async move {
            let failed = ConnectorError::Failed;
            let token = ctx
                .secrets
                .get("/pageAccessToken")
                .ok_or_else(|| failed("pageAccessToken is not set".into()))?;
            let page = self
                .spec
                .page_id
                .as_deref()
                .ok_or_else(|| failed("pageId is not set".into()))?;
            let response = self
                .http
                .get(
                    graph_url(
                        &self.spec,
                        page,
                        &[("fields", "name"), ("access_token", token.expose())],
                    )
                    .map_err(|f| failed(f.error))?,
                )
                .timeout(CALL_TIMEOUT)
                .send()
                .await
                .map_err(|e| failed(format!("cannot reach the Graph API: {}", e.without_url())))?;
            let status = response.status();
            if !status.is_success() {
                return Err(failed(format!(
                    "the Graph API refused page {page} with this pageAccessToken ({status}); the \
                     app must be allowed to manage the page (FB-01)"
                )));
            }
            self.check_subscriptions(page, token).await?;
            Ok(SyncReport::default())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(value: &str) -> Secret {
        Secret::for_tests(value)
    }

    #[test]
    fn the_signature_is_the_hex_hmac_sha256_of_the_raw_body() {
        // REQ: FB-04 (RFC 4231 test case 2 as the reference HMAC)
        let key = secret("Jefe");
        let body = b"what do ya want for nothing?";
        let good = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert!(signature_matches(&key, body, Some(good)));
        assert!(!signature_matches(
            &key,
            b"what do ya want for nothing!",
            Some(good)
        ));
        assert!(!signature_matches(&key, body, Some("sha1=abc")));
        assert!(!signature_matches(&key, body, None));
    }

    #[test]
    fn messages_are_read_per_page_and_echoes_skipped() {
        // REQ: FB-01, FB-04
        let body = br#"{"object":"page","entry":[{"id":"111","time":1,"messaging":[
            {"sender":{"id":"PSID1"},"recipient":{"id":"111"},"timestamp":1,"message":{"mid":"m.1","text":"hi"}},
            {"sender":{"id":"111"},"recipient":{"id":"PSID1"},"timestamp":2,"message":{"mid":"m.2","text":"echo","is_echo":true}},
            {"sender":{"id":"PSID1"},"recipient":{"id":"111"},"timestamp":3,"read":{"watermark":1}}]}]}"#;
        let found = parse(body).expect("valid");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "111");
        let Received::Message(m) = &found[0].1 else {
            panic!("a message: {:?}", found[0].1);
        };
        assert_eq!(
            (
                m.provider_id.as_str(),
                m.contact_id.as_str(),
                m.text.as_str()
            ),
            ("m.1", "PSID1", "hi")
        );
    }

    #[test]
    fn a_thread_goes_back_to_the_primary_receiver_named_by_number() {
        // REQ: FB-03 (Graph's documented body: recipient.id, target_app_id, metadata)
        assert_eq!(
            pass_thread_control_body("P1", "263902037430900"),
            json!({"recipient": {"id": "P1"}, "target_app_id": 263902037430900_u64,
                   "metadata": HANDBACK_METADATA})
        );
        assert_eq!(
            pass_thread_control_body("P1", "bot-app")["target_app_id"],
            "bot-app"
        );
    }

    #[test]
    fn handover_and_standby_events_are_read() {
        // REQ: FB-03
        let body = br#"{"object":"page","entry":[{"id":"111","time":1,
            "messaging":[
              {"sender":{"id":"P1"},"recipient":{"id":"111"},"timestamp":5,"pass_thread_control":{"new_owner_app_id":"263902037430900","metadata":"needs a human"}},
              {"sender":{"id":"P2"},"recipient":{"id":"111"},"timestamp":6,"take_thread_control":{"previous_owner_app_id":"1","metadata":""}}],
            "standby":[{"sender":{"id":"P3"},"recipient":{"id":"111"},"timestamp":7,"message":{"mid":"m.9","text":"bot talk"}}]}]}"#;
        let found = parse(body).expect("valid");
        assert_eq!(found.len(), 3);
        assert_eq!(
            found[0].1,
            Received::Passed {
                psid: "P1".into(),
                to: "263902037430900".into(),
                event_id: "handover:P1:5:263902037430900".into(),
                metadata: Some("needs a human".into()),
            }
        );
        assert_eq!(found[1].1, Received::Taken { psid: "P2".into() });
        assert!(matches!(&found[2].1, Received::Standby(m) if m.provider_id == "m.9"));
    }
}
