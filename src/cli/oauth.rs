//! `switchboard oauth url KIND/NAME`: print the consent URL of an `auth: oauth2` mailbox
//! (EP-05, EP-06), a GoogleAccount (AS-04) or a LinkedInAccount (LI-01).
//!
//! The URL's `state` is signed with the key beside the state file (`--state`), the one the
//! daemon uses to verify the callback, so run this where that key is readable (as the
//! daemon's user, or with the same `switchboard-key` credential). It needs no running daemon.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::mail::consent::{self, STATE_TTL};
use crate::mail::oauth::Sealer;

/// Prints the consent URL on stdout and what to do with it on stderr.
pub fn url(dirs: &[PathBuf], state: &Path, object: &str) -> ExitCode {
    let (kind, name) = match object.split_once('/') {
        Some((kind @ ("Mailbox" | "GoogleAccount" | "LinkedInAccount"), name))
            if !name.is_empty() =>
        {
            (kind, name)
        }
        _ => {
            return super::fail(format!(
                "expected Mailbox/NAME, GoogleAccount/NAME or LinkedInAccount/NAME, like Mailbox/sales, got `{object}`"
            ));
        }
    };
    let set = match super::load_valid(dirs) {
        Ok(set) => set,
        Err(code) => return code,
    };
    let target = match kind {
        "Mailbox" => crate::mail::consent_target(&set, name),
        "GoogleAccount" => crate::sync::tokens::consent_target(&set, name),
        _ => crate::leads::consent_target(&set, name),
    };
    let target = match target {
        Ok(t) => t,
        Err(reason) => return super::fail(reason),
    };
    let sealer = match Sealer::for_state(state) {
        Ok(s) => s,
        Err(e) => {
            return super::fail(format!(
                "{e}; run this as the daemon's user so the URL is signed with the daemon's key"
            ));
        }
    };
    // The state names the key the tokens are stored under (ConsentTarget::mailbox).
    let signed = consent::sign_state(&sealer, &target.mailbox, chrono::Utc::now());
    match consent::consent_url(&target.app, target.callback, &target.redirect_uri, &signed) {
        Ok(url) => {
            println!("{url}");
            eprintln!(
                "Open this URL signed in as the account's owner and consent; the provider returns to {} and the daemon stores the tokens. The link is valid for {} minutes.",
                target.redirect_uri,
                STATE_TTL.as_secs() / 60
            );
            ExitCode::SUCCESS
        }
        Err(reason) => super::fail(reason),
    }
}
