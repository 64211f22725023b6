//! `LeadIntegration`: LinkedIn lead-gen forms mapped to leads (LI-01..08).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::yes;
use crate::config::types::{HttpUrl, SecretRef};

/// LinkedIn's API base URL, when a `LeadIntegration` names none.
pub const LINKEDIN_API: &str = "https://api.linkedin.com";

/// A macro value for a mapped column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MappingMacro {
    /// All form values as one string (LI-04).
    NotMappedFields,
}

/// One column of a lead and where its value comes from (exactly one of `field`, `constant`,
/// `macro`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ColumnMapping {
    /// The lead column.
    pub column: String,
    /// A form field (profile field, custom question, checkbox or hidden field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A constant (string, number, boolean or date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constant: Option<serde_json::Value>,
    /// A macro.
    #[serde(default, rename = "macro", skip_serializing_if = "Option::is_none")]
    pub macro_: Option<MappingMacro>,
}

/// A lead-gen form of the ad account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeadForm {
    /// The form's LinkedIn ID.
    pub id: String,
    /// Inactive forms create no leads (LI-07).
    #[serde(default = "yes")]
    pub active: bool,
    /// Replaces the default mapping for this form (LI-02).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_mapping: Option<Vec<ColumnMapping>>,
}

/// One LinkedIn ad account's lead generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeadIntegrationSpec {
    /// Human-readable title.
    pub title: String,
    /// Inactive integrations create no leads.
    #[serde(default = "yes")]
    pub active: bool,
    /// LinkedIn ad account ID.
    pub ad_account_id: String,
    /// The `LinkedInAccount`s that can reach the ad account; any one of them serves (LI-01).
    /// With none left the integration stops (LI-07).
    pub accounts: Vec<String>,
    /// Address that receives leads; absent = `Settings.siteUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_url: Option<HttpUrl>,
    /// Role notified about lead-generation events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_role: Option<String>,
    /// CRM object created per response.
    #[serde(default = "default_object")]
    pub object: String,
    /// Mapping used by every form without a custom one.
    pub default_mapping: Vec<ColumnMapping>,
    /// Forms.
    #[serde(default)]
    pub forms: Vec<LeadForm>,
    /// LinkedIn API base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base_url: Option<HttpUrl>,
}

/// A person's LinkedIn login that can reach ad accounts (LI-01).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkedInAccountSpec {
    /// The user it belongs to.
    pub user: String,
    /// OAuth 2.0 refresh token; absent = obtained through the consent flow and stored sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<SecretRef>,
}

fn default_object() -> String {
    "Lead".to_owned()
}
