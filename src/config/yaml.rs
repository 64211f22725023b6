//! A YAML tree that remembers where every node came from.
//!
//! saphyr-parser gives events with spans; this module folds them into [`Node`]s so that any
//! field path reported later (by serde, or by a cross-reference check) can be mapped back to
//! `line:column`. It supports what manifests need — mappings, sequences, scalars, several
//! documents per file — and refuses anchors, aliases, tags and non-scalar keys with a
//! positioned error instead of guessing. It must not know anything about manifest kinds.

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

impl Pos {
    fn from_span(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            col: span.start.col() + 1,
        }
    }
}

/// One node of a parsed YAML document, with the position where it starts.
#[derive(Debug, Clone)]
pub enum Node {
    /// A scalar; `plain` is false for quoted and block scalars, which are always strings.
    Scalar {
        /// The scalar's text (boxed: no spare capacity kept for every scalar of a config).
        value: Box<str>,
        /// Whether the scalar was written plain (unquoted), and so may be a number or bool.
        plain: bool,
        /// Where it starts.
        pos: Pos,
        /// Its length in characters on its first line (for underlining).
        len: usize,
    },
    /// A mapping, keys in source order.
    Map {
        /// `(key, key position, value)` in source order.
        entries: Vec<(Box<str>, Pos, Node)>,
        /// Where it starts.
        pos: Pos,
    },
    /// A sequence.
    Seq {
        /// The items.
        items: Vec<Node>,
        /// Where it starts.
        pos: Pos,
    },
}

/// A YAML syntax error, positioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where the parser stopped.
    pub pos: Pos,
    /// What it found.
    pub message: String,
}

/// One step of a field path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A document of a multi-document file, with the position of its first node.
#[derive(Debug, Clone)]
pub struct Document {
    /// The document's root node (`None` for an empty document such as a lone `---`).
    pub root: Option<Node>,
    /// Where the document starts.
    pub pos: Pos,
}

impl Node {
    /// Where this node starts.
    pub fn pos(&self) -> Pos {
        match self {
            Node::Scalar { pos, .. } | Node::Map { pos, .. } | Node::Seq { pos, .. } => *pos,
        }
    }

    /// Width to underline in a snippet: the scalar's length, 1 for collections.
    pub fn width(&self) -> usize {
        match self {
            Node::Scalar { len, .. } => (*len).max(1),
            _ => 1,
        }
    }

    /// The value under `key` when this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map { entries, .. } => entries.iter().find(|(k, _, _)| **k == *key).map(|e| &e.2),
            _ => None,
        }
    }

    /// The position of `key` itself (not its value) when this is a mapping.
    pub fn key_pos(&self, key: &str) -> Option<Pos> {
        match self {
            Node::Map { entries, .. } => entries.iter().find(|(k, _, _)| **k == *key).map(|e| e.1),
            _ => None,
        }
    }

    /// The scalar text, if this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// Follows `path` as far as it goes and returns the deepest node reached, so that an error
    /// about a missing field points at the mapping that should hold it.
    pub fn locate(&self, path: &[PathSeg]) -> &Node {
        let mut node = self;
        for seg in path {
            let next = match (seg, node) {
                (PathSeg::Key(k), Node::Map { .. }) => node.get(k),
                (PathSeg::Index(i), Node::Seq { items, .. }) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }

    /// The node at exactly `path`, mutably.
    pub fn locate_mut(&mut self, path: &[PathSeg]) -> Option<&mut Node> {
        let mut node = self;
        for seg in path {
            node = match (seg, node) {
                (PathSeg::Key(k), Node::Map { entries, .. }) => {
                    &mut entries.iter_mut().find(|(key, _, _)| **key == **k)?.2
                }
                (PathSeg::Index(i), Node::Seq { items, .. }) => items.get_mut(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Where a diagnostic about `path` should point, and how wide: the deepest node reached;
    /// but when that is a mapping or sequence reached through a key, the key itself (`spec:`),
    /// since a collection's own position is that of its first child.
    pub fn point(&self, path: &[PathSeg]) -> (Pos, usize) {
        let mut node = self;
        let mut via_key: Option<(&Node, &str)> = None;
        for seg in path {
            let next = match (seg, node) {
                (PathSeg::Key(k), Node::Map { .. }) => node.get(k),
                (PathSeg::Index(i), Node::Seq { items, .. }) => items.get(*i),
                _ => None,
            };
            let Some(next) = next else { break };
            via_key = match seg {
                PathSeg::Key(k) => Some((node, k.as_str())),
                PathSeg::Index(_) => None,
            };
            node = next;
        }
        match (node, via_key) {
            (Node::Map { .. } | Node::Seq { .. }, Some((parent, key))) => (
                parent.key_pos(key).unwrap_or(node.pos()),
                key.chars().count(),
            ),
            _ => (node.pos(), node.width()),
        }
    }

    /// Converts to JSON using the YAML 1.2 core schema for plain scalars: `null`/`~`/empty,
    /// `true`/`false`, integers and floats are typed; everything quoted is a string.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Scalar { value, plain, .. } => {
                if !plain {
                    return Value::String(value.to_string());
                }
                core_schema_scalar(value)
            }
            Node::Map { entries, .. } => Value::Object(
                entries
                    .iter()
                    .map(|(k, _, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
            Node::Seq { items, .. } => Value::Array(items.iter().map(Node::to_json).collect()),
        }
    }
}

fn core_schema_scalar(value: &str) -> serde_json::Value {
    use serde_json::Value;
    match value {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let looks_numeric = value
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        && value.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric {
        if let Ok(i) = value.parse::<i64>() {
            return Value::from(i);
        }
        if let Ok(f) = value.parse::<f64>()
            && let Some(n) = serde_json::Number::from_f64(f)
        {
            return Value::Number(n);
        }
    }
    Value::String(value.to_owned())
}

enum Frame {
    Map {
        entries: Vec<(Box<str>, Pos, Node)>,
        pending_key: Option<(Box<str>, Pos)>,
        pos: Pos,
    },
    Seq {
        items: Vec<Node>,
        pos: Pos,
    },
}

/// Parses every document of `source`.
pub fn parse(source: &str) -> Result<Vec<Document>, SyntaxError> {
    let mut parser = Parser::new_from_str(source);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut doc_pos = Pos::default();
    let mut root: Option<Node> = None;
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| SyntaxError {
            pos: Pos {
                line: e.marker().line(),
                col: e.marker().col() + 1,
            },
            message: e.info().to_owned(),
        })?;
        let pos = Pos::from_span(&span);
        let refuse = |what: &str| SyntaxError {
            pos,
            message: format!("{what} are not supported in manifests; write the value out"),
        };
        let finished: Option<Node> = match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing => None,
            Event::DocumentStart(_) => {
                doc_pos = pos;
                root = None;
                None
            }
            Event::DocumentEnd => {
                // An empty document (a lone `---`) comes as one empty plain scalar.
                let root = root.take().filter(
                    |n| !matches!(n, Node::Scalar { value, plain: true, .. } if value.is_empty()),
                );
                docs.push(Document { root, pos: doc_pos });
                None
            }
            Event::Alias(_) => return Err(refuse("YAML aliases (*name)")),
            Event::MappingStart(anchor, tag) | Event::SequenceStart(anchor, tag)
                if anchor != 0 || tag.is_some() =>
            {
                return Err(refuse(if anchor != 0 {
                    "YAML anchors (&name)"
                } else {
                    "YAML tags (!tag)"
                }));
            }
            Event::Scalar(_, _, anchor, tag) if anchor != 0 || tag.is_some() => {
                return Err(refuse(if anchor != 0 {
                    "YAML anchors (&name)"
                } else {
                    "YAML tags (!tag)"
                }));
            }
            Event::MappingStart(..) => {
                if let Some(Frame::Map {
                    pending_key: None, ..
                }) = stack.last()
                {
                    return Err(refuse("complex (non-scalar) mapping keys"));
                }
                stack.push(Frame::Map {
                    entries: Vec::new(),
                    pending_key: None,
                    pos,
                });
                None
            }
            Event::SequenceStart(..) => {
                if let Some(Frame::Map {
                    pending_key: None, ..
                }) = stack.last()
                {
                    return Err(refuse("complex (non-scalar) mapping keys"));
                }
                stack.push(Frame::Seq {
                    items: Vec::new(),
                    pos,
                });
                None
            }
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map { entries, pos, .. }) => Some(Node::Map {
                    entries: shrunk(entries),
                    pos,
                }),
                _ => unreachable_structure(pos)?,
            },
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq { items, pos }) => Some(Node::Seq {
                    items: shrunk(items),
                    pos,
                }),
                _ => unreachable_structure(pos)?,
            },
            Event::Scalar(value, style, _, _) => {
                if let Some(Frame::Map {
                    pending_key: pending @ None,
                    entries,
                    ..
                }) = stack.last_mut()
                {
                    if entries.iter().any(|(k, _, _)| **k == *value) {
                        return Err(SyntaxError {
                            pos,
                            message: format!("duplicate key `{value}` in this mapping"),
                        });
                    }
                    *pending = Some((value.into(), pos));
                    None
                } else {
                    let len = value.lines().next().map_or(0, |l| l.chars().count())
                        + match style {
                            ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => 2,
                            _ => 0,
                        };
                    Some(Node::Scalar {
                        value: value.into(),
                        plain: matches!(style, ScalarStyle::Plain),
                        pos,
                        len,
                    })
                }
            }
        };
        if let Some(node) = finished {
            match stack.last_mut() {
                None => root = Some(node),
                Some(Frame::Seq { items, .. }) => items.push(node),
                Some(Frame::Map {
                    entries,
                    pending_key,
                    ..
                }) => {
                    let (key, key_pos) = pending_key.take().expect("a value follows its key");
                    entries.push((key, key_pos, node));
                }
            }
        }
    }
    Ok(docs)
}

/// `items` without spare capacity: a config's trees live as long as the config.
fn shrunk<T>(mut items: Vec<T>) -> Vec<T> {
    items.shrink_to_fit();
    items
}

fn unreachable_structure(pos: Pos) -> Result<Option<Node>, SyntaxError> {
    Err(SyntaxError {
        pos,
        message: "unbalanced YAML structure".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_of_nested_values_and_keys() {
        let docs = parse("a: 1\nb:\n  c: [x, 'y']\n  d:\n    - e: true\n").unwrap();
        assert_eq!(docs.len(), 1);
        let root = docs[0].root.as_ref().unwrap();
        let path = [
            PathSeg::Key("b".into()),
            PathSeg::Key("d".into()),
            PathSeg::Index(0),
            PathSeg::Key("e".into()),
        ];
        assert_eq!(root.locate(&path).pos(), Pos { line: 5, col: 10 });
        assert_eq!(
            root.locate(&[PathSeg::Key("b".into())]).key_pos("d"),
            Some(Pos { line: 4, col: 3 })
        );
    }

    #[test]
    fn splits_documents_and_keeps_empty_ones() {
        let docs = parse("a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert!(docs[1].root.is_none());
        assert_eq!(docs[2].pos.line, 3);
    }

    #[test]
    fn types_plain_scalars_by_the_core_schema_and_keeps_quoted_ones_strings() {
        let docs = parse("i: 993\nf: 1.5\nb: true\nn: ~\ns: '993'\nt: 5m\nz: 0x1f\n").unwrap();
        let json = docs[0].root.as_ref().unwrap().to_json();
        assert_eq!(
            json,
            serde_json::json!({"i": 993, "f": 1.5, "b": true, "n": null, "s": "993", "t": "5m", "z": "0x1f"})
        );
    }

    #[test]
    fn refuses_anchors_aliases_and_duplicate_keys_with_a_position() {
        let err = parse("a: &x 1\nb: *x\n").unwrap_err();
        assert!(err.message.contains("anchors"), "{err:?}");
        let err = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 2, col: 1 });
        assert!(err.message.contains("duplicate key `a`"));
    }

    #[test]
    fn reports_syntax_errors_with_line_and_column() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1, "{err:?}");
        assert!(!err.message.is_empty());
    }
}
