//! Renders a [`Plan`] the way Terraform does: a sign per object, changed fields with old → new
//! values, then a summary line.

use std::fmt::Write as _;

use serde_json::Value;

use super::{Action, Plan};

/// The plan as text for people.
pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    if plan.is_empty() {
        out.push_str("No changes. The applied state matches the configuration.\n");
        return out;
    }
    out.push_str("Switchboard will perform the following actions:\n\n");
    for o in &plan.objects {
        let (sign, what) = match o.action {
            Action::Create => ('+', "will be created"),
            Action::Update => ('~', "will be updated in place"),
            Action::Delete => ('-', "will be destroyed"),
            Action::Deactivate => ('~', "will be deactivated (it has chats; history is kept)"),
        };
        let _ = writeln!(out, "  {sign} {}/{} {what}", o.kind, o.name);
        for c in &o.changes {
            let line = match (&c.old, &c.new) {
                (None, Some(n)) => format!("      + {} = {}", c.path, value(n)),
                (Some(old), None) => format!("      - {} = {}", c.path, value(old)),
                (Some(old), Some(n)) => {
                    format!("      ~ {}: {} → {}", c.path, value(old), value(n))
                }
                (None, None) => continue,
            };
            out.push_str(&line);
            out.push('\n');
        }
        for note in &o.notes {
            let _ = writeln!(out, "      # {note}");
        }
        out.push('\n');
    }
    let (add, change, destroy) = plan.counts();
    let _ = writeln!(
        out,
        "Plan: {add} to add, {change} to change, {destroy} to destroy."
    );
    out
}

/// A value as one short line: strings quoted, secret references as `{env: NAME}`.
fn value(v: &Value) -> String {
    if let Some(m) = v.as_object()
        && m.len() == 1
        && let Some((k, Value::String(s))) = m.iter().next()
        && matches!(k.as_str(), "env" | "file" | "credential")
    {
        return format!("(secret {{{k}: {s}}})");
    }
    match v {
        Value::String(s) if s.contains('\n') => {
            format!(
                "{:?} (+{} lines)",
                s.lines().next().unwrap_or(""),
                s.lines().count() - 1
            )
        }
        _ => v.to_string(),
    }
}
