//! The chat domain's tables: chat identities, chats, messages, operator status, offers, timers
//! and the outbox (migrations `0003_chat`, `0009_records` for the identities).
//!
//! # Responsibility
//! Typed reads and writes over those tables, and nothing else. Every write of the chat domain
//! happens inside [`Store::chat_batch`]: one IMMEDIATE transaction in which the caller (the chat
//! engine's writer) runs many commands, each in its own savepoint ([`ChatTx::savepoint`]), so a
//! refused command leaves no trace while the others commit together (group commit).
//!
//! # What it must not do
//! - Decide anything: *who* gets a chat, *when* it completes, whether a caller may see it is the
//!   chat module's business. These functions only record and report.
//! - Leak SQLite: [`ChatTx`] wraps the connection privately; rows are plain structs.
//! - Deduplicate in memory: a delivery stored twice is refused by `UNIQUE (channel,
//!   provider_id)`, and a second open chat per contact by a partial unique index.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Store, StoreError, db_error, format_ts, parse_ts, set_synchronous};

mod handback;
pub use handback::{HandbackItem, HandbackRow};

/// The state of a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChatState {
    /// Waiting for an operator to accept (possibly with no offer yet: nobody is available).
    Offered,
    /// An operator has it.
    Active,
    /// Done; a new client message opens a new chat.
    Completed,
}

impl ChatState {
    /// Every state, in lifecycle order.
    pub const ALL: [ChatState; 3] = [ChatState::Offered, ChatState::Active, ChatState::Completed];

    /// The name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatState::Offered => "offered",
            ChatState::Active => "active",
            ChatState::Completed => "completed",
        }
    }

    /// Parses [`ChatState::as_str`].
    pub fn parse(text: &str) -> Option<ChatState> {
        ChatState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client.
    In,
    /// From an operator.
    Out,
}

impl Direction {
    /// `in` | `out`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// An operator's availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperatorStatus {
    /// Receives chats.
    Active,
    /// Receives none until they set themselves active (also the status of a new operator).
    Inactive,
}

impl OperatorStatus {
    /// `active` | `inactive`.
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorStatus::Active => "active",
            OperatorStatus::Inactive => "inactive",
        }
    }

    /// Parses [`OperatorStatus::as_str`].
    pub fn parse(text: &str) -> Option<OperatorStatus> {
        match text {
            "active" => Some(OperatorStatus::Active),
            "inactive" => Some(OperatorStatus::Inactive),
            _ => None,
        }
    }
}

/// How a chat was completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletedBy {
    /// The operator (or a supervisor) completed it.
    Operator,
    /// The queue's completion timeout elapsed (CH-05).
    Timeout,
}

impl CompletedBy {
    fn as_str(self) -> &'static str {
        match self {
            CompletedBy::Operator => "operator",
            CompletedBy::Timeout => "timeout",
        }
    }
}

/// A chat as stored, with its contact's id and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRow {
    /// The chat's id.
    pub id: i64,
    /// The `ChatChannel` it came through.
    pub channel: String,
    /// The `ChatQueue` it belongs to.
    pub queue: String,
    /// The contact's id (the record store's contact of the chat's identity).
    pub contact_id: i64,
    /// The contact's identity on the channel.
    pub contact_external_id: String,
    /// The contact's name.
    pub contact_name: String,
    /// Lifecycle state.
    pub state: ChatState,
    /// The operator, once accepted.
    pub operator: Option<String>,
    /// When the first message arrived.
    pub created_at: DateTime<Utc>,
    /// When it was first offered or assigned to an operator.
    pub distributed_at: Option<DateTime<Utc>>,
    /// When an operator accepted it.
    pub accepted_at: Option<DateTime<Utc>>,
    /// When it was completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// When the last operator message was written.
    pub last_out_at: Option<DateTime<Utc>>,
    /// When it completes on its own, if ever.
    pub complete_at: Option<DateTime<Utc>>,
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    /// The message's id.
    pub id: i64,
    /// Its chat.
    pub chat_id: i64,
    /// In or out.
    pub direction: Direction,
    /// The operator who wrote an outgoing message.
    pub author: Option<String>,
    /// The text.
    pub text: String,
    /// When it was received or written.
    pub at: DateTime<Utc>,
}

/// A message to store.
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    /// Its chat.
    pub chat_id: i64,
    /// The chat's channel.
    pub channel: &'a str,
    /// In or out.
    pub direction: Direction,
    /// The provider's message id (inbound), the deduplication key.
    pub provider_id: Option<&'a str>,
    /// The operator who wrote it (outbound).
    pub author: Option<&'a str>,
    /// The text.
    pub text: &'a str,
    /// When.
    pub at: DateTime<Utc>,
}

/// A contact as a channel identifies it.
#[derive(Debug, Clone, Copy)]
pub struct NewContact<'a> {
    /// The channel.
    pub channel: &'a str,
    /// The identity on that channel.
    pub external_id: &'a str,
    /// The display name (updated to the latest one seen).
    pub name: &'a str,
    /// E-mail, if the channel gave one.
    pub email: Option<&'a str>,
    /// Phone, if the channel gave one.
    pub phone: Option<&'a str>,
}

/// An open offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferRow {
    /// The chat offered.
    pub chat_id: i64,
    /// To whom.
    pub operator: String,
    /// A leastBusy assignment: counts against capacity and has a deadline.
    pub exclusive: bool,
    /// When it was made.
    pub offered_at: DateTime<Utc>,
    /// Accept by then, or it lapses.
    pub deadline: Option<DateTime<Utc>>,
}

/// An operator's status and current load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorLoad {
    /// The `User` name.
    pub name: String,
    /// Active or inactive (inactive when never set).
    pub status: OperatorStatus,
    /// Active chats plus exclusive (leastBusy) offers, across all queues: the capacity measure.
    pub in_work: u32,
    /// When the operator last took a chat.
    pub last_assigned_at: Option<DateTime<Utc>>,
}

/// An outgoing message due for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    /// The outbox entry.
    pub id: i64,
    /// The message.
    pub message_id: i64,
    /// Its chat.
    pub chat_id: i64,
    /// The channel to send through.
    pub channel: String,
    /// The contact's identity on that channel.
    pub contact_external_id: String,
    /// The operator who wrote it.
    pub author: Option<String>,
    /// The text.
    pub text: String,
    /// When it was written.
    pub at: DateTime<Utc>,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// What a chat action runs (CH-07).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// The built-in `createCase`.
    CreateCase,
    /// A POST to the action's webhook.
    Webhook,
}

impl ActionKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::CreateCase => "createCase",
            ActionKind::Webhook => "webhook",
        }
    }

    fn parse(text: &str) -> Option<ActionKind> {
        match text {
            "createCase" => Some(ActionKind::CreateCase),
            "webhook" => Some(ActionKind::Webhook),
            _ => None,
        }
    }
}

/// One run of a chat action and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRunRow {
    /// The run.
    pub id: i64,
    /// The chat it ran on.
    pub chat_id: i64,
    /// The `ChatAction` name.
    pub action: String,
    /// What it runs.
    pub kind: ActionKind,
    /// Who ran it.
    pub operator: String,
    /// `pending`, `done` or `failed`.
    pub state: String,
    /// Delivery attempts so far (webhooks).
    pub attempts: u32,
    /// The last failure, if any (no secret).
    pub last_error: Option<String>,
    /// The case a `createCase` run made.
    pub case_id: Option<i64>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When it was done or given up.
    pub finished_at: Option<DateTime<Utc>>,
    /// The contact of its chat.
    pub contact_id: i64,
    /// The queue of its chat.
    pub queue: String,
}

/// A case created from a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRow {
    /// The case.
    pub id: i64,
    /// The chat it came from.
    pub chat_id: i64,
    /// The chat's contact.
    pub contact_id: i64,
    /// The contact's name.
    pub contact_name: String,
    /// The chat's queue.
    pub queue: String,
    /// The case's title.
    pub title: String,
    /// The operator who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Which chats a list shows.
#[derive(Debug, Clone, Default)]
pub struct ChatFilter {
    /// Only this state.
    pub state: Option<ChatState>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only what this viewer may see; `None` = everything.
    pub viewer: Option<Viewer>,
}

/// An operator's view: chats offered to them, theirs, and their queues' chats.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The `User` name.
    pub user: String,
    /// The queues they operate in.
    pub queues: Vec<String>,
}

/// The chat domain's writes, inside one [`Store::chat_batch`] transaction.
pub struct ChatTx<'a> {
    conn: &'a Connection,
    path: &'a Path,
}

impl Store {
    /// Runs `work` in ONE immediate transaction and commits it durably (the log is flushed to
    /// disk inside the commit). `work` returns its results; they are handed back only when the
    /// commit succeeded, so nothing is acknowledged that is not durable. A store error from
    /// `work` rolls the whole transaction back.
    pub fn chat_batch<T>(
        &mut self,
        work: impl FnOnce(&mut ChatTx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.ensure_writable()?;
        self.run_chat_batch(work)
    }

    /// [`Store::chat_batch`] whose commit does not wait for the disk: the batch is committed,
    /// visible and safe from a crash of the process, but survives a power loss only once
    /// [`WalSync::sync`](super::WalSync::sync) has run after it. The chat writer's pipelined
    /// group commit (see [`super::wal`]). The store is fully synchronous again afterwards.
    pub fn chat_batch_unsynced<T>(
        &mut self,
        work: impl FnOnce(&mut ChatTx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.ensure_writable()?;
        set_synchronous(&self.conn, "NORMAL").map_err(|e| db_error(&self.path, e))?;
        let result = self.run_chat_batch(work);
        let restored = set_synchronous(&self.conn, "FULL").map_err(|e| db_error(&self.path, e));
        let result = result?;
        restored?;
        Ok(result)
    }

    fn run_chat_batch<T>(
        &mut self,
        work: impl FnOnce(&mut ChatTx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_error(&self.path, e))?;
        let result = {
            let mut chat = ChatTx {
                conn: &tx,
                path: &self.path,
            };
            work(&mut chat)?
        };
        tx.commit().map_err(|e| db_error(&self.path, e))?;
        Ok(result)
    }

    /// The chats `filter` selects, oldest first, `limit` from `offset`, and how many there are.
    pub fn chats(
        &self,
        filter: &ChatFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<ChatRow>, usize), StoreError> {
        list_chats(&self.conn, filter, offset, limit).map_err(|e| self.err(e))
    }

    /// One chat.
    pub fn chat(&self, id: i64) -> Result<Option<ChatRow>, StoreError> {
        select_chat(&self.conn, id).map_err(|e| self.err(e))
    }

    /// The messages of `chats`, oldest first (CH-11).
    pub fn chat_messages(&self, chats: &[i64]) -> Result<Vec<MessageRow>, StoreError> {
        select_messages(&self.conn, chats).map_err(|e| self.err(e))
    }

    /// The newest `per_chat` messages of each of `chats`, oldest first within a chat, and each
    /// chat's message count (chats without messages are absent from the counts).
    pub fn chat_latest_messages(
        &self,
        chats: &[i64],
        per_chat: usize,
    ) -> Result<(Vec<MessageRow>, BTreeMap<i64, usize>), StoreError> {
        let ids = serde_json::to_string(chats).expect("a list of ids serializes");
        let read = || -> rusqlite::Result<(Vec<MessageRow>, BTreeMap<i64, usize>)> {
            let rows = self
                .conn
                .prepare_cached(
                    "SELECT id, chat_id, direction, author, text, at FROM (
                       SELECT *, row_number() OVER (PARTITION BY chat_id ORDER BY id DESC) AS newest
                       FROM chat_messages WHERE chat_id IN (SELECT value FROM json_each(?1)))
                     WHERE newest <= ?2 ORDER BY chat_id, id",
                )?
                .query_map(rusqlite::params![ids, per_chat as i64], message_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let totals = self
                .conn
                .prepare_cached(
                    "SELECT chat_id, count(*) FROM chat_messages
                     WHERE chat_id IN (SELECT value FROM json_each(?1)) GROUP BY chat_id",
                )?
                .query_map([&ids], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as usize))
                })?
                .collect::<rusqlite::Result<BTreeMap<_, _>>>()?;
            Ok((rows, totals))
        };
        read().map_err(|e| self.err(e))
    }

    /// The open offers of a chat.
    pub fn chat_offers(&self, chat_id: i64) -> Result<Vec<OfferRow>, StoreError> {
        select_offers(&self.conn, "chat_id = ?1", chat_id).map_err(|e| self.err(e))
    }

    /// The open offers of `chats`, by chat.
    pub fn chat_offers_of(&self, chats: &[i64]) -> Result<Vec<OfferRow>, StoreError> {
        let ids = serde_json::to_string(chats).expect("a list of ids serializes");
        select_offers(
            &self.conn,
            "chat_id IN (SELECT value FROM json_each(?1))",
            ids,
        )
        .map_err(|e| self.err(e))
    }

    /// One page of a chat's messages, oldest first, and how many it has in all.
    pub fn chat_message_page(
        &self,
        chat: i64,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<MessageRow>, usize), StoreError> {
        let page = || -> rusqlite::Result<(Vec<MessageRow>, usize)> {
            let total: i64 = self
                .conn
                .prepare_cached("SELECT count(*) FROM chat_messages WHERE chat_id = ?1")?
                .query_row([chat], |r| r.get(0))?;
            let rows = self
                .conn
                .prepare_cached(
                    "SELECT id, chat_id, direction, author, text, at FROM chat_messages
                     WHERE chat_id = ?1 ORDER BY id LIMIT ?2 OFFSET ?3",
                )?
                .query_map(
                    rusqlite::params![
                        chat,
                        i64::try_from(limit).unwrap_or(i64::MAX),
                        i64::try_from(offset).unwrap_or(i64::MAX)
                    ],
                    message_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((rows, usize::try_from(total).unwrap_or(0)))
        };
        page().map_err(|e| self.err(e))
    }

    /// Status and load of each of `names`.
    pub fn chat_operators(&self, names: &[String]) -> Result<Vec<OperatorLoad>, StoreError> {
        names
            .iter()
            .map(|n| select_operator(&self.conn, n).map_err(|e| self.err(e)))
            .collect()
    }

    /// `(queue, active chats)` of one operator.
    pub fn chat_active_by_queue(&self, operator: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT queue, count(*) FROM chats WHERE operator = ?1 AND state = 'active'
                 GROUP BY queue ORDER BY queue",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([operator], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))
    }

    /// `(queue, state, count)` of every pair present: the `chats` gauge at start.
    pub fn chat_counts(&self) -> Result<Vec<(String, ChatState, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT queue, state, count(*) FROM chats GROUP BY queue, state")
            .map_err(|e| self.err(e))?;
        let rows: Vec<(String, String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|(q, s, n)| {
                let state = ChatState::parse(&s)
                    .ok_or_else(|| self.corrupt(format!("a chat has the unknown state {s:?}")))?;
                Ok((q, state, n))
            })
            .collect()
    }

    /// The earliest durable chat timer (accept deadline or completion), if any.
    pub fn chat_next_deadline(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT min(at) FROM (
                    SELECT min(deadline) AS at FROM chat_offers WHERE deadline IS NOT NULL
                    UNION ALL
                    SELECT min(complete_at) FROM chats WHERE complete_at IS NOT NULL)",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        Ok(text.as_deref().and_then(parse_ts))
    }

    /// Up to `limit` pending outbox entries due at `now`, oldest first.
    pub fn chat_outbox_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT o.id, m.id, m.chat_id, m.channel, k.external_id, m.author, m.text, m.at,
                        o.attempts
                 FROM chat_outbox o
                 JOIN chat_messages m ON m.id = o.message_id
                 JOIN chats c ON c.id = m.chat_id
                 JOIN chat_identities k ON k.id = c.identity_id
                 WHERE o.state = 'pending' AND o.next_attempt_at <= ?1
                 ORDER BY o.next_attempt_at, o.id LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        stmt.query_map(params![format_ts(now), limit], |r| {
            Ok(OutboxItem {
                id: r.get(0)?,
                message_id: r.get(1)?,
                chat_id: r.get(2)?,
                channel: r.get(3)?,
                contact_external_id: r.get(4)?,
                author: r.get(5)?,
                text: r.get(6)?,
                at: ts_col(r, 7)?,
                attempts: r.get(8)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.err(e))
    }

    /// When the next pending outbox entry is due, if any.
    pub fn chat_outbox_next_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.next_pending_at("chat_outbox")
    }

    /// The action runs of a chat, oldest first.
    pub fn chat_action_runs(&self, chat_id: i64) -> Result<Vec<ActionRunRow>, StoreError> {
        select_runs(&self.conn, "r.chat_id = ?1 ORDER BY r.id", chat_id).map_err(|e| self.err(e))
    }

    /// Up to `limit` webhook action runs due at `now`, oldest first.
    pub fn chat_actions_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ActionRunRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        select_runs(
            &self.conn,
            &format!(
                "r.state = 'pending' AND r.next_attempt_at <= ?1
                 ORDER BY r.next_attempt_at, r.id LIMIT {limit}"
            ),
            format_ts(now),
        )
        .map_err(|e| self.err(e))
    }

    /// When the next pending action run is due, if any.
    pub fn chat_actions_next_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.next_pending_at("chat_action_runs")
    }

    /// The earliest `next_attempt_at` of the pending rows of `table` (an outbox-like table of
    /// this module: `chat_outbox` or `chat_action_runs`).
    fn next_pending_at(&self, table: &'static str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let text: Option<String> = self
            .conn
            .query_row(
                &format!("SELECT min(next_attempt_at) FROM {table} WHERE state = 'pending'"),
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        Ok(text.as_deref().and_then(parse_ts))
    }

    /// The cases `viewer` may see (those of chats it may see; all for `None`), oldest first,
    /// `limit` from `offset`, and how many there are.
    pub fn chat_cases(
        &self,
        viewer: Option<&Viewer>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<CaseRow>, usize), StoreError> {
        list_cases(&self.conn, viewer, offset, limit).map_err(|e| self.err(e))
    }

    /// Whether we own the Messenger thread of `psid` on `channel` (FB-03); the primary
    /// receiver owns it until it passes control.
    pub fn messenger_thread_ours(&self, channel: &str, psid: &str) -> Result<bool, StoreError> {
        let owner: Option<String> = self
            .conn
            .query_row(
                "SELECT owner FROM messenger_threads WHERE channel = ?1 AND psid = ?2",
                [channel, psid],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(owner.as_deref() == Some("us"))
    }

    /// The names of the channels that have at least one chat: they cannot be deleted, only
    /// deactivated (CH-10).
    pub fn chat_channels_with_chats(&self) -> Result<BTreeSet<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT DISTINCT channel FROM chats")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| self.err(e))
    }

    /// The delivery state of an outgoing message: `pending`, `sent` or `failed`.
    pub fn chat_delivery(&self, message_id: i64) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT state FROM chat_outbox WHERE message_id = ?1",
                [message_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

impl ChatTx<'_> {
    /// Runs `work` in a savepoint: on `Err` everything it wrote is rolled back and the rest of
    /// the batch goes on.
    pub fn savepoint<T, E: From<StoreError>>(
        &mut self,
        work: impl FnOnce(&mut ChatTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.exec("SAVEPOINT chat_command")?;
        match work(self) {
            Ok(value) => {
                self.exec("RELEASE chat_command")?;
                Ok(value)
            }
            Err(e) => {
                self.exec("ROLLBACK TO chat_command")?;
                self.exec("RELEASE chat_command")?;
                Err(e)
            }
        }
    }

    /// The chat identity `(channel, external_id)`, created on first sight, linked to its
    /// contact; answers the identity's id, which chats point to (one open chat per identity).
    ///
    /// The identity keeps what the channel last said (name, e-mail, phone). Most messages come
    /// from an identity already known with the same details: one indexed read of a cached
    /// statement, and nothing is written. An identity whose contact was deleted through the
    /// API joins a live contact (found or new) with its next message, and its chats with it. Otherwise the identity is updated and its contact
    /// found or created through `records::resolve_contact`, the one find-or-create
    /// of chat, mail and sync: by the identity's link, else by the e-mail, else by the phone
    /// (E.164), then merged by the record store's policy.
    pub fn contact(&mut self, c: NewContact<'_>, at: DateTime<Utc>) -> Result<i64, StoreError> {
        let mut find = self
            .conn
            .prepare_cached(
                "SELECT i.id, i.name, i.email, i.phone,
                        (SELECT k.deleted_at IS NULL FROM contacts k WHERE k.id = i.contact_id),
                        i.contact_id
                 FROM chat_identities i WHERE i.channel = ?1 AND i.external_id = ?2",
            )
            .map_err(|e| self.err(e))?;
        type Known = (
            i64,
            String,
            Option<String>,
            Option<String>,
            Option<bool>,
            Option<i64>,
        );
        let known: Option<Known> = find
            .query_row([c.channel, c.external_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .optional()
            .map_err(|e| self.err(e))?;
        drop(find);
        // Linked to a live contact: nothing to do unless the channel says something new.
        if let Some((id, name, email, phone, Some(true), _)) = &known {
            let unchanged = *name == c.name
                && (c.email.is_none() || c.email == email.as_deref())
                && (c.phone.is_none() || c.phone == phone.as_deref());
            if unchanged {
                return Ok(*id);
            }
        }
        let at = format_ts(at);
        // The contact first, so the identity is written once, with its link.
        let origin = format!("ChatChannel/{}", c.channel);
        let sighting = super::records::Sighting::of_chat(
            &origin,
            c.name,
            c.email,
            c.phone,
            known.as_ref().and_then(|k| k.5),
        );
        let contact =
            super::records::resolve_contact(self.conn, &sighting, &at).map_err(|e| self.err(e))?;
        self.conn
            .prepare_cached(
                "INSERT INTO chat_identities
                    (channel, external_id, name, email, phone, created_at, contact_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (channel, external_id) DO UPDATE SET
                    name = excluded.name,
                    email = coalesce(excluded.email, email),
                    phone = coalesce(excluded.phone, phone),
                    contact_id = excluded.contact_id
                 RETURNING id",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        c.channel,
                        c.external_id,
                        c.name,
                        c.email,
                        c.phone,
                        at,
                        contact
                    ],
                    |r| r.get(0),
                )
            })
            .map_err(|e| self.err(e))
    }

    /// The chat of an inbound message already stored under `provider_id` on `channel`.
    pub fn delivered(
        &mut self,
        channel: &str,
        provider_id: &str,
    ) -> Result<Option<i64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT chat_id FROM chat_messages WHERE channel = ?1 AND provider_id = ?2",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_row([channel, provider_id], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The open (not completed) chat of a chat identity ([`ChatTx::contact`]).
    pub fn open_chat_of(&mut self, identity: i64) -> Result<Option<ChatRow>, StoreError> {
        select_chat_where(
            self.conn,
            "c.identity_id = ?1 AND c.state <> 'completed'",
            identity,
        )
        .map_err(|e| self.err(e))
    }

    /// Opens a chat in state `offered` with no offer yet.
    pub fn create_chat(
        &mut self,
        channel: &str,
        queue: &str,
        contact_id: i64,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO chats (channel, queue, identity_id, state, created_at)
                 VALUES (?1, ?2, ?3, 'offered', ?4) RETURNING id",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_row(params![channel, queue, contact_id, format_ts(at)], |r| {
            r.get(0)
        })
        .map_err(|e| self.err(e))
    }

    /// Stores a message; returns its id.
    pub fn add_message(&mut self, m: NewMessage<'_>) -> Result<i64, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO chat_messages (chat_id, channel, direction, provider_id, author, text, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_row(
            params![
                m.chat_id,
                m.channel,
                m.direction.as_str(),
                m.provider_id,
                m.author,
                m.text,
                format_ts(m.at)
            ],
            |r| r.get(0),
        )
        .map_err(|e| self.err(e))
    }

    /// One chat.
    pub fn chat(&mut self, id: i64) -> Result<Option<ChatRow>, StoreError> {
        select_chat(self.conn, id).map_err(|e| self.err(e))
    }

    /// The `offered` chats of `queue`, oldest first.
    pub fn waiting_chats(&mut self, queue: &str) -> Result<Vec<ChatRow>, StoreError> {
        select_chats_where(
            self.conn,
            "c.queue = ?1 AND c.state = 'offered' ORDER BY c.id",
            queue,
        )
        .map_err(|e| self.err(e))
    }

    /// The open offers of a chat.
    pub fn offers(&mut self, chat_id: i64) -> Result<Vec<OfferRow>, StoreError> {
        select_offers(self.conn, "chat_id = ?1", chat_id).map_err(|e| self.err(e))
    }

    /// The open offers made to an operator.
    pub fn offers_to(&mut self, operator: &str) -> Result<Vec<OfferRow>, StoreError> {
        select_offers(self.conn, "operator = ?1", operator).map_err(|e| self.err(e))
    }

    /// Offers whose accept deadline is at or before `now`.
    pub fn lapsed_offers(&mut self, now: DateTime<Utc>) -> Result<Vec<OfferRow>, StoreError> {
        select_offers(
            self.conn,
            "deadline IS NOT NULL AND deadline <= ?1",
            format_ts(now),
        )
        .map_err(|e| self.err(e))
    }

    /// Records an offer (a second offer of the same chat to the same operator is a no-op).
    pub fn add_offer(&mut self, offer: &OfferRow) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO chat_offers (chat_id, operator, exclusive, offered_at, deadline)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            )
            .map_err(|e| self.err(e))?;
        stmt.execute(params![
            offer.chat_id,
            offer.operator,
            offer.exclusive,
            format_ts(offer.offered_at),
            offer.deadline.map(format_ts)
        ])
        .map(drop)
        .map_err(|e| self.err(e))
    }

    /// Withdraws one offer; true when there was one.
    pub fn remove_offer(&mut self, chat_id: i64, operator: &str) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached("DELETE FROM chat_offers WHERE chat_id = ?1 AND operator = ?2")
            .and_then(|mut s| s.execute(params![chat_id, operator]))
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Sets `distributed_at` the first time a chat reaches an operator; true that first time.
    pub fn mark_distributed(
        &mut self,
        chat_id: i64,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE chats SET distributed_at = ?2 WHERE id = ?1 AND distributed_at IS NULL",
            )
            .and_then(|mut s| s.execute(params![chat_id, format_ts(at)]))
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Status and load of an operator.
    pub fn operator(&mut self, name: &str) -> Result<OperatorLoad, StoreError> {
        select_operator(self.conn, name).map_err(|e| self.err(e))
    }

    /// Sets an operator's status; true when it changed.
    pub fn set_operator_status(
        &mut self,
        name: &str,
        status: OperatorStatus,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let before = self.operator(name)?.status;
        self.conn
            .prepare_cached(
                "INSERT INTO chat_operators (name, status, status_changed_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET status = excluded.status,
                    status_changed_at = excluded.status_changed_at
                 WHERE status <> excluded.status",
            )
            .and_then(|mut s| s.execute(params![name, status.as_str(), format_ts(at)]))
            .map_err(|e| self.err(e))?;
        Ok(before != status)
    }

    /// Makes `operator` the chat's operator: `offered` → `active`, offers withdrawn, and the
    /// operator's last-assigned time set. Returns who else held an offer.
    pub fn activate(
        &mut self,
        chat_id: i64,
        operator: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let others: Vec<String> = self
            .offers(chat_id)?
            .into_iter()
            .map(|o| o.operator)
            .filter(|o| o != operator)
            .collect();
        let at = format_ts(at);
        self.conn
            .prepare_cached("DELETE FROM chat_offers WHERE chat_id = ?1")
            .and_then(|mut s| s.execute([chat_id]))
            .and_then(|_| {
                self.conn
                    .prepare_cached(
                        "UPDATE chats SET state = 'active', operator = ?2, accepted_at = ?3,
                            distributed_at = coalesce(distributed_at, ?3)
                         WHERE id = ?1 AND state = 'offered'",
                    )?
                    .execute(params![chat_id, operator, at])
            })
            .and_then(|_| {
                self.conn
                    .prepare_cached(
                        "INSERT INTO chat_operators (name, status, status_changed_at, last_assigned_at)
                         VALUES (?1, 'inactive', ?2, ?2)
                         ON CONFLICT (name) DO UPDATE SET last_assigned_at = excluded.last_assigned_at",
                    )?
                    .execute(params![operator, at])
            })
            .map_err(|e| self.err(e))?;
        Ok(others)
    }

    /// Completes a chat (withdrawing any offer and its timers). Returns who held an offer.
    pub fn complete(
        &mut self,
        chat_id: i64,
        by: CompletedBy,
        at: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let offered: Vec<String> = self
            .offers(chat_id)?
            .into_iter()
            .map(|o| o.operator)
            .collect();
        self.conn
            .prepare_cached("DELETE FROM chat_offers WHERE chat_id = ?1")
            .and_then(|mut s| s.execute([chat_id]))
            .and_then(|_| {
                self.conn
                    .prepare_cached(
                        "UPDATE chats SET state = 'completed', completed_at = ?2,
                            completed_by = ?3, complete_at = NULL
                         WHERE id = ?1 AND state <> 'completed'",
                    )?
                    .execute(params![chat_id, format_ts(at), by.as_str()])
            })
            .map_err(|e| self.err(e))?;
        Ok(offered)
    }

    /// Records an operator message's time and the chat's completion timer (`None`: never).
    pub fn set_last_out(
        &mut self,
        chat_id: i64,
        at: DateTime<Utc>,
        complete_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE chats SET last_out_at = ?2, complete_at = ?3 WHERE id = ?1")
            .and_then(|mut s| {
                s.execute(params![chat_id, format_ts(at), complete_at.map(format_ts)])
            })
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Open chats whose completion timer is at or before `now`.
    pub fn due_completions(&mut self, now: DateTime<Utc>) -> Result<Vec<ChatRow>, StoreError> {
        select_chats_where(
            self.conn,
            "c.complete_at IS NOT NULL AND c.complete_at <= ?1 AND c.state <> 'completed'
             ORDER BY c.complete_at, c.id",
            format_ts(now),
        )
        .map_err(|e| self.err(e))
    }

    /// Queues an outgoing message for delivery now.
    pub fn enqueue(&mut self, message_id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO chat_outbox (message_id, state, next_attempt_at)
                 VALUES (?1, 'pending', ?2)",
            )
            .and_then(|mut s| s.execute(params![message_id, format_ts(at)]))
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Marks an outbox entry sent.
    pub fn outbox_sent(&mut self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE chat_outbox SET state = 'sent', sent_at = ?2, next_attempt_at = NULL,
                    attempts = attempts + 1
                 WHERE id = ?1 AND state = 'pending'",
            )
            .and_then(|mut s| s.execute(params![id, format_ts(at)]))
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Records a failed attempt: retried at `retry_at`, or given up when `None`.
    pub fn outbox_failed(
        &mut self,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let state = if retry_at.is_some() {
            "pending"
        } else {
            "failed"
        };
        self.conn
            .prepare_cached(
                "UPDATE chat_outbox SET state = ?2, attempts = attempts + 1, last_error = ?3,
                    next_attempt_at = ?4
                 WHERE id = ?1 AND state = 'pending'",
            )
            .and_then(|mut s| s.execute(params![id, state, error, retry_at.map(format_ts)]))
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Stores a case made from `chat` by `operator`; answers its id.
    pub fn create_case(
        &mut self,
        chat: &ChatRow,
        title: &str,
        operator: &str,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO chat_cases (chat_id, identity_id, queue, title, created_by, created_at)
                 VALUES (?1, (SELECT identity_id FROM chats WHERE id = ?1), ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    chat.id,
                    chat.queue,
                    title,
                    operator,
                    format_ts(at)
                ])
            })
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records a run of `action` on `chat_id`: done at once with its case (`createCase`), or
    /// pending delivery from `at` (webhook). Answers the run.
    pub fn add_action_run(
        &mut self,
        chat_id: i64,
        action: &str,
        kind: ActionKind,
        operator: &str,
        case_id: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<ActionRunRow, StoreError> {
        let (state, next, finished) = match kind {
            ActionKind::CreateCase => ("done", None, Some(format_ts(at))),
            ActionKind::Webhook => ("pending", Some(format_ts(at)), None),
        };
        self.conn
            .prepare_cached(
                "INSERT INTO chat_action_runs (chat_id, action, kind, operator, state,
                    next_attempt_at, case_id, created_at, finished_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    chat_id,
                    action,
                    kind.as_str(),
                    operator,
                    state,
                    next,
                    case_id,
                    format_ts(at),
                    finished
                ])
            })
            .map_err(|e| self.err(e))?;
        let id = self.conn.last_insert_rowid();
        select_runs(self.conn, "r.id = ?1", id)
            .map_err(|e| self.err(e))?
            .pop()
            .ok_or_else(|| self.err(rusqlite::Error::QueryReturnedNoRows))
    }

    /// Records a delivery attempt of a webhook run: done (`error` is `None`), retried at
    /// `retry_at`, or given up. Answers whether the run was pending (and so changed).
    pub fn action_attempted(
        &mut self,
        id: i64,
        error: Option<&str>,
        retry_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (state, next, finished) = match (error, retry_at) {
            (None, _) => ("done", None, Some(format_ts(at))),
            (Some(_), Some(retry)) => ("pending", Some(format_ts(retry)), None),
            (Some(_), None) => ("failed", None, Some(format_ts(at))),
        };
        self.conn
            .prepare_cached(
                "UPDATE chat_action_runs SET state = ?2, attempts = attempts + 1,
                    last_error = coalesce(?3, last_error), next_attempt_at = ?4, finished_at = ?5
                 WHERE id = ?1 AND state = 'pending'",
            )
            .and_then(|mut s| s.execute(params![id, state, error, next, finished]))
            .map(|changed| changed > 0)
            .map_err(|e| self.err(e))
    }

    /// One action run.
    pub fn action_run(&mut self, id: i64) -> Result<Option<ActionRunRow>, StoreError> {
        select_runs(self.conn, "r.id = ?1", id)
            .map(|mut runs| runs.pop())
            .map_err(|e| self.err(e))
    }

    /// The latest bot-history chat (FB-03) of a chat identity, if any.
    pub fn bot_history_chat_of(&mut self, identity: i64) -> Result<Option<i64>, StoreError> {
        self.conn
            .prepare_cached("SELECT max(id) FROM chats WHERE identity_id = ?1 AND bot = 1")
            .and_then(|mut s| s.query_row([identity], |r| r.get(0)))
            .map_err(|e| self.err(e))
    }

    /// Opens a bot-history chat (FB-03): completed at once, no operator, never routed.
    pub fn create_bot_history_chat(
        &mut self,
        channel: &str,
        queue: &str,
        contact_id: i64,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO chats (channel, queue, identity_id, state, created_at, completed_at,
                    bot)
                 VALUES (?1, ?2, ?3, 'completed', ?4, ?4, 1) RETURNING id",
            )
            .and_then(|mut s| {
                s.query_row(params![channel, queue, contact_id, format_ts(at)], |r| {
                    r.get(0)
                })
            })
            .map_err(|e| self.err(e))
    }

    /// Records who owns a Messenger thread (FB-03): us, or the primary receiver.
    pub fn set_thread_owner(
        &mut self,
        channel: &str,
        psid: &str,
        ours: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO messenger_threads (channel, psid, owner, changed_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (channel, psid) DO UPDATE SET owner = ?3, changed_at = ?4",
            )
            .and_then(|mut s| {
                s.execute(params![
                    channel,
                    psid,
                    if ours { "us" } else { "primary" },
                    format_ts(at)
                ])
            })
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Runs one statement from the statement cache (savepoints run for every command: parsing
    /// them each time showed in profiles).
    /// Runs one statement (store tests only).
    #[cfg(test)]
    pub(super) fn exec_for_tests(&self, sql: &str) -> Result<(), StoreError> {
        self.conn.execute_batch(sql).map_err(|e| self.err(e))
    }

    fn exec(&self, sql: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(drop)
            .map_err(|e| self.err(e))
    }

    fn err(&self, error: rusqlite::Error) -> StoreError {
        db_error(self.path, error)
    }
}

// ---- SQL shared by reads and writes ----------------------------------------------------------

/// A chat's columns with its contact's. The contact comes from scalar subqueries, not a JOIN:
/// with the bundled SQLite (STAT4), a JOIN with a bound parameter is re-prepared for each new
/// value, which made the chat writer spend a quarter of its time in the SQL parser. The chat
/// points at a chat identity; the contact is the identity's (the record store's) contact, its
/// name the contact's, or what the channel called the person while the contact has none.
const CHAT_COLUMNS: &str = "SELECT c.id, c.channel, c.queue,
        (SELECT k.contact_id FROM chat_identities k WHERE k.id = c.identity_id),
        (SELECT k.external_id FROM chat_identities k WHERE k.id = c.identity_id),
        (SELECT coalesce((SELECT p.name FROM contacts p WHERE p.id = k.contact_id), k.name)
         FROM chat_identities k WHERE k.id = c.identity_id),
        c.state, c.operator, c.created_at, c.distributed_at, c.accepted_at, c.completed_at,
        c.last_out_at, c.complete_at
    FROM chats c";

/// A timestamp column; a malformed one is reported as a conversion error (a corrupt file).
fn ts_col(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<DateTime<Utc>> {
    let text: String = row.get(index)?;
    parse_ts(&text).ok_or_else(|| bad_column(index, "an RFC 3339 timestamp"))
}

fn opt_ts_col(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let text: Option<String> = row.get(index)?;
    text.map(|t| parse_ts(&t).ok_or_else(|| bad_column(index, "an RFC 3339 timestamp")))
        .transpose()
}

fn bad_column(index: usize, expected: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        format!("expected {expected}").into(),
    )
}

fn chat_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChatRow> {
    let state: String = r.get(6)?;
    Ok(ChatRow {
        id: r.get(0)?,
        channel: r.get(1)?,
        queue: r.get(2)?,
        contact_id: r.get(3)?,
        contact_external_id: r.get(4)?,
        contact_name: r.get(5)?,
        state: ChatState::parse(&state).ok_or_else(|| bad_column(6, "a chat state"))?,
        operator: r.get(7)?,
        created_at: ts_col(r, 8)?,
        distributed_at: opt_ts_col(r, 9)?,
        accepted_at: opt_ts_col(r, 10)?,
        completed_at: opt_ts_col(r, 11)?,
        last_out_at: opt_ts_col(r, 12)?,
        complete_at: opt_ts_col(r, 13)?,
    })
}

fn select_chat(conn: &Connection, id: i64) -> rusqlite::Result<Option<ChatRow>> {
    select_chat_where(conn, "c.id = ?1", id)
}

fn select_chat_where(
    conn: &Connection,
    condition: &str,
    arg: impl rusqlite::ToSql,
) -> rusqlite::Result<Option<ChatRow>> {
    conn.prepare_cached(&format!("{CHAT_COLUMNS} WHERE {condition}"))?
        .query_row([arg], chat_row)
        .optional()
}

fn select_chats_where(
    conn: &Connection,
    condition: &str,
    arg: impl rusqlite::ToSql,
) -> rusqlite::Result<Vec<ChatRow>> {
    conn.prepare_cached(&format!("{CHAT_COLUMNS} WHERE {condition}"))?
        .query_map([arg], chat_row)?
        .collect()
}

fn list_chats(
    conn: &Connection,
    filter: &ChatFilter,
    offset: usize,
    limit: usize,
) -> rusqlite::Result<(Vec<ChatRow>, usize)> {
    // One statement for every filter: a NULL parameter switches its condition off.
    let condition = "(?1 IS NULL OR c.state = ?1) AND (?2 IS NULL OR c.queue = ?2)
        AND (?3 IS NULL OR c.operator = ?3
             OR c.queue IN (SELECT value FROM json_each(?4))
             OR EXISTS (SELECT 1 FROM chat_offers o WHERE o.chat_id = c.id AND o.operator = ?3))";
    let state = filter.state.map(ChatState::as_str);
    let user = filter.viewer.as_ref().map(|v| v.user.as_str());
    let queues = serde_json::to_string(
        &filter
            .viewer
            .as_ref()
            .map_or(&[][..], |v| v.queues.as_slice()),
    )
    .expect("a list of strings serializes");
    let args = params![state, filter.queue, user, queues];
    let total: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM chats c WHERE {condition}"))?
        .query_row(args, |r| r.get(0))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let rows = conn
        .prepare_cached(&format!(
            "{CHAT_COLUMNS} WHERE {condition} ORDER BY c.id LIMIT ?5 OFFSET ?6"
        ))?
        .query_map(
            params![state, filter.queue, user, queues, limit, offset],
            chat_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((rows, usize::try_from(total).unwrap_or(0)))
}

fn select_messages(conn: &Connection, chats: &[i64]) -> rusqlite::Result<Vec<MessageRow>> {
    let ids = serde_json::to_string(chats).expect("a list of ids serializes");
    conn.prepare_cached(
        "SELECT id, chat_id, direction, author, text, at FROM chat_messages
         WHERE chat_id IN (SELECT value FROM json_each(?1)) ORDER BY chat_id, id",
    )?
    .query_map([ids], message_row)?
    .collect()
}

/// A `chat_messages` row selected as `id, chat_id, direction, author, text, at`.
fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
    let direction: String = r.get(2)?;
    Ok(MessageRow {
        id: r.get(0)?,
        chat_id: r.get(1)?,
        direction: match direction.as_str() {
            "in" => Direction::In,
            "out" => Direction::Out,
            _ => return Err(bad_column(2, "a direction")),
        },
        author: r.get(3)?,
        text: r.get(4)?,
        at: ts_col(r, 5)?,
    })
}

fn select_runs(
    conn: &Connection,
    condition: &str,
    arg: impl rusqlite::ToSql,
) -> rusqlite::Result<Vec<ActionRunRow>> {
    conn.prepare_cached(&format!(
        "SELECT r.id, r.chat_id, r.action, r.kind, r.operator, r.state, r.attempts, r.last_error,
                r.case_id, r.created_at, r.finished_at,
                (SELECT i.contact_id FROM chat_identities i WHERE i.id = c.identity_id), c.queue
         FROM chat_action_runs r JOIN chats c ON c.id = r.chat_id
         WHERE {condition}"
    ))?
    .query_map([arg], |r| {
        let kind: String = r.get(3)?;
        Ok(ActionRunRow {
            id: r.get(0)?,
            chat_id: r.get(1)?,
            action: r.get(2)?,
            kind: ActionKind::parse(&kind).ok_or_else(|| bad_column(3, "an action kind"))?,
            operator: r.get(4)?,
            state: r.get(5)?,
            attempts: r.get(6)?,
            last_error: r.get(7)?,
            case_id: r.get(8)?,
            created_at: ts_col(r, 9)?,
            finished_at: opt_ts_col(r, 10)?,
            contact_id: r.get(11)?,
            queue: r.get(12)?,
        })
    })?
    .collect()
}

fn list_cases(
    conn: &Connection,
    viewer: Option<&Viewer>,
    offset: usize,
    limit: usize,
) -> rusqlite::Result<(Vec<CaseRow>, usize)> {
    // The rights of chats (CH-01): a case is visible with the chat it came from.
    let condition = "(?1 IS NULL OR c.operator = ?1
             OR c.queue IN (SELECT value FROM json_each(?2))
             OR EXISTS (SELECT 1 FROM chat_offers o WHERE o.chat_id = c.id AND o.operator = ?1))";
    let user = viewer.map(|v| v.user.as_str());
    let queues = serde_json::to_string(viewer.map_or(&[][..], |v| v.queues.as_slice()))
        .expect("a list of strings serializes");
    let total: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM chat_cases k JOIN chats c ON c.id = k.chat_id WHERE {condition}"
        ))?
        .query_row(params![user, queues], |r| r.get(0))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let rows = conn
        .prepare_cached(&format!(
            "SELECT k.id, k.chat_id,
                    (SELECT i.contact_id FROM chat_identities i WHERE i.id = k.identity_id),
                    (SELECT coalesce((SELECT p.name FROM contacts p WHERE p.id = i.contact_id),
                                     i.name)
                     FROM chat_identities i WHERE i.id = k.identity_id),
                    k.queue, k.title, k.created_by, k.created_at
             FROM chat_cases k JOIN chats c ON c.id = k.chat_id
             WHERE {condition} ORDER BY k.id LIMIT ?3 OFFSET ?4"
        ))?
        .query_map(params![user, queues, limit, offset], |r| {
            Ok(CaseRow {
                id: r.get(0)?,
                chat_id: r.get(1)?,
                contact_id: r.get(2)?,
                contact_name: r.get(3)?,
                queue: r.get(4)?,
                title: r.get(5)?,
                created_by: r.get(6)?,
                created_at: ts_col(r, 7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((rows, usize::try_from(total).unwrap_or(0)))
}

fn select_offers(
    conn: &Connection,
    condition: &str,
    arg: impl rusqlite::ToSql,
) -> rusqlite::Result<Vec<OfferRow>> {
    conn.prepare_cached(&format!(
        "SELECT chat_id, operator, exclusive, offered_at, deadline FROM chat_offers
         WHERE {condition} ORDER BY chat_id, operator"
    ))?
    .query_map([arg], |r| {
        Ok(OfferRow {
            chat_id: r.get(0)?,
            operator: r.get(1)?,
            exclusive: r.get(2)?,
            offered_at: ts_col(r, 3)?,
            deadline: opt_ts_col(r, 4)?,
        })
    })?
    .collect()
}

fn select_operator(conn: &Connection, name: &str) -> rusqlite::Result<OperatorLoad> {
    conn.prepare_cached(
        "SELECT (SELECT status FROM chat_operators WHERE name = ?1),
                (SELECT last_assigned_at FROM chat_operators WHERE name = ?1),
                (SELECT count(*) FROM chats WHERE operator = ?1 AND state = 'active')
              + (SELECT count(*) FROM chat_offers WHERE operator = ?1 AND exclusive = 1)",
    )?
    .query_row([name], |r| {
        let status: Option<String> = r.get(0)?;
        let status = match status {
            None => OperatorStatus::Inactive,
            Some(s) => OperatorStatus::parse(&s).ok_or_else(|| bad_column(0, "a status"))?,
        };
        Ok(OperatorLoad {
            name: name.to_owned(),
            status,
            last_assigned_at: opt_ts_col(r, 1)?,
            in_work: r.get(2)?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid timestamp")
    }

    fn contact<'a>(id: &'a str) -> NewContact<'a> {
        NewContact {
            channel: "web",
            external_id: id,
            name: "Ann",
            email: None,
            phone: None,
        }
    }

    fn inbound<'a>(chat_id: i64, provider_id: &'a str, at: DateTime<Utc>) -> NewMessage<'a> {
        NewMessage {
            chat_id,
            channel: "web",
            direction: Direction::In,
            provider_id: Some(provider_id),
            author: None,
            text: "hello",
            at,
        }
    }

    /// A store with one contact and one open chat; returns (store, contact, chat).
    fn with_chat() -> (Store, i64, i64) {
        let mut store = Store::open_in_memory().expect("store");
        let (contact, chat) = store
            .chat_batch(|tx| {
                let contact = tx.contact(contact("u1"), t(0))?;
                let chat = tx.create_chat("web", "support", contact, t(0))?;
                tx.add_message(inbound(chat, "m1", t(0)))?;
                Ok((contact, chat))
            })
            .expect("batch");
        (store, contact, chat)
    }

    #[test]
    fn a_contact_is_found_again_by_its_channel_identity_and_keeps_the_latest_name() {
        let mut store = Store::open_in_memory().expect("store");
        let (a, b, c) = store
            .chat_batch(|tx| {
                let a = tx.contact(contact("u1"), t(0))?;
                let b = tx.contact(
                    NewContact {
                        name: "Ann B.",
                        email: Some("ann@example.com"),
                        ..contact("u1")
                    },
                    t(1),
                )?;
                let c = tx.contact(contact("u2"), t(2))?;
                Ok((a, b, c))
            })
            .expect("batch");
        assert_eq!(a, b);
        assert_ne!(a, c);
        let chat = store
            .chat_batch(|tx| tx.create_chat("web", "support", a, t(3)))
            .expect("chat");
        let row = store.chat(chat).expect("read").expect("exists");
        assert_eq!(row.contact_name, "Ann B.");
        assert_eq!(row.contact_external_id, "u1");
        assert_eq!(row.state, ChatState::Offered);
        assert_eq!(row.created_at, t(3));
    }

    #[test]
    fn the_same_provider_message_id_cannot_be_stored_twice_on_a_channel() {
        let (mut store, _, chat) = with_chat();
        let found = store
            .chat_batch(|tx| tx.delivered("web", "m1"))
            .expect("lookup");
        assert_eq!(found, Some(chat));
        let again = store.chat_batch(|tx| tx.add_message(inbound(chat, "m1", t(1))));
        assert!(again.is_err(), "UNIQUE (channel, provider_id) refuses it");
        // Another channel may use the same id; outgoing messages have none and never clash.
        store
            .chat_batch(|tx| {
                tx.add_message(NewMessage {
                    channel: "other",
                    ..inbound(chat, "m1", t(2))
                })?;
                for _ in 0..2 {
                    tx.add_message(NewMessage {
                        direction: Direction::Out,
                        provider_id: None,
                        author: Some("alice"),
                        ..inbound(chat, "", t(3))
                    })?;
                }
                Ok(())
            })
            .expect("distinct keys");
        assert_eq!(store.chat_messages(&[chat]).expect("messages").len(), 4);
    }

    #[test]
    fn a_contact_has_at_most_one_open_chat() {
        let (mut store, contact, chat) = with_chat();
        assert!(
            store
                .chat_batch(|tx| tx.create_chat("web", "support", contact, t(1)))
                .is_err()
        );
        let next = store
            .chat_batch(|tx| {
                tx.complete(chat, CompletedBy::Operator, t(2))?;
                assert_eq!(tx.open_chat_of(contact)?, None);
                tx.create_chat("web", "support", contact, t(3))
            })
            .expect("a completed chat makes room for a new one");
        assert_ne!(next, chat);
    }

    #[test]
    fn a_failed_savepoint_rolls_back_only_its_own_writes() {
        let (mut store, contact, chat) = with_chat();
        store
            .chat_batch(|tx| {
                let failed: Result<(), StoreError> = tx.savepoint(|tx| {
                    tx.add_message(inbound(chat, "m2", t(1)))?;
                    tx.create_chat("web", "support", contact, t(1))?; // refused: one open chat
                    Ok(())
                });
                assert!(failed.is_err());
                tx.savepoint(|tx| tx.add_message(inbound(chat, "m3", t(2))).map(drop))
            })
            .expect("batch commits");
        let texts: Vec<i64> = store
            .chat_messages(&[chat])
            .expect("messages")
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(texts.len(), 2, "m1 and m3; m2 was rolled back");
        assert!(
            store
                .chat_batch(|tx| tx.delivered("web", "m2"))
                .expect("lookup")
                .is_none()
        );
    }

    #[test]
    fn a_failing_batch_commits_nothing() {
        let (mut store, _, chat) = with_chat();
        let result: Result<(), StoreError> = store.chat_batch(|tx| {
            tx.add_message(inbound(chat, "m2", t(1)))?;
            tx.add_message(inbound(chat, "m1", t(1)))?; // duplicate: the batch fails
            Ok(())
        });
        assert!(result.is_err());
        assert_eq!(store.chat_messages(&[chat]).expect("messages").len(), 1);
    }

    #[test]
    fn offers_count_against_capacity_only_when_exclusive_and_accepting_activates() {
        let (mut store, _, chat) = with_chat();
        store
            .chat_batch(|tx| {
                for (operator, exclusive) in [("alice", true), ("bob", false)] {
                    tx.add_offer(&OfferRow {
                        chat_id: chat,
                        operator: operator.into(),
                        exclusive,
                        offered_at: t(1),
                        deadline: exclusive.then(|| t(301)),
                    })?;
                }
                assert_eq!(tx.operator("alice")?.in_work, 1);
                assert_eq!(tx.operator("bob")?.in_work, 0);
                assert_eq!(tx.operator("bob")?.status, OperatorStatus::Inactive);
                assert!(tx.lapsed_offers(t(300))?.is_empty());
                assert_eq!(tx.lapsed_offers(t(301))?.len(), 1);
                assert!(tx.mark_distributed(chat, t(1))?);
                assert!(!tx.mark_distributed(chat, t(2))?);
                let others = tx.activate(chat, "bob", t(5))?;
                assert_eq!(others, vec!["alice".to_owned()]);
                assert_eq!(tx.operator("alice")?.in_work, 0);
                let bob = tx.operator("bob")?;
                assert_eq!(bob.in_work, 1);
                assert_eq!(bob.last_assigned_at, Some(t(5)));
                Ok(())
            })
            .expect("batch");
        let row = store.chat(chat).expect("read").expect("exists");
        assert_eq!(row.state, ChatState::Active);
        assert_eq!(row.operator.as_deref(), Some("bob"));
        assert_eq!(row.distributed_at, Some(t(1)));
        assert_eq!(store.chat_next_deadline().expect("deadline"), None);
    }

    #[test]
    fn operator_status_changes_are_reported_once() {
        let mut store = Store::open_in_memory().expect("store");
        store
            .chat_batch(|tx| {
                assert!(tx.set_operator_status("alice", OperatorStatus::Active, t(0))?);
                assert!(!tx.set_operator_status("alice", OperatorStatus::Active, t(1))?);
                assert!(tx.set_operator_status("alice", OperatorStatus::Inactive, t(2))?);
                assert!(!tx.set_operator_status("bob", OperatorStatus::Inactive, t(2))?);
                Ok(())
            })
            .expect("batch");
        let loads = store
            .chat_operators(&["alice".into(), "bob".into()])
            .expect("read");
        assert_eq!(loads[0].status, OperatorStatus::Inactive);
    }

    #[test]
    fn completion_timers_and_the_outbox_survive_as_rows() {
        let (mut store, _, chat) = with_chat();
        let message = store
            .chat_batch(|tx| {
                tx.activate(chat, "alice", t(1))?;
                let message = tx.add_message(NewMessage {
                    direction: Direction::Out,
                    provider_id: None,
                    author: Some("alice"),
                    text: "hi, how can I help?",
                    ..inbound(chat, "", t(2))
                })?;
                tx.enqueue(message, t(2))?;
                tx.set_last_out(chat, t(2), Some(t(62)))?;
                Ok(message)
            })
            .expect("batch");
        assert_eq!(store.chat_next_deadline().expect("deadline"), Some(t(62)));
        assert_eq!(store.chat_outbox_next_at().expect("next"), Some(t(2)));
        let due = store.chat_outbox_due(t(2), 10).expect("due");
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].message_id, message);
        assert_eq!(due[0].contact_external_id, "u1");
        assert_eq!(due[0].author.as_deref(), Some("alice"));
        assert!(store.chat_outbox_due(t(1), 10).expect("due").is_empty());

        store
            .chat_batch(|tx| {
                tx.outbox_failed(due[0].id, "503 from the callback", Some(t(10)))?;
                assert!(tx.due_completions(t(61))?.is_empty());
                assert_eq!(tx.due_completions(t(62))?.len(), 1);
                tx.complete(chat, CompletedBy::Timeout, t(62))?;
                Ok(())
            })
            .expect("batch");
        assert_eq!(
            store.chat_outbox_due(t(10), 10).expect("due")[0].attempts,
            1
        );
        assert_eq!(
            store.chat_delivery(message).expect("state").as_deref(),
            Some("pending")
        );
        store
            .chat_batch(|tx| tx.outbox_sent(due[0].id, t(10)))
            .expect("sent");
        assert_eq!(
            store.chat_delivery(message).expect("state").as_deref(),
            Some("sent")
        );
        assert_eq!(store.chat_next_deadline().expect("deadline"), None);
        let row = store.chat(chat).expect("read").expect("exists");
        assert_eq!(row.state, ChatState::Completed);
        assert_eq!(row.completed_at, Some(t(62)));
    }

    // REQ: CH-07
    #[test]
    fn action_runs_record_cases_and_webhook_attempts_and_cases_follow_chat_rights() {
        let (mut store, contact, chat) = with_chat();
        let (case_run, hook_run) = store
            .chat_batch(|tx| {
                let row = tx.chat(chat)?.expect("chat");
                let case = tx.create_case(&row, "Refund", "ann", t(1))?;
                let case_run = tx.add_action_run(
                    chat,
                    "case",
                    ActionKind::CreateCase,
                    "ann",
                    Some(case),
                    t(1),
                )?;
                let hook_run =
                    tx.add_action_run(chat, "notify", ActionKind::Webhook, "ann", None, t(2))?;
                Ok((case_run, hook_run))
            })
            .expect("batch");
        assert_eq!(
            (case_run.state.as_str(), case_run.case_id),
            ("done", Some(1))
        );
        assert_eq!(hook_run.state, "pending");
        assert_eq!(hook_run.contact_id, contact);
        assert_eq!(store.chat_actions_next_at().expect("next"), Some(t(2)));
        assert!(store.chat_actions_due(t(1), 10).expect("due").is_empty());
        assert_eq!(store.chat_actions_due(t(2), 10).expect("due").len(), 1);

        store
            .chat_batch(|tx| tx.action_attempted(hook_run.id, Some("503"), Some(t(10)), t(3)))
            .expect("retry");
        assert!(store.chat_actions_due(t(9), 10).expect("due").is_empty());
        assert!(
            store
                .chat_batch(|tx| tx.action_attempted(hook_run.id, None, None, t(10)))
                .expect("done")
        );
        assert!(
            !store
                .chat_batch(|tx| tx.action_attempted(hook_run.id, None, None, t(11)))
                .expect("again"),
            "a run that ended is not changed again"
        );
        let runs = store.chat_action_runs(chat).expect("runs");
        let hook = &runs[1];
        assert_eq!(
            (
                hook.state.as_str(),
                hook.attempts,
                hook.last_error.as_deref()
            ),
            ("done", 2, Some("503"))
        );
        assert_eq!(store.chat_actions_next_at().expect("next"), None);

        let viewer = |user: &str, queues: &[&str]| Viewer {
            user: user.into(),
            queues: queues.iter().map(|q| q.to_string()).collect(),
        };
        let total = |v: Option<&Viewer>| store.chat_cases(v, 0, 100).expect("cases").1;
        assert_eq!(total(None), 1);
        assert_eq!(total(Some(&viewer("ann", &["support"]))), 1);
        assert_eq!(total(Some(&viewer("bob", &["sales"]))), 0);
    }

    #[test]
    fn lists_filter_by_state_queue_and_what_a_viewer_may_see() {
        let mut store = Store::open_in_memory().expect("store");
        store
            .chat_batch(|tx| {
                for (i, queue) in ["support", "sales", "sales"].iter().enumerate() {
                    let contact = tx.contact(contact(&format!("u{i}")), t(0))?;
                    tx.create_chat("web", queue, contact, t(i as i64))?;
                }
                tx.add_offer(&OfferRow {
                    chat_id: 2,
                    operator: "carol".into(),
                    exclusive: false,
                    offered_at: t(5),
                    deadline: None,
                })?;
                tx.activate(3, "dave", t(6))?;
                Ok(())
            })
            .expect("batch");
        let ids = |filter: ChatFilter| -> (Vec<i64>, usize) {
            let (rows, total) = store.chats(&filter, 0, 100).expect("list");
            (rows.iter().map(|r| r.id).collect(), total)
        };
        assert_eq!(ids(ChatFilter::default()), (vec![1, 2, 3], 3));
        let offered = ChatFilter {
            state: Some(ChatState::Offered),
            ..ChatFilter::default()
        };
        assert_eq!(ids(offered), (vec![1, 2], 2));
        let sales = ChatFilter {
            queue: Some("sales".into()),
            ..ChatFilter::default()
        };
        assert_eq!(ids(sales), (vec![2, 3], 2));
        let viewer = |user: &str, queues: &[&str]| ChatFilter {
            viewer: Some(Viewer {
                user: user.into(),
                queues: queues.iter().map(|q| (*q).to_owned()).collect(),
            }),
            ..ChatFilter::default()
        };
        assert_eq!(ids(viewer("carol", &[])), (vec![2], 1), "offered to carol");
        assert_eq!(ids(viewer("dave", &[])), (vec![3], 1), "dave's own");
        assert_eq!(
            ids(viewer("erin", &["support"])),
            (vec![1], 1),
            "erin's queue"
        );
        let (page, total) = store.chats(&ChatFilter::default(), 1, 1).expect("page");
        assert_eq!((page[0].id, total), (2, 3));
        let mut counts = store.chat_counts().expect("counts");
        counts.sort_by(|a, b| (&a.0, a.1.as_str()).cmp(&(&b.0, b.1.as_str())));
        assert_eq!(
            counts,
            vec![
                ("sales".into(), ChatState::Active, 1),
                ("sales".into(), ChatState::Offered, 1),
                ("support".into(), ChatState::Offered, 1),
            ]
        );
        assert_eq!(
            store.chat_active_by_queue("dave").expect("by queue"),
            vec![("sales".into(), 1)]
        );
    }

    #[test]
    fn the_writers_lookups_are_not_prepared_again_on_every_run() {
        // The offer lookup by chat id was re-prepared on every run (14% of the daemon's CPU
        // under chat load) until the store enabled the query planner stability guarantee.
        let mut store = Store::open_in_memory().expect("store");
        // The text `select_offers` prepares for `offers`.
        let offers_sql = "SELECT chat_id, operator, exclusive, offered_at, deadline FROM chat_offers\n         WHERE chat_id = ?1 ORDER BY chat_id, operator";
        for n in 0..5 {
            store
                .chat_batch(|tx| {
                    let id = format!("u{n}");
                    let contact = tx.contact(contact(&id), t(n))?;
                    let chat = tx.create_chat("web", "support", contact, t(n))?;
                    tx.add_offer(&OfferRow {
                        chat_id: chat,
                        operator: "ann".into(),
                        exclusive: false,
                        offered_at: t(n),
                        deadline: None,
                    })?;
                    assert_eq!(tx.offers(chat)?.len(), 1);
                    Ok(())
                })
                .expect("batch");
        }
        let stmt = store.conn.prepare_cached(offers_sql).expect("cached");
        assert_eq!(
            stmt.get_status(rusqlite::StatementStatus::Run),
            5,
            "the statement the writer used"
        );
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }
}
