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
//! The marks are kept in the store too (`grant_refusals`, fingerprint and reason only) once
//! the daemon calls [`Grants::persist`]: it loads them before the first run, so a restarted
//! daemon neither asks the endpoint with a refused grant nor announces it again, and writes
//! every later change through, in order, from one task. The registry knows no kind: every
//! object holding a grant (Mailbox, LinkedInAccount, GoogleAccount) is marked the same way.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::grants::GrantRefusal;
use crate::store::{StoreError, StoreHandle};

/// A grant's identity: the kind and name of the object that holds it (`Mailbox`, `sales`).
pub type GrantId = (String, String);

/// The grants that need consent again, and the `oauth.reauth-needed` announcements.
pub struct Grants {
    refused: Mutex<HashMap<GrantId, Refusal>>,
    events: broadcast::Sender<GrantId>,
    /// The store's writer, once [`Grants::persist`] attached one.
    writes: OnceLock<mpsc::UnboundedSender<Write>>,
}

/// A change of a mark, for the store.
enum Write {
    Refused(GrantRefusal),
    Cleared(GrantId),
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
            writes: OnceLock::new(),
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
    /// Keeps the marks in `store`: loads the refusals it holds (call it before anything
    /// refreshes) and from then on writes each change through, in the order made, from a task
    /// on `tracker`. On `cancel` the task writes what was asked before and ends. A second call
    /// only loads.
    pub async fn persist(
        &self,
        store: &StoreHandle,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Result<(), StoreError> {
        let kept = store.call(|s| s.grant_refusals()).await?;
        {
            let mut refused = self.locked();
            for r in kept {
                refused.insert(
                    (r.kind, r.name),
                    Refusal {
                        fingerprint: r.fingerprint,
                        reason: r.reason,
                    },
                );
            }
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        if self.writes.set(tx).is_err() {
            return Ok(());
        }
        let store = store.clone();
        tracker.spawn(async move {
            loop {
                let write = tokio::select! {
                    biased;
                    write = rx.recv() => write,
                    () = cancel.cancelled() => None,
                };
                let Some(write) = write else { break };
                Self::write(&store, write).await;
            }
            while let Ok(write) = rx.try_recv() {
                Self::write(&store, write).await;
            }
        });
        Ok(())
    }

    async fn write(store: &StoreHandle, write: Write) {
        let outcome = match write {
            Write::Refused(refusal) => store.call(move |s| s.set_grant_refusal(&refusal)).await,
            Write::Cleared((kind, name)) => {
                store
                    .call(move |s| s.clear_grant_refusal(&kind, &name))
                    .await
            }
        };
        if let Err(e) = outcome {
            // The mark stays in memory; a restart would try the grant once more.
            tracing::warn!(error = %e, "a refused OAuth grant's mark could not be stored");
        }
    }

    fn send(&self, write: Write) {
        if let Some(writes) = self.writes.get() {
            // Closed only when the writer stopped with the daemon: nothing to keep then.
            let _ = writes.send(write);
        }
    }

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
        // Sent under the lock: the writer sees the changes in the order they were made.
        self.send(Write::Refused(GrantRefusal {
            kind: kind.to_owned(),
            name: name.to_owned(),
            fingerprint,
            reason: reason.to_owned(),
            refused_at: chrono::Utc::now(),
        }));
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
        let id = (kind.to_owned(), name.to_owned());
        let mut refused = self.locked();
        if refused.remove(&id).is_some() {
            self.send(Write::Cleared(id));
        }
    }

    /// Whether the grant is marked as needing consent (whatever its fingerprint).
    pub fn needs_consent(&self, kind: &str, name: &str) -> Option<String> {
        self.locked()
            .get(&(kind.to_owned(), name.to_owned()))
            .map(|r| r.reason.clone())
    }

    /// Every grant marked as needing consent.
    pub fn marked(&self) -> Vec<GrantId> {
        self.locked().keys().cloned().collect()
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

    #[tokio::test]
    async fn marks_outlive_the_registry_when_persisted() {
        let store = StoreHandle::new(crate::store::Store::open_in_memory().unwrap());
        let stop = |tracker: &TaskTracker, cancel: &CancellationToken| {
            cancel.cancel();
            tracker.close();
            tracker.clone()
        };
        let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
        let grants = Grants::default();
        grants
            .persist(&store, &tracker, cancel.clone())
            .await
            .unwrap();
        let revoked = fingerprint(&["https://t", "cid", "secret", "refresh-1"]);
        assert!(grants.refused("LinkedInAccount", "ava", revoked, "invalid_grant"));
        assert!(grants.refused("Mailbox", "sales", revoked, "invalid_grant"));
        grants.granted("Mailbox", "sales");
        stop(&tracker, &cancel).wait().await;

        // A new process: the mark is back before anything asks, and not announced again.
        let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
        let again = Grants::default();
        let mut events = again.subscribe();
        again
            .persist(&store, &tracker, cancel.clone())
            .await
            .unwrap();
        assert_eq!(
            again.blocked("LinkedInAccount", "ava", &revoked).as_deref(),
            Some("invalid_grant")
        );
        assert_eq!(again.needs_consent("Mailbox", "sales"), None);
        assert!(!again.refused("LinkedInAccount", "ava", revoked, "invalid_grant"));
        assert!(events.try_recv().is_err(), "not announced again");
        // Forgetting the object clears the stored mark too.
        again.forget("LinkedInAccount", "ava");
        stop(&tracker, &cancel).wait().await;
        assert_eq!(store.call(|s| s.grant_refusals()).await.unwrap(), vec![]);
    }
}
