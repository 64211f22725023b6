//! A sync's checkpoints (`sync_checkpoints`: a value per origin and scope), read and written
//! from a run — the one way the engines and the remotes keep tokens, cursors and remembered
//! discovery.

use crate::connector::SyncContext;
use crate::store::StoreError;

/// The checkpoint `scope` of sync `origin`, if any.
pub async fn get(
    ctx: &SyncContext<'_>,
    origin: &str,
    scope: &str,
) -> Result<Option<String>, StoreError> {
    let (origin, scope) = (origin.to_owned(), scope.to_owned());
    ctx.store
        .call(move |s| s.sync_checkpoint(&origin, &scope))
        .await
}

/// Sets (or, with `None`, clears) the checkpoint `scope` of sync `origin`, at the run's time.
pub async fn set(
    ctx: &SyncContext<'_>,
    origin: &str,
    scope: &str,
    value: Option<&str>,
) -> Result<(), StoreError> {
    let (origin, scope, value, at) = (
        origin.to_owned(),
        scope.to_owned(),
        value.map(str::to_owned),
        ctx.clock.now(),
    );
    ctx.store
        .call(move |s| s.set_sync_checkpoint(&origin, &scope, value.as_deref(), at))
        .await
}
