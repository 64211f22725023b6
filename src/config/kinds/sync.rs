//! Contact and calendar sync kinds: `ContactSync` (CS-xx), `CalendarSync` (AS-xx),
//! `GoogleAccount` (AS-04) and `DavAccount` (BX-01).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::types::{AllOrList, EmailAddress, HttpUrl, Schedule, SecretRef};

/// A CardDAV / CalDAV server account (Nextcloud, iCloud, Fastmail, Radicale, ...), BX-01.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DavAccountSpec {
    /// The user it belongs to.
    pub user: String,
    /// The server's base URL (found through RFC 6764 `/.well-known/carddav` and
    /// `current-user-principal`), or a collection URL given directly.
    pub url: HttpUrl,
    /// The login.
    pub username: String,
    /// The password (an app password for most hosted servers).
    pub password: SecretRef,
    /// PEM file of a private CA to trust, for on-premises servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// Which side a record changed on both sides keeps (CS-04).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ConflictWinner {
    /// The later change.
    #[default]
    Newest,
    /// Switchboard's version.
    Switchboard,
    /// The remote side's version.
    Remote,
}

/// A list field whose values both sides' versions merge on a conflict (BX-02).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum UnionField {
    /// E-mail addresses.
    Emails,
    /// Phone numbers.
    Phones,
    /// Tags (categories).
    Tags,
}

/// How a record changed on both sides is resolved.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConflictPolicy {
    /// Which side wins.
    #[serde(default)]
    pub winner: ConflictWinner,
    /// Fields whose values both sides merge instead.
    #[serde(default)]
    pub union: Vec<UnionField>,
}

/// Whether a delete on one side is carried to the other (CS-05).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DeletePolicy {
    /// A delete only unlinks the record from the sync.
    #[default]
    Keep,
    /// A delete on one side deletes on the other (only what was synced).
    Propagate,
}

/// A user's connected Google account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GoogleAccountSpec {
    /// The user it belongs to.
    pub user: String,
    /// The Google account's address.
    pub email: EmailAddress,
    /// OAuth 2.0 refresh token; absent = obtained through the consent flow
    /// (`switchboard oauth url GoogleAccount/NAME`) and stored sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<SecretRef>,
    /// Base URL of Google's APIs; absent = Google's own hosts. When set, the People API is
    /// served under `{apiBaseUrl}/v1/...` and the Calendar API under
    /// `{apiBaseUrl}/calendar/v3/...` (a proxy, or a test's fake).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base_url: Option<HttpUrl>,
}

/// The People API's host, used when a GoogleAccount has no `apiBaseUrl`.
pub const GOOGLE_PEOPLE_API: &str = "https://people.googleapis.com";
/// The Calendar API's host, used when a GoogleAccount has no `apiBaseUrl`.
pub const GOOGLE_CALENDAR_API: &str = "https://www.googleapis.com";

/// Which contacts to import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContactImport {
    /// Import at all.
    pub enabled: bool,
    /// `all`, or these folders.
    #[serde(default)]
    pub folders: AllOrList,
}

/// A category of contacts that can be exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ContactCategory {
    /// Colleagues.
    Employee,
    /// Customers.
    Customer,
}

/// A selection of contacts to export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContactScope {
    /// Only these categories.
    #[serde(default)]
    pub categories: Vec<ContactCategory>,
    /// Only these groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `all`, or a selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ExportScope {
    /// Every accessible contact.
    All(crate::config::types::AllLiteral),
    /// A selection.
    Selected(ContactScope),
}

/// Which contacts to export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContactExport {
    /// Export at all.
    pub enabled: bool,
    /// What to export.
    #[serde(default = "all_scope")]
    pub scope: ExportScope,
}

fn all_scope() -> ExportScope {
    ExportScope::All(crate::config::types::AllLiteral::All)
}

/// Google-specific contact sync settings (CS-03).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GoogleContactSettings {
    /// Personal tag that marks records to sync.
    pub tag: String,
    /// Contact group created in Google.
    #[serde(default = "default_group")]
    pub group: String,
}

fn default_group() -> String {
    "Creatio".to_owned()
}

/// Two-way contact sync with Exchange / Microsoft 365, Google or a CardDAV server (CS-01..05).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContactSyncSpec {
    /// A Mailbox on exchange/microsoft365, a GoogleAccount or a DavAccount.
    pub account: String,
    /// When to sync; absent = manual only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Import settings.
    pub import: ContactImport,
    /// Export settings.
    pub export: ContactExport,
    /// Google settings (Google accounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google: Option<GoogleContactSettings>,
    /// Conflict resolution (CS-04, BX-02).
    #[serde(default)]
    pub conflict: ConflictPolicy,
    /// Delete propagation (CS-05).
    #[serde(default)]
    pub deletes: DeletePolicy,
}

/// Which meetings to import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeetingImport {
    /// Import at all.
    pub enabled: bool,
    /// `all`, or these calendars.
    #[serde(default)]
    pub calendars: AllOrList,
}

/// Which tasks to import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskImport {
    /// Import at all.
    pub enabled: bool,
    /// `all`, or these folders.
    #[serde(default)]
    pub folders: AllOrList,
}

/// Which activities to export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActivityExport {
    /// Export at all.
    pub enabled: bool,
    /// `all`, or these groups.
    #[serde(default)]
    pub groups: AllOrList,
}

/// Two-way calendar and task sync (AS-01..04).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CalendarSyncSpec {
    /// A Mailbox on exchange/microsoft365, a GoogleAccount or a DavAccount.
    pub account: String,
    /// When to sync; absent = manual only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Import activities starting from this date (ISO 8601).
    #[schemars(with = "String")]
    pub since: chrono::NaiveDate,
    /// Meeting import.
    pub import_meetings: MeetingImport,
    /// Task import.
    pub import_tasks: TaskImport,
    /// Activity export.
    pub export: ActivityExport,
    /// Conflict resolution (CS-04, BX-02); `union: [emails]` merges the participants.
    #[serde(default)]
    pub conflict: ConflictPolicy,
    /// Delete propagation (CS-05).
    #[serde(default)]
    pub deletes: DeletePolicy,
    /// Whether changes Switchboard makes on the provider side send invitations or updates to
    /// participants (BX-03).
    #[serde(default)]
    pub invitations: Invitations,
}

/// Who a change Switchboard writes may send invitations or updates to (BX-03).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Invitations {
    /// Nobody: no scheduling side effects (a first sync cannot start an invitation storm).
    #[default]
    None,
    /// Only participants outside the company (an address that is no `User`'s and not in a
    /// `User`'s mail domain).
    External,
    /// Every participant, as the server schedules them.
    All,
}
