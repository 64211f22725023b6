//! Secret references of a spec and their resolution. The engine resolves every object's
//! secrets at apply and publishes them with the config ([`super::EngineHandle`]); a domain
//! that needs another object's secrets when building its connector (a mail provider's OAuth
//! client secret) resolves them with [`resolve_secrets`] then, never at request time.

use std::collections::BTreeMap;

use crate::config::types::{Secret, SecretError, SecretRef};
use crate::config::{ConfigSet, Object};

use super::ResolvedSecrets;

/// Every secret reference in `spec`, by JSON pointer: each JSON object with exactly one key,
/// `env`, `file` or `credential`, holding a string. Secret fields are typed [`SecretRef`] in
/// the kinds, and validation rejects inline values, so this finds exactly the secret fields.
pub fn secret_refs(spec: &serde_json::Value) -> Vec<(String, SecretRef)> {
    let mut found = Vec::new();
    walk(spec, String::new(), &mut found);
    found
}

fn walk(value: &serde_json::Value, pointer: String, found: &mut Vec<(String, SecretRef)>) {
    match value {
        serde_json::Value::Object(map) => {
            if map.len() == 1
                && let Some((key, inner)) = map.iter().next()
                && matches!(key.as_str(), "env" | "file" | "credential")
                && inner.is_string()
                && let Ok(r) = serde_json::from_value::<SecretRef>(value.clone())
            {
                found.push((pointer, r));
                return;
            }
            for (key, inner) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                walk(inner, format!("{pointer}/{escaped}"), found);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                walk(inner, format!("{pointer}/{i}"), found);
            }
        }
        _ => {}
    }
}

/// Resolves every secret of `object` relative to its manifest's directory.
pub fn resolve_secrets(object: &Object) -> Result<BTreeMap<String, Secret>, SecretError> {
    secret_refs(&object.spec.to_json())
        .into_iter()
        .map(|(pointer, r)| r.resolve(object.origin.dir()).map(|s| (pointer, s)))
        .collect()
}

/// Resolves the secrets of every object of `set` (blocking: env and files), as an apply does.
pub fn resolve_all(set: &ConfigSet) -> ResolvedSecrets {
    set.objects
        .iter()
        .map(|o| {
            let resolved = resolve_secrets(o).map_err(|e| e.to_string());
            ((o.kind(), o.name.clone()), resolved)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_refs_finds_every_reference_by_pointer() {
        let spec = serde_json::json!({
            "token": {"env": "A"},
            "nested": {"list": [{"secret": {"file": "x.txt"}}]},
            "notSecret": {"env": 1},
            "plain": "text"
        });
        let refs = secret_refs(&spec);
        assert_eq!(
            refs,
            vec![
                (
                    "/nested/list/0/secret".to_owned(),
                    SecretRef::File("x.txt".into())
                ),
                ("/token".to_owned(), SecretRef::Env("A".into())),
            ]
        );
    }
}
