//! `Settings`: the installation-wide settings (at most one object, named `default`).

use std::net::SocketAddr;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration;
use crate::config::types::{Duration, HttpUrl, SecretRef};

/// The listen address when `Settings.listen` is not given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Installation-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettingsSpec {
    /// Public base URL where providers deliver webhooks and OAuth redirects land (`SiteUrl`).
    pub site_url: HttpUrl,
    /// Address the HTTP listener binds.
    #[serde(default = "default_listen")]
    #[schemars(with = "String")]
    pub listen: SocketAddr,
    /// Limits and timeouts of the HTTP listener (read when the daemon starts).
    #[serde(default)]
    pub http: HttpSettings,
    /// Chat settings.
    #[serde(default)]
    pub chat: ChatSettings,
    /// Mail settings.
    #[serde(default)]
    pub mail: MailSettings,
    /// Google application used for Gmail, Contacts and Calendar.
    // Boxed: its endpoint overrides would make every `Spec` as large as a Settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google: Option<Box<GoogleSettings>>,
    /// Microsoft Entra ID application used for Microsoft 365.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub microsoft: Option<MicrosoftSettings>,
    /// The LinkedIn application: OAuth for `LinkedInAccount`s and the lead webhook's
    /// signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linkedin: Option<LinkedInSettings>,
    /// OIDC issuer whose tokens the operator API accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_server: Option<IdentityServerSettings>,
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
        .parse()
        .expect("the default listen address parses")
}

/// Limits and timeouts of the HTTP listener: what a slow, idle or oversized client may hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSettings {
    /// Time a client has to send a request's line and headers, counted from the connection's
    /// opening or the request's first byte; then the connection is closed.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's whole body, counted from the end of its headers;
    /// then the request is answered 408 and the connection closed.
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request before it is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Duration,
    /// Connections served at once; a connection beyond them is closed as soon as it is accepted.
    #[serde(default = "default_max_connections")]
    #[schemars(range(min = 1))]
    pub max_connections: u32,
    /// The largest request line plus headers, in bytes; a larger head is answered 431.
    #[serde(default = "default_max_header_bytes")]
    #[schemars(range(min = 1024, max = 1048576))]
    pub max_header_bytes: u32,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_read_timeout: default_header_read_timeout(),
            body_read_timeout: default_body_read_timeout(),
            idle_timeout: default_idle_timeout(),
            max_connections: default_max_connections(),
            max_header_bytes: default_max_header_bytes(),
        }
    }
}

fn default_header_read_timeout() -> Duration {
    duration("10s")
}

fn default_body_read_timeout() -> Duration {
    duration("30s")
}

fn default_idle_timeout() -> Duration {
    duration("60s")
}

fn default_max_connections() -> u32 {
    1024
}

fn default_max_header_bytes() -> u32 {
    16 * 1024
}

/// Chat settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChatSettings {
    /// Chats one operator handles at once, across all channels (`SimultaneousChats`).
    #[serde(default = "default_simultaneous_chats")]
    #[schemars(range(min = 1))]
    pub simultaneous_chats: u32,
    /// Time an operator has to accept an offered chat (`OmniChatOperatorAcceptChatTimeout`).
    #[serde(default = "default_accept_timeout")]
    pub accept_timeout: Duration,
    /// Sound file served to operator clients for new chats (`OmniChatNotificationSound`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_sound: Option<PathBuf>,
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            simultaneous_chats: default_simultaneous_chats(),
            accept_timeout: default_accept_timeout(),
            notification_sound: None,
        }
    }
}

fn default_simultaneous_chats() -> u32 {
    2
}

fn default_accept_timeout() -> Duration {
    duration("5m")
}

/// Mail settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MailSettings {
    /// How often mailboxes are synced when not pushed by IDLE (`MailboxSyncInterval`).
    #[serde(default = "default_sync_interval")]
    pub sync_interval: Duration,
    /// How long one SMTP delivery (connect, greeting, each command and the data) may wait for
    /// the server before it fails as temporary and is retried with backoff.
    #[serde(default = "default_smtp_timeout")]
    pub smtp_timeout: Duration,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            sync_interval: default_sync_interval(),
            smtp_timeout: default_smtp_timeout(),
        }
    }
}

fn default_smtp_timeout() -> Duration {
    duration("60s")
}

fn default_sync_interval() -> Duration {
    duration("5m")
}

/// Google application settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GoogleSettings {
    /// OAuth client ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// OAuth client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretRef>,
    /// Use a shared application instead of the company's own (`UseSharedGoogleApp`).
    #[serde(default)]
    pub use_shared_app: bool,
    /// The authorization (consent) endpoint; absent = Google's
    /// (`https://accounts.google.com/o/oauth2/v2/auth`). Set it for a proxy or a test's fake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_url: Option<HttpUrl>,
    /// The token endpoint; absent = Google's (`https://oauth2.googleapis.com/token`). Set it
    /// for a proxy or a test's fake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<HttpUrl>,
}

/// Google's authorization (consent) endpoint, when `Settings.google.authUrl` is absent.
pub const GOOGLE_AUTH_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
/// Google's token endpoint, when `Settings.google.tokenUrl` is absent.
pub const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// Microsoft Entra ID application settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MicrosoftSettings {
    /// Tenant ID or domain.
    pub tenant: String,
    /// Application (client) ID.
    pub client_id: String,
    /// Client secret.
    pub client_secret: SecretRef,
}

/// The LinkedIn application (Developer Portal → app → Auth).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkedInSettings {
    /// Client ID.
    pub client_id: String,
    /// Client secret: OAuth and the `X-LI-Signature` of lead notifications.
    pub client_secret: SecretRef,
}

/// OIDC identity server whose tokens the operator API accepts (ID tokens or JWT access
/// tokens signed RS256 or ES256; the user is found by the `email` claim).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityServerSettings {
    /// The issuer URL, as the tokens' `iss` names it; discovery is read from
    /// `{url}/.well-known/openid-configuration`. https://, or http:// on a loopback host only.
    pub url: HttpUrl,
    /// Client ID: tokens' `aud` must contain it.
    pub client_id: String,
    /// Client secret (a secret reference), for the console's sign-in; never logged or shown.
    pub client_secret: SecretRef,
}
