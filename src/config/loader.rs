//! Reads every manifest under the `--config` directories into a [`ConfigSet`], collecting
//! every problem as a [`Diagnostic`] instead of stopping at the first.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::diagnostics::{Diagnostic, code, did_you_mean};
use super::yaml::{self, Node, PathSeg};
use super::{API_VERSION, ConfigSet, Kind, Object, Origin, check, render_path};

/// What loading produced: the set when it is valid, every diagnostic otherwise, and the source
/// texts so the diagnostics can be rendered with snippets.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// The configuration, when there are no diagnostics.
    pub set: Option<ConfigSet>,
    /// Every problem found.
    pub diagnostics: Vec<Diagnostic>,
    /// The text of every file read.
    pub sources: HashMap<PathBuf, Arc<str>>,
    /// How many files were read.
    pub files: usize,
}

impl LoadOutcome {
    /// The valid set, or the diagnostics.
    pub fn into_result(self) -> Result<ConfigSet, Vec<Diagnostic>> {
        match self.set {
            Some(set) => Ok(set),
            None => Err(self.diagnostics),
        }
    }
}

/// Loads every `*.yaml` / `*.yml` under each directory (recursively, sorted) and validates the
/// whole set. A directory that does not exist is an error: a typo in `--config` must not look
/// like an empty configuration.
pub fn load(dirs: &[PathBuf]) -> LoadOutcome {
    let mut outcome = LoadOutcome::default();
    let mut texts = Vec::new();
    for dir in dirs {
        let mut files = Vec::new();
        if let Err(e) = collect_files(dir, &mut files) {
            outcome.diagnostics.push(
                Diagnostic::new(
                    code::IO,
                    dir,
                    yaml::Pos::default(),
                    format!("cannot read config directory: {e}"),
                )
                .hint("pass an existing directory with -c/--config (or set SWITCHBOARD_CONFIG)"),
            );
            continue;
        }
        files.sort();
        for file in files {
            outcome.files += 1;
            match std::fs::read_to_string(&file) {
                Ok(text) => texts.push((file, Arc::from(text))),
                Err(e) => outcome.diagnostics.push(Diagnostic::new(
                    code::IO,
                    &file,
                    yaml::Pos::default(),
                    format!("cannot read manifest: {e}"),
                )),
            }
        }
    }
    load_texts_into(outcome, texts)
}

/// Loads manifests given as `(path, text)` pairs, in that order, as [`load`] loads files: the
/// paths only name the sources in diagnostics. For tools and fuzzing; touches no file.
pub fn load_texts(files: Vec<(PathBuf, Arc<str>)>) -> LoadOutcome {
    let outcome = LoadOutcome {
        files: files.len(),
        ..LoadOutcome::default()
    };
    load_texts_into(outcome, files)
}

fn load_texts_into(mut outcome: LoadOutcome, files: Vec<(PathBuf, Arc<str>)>) -> LoadOutcome {
    let mut objects = Vec::new();
    let mut broken = HashSet::new();
    let mut unparsed = Unparsed::default();
    for (file, text) in files {
        let text = lone_carriage_returns_as_newlines(text);
        outcome.sources.insert(file.clone(), text.clone());
        read_file(
            &file,
            &text,
            &mut objects,
            &mut broken,
            &mut unparsed,
            &mut outcome.diagnostics,
        );
    }
    let set = ConfigSet { objects };
    outcome
        .diagnostics
        .extend(check::check(&set, &broken, &unparsed));
    for d in &mut outcome.diagnostics {
        if let Some(text) = outcome.sources.get(&d.file) {
            clamp_into(d, text);
        }
    }
    if outcome.diagnostics.is_empty() {
        outcome.set = Some(set);
    }
    outcome
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue; // .git, editor swap files
        }
        if entry.file_type()?.is_dir() {
            collect_files(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// YAML counts a lone `\r` as a line break, and so does the parser's position; editors and the
/// diagnostic renderer count `\n` only. A lone `\r` becomes `\n` (same length, so every byte
/// offset holds) and both count the same lines.
fn lone_carriage_returns_as_newlines(text: Arc<str>) -> Arc<str> {
    let bytes = text.as_bytes();
    let lone = |i: usize| bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n');
    if !(0..bytes.len()).any(lone) {
        return text;
    }
    let fixed: String = text
        .char_indices()
        .map(|(i, c)| if c == '\r' && lone(i) { '\n' } else { c })
        .collect();
    Arc::from(fixed)
}

/// Keeps a diagnostic's position inside its file: the parser places an error at the end of the
/// input one line past the last one, where there is nothing to show.
fn clamp_into(d: &mut Diagnostic, text: &str) {
    if d.line == 0 {
        return;
    }
    let lines: Vec<&str> = text.split('\n').collect();
    if d.line > lines.len() {
        d.line = lines.len();
        d.column = usize::MAX;
    }
    let width = lines[d.line - 1].trim_end_matches('\r').chars().count();
    d.column = d.column.clamp(1, width + 1);
}

/// Objects that were named but did not load; references to them are not reported again.
pub(crate) type Broken = HashSet<(Kind, String)>;

/// What files with a YAML syntax error might define. Their objects are unknown, so a reference
/// is not reported when its name appears as a `name:` value in such a file (nor a mail domain
/// that appears in one): every other reference is checked as usual, so one file's syntax error
/// hides nothing about the other files.
#[derive(Debug, Default)]
pub(crate) struct Unparsed {
    names: HashSet<String>,
    texts: Vec<Arc<str>>,
}

impl Unparsed {
    fn add(&mut self, text: &str) {
        static NAME: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(r#"(?:^|[\s{,])name:\s*["']?([^\s,}#"']+)"#)
                .expect("the name pattern compiles")
        });
        for found in NAME.captures_iter(text) {
            self.names.insert(found[1].to_owned());
        }
        self.texts.push(Arc::from(text));
    }

    /// Whether an unparsable file may define an object named `name`.
    pub(crate) fn may_define(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// Whether an unparsable file mentions `word` (a mail domain) anywhere.
    pub(crate) fn mentions(&self, word: &str) -> bool {
        self.texts.iter().any(|t| t.contains(word))
    }
}

fn read_file(
    file: &Path,
    text: &str,
    objects: &mut Vec<Object>,
    broken: &mut Broken,
    unparsed: &mut Unparsed,
    diags: &mut Vec<Diagnostic>,
) {
    let docs = match yaml::parse(text) {
        Ok(docs) => docs,
        Err(e) => {
            unparsed.add(text);
            diags.push(Diagnostic::new(
                code::SYNTAX,
                file,
                e.pos,
                format!("YAML syntax: {}", e.message),
            ));
            return;
        }
    };
    for doc in docs {
        let Some(root) = doc.root else { continue };
        match read_document(file, root, diags) {
            Ok(object) => objects.push(object),
            Err(Some(id)) => {
                broken.insert(id);
            }
            Err(None) => {}
        }
    }
}

const ENVELOPE_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec"];

/// Reads one document; pushes diagnostics and fails (with its kind and name when known) when
/// it is not a valid object.
fn read_document(
    file: &Path,
    root: Node,
    diags: &mut Vec<Diagnostic>,
) -> Result<Object, Option<(Kind, String)>> {
    let origin = Origin {
        file: file.to_path_buf(),
        node: Arc::new(root),
    };
    let root = &*origin.node;
    let envelope = |path: &[PathSeg], message: String| {
        let node = root.locate(path);
        Diagnostic::new(code::ENVELOPE, file, node.pos(), message)
            .width(node.width())
            .field(render_path(path))
    };
    let Node::Map { entries, .. } = root else {
        diags.push(envelope(
            &[],
            "a manifest document must be a mapping with apiVersion, kind, metadata and spec".into(),
        ));
        return Err(None);
    };

    let kind_name = root.get("kind").and_then(Node::as_str);
    let name = root
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Node::as_str);
    let object_id = match (kind_name, name) {
        (Some(k), Some(n)) => Some(format!("{k}/{n}")),
        (Some(k), None) => Some(k.to_owned()),
        _ => None,
    };
    let mut problems: Vec<Diagnostic> = Vec::new();
    let mut report = |d: Diagnostic| problems.push(d.object(object_id.clone()));

    for (key, pos, _) in entries {
        if !ENVELOPE_FIELDS.contains(&&**key) {
            let mut d = Diagnostic::new(
                code::UNKNOWN_FIELD,
                file,
                *pos,
                format!("unknown field `{key}`"),
            )
            .width(key.chars().count())
            .field(key.clone());
            d = d.hint(match did_you_mean(key, ENVELOPE_FIELDS) {
                Some(s) => format!(
                    "did you mean `{s}`? a document has apiVersion, kind, metadata and spec"
                ),
                None => "a document has apiVersion, kind, metadata and spec".to_owned(),
            });
            report(d);
        }
    }

    match root.get("apiVersion").map(|n| (n, n.as_str())) {
        None => report(
            envelope(&[], "missing field `apiVersion`".into())
                .hint(format!("add `apiVersion: {API_VERSION}`")),
        ),
        Some((_, Some(API_VERSION))) => {}
        Some((_, v)) => report(
            envelope(
                &[PathSeg::Key("apiVersion".into())],
                format!("unsupported apiVersion `{}`", v.unwrap_or("(not a string)")),
            )
            .hint(format!("this release reads `{API_VERSION}`")),
        ),
    }

    let kind = match root.get("kind") {
        None => {
            report(envelope(&[], "missing field `kind`".into()).hint(kinds_hint(None)));
            None
        }
        Some(node) => {
            let text = node.as_str().unwrap_or_default();
            let kind = Kind::parse(text);
            if kind.is_none() {
                report(
                    envelope(
                        &[PathSeg::Key("kind".into())],
                        format!("unknown kind `{text}`"),
                    )
                    .hint(kinds_hint(Some(text))),
                );
            }
            kind
        }
    };

    let mut labels = BTreeMap::new();
    let name = match root.get("metadata") {
        None => {
            report(
                envelope(&[], "missing field `metadata`".into())
                    .hint("add `metadata: {name: ...}`"),
            );
            None
        }
        Some(meta) => {
            match serde_path_to_error::deserialize::<_, Metadata>(super::de::NodeDeserializer(meta))
            {
                Ok(m) => {
                    labels = m.labels;
                    if is_dns_label(&m.name) {
                        Some(m.name)
                    } else {
                        report(
                        envelope(&[PathSeg::Key("metadata".into()), PathSeg::Key("name".into())], format!("invalid name `{}`", m.name))
                            .hint("a name is a lower-case DNS label: a-z, 0-9 and '-', at most 63 characters, starting and ending with a letter or digit"),
                    );
                        None
                    }
                }
                Err(e) => {
                    report(serde_diagnostic(
                        file,
                        root,
                        &[PathSeg::Key("metadata".into())],
                        &e,
                    ));
                    None
                }
            }
        }
    };

    let spec_node = root.get("spec");
    if spec_node.is_none() {
        report(envelope(&[], "missing field `spec`".into()));
    }
    let spec = match (kind, spec_node) {
        (Some(kind), Some(spec_node)) => {
            // Every unknown key at once; serde would stop at the first.
            let spec_path = [PathSeg::Key("spec".into())];
            let unknown = super::unknown::unknown_fields(kind, spec_node, &spec_path);
            for u in &unknown {
                let mut field = u.parent.clone();
                field.push(PathSeg::Key(u.key.clone()));
                let allowed: Vec<&str> = u.allowed.iter().map(String::as_str).collect();
                let hint = match did_you_mean(&u.key, &allowed) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("expected one of {}", allowed.join(", ")),
                };
                report(
                    Diagnostic::new(
                        code::UNKNOWN_FIELD,
                        file,
                        u.pos,
                        format!("unknown field `{}`", u.key),
                    )
                    .width(u.key.chars().count())
                    .field(render_path(&field))
                    .hint(hint),
                );
            }
            // With the unknown keys taken out, serde reports the first error of another sort
            // (positions still come from the document as written).
            let pruned;
            let readable = if unknown.is_empty() {
                spec_node
            } else {
                pruned = super::unknown::without(spec_node, &spec_path, &unknown);
                &pruned
            };
            match kind.read_spec(readable) {
                Ok(spec) if unknown.is_empty() => Some(spec),
                Ok(_) => None,
                Err(e) => {
                    report(serde_diagnostic(
                        file,
                        root,
                        &[PathSeg::Key("spec".into())],
                        &e,
                    ));
                    None
                }
            }
        }
        _ => None,
    };
    let valid = problems.is_empty();
    diags.append(&mut problems);
    match (kind, name, spec) {
        (_, Some(name), Some(spec)) if valid => Ok(Object {
            name,
            labels,
            spec,
            origin: origin.clone(),
        }),
        (Some(kind), Some(name), _) => Err(Some((kind, name))),
        _ => Err(None),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn kinds_hint(text: Option<&str>) -> String {
    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    match text.and_then(|t| did_you_mean(t, &names)) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("expected one of {}", names.join(", ")),
    }
}

/// Whether `name` is a lower-case DNS label (RFC 1123).
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Turns a serde error at `base` (inside `root`) + its path into a positioned diagnostic with a
/// hint.
fn serde_diagnostic(
    file: &Path,
    root: &Node,
    base: &[PathSeg],
    err: &serde_path_to_error::Error<super::de::Error>,
) -> Diagnostic {
    let mut rel: Vec<PathSeg> = Vec::new();
    for seg in err.path().iter() {
        match seg {
            serde_path_to_error::Segment::Map { key } => rel.push(PathSeg::Key(key.clone())),
            serde_path_to_error::Segment::Seq { index } => rel.push(PathSeg::Index(*index)),
            serde_path_to_error::Segment::Enum { variant } => {
                rel.push(PathSeg::Key(variant.clone()))
            }
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    let raw = err.inner().0.clone();
    // serde names an unknown field by its own path; point at its key in the parent mapping.
    if let Some(rest) = raw.strip_prefix("unknown field `") {
        let field = rest.split_once('`').map_or(rest, |(f, _)| f);
        if rel.last() == Some(&PathSeg::Key(field.to_owned())) {
            rel.pop();
        }
    }
    let mut full: Vec<PathSeg> = base.to_vec();
    full.extend(rel.iter().cloned());
    let target = root.locate(&full);

    let (code, message, hint, pos, width) = if let Some(rest) = raw.strip_prefix("unknown field `")
    {
        let (field, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = parse_expected(tail);
        let candidates: Vec<&str> = expected.iter().map(String::as_str).collect();
        let hint = match did_you_mean(field, &candidates) {
            Some(s) => Some(format!("did you mean `{s}`?")),
            None if !candidates.is_empty() => {
                Some(format!("expected one of {}", candidates.join(", ")))
            }
            None => None,
        };
        let pos = target.key_pos(field).unwrap_or(target.pos());
        full.push(PathSeg::Key(field.to_owned()));
        (
            code::UNKNOWN_FIELD,
            format!("unknown field `{field}`"),
            hint,
            pos,
            field.chars().count(),
        )
    } else if let Some(rest) = raw.strip_prefix("unknown variant `") {
        let (value, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = parse_expected(tail);
        let names: Vec<&str> = expected.iter().map(String::as_str).collect();
        let hint = match did_you_mean(value, &names) {
            Some(s) => format!("did you mean `{s}`? expected one of {}", names.join(", ")),
            None => format!("expected one of {}", names.join(", ")),
        };
        (
            code::INVALID_VALUE,
            format!("unknown value `{value}`"),
            Some(hint),
            target.pos(),
            target.width(),
        )
    } else if raw.starts_with("inline secrets are not allowed") {
        (
            code::INLINE_SECRET,
            raw.clone(),
            None,
            target.pos(),
            target.width(),
        )
    } else if let Some(rest) = raw.strip_prefix("missing field `") {
        let field = rest.split_once('`').map_or(rest, |(f, _)| f);
        let message = format!("missing required field `{field}`");
        // Point at the key of the mapping that lacks the field (`spec:`).
        let (pos, width) = root.point(&full);
        full.push(PathSeg::Key(field.to_owned()));
        (
            code::MISSING_FIELD,
            message,
            Some(format!("add `{field}:`")),
            pos,
            width,
        )
    } else {
        (
            code::INVALID_VALUE,
            raw.clone(),
            None,
            target.pos(),
            target.width(),
        )
    };
    let mut d = Diagnostic::new(code, file, pos, message)
        .width(width)
        .field(render_path(&full));
    if let Some(h) = hint {
        d = d.hint(h);
    }
    d
}

/// Pulls the names out of serde's "expected one of `a`, `b`" / "expected `a` or `b`" tails.
fn parse_expected(tail: &str) -> Vec<String> {
    let Some(idx) = tail.find("expected") else {
        return Vec::new();
    };
    tail[idx..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(yaml: &str) -> LoadOutcome {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.yaml"), yaml).unwrap();
        load(&[dir.path().to_path_buf()])
    }

    fn first(outcome: &LoadOutcome) -> &Diagnostic {
        outcome.diagnostics.first().expect("a diagnostic")
    }

    #[test]
    fn unknown_enum_value_names_the_alternatives() {
        let out = load_str(
            "apiVersion: switchboard/v1\nkind: ChatQueue\nmetadata: {name: support}\nspec:\n  title: S\n  routing: roundRobin\n",
        );
        let d = first(&out);
        assert_eq!((d.line, d.column), (6, 12));
        assert_eq!(d.field.as_deref(), Some("spec.routing"));
        assert_eq!(d.object.as_deref(), Some("ChatQueue/support"));
        assert_eq!(d.hint.as_deref(), Some("expected one of toAll, leastBusy"));
    }

    #[test]
    fn unknown_field_points_at_the_key_and_suggests() {
        let out = load_str(
            "apiVersion: switchboard/v1\nkind: ChatQueue\nmetadata: {name: support}\nspec:\n  title: S\n  rooting: toAll\n",
        );
        let d = first(&out);
        assert_eq!(d.code, code::UNKNOWN_FIELD);
        assert_eq!((d.line, d.column), (6, 3));
        assert_eq!(d.field.as_deref(), Some("spec.rooting"));
        assert_eq!(d.hint.as_deref(), Some("did you mean `routing`?"));
    }

    #[test]
    fn every_unknown_field_of_a_document_and_one_more_error_are_reported() {
        let out = load_str(
            "apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {name: corp}\nspec:\n  type: imap\n  titel: Corp\n  imap: {host: h, prot: 993}\n  smtp: {host: h}\n  loginFormat: emial\n",
        );
        let found: Vec<(&str, Option<&str>)> = out
            .diagnostics
            .iter()
            .map(|d| (d.code, d.field.as_deref()))
            .collect();
        assert_eq!(
            found,
            [
                (code::UNKNOWN_FIELD, Some("spec.titel")),
                (code::UNKNOWN_FIELD, Some("spec.imap.prot")),
                (code::INVALID_VALUE, Some("spec.loginFormat")),
            ],
            "{:#?}",
            out.diagnostics
        );
    }

    #[test]
    fn every_broken_document_is_reported() {
        let out = load_str(
            "apiVersion: switchboard/v1\nkind: Nope\nmetadata: {name: a}\nspec: {}\n---\napiVersion: switchboard/v2\nkind: Role\nmetadata: {name: B}\nspec: {title: x}\n",
        );
        assert_eq!(out.diagnostics.len(), 3, "{:#?}", out.diagnostics);
        assert!(out.set.is_none());
    }

    #[test]
    fn a_syntax_error_in_one_file_hides_no_reference_problem_of_another() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a-broken.yaml"),
            "apiVersion: switchboard/v1\nkind: User\nmetadata: {name: carol}\nspec: [oops\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b-queue.yaml"),
            "apiVersion: switchboard/v1\nkind: ChatQueue\nmetadata: {name: support}\nspec:\n  title: S\n  routing: toAll\n  operators: [{user: carol}, {user: dave}]\n",
        )
        .unwrap();
        let out = load(&[dir.path().to_path_buf()]);
        let found: Vec<(&str, Option<&str>)> = out
            .diagnostics
            .iter()
            .map(|d| (d.code, d.field.as_deref()))
            .collect();
        // carol may be defined in the file that does not parse; dave is defined nowhere.
        assert_eq!(
            found,
            [
                (code::SYNTAX, None),
                (code::REFERENCE, Some("spec.operators[1].user")),
            ],
            "{:#?}",
            out.diagnostics
        );
    }

    /// Every diagnostic of `out` points at a line of the file and a column of that line (or
    /// just past its end), counting lines as editors do.
    fn assert_positions_inside(out: &LoadOutcome) {
        for d in &out.diagnostics {
            let text = &out.sources[&d.file];
            let lines: Vec<&str> = text.split('\n').collect();
            assert!(d.line >= 1 && d.line <= lines.len(), "{d:?} in {text:?}");
            let width = lines[d.line - 1].chars().count();
            assert!(d.column >= 1 && d.column <= width + 1, "{d:?} in {text:?}");
        }
    }

    #[test]
    fn a_syntax_error_at_the_end_of_the_input_points_inside_it() {
        // Found by fuzz/run.sh (manifest): the parser places it one line past the last.
        let out = load_str(
            "apiVersion: switchboard/v1\nkind: Role\nmetadata: {name: a}\nspec: {title: x}\nAAAA",
        );
        assert_eq!(first(&out).code, code::SYNTAX);
        assert_positions_inside(&out);
    }

    #[test]
    fn lone_carriage_returns_count_as_line_breaks_for_positions() {
        // Found by fuzz/run.sh (manifest): YAML breaks lines at a lone CR, editors at LF.
        let out =
            load_str("apiVersion: switchboard/v1\rkind: Role\rmetadata: {name: a}\rspec: [x\r");
        assert_eq!(first(&out).code, code::SYNTAX);
        assert_positions_inside(&out);
        let out = load_str(
            "apiVersion: switchboard/v1\r\nkind: Rol\r\nmetadata: {name: a}\r\nspec: {title: x}\r\n",
        );
        assert_eq!((first(&out).line, first(&out).column), (2, 7));
        assert_positions_inside(&out);
    }

    #[test]
    fn missing_directory_is_an_error_not_an_empty_config() {
        let out = load(&[PathBuf::from("/nonexistent/switchboard-config")]);
        assert_eq!(first(&out).code, code::IO);
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("support-2"));
        assert!(!is_dns_label("Support"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label(""));
    }
}
