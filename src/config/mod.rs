//! The manifest model: kinds, the loader that keeps positions, cross-reference checks and
//! diagnostics.
//!
//! `config` is pure: it reads the manifest files and nothing else — no network, no store, no
//! runtime, no secret values (secret fields hold references; the engine resolves them at
//! apply time). Everything here is unit-testable without tokio.
//!
//! Flow: [`load`] walks each `--config` directory, parses every document with positions
//! ([`yaml`]), reads the envelope and the kind's typed spec ([`kinds`]) through serde
//! ([`de`]), then runs the cross-object checks ([`check`]). Every problem becomes a
//! [`Diagnostic`]; the set is valid only when there are none.

pub mod check;
pub mod de;
pub mod diagnostics;
pub mod directory;
pub mod kinds;
mod loader;
pub mod schema;
pub mod types;
pub mod unknown;
pub mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use diagnostics::Diagnostic;
pub use loader::{LoadOutcome, load, load_texts};

use kinds::*;

/// The only `apiVersion` this release reads.
pub const API_VERSION: &str = "switchboard/v1";

/// Declares every kind once: the `Kind` enum, the `Spec` enum and the typed access to specs.
macro_rules! kinds {
    ($($kind:ident => $spec:ident),* $(,)?) => {
        /// A manifest kind of SPEC.md.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind { $(
            #[doc = concat!("`", stringify!($kind), "`")]
            $kind,
        )* }

        impl Kind {
            /// Every kind, in the order objects are applied and listed.
            pub const ALL: &'static [Kind] = &[$(Kind::$kind),*];

            /// The kind's name as written in manifests.
            pub fn as_str(self) -> &'static str {
                match self { $(Kind::$kind => stringify!($kind)),* }
            }

            /// Parses a kind name.
            pub fn parse(text: &str) -> Option<Kind> {
                match text { $(stringify!($kind) => Some(Kind::$kind),)* _ => None }
            }

            /// Reads this kind's spec from a document node.
            pub(crate) fn read_spec(self, node: &yaml::Node) -> Result<Spec, serde_path_to_error::Error<de::Error>> {
                Ok(match self { $(
                    Kind::$kind => Spec::$kind(serde_path_to_error::deserialize(de::NodeDeserializer(node))?),
                )* })
            }

            /// The JSON Schema of this kind's spec.
            pub fn spec_schema(self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                match self { $(Kind::$kind => generator.subschema_for::<$spec>()),* }
            }
        }

        /// A kind's typed spec.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Spec { $(
            #[doc = concat!("A `", stringify!($kind), "` spec.")]
            $kind($spec),
        )* }

        impl Spec {
            /// The spec's kind.
            pub fn kind(&self) -> Kind {
                match self { $(Spec::$kind(_) => Kind::$kind),* }
            }

            /// The spec as JSON, defaults filled in, secrets as references: what `plan`
            /// compares and the store records.
            pub fn to_json(&self) -> serde_json::Value {
                match self { $(Spec::$kind(s) => serde_json::to_value(s)),* }
                    .expect("specs serialize to JSON")
            }
        }

        $(
            impl KindSpec for $spec {
                const KIND: Kind = Kind::$kind;
                fn from_spec(spec: &Spec) -> Option<&Self> {
                    match spec { Spec::$kind(s) => Some(s), #[allow(unreachable_patterns)] _ => None }
                }
            }
        )*
    };
}

kinds! {
    Settings => SettingsSpec,
    Role => RoleSpec,
    User => UserSpec,
    ChatQueue => ChatQueueSpec,
    ChatChannel => ChatChannelSpec,
    ChatAction => ChatActionSpec,
    QuickReply => QuickReplySpec,
    MailProvider => MailProviderSpec,
    Mailbox => MailboxSpec,
    GoogleAccount => GoogleAccountSpec,
    DavAccount => DavAccountSpec,
    ContactSync => ContactSyncSpec,
    CalendarSync => CalendarSyncSpec,
    LinkedInAccount => LinkedInAccountSpec,
    LeadIntegration => LeadIntegrationSpec,
    MeetingService => MeetingServiceSpec,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A spec type that belongs to one kind; lets callers ask for objects by type.
pub trait KindSpec: Sized + 'static {
    /// The kind.
    const KIND: Kind;
    /// The typed spec, when `spec` is of this kind.
    fn from_spec(spec: &Spec) -> Option<&Self>;
}

/// Where an object was read from, kept so later checks can point at its fields.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The manifest file.
    pub file: PathBuf,
    /// The document's root node.
    pub node: Arc<yaml::Node>,
}

impl Origin {
    /// The directory of the manifest, against which relative `{file: ...}` secrets resolve.
    pub fn dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("."))
    }

    /// A diagnostic pointing at `path` (dot/bracket segments) inside this document.
    pub fn diagnostic(
        &self,
        code: &'static str,
        object: &str,
        path: &[yaml::PathSeg],
        message: impl Into<String>,
    ) -> Diagnostic {
        let (pos, width) = self.node.point(path);
        Diagnostic::new(code, &self.file, pos, message)
            .width(width)
            .object(Some(object.to_owned()))
            .field(render_path(path))
    }
}

/// Renders a field path the way users write it: `spec.operators[1].user`.
pub fn render_path(path: &[yaml::PathSeg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            yaml::PathSeg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            yaml::PathSeg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// Builds a field path from `"spec"`, `"operators"`, `1`, ... at call sites.
#[macro_export]
macro_rules! field_path {
    ($($seg:expr),* $(,)?) => {
        vec![$($crate::config::yaml::PathSeg::from($seg)),*]
    };
}

impl From<&str> for yaml::PathSeg {
    fn from(key: &str) -> Self {
        yaml::PathSeg::Key(key.to_owned())
    }
}

impl From<usize> for yaml::PathSeg {
    fn from(index: usize) -> Self {
        yaml::PathSeg::Index(index)
    }
}

/// One manifest object, validated.
#[derive(Debug, Clone)]
pub struct Object {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// The typed spec (its kind is `spec.kind()`).
    pub spec: Spec,
    /// Where it was read from.
    pub origin: Origin,
}

impl Object {
    /// The object's kind.
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }

    /// `Kind/name`, as objects are named in messages and on the CLI.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind(), self.name)
    }
}

/// A whole, valid configuration: every object of every `--config` directory.
#[derive(Debug, Clone, Default)]
pub struct ConfigSet {
    /// Objects in load order (directory order, then sorted file path, then document order).
    pub objects: Vec<Object>,
}

impl ConfigSet {
    /// Every object of spec type `T`, with its spec.
    pub fn specs<T: KindSpec>(&self) -> impl Iterator<Item = (&Object, &T)> {
        self.objects
            .iter()
            .filter_map(|o| T::from_spec(&o.spec).map(|s| (o, s)))
    }

    /// The object of spec type `T` named `name`.
    pub fn get<T: KindSpec>(&self, name: &str) -> Option<&T> {
        self.specs::<T>().find(|(o, _)| o.name == name).map(|e| e.1)
    }

    /// The object of `kind` named `name`.
    pub fn object(&self, kind: Kind, name: &str) -> Option<&Object> {
        self.objects
            .iter()
            .find(|o| o.kind() == kind && o.name == name)
    }

    /// The `Settings` object, if any.
    pub fn settings(&self) -> Option<&SettingsSpec> {
        self.specs::<SettingsSpec>().next().map(|e| e.1)
    }

    /// The system operations `user` holds: its own and those of its roles (empty for an
    /// unknown user; a role that does not exist gives nothing).
    pub fn operations(&self, user: &str) -> std::collections::BTreeSet<kinds::Operation> {
        let Some(spec) = self.get::<kinds::UserSpec>(user) else {
            return std::collections::BTreeSet::new();
        };
        let mut operations: std::collections::BTreeSet<_> =
            spec.operations.iter().copied().collect();
        for role in &spec.roles {
            if let Some(role) = self.get::<kinds::RoleSpec>(role) {
                operations.extend(role.operations.iter().copied());
            }
        }
        operations
    }

    /// The address the daemon listens on.
    pub fn listen(&self) -> std::net::SocketAddr {
        self.settings().map_or_else(
            || DEFAULT_LISTEN.parse().expect("default listen parses"),
            |s| s.listen,
        )
    }
}
