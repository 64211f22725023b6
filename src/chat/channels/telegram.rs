//! The Telegram channel (TG-01..TG-03), on the Bot API's documented wire format.
//!
//! - **Reconcile** (every [`super::RECONCILE_INTERVAL`] and on apply): `getMe` proves the token,
//!   then `getWebhookInfo` reads the live registration and compares it with ours,
//!   `{siteUrl}/webhooks/telegram/{channel}`:
//!   - no webhook, ours with other `allowed_updates`, or a URL on *our* host with another path
//!     (a renamed channel, an old route): `setWebhook` registers ours (drift repair, TG-02);
//!   - a URL on *another* host: another installation uses the bot. Switchboard does not steal it
//!     (TG-03): the object goes to `error` with that reason until an admin resolves it.
//!   - a deactivated channel: `deleteWebhook` (only when the webhook is ours).
//!   - the first run of a reconciler (daemon start, changed spec) calls `setWebhook` even when
//!     the URL matches: the registered `secret_token` cannot be read back to compare.
//! - **Inbound**: `POST /webhooks/telegram/{channel}` must carry
//!   `X-Telegram-Bot-Api-Secret-Token` equal to [`secret_token`], checked in constant time before
//!   the body is read; `update_id` is the deduplication key (a UNIQUE constraint in the store).
//! - **Outbound**: `sendMessage` to the contact's chat id; 429 honours
//!   `parameters.retry_after`, 5xx and network errors retry, other 4xx give up (bot blocked).
//!
//! The bot token is part of every Bot API URL (`/bot<token>/<method>`): no error message here
//! includes a URL, and reqwest errors are stripped of theirs.

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

/// The header Telegram puts the webhook's secret token in.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";
/// The largest update accepted (Telegram's are a few KB; 413 beyond).
pub const MAX_BODY: usize = 256 * 1024;
/// The update types Switchboard asks for: client messages only.
pub const ALLOWED_UPDATES: &[&str] = &["message"];
/// How long one Bot API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The webhook's `secret_token`: random-looking but stable, so a restart or a second replica
/// registers the same one. HMAC-SHA256 keyed by the bot token over the channel name, hex
/// (64 characters of Telegram's allowed `A-Za-z0-9_-`). Never logged.
pub fn secret_token(bot_token: &Secret, channel: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(bot_token.expose().as_bytes()).expect("HMAC takes any key");
    mac.update(b"switchboard/telegram-webhook/");
    mac.update(channel.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether the presented header equals the expected secret token (constant time, compared as
/// digests so not even the length leaks).
pub fn secret_matches(expected: &str, presented: Option<&str>) -> bool {
    let Some(presented) = presented else {
        return false;
    };
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

/// `{siteUrl}/webhooks/telegram/{channel}`.
pub fn webhook_url(site: &url::Url, channel: &str) -> String {
    format!(
        "{}/webhooks/telegram/{channel}",
        site.as_str().trim_end_matches('/')
    )
}

#[derive(Deserialize)]
struct Update {
    update_id: i64,
    #[serde(default)]
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    from: Option<User>,
    chat: Chat,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    photo: Option<serde_json::Value>,
    #[serde(default)]
    document: Option<serde_json::Value>,
    #[serde(default)]
    voice: Option<serde_json::Value>,
    #[serde(default)]
    sticker: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct User {
    first_name: String,
    #[serde(default)]
    last_name: Option<String>,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
}

/// Parses one update of `channel`. `Ok(None)` is an update that carries no client message
/// (Switchboard only asks for `message`, but a webhook set by hand may send more): it is
/// acknowledged and not stored.
pub fn parse_update(channel: &str, body: &[u8]) -> Result<Option<Inbound>, String> {
    let update: Update = serde_json::from_slice(body)
        .map_err(|e| format!("invalid Telegram update: {e}; expected an Update object"))?;
    let Some(message) = update.message else {
        return Ok(None);
    };
    // Replies go to `chat.id`; in a private chat it equals the user's id, which is what
    // identifies the contact.
    let name = match &message.from {
        Some(u) => match &u.last_name {
            Some(last) => format!("{} {last}", u.first_name),
            None => u.first_name.clone(),
        },
        None => message.chat.id.to_string(),
    };
    let kind = [
        ("photo", message.photo.is_some()),
        ("document", message.document.is_some()),
        ("voice message", message.voice.is_some()),
        ("sticker", message.sticker.is_some()),
    ]
    .into_iter()
    .find_map(|(k, present)| present.then_some(k));
    // Media are not downloaded: the history says what arrived, so nothing vanishes silently.
    let text = match (message.text, message.caption, kind) {
        (Some(text), _, _) => text,
        (None, Some(caption), Some(kind)) => format!("[{kind}] {caption}"),
        (None, Some(caption), None) => caption,
        (None, None, Some(kind)) => format!("[{kind}]"),
        (None, None, None) => "[a message Switchboard cannot show]".to_owned(),
    };
    Ok(Some(Inbound {
        channel: channel.to_owned(),
        provider_id: update.update_id.to_string(),
        contact_id: message.chat.id.to_string(),
        name,
        email: None,
        phone: None,
        text,
    }))
}

/// The Bot API's answer envelope.
#[derive(Deserialize)]
struct Answer<T> {
    ok: bool,
    #[serde(default = "none")]
    result: Option<T>,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

fn none<T>() -> Option<T> {
    None
}

#[derive(Deserialize)]
struct Parameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// A failed Bot API call, without the URL (it holds the token).
#[derive(Debug)]
pub struct CallError {
    /// What happened.
    pub message: String,
    /// Retrying may help (429, 5xx, network).
    pub retry: bool,
    /// `parameters.retry_after`.
    pub after: Option<Duration>,
}

/// A Bot API client for one bot.
pub struct Bot<'a> {
    http: &'a reqwest::Client,
    base: String,
    token: &'a Secret,
}

impl<'a> Bot<'a> {
    /// A client for the bot with `token` on the Bot API at `base`.
    pub fn new(http: &'a reqwest::Client, spec: &ChatChannelSpec, token: &'a Secret) -> Bot<'a> {
        let base = spec
            .api_base_url
            .as_ref()
            .map_or(api_base::TELEGRAM, |u| u.as_str())
            .trim_end_matches('/')
            .to_owned();
        Bot { http, base, token }
    }

    /// Calls `method` with a JSON body; answers its `result`.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        body: serde_json::Value,
    ) -> Result<T, CallError> {
        let url = format!("{}/bot{}/{method}", self.base, self.token.expose());
        let response = self
            .http
            .post(url)
            .timeout(CALL_TIMEOUT)
            .json(&body)
            .send()
            .await
            .map_err(|e| CallError {
                message: format!("{method} failed: {}", e.without_url()),
                retry: true,
                after: None,
            })?;
        let status = response.status();
        let header_after = crate::net::retry_after(&response).map(|d| d.as_secs());
        let answer: Answer<T> = response.json().await.map_err(|e| CallError {
            message: format!(
                "{method} answered {status} with a body that is not the Bot API's: {}",
                e.without_url()
            ),
            retry: status.is_server_error(),
            after: None,
        })?;
        match (answer.ok, answer.result) {
            (true, Some(result)) => Ok(result),
            _ => {
                let code = answer.error_code.unwrap_or(status.as_u16());
                let after = answer
                    .parameters
                    .and_then(|p| p.retry_after)
                    .or(header_after)
                    .map(Duration::from_secs);
                Err(CallError {
                    message: format!(
                        "{method} failed: {code} {}",
                        answer.description.unwrap_or_default()
                    ),
                    retry: code == 429 || code >= 500,
                    after,
                })
            }
        }
    }
}

/// One delivery attempt of an operator message through `sendMessage`.
pub(crate) async fn deliver(
    http: &reqwest::Client,
    channel: &ChannelSetup,
    item: &OutboxItem,
) -> Result<(), Failure> {
    let token = channel.secret("/token").map_err(|e| Failure {
        error: format!("the bot token cannot be read: {e}"),
        retry: true,
        after: None,
    })?;
    let bot = Bot::new(http, &channel.spec, token);
    let body = json!({"chat_id": item.contact_external_id, "text": item.text});
    bot.call::<serde_json::Value>("sendMessage", body)
        .await
        .map(drop)
        .map_err(|e| Failure {
            error: e.message,
            retry: e.retry,
            after: e.after,
        })
}

#[derive(Deserialize)]
struct WebhookInfo {
    #[serde(default)]
    url: String,
    #[serde(default)]
    allowed_updates: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Me {
    #[serde(default)]
    username: Option<String>,
}

/// Where our webhook is and what the live one is, decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Drift {
    /// Ours, as we want it.
    InPlace,
    /// Missing, or ours but stale: register ours.
    Register,
    /// Another installation's (another host): report, do not touch.
    Foreign(String),
}

/// Compares the live webhook with ours (TG-02, TG-03).
pub fn drift(ours: &str, live_url: &str, live_allowed: Option<&[String]>) -> Drift {
    if live_url.is_empty() {
        return Drift::Register;
    }
    let origin = |u: &str| {
        url::Url::parse(u)
            .ok()
            .map(|u| u.origin().ascii_serialization())
    };
    if live_url == ours {
        let wanted: Vec<&str> = ALLOWED_UPDATES.to_vec();
        let live: Option<Vec<&str>> = live_allowed.map(|a| a.iter().map(String::as_str).collect());
        // Telegram omits allowed_updates when they are the default (all but a few types).
        return if live.as_deref() == Some(&wanted[..]) {
            Drift::InPlace
        } else {
            Drift::Register
        };
    }
    match (origin(ours), origin(live_url)) {
        (Some(a), Some(b)) if a == b => Drift::Register,
        (_, Some(other)) => Drift::Foreign(other),
        _ => Drift::Foreign("an unparseable URL".to_owned()),
    }
}

/// A telegram channel's reconciler.
pub struct Reconciler {
    channel: String,
    spec: ChatChannelSpec,
    site: url::Url,
    http: reqwest::Client,
    /// Set once this reconciler has called `setWebhook`. `getWebhookInfo` cannot show the
    /// registered `secret_token`, so a URL that looks right may still carry another secret (a
    /// changed token, a registration by an older build); the first run registers regardless.
    registered: std::sync::atomic::AtomicBool,
}

/// Builds the reconciler of a telegram `ChatChannel`.
pub fn build(object: &Object, set: &ConfigSet) -> Result<Reconciler, String> {
    let spec = ChatChannelSpec::from_spec(&object.spec)
        .ok_or_else(|| format!("{} is not a ChatChannel", object.id()))?
        .clone();
    let http = crate::net::http_client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    Ok(Reconciler {
        channel: object.name.clone(),
        spec,
        site: super::site_url(set),
        http,
        registered: std::sync::atomic::AtomicBool::new(false),
    })
}

impl Reconciler {
    async fn reconcile(&self, token: &Secret) -> Result<SyncReport, ConnectorError> {
        let bot = Bot::new(&self.http, &self.spec, token);
        let failed = |e: CallError| ConnectorError::Failed(e.message);
        let me: Me = bot.call("getMe", json!({})).await.map_err(|e| {
            ConnectorError::Failed(format!(
                "{}; check the channel's bot token (TG-01)",
                e.message
            ))
        })?;
        let ours = webhook_url(&self.site, &self.channel);
        let info: WebhookInfo = bot
            .call("getWebhookInfo", json!({}))
            .await
            .map_err(failed)?;
        let bot_name = me.username.unwrap_or_else(|| "the bot".to_owned());
        if !self.spec.active {
            if info.url == ours {
                bot.call::<bool>("deleteWebhook", json!({}))
                    .await
                    .map_err(failed)?;
                tracing::info!(channel = %self.channel, "deactivated: the bot's webhook is removed");
            }
            return Ok(SyncReport::default());
        }
        let first_run = !self.registered.load(std::sync::atomic::Ordering::Relaxed);
        match drift(&ours, &info.url, info.allowed_updates.as_deref()) {
            Drift::InPlace if !first_run => Ok(SyncReport::default()),
            Drift::InPlace | Drift::Register => {
                if !info.url.is_empty() {
                    tracing::warn!(channel = %self.channel, "the bot's webhook drifted; registering it again");
                }
                bot.call::<bool>(
                    "setWebhook",
                    json!({
                        "url": ours,
                        "secret_token": secret_token(token, &self.channel),
                        "allowed_updates": ALLOWED_UPDATES,
                    }),
                )
                .await
                .map_err(failed)?;
                self.registered
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(SyncReport {
                    items_in: 0,
                    items_out: 1,
                })
            }
            Drift::Foreign(host) => Err(ConnectorError::Failed(format!(
                "foreign installation: @{bot_name}'s webhook points to {host}, not to this \
                 installation's siteUrl; Switchboard will not take the bot over (TG-03). Remove \
                 the other installation's webhook (or the bot from it), then run \
                 `switchboard sync ChatChannel/{}`",
                self.channel
            ))),
        }
    }
}

impl crate::connector::Connector for Reconciler {
    fn sync<'a>(&'a self, ctx: SyncContext<'a>) -> SyncFuture<'a> {
        Box::pin(async move {
            let token = ctx
                .secrets
                .get("/token")
                .ok_or_else(|| ConnectorError::Failed("the bot token is not set".into()))?;
            self.reconcile(token).await
        })
    }
}

/// Removes the webhook of a telegram channel that left the config, if it is ours, with the
/// secrets resolved when that config was applied. Best effort: the outcome is logged.
pub async fn retire(
    object: &Object,
    secrets: &std::collections::BTreeMap<String, Secret>,
    set: &ConfigSet,
) {
    let Ok(reconciler) = build(object, set) else {
        return;
    };
    let Some(token) = secrets.get("/token") else {
        return;
    };
    let bot = Bot::new(&reconciler.http, &reconciler.spec, token);
    let ours = webhook_url(&reconciler.site, &object.name);
    let outcome = match bot.call::<WebhookInfo>("getWebhookInfo", json!({})).await {
        Ok(info) if info.url == ours => bot
            .call::<bool>("deleteWebhook", json!({}))
            .await
            .map(|_| "removed"),
        Ok(_) => Ok("not ours; left alone"),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(what) => {
            tracing::info!(channel = %object.name, what, "removed channel: its Telegram webhook")
        }
        Err(e) => {
            tracing::warn!(channel = %object.name, error = %e.message, "removed channel: could not remove its Telegram webhook")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(value: &str) -> Secret {
        Secret::for_tests(value)
    }

    #[test]
    fn the_secret_token_is_stable_per_bot_and_channel_and_valid_for_telegram() {
        // REQ: TG-02
        let token = secret("123:ABC");
        let a = secret_token(&token, "bot");
        assert_eq!(a, secret_token(&token, "bot"));
        assert_ne!(a, secret_token(&token, "other"));
        assert_ne!(a, secret_token(&secret("123:ABD"), "bot"));
        assert!(a.len() <= 256 && a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(!a.contains("ABC"));
        assert!(secret_matches(&a, Some(&a)));
        assert!(!secret_matches(&a, Some("nope")));
        assert!(!secret_matches(&a, None));
    }

    #[test]
    fn drift_re_registers_our_host_and_reports_another_host() {
        // REQ: TG-02, TG-03
        let ours = "https://sb.example.com/webhooks/telegram/bot";
        let allowed = vec!["message".to_owned()];
        assert_eq!(drift(ours, ours, Some(&allowed)), Drift::InPlace);
        assert_eq!(drift(ours, ours, None), Drift::Register);
        assert_eq!(drift(ours, "", None), Drift::Register);
        assert_eq!(
            drift(ours, "https://sb.example.com/webhooks/telegram/old", None),
            Drift::Register
        );
        assert_eq!(
            drift(ours, "https://other.example.net/tg/hook", None),
            Drift::Foreign("https://other.example.net".into())
        );
        assert_eq!(
            drift(ours, "http://sb.example.com/webhooks/telegram/bot", None),
            Drift::Foreign("http://sb.example.com".into()),
            "another scheme is another origin"
        );
    }

    #[test]
    fn updates_become_inbound_messages_keyed_by_update_id() {
        // REQ: TG-01
        let m = parse_update(
            "bot",
            br#"{"update_id":42,"message":{"message_id":7,"from":{"id":1001,"is_bot":false,"first_name":"Ann","last_name":"Lee"},"chat":{"id":1001,"type":"private"},"date":1,"text":"hi"}}"#,
        )
        .expect("valid")
        .expect("a message");
        assert_eq!(
            (
                m.provider_id.as_str(),
                m.contact_id.as_str(),
                m.name.as_str(),
                m.text.as_str()
            ),
            ("42", "1001", "Ann Lee", "hi")
        );
        let photo = parse_update(
            "bot",
            br#"{"update_id":43,"message":{"message_id":8,"from":{"id":1001,"first_name":"Ann"},"chat":{"id":1001},"photo":[{"file_id":"x"}],"caption":"look"}}"#,
        )
        .expect("valid")
        .expect("a message");
        assert_eq!(photo.text, "[photo] look");
        assert_eq!(
            parse_update("bot", br#"{"update_id":44,"edited_message":{}}"#).expect("valid"),
            None
        );
        assert!(parse_update("bot", b"{}").is_err());
    }
}
