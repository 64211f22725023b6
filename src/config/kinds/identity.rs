//! `User` and `Role`: who may do what.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::config::types::EmailAddress;

/// A system operation a user holds directly or through a role.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum Operation {
    /// Change chat configuration through the operator API (CH-01).
    CanManageChats,
    /// Change providers and other administration settings (EP-09).
    CanManageAdministration,
    /// Connect a shared mailbox (MB-04).
    CanConnectSharedMailbox,
    /// Configure a shared mailbox's sync (MB-04).
    CanManageSharedMailboxSync,
}

impl Operation {
    /// The name used in manifests (`CanManageChats`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::CanManageChats => "CanManageChats",
            Operation::CanManageAdministration => "CanManageAdministration",
            Operation::CanConnectSharedMailbox => "CanConnectSharedMailbox",
            Operation::CanManageSharedMailboxSync => "CanManageSharedMailboxSync",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person who operates chats, owns mailboxes or calls the operator API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserSpec {
    /// Name shown to colleagues and clients.
    pub display_name: String,
    /// The user's e-mail address.
    pub email: EmailAddress,
    /// Roles (by name) whose operations the user inherits.
    #[serde(default)]
    pub roles: Vec<String>,
    /// System operations held directly.
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// Hex SHA-256 hashes of the bearer tokens this user may present to the operator API.
    #[serde(default, rename = "apiTokenSha256")]
    pub api_token_sha256: Vec<TokenHash>,
}

/// A group of users sharing operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleSpec {
    /// Human-readable title.
    pub title: String,
    /// System operations every member holds.
    #[serde(default)]
    pub operations: Vec<Operation>,
}

/// The lower-case hex SHA-256 of a bearer token (64 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    /// The hash as lower-case hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for TokenHash {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(TokenHash(text.to_ascii_lowercase()))
        } else {
            Err(format!(
                "expected the hex SHA-256 of a token (64 hex digits, e.g. from `printf %s TOKEN | sha256sum`), found {} characters",
                text.len()
            ))
        }
    }
}

impl Serialize for TokenHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TokenHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for TokenHash {
    fn schema_name() -> Cow<'static, str> {
        "TokenHash".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": "^[0-9a-fA-F]{64}$"})
    }
}
