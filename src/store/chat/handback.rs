//! Messenger threads handed back to the bot (FB-03, migration `0007_chat_messenger_handback`):
//! who owns a thread now, and the durable queue of `pass_thread_control` calls the outbox task
//! makes when a chat on a passed thread completes.
//!
//! Like the rest of `store::chat` this only records and reports: *whether* a completed chat
//! hands its thread back is the chat engine's decision.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{ChatTx, Store, StoreError, format_ts, opt_ts_col, parse_ts, ts_col};

/// A thread to hand back, due now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandbackItem {
    /// The queue entry.
    pub id: i64,
    /// The chat that completed.
    pub chat_id: i64,
    /// Its channel.
    pub channel: String,
    /// The contact's page-scoped id (the thread).
    pub psid: String,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// A hand-back and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandbackRow {
    /// The chat that completed.
    pub chat_id: i64,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// The last failure, if any (no secret).
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When Graph accepted it, or it was given up.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A pending hand-back waits while its chat still has messages to deliver: once the thread is
/// the bot's, the Send API refuses our replies.
const READY: &str = "h.state = 'pending' AND NOT EXISTS (
        SELECT 1 FROM chat_outbox o JOIN chat_messages m ON m.id = o.message_id
        WHERE m.chat_id = h.chat_id AND o.state = 'pending')";

impl Store {
    /// Up to `limit` hand-backs due at `now` whose chat has no message left to deliver, oldest
    /// first.
    pub fn chat_handbacks_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<HandbackItem>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.conn
            .prepare_cached(&format!(
                "SELECT h.id, h.chat_id, c.channel, k.external_id, h.attempts
                 FROM messenger_handbacks h
                 JOIN chats c ON c.id = h.chat_id
                 JOIN chat_identities k ON k.id = c.identity_id
                 WHERE {READY} AND h.next_attempt_at <= ?1
                 ORDER BY h.next_attempt_at, h.id LIMIT ?2"
            ))
            .and_then(|mut s| {
                s.query_map(params![format_ts(now), limit], |r| {
                    Ok(HandbackItem {
                        id: r.get(0)?,
                        chat_id: r.get(1)?,
                        channel: r.get(2)?,
                        psid: r.get(3)?,
                        attempts: r.get(4)?,
                    })
                })?
                .collect()
            })
            .map_err(|e| self.err(e))
    }

    /// When the next hand-back is due (among those whose chat has nothing left to deliver).
    pub fn chat_handbacks_next_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let text: Option<String> = self
            .conn
            .query_row(
                &format!("SELECT min(h.next_attempt_at) FROM messenger_handbacks h WHERE {READY}"),
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        Ok(text.as_deref().and_then(parse_ts))
    }

    /// The hand-back of a chat, if it has one.
    pub fn chat_handback(&self, chat_id: i64) -> Result<Option<HandbackRow>, StoreError> {
        self.conn
            .query_row(
                "SELECT chat_id, state, attempts, last_error, created_at, finished_at
                 FROM messenger_handbacks WHERE chat_id = ?1",
                [chat_id],
                |r| {
                    Ok(HandbackRow {
                        chat_id: r.get(0)?,
                        state: r.get(1)?,
                        attempts: r.get(2)?,
                        last_error: r.get(3)?,
                        created_at: ts_col(r, 4)?,
                        finished_at: opt_ts_col(r, 5)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

impl ChatTx<'_> {
    /// Whether we own the Messenger thread of `psid` on `channel` (control was passed to us).
    pub fn thread_ours(&mut self, channel: &str, psid: &str) -> Result<bool, StoreError> {
        let owner: Option<String> = self
            .conn
            .prepare_cached("SELECT owner FROM messenger_threads WHERE channel = ?1 AND psid = ?2")
            .and_then(|mut s| s.query_row([channel, psid], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        Ok(owner.as_deref() == Some("us"))
    }

    /// Queues the hand-back of the thread of `chat_id`, due from `at` (once per chat).
    pub fn queue_handback(&mut self, chat_id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO messenger_handbacks (chat_id, state, next_attempt_at, created_at)
                 VALUES (?1, 'pending', ?2, ?2)
                 ON CONFLICT (chat_id) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![chat_id, format_ts(at)]))
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Records an attempt: sent (`error` is `None`), retried at `retry_at`, or given up.
    pub fn handback_attempted(
        &mut self,
        id: i64,
        error: Option<&str>,
        retry_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (state, next, finished) = match (error, retry_at) {
            (None, _) => ("sent", None, Some(format_ts(at))),
            (Some(_), Some(retry)) => ("pending", Some(format_ts(retry)), None),
            (Some(_), None) => ("failed", None, Some(format_ts(at))),
        };
        self.conn
            .prepare_cached(
                "UPDATE messenger_handbacks SET state = ?2, attempts = attempts + 1,
                    last_error = coalesce(?3, last_error), next_attempt_at = ?4, finished_at = ?5
                 WHERE id = ?1 AND state = 'pending'",
            )
            .and_then(|mut s| s.execute(params![id, state, error, next, finished]))
            .map(drop)
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Direction, NewContact, NewMessage};
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid timestamp")
    }

    #[test]
    fn a_handback_waits_for_the_chats_replies_then_is_retried_and_recorded() {
        // REQ: FB-03
        let mut store = Store::open_in_memory().expect("store");
        let (chat, outbox) = store
            .chat_batch(|tx| {
                let contact = tx.contact(
                    NewContact {
                        channel: "fb",
                        external_id: "P1",
                        name: "P1",
                        email: None,
                        phone: None,
                    },
                    t(0),
                )?;
                tx.set_thread_owner("fb", "P1", true, t(0))?;
                assert!(tx.thread_ours("fb", "P1")?);
                assert!(!tx.thread_ours("fb", "P2")?);
                let chat = tx.create_chat("fb", "support", contact, t(0))?;
                let reply = tx.add_message(NewMessage {
                    chat_id: chat,
                    channel: "fb",
                    direction: Direction::Out,
                    provider_id: None,
                    author: Some("ann"),
                    text: "bye",
                    at: t(1),
                })?;
                tx.enqueue(reply, t(1))?;
                tx.queue_handback(chat, t(2))?;
                tx.queue_handback(chat, t(3))?;
                Ok(chat)
            })
            .map(|chat| (chat, store.chat_outbox_due(t(5), 10).expect("due")[0].id))
            .expect("batch");

        // The reply goes first: the hand-back is not due while it is pending.
        assert!(store.chat_handbacks_due(t(5), 10).expect("due").is_empty());
        assert_eq!(store.chat_handbacks_next_at().expect("next"), None);
        store
            .chat_batch(|tx| tx.outbox_sent(outbox, t(5)))
            .expect("sent");
        assert_eq!(store.chat_handbacks_next_at().expect("next"), Some(t(2)));
        let due = store.chat_handbacks_due(t(5), 10).expect("due");
        assert_eq!(
            due,
            [HandbackItem {
                id: due[0].id,
                chat_id: chat,
                channel: "fb".into(),
                psid: "P1".into(),
                attempts: 0,
            }],
            "queued once per chat"
        );

        let id = due[0].id;
        store
            .chat_batch(|tx| {
                tx.handback_attempted(id, Some("Graph answered 503"), Some(t(9)), t(6))
            })
            .expect("retry");
        assert!(store.chat_handbacks_due(t(8), 10).expect("due").is_empty());
        assert_eq!(
            store.chat_handbacks_due(t(9), 10).expect("due")[0].attempts,
            1
        );
        store
            .chat_batch(|tx| tx.handback_attempted(id, None, None, t(9)))
            .expect("sent");
        let row = store.chat_handback(chat).expect("read").expect("queued");
        assert_eq!(
            (row.state.as_str(), row.attempts, row.last_error.as_deref()),
            ("sent", 2, Some("Graph answered 503"))
        );
        assert_eq!(row.finished_at, Some(t(9)));
        assert_eq!(store.chat_handbacks_next_at().expect("next"), None);
    }
}
