//! The writer task: takes the commands that queued up, commits them as one batch, then answers
//! each and applies the batch's effects (events, metrics, wake-ups).
//!
//! Group commit falls out of the loop: while one batch is on the blocking pool, new commands
//! queue in the channel and make up the next batch. Nothing is answered before its commit; if
//! the commit fails, every command of the batch gets an error and nothing was stored.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::config::ConfigSet;
use crate::engine::StoreHandle;

use super::commands::{self, BatchOutcome, ChatError, Command, Reply};
use super::{ChatService, MAX_BATCH};

/// A command on its way to the writer.
pub(super) struct Envelope {
    pub command: Command,
    /// When it was made (the engine's clock).
    pub at: DateTime<Utc>,
    pub reply: oneshot::Sender<Result<Reply, ChatError>>,
}

pub(super) async fn run(
    service: ChatService,
    mut receiver: mpsc::Receiver<Envelope>,
    store: StoreHandle,
) {
    let cancel = service.inner.cancel.clone();
    let mut applied: Option<Arc<ConfigSet>> = None;
    loop {
        let first = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            next = receiver.recv() => match next {
                Some(envelope) => envelope,
                None => return,
            },
        };
        let batch = fill(first, &mut receiver);
        commit(&service, &store, &mut applied, batch).await;
    }
    // Stopping: take no more, but answer what already queued (those clients are waiting).
    receiver.close();
    while let Some(first) = receiver.recv().await {
        let batch = fill(first, &mut receiver);
        commit(&service, &store, &mut applied, batch).await;
    }
}

fn fill(first: Envelope, receiver: &mut mpsc::Receiver<Envelope>) -> Vec<Envelope> {
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match receiver.try_recv() {
            Ok(envelope) => batch.push(envelope),
            Err(_) => break,
        }
    }
    batch
}

async fn commit(
    service: &ChatService,
    store: &StoreHandle,
    applied: &mut Option<Arc<ConfigSet>>,
    batch: Vec<Envelope>,
) {
    let (config, snapshot) = service.snapshot_of_running().await;
    // A new config (or the first batch after start) may have made operators available.
    let redistribute = applied
        .as_ref()
        .is_none_or(|seen| !Arc::ptr_eq(seen, &config));
    let mut replies = Vec::with_capacity(batch.len());
    let mut commands = Vec::with_capacity(batch.len());
    for envelope in batch {
        replies.push(envelope.reply);
        commands.push((envelope.command, envelope.at));
    }
    let result = store
        .call(move |s| s.chat_batch(|tx| commands::execute(tx, &snapshot, redistribute, commands)))
        .await;
    match result {
        Ok(outcome) => {
            if redistribute {
                *applied = Some(config);
            }
            let BatchOutcome {
                replies: answers,
                effects,
                operators,
            } = outcome;
            publish(service, effects, operators);
            for (reply, answer) in replies.into_iter().zip(answers) {
                // The requester may have gone (client disconnected); the change stands.
                let _ = reply.send(answer);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "a chat batch could not be committed; nothing of it was stored");
            for reply in replies {
                let _ = reply.send(Err(ChatError::Unavailable(
                    "the chat store could not commit; nothing was stored, retry".into(),
                )));
            }
        }
    }
}

fn publish(
    service: &ChatService,
    effects: commands::Effects,
    operators: Option<Vec<(String, crate::store::chat::OperatorStatus, i64)>>,
) {
    let metrics = service.inner.engine.metrics();
    for (queue, from, to) in &effects.transitions {
        if let Some(from) = from {
            metrics
                .chats
                .with_label_values(&[queue, from.as_str()])
                .dec();
        }
        metrics.chats.with_label_values(&[queue, to.as_str()]).inc();
    }
    for (queue, seconds) in &effects.assignments {
        metrics
            .chat_assignment_seconds
            .with_label_values(&[queue])
            .observe(*seconds);
    }
    for (channel, direction) in &effects.messages {
        metrics
            .chat_messages_total
            .with_label_values(&[channel, direction.as_str()])
            .inc();
    }
    if let Some(counts) = operators {
        for (queue, status, n) in counts {
            metrics
                .operators
                .with_label_values(&[&queue, status.as_str()])
                .set(n);
        }
    }
    if effects.wake_timers {
        service.inner.wake_timers.notify_one();
    }
    if effects.wake_outbox {
        service.inner.wake_outbox.notify_one();
    }
    for event in effects.events {
        // No subscriber is fine: events are notifications, the store is the truth.
        let _ = service.inner.events.send(Arc::new(event));
    }
}
