//! Mail kinds: `MailProvider` (EP-01..08) and `Mailbox` (MB-01..04).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{duration, yes};
use crate::config::types::{AllOrList, Duration, EmailAddress, HttpUrl, SecretRef};

/// What kind of server a provider is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum MailProviderType {
    /// IMAP for loading, SMTP for sending.
    Imap,
    /// On-premises Exchange (EWS).
    Exchange,
    /// Microsoft 365 through Microsoft Graph.
    Microsoft365,
    /// Gmail (IMAP/SMTP with OAuth 2.0).
    Gmail,
}

impl MailProviderType {
    /// The name used in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            MailProviderType::Imap => "imap",
            MailProviderType::Exchange => "exchange",
            MailProviderType::Microsoft365 => "microsoft365",
            MailProviderType::Gmail => "gmail",
        }
    }
}

/// Transport security of a mail connection (EP-02).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Security {
    /// Implicit TLS from the first byte (SSL/TLS).
    #[default]
    Tls,
    /// Plain connection upgraded with STARTTLS.
    Starttls,
    /// No encryption (only for trusted networks).
    None,
}

/// An IMAP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImapServer {
    /// Host name.
    pub host: String,
    /// Port (143 plain/STARTTLS, 993 TLS).
    #[serde(default = "default_imap_port")]
    pub port: u16,
    /// Transport security.
    #[serde(default)]
    pub security: Security,
}

fn default_imap_port() -> u16 {
    993
}

/// An SMTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SmtpServer {
    /// Host name.
    pub host: String,
    /// Port (587 STARTTLS, 465 TLS).
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// Transport security.
    #[serde(default)]
    pub security: Security,
}

fn default_smtp_port() -> u16 {
    465
}

/// An on-premises Exchange server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExchangeServer {
    /// EWS service URL.
    pub service_url: HttpUrl,
}

/// How the login name is formed (EP-03).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum LoginFormat {
    /// Each mailbox gives its `login`.
    Manual,
    /// The full address.
    #[default]
    Email,
    /// The part before `@`.
    LocalPart,
}

/// How mailboxes authenticate (EP-04).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AuthMethod {
    /// User name and password (or app password, EP-01).
    #[default]
    Basic,
    /// OAuth 2.0 (XOAUTH2).
    Oauth2,
}

/// The OAuth 2.0 application of a provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuth2Client {
    /// Client ID.
    pub client_id: String,
    /// Client secret.
    pub client_secret: SecretRef,
    /// Authorization endpoint.
    pub auth_url: HttpUrl,
    /// Token endpoint.
    pub token_url: HttpUrl,
    /// Scopes requested.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A mail service: where mailboxes of its domains connect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MailProviderSpec {
    /// Server kind.
    #[serde(rename = "type")]
    pub provider_type: MailProviderType,
    /// Human-readable title.
    pub title: String,
    /// Mail domains served; used to detect a mailbox's provider (EP-07).
    #[serde(default)]
    pub domains: Vec<String>,
    /// IMAP server (imap, gmail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imap: Option<ImapServer>,
    /// SMTP server (imap, gmail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpServer>,
    /// PEM file of a private CA to trust, for on-premises servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Exchange server (exchange).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<ExchangeServer>,
    /// Microsoft Graph base URL (microsoft365); `https://graph.microsoft.com` when omitted
    /// (national clouds and tests set their own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base_url: Option<HttpUrl>,
    /// Mailboxes may load mail.
    #[serde(default = "yes")]
    pub load: bool,
    /// Mailboxes may send mail.
    #[serde(default = "yes")]
    pub send: bool,
    /// How the login is formed.
    #[serde(default)]
    pub login_format: LoginFormat,
    /// Authentication method.
    #[serde(default)]
    pub auth: AuthMethod,
    /// OAuth 2.0 application (required with `auth: oauth2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2Client>,
}

/// A right on a shared mailbox, given to a user or a role (MB-04).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MailboxAccess {
    /// A user by name (exactly one of `user`, `role`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A role by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// See its letters in records' history.
    #[serde(default)]
    pub read_emails: bool,
    /// Send as this mailbox.
    #[serde(default)]
    pub send_emails: bool,
    /// Change the mailbox's settings.
    #[serde(default)]
    pub configure: bool,
}

/// Loading settings of a mailbox (MB-02).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MailboxLoad {
    /// Load mail at all; absent, the provider's `load` decides. `true` with a provider that
    /// does not load is an error; a `load` block is otherwise unused while the provider does
    /// not load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// How far back the first sync reaches.
    #[serde(default = "default_load_period")]
    pub period: Duration,
    /// Load new mail automatically.
    #[serde(default = "yes")]
    pub auto: bool,
    /// `all`, or a list of folders (a listed parent does not include its children).
    #[serde(default)]
    pub folders: AllOrList,
}

impl Default for MailboxLoad {
    fn default() -> Self {
        MailboxLoad {
            enabled: None,
            period: default_load_period(),
            auto: true,
            folders: AllOrList::default(),
        }
    }
}

impl MailboxLoad {
    /// Whether the mailbox loads mail through a provider that does (`provider_loads`).
    pub fn on(&self, provider_loads: bool) -> bool {
        provider_loads && self.enabled != Some(false)
    }
}

fn default_load_period() -> Duration {
    duration("1w")
}

/// Sending settings of a mailbox (MB-03).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MailboxSend {
    /// The mailbox may be used as a sender; absent, the provider's `send` decides. `true` with
    /// a provider that does not send is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The owner's default sender.
    #[serde(default)]
    pub default_sender: bool,
    /// Display name on outgoing mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// HTML signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Append the signature to outgoing mail.
    #[serde(default)]
    pub use_signature: bool,
}

impl MailboxSend {
    /// Whether the mailbox sends mail through a provider that does (`provider_sends`).
    pub fn on(&self, provider_sends: bool) -> bool {
        provider_sends && self.enabled != Some(false)
    }
}

/// A mailbox connected for loading and/or sending (MB-01).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MailboxSpec {
    /// The mailbox's address.
    pub address: EmailAddress,
    /// The user who owns it.
    pub owner: String,
    /// Provider by name; absent = detected from the address's domain (EP-07).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Login, when the provider's `loginFormat` is `manual`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// Password or app password (basic auth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretRef>,
    /// OAuth 2.0 refresh token (oauth2 auth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_refresh_token: Option<SecretRef>,
    /// Loading settings.
    #[serde(default)]
    pub load: MailboxLoad,
    /// Sending settings.
    #[serde(default)]
    pub send: MailboxSend,
    /// Shared-mailbox rights.
    #[serde(default)]
    pub access: Vec<MailboxAccess>,
}
