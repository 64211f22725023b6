//! The `api` channel: Switchboard's generic HTTP channel for web sites, mobile apps and tests.
//!
//! - Inbound: `POST /webhooks/api/{channel}` with `Authorization: Bearer <inboundToken>` and
//!   `{"messageId", "from": {"id", "name", "email"?, "phone"?}, "text"}`. The token is compared
//!   in constant time (as SHA-256 digests, so not even its length leaks) before the body is
//!   read. `messageId` is the deduplication key.
//! - Outbound: operator messages are POSTed to `callbackUrl` as
//!   `{"chatId", "messageId", "to": {"id"}, "operator", "text", "at"}`, signed with
//!   `X-Switchboard-Signature: sha256=<hex HMAC-SHA256 of the body keyed by callbackSecret>`.
//!   A 2xx is delivered; 408, 429 (with `Retry-After`), 5xx and network errors are retried;
//!   any other status gives the message up.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::types::Secret;
use crate::connector::SyncFuture;
use crate::connector::{ConnectorError, SyncContext, SyncReport};
use crate::store::chat::OutboxItem;

use super::super::commands::Inbound;
use super::super::outbox::Failure;
use super::super::snapshot::ChannelSetup;

/// The header carrying the signature of a callback body.
pub const SIGNATURE_HEADER: &str = "x-switchboard-signature";
/// The largest inbound body accepted (413 beyond).
pub const MAX_BODY: usize = 64 * 1024;
/// The longest `messageId` and `from.id`.
const MAX_ID: usize = 256;

/// The body of `POST /webhooks/api/{channel}` (its schema is in the OpenAPI document).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ApiInbound")]
pub struct InboundBody {
    message_id: String,
    from: From,
    text: String,
}

/// The visitor who wrote an inbound message.
#[derive(Deserialize, schemars::JsonSchema)]
#[schemars(rename = "ApiInboundFrom")]
pub struct From {
    id: String,
    name: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
}

/// Whether the `Authorization` header value presents `expected` as a bearer token. An empty
/// configured token matches nothing.
pub fn token_matches(expected: &Secret, authorization: Option<&str>) -> bool {
    // The scheme is case-insensitive (RFC 9110).
    let Some((_, presented)) = authorization
        .and_then(|h| h.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
    else {
        return false;
    };
    if expected.expose().is_empty() {
        return false;
    }
    let a = Sha256::digest(presented.trim().as_bytes());
    let b = Sha256::digest(expected.expose().as_bytes());
    a.ct_eq(&b).into()
}

/// Parses an inbound body of `channel`; the error says what is wrong with it.
pub fn parse_inbound(channel: &str, body: &[u8]) -> Result<Inbound, String> {
    let body: InboundBody = serde_json::from_slice(body).map_err(|e| {
        format!(
            "invalid body: {e}; expected {{\"messageId\", \"from\": {{\"id\", \"name\", \"email\"?, \"phone\"?}}, \"text\"}}"
        )
    })?;
    let required = |field: &str, value: &str, max: usize| -> Result<(), String> {
        if value.trim().is_empty() {
            Err(format!("`{field}` must not be empty"))
        } else if value.len() > max {
            Err(format!("`{field}` is longer than {max} bytes"))
        } else {
            Ok(())
        }
    };
    required("messageId", &body.message_id, MAX_ID)?;
    required("from.id", &body.from.id, MAX_ID)?;
    required("text", &body.text, MAX_BODY)?;
    let name = if body.from.name.trim().is_empty() {
        body.from.id.clone()
    } else {
        body.from.name
    };
    Ok(Inbound {
        channel: channel.to_owned(),
        provider_id: body.message_id,
        contact_id: body.from.id,
        name,
        email: body.from.email.filter(|e| !e.trim().is_empty()),
        phone: body.from.phone.filter(|p| !p.trim().is_empty()),
        text: body.text,
    })
}

/// `sha256=<hex HMAC-SHA256 of body keyed by secret>`.
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutboundBody<'a> {
    chat_id: String,
    message_id: String,
    to: To<'a>,
    operator: Option<&'a str>,
    text: &'a str,
    at: String,
}

#[derive(Serialize)]
struct To<'a> {
    id: &'a str,
}

/// The JSON body POSTed to `callbackUrl` for an outgoing message.
pub fn outbound_body(item: &OutboxItem) -> Vec<u8> {
    serde_json::to_vec(&OutboundBody {
        chat_id: item.chat_id.to_string(),
        message_id: item.message_id.to_string(),
        to: To {
            id: &item.contact_external_id,
        },
        operator: item.author.as_deref(),
        text: &item.text,
        at: item.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
    .expect("the callback body serializes")
}

/// One delivery attempt of `item` to the channel's `callbackUrl`.
pub(crate) async fn deliver(
    http: &reqwest::Client,
    channel: &ChannelSetup,
    item: &OutboxItem,
) -> Result<(), Failure> {
    let Some((url, secret)) = &channel.callback else {
        return Err(Failure {
            error: format!(
                "channel {} has no callbackUrl, so operator messages cannot be delivered; \
                 they are kept in the chat's history",
                item.channel
            ),
            retry: false,
            after: None,
        });
    };
    let secret = secret.as_ref().map_err(|e| Failure {
        error: format!("the callbackSecret cannot be read: {e}"),
        retry: true,
        after: None,
    })?;
    post_signed(http, url, secret, outbound_body(item), "the callback").await
}

/// POSTs `body` as JSON signed with `secret` in `X-Switchboard-Signature`, and classifies the
/// answer for the outbox's retry policy. `what` names the receiver in errors; the URL is never
/// in them (its query may carry credentials).
pub(crate) async fn post_signed(
    http: &reqwest::Client,
    url: &url::Url,
    secret: &Secret,
    body: Vec<u8>,
    what: &str,
) -> Result<(), Failure> {
    post_signed_answer(http, url, secret, body, what).await.1
}

/// [`post_signed`], also answering the receiver's HTTP status (`None` when no answer came),
/// for callers that report it (a chat action's outcome, CH-07).
pub(crate) async fn post_signed_answer(
    http: &reqwest::Client,
    url: &url::Url,
    secret: &Secret,
    body: Vec<u8>,
    what: &str,
) -> (Option<u16>, Result<(), Failure>) {
    let sent = http
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, sign(secret, &body))
        .body(body)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) => {
            let failure = Failure {
                error: format!("{what} request failed: {}", e.without_url()),
                retry: true,
                after: None,
            };
            return (None, Err(failure));
        }
    };
    let status = response.status();
    if status.is_success() {
        return (Some(status.as_u16()), Ok(()));
    }
    let failure = Failure {
        error: format!("{what} answered {status}"),
        retry: super::super::outbox::retryable(status),
        after: super::super::outbox::retry_after(&response),
    };
    (Some(status.as_u16()), Err(failure))
}

/// The api channel's reconciler. The channel has no provider-side state to read, so
/// reconciling checks what its routes depend on: a non-empty inbound token, and a non-empty
/// callback secret when a callbackUrl is set.
pub struct Reconciler;

impl crate::connector::Connector for Reconciler {
    fn sync<'a>(&'a self, ctx: SyncContext<'a>) -> SyncFuture<'a> {
        Box::pin(async move {
            let non_empty = |pointer: &str, field: &str| match ctx.secrets.get(pointer) {
                Some(secret) if !secret.expose().trim().is_empty() => Ok(()),
                Some(_) => Err(ConnectorError::Failed(format!(
                    "the {field} secret is empty; no request could authenticate with it"
                ))),
                None => Err(ConnectorError::Failed(format!("{field} is not set"))),
            };
            non_empty("/inboundToken", "inboundToken")?;
            if ctx.secrets.contains_key("/callbackSecret") {
                non_empty("/callbackSecret", "callbackSecret")?;
            }
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
    fn only_the_exact_bearer_token_matches() {
        let token = secret("inbound-token-1");
        assert!(token_matches(&token, Some("Bearer inbound-token-1")));
        assert!(token_matches(&token, Some("bearer inbound-token-1")));
        assert!(!token_matches(&token, Some("Bearer inbound-token-2")));
        assert!(!token_matches(&token, Some("inbound-token-1")));
        assert!(!token_matches(&token, Some("Bearer ")));
        assert!(!token_matches(&token, None));
    }

    #[test]
    fn the_signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign(&secret("Jefe"), b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn inbound_bodies_are_checked_field_by_field() {
        let ok = parse_inbound(
            "web",
            br#"{"messageId":"m1","from":{"id":"u1","name":"Ann","email":"ann@example.com"},"text":"hi"}"#,
        )
        .expect("valid");
        assert_eq!(ok.provider_id, "m1");
        assert_eq!(ok.email.as_deref(), Some("ann@example.com"));
        assert_eq!(ok.phone, None);
        let nameless = parse_inbound(
            "web",
            br#"{"messageId":"m1","from":{"id":"u1","name":""},"text":"hi"}"#,
        )
        .expect("valid");
        assert_eq!(nameless.name, "u1");
        for (body, expected) in [
            (&b"not json"[..], "invalid body"),
            (br#"{"messageId":"m1","text":"hi"}"#, "missing field `from`"),
            (
                br#"{"messageId":" ","from":{"id":"u1","name":"A"},"text":"hi"}"#,
                "`messageId` must not be empty",
            ),
            (
                br#"{"messageId":"m1","from":{"id":"u1","name":"A"},"text":""}"#,
                "`text` must not be empty",
            ),
        ] {
            let error = parse_inbound("web", body).expect_err("invalid");
            assert!(error.contains(expected), "{error}");
        }
    }
}
