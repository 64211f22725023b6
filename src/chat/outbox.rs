//! The outbox task: delivers queued operator messages through their channel, webhook chat
//! actions (`actions.rs`) and Messenger threads handed back to the bot (FB-03), and records
//! each attempt through the writer; failures are retried with exponential backoff (a
//! `Retry-After` from the receiver is honoured) until [`MAX_ATTEMPTS`], then the message is
//! marked failed.
//!
//! The outbox rows are written in the same transaction as the message, so a message is never
//! lost between "stored" and "sent"; a crash between a delivery and its record sends it again
//! (at-least-once: receivers deduplicate by `messageId`).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::kinds::ChannelProvider;
use crate::store::chat::{HandbackItem, OutboxItem};

use super::actions;
use super::channels::{api, messenger, telegram, twilio};
use super::snapshot::Snapshot;
use super::timers::sleep_until;
use super::{ChatService, Command};

/// How long one delivery may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The first retry delay.
pub const RETRY_BASE: Duration = Duration::from_secs(2);
/// The longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(10 * 60);
/// Attempts before a message is marked failed (about 40 minutes of retrying).
pub const MAX_ATTEMPTS: u32 = 10;
/// Entries taken per round.
const ROUND: usize = 32;

/// Why one attempt failed.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    /// What happened (no secret).
    pub error: String,
    /// Retrying can help (5xx, 429, timeouts); otherwise the message is given up at once.
    pub retry: bool,
    /// The receiver asked for this delay (`Retry-After`).
    pub after: Option<Duration>,
}

/// The delay a receiver asked for in `Retry-After`, if any.
pub use crate::net::retry_after;

/// Whether an HTTP answer is worth retrying: 5xx, 429 and 408.
pub fn retryable(status: reqwest::StatusCode) -> bool {
    status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
}

impl Failure {
    fn permanent(error: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            retry: false,
            after: None,
        }
    }
}

/// The delay before attempt `failures + 1`: `RETRY_BASE · 2^(failures-1)`, capped.
pub fn retry_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    RETRY_BASE.saturating_mul(1 << exp).min(RETRY_MAX)
}

/// When to try again after a failure, or `None` to give up.
pub fn next_attempt(failure: &Failure, failures: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if !failure.retry || failures >= MAX_ATTEMPTS {
        return None;
    }
    let delay = retry_delay(failures).max(failure.after.unwrap_or_default());
    Some(now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX))
}

pub(super) async fn run(service: ChatService) {
    let inner = &service.inner;
    loop {
        let now = inner.clock.now();
        let due = match inner
            .reader
            .call(move |s| s.chat_outbox_due(now, ROUND))
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the chat outbox; retrying");
                Vec::new()
            }
        };
        for item in &due {
            // Stopping abandons an attempt in flight: it was not recorded, so it is sent again
            // after the restart (at-least-once).
            let outcome = tokio::select! {
                biased;
                () = inner.cancel.cancelled() => return,
                outcome = deliver(&service, item) => outcome,
            };
            let command = match outcome {
                Ok(()) => Command::Delivered { outbox_id: item.id },
                Err(failure) => {
                    let failures = item.attempts.saturating_add(1);
                    let retry_at = next_attempt(&failure, failures, inner.clock.now());
                    tracing::warn!(
                        channel = %item.channel, chat = item.chat_id, message = item.message_id,
                        error = %failure.error, attempts = failures, gives_up = retry_at.is_none(),
                        "a chat message could not be delivered"
                    );
                    Command::DeliveryFailed {
                        outbox_id: item.id,
                        error: failure.error,
                        retry_at,
                    }
                }
            };
            if let Err(e) = service.command(command).await {
                tracing::warn!(error = %e, "could not record a delivery attempt; it is retried");
            }
        }
        let runs = match inner
            .reader
            .call(move |s| s.chat_actions_due(now, ROUND))
            .await
        {
            Ok(runs) => runs,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the due chat actions; retrying");
                Vec::new()
            }
        };
        for run in &runs {
            let snapshot = service.snapshot().await;
            let attempt = tokio::select! {
                biased;
                () = inner.cancel.cancelled() => return,
                attempt = actions::deliver(&inner.http, &snapshot, run) => attempt,
            };
            let status = attempt.status;
            let command = match attempt.outcome {
                Ok(()) => Command::ActionAttempted {
                    run_id: run.id,
                    error: None,
                    retry_at: None,
                    status,
                },
                Err(failure) => {
                    let failures = run.attempts.saturating_add(1);
                    let retry_at = next_attempt(&failure, failures, inner.clock.now());
                    tracing::warn!(
                        action = %run.action, chat = run.chat_id, run = run.id,
                        error = %failure.error, attempts = failures, gives_up = retry_at.is_none(),
                        "a chat action webhook could not be delivered"
                    );
                    Command::ActionAttempted {
                        run_id: run.id,
                        error: Some(failure.error),
                        retry_at,
                        status,
                    }
                }
            };
            if let Err(e) = service.command(command).await {
                tracing::warn!(error = %e, "could not record an action attempt; it is retried");
            }
        }
        // After the messages of this round: a thread handed back refuses later replies (the
        // store also keeps a hand-back waiting while its chat has messages pending).
        let handbacks = match inner
            .reader
            .call(move |s| s.chat_handbacks_due(now, ROUND))
            .await
        {
            Ok(handbacks) => handbacks,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the due Messenger hand-backs; retrying");
                Vec::new()
            }
        };
        for item in &handbacks {
            let snapshot = service.snapshot().await;
            let outcome = tokio::select! {
                biased;
                () = inner.cancel.cancelled() => return,
                outcome = hand_back(&inner.http, &snapshot, item) => outcome,
            };
            let command = match outcome {
                Ok(()) => Command::HandbackAttempted {
                    id: item.id,
                    error: None,
                    retry_at: None,
                },
                Err(failure) => {
                    let failures = item.attempts.saturating_add(1);
                    let retry_at = next_attempt(&failure, failures, inner.clock.now());
                    tracing::warn!(
                        channel = %item.channel, chat = item.chat_id, error = %failure.error,
                        attempts = failures, gives_up = retry_at.is_none(),
                        "a Messenger thread could not be passed back to the bot"
                    );
                    Command::HandbackAttempted {
                        id: item.id,
                        error: Some(failure.error),
                        retry_at,
                    }
                }
            };
            if let Err(e) = service.command(command).await {
                tracing::warn!(error = %e, "could not record a hand-back attempt; it is retried");
            }
        }
        if due.len() == ROUND || runs.len() == ROUND || handbacks.len() == ROUND {
            continue;
        }
        let next = match inner
            .reader
            .call(|s| {
                Ok([
                    s.chat_outbox_next_at()?,
                    s.chat_actions_next_at()?,
                    s.chat_handbacks_next_at()?,
                ])
            })
            .await
        {
            Ok(times) => times
                .into_iter()
                .flatten()
                .min()
                .map(|at| inner.clock.instant_at(at)),
            Err(_) => Some(tokio::time::Instant::now() + RETRY_BASE),
        };
        tokio::select! {
            biased;
            () = inner.cancel.cancelled() => return,
            () = inner.wake_outbox.notified() => {}
            () = sleep_until(next) => {}
        }
    }
}

/// One attempt to deliver `item` through its channel.
async fn deliver(service: &ChatService, item: &OutboxItem) -> Result<(), Failure> {
    let snapshot = service.snapshot().await;
    let channel = snapshot.channels.get(&item.channel).ok_or_else(|| {
        Failure::permanent(format!(
            "channel {} is no longer configured; the message is kept in the chat's history",
            item.channel
        ))
    })?;
    match channel.provider {
        ChannelProvider::Api => api::deliver(&service.inner.http, channel, item).await,
        ChannelProvider::Telegram => telegram::deliver(&service.inner.http, channel, item).await,
        ChannelProvider::Whatsapp => twilio::deliver(&service.inner.http, channel, item).await,
        ChannelProvider::FacebookMessenger => {
            messenger::deliver(&service.inner.http, channel, item).await
        }
    }
}

/// One attempt to pass the thread of a completed Messenger chat back to the bot (FB-03).
async fn hand_back(
    http: &reqwest::Client,
    snapshot: &Snapshot,
    item: &HandbackItem,
) -> Result<(), Failure> {
    let channel = snapshot.channels.get(&item.channel).ok_or_else(|| {
        Failure::permanent(format!(
            "channel {} is no longer configured; its thread stays with Switchboard",
            item.channel
        ))
    })?;
    messenger::pass_thread_control(http, channel, &item.psid).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_honour_retry_after_and_give_up() {
        let now = DateTime::<Utc>::from_timestamp(0, 0).expect("ts");
        let transient = Failure {
            error: "503".into(),
            retry: true,
            after: None,
        };
        assert_eq!(retry_delay(1), Duration::from_secs(2));
        assert_eq!(retry_delay(3), Duration::from_secs(8));
        assert_eq!(retry_delay(30), RETRY_MAX);
        assert_eq!(
            next_attempt(&transient, 1, now),
            Some(now + chrono::Duration::seconds(2))
        );
        let slow_down = Failure {
            after: Some(Duration::from_secs(60)),
            ..transient
        };
        assert_eq!(
            next_attempt(&slow_down, 1, now),
            Some(now + chrono::Duration::seconds(60))
        );
        assert_eq!(next_attempt(&slow_down, MAX_ATTEMPTS, now), None);
        assert_eq!(next_attempt(&Failure::permanent("400"), 1, now), None);
    }
}
