//! Every unknown field of a document at once, found by walking it beside its kind's JSON Schema.
//!
//! serde stops at the first error of a document; misspelled keys are the most common mistake,
//! so they are collected up front from the same generated schema that editors use. Where the
//! schema offers several object shapes (a secret reference, `{user}` or `{role}`), the walk
//! does not guess and leaves that spot to serde.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::Kind;
use super::yaml::{Node, PathSeg, Pos};

/// An unknown key: where it is, its name and the names allowed there.
#[derive(Debug, Clone)]
pub struct UnknownField {
    /// Path of the mapping that holds it.
    pub parent: Vec<PathSeg>,
    /// The key.
    pub key: String,
    /// Where the key is.
    pub pos: Pos,
    /// The keys the schema allows in that mapping.
    pub allowed: Vec<String>,
}

fn documents() -> &'static HashMap<Kind, Value> {
    static DOCS: OnceLock<HashMap<Kind, Value>> = OnceLock::new();
    DOCS.get_or_init(|| {
        Kind::ALL
            .iter()
            .map(|k| (*k, super::schema::kind_document(*k)))
            .collect()
    })
}

/// Every key in `spec` (and below) that `kind`'s schema does not allow. `base` is the path of
/// `spec` in its document.
pub fn unknown_fields(kind: Kind, spec: &Node, base: &[PathSeg]) -> Vec<UnknownField> {
    let doc = &documents()[&kind];
    let defs = doc
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let schema = &doc["properties"]["spec"];
    let mut out = Vec::new();
    let mut path = base.to_vec();
    walk(spec, schema, &defs, &mut path, &mut out);
    out
}

/// A copy of `spec` (at `base` in its document) without the keys in `unknown`, so serde can go
/// on to report the first error of another sort.
pub fn without(spec: &Node, base: &[PathSeg], unknown: &[UnknownField]) -> Node {
    let mut copy = spec.clone();
    for u in unknown {
        let Some(rel) = u.parent.strip_prefix(base) else {
            continue;
        };
        if let Some(Node::Map { entries, .. }) = copy.locate_mut(rel) {
            entries.retain(|(k, _, _)| **k != *u.key);
        }
    }
    copy
}

/// Follows `$ref`s and picks the one applicable alternative of `anyOf`/`oneOf`, if there is
/// exactly one for this node's shape.
fn resolve<'a>(schema: &'a Value, defs: &'a Map<String, Value>, node: &Node) -> Option<&'a Value> {
    let mut schema = schema;
    for _ in 0..16 {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            schema = defs.get(r.strip_prefix("#/$defs/")?)?;
            continue;
        }
        let alternatives = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array);
        if let Some(alternatives) = alternatives {
            let fitting: Vec<&Value> = alternatives
                .iter()
                .filter_map(|a| {
                    let a = follow(a, defs)?;
                    fits(a, node).then_some(a)
                })
                .collect();
            match fitting.as_slice() {
                [one] => {
                    schema = one;
                    continue;
                }
                _ => return None,
            }
        }
        return Some(schema);
    }
    None
}

fn follow<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> Option<&'a Value> {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => defs.get(r.strip_prefix("#/$defs/")?),
        None => Some(schema),
    }
}

/// Whether an alternative is of the node's shape (object for a mapping, array for a sequence).
fn fits(schema: &Value, node: &Node) -> bool {
    let has = |t: &str| match schema.get("type") {
        Some(Value::String(s)) => s == t,
        Some(Value::Array(a)) => a.iter().any(|v| v == t),
        None => schema.get("anyOf").is_some() || schema.get("oneOf").is_some(),
        _ => false,
    };
    match node {
        Node::Map { .. } => has("object"),
        Node::Seq { .. } => has("array"),
        Node::Scalar { .. } => false,
    }
}

fn walk(
    node: &Node,
    schema: &Value,
    defs: &Map<String, Value>,
    path: &mut Vec<PathSeg>,
    out: &mut Vec<UnknownField>,
) {
    let Some(schema) = resolve(schema, defs, node) else {
        return;
    };
    match node {
        Node::Map { entries, .. } => {
            let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                return;
            };
            let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
            for (key, pos, value) in entries {
                match props.get(&**key) {
                    Some(sub) => {
                        path.push(PathSeg::Key(key.to_string()));
                        walk(value, sub, defs, path, out);
                        path.pop();
                    }
                    None if closed => out.push(UnknownField {
                        parent: path.clone(),
                        key: key.to_string(),
                        pos: *pos,
                        allowed: props.keys().cloned().collect(),
                    }),
                    None => {}
                }
            }
        }
        Node::Seq { items, .. } => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    path.push(PathSeg::Index(i));
                    walk(item, item_schema, defs, path, out);
                    path.pop();
                }
            }
        }
        Node::Scalar { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> Node {
        super::super::yaml::parse(yaml).unwrap()[0]
            .root
            .clone()
            .unwrap()
    }

    #[test]
    fn finds_every_unknown_key_at_every_depth() {
        let node = spec(
            "provider: imap\ntype: imap\ntitle: T\ntitel: x\nimap: {host: h, prot: 1}\nsmtp: {host: h}\n",
        );
        let found = unknown_fields(Kind::MailProvider, &node, &[PathSeg::Key("spec".into())]);
        let keys: Vec<&str> = found.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["provider", "titel", "prot"]);
        assert_eq!(
            found[2].parent,
            [PathSeg::Key("spec".into()), PathSeg::Key("imap".into())]
        );
        assert!(found[2].allowed.contains(&"port".to_owned()));
    }

    #[test]
    fn does_not_guess_between_alternative_shapes() {
        // `{role: x}` is one of two shapes of an operator; a secret reference is one of three.
        let node = spec("title: T\nrouting: toAll\noperators: [{role: r}, {user: u}]\n");
        assert!(unknown_fields(Kind::ChatQueue, &node, &[]).is_empty());
        let node =
            spec("provider: api\ntitle: T\nqueue: q\nlanguage: en\ninboundToken: {env: X}\n");
        assert!(unknown_fields(Kind::ChatChannel, &node, &[]).is_empty());
    }
}
