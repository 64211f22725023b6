//! Chat kinds: `ChatQueue`, `ChatChannel`, `ChatAction`, `QuickReply`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::yes;
use crate::config::types::{Duration, HttpUrl, LanguageTag, SecretRef};

/// How a queue distributes new chats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Routing {
    /// Offer to every available operator; the first to accept takes it (CH-03).
    ToAll,
    /// Assign to the operator with the fewest chats in work (CH-04).
    LeastBusy,
}

/// A member of a queue: a user, or every user holding a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum OperatorRef {
    /// A user by name.
    User(String),
    /// Every user with this role.
    Role(String),
}

/// A queue of chats with its routing rule and operators (CH-02).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChatQueueSpec {
    /// Human-readable title.
    pub title: String,
    /// Distribution rule.
    pub routing: Routing,
    /// Auto-complete a chat this long after the last operator message; absent = never (CH-05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_timeout: Option<Duration>,
    /// Operators, as users and/or roles.
    #[serde(default)]
    pub operators: Vec<OperatorRef>,
}

/// The messaging service behind a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ChannelProvider {
    /// Telegram Bot API.
    Telegram,
    /// Facebook Messenger (Graph API).
    FacebookMessenger,
    /// WhatsApp through Twilio.
    Whatsapp,
    /// Switchboard's generic HTTP channel.
    Api,
}

impl ChannelProvider {
    /// The name used in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelProvider::Telegram => "telegram",
            ChannelProvider::FacebookMessenger => "facebookMessenger",
            ChannelProvider::Whatsapp => "whatsapp",
            ChannelProvider::Api => "api",
        }
    }
}

/// Messenger Handover Protocol: an external bot owns the thread until it passes control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Handover {
    /// App ID of the primary receiver (the bot platform).
    pub primary_receiver_app_id: String,
}

/// A chat channel (CH-09). Common fields first, then the provider's own; which provider
/// fields are required or allowed is checked in `config::check` so the message can name the
/// provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChatChannelSpec {
    /// Which service.
    pub provider: ChannelProvider,
    /// Human-readable title.
    pub title: String,
    /// Inactive channels receive nothing; their history is kept.
    #[serde(default = "yes")]
    pub active: bool,
    /// Queue new chats go to.
    pub queue: String,
    /// Language of the channel's clients (picks quick replies).
    pub language: LanguageTag,
    /// telegram: the bot token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretRef>,
    /// facebookMessenger: the page's ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_id: Option<String>,
    /// facebookMessenger: page access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_access_token: Option<SecretRef>,
    /// facebookMessenger: app secret that signs webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_secret: Option<SecretRef>,
    /// facebookMessenger: token echoed during webhook verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_token: Option<SecretRef>,
    /// facebookMessenger: hand-over from an external bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<Handover>,
    /// whatsapp: the business number, E.164.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// whatsapp: the number used to verify the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_phone_number: Option<String>,
    /// whatsapp: Twilio Account SID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_sid: Option<String>,
    /// whatsapp: Twilio auth token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<SecretRef>,
    /// whatsapp: a Twilio sandbox (test) account [false].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<bool>,
    /// api: bearer token inbound requests must present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_token: Option<SecretRef>,
    /// api: where operator messages are POSTed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<HttpUrl>,
    /// api: HMAC-SHA256 key for `X-Switchboard-Signature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_secret: Option<SecretRef>,
    /// telegram, facebookMessenger, whatsapp: the provider's API base URL (for tests and proxies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base_url: Option<HttpUrl>,
}

/// Default API base URLs, used when `apiBaseUrl` is absent.
pub mod api_base {
    /// Telegram Bot API.
    pub const TELEGRAM: &str = "https://api.telegram.org";
    /// Meta Graph API.
    pub const GRAPH: &str = "https://graph.facebook.com";
    /// Twilio REST API.
    pub const TWILIO: &str = "https://api.twilio.com";
    /// LinkedIn Marketing API.
    pub const LINKEDIN: &str = "https://api.linkedin.com";
}

/// A built-in process an action can launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum BuiltinAction {
    /// Create a case linked to the chat and its contact.
    CreateCase,
}

/// An outside process called by webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookAction {
    /// Where `{chatId, contactId, action, ...}` is POSTed.
    pub url: HttpUrl,
    /// HMAC-SHA256 key that signs the body.
    pub secret: SecretRef,
}

/// A named action operators can run on a chat (CH-07). Exactly one of `builtin`, `webhook`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChatActionSpec {
    /// Human-readable title.
    pub title: String,
    /// Queue whose chats offer this action.
    pub queue: String,
    /// A built-in process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<BuiltinAction>,
    /// An outside process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookAction>,
}

/// A canned answer operators can insert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuickReplySpec {
    /// Language of the text.
    pub language: LanguageTag,
    /// The text.
    pub text: String,
    /// Queues where it is offered; absent = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<Vec<String>>,
}
