//! House rules checked mechanically: every source file says what it is for.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// rust-analyzer's habit: a `//!` line on top of every module states its one responsibility.
#[test]
fn every_source_file_starts_with_a_module_doc() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            !std::fs::read_to_string(f)
                .unwrap()
                .trim_start()
                .starts_with("//!")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! module doc: {missing:?}"
    );
}

/// Stubs are not features: nothing under src/ may panic with todo!() or unimplemented!().
#[test]
fn no_todo_or_unimplemented_in_src() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for needle in ["todo!(", "unimplemented!("] {
            assert!(!text.contains(needle), "{} contains {needle}", f.display());
        }
    }
}

/// The top-level modules of this crate that `text` names through `crate::` paths: `use
/// crate::chat::X`, `crate::mail::build(..)` and the names in a grouped `use crate::{a, b::c}`.
/// Comments are skipped, so a doc that mentions a module is no dependency.
fn crate_modules(text: &str) -> std::collections::BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = std::collections::BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: split at commas outside nested braces.
            let (mut depth, mut start) = (0usize, 0usize);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.insert(ident(&group[start..i]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(ident(&group[start..i]));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found.remove("");
    found
}

/// Every `.rs` file under `src/{dir}` (a folder) and `src/{dir}.rs` (a one-file module).
fn module_files(dir: &str) -> Vec<std::path::PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    if src.join(dir).is_dir() {
        rust_files(&src.join(dir), &mut files);
    }
    if src.join(format!("{dir}.rs")).is_file() {
        files.push(src.join(format!("{dir}.rs")));
    }
    files
}

/// `(file, module)` for each file of `dir` that names a module `allowed` refuses.
fn violations(dir: &str, allowed: impl Fn(&str) -> bool) -> Vec<String> {
    module_files(dir)
        .into_iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            crate_modules(&text)
                .into_iter()
                .filter(|m| !allowed(m))
                .map(move |m| format!("{} uses crate::{m}", f.display()))
        })
        .collect()
}

/// The domains: each plugs into the engine through `connector` and is wired by `daemon`.
const DOMAINS: [&str; 6] = ["chat", "mail", "http", "records", "sync", "leads"];

/// Layers point one way (issue 12): `engine` imports no domain and no domain imports `engine`;
/// both meet in the `connector` contract, and only `daemon` (the composition root) and `cli`
/// (which calls it) know them all.
#[test]
fn layers_point_one_way() {
    // The check itself sees what it must: engine does name config and connector.
    let engine_uses: std::collections::BTreeSet<String> = module_files("engine")
        .iter()
        .flat_map(|f| crate_modules(&std::fs::read_to_string(f).unwrap()))
        .collect();
    assert!(
        engine_uses.contains("config") && engine_uses.contains("connector"),
        "the use-line reader found only {engine_uses:?} in src/engine"
    );
    assert_eq!(
        crate_modules("use crate::{a::B, b::{c, d}, e};\nlet x = crate::f::g(); // crate::h"),
        ["a", "b", "e", "f"].map(String::from).into()
    );

    let mut found = violations("engine", |m| {
        !DOMAINS.contains(&m) && m != "daemon" && m != "cli"
    });
    for domain in DOMAINS {
        found.extend(violations(domain, |m| {
            m != "engine" && m != "daemon" && m != "cli"
        }));
    }
    // The contract is a leaf: only what a connector is told about.
    let leaf = ["config", "store", "telemetry", "clock", "connector"];
    found.extend(violations("connector", |m| leaf.contains(&m)));
    found.extend(violations("clock", |m| m == "clock"));
    found.extend(violations("store", |m| {
        ["config", "store", "clock"].contains(&m)
    }));
    assert!(found.is_empty(), "layer violations:\n{}", found.join("\n"));
}
