//! The fuzz targets' shared checks: each target feeds bytes to one parser that takes outside
//! input and asserts what must hold for any input, besides "no panic, no hang".

use std::path::PathBuf;
use std::sync::Arc;

/// Loads `text` as one manifest file and checks every diagnostic points inside it: a position
/// outside the input would make the error unreadable (or crash a renderer).
pub fn manifest(text: &str) {
    let path = PathBuf::from("fuzz.yaml");
    let outcome = switchboard::config::load_texts(vec![(path.clone(), Arc::from(text))]);
    // The text as the loader read it (it may have normalised line breaks).
    let source = outcome
        .sources
        .get(&path)
        .cloned()
        .unwrap_or_else(|| Arc::from(text));
    let lines: Vec<&str> = source.split('\n').collect();
    for d in &outcome.diagnostics {
        if d.file != path || d.line == 0 {
            continue; // cross-object diagnostics without a position in this file
        }
        assert!(
            d.line <= lines.len(),
            "diagnostic line {} past the input's {} lines: {d:?}",
            d.line,
            lines.len()
        );
        let width = lines[d.line - 1].chars().count();
        assert!(
            d.column <= width + 1,
            "diagnostic column {} past line {}'s {width} characters: {d:?}",
            d.column,
            d.line
        );
    }
    if outcome.set.is_some() {
        assert!(outcome.diagnostics.is_empty());
    }
}
