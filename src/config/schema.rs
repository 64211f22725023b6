//! JSON Schemas generated from the manifest types: one per kind and one for any document.
//!
//! These are the files committed under `schemas/` and written by `switchboard schema`; a test
//! fails when the committed copies are stale. Editors use them through the
//! `# yaml-language-server: $schema=...` line at the top of each manifest.

use std::collections::BTreeMap;

use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use super::{API_VERSION, Kind};

/// The file name of the whole-document schema.
pub const MANIFEST_SCHEMA: &str = "manifest.schema.json";

/// Base URI of the schemas' `$id`s.
const ID_BASE: &str = "https://switchboard.dev/schemas/v1/";

/// A generator with the settings every schema of ours uses (draft 2020-12, definitions under
/// `$defs`).
pub fn generator() -> SchemaGenerator {
    SchemaGenerator::new(SchemaSettings::draft2020_12())
}

fn envelope(kind: Option<Kind>, spec: Value) -> Value {
    let kind_schema = match kind {
        Some(k) => json!({"const": k.as_str()}),
        None => json!({"enum": Kind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>()}),
    };
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": kind_schema,
            "metadata": {
                "type": "object",
                "additionalProperties": false,
                "required": ["name"],
                "properties": {
                    "name": {
                        "type": "string",
                        "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
                        "description": "Identity: a lower-case DNS label, unique per kind."
                    },
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            },
            "spec": spec
        }
    })
}

/// The schema of one kind's whole document, with its `$defs`.
pub fn kind_document(kind: Kind) -> Value {
    let mut generator = generator();
    let spec = kind.spec_schema(&mut generator).to_value();
    let mut doc = envelope(Some(kind), spec);
    let obj = doc.as_object_mut().expect("envelope is an object");
    obj.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    obj.insert(
        "$id".into(),
        json!(format!("{ID_BASE}{}.schema.json", kind.as_str())),
    );
    obj.insert("title".into(), json!(kind.as_str()));
    obj.insert(
        "$defs".into(),
        Value::Object(generator.definitions().clone()),
    );
    doc
}

/// Every schema file, by file name: `<Kind>.schema.json` for each kind and
/// [`MANIFEST_SCHEMA`] for a document of any kind.
pub fn all() -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut manifest_gen = generator();
    let mut branches = Vec::new();
    for kind in Kind::ALL {
        let mut generator = generator();
        let spec = kind.spec_schema(&mut generator).to_value();
        let mut doc = envelope(Some(*kind), spec);
        let obj = doc.as_object_mut().expect("envelope is an object");
        obj.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        obj.insert(
            "$id".into(),
            json!(format!("{ID_BASE}{}.schema.json", kind.as_str())),
        );
        obj.insert("title".into(), json!(kind.as_str()));
        obj.insert(
            "$defs".into(),
            Value::Object(generator.definitions().clone()),
        );
        files.insert(format!("{}.schema.json", kind.as_str()), pretty(&doc));

        let spec = kind.spec_schema(&mut manifest_gen).to_value();
        branches.push(json!({
            "if": {"properties": {"kind": {"const": kind.as_str()}}, "required": ["kind"]},
            "then": {"properties": {"spec": spec}}
        }));
    }
    let mut doc = envelope(None, json!({"type": "object"}));
    let obj = doc.as_object_mut().expect("envelope is an object");
    obj.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    obj.insert("$id".into(), json!(format!("{ID_BASE}{MANIFEST_SCHEMA}")));
    obj.insert("title".into(), json!("Switchboard manifest"));
    obj.insert("allOf".into(), Value::Array(branches));
    obj.insert(
        "$defs".into(),
        Value::Object(manifest_gen.definitions().clone()),
    );
    files.insert(MANIFEST_SCHEMA.to_owned(), pretty(&doc));
    files
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("schemas serialize");
    s.push('\n');
    s
}
