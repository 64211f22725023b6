//! Mail in the store: loaded and sent e-mail, per-folder sync checkpoints, contacts by address.
//!
//! The one rule this file exists for: a batch of messages and the folder checkpoint that covers
//! them are committed in ONE transaction ([`Store::commit_mail`]), and a UNIQUE index on
//! `(mailbox, folder, uidvalidity, uid)` refuses a second copy. So whatever moment a sync dies
//! at (`kill -9` included), a restart re-fetches at most what was not committed and stores each
//! message exactly once. After a UIDVALIDITY change the same message is recognised by its
//! fingerprint (Message-ID, or a hash of the raw message) and re-keyed, not duplicated.
//!
//! Like the rest of the store, it speaks no SQLite types and knows nothing of IMAP sessions:
//! callers hand it plain values ([`NewEmail`], [`Checkpoint`]) and get plain values back.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Store, StoreError, db_error, format_ts, parse_ts, saturating_i64};

/// `in` (loaded) or `out` (sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Loaded from the server.
    In,
    /// Sent through Switchboard.
    Out,
}

impl Direction {
    /// `"in"` or `"out"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// An address with its display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailAddress {
    /// The address.
    pub address: String,
    /// The display name, when known.
    pub name: Option<String>,
}

/// An attachment's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentMeta {
    /// File name, when given.
    pub name: Option<String>,
    /// `type/subtype`.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
}

/// A message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEmail {
    /// `in` or `out`.
    pub direction: Direction,
    /// IMAP UID (loaded mail).
    pub uid: Option<u32>,
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    /// Message-ID or `sha256:<hex>`: recognises a message across UIDVALIDITY epochs.
    pub fingerprint: String,
    /// Sender.
    pub from: Option<MailAddress>,
    /// To.
    pub to: Vec<MailAddress>,
    /// Cc.
    pub cc: Vec<MailAddress>,
    /// Subject.
    pub subject: Option<String>,
    /// The Date header.
    pub date: Option<DateTime<Utc>>,
    /// The server's INTERNALDATE.
    pub internal_date: Option<DateTime<Utc>>,
    /// RFC822.SIZE.
    pub size: u64,
    /// IMAP flags, space-separated.
    pub flags: String,
    /// Plain-text body (capped).
    pub text: Option<String>,
    /// HTML body (capped).
    pub html: Option<String>,
    /// A body was capped.
    pub truncated: bool,
    /// Attachment metadata.
    pub attachments: Vec<AttachmentMeta>,
}

/// Where a folder's sync stands, written with the messages it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The folder's UIDVALIDITY the UIDs belong to.
    pub uidvalidity: u32,
    /// Every UID up to this one is stored (or was not wanted).
    pub last_uid: u32,
    /// CONDSTORE's HIGHESTMODSEQ as of the last completed pass.
    pub highest_modseq: Option<u64>,
    /// The first sync of this epoch has completed.
    pub initial_complete: bool,
    /// The INTERNALDATE cut-off of the first sync.
    pub since: DateTime<Utc>,
    /// While the first sync of this epoch runs: how far it got.
    pub first_sync: Option<Progress>,
}

/// How far the first sync of a folder got: `loaded` of the `total` messages it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Messages fetched and committed so far (stored, or recognised as stored).
    pub loaded: u64,
    /// Messages the first sync found to load.
    pub total: u64,
}

/// A folder as the status view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderStatus {
    /// The Mailbox object's name.
    pub mailbox: String,
    /// The folder's name.
    pub folder: String,
    /// Messages stored in it and not removed from it on the server.
    pub messages: u64,
    /// While its first sync runs: how far it got.
    pub first_sync: Option<Progress>,
}

/// A folder's checkpoint and message count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderState {
    /// The folder's name on the server.
    pub folder: String,
    /// Its checkpoint.
    pub checkpoint: Checkpoint,
    /// Messages stored from it.
    pub messages: i64,
}

/// A stored e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailRecord {
    /// Row id.
    pub id: i64,
    /// The Mailbox object's name.
    pub mailbox: String,
    /// Folder.
    pub folder: String,
    /// Message-ID.
    pub message_id: Option<String>,
    /// `in` or `out`.
    pub direction: Direction,
    /// Sender.
    pub from: Option<MailAddress>,
    /// To.
    pub to: Vec<MailAddress>,
    /// Cc.
    pub cc: Vec<MailAddress>,
    /// Subject.
    pub subject: Option<String>,
    /// Date header, or INTERNALDATE.
    pub date: Option<DateTime<Utc>>,
    /// Plain-text body.
    pub text: Option<String>,
    /// HTML body.
    pub html: Option<String>,
    /// Attachment metadata.
    pub attachments: Vec<AttachmentMeta>,
    /// Linked contacts.
    pub contact_ids: Vec<i64>,
    /// For mail sent through Switchboard: where its delivery stands.
    pub delivery: Option<Delivery>,
    /// The server reported it removed from its folder (it is kept as history).
    pub removed: Option<Removed>,
}

/// When and why the server reported a stored message removed from its folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// When the sync learned it.
    pub at: DateTime<Utc>,
    /// The server's reason (Graph: `deleted` or `changed`).
    pub reason: String,
}

/// A message of a Graph delta page: Graph's id (what later removals name) and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphItem {
    /// Graph's message id.
    pub id: String,
    /// The message.
    pub email: NewEmail,
}

/// A Graph delta `@removed` entry: the message left the folder (deleted or moved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphRemoval {
    /// Graph's message id.
    pub id: String,
    /// `deleted` or `changed`, as Graph gave it.
    pub reason: String,
}

/// What one committed Graph page changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GraphPageCommitted {
    /// Messages stored for the first time.
    pub new: u64,
    /// Stored messages marked removed.
    pub removed: u64,
}

/// The delivery state of a sent e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `queued`, `sent` or `failed`.
    pub state: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// The last error (the server's reply), if any.
    pub last_error: Option<String>,
}

/// What goes on the wire for a sent e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Envelope sender.
    pub envelope_from: String,
    /// Envelope recipients.
    pub envelope_to: Vec<String>,
    /// The RFC 5322 bytes.
    pub raw: Vec<u8>,
}

/// A sent message whose copy is not yet in the server's Sent folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCopy {
    /// The stored e-mail's id.
    pub email_id: i64,
    /// Its Message-ID (without angle brackets).
    pub message_id: Option<String>,
    /// The RFC 5322 message as sent.
    pub raw: Vec<u8>,
}

/// A message waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    /// The stored e-mail's id.
    pub email_id: i64,
    /// Envelope sender.
    pub envelope_from: String,
    /// Envelope recipients.
    pub envelope_to: Vec<String>,
    /// The message as sent.
    pub raw: Vec<u8>,
    /// Attempts so far.
    pub attempts: i64,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxOutcome {
    /// Accepted by the server.
    Sent,
    /// A temporary failure: try again at `at`.
    Retry {
        /// When.
        at: DateTime<Utc>,
        /// The server's reply or the transport error.
        error: String,
    },
    /// A permanent failure.
    Failed {
        /// The server's reply.
        error: String,
    },
}

/// Which e-mails to list. Newest stored first; `before` is the keyset cursor (an id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailQuery {
    /// Only these mailboxes (the caller's readable ones); `None` = all.
    pub mailboxes: Option<Vec<String>>,
    /// Only this mailbox.
    pub mailbox: Option<String>,
    /// Only this folder.
    pub folder: Option<String>,
    /// Only this Message-ID (with or without angle brackets).
    pub message_id: Option<String>,
    /// Only this id.
    pub id: Option<i64>,
    /// Only ids below this one.
    pub before: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

/// A page of e-mails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailPage {
    /// The e-mails.
    pub items: Vec<EmailRecord>,
    /// How many match the query without paging.
    pub total: i64,
    /// The cursor of the next page.
    pub next_before: Option<i64>,
}

/// A contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRecord {
    /// Row id.
    pub id: i64,
    /// Address (lower case).
    pub email: String,
    /// Name, when known.
    pub name: Option<String>,
}

/// A mailbox's OAuth 2.0 tokens obtained at run time, sealed by the caller (the store never
/// sees them in clear).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuthTokens {
    /// The sealed access token.
    pub access_token: Option<Vec<u8>>,
    /// When the access token expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// The sealed refresh token; `None` keeps the one stored before (or the configured one).
    pub refresh_token: Option<Vec<u8>>,
}

impl Store {
    /// The state file's path (`:memory:` for an in-memory store): secrets sealed for this
    /// store keep their key beside it.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// `mailbox`'s stored OAuth 2.0 tokens.
    pub fn mail_oauth_tokens(&self, mailbox: &str) -> Result<Option<OAuthTokens>, StoreError> {
        self.conn
            .query_row(
                "SELECT access_token, expires_at, refresh_token FROM mail_oauth_tokens
                  WHERE mailbox = ?1",
                params![mailbox],
                |row| {
                    Ok(OAuthTokens {
                        access_token: row.get(0)?,
                        expires_at: row
                            .get::<_, Option<String>>(1)?
                            .as_deref()
                            .and_then(parse_ts),
                        refresh_token: row.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Stores `mailbox`'s tokens; a `None` refresh token keeps the stored one.
    pub fn set_mail_oauth_tokens(
        &mut self,
        mailbox: &str,
        tokens: &OAuthTokens,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.ensure_writable()?;
        self.conn
            .execute(
                "INSERT INTO mail_oauth_tokens
                        (mailbox, access_token, expires_at, refresh_token, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (mailbox) DO UPDATE SET
                        access_token = excluded.access_token,
                        expires_at = excluded.expires_at,
                        refresh_token = coalesce(excluded.refresh_token, refresh_token),
                        updated_at = excluded.updated_at",
                params![
                    mailbox,
                    tokens.access_token,
                    tokens.expires_at.map(format_ts),
                    tokens.refresh_token,
                    format_ts(at)
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The checkpoint of `mailbox`'s `folder`, if it was ever synced.
    pub fn mail_folder(
        &self,
        mailbox: &str,
        folder: &str,
    ) -> Result<Option<FolderState>, StoreError> {
        select_folders(&self.conn, mailbox, Some(folder))
            .map_err(|e| self.err(e))
            .map(|mut v| v.pop())
    }

    /// Every folder of every mailbox that has a checkpoint or stored mail, sorted by mailbox
    /// and folder, with its message count (removed messages not counted) and, while its first
    /// sync runs, that sync's progress.
    pub fn mail_folder_statuses(&self) -> Result<Vec<FolderStatus>, StoreError> {
        select_folder_statuses(&self.conn).map_err(|e| self.err(e))
    }

    /// Every synced folder of `mailbox`, by name.
    pub fn mail_folders(&self, mailbox: &str) -> Result<Vec<FolderState>, StoreError> {
        select_folders(&self.conn, mailbox, None).map_err(|e| self.err(e))
    }

    /// Stores `emails` of `mailbox`'s `folder` and sets the folder's checkpoint, in ONE
    /// transaction. A message already stored under the same UIDVALIDITY and UID is skipped; one
    /// stored under another UIDVALIDITY (or sent and not yet loaded) with the same fingerprint
    /// is re-keyed to the new UID. New messages are linked to contacts by address, except the
    /// addresses in `own` (the mailbox's own). Returns how many messages were new.
    pub fn commit_mail(
        &mut self,
        mailbox: &str,
        folder: &str,
        checkpoint: &Checkpoint,
        emails: &[NewEmail],
        own: &[String],
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.ensure_writable()?;
        let at = format_ts(at);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_error(&self.path, e))?;
        let mut new = 0u64;
        for email in emails {
            if store_email(
                &tx,
                mailbox,
                folder,
                Some(checkpoint.uidvalidity),
                email,
                own,
                &at,
            )
            .map_err(|e| db_error(&self.path, e))?
            .is_some()
            {
                new += 1;
            }
        }
        upsert_folder(&tx, mailbox, folder, checkpoint, new, &at)
            .map_err(|e| db_error(&self.path, e))?;
        tx.commit().map_err(|e| db_error(&self.path, e))?;
        Ok(new)
    }

    /// Stores an e-mail sent through `mailbox` (direction `out`, folder `folder`) and queues it
    /// for delivery, in ONE transaction. Returns its id.
    pub fn enqueue_mail(
        &mut self,
        mailbox: &str,
        folder: &str,
        email: &NewEmail,
        outgoing: &Outgoing,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let (envelope_from, envelope_to, raw) = (
            &outgoing.envelope_from,
            &outgoing.envelope_to,
            &outgoing.raw,
        );
        self.ensure_writable()?;
        let at = format_ts(at);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_error(&self.path, e))?;
        let id = store_email(
            &tx,
            mailbox,
            folder,
            None,
            email,
            &[envelope_from.to_owned()],
            &at,
        )
        .and_then(|id| {
            let id = id.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            tx.execute(
                "INSERT INTO mail_outbox
                         (email_id, mailbox, envelope_from, envelope_to, raw, state,
                          next_attempt_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?6)",
                params![
                    id,
                    mailbox,
                    envelope_from,
                    serde_json::Value::from(envelope_to.to_vec()).to_string(),
                    raw,
                    at
                ],
            )?;
            Ok(id)
        })
        .map_err(|e| db_error(&self.path, e))?;
        tx.commit().map_err(|e| db_error(&self.path, e))?;
        Ok(id)
    }

    /// Queued messages of `mailbox` due at `now`, oldest first.
    pub fn due_outbox(
        &self,
        mailbox: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT email_id, envelope_from, envelope_to, raw, attempts FROM mail_outbox
                 WHERE mailbox = ?1 AND state = 'queued' AND next_attempt_at <= ?2
                 ORDER BY email_id",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map(params![mailbox, format_ts(now)], |row| {
            let to: String = row.get(2)?;
            Ok(OutboxItem {
                email_id: row.get(0)?,
                envelope_from: row.get(1)?,
                envelope_to: serde_json::from_str(&to).unwrap_or_default(),
                raw: row.get(3)?,
                attempts: row.get(4)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.err(e))
    }

    /// How many messages of `mailbox` are still queued (due or not).
    pub fn outbox_waiting(&self, mailbox: &str) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM mail_outbox WHERE mailbox = ?1 AND state = 'queued'",
                [mailbox],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Records a delivery attempt of a queued message.
    pub fn outbox_result(
        &mut self,
        email_id: i64,
        outcome: &OutboxOutcome,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.ensure_writable()?;
        let at = format_ts(at);
        let (state, next, error) = match outcome {
            OutboxOutcome::Sent => ("sent", at.clone(), None),
            OutboxOutcome::Retry { at: next, error } => ("queued", format_ts(*next), Some(error)),
            OutboxOutcome::Failed { error } => ("failed", at.clone(), Some(error)),
        };
        self.conn
            .execute(
                "UPDATE mail_outbox SET state = ?2, attempts = attempts + 1, next_attempt_at = ?3,
                     last_error = COALESCE(?4, last_error), updated_at = ?5
                 WHERE email_id = ?1",
                params![email_id, state, next, error, at],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Messages of `mailbox` that SMTP accepted and that are not yet filed in the server's
    /// Sent folder (their stored copy has no IMAP identity), oldest first (MB-03).
    pub fn unfiled_sent(&self, mailbox: &str) -> Result<Vec<SentCopy>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT e.id, e.message_id, o.raw FROM mail_outbox o JOIN emails e ON e.id = o.email_id
                 WHERE o.mailbox = ?1 AND o.state = 'sent' AND e.uid IS NULL
                 ORDER BY e.id",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([mailbox], |row| {
            Ok(SentCopy {
                email_id: row.get(0)?,
                message_id: row.get(1)?,
                raw: row.get(2)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.err(e))
    }

    /// Records that the sent message `email_id` is `uid` in `folder` (UIDVALIDITY
    /// `uidvalidity`) on the server, so the folder's sync finds it stored and skips it. A copy
    /// a sync stored first under that identity is merged into the sent one (one transaction).
    pub fn file_sent(
        &mut self,
        email_id: i64,
        folder: &str,
        uidvalidity: u32,
        uid: u32,
    ) -> Result<(), StoreError> {
        self.ensure_writable()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_error(&self.path, e))?;
        tx.execute(
            "DELETE FROM emails WHERE id <> ?1 AND folder = ?2 AND uidvalidity = ?3 AND uid = ?4
               AND mailbox = (SELECT mailbox FROM emails WHERE id = ?1)",
            params![email_id, folder, uidvalidity, uid],
        )
        .and_then(|_| {
            tx.execute(
                "UPDATE emails SET folder = ?2, uidvalidity = ?3, uid = ?4 WHERE id = ?1",
                params![email_id, folder, uidvalidity, uid],
            )
        })
        .map_err(|e| db_error(&self.path, e))?;
        tx.commit().map_err(|e| db_error(&self.path, e))?;
        Ok(())
    }

    /// Where the Graph delta sync of `mailbox`'s `folder` resumes (`None`: a full round).
    pub fn graph_link(&self, mailbox: &str, folder: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT link FROM mail_graph_folders WHERE mailbox = ?1 AND folder = ?2",
                params![mailbox, folder],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.err(e))
    }

    /// Commits one Graph delta page of `folder` in ONE transaction: its messages, its
    /// removals and the link to resume from (`complete`: `link` is the round's deltaLink).
    ///
    /// A message is known in the mailbox by its internetMessageId (the fingerprint), so a full
    /// resync or a message moved between folders stores nothing twice: a known message takes
    /// the folder and Graph id it is reported with, and is no longer marked removed. Sent
    /// Items' copy of mail sent from Switchboard is recognised the same way.
    ///
    /// A removal (`@removed`, reason `deleted` or `changed`) marks the message stored in this
    /// folder under that Graph id as removed, and keeps it: a letter is part of its contacts'
    /// history in Switchboard, whatever the mailbox does with it later (the store keeps mail
    /// of a mailbox removed from the config for the same reason).
    #[allow(clippy::too_many_arguments, reason = "one page, one transaction")]
    pub fn commit_graph_page(
        &mut self,
        mailbox: &str,
        folder: &str,
        items: &[GraphItem],
        removals: &[GraphRemoval],
        link: Option<&str>,
        complete: bool,
        own: &[String],
        at: DateTime<Utc>,
    ) -> Result<GraphPageCommitted, StoreError> {
        self.ensure_writable()?;
        let at = format_ts(at);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_error(&self.path, e))?;
        let committed = store_graph_page(&tx, mailbox, folder, items, removals, own, &at)
            .and_then(|committed| {
                tx.execute(
                    "INSERT INTO mail_graph_folders
                         (mailbox, folder, link, complete, messages, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (mailbox, folder) DO UPDATE SET
                         link = excluded.link, complete = excluded.complete,
                         messages = messages + excluded.messages,
                         updated_at = excluded.updated_at",
                    params![
                        mailbox,
                        folder,
                        link,
                        complete,
                        saturating_i64(committed.new),
                        at
                    ],
                )?;
                Ok(committed)
            })
            .map_err(|e| db_error(&self.path, e))?;
        tx.commit().map_err(|e| db_error(&self.path, e))?;
        Ok(committed)
    }

    /// Lists e-mails, newest stored first.
    pub fn emails(&self, query: &EmailQuery) -> Result<EmailPage, StoreError> {
        select_emails(&self.conn, query).map_err(|e| self.err(e))
    }

    /// The contact with this address, if any.
    pub fn contact_by_email(&self, email: &str) -> Result<Option<ContactRecord>, StoreError> {
        self.conn
            .query_row(
                "SELECT k.id, e.email, k.name FROM contact_emails e JOIN contacts k ON k.id = e.contact_id
                 WHERE e.email = ?1",
                [email.to_lowercase()],
                |row| {
                    Ok(ContactRecord {
                        id: row.get(0)?,
                        email: row.get(1)?,
                        name: row.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

// ---- SQL ------------------------------------------------------------------------------------

/// The first-sync progress stored beside a checkpoint: only while the first sync runs and
/// once it has counted what it will load.
fn progress(initial_complete: bool, loaded: i64, total: Option<i64>) -> Option<Progress> {
    let total = u64::try_from(total?).ok()?;
    (!initial_complete).then(|| Progress {
        loaded: u64::try_from(loaded).unwrap_or(0),
        total,
    })
}

fn select_folders(
    conn: &Connection,
    mailbox: &str,
    folder: Option<&str>,
) -> rusqlite::Result<Vec<FolderState>> {
    let mut stmt = conn.prepare_cached(
        "SELECT folder, uidvalidity, last_uid, highest_modseq, initial_complete, since, messages,
                initial_loaded, initial_total
         FROM mail_folders WHERE mailbox = ?1 AND (?2 IS NULL OR folder = ?2) ORDER BY folder",
    )?;
    stmt.query_map(params![mailbox, folder], |row| {
        let since: String = row.get(5)?;
        let modseq: Option<i64> = row.get(3)?;
        let initial_complete: bool = row.get(4)?;
        Ok(FolderState {
            folder: row.get(0)?,
            checkpoint: Checkpoint {
                uidvalidity: row.get(1)?,
                last_uid: row.get(2)?,
                highest_modseq: modseq.and_then(|m| u64::try_from(m).ok()),
                initial_complete,
                since: parse_ts(&since).unwrap_or(DateTime::<Utc>::MIN_UTC),
                first_sync: progress(initial_complete, row.get(7)?, row.get(8)?),
            },
            messages: row.get(6)?,
        })
    })?
    .collect()
}

fn select_folder_statuses(conn: &Connection) -> rusqlite::Result<Vec<FolderStatus>> {
    // Counted from the messages themselves (the partial index `emails_present` covers it), so
    // sent mail filed in its folder and messages removed on the server are counted right.
    let mut stmt = conn.prepare_cached(
        "WITH counts AS (
             SELECT mailbox, folder, count(*) AS n FROM emails
              WHERE removed_at IS NULL GROUP BY mailbox, folder),
         names AS (
             SELECT mailbox, folder FROM mail_folders
             UNION SELECT mailbox, folder FROM mail_graph_folders
             UNION SELECT mailbox, folder FROM counts)
         SELECT names.mailbox, names.folder, coalesce(counts.n, 0),
                coalesce(f.initial_complete, 1), coalesce(f.initial_loaded, 0), f.initial_total
           FROM names
           LEFT JOIN counts ON counts.mailbox = names.mailbox AND counts.folder = names.folder
           LEFT JOIN mail_folders f ON f.mailbox = names.mailbox AND f.folder = names.folder
          ORDER BY names.mailbox, names.folder",
    )?;
    stmt.query_map([], |row| {
        Ok(FolderStatus {
            mailbox: row.get(0)?,
            folder: row.get(1)?,
            messages: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
            first_sync: progress(row.get(3)?, row.get(4)?, row.get(5)?),
        })
    })?
    .collect()
}

fn upsert_folder(
    conn: &Connection,
    mailbox: &str,
    folder: &str,
    c: &Checkpoint,
    new: u64,
    at: &str,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "INSERT INTO mail_folders
             (mailbox, folder, uidvalidity, last_uid, highest_modseq, initial_complete, since,
              messages, updated_at, initial_loaded, initial_total)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (mailbox, folder) DO UPDATE SET
             uidvalidity = excluded.uidvalidity,
             last_uid = excluded.last_uid,
             highest_modseq = excluded.highest_modseq,
             initial_complete = excluded.initial_complete,
             since = excluded.since,
             messages = mail_folders.messages + excluded.messages,
             initial_loaded = excluded.initial_loaded,
             initial_total = excluded.initial_total,
             updated_at = excluded.updated_at",
    )?
    .execute(params![
        mailbox,
        folder,
        c.uidvalidity,
        c.last_uid,
        c.highest_modseq.map(saturating_i64),
        c.initial_complete,
        format_ts(c.since),
        saturating_i64(new),
        at,
        c.first_sync.map_or(0, |p| saturating_i64(p.loaded)),
        c.first_sync.map(|p| saturating_i64(p.total)),
    ])
}

fn addresses_json(list: &[MailAddress]) -> String {
    serde_json::Value::Array(
        list.iter()
            .map(|a| serde_json::json!({"address": a.address, "name": a.name}))
            .collect(),
    )
    .to_string()
}

fn addresses_from_json(text: &str) -> Vec<MailAddress> {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| {
                    Some(MailAddress {
                        address: v.get("address")?.as_str()?.to_owned(),
                        name: v.get("name").and_then(|n| n.as_str()).map(str::to_owned),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn attachments_json(list: &[AttachmentMeta]) -> String {
    serde_json::Value::Array(
        list.iter()
            .map(|a| serde_json::json!({"name": a.name, "contentType": a.content_type, "size": a.size}))
            .collect(),
    )
    .to_string()
}

fn attachments_from_json(text: &str) -> Vec<AttachmentMeta> {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|v| AttachmentMeta {
                    name: v.get("name").and_then(|n| n.as_str()).map(str::to_owned),
                    content_type: v
                        .get("contentType")
                        .and_then(|n| n.as_str())
                        .unwrap_or("application/octet-stream")
                        .to_owned(),
                    size: v
                        .get("size")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Stores one e-mail; returns its id when it is new, `None` when it was already stored (or
/// re-keyed from an earlier UIDVALIDITY).
pub(super) fn store_email(
    conn: &Connection,
    mailbox: &str,
    folder: &str,
    uidvalidity: Option<u32>,
    e: &NewEmail,
    own: &[String],
    at: &str,
) -> rusqlite::Result<Option<i64>> {
    if let (Some(validity), Some(uid)) = (uidvalidity, e.uid) {
        // The same message from an earlier epoch (or sent and now loaded back): re-key it.
        let stale: Option<i64> = conn
            .prepare_cached(
                "SELECT id FROM emails
                 WHERE mailbox = ?1 AND folder = ?2 AND fingerprint = ?3
                   AND (uidvalidity IS NULL OR uidvalidity <> ?4)
                 ORDER BY id LIMIT 1",
            )?
            .query_row(params![mailbox, folder, e.fingerprint, validity], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(id) = stale {
            conn.prepare_cached(
                "UPDATE OR IGNORE emails SET uidvalidity = ?2, uid = ?3, flags = ?4 WHERE id = ?1",
            )?
            .execute(params![id, validity, uid, e.flags])?;
            return Ok(None);
        }
    }
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO emails
                 (mailbox, folder, direction, uidvalidity, uid, message_id, fingerprint,
                  from_address, from_name, to_json, cc_json, subject, sent_at, internal_date,
                  size, flags, text_body, html_body, truncated, attachments, stored_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                     ?18, ?19, ?20, ?21)",
        )?
        .execute(params![
            mailbox,
            folder,
            e.direction.as_str(),
            e.uid.and(uidvalidity),
            e.uid,
            e.message_id,
            e.fingerprint,
            e.from.as_ref().map(|f| &f.address),
            e.from.as_ref().and_then(|f| f.name.as_ref()),
            addresses_json(&e.to),
            addresses_json(&e.cc),
            e.subject,
            e.date.or(e.internal_date).map(format_ts),
            e.internal_date.map(format_ts),
            saturating_i64(e.size),
            e.flags,
            e.text,
            e.html,
            e.truncated,
            attachments_json(&e.attachments),
            at
        ])?;
    if inserted == 0 {
        return Ok(None);
    }
    let id = conn.last_insert_rowid();
    let own: Vec<String> = own.iter().map(|a| a.to_lowercase()).collect();
    let origin = format!("Mailbox/{mailbox}");
    for person in e.from.iter().chain(&e.to).chain(&e.cc) {
        let email = person.address.to_lowercase();
        if own.contains(&email) || !email.contains('@') {
            continue;
        }
        let sighting = super::records::Sighting {
            origin: &origin,
            name: person.name.as_deref(),
            emails: vec![email],
            ..Default::default()
        };
        let contact = super::records::resolve_contact(conn, &sighting, at)?;
        conn.prepare_cached(
            "INSERT OR IGNORE INTO email_contacts (email_id, contact_id) VALUES (?1, ?2)",
        )?
        .execute(params![id, contact])?;
    }
    Ok(Some(id))
}

fn store_graph_page(
    conn: &Connection,
    mailbox: &str,
    folder: &str,
    items: &[GraphItem],
    removals: &[GraphRemoval],
    own: &[String],
    at: &str,
) -> rusqlite::Result<GraphPageCommitted> {
    let mut committed = GraphPageCommitted::default();
    for item in items {
        let known: Option<i64> = conn
            .prepare_cached(
                "SELECT id FROM emails WHERE mailbox = ?1 AND fingerprint = ?2 ORDER BY id LIMIT 1",
            )?
            .query_row(params![mailbox, item.email.fingerprint], |r| r.get(0))
            .optional()?;
        match known {
            Some(id) => {
                conn.prepare_cached(
                    "UPDATE emails SET folder = ?2, graph_id = ?3, flags = ?4,
                            removed_at = NULL, removed_reason = NULL
                     WHERE id = ?1",
                )?
                .execute(params![id, folder, item.id, item.email.flags])?;
            }
            None => {
                if let Some(id) = store_email(conn, mailbox, folder, None, &item.email, own, at)? {
                    conn.prepare_cached("UPDATE emails SET graph_id = ?2 WHERE id = ?1")?
                        .execute(params![id, item.id])?;
                    committed.new += 1;
                }
            }
        }
    }
    for removal in removals {
        let marked = conn
            .prepare_cached(
                "UPDATE emails SET removed_at = ?4, removed_reason = ?5
                 WHERE mailbox = ?1 AND folder = ?2 AND graph_id = ?3 AND removed_at IS NULL",
            )?
            .execute(params![mailbox, folder, removal.id, at, removal.reason])?;
        committed.removed += marked as u64;
    }
    Ok(committed)
}

fn select_emails(conn: &Connection, q: &EmailQuery) -> rusqlite::Result<EmailPage> {
    let message_id = q
        .message_id
        .as_deref()
        .map(|m| m.trim().trim_start_matches('<').trim_end_matches('>'));
    let allowed = q
        .mailboxes
        .as_ref()
        .map(|m| serde_json::Value::from(m.clone()).to_string());
    let filter = "(?1 IS NULL OR mailbox IN (SELECT value FROM json_each(?1)))
         AND (?2 IS NULL OR mailbox = ?2)
         AND (?3 IS NULL OR folder = ?3)
         AND (?4 IS NULL OR message_id = ?4)
         AND (?7 IS NULL OR id = ?7)";
    let total: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM emails WHERE {filter}"))?
        .query_row(
            params![
                allowed,
                q.mailbox,
                q.folder,
                message_id,
                None::<i64>,
                None::<i64>,
                q.id
            ],
            |r| r.get(0),
        )?;
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT id, mailbox, folder, message_id, direction, from_address, from_name, to_json,
                cc_json, subject, sent_at, text_body, html_body, attachments, removed_at,
                removed_reason
         FROM emails WHERE {filter} AND (?5 IS NULL OR id < ?5)
         ORDER BY id DESC LIMIT ?6"
    ))?;
    let mut items: Vec<EmailRecord> = stmt
        .query_map(
            params![
                allowed,
                q.mailbox,
                q.folder,
                message_id,
                q.before,
                limit + 1,
                q.id
            ],
            |row| {
                let from_address: Option<String> = row.get(5)?;
                let sent_at: Option<String> = row.get(10)?;
                let direction: String = row.get(4)?;
                Ok(EmailRecord {
                    id: row.get(0)?,
                    mailbox: row.get(1)?,
                    folder: row.get(2)?,
                    message_id: row.get(3)?,
                    direction: if direction == "out" {
                        Direction::Out
                    } else {
                        Direction::In
                    },
                    from: from_address.map(|address| MailAddress {
                        address,
                        name: row.get(6).ok().flatten(),
                    }),
                    to: addresses_from_json(&row.get::<_, String>(7)?),
                    cc: addresses_from_json(&row.get::<_, String>(8)?),
                    subject: row.get(9)?,
                    date: sent_at.as_deref().and_then(parse_ts),
                    text: row.get(11)?,
                    html: row.get(12)?,
                    attachments: attachments_from_json(&row.get::<_, String>(13)?),
                    contact_ids: Vec::new(),
                    delivery: None,
                    removed: row
                        .get::<_, Option<String>>(14)?
                        .as_deref()
                        .and_then(parse_ts)
                        .map(|at| Removed {
                            at,
                            reason: row
                                .get::<_, Option<String>>(15)
                                .ok()
                                .flatten()
                                .unwrap_or_default(),
                        }),
                })
            },
        )?
        .collect::<rusqlite::Result<_>>()?;
    let next_before = if items.len() > q.limit {
        items.truncate(q.limit);
        items.last().map(|e| e.id)
    } else {
        None
    };
    let mut contacts = conn.prepare_cached(
        "SELECT contact_id FROM email_contacts WHERE email_id = ?1 ORDER BY contact_id",
    )?;
    let mut delivery = conn.prepare_cached(
        "SELECT state, attempts, last_error FROM mail_outbox WHERE email_id = ?1",
    )?;
    for item in &mut items {
        item.contact_ids = contacts
            .query_map([item.id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        item.delivery = delivery
            .query_row([item.id], |r| {
                Ok(Delivery {
                    state: r.get(0)?,
                    attempts: r.get(1)?,
                    last_error: r.get(2)?,
                })
            })
            .optional()?;
    }
    Ok(EmailPage {
        items,
        total,
        next_before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        "2025-03-01T00:00:00Z".parse().expect("ts")
    }

    fn email(uid: u32, message_id: &str) -> NewEmail {
        NewEmail {
            direction: Direction::In,
            uid: Some(uid),
            message_id: Some(message_id.to_owned()),
            fingerprint: message_id.to_owned(),
            from: Some(MailAddress {
                address: "Bob@Example.org".into(),
                name: Some("Bob".into()),
            }),
            to: vec![MailAddress {
                address: "alice@example.test".into(),
                name: None,
            }],
            cc: vec![],
            subject: Some(format!("m{uid}")),
            date: Some(at()),
            internal_date: Some(at()),
            size: 100,
            flags: String::new(),
            text: Some("hi".into()),
            html: None,
            truncated: false,
            attachments: vec![AttachmentMeta {
                name: Some("a.pdf".into()),
                content_type: "application/pdf".into(),
                size: 3,
            }],
        }
    }

    fn checkpoint(uidvalidity: u32, last_uid: u32) -> Checkpoint {
        Checkpoint {
            uidvalidity,
            last_uid,
            highest_modseq: None,
            initial_complete: true,
            since: at(),
            first_sync: None,
        }
    }

    fn count(store: &Store) -> i64 {
        store
            .emails(&EmailQuery {
                limit: 10,
                ..EmailQuery::default()
            })
            .expect("emails")
            .total
    }

    #[test]
    fn a_batch_and_its_checkpoint_commit_together_and_replays_store_nothing_twice() {
        let mut store = Store::open_in_memory().expect("store");
        let own = vec!["alice@example.test".to_owned()];
        let batch = [email(1, "a@x"), email(2, "b@x")];
        let new = store
            .commit_mail("mb", "INBOX", &checkpoint(7, 2), &batch, &own, at())
            .expect("commit");
        assert_eq!(new, 2);
        // A crash after the commit but before the next run noticed: the same batch again.
        let again = store
            .commit_mail("mb", "INBOX", &checkpoint(7, 2), &batch, &own, at())
            .expect("commit");
        assert_eq!(again, 0);
        assert_eq!(count(&store), 2);
        let folder = store
            .mail_folder("mb", "INBOX")
            .expect("read")
            .expect("row");
        assert_eq!((folder.checkpoint.last_uid, folder.messages), (2, 2));
    }

    #[test]
    fn folder_statuses_count_stored_mail_and_show_first_sync_progress() {
        let mut store = Store::open_in_memory().expect("store");
        let first = Checkpoint {
            initial_complete: false,
            first_sync: Some(Progress {
                loaded: 2,
                total: 5,
            }),
            ..checkpoint(7, 2)
        };
        store
            .commit_mail(
                "mb",
                "INBOX",
                &first,
                &[email(1, "a@x"), email(2, "b@x")],
                &[],
                at(),
            )
            .expect("commit");
        store
            .commit_mail(
                "mb",
                "Archive",
                &checkpoint(3, 1),
                &[email(1, "c@x")],
                &[],
                at(),
            )
            .expect("commit");
        let statuses = store.mail_folder_statuses().expect("statuses");
        let by_name: Vec<(&str, u64, Option<Progress>)> = statuses
            .iter()
            .map(|f| (f.folder.as_str(), f.messages, f.first_sync))
            .collect();
        assert_eq!(
            by_name,
            [
                ("Archive", 1, None),
                (
                    "INBOX",
                    2,
                    Some(Progress {
                        loaded: 2,
                        total: 5
                    })
                )
            ]
        );
        // The first sync completes: the progress goes, the count stays.
        store
            .commit_mail(
                "mb",
                "INBOX",
                &checkpoint(7, 5),
                &[email(5, "d@x")],
                &[],
                at(),
            )
            .expect("commit");
        let inbox = store
            .mail_folder_statuses()
            .expect("statuses")
            .into_iter()
            .find(|f| f.folder == "INBOX")
            .expect("INBOX");
        assert_eq!((inbox.messages, inbox.first_sync), (3, None));
    }

    #[test]
    fn a_uidvalidity_change_rekeys_instead_of_duplicating() {
        let mut store = Store::open_in_memory().expect("store");
        store
            .commit_mail(
                "mb",
                "INBOX",
                &checkpoint(7, 2),
                &[email(1, "a@x"), email(2, "b@x")],
                &[],
                at(),
            )
            .expect("commit");
        let new = store
            .commit_mail(
                "mb",
                "INBOX",
                &checkpoint(8, 3),
                &[email(1, "a@x"), email(2, "b@x"), email(3, "c@x")],
                &[],
                at(),
            )
            .expect("commit");
        assert_eq!(new, 1, "only c@x is new");
        assert_eq!(count(&store), 3);
    }

    #[test]
    fn contacts_are_linked_by_address_without_the_mailbox_itself() {
        let mut store = Store::open_in_memory().expect("store");
        let own = vec!["ALICE@example.test".to_owned()];
        store
            .commit_mail(
                "mb",
                "INBOX",
                &checkpoint(1, 1),
                &[email(1, "a@x")],
                &own,
                at(),
            )
            .expect("commit");
        let bob = store
            .contact_by_email("bob@example.org")
            .expect("read")
            .expect("bob is a contact");
        assert_eq!(bob.name.as_deref(), Some("Bob"));
        assert_eq!(
            store.contact_by_email("alice@example.test").expect("read"),
            None
        );
        let page = store
            .emails(&EmailQuery {
                limit: 10,
                ..EmailQuery::default()
            })
            .expect("emails");
        assert_eq!(page.items[0].contact_ids, vec![bob.id]);
        assert_eq!(page.items[0].attachments[0].name.as_deref(), Some("a.pdf"));
    }

    #[test]
    fn listing_filters_and_pages_newest_first() {
        let mut store = Store::open_in_memory().expect("store");
        let batch: Vec<NewEmail> = (1..=5).map(|i| email(i, &format!("m{i}@x"))).collect();
        store
            .commit_mail("mb", "INBOX", &checkpoint(1, 5), &batch, &[], at())
            .expect("commit");
        store
            .commit_mail(
                "other",
                "INBOX",
                &checkpoint(1, 1),
                &[email(1, "o@x")],
                &[],
                at(),
            )
            .expect("commit");
        let q = EmailQuery {
            mailbox: Some("mb".into()),
            limit: 2,
            ..EmailQuery::default()
        };
        let first = store.emails(&q).expect("page 1");
        assert_eq!(first.total, 5);
        let subjects: Vec<_> = first
            .items
            .iter()
            .map(|e| e.subject.clone().unwrap_or_default())
            .collect();
        assert_eq!(subjects, ["m5", "m4"]);
        let second = store
            .emails(&EmailQuery {
                before: first.next_before,
                ..q.clone()
            })
            .expect("page 2");
        assert_eq!(second.items[0].subject.as_deref(), Some("m3"));
        let by_id = store
            .emails(&EmailQuery {
                message_id: Some("<m2@x>".into()),
                limit: 10,
                ..EmailQuery::default()
            })
            .expect("by id");
        assert_eq!(by_id.total, 1);
        let none_allowed = store
            .emails(&EmailQuery {
                mailboxes: Some(vec!["other".into()]),
                limit: 10,
                ..EmailQuery::default()
            })
            .expect("rights");
        assert_eq!(none_allowed.total, 1);
    }
}
