//! `switchboard plan`: what `run` would change, against the applied state in the store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::Kind;
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
    let (applied, with_chats, store) = match Store::open_read_only(state) {
        Ok(store) => match store
            .applied_objects()
            .and_then(|a| Ok((a, store.chat_channels_with_chats()?)))
        {
            Ok((a, c)) => (a, c, Some(store)),
            Err(e) => return super::fail(e),
        },
        Err(StoreError::Missing(_)) => Default::default(),
        Err(e) => return super::fail(e),
    };
    let mut plan = plan::diff(&set, &applied, &with_chats);
    if let Some(store) = &store
        && let Err(e) = note_dropped_tokens(&mut plan, store)
    {
        return super::fail(e);
    }
    print!("{}", plan::render::text(&plan));
    if detailed_exitcode && !plan.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// A LinkedInAccount that leaves the config takes its stored (sealed) token with it: the
/// plan says so when there is one.
fn note_dropped_tokens(plan: &mut plan::Plan, store: &Store) -> Result<(), StoreError> {
    for o in &mut plan.objects {
        if o.action == plan::Action::Delete
            && o.kind == Kind::LinkedInAccount.as_str()
            && store
                .mail_oauth_tokens(&crate::store::leads::account_grant_key(&o.name))?
                .is_some()
        {
            o.notes.push(
                "its stored OAuth token (from the consent step) is deleted; \
                 adding the account again needs a refreshToken or a new consent"
                    .to_owned(),
            );
        }
    }
    Ok(())
}
