//! `switchboard plan`: what `run` would change, against the applied state in the store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::plan;
use crate::store::{Store, StoreError};

/// Prints the plan. Exit 1 on an invalid config or unreadable store; otherwise 0, or with
/// `detailed_exitcode` 0 for no changes and 2 for changes (as `terraform plan`).
pub fn run(dirs: &[PathBuf], state: &Path, detailed_exitcode: bool) -> ExitCode {
    let set = match super::load_valid(dirs) {
        Ok(set) => set,
        Err(code) => return code,
    };
    // The channels with chats come from the store as data, so plan::diff stays pure (CH-10).
    let (applied, with_chats) = match Store::open_read_only(state) {
        Ok(store) => match store
            .applied_objects()
            .and_then(|a| Ok((a, store.chat_channels_with_chats()?)))
        {
            Ok(found) => found,
            Err(e) => return super::fail(e),
        },
        Err(StoreError::Missing(_)) => Default::default(),
        Err(e) => return super::fail(e),
    };
    let plan = plan::diff(&set, &applied, &with_chats);
    print!("{}", plan::render::text(&plan));
    if detailed_exitcode && !plan.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
