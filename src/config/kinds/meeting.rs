//! `MeetingService`: URL masks that recognise online-meeting links (OM-01).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::types::Pattern;

/// An online-meeting service and the mask that recognises its links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeetingServiceSpec {
    /// Human-readable title.
    pub title: String,
    /// What the service is.
    pub description: String,
    /// Regular expression (Rust `regex` syntax) that matches the service's links.
    pub mask: Pattern,
}
