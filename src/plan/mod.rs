//! Desired vs applied: what applying the config would change, object by object and field by
//! field, as data. Rendering lives in [`render`], apart from the diff.
//!
//! Pure: takes the loaded [`ConfigSet`], the applied objects and the names of the chat channels
//! that have chats, all read by the caller; no store, no network. Specs are compared as the JSON the store records (defaults filled in), so a
//! default that changes between releases shows as a change. Secret fields hold references
//! (`{env: NAME}`), never values, so the plan can show them as they are.

pub mod render;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::config::{ConfigSet, Kind};
use crate::store::AppliedObject;

/// What happens to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// New in the config.
    Create,
    /// In both, with different specs.
    Update,
    /// Applied, and gone from the config.
    Delete,
    /// A `ChatChannel` gone from the config that has chats: kept, inactive, with its history
    /// (CH-10).
    Deactivate,
}

/// One changed leaf of a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    /// Path inside the object, e.g. `spec.operators[1].user`.
    pub path: String,
    /// The applied value (`None` when the field is new).
    pub old: Option<Value>,
    /// The desired value (`None` when the field goes away).
    pub new: Option<Value>,
}

/// The plan for one object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectPlan {
    /// The kind's name.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// What happens.
    pub action: Action,
    /// The changed fields: every field for a create or delete, the differing ones for an update.
    pub changes: Vec<FieldChange>,
    /// What else the action does beyond the object's own record (a removed account's stored
    /// OAuth tokens are deleted, its records kept), for people.
    pub notes: Vec<String>,
}

/// Every object that would change; unchanged objects are not listed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Changes, in kind order (as applied), then by name.
    pub objects: Vec<ObjectPlan>,
}

impl Plan {
    /// Counts of (create, change, delete); a deactivation is a change.
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |a| self.objects.iter().filter(|o| o.action == a).count();
        (
            n(Action::Create),
            n(Action::Update) + n(Action::Deactivate),
            n(Action::Delete),
        )
    }

    /// Whether applying would change nothing.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// Compares the desired config with what the store says was applied. `with_chats` names the
/// chat channels that have at least one chat: removing one deactivates it instead of deleting
/// it (CH-10); one already deactivated that way is no change.
pub fn diff(desired: &ConfigSet, applied: &[AppliedObject], with_chats: &BTreeSet<String>) -> Plan {
    let rank = |kind: &str| {
        Kind::parse(kind).map_or(usize::MAX, |k| {
            Kind::ALL.iter().position(|x| *x == k).unwrap_or(usize::MAX)
        })
    };
    let mut old: BTreeMap<(usize, String, String), &Value> = applied
        .iter()
        .map(|a| ((rank(&a.kind), a.kind.clone(), a.name.clone()), &a.spec))
        .collect();
    let mut new: BTreeMap<(usize, String, String), Value> = BTreeMap::new();
    for o in &desired.objects {
        let kind = o.kind().as_str().to_owned();
        new.insert((rank(&kind), kind, o.name.clone()), o.spec.to_json());
    }
    let mut keys: Vec<_> = old.keys().chain(new.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    let mut plan = Plan::default();
    for key in keys {
        let before = old.remove(&key);
        let after = new.remove(&key);
        let kept = key.1 == Kind::ChatChannel.as_str() && with_chats.contains(&key.2);
        let (action, changes) = match (before, after) {
            (None, Some(n)) => (Action::Create, leaf_changes("spec", None, Some(&n))),
            (Some(o), None) if kept => {
                let inactive = deactivated(o);
                if inactive == *o {
                    continue;
                }
                (
                    Action::Deactivate,
                    leaf_changes("spec", Some(o), Some(&inactive)),
                )
            }
            (Some(o), None) => (Action::Delete, leaf_changes("spec", Some(o), None)),
            (Some(o), Some(n)) if *o != n => {
                (Action::Update, leaf_changes("spec", Some(o), Some(&n)))
            }
            _ => continue,
        };
        let notes = match action {
            Action::Delete => removal_notes(&key.1),
            _ => Vec::new(),
        };
        plan.objects.push(ObjectPlan {
            kind: key.1,
            name: key.2,
            action,
            changes,
            notes,
        });
    }
    plan
}

/// What removing an object of `kind` does besides deleting its record: an account's grant
/// (tokens its consent or refreshes stored, sealed, under `KIND/NAME`) is deleted in the same
/// transaction; what its syncs imported stays.
fn removal_notes(kind: &str) -> Vec<String> {
    let tokens = "its OAuth tokens stored at run time (from its consent flow) are deleted";
    match Kind::parse(kind) {
        Some(Kind::GoogleAccount) => vec![
            tokens.to_owned(),
            "its contact and calendar syncs stop; the contacts and activities they imported are kept"
                .to_owned(),
        ],
        Some(Kind::LinkedInAccount) => vec![
            tokens.to_owned(),
            "its lead integrations no longer use it; the leads already created are kept".to_owned(),
        ],
        Some(Kind::ContactSync | Kind::CalendarSync) => {
            vec!["it stops syncing; the records it imported are kept".to_owned()]
        }
        _ => Vec::new(),
    }
}

/// The spec a removed `ChatChannel` with chats keeps in the store: the same, with
/// `active: false` (CH-10).
pub fn deactivated(spec: &Value) -> Value {
    let mut spec = spec.clone();
    if let Some(map) = spec.as_object_mut() {
        map.insert("active".into(), Value::Bool(false));
    }
    spec
}

/// Whether `v` is a secret reference (`{env|file|credential: ...}`), shown as one value.
fn is_secret_ref(v: &Value) -> bool {
    v.as_object().is_some_and(|m| {
        m.len() == 1
            && m.keys()
                .all(|k| matches!(k.as_str(), "env" | "file" | "credential"))
    })
}

/// Every leaf path where `old` and `new` differ.
fn leaf_changes(path: &str, old: Option<&Value>, new: Option<&Value>) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk(path, old, new, &mut out);
    out
}

fn walk(path: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<FieldChange>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b)))
            if !is_secret_ref(old.expect("matched")) && !is_secret_ref(new.expect("matched")) =>
        {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                walk(&format!("{path}.{k}"), a.get(k), b.get(k), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for i in 0..a.len().max(b.len()) {
                walk(&format!("{path}[{i}]"), a.get(i), b.get(i), out);
            }
        }
        (Some(Value::Object(m)), None) | (None, Some(Value::Object(m)))
            if !is_secret_ref(old.or(new).expect("one side")) && !m.is_empty() =>
        {
            for (k, v) in m {
                let (o, n) = if old.is_some() {
                    (Some(v), None)
                } else {
                    (None, Some(v))
                };
                walk(&format!("{path}.{k}"), o, n, out);
            }
        }
        _ => out.push(FieldChange {
            path: path.to_owned(),
            old: old.cloned(),
            new: new.cloned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn applied(kind: &str, name: &str, spec: Value) -> AppliedObject {
        AppliedObject {
            kind: kind.into(),
            name: name.into(),
            spec_hash: crate::store::spec_hash(&spec),
            spec,
            generation: 1,
            applied_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn update_lists_changed_leaves_with_old_and_new_values() {
        let changes = leaf_changes(
            "spec",
            Some(&json!({"title": "A", "routing": "toAll", "operators": [{"user": "a"}]})),
            Some(
                &json!({"title": "A", "routing": "leastBusy", "operators": [{"user": "a"}, {"role": "r"}]}),
            ),
        );
        let paths: Vec<_> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["spec.operators[1].role", "spec.routing"]);
        assert_eq!(changes[1].old, Some(json!("toAll")));
        assert_eq!(changes[1].new, Some(json!("leastBusy")));
    }

    #[test]
    fn secret_references_change_as_one_value() {
        let changes = leaf_changes(
            "spec",
            Some(&json!({"token": {"env": "A"}})),
            Some(&json!({"token": {"file": "b"}})),
        );
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].path, "spec.token");
    }

    #[test]
    fn deleted_objects_are_planned_in_kind_order() {
        let set = ConfigSet::default();
        let plan = diff(
            &set,
            &[
                applied("User", "u", json!({"a": 1})),
                applied("Settings", "default", json!({"b": 2})),
            ],
            &BTreeSet::new(),
        );
        assert_eq!(plan.counts(), (0, 0, 2));
        assert_eq!(plan.objects[0].kind, "Settings");
    }

    #[test]
    fn removing_an_account_says_its_stored_tokens_go_and_its_records_stay() {
        // REQ: AS-04
        let set = ConfigSet::default();
        let plan = diff(
            &set,
            &[
                applied("GoogleAccount", "jonas", json!({"user": "jonas"})),
                applied("LinkedInAccount", "alice", json!({"user": "alice"})),
                applied("User", "u", json!({"a": 1})),
            ],
            &BTreeSet::new(),
        );
        let notes = |kind: &str| {
            plan.objects
                .iter()
                .find(|o| o.kind == kind)
                .expect("planned")
                .notes
                .join("; ")
        };
        assert!(notes("GoogleAccount").contains("OAuth tokens"), "{plan:?}");
        assert!(notes("GoogleAccount").contains("are kept"), "{plan:?}");
        assert!(
            notes("LinkedInAccount").contains("OAuth tokens"),
            "{plan:?}"
        );
        assert_eq!(notes("User"), "");
        let text = render::text(&plan);
        assert!(
            text.contains(
                "# its OAuth tokens stored at run time (from its consent flow) are deleted"
            ),
            "{text}"
        );
    }

    // REQ: CH-10
    #[test]
    fn a_removed_channel_with_chats_is_deactivated_once_and_one_without_is_deleted() {
        let set = ConfigSet::default();
        let spec = json!({"provider": "api", "active": true, "queue": "q"});
        let objects = [
            applied("ChatChannel", "old", spec.clone()),
            applied("ChatChannel", "unused", spec.clone()),
        ];
        let with_chats = BTreeSet::from(["old".to_owned()]);
        let plan = diff(&set, &objects, &with_chats);
        assert_eq!(plan.counts(), (0, 1, 1));
        assert_eq!(plan.objects[0].action, Action::Deactivate);
        assert_eq!(plan.objects[0].name, "old");
        assert_eq!(plan.objects[0].changes[0].path, "spec.active");
        assert_eq!(plan.objects[1].action, Action::Delete);

        let after = [applied("ChatChannel", "old", deactivated(&spec))];
        assert!(diff(&set, &after, &with_chats).is_empty());
    }
}
