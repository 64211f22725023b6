//! `switchboard schema`: writes the JSON Schemas generated from the manifest types, and the
//! OpenAPI document of the HTTP API (`openapi.json`, generated from its DTOs).

use std::path::Path;
use std::process::ExitCode;

use crate::config::schema;

/// Writes every schema file into `out`, creating it if needed.
pub fn run(out: &Path) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(out) {
        return super::fail(format!("cannot create {}: {e}", out.display()));
    }
    let mut files = schema::all();
    files.insert(
        crate::http::openapi::FILE.to_owned(),
        crate::http::openapi::text(),
    );
    for (name, text) in files {
        let path = out.join(&name);
        if let Err(e) = std::fs::write(&path, text) {
            return super::fail(format!("cannot write {}: {e}", path.display()));
        }
        println!("{}", path.display());
    }
    ExitCode::SUCCESS
}
