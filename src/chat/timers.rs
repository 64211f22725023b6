//! The timer task: waits for the earliest durable deadline in the store and fires it through
//! the writer ([`super::Command::Tick`]).
//!
//! Deadlines (accept deadlines of leastBusy assignments, completion timeouts) are rows, so a
//! restart loses none: the task ticks once at start, which fires any that passed while the
//! daemon was down and routes the chats left waiting. It also ticks at least every
//! [`RESYNC`]: a tick is the writer's first batch under a newly applied config, which routes
//! every queue again (a reload may have added operators or capacity). Waiting uses the engine's
//! clock.

use std::time::Duration;

use super::ChatService;

/// How long to wait before retrying after the store failed.
const RETRY: Duration = Duration::from_secs(5);
/// The longest wait between two ticks.
pub const RESYNC: Duration = Duration::from_secs(10);

pub(super) async fn run(service: ChatService) {
    let inner = &service.inner;
    loop {
        if let Err(e) = service.tick().await {
            tracing::warn!(error = %e, "firing chat timers failed; retrying");
            tokio::select! {
                () = inner.cancel.cancelled() => return,
                () = tokio::time::sleep(RETRY) => {}
            }
            continue;
        }
        loop {
            let resync = tokio::time::Instant::now() + RESYNC;
            let next = match inner.reader.call(|s| s.chat_next_deadline()).await {
                Ok(next) => next.map_or(resync, |at| inner.clock.instant_at(at).min(resync)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the next chat deadline; retrying");
                    tokio::time::Instant::now() + RETRY
                }
            };
            tokio::select! {
                biased;
                () = inner.cancel.cancelled() => return,
                // A batch set an earlier deadline: read again.
                () = inner.wake_timers.notified() => {}
                () = tokio::time::sleep_until(next) => break,
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
