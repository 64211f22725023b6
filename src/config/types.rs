//! Value types that manifests share: durations, schedules, secret references, e-mail
//! addresses, URLs, language tags and regular expressions.
//!
//! Each type parses in its `Deserialize` impl, so a bad value is reported at its own field with
//! a message that says what was expected; each serializes back to the text the admin wrote, so
//! `plan` shows values the way they appear in the manifest. Nothing here does I/O except
//! [`SecretRef::resolve`], which the engine calls at apply time — never `validate` or `plan`.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Implements `Serialize`, `Deserialize` (through `FromStr`) and `Display` for a type that is
/// written as a string in manifests.
macro_rules! string_value {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A duration written as `90s`, `5m`, `2h`, `1d`, `1w` or a sum such as `1h30m`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duration {
    text: String,
    value: std::time::Duration,
}

impl Duration {
    /// The duration as the admin wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }
    /// The parsed value.
    pub fn get(&self) -> std::time::Duration {
        self.value
    }
}

impl FromStr for Duration {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid duration `{text}`: expected a number and a unit (ms, s, m, h, d, w), like `90s`, `5m` or `1h30m`"
            )
        };
        let mut total = 0u64;
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            if digits == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let millis = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "w" => 604_800_000,
                _ => return Err(bad()),
            };
            total = n
                .checked_mul(millis)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(bad)?;
            rest = &rest[unit_len..];
        }
        Ok(Duration {
            text: text.to_owned(),
            value: std::time::Duration::from_millis(total),
        })
    }
}
string_value!(Duration);

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^([0-9]+(ms|s|m|h|d|w))+$",
            "description": "A duration: a number and a unit (ms, s, m, h, d, w), e.g. `90s`, `5m`, `1h30m`.",
            "examples": ["90s", "5m", "2h", "1w"]
        })
    }
}

/// A schedule: a 5-field crontab expression (`*/5 * * * *`) or a macro such as `@daily`.
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    cron: croner::Cron,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Schedule {
    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
    /// The next time this schedule fires strictly after `after`.
    pub fn next_after(
        &self,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if !trimmed.starts_with('@') && trimmed.split_whitespace().count() != 5 {
            return Err(format!(
                "invalid schedule `{text}`: expected 5 crontab fields (minute hour day-of-month month day-of-week), like `*/5 * * * *`, or a macro like `@daily`"
            ));
        }
        // croner reads an empty list item (`,5`, `1,,2`) as "never", and then looks for the
        // next time for seconds; a schedule must say when it fires.
        if let Some(field) = trimmed
            .split_whitespace()
            .find(|f| f.split(',').any(str::is_empty))
        {
            return Err(format!(
                "invalid schedule `{text}`: the field `{field}` has an empty list item; separate values with single commas, like `1,15`"
            ));
        }
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .build()
            .parse(trimmed)
            .map_err(|e| format!("invalid schedule `{text}`: {e}"))?;
        Ok(Schedule {
            text: text.to_owned(),
            cron,
        })
    }
}
string_value!(Schedule);

impl JsonSchema for Schedule {
    fn schema_name() -> Cow<'static, str> {
        "Schedule".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A 5-field crontab expression (`*/5 * * * *`) or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.",
            "examples": ["*/15 * * * *", "0 9 * * MON-FRI", "@daily"]
        })
    }
}

/// Where a secret comes from. A secret is never written inline in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(
    title = "SecretRef",
    description = "A secret reference: exactly one of `{env: NAME}`, `{file: PATH}` or `{credential: NAME}` (systemd LoadCredential). Inline secrets are not allowed."
)]
pub enum SecretRef {
    /// From an environment variable of the daemon.
    Env(String),
    /// From a file; a relative path is relative to the manifest's directory.
    File(PathBuf),
    /// From `$CREDENTIALS_DIRECTORY/NAME` (systemd `LoadCredential=`).
    Credential(String),
}

/// The wire form of [`SecretRef`]; its `Deserialize` wraps this one to give a clear error
/// for the most common mistake, an inline value.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
enum SecretRefRepr {
    Env(String),
    File(PathBuf),
    Credential(String),
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        if !value.is_object() {
            return Err(serde::de::Error::custom(
                "inline secrets are not allowed (the value is not shown): write `{env: NAME}`, `{file: PATH}` or `{credential: NAME}`",
            ));
        }
        match serde_json::from_value(value) {
            Ok(SecretRefRepr::Env(n)) => Ok(SecretRef::Env(n)),
            Ok(SecretRefRepr::File(p)) => Ok(SecretRef::File(p)),
            Ok(SecretRefRepr::Credential(n)) => Ok(SecretRef::Credential(n)),
            Err(e) => Err(serde::de::Error::custom(format!(
                "invalid secret reference ({e}): write exactly one of `{{env: NAME}}`, `{{file: PATH}}` or `{{credential: NAME}}`"
            ))),
        }
    }
}

/// A resolved secret. Its `Debug` and `Display` never show the value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// A secret with this value, for unit tests of the code that uses secrets.
    #[cfg(test)]
    pub(crate) fn for_tests(value: &str) -> Secret {
        Secret(value.to_owned())
    }

    /// The secret's value, for the one place that must send it (a header, a login).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a secret could not be read. Messages name the reference, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("secret {{env: {0}}}: the environment variable is not set")]
    EnvMissing(String),
    /// The file could not be read.
    #[error("secret {{file: {path}}}: {source}")]
    File {
        /// The path tried.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// No credentials directory, or the credential is not in it.
    #[error(
        "secret {{credential: {name}}}: {reason} (systemd passes credentials with LoadCredential=; outside systemd set CREDENTIALS_DIRECTORY)"
    )]
    Credential {
        /// The credential's name.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// The secret is empty.
    #[error("secret {0} is empty")]
    Empty(String),
}

impl SecretRef {
    /// Reads the secret. `base_dir` is the directory of the manifest that names it, for
    /// relative `file` references. Trailing newlines (as `echo` writes) are trimmed.
    pub fn resolve(&self, base_dir: &Path) -> Result<Secret, SecretError> {
        let raw = match self {
            SecretRef::Env(name) => {
                std::env::var(name).map_err(|_| SecretError::EnvMissing(name.clone()))?
            }
            SecretRef::File(path) => {
                let full = base_dir.join(path);
                std::fs::read_to_string(&full).map_err(|source| SecretError::File {
                    path: full.clone(),
                    source,
                })?
            }
            SecretRef::Credential(name) => {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                    SecretError::Credential {
                        name: name.clone(),
                        reason: "CREDENTIALS_DIRECTORY is not set".into(),
                    }
                })?;
                std::fs::read_to_string(Path::new(&dir).join(name)).map_err(|e| {
                    SecretError::Credential {
                        name: name.clone(),
                        reason: e.to_string(),
                    }
                })?
            }
        };
        let value = raw.trim_end_matches(['\n', '\r']).to_owned();
        if value.is_empty() {
            return Err(SecretError::Empty(self.to_string()));
        }
        Ok(Secret(value))
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "{{env: {n}}}"),
            SecretRef::File(p) => write!(f, "{{file: {}}}", p.display()),
            SecretRef::Credential(n) => write!(f, "{{credential: {n}}}"),
        }
    }
}

/// An e-mail address (`local@domain`), kept as written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The part before `@`.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(l, _)| l)
    }
    /// The domain, lower-cased.
    pub fn domain(&self) -> String {
        self.0
            .rsplit_once('@')
            .map_or(String::new(), |(_, d)| d.to_ascii_lowercase())
    }
}

impl FromStr for EmailAddress {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let ok = match text.rsplit_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && local.len() <= 64
                    && !local.chars().any(|c| c.is_whitespace() || c == '@')
                    && is_hostname(domain)
                    && domain.contains('.')
            }
            None => false,
        };
        if ok {
            Ok(EmailAddress(text.to_owned()))
        } else {
            Err(format!(
                "invalid e-mail address `{text}`: expected local@domain.tld"
            ))
        }
    }
}
string_value!(EmailAddress);

impl JsonSchema for EmailAddress {
    fn schema_name() -> Cow<'static, str> {
        "EmailAddress".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "format": "email"})
    }
}

/// Whether `text` is a DNS host name (labels of letters, digits and hyphens).
pub fn is_hostname(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// An absolute `http` or `https` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(url::Url);

impl HttpUrl {
    /// The URL as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
    /// The parsed URL.
    pub fn url(&self) -> &url::Url {
        &self.0
    }
}

impl FromStr for HttpUrl {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text).map_err(|e| format!("invalid URL `{text}`: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "invalid URL `{text}`: expected an absolute http:// or https:// URL"
            ));
        }
        Ok(HttpUrl(url))
    }
}
string_value!(HttpUrl);

impl JsonSchema for HttpUrl {
    fn schema_name() -> Cow<'static, str> {
        "HttpUrl".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "format": "uri", "pattern": "^https?://"})
    }
}

/// A BCP 47 language tag such as `en-US` or `ru-RU`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguageTag(String);

impl LanguageTag {
    /// The tag as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for LanguageTag {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        oxilangtag::LanguageTag::parse(text)
            .map(|_| LanguageTag(text.to_owned()))
            .map_err(|e| {
                format!(
                    "invalid language tag `{text}`: {e}; expected BCP 47, like `en-US` or `ru-RU`"
                )
            })
    }
}
string_value!(LanguageTag);

impl JsonSchema for LanguageTag {
    fn schema_name() -> Cow<'static, str> {
        "LanguageTag".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A BCP 47 language tag, e.g. `en-US`.",
            "pattern": "^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"
        })
    }
}

/// A regular expression (Rust `regex` syntax) that must parse.
///
/// Reading a config only parses the expression (`regex-syntax`, with the `regex` crate's own
/// settings, so every syntax error a compile would report is reported here, with its reason);
/// the matcher is compiled on first use and shared by clones. Compiling every mask of a large
/// config up front cost a third of `validate`'s time and most of its memory, for matchers that
/// `validate` never runs.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    compiled: std::sync::Arc<std::sync::OnceLock<Option<regex::Regex>>>,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Pattern {
    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
    /// The compiled expression; `None` only when it parses but is too large to compile (the
    /// `regex` crate's size limit), which is logged once.
    pub fn regex(&self) -> Option<&regex::Regex> {
        self.compiled
            .get_or_init(|| match regex::Regex::new(&self.text) {
                Ok(regex) => Some(regex),
                Err(e) => {
                    tracing::warn!(
                        pattern = %self.text,
                        reason = %last_line(&e.to_string()),
                        "a regular expression cannot be compiled; it matches nothing"
                    );
                    None
                }
            })
            .as_ref()
    }
}

/// The last line of the `regex` crate's message: it repeats the pattern with a caret over
/// several lines, then says what is wrong (the diagnostic already shows where).
fn last_line(message: &str) -> &str {
    message
        .lines()
        .last()
        .unwrap_or("")
        .trim_start_matches("error: ")
}

impl FromStr for Pattern {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        // The `regex` crate's defaults (Unicode, UTF-8, nest limit 250) are regex-syntax's.
        regex_syntax::ParserBuilder::new()
            .build()
            .parse(text)
            .map_err(|e| format!("invalid regular expression: {}", last_line(&e.to_string())))?;
        Ok(Pattern {
            text: text.to_owned(),
            compiled: Default::default(),
        })
    }
}
string_value!(Pattern);

impl JsonSchema for Pattern {
    fn schema_name() -> Cow<'static, str> {
        "Pattern".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "format": "regex"})
    }
}

/// `all`, or an explicit list of names (folders, calendars, groups).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum AllOrList {
    /// The literal `all`.
    All(AllLiteral),
    /// Only these.
    List(Vec<String>),
}

impl Default for AllOrList {
    fn default() -> Self {
        AllOrList::All(AllLiteral::All)
    }
}

/// The literal `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AllLiteral {
    /// Everything.
    All,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_units_and_sums() {
        let d: Duration = "1h30m".parse().unwrap();
        assert_eq!(d.get().as_secs(), 5400);
        assert_eq!("1w".parse::<Duration>().unwrap().get().as_secs(), 604_800);
        assert_eq!("250ms".parse::<Duration>().unwrap().get().as_millis(), 250);
        for bad in ["", "5", "m5", "5 m", "5x", "-5m"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad}");
        }
    }

    #[test]
    fn schedules_take_five_fields_and_macros() {
        let s: Schedule = "0 9 * * MON-FRI".parse().unwrap();
        let from = chrono::DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        // Friday 10:00 -> Monday 09:00
        assert_eq!(
            s.next_after(from).unwrap().to_rfc3339(),
            "2026-11-30T09:00:00+00:00"
        );
        assert!("@daily".parse::<Schedule>().is_ok());
        assert!("*/5 * * * *".parse::<Schedule>().is_ok());
        assert!("0 */5 * * * *".parse::<Schedule>().is_err());
        assert!("61 * * * *".parse::<Schedule>().is_err());
    }

    #[test]
    fn a_schedule_with_an_empty_list_item_is_refused_at_once() {
        // Found by fuzz/run.sh (values): croner took seconds looking for the next time of
        // `, 9 * * MON-FRI`, a schedule that never fires.
        for text in [", 9 * * MON-FRI", "1,,2 * * * *", "0 9, * * *"] {
            let err = text.parse::<Schedule>().unwrap_err();
            assert!(err.contains("empty list item"), "{text}: {err}");
        }
        assert!("1,15 * * * *".parse::<Schedule>().is_ok());
    }

    #[test]
    fn inline_secret_is_refused_with_the_accepted_forms_named() {
        let err = serde_json::from_value::<SecretRef>(serde_json::json!("hunter2")).unwrap_err();
        assert!(err.to_string().contains("inline secrets are not allowed"));
        assert!(!err.to_string().contains("hunter2"));
        assert_eq!(
            serde_json::from_value::<SecretRef>(serde_json::json!({"env": "X"})).unwrap(),
            SecretRef::Env("X".into())
        );
        assert!(
            serde_json::from_value::<SecretRef>(serde_json::json!({"env": "X", "file": "y"}))
                .is_err()
        );
    }

    #[test]
    fn secret_debug_never_shows_the_value() {
        let s = Secret("topsecret".into());
        assert!(!format!("{s:?}").contains("topsecret"));
    }

    #[test]
    fn file_secrets_resolve_relative_to_the_manifest_and_trim_newlines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "abc\n").unwrap();
        let s = SecretRef::File("tok".into()).resolve(dir.path()).unwrap();
        assert_eq!(s.expose(), "abc");
        let err = SecretRef::Env("SWITCHBOARD_SURELY_UNSET_VAR".into())
            .resolve(dir.path())
            .unwrap_err();
        assert!(err.to_string().contains("SWITCHBOARD_SURELY_UNSET_VAR"));
    }

    #[test]
    fn emails_urls_languages_and_patterns_validate() {
        assert_eq!(
            "a.b@Example.COM".parse::<EmailAddress>().unwrap().domain(),
            "example.com"
        );
        assert!("nobody".parse::<EmailAddress>().is_err());
        assert!("a@b".parse::<EmailAddress>().is_err());
        assert!("https://x.example/y".parse::<HttpUrl>().is_ok());
        assert!("ftp://x.example".parse::<HttpUrl>().is_err());
        assert!("ru-RU".parse::<LanguageTag>().is_ok());
        assert!("english please".parse::<LanguageTag>().is_err());
        assert!("(unclosed".parse::<Pattern>().is_err());
    }

    #[test]
    fn patterns_are_checked_when_read_and_compiled_when_first_used() {
        // Errors the regex crate finds past the syntax (an unknown Unicode class, a look-around)
        // are found without compiling, with the crate's reason.
        for (text, reason) in [
            ("(unclosed", "unclosed group"),
            (r"\p{NoSuchClass}", "Unicode property not found"),
            ("a(?=b)", "look-around"),
        ] {
            let e = text.parse::<Pattern>().expect_err(text);
            assert!(e.starts_with("invalid regular expression: "), "{e}");
            assert!(e.contains(reason), "{text}: {e}");
        }
        let mask: Pattern = r"(?i)https?://meet\.example/\w+".parse().expect("valid");
        let copy = mask.clone();
        assert!(
            mask.regex()
                .expect("compiles")
                .is_match("see HTTPS://meet.example/room")
        );
        // Clones share the compiled matcher.
        assert!(std::ptr::eq(
            mask.regex().expect("compiled"),
            copy.regex().expect("compiled")
        ));
        // Parses, but is over the regex crate's compiled-size limit: matches nothing.
        let huge: Pattern = r"\w{1000}{1000}".parse().expect("the syntax is fine");
        assert!(huge.regex().is_none());
    }
}
