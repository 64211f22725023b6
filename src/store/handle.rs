//! [`StoreHandle`]: the store shared by async tasks. rusqlite's connection is not `Sync`, so
//! it sits behind one mutex and every call runs on tokio's blocking pool.

use std::sync::{Arc, Mutex, PoisonError};

use super::{Store, StoreError};

/// The store, shared by the scheduler and the HTTP layer. rusqlite's connection is not `Sync`,
/// so it sits behind a mutex and every call runs on the blocking pool.
#[derive(Clone)]
pub struct StoreHandle {
    store: Arc<Mutex<Store>>,
}

impl StoreHandle {
    /// Wraps an open store.
    pub fn new(store: Store) -> StoreHandle {
        StoreHandle {
            store: Arc::new(Mutex::new(store)),
        }
    }

    /// Runs `f` with the store on the blocking pool.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = Arc::clone(&self.store);
        let joined = tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a transaction half-applied (SQLite
            // rolls it back), so a poisoned lock is safe to reuse.
            let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut store)
        })
        .await;
        match joined {
            Ok(result) => result,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}
