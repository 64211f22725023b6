//! `switchboard validate`: every problem in the config, compiler style or as JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use super::Format;
use crate::config::{self, diagnostics};

/// Loads and checks the config; prints the diagnostics; exit 0 when valid, 1 when not.
pub fn run(dirs: &[PathBuf], format: Format) -> ExitCode {
    let outcome = config::load(dirs);
    match (format, &outcome.set) {
        (Format::Json, _) => println!("{}", diagnostics::render_json(&outcome.diagnostics)),
        (Format::Text, Some(set)) => println!(
            "ok: {} objects in {} files are valid",
            set.objects.len(),
            outcome.files
        ),
        (Format::Text, None) => eprint!(
            "{}",
            diagnostics::render_text(&outcome.diagnostics, &outcome.sources)
        ),
    }
    if outcome.set.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
