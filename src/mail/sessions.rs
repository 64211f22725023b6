//! How many mailboxes talk to their servers at once.
//!
//! At start every mailbox is due for its first sync and every auto-loading IMAP mailbox opens
//! its IDLE connection. Measured with 1,000 mailboxes on one Dovecot, that stampede opened
//! 1,731 connections and 516 threads at its peak, and 927 first syncs failed with login
//! timeouts before backoff spread them out; a real provider limits connections per client
//! long before that. So a sync run (IMAP or Graph, sending included) and the opening of an
//! IDLE connection (login, SELECT, IDLE) each hold one of [`MAX_BUSY`] permits; an
//! established IDLE connection, which only waits, holds none. A run that waits for a permit
//! is still cancelled at once by a stop.

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;

/// Mailboxes that may sync or open their IDLE connection at the same time, process-wide.
pub const MAX_BUSY: usize = 32;

static BUSY: Semaphore = Semaphore::const_new(MAX_BUSY);

/// Waits for a turn; `None` when `cancel` fired first.
pub async fn turn(cancel: &CancellationToken) -> Option<SemaphorePermit<'static>> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => None,
        // The semaphore is never closed, so acquiring only waits.
        permit = BUSY.acquire() => permit.ok(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_than_max_busy_mailboxes_work_at_once_and_all_get_their_turn() {
        let cancel = CancellationToken::new();
        let (now, peak, done) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let mut tasks = Vec::new();
        for _ in 0..MAX_BUSY * 4 {
            let (cancel, now, peak, done) = (
                cancel.clone(),
                Arc::clone(&now),
                Arc::clone(&peak),
                Arc::clone(&done),
            );
            tasks.push(tokio::spawn(async move {
                let _permit = turn(&cancel).await.expect("a turn");
                let working = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(working, Ordering::SeqCst);
                tokio::task::yield_now().await;
                now.fetch_sub(1, Ordering::SeqCst);
                done.fetch_add(1, Ordering::SeqCst);
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
        assert_eq!(done.load(Ordering::SeqCst), MAX_BUSY * 4);
        assert!(peak.load(Ordering::SeqCst) <= MAX_BUSY, "peak {peak:?}");
    }

    #[tokio::test]
    async fn a_stop_ends_the_wait_for_a_turn() {
        // Take every permit, then ask for one more with a cancelled token.
        let mut held = Vec::new();
        let open = CancellationToken::new();
        for _ in 0..MAX_BUSY {
            held.push(turn(&open).await.expect("a turn"));
        }
        let stopped = CancellationToken::new();
        stopped.cancel();
        assert!(turn(&stopped).await.is_none());
        drop(held);
    }
}
