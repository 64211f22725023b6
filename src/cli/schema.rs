//! `switchboard schema`: writes the JSON Schemas generated from the manifest types.

use std::path::Path;
use std::process::ExitCode;

use crate::config::schema;

/// Writes every schema file into `out`, creating it if needed.
pub fn run(out: &Path) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(out) {
        return super::fail(format!("cannot create {}: {e}", out.display()));
    }
    for (name, text) in schema::all() {
        let path = out.join(&name);
        if let Err(e) = std::fs::write(&path, text) {
            return super::fail(format!("cannot write {}: {e}", path.display()));
        }
        println!("{}", path.display());
    }
    ExitCode::SUCCESS
}
