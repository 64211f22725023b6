//! [`StoreHandle`]: the store shared by async tasks. rusqlite's connection is not `Sync` and
//! its calls block, so callers take an async turn (a fair, FIFO `tokio::sync::Mutex`) and only
//! the holder of the turn enters tokio's blocking pool. Waiting for the store therefore costs a
//! parked task, not a parked thread: at start, 500 mailboxes recording their runs used to fill
//! the blocking pool with threads queued on a `std::sync::Mutex`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Mutex;

use super::{Store, StoreError};

/// The store, shared by the scheduler and the HTTP layer.
#[derive(Clone)]
pub struct StoreHandle {
    store: Arc<Mutex<Store>>,
    /// Calls that are on the blocking pool now (at most one: the turn's holder).
    on_pool: Arc<AtomicUsize>,
}

impl StoreHandle {
    /// Wraps an open store.
    pub fn new(store: Store) -> StoreHandle {
        StoreHandle {
            store: Arc::new(Mutex::new(store)),
            on_pool: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Runs `f` with the store on the blocking pool, once it is this caller's turn.
    ///
    /// The turn moves into the blocking task, so a caller that is cancelled while `f` runs
    /// does not let the next one onto the pool early.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let mut store = Arc::clone(&self.store).lock_owned().await;
        let on_pool = Arc::clone(&self.on_pool);
        on_pool.fetch_add(1, Ordering::SeqCst);
        let joined = tokio::task::spawn_blocking(move || {
            // Decrements even if `f` panics. A panic inside a transaction cannot leave it
            // half-applied (SQLite rolls it back), so the store stays usable after one.
            struct Leave(Arc<AtomicUsize>);
            impl Drop for Leave {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::SeqCst);
                }
            }
            let _leave = Leave(on_pool);
            f(&mut store)
        })
        .await;
        match joined {
            Ok(result) => result,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// How many calls are on the blocking pool now: 0 or 1.
    pub fn calls_on_pool(&self) -> usize {
        self.on_pool.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: SPEC run (the store's callers wait as tasks, not as blocking threads)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callers_wait_for_their_turn_off_the_blocking_pool() {
        let handle = StoreHandle::new(Store::open_in_memory().expect("store"));
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let (entered, first_inside) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let handle = handle.clone();
            async move {
                handle
                    .call(move |_| {
                        entered.send(()).expect("the test waits");
                        gate.recv().expect("released");
                        Ok(())
                    })
                    .await
            }
        });
        first_inside.await.expect("the first call entered");

        // 200 more callers while the first holds the store: each must be parked on the turn.
        let mut waiting = Vec::new();
        for n in 0..200_i64 {
            let handle = handle.clone();
            waiting.push(tokio::spawn(async move {
                let seen = handle.calls_on_pool();
                let got = handle.call(move |_| Ok(n)).await;
                (seen, got)
            }));
        }
        for _ in 0..50 {
            tokio::task::yield_now().await;
            assert_eq!(handle.calls_on_pool(), 1, "a waiting caller took a thread");
        }
        release.send(()).expect("release");
        first.await.expect("join").expect("first call");
        for (n, task) in waiting.into_iter().enumerate() {
            let (seen, got) = task.await.expect("join");
            assert!(seen <= 1, "{seen} calls on the pool at once");
            assert_eq!(got.expect("call"), n as i64);
        }
        assert_eq!(handle.calls_on_pool(), 0);
    }
}
