//! OAuth grant health (every Mailbox, GoogleAccount and LinkedInAccount grant): when the
//! access token expires and how often a refresh failed, as metrics, and which grants need
//! consent again.
//!
//! A refresh the token endpoint answers with `invalid_grant` cannot succeed by asking again:
//! the refresh token was revoked or expired. [`Grants::refused`] then remembers the grant's
//! *fingerprint* (a SHA-256 over what the refresh would send: token URL, client id and secret,
//! refresh token; never kept in clear) and announces `oauth.reauth-needed` once on
//! [`Grants::subscribe`]. While [`Grants::blocked`] finds the same fingerprint the caller does
//! not call the endpoint: no retry storm. A consent that stores a new refresh token, or a
//! config change to the grant, changes the fingerprint, and the next refresh is tried again;
//! one that succeeds calls [`Grants::granted`], which clears the mark.
//!
//! The marks live in memory: a restarted daemon tries each refused grant once more (and
//! announces it once more) before it stops again.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

/// A grant's identity: the kind and name of the object that holds it (`Mailbox`, `sales`).
pub type GrantId = (String, String);

/// The grants that need consent again, and the `oauth.reauth-needed` announcements.
pub struct Grants {
    refused: Mutex<HashMap<GrantId, Refusal>>,
    events: broadcast::Sender<GrantId>,
}

struct Refusal {
    fingerprint: [u8; 32],
    reason: String,
}

impl std::fmt::Debug for Grants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grants").finish_non_exhaustive()
    }
}

impl Default for Grants {
    fn default() -> Self {
        Grants {
            refused: Mutex::new(HashMap::new()),
            events: broadcast::channel(64).0,
        }
    }
}

/// The SHA-256 of `parts`, each length-prefixed (so `("ab", "c")` and `("a", "bc")` differ).
pub fn fingerprint(parts: &[&str]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().into()
}

/// What a blocked grant's holder says in its status: consent is needed, and how.
pub fn consent_needed(kind: &str, name: &str, reason: &str) -> String {
    format!(
        "{kind}/{name} needs consent again: the token endpoint refused its refresh token ({reason}); \
         run `switchboard oauth url {kind}/{name}` and open the URL as the account's owner \
         (or set a new refresh token in its manifest); refreshes are not retried until then"
    )
}

impl Grants {
    fn locked(&self) -> std::sync::MutexGuard<'_, HashMap<GrantId, Refusal>> {
        self.refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The refusal reason when the grant with this `fingerprint` was refused before (do not
    /// call the endpoint); `None` when it may be tried.
    pub fn blocked(&self, kind: &str, name: &str, fingerprint: &[u8; 32]) -> Option<String> {
        self.locked()
            .get(&(kind.to_owned(), name.to_owned()))
            .filter(|r| r.fingerprint == *fingerprint)
            .map(|r| r.reason.clone())
    }

    /// Records that the token endpoint refused this grant (`invalid_grant`). Announces
    /// `oauth.reauth-needed` unless this very grant was announced already; returns whether it
    /// did.
    pub fn refused(&self, kind: &str, name: &str, fingerprint: [u8; 32], reason: &str) -> bool {
        let id = (kind.to_owned(), name.to_owned());
        let mut refused = self.locked();
        if refused
            .get(&id)
            .is_some_and(|r| r.fingerprint == fingerprint)
        {
            return false;
        }
        refused.insert(
            id.clone(),
            Refusal {
                fingerprint,
                reason: reason.to_owned(),
            },
        );
        drop(refused);
        tracing::warn!(
            kind,
            name,
            "OAuth grant refused: consent needed (oauth.reauth-needed)"
        );
        // No subscriber (no open event stream) is fine: the status shows it too.
        let _ = self.events.send(id);
        true
    }

    /// A refresh (or a consent) succeeded: the grant is healthy again.
    pub fn granted(&self, kind: &str, name: &str) {
        self.locked().remove(&(kind.to_owned(), name.to_owned()));
    }

    /// Whether the grant is marked as needing consent (whatever its fingerprint).
    pub fn needs_consent(&self, kind: &str, name: &str) -> Option<String> {
        self.locked()
            .get(&(kind.to_owned(), name.to_owned()))
            .map(|r| r.reason.clone())
    }

    /// The object left the config: forget its mark.
    pub fn forget(&self, kind: &str, name: &str) {
        self.granted(kind, name);
    }

    /// `oauth.reauth-needed` announcements from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<GrantId> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_grant_is_announced_once_and_unblocked_by_a_new_token() {
        let grants = Grants::default();
        let mut events = grants.subscribe();
        let old = fingerprint(&["https://t", "cid", "secret", "refresh-1"]);
        assert_eq!(grants.blocked("Mailbox", "m", &old), None);
        assert!(grants.refused("Mailbox", "m", old, "invalid_grant"));
        assert!(!grants.refused("Mailbox", "m", old, "invalid_grant"));
        assert_eq!(
            events.try_recv().expect("one event"),
            ("Mailbox".into(), "m".into())
        );
        assert!(events.try_recv().is_err(), "only one");
        assert_eq!(
            grants.blocked("Mailbox", "m", &old).as_deref(),
            Some("invalid_grant")
        );
        let new = fingerprint(&["https://t", "cid", "secret", "refresh-2"]);
        assert_eq!(grants.blocked("Mailbox", "m", &new), None);
        assert_eq!(grants.blocked("LinkedInAccount", "m", &old), None);
        grants.granted("Mailbox", "m");
        assert_eq!(grants.needs_consent("Mailbox", "m"), None);
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
    }
}
