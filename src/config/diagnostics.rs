//! Config errors as data, and their two renderings.
//!
//! A [`Diagnostic`] is a value — file, position, object, field path, message, hint and a stable
//! code — produced by the loader and the cross-checks, and rendered once: as compiler-style
//! text with a source snippet, or as JSON for tools. Messages never contain secret values: the
//! loader never reads secrets, and a secret field holds only a reference.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::yaml::Pos;

/// Stable error codes, so tools and tests can match on them.
pub mod code {
    /// The file could not be read, or a `--config` directory is missing.
    pub const IO: &str = "config::io";
    /// YAML syntax.
    pub const SYNTAX: &str = "config::syntax";
    /// `apiVersion`, `kind`, `metadata` or the document's shape.
    pub const ENVELOPE: &str = "config::envelope";
    /// A field the kind does not have.
    pub const UNKNOWN_FIELD: &str = "config::unknown-field";
    /// A required field is absent.
    pub const MISSING_FIELD: &str = "config::missing-field";
    /// A value of the wrong type or outside the allowed set.
    pub const INVALID_VALUE: &str = "config::invalid-value";
    /// Two objects of one kind share a name.
    pub const DUPLICATE: &str = "config::duplicate-name";
    /// A reference to an object that does not exist (or is of the wrong sort).
    pub const REFERENCE: &str = "config::unresolved-reference";
    /// Fields that contradict each other.
    pub const CONFLICT: &str = "config::conflict";
    /// An object needs a system operation its user does not hold (a shared mailbox's owner
    /// without `CanConnectSharedMailbox` / `CanManageSharedMailboxSync`, MB-04).
    pub const MISSING_OPERATION: &str = "config::missing-operation";
    /// A secret written inline. Its snippet is never shown: it would print the secret.
    pub const INLINE_SECRET: &str = "config::inline-secret";
}

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable code, e.g. `config::unknown-field`.
    pub code: &'static str,
    /// The manifest file.
    pub file: PathBuf,
    /// 1-based line (0 when the problem is the file itself).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Characters to underline.
    #[serde(skip)]
    pub width: usize,
    /// `Kind/name` of the object, when known.
    pub object: Option<String>,
    /// Field path inside the document, e.g. `spec.operators[1].user`.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What to do about it, when there is something useful to say.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at `pos` in `file`.
    pub fn new(code: &'static str, file: &Path, pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            file: file.to_path_buf(),
            line: pos.line,
            column: pos.col,
            width: 1,
            object: None,
            field: None,
            message: message.into(),
            hint: None,
        }
    }

    /// Sets the underline width.
    pub fn width(mut self, width: usize) -> Self {
        self.width = width.max(1);
        self
    }

    /// Names the object.
    pub fn object(mut self, object: Option<String>) -> Self {
        self.object = object;
        self
    }

    /// Names the field path.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        self.field = (!field.is_empty()).then_some(field);
        self
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Renders diagnostics as compiler-style text, with the offending source line when the file's
/// text is in `sources`, and a closing summary.
pub fn render_text(diags: &[Diagnostic], sources: &HashMap<PathBuf, Arc<str>>) -> String {
    let mut out = String::new();
    for d in diags {
        let _ = writeln!(out, "error[{}]: {}", d.code, d.message);
        if d.line == 0 {
            let _ = writeln!(out, "  --> {}", d.file.display());
        } else {
            let _ = writeln!(out, "  --> {}:{}:{}", d.file.display(), d.line, d.column);
            if let Some(text) = sources
                .get(&d.file)
                .filter(|_| d.code != code::INLINE_SECRET)
                .and_then(|s| s.lines().nth(d.line - 1))
            {
                let gutter = d.line.to_string().len();
                let pad = " ".repeat(gutter);
                let caret_pad: String = text
                    .chars()
                    .take(d.column.saturating_sub(1))
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                // An unknown field may be a misspelled secret field: show the line only up to
                // the end of its key, never the value.
                let shown: String = if d.code == code::UNKNOWN_FIELD {
                    let cut: String = text.chars().take(d.column - 1 + d.width).collect();
                    if cut.chars().count() < text.chars().count() {
                        format!("{cut}: …")
                    } else {
                        cut
                    }
                } else {
                    text.to_owned()
                };
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{} | {}", d.line, shown);
                let _ = writeln!(out, "{pad} | {caret_pad}{}", "^".repeat(d.width.max(1)));
            }
        }
        let pad = " ".repeat(d.line.to_string().len().max(1));
        if let Some(object) = &d.object {
            let _ = writeln!(out, "{pad} = object: {object}");
        }
        if let Some(field) = &d.field {
            let _ = writeln!(out, "{pad} = field: {field}");
        }
        if let Some(hint) = &d.hint {
            let _ = writeln!(out, "{pad} = help: {hint}");
        }
        out.push('\n');
    }
    let files = diags
        .iter()
        .map(|d| &d.file)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let _ = writeln!(
        out,
        "error: {} {} in {} {}; the configuration is not valid",
        diags.len(),
        if diags.len() == 1 { "error" } else { "errors" },
        files,
        if files == 1 { "file" } else { "files" },
    );
    out
}

/// Renders diagnostics as a JSON array of objects.
pub fn render_json(diags: &[Diagnostic]) -> String {
    serde_json::to_string_pretty(diags).expect("diagnostics serialize")
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(&word.to_lowercase(), &c.to_lowercase()), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: edits, with a swap of two neighbours counting as one
/// (`tokne` is one edit from `token`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("rooting", &["routing", "title"]),
            Some("routing")
        );
        assert_eq!(did_you_mean("colour", &["routing", "title"]), None);
        assert_eq!(did_you_mean("tokne", &["token", "title"]), Some("token"));
    }

    #[test]
    fn text_rendering_points_at_the_column() {
        let file = PathBuf::from("x.yaml");
        let mut sources = HashMap::new();
        sources.insert(file.clone(), Arc::from("a: 1\n  routing: roundRobin\n"));
        let d = Diagnostic::new(code::INVALID_VALUE, &file, Pos { line: 2, col: 12 }, "bad")
            .width(10)
            .hint("expected one of toAll, leastBusy");
        let text = render_text(&[d], &sources);
        assert!(text.contains("  --> x.yaml:2:12\n"), "{text}");
        assert!(
            text.contains("2 |   routing: roundRobin\n  |            ^^^^^^^^^^\n"),
            "{text}"
        );
        assert!(text.contains("= help: expected one of toAll, leastBusy"));
        assert!(text.ends_with("error: 1 error in 1 file; the configuration is not valid\n"));
    }
}
