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
//!   manage the page (FB-01).
//!
//! Not built: the Handover Protocol (FB-03). A channel with `handover` set is `pending` with
//! that reason rather than routing threads an external bot owns.
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
use crate::engine::connector::SyncFuture;
use crate::engine::{ConnectorError, SyncContext, SyncReport};
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
}

#[derive(Deserialize)]
struct Event {
    sender: Party,
    #[serde(default)]
    message: Option<Message>,
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

/// Parses an authenticated webhook body into messages per page: `(pageId, message)` with the
/// message's channel left for the caller to fill in.
pub fn parse(body: &[u8]) -> Result<Vec<(String, Inbound)>, String> {
    let body: Body =
        serde_json::from_slice(body).map_err(|e| format!("invalid Messenger webhook body: {e}"))?;
    let mut found = Vec::new();
    for entry in body.entry {
        for event in entry.messaging {
            let Some(message) = event.message.filter(|m| !m.is_echo) else {
                continue;
            };
            let text = match (message.text, message.attachments.len()) {
                (Some(text), _) => text,
                (None, 0) => "[an empty message]".to_owned(),
                (None, n) => format!("[{n} attachment(s)]"),
            };
            found.push((
                entry.id.clone(),
                Inbound {
                    channel: String::new(),
                    provider_id: message.mid,
                    contact_id: event.sender.id.clone(),
                    name: event.sender.id,
                    email: None,
                    phone: None,
                    text,
                },
            ));
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
    let token = channel.secret("/pageAccessToken").map_err(|e| Failure {
        error: format!("the page access token cannot be read: {e}"),
        retry: true,
        after: None,
    })?;
    let response = http
        .post(graph_url(
            &channel.spec,
            "me/messages",
            &[("access_token", token.expose())],
        )?)
        .timeout(CALL_TIMEOUT)
        .json(&json!({
            "recipient": {"id": item.contact_external_id},
            "messaging_type": "RESPONSE",
            "message": {"text": item.text},
        }))
        .send()
        .await
        .map_err(|e| Failure {
            error: format!("the Send API request failed: {}", e.without_url()),
            retry: true,
            after: None,
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let error: serde_json::Value = response.json().await.unwrap_or_default();
    let code = error["error"]["code"].as_i64().unwrap_or_default();
    Err(Failure {
        error: format!(
            "the Send API answered {status} (Graph error {code}: {})",
            error["error"]["message"].as_str().unwrap_or_default()
        ),
        // 4 and 613 are Graph's rate limits; 2 a temporary outage.
        retry: status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || matches!(code, 2 | 4 | 613),
        after,
    })
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
    if spec.handover.is_some() {
        return Err(
            "the Messenger Handover Protocol (handover, FB-03) is not built yet (issue: chat)"
                .into(),
        );
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    Ok(Reconciler { spec, http })
}

impl crate::engine::Connector for Reconciler {
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
            Ok(SyncReport::default())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(value: &str) -> Secret {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("s"), value).expect("write");
        crate::config::types::SecretRef::File("s".into())
            .resolve(dir.path())
            .expect("resolves")
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
        assert_eq!(
            (
                found[0].1.provider_id.as_str(),
                found[0].1.contact_id.as_str(),
                found[0].1.text.as_str()
            ),
            ("m.1", "PSID1", "hi")
        );
    }
}
