//! The timer task: waits for the earliest durable deadline in the store and fires it through
//! the writer ([`super::Command::Tick`]).
//!
//! Deadlines (accept deadlines of leastBusy assignments, completion timeouts) are rows, so a
//! restart loses none: the first read after start finds any that passed while the daemon was
//! down and fires them at once. Waiting uses the engine's clock.

use std::time::Duration;

use super::ChatService;

/// How long to wait before retrying after the store failed.
const RETRY: Duration = Duration::from_secs(5);

pub(super) async fn run(service: ChatService) {
    let inner = &service.inner;
    loop {
        let next = match inner.reader.call(|s| s.chat_next_deadline()).await {
            Ok(next) => next.map(|at| inner.clock.instant_at(at)),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the next chat deadline; retrying");
                Some(tokio::time::Instant::now() + RETRY)
            }
        };
        tokio::select! {
            biased;
            () = inner.cancel.cancelled() => return,
            // A batch set an earlier deadline: read again.
            () = inner.wake_timers.notified() => continue,
            () = sleep_until(next) => {}
        }
        if let Err(e) = service.tick().await {
            tracing::warn!(error = %e, "firing chat timers failed; retrying");
            tokio::select! {
                () = inner.cancel.cancelled() => return,
                () = tokio::time::sleep(RETRY) => {}
            }
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
pub(super) async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
