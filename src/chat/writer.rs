//! The writer task: takes the commands that queued up, commits them as one batch, then answers
//! each and applies the batch's effects (events, metrics, wake-ups).
//!
//! Group commit falls out of the loop: while one batch is on the blocking pool, new commands
//! queue in the channel and make up the next batch. Nothing is answered before its commit; if
//! the commit fails, every command of the batch gets an error and nothing was stored.
//!
//! The commit and the disk flush are pipelined (see [`crate::store::WalSync`]): the writer
//! commits a batch without waiting for the disk and goes on with the next one, while
//! [`acknowledge`] flushes the log and only then answers the batches it covers, in commit
//! order. A reply therefore still means "on disk", and the writer is never idle during a
//! flush.
//!
//! A full disk fails a whole batch (`SQLITE_FULL` may roll the transaction back): every
//! command of it is answered [`ChatError::StorageFull`] (503 at the edge), nothing is
//! acknowledged, the episode is logged once ([`crate::telemetry::disk`]) and the writer takes
//! the next batch as usual, so it recovers as soon as space returns.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::config::ConfigSet;
use crate::store::StoreHandle;
use crate::store::WalSync;

use super::commands::{self, BatchOutcome, ChatError, Command, Reply};
use super::{ChatService, MAX_BATCH};

/// Committed batches waiting for their flush; a full queue holds the writer back.
const UNFLUSHED_BATCHES: usize = 16;

/// A command on its way to the writer.
pub(super) struct Envelope {
    pub command: Command,
    /// When it was made (the engine's clock).
    pub at: DateTime<Utc>,
    pub reply: oneshot::Sender<Result<Reply, ChatError>>,
}

/// A committed batch whose answers wait for the flush.
struct Committed {
    replies: Vec<oneshot::Sender<Result<Reply, ChatError>>>,
    outcome: BatchOutcome,
}

pub(super) async fn run(
    service: ChatService,
    receiver: mpsc::Receiver<Envelope>,
    store: StoreHandle,
) {
    // An in-memory store (tests) has no log: its batches are answered at commit.
    let wal = store.call(|s| Ok(s.wal_sync())).await.unwrap_or(None);
    let (committed, unflushed) = mpsc::channel(UNFLUSHED_BATCHES);
    // One task: the writer and the flusher take turns on the blocking pool's threads.
    tokio::join!(
        write(&service, receiver, &store, committed),
        acknowledge(&service, unflushed, wal),
    );
}

async fn write(
    service: &ChatService,
    mut receiver: mpsc::Receiver<Envelope>,
    store: &StoreHandle,
    committed: mpsc::Sender<Committed>,
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
        commit(service, store, &mut applied, batch, &committed).await;
    }
    // Stopping: take no more, but answer what already queued (those clients are waiting).
    receiver.close();
    while let Some(first) = receiver.recv().await {
        let batch = fill(first, &mut receiver);
        commit(service, store, &mut applied, batch, &committed).await;
    }
}

/// Flushes the log once for every committed batch that queued up meanwhile, then answers them
/// and applies their effects, in commit order.
async fn acknowledge(
    service: &ChatService,
    mut unflushed: mpsc::Receiver<Committed>,
    mut wal: Option<WalSync>,
) {
    while let Some(first) = unflushed.recv().await {
        let mut group = vec![first];
        while let Ok(next) = unflushed.try_recv() {
            group.push(next);
        }
        let flushed = match wal.take() {
            None => Ok(()),
            Some(mut log) => {
                let joined = tokio::task::spawn_blocking(move || {
                    let result = log.sync();
                    (log, result)
                })
                .await;
                match joined {
                    Ok((log, result)) => {
                        wal = Some(log);
                        result
                    }
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                }
            }
        };
        if let Err(e) = &flushed {
            tracing::error!(error = %e, "committed chat batches could not be flushed to disk; their requests are answered with an error");
        }
        for Committed { replies, outcome } in group {
            let BatchOutcome {
                replies: answers,
                effects,
                operators,
            } = outcome;
            // The store has the changes either way: events and gauges follow it.
            publish(service, effects, operators);
            for (reply, answer) in replies.into_iter().zip(answers) {
                let answer = match &flushed {
                    Ok(()) => answer,
                    Err(_) => Err(ChatError::Unavailable(
                        "the chat store could not flush to disk; retry (a repeated delivery is recognized)".into(),
                    )),
                };
                // The requester may have gone (client disconnected); the change stands.
                let _ = reply.send(answer);
            }
        }
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
    committed: &mpsc::Sender<Committed>,
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
        .call(move |s| {
            s.chat_batch_unsynced(|tx| commands::execute(tx, &snapshot, redistribute, commands))
        })
        .await;
    match result {
        Ok(outcome) => {
            crate::telemetry::disk::writable();
            if redistribute {
                *applied = Some(config);
            }
            // The flusher outlives the writer (`run` joins both), so this cannot fail.
            let _ = committed.send(Committed { replies, outcome }).await;
        }
        Err(e) if e.is_disk_full() => {
            // Logged once per episode; the writer goes on with the next batch.
            crate::telemetry::disk::full(&e);
            for reply in replies {
                let _ = reply.send(Err(ChatError::StorageFull(
                    "the state file's disk is full; nothing was stored, retry later".into(),
                )));
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
