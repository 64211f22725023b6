//! One typed spec per manifest kind of SPEC.md, grouped by domain.
//!
//! These types are the single source of truth: serde reads manifests into them (unknown fields
//! rejected, defaults filled in), schemars turns them into the committed JSON Schemas, and their
//! serialized form is what `plan` compares and the store records. Checks that span several
//! fields or objects live in `config::check`, not here.

mod chat;
mod identity;
pub mod lead_columns;
mod leads;
mod mail;
mod meeting;
mod settings;
mod sync;

pub use chat::*;
pub use identity::*;
pub use leads::*;
pub use mail::*;
pub use meeting::*;
pub use settings::*;
pub use sync::*;

/// `true`, for `#[serde(default = "yes")]`.
pub(crate) fn yes() -> bool {
    true
}

/// A duration default written as a literal.
pub(crate) fn duration(text: &str) -> crate::config::types::Duration {
    text.parse().expect("default durations are valid literals")
}
