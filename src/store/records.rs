//! The record store: contacts, accounts, the change journal, per-sync record state and leads
//! (migration `0009_records`).
//!
//! # Responsibility
//! One contact per person, whatever channel they came through. A contact is found again by any
//! of its e-mail addresses (lower-cased), phone numbers ([`normalize_phone`]) or chat identities
//! (`chat_identities`, one per channel and external id). Chat, mail and the records API all go
//! through `resolve_contact` (find or create, then merge) or the API writes below, so there is
//! one merge policy ([`takes_over`]) and every change lands in the journal (`record_changes`)
//! with the origin that made it.
//!
//! ## The merge policy, field by field
//! - Scalar fields (`name`, `jobTitle`): a value replaces the current one when the current one
//!   is empty, when it comes from the same origin as the current one (a person renames
//!   themselves on a channel), or when its origin ranks higher: an operator through the API
//!   (`User/…`) over a sync (`ContactSync/…`, `CalendarSync/…`, `LeadIntegration/…`) over a
//!   channel or mailbox. Between two automatic origins of one rank, the first value stays.
//!   `sources` keeps, per field, the origin of its current value.
//! - Keys (`emails`, `phones`) and chat identities: united. An address or number already owned
//!   by another contact stays with it: two contacts are never merged behind anyone's back.
//!   Only the API replaces the whole list (a merge patch).
//! - `account`: the API sets it (by id, or by a company name that exactly one account has,
//!   CS-02); otherwise a contact without one is linked to the account whose domains hold the
//!   domain of one of its addresses, when exactly one account does (MB-01). An account the API
//!   cleared stays cleared.
//!
//! ## Deletes
//! Deleting a contact (or account) keeps a tombstone (`deleted_at`): it leaves the records
//! API and its e-mail addresses and phones are released (a new letter from them makes a new
//! contact); letters keep pointing at it, so no history is cut. A chat points at its channel
//! identity, which stays linked to the tombstone until the person writes again: then the
//! identity — with its chats — joins a live contact (found by its keys, or new), since the
//! person is evidently still there.
//!
//! # What it must not do
//! - Leak SQLite: rows are plain structs, errors [`RecordError`] / [`StoreError`].
//! - Decide who may see what: callers pass a [`RecordViewer`] computed from the config.
//! - Serialize for clients: DTOs live in `http`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::{Map, Value};

use super::{Store, StoreError, db_error, format_ts, parse_ts};

/// The origin of the rows that migration `0009_records` merged.
pub const MIGRATION_ORIGIN: &str = "Migration/0009";

/// What kind of record a journal entry or sync state is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A contact.
    Contact,
    /// An account (company).
    Account,
    /// A meeting or task.
    Activity,
    /// A LinkedIn lead.
    Lead,
}

impl RecordKind {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Contact => "contact",
            RecordKind::Account => "account",
            RecordKind::Activity => "activity",
            RecordKind::Lead => "lead",
        }
    }

    fn parse(text: &str) -> Option<RecordKind> {
        [
            RecordKind::Contact,
            RecordKind::Account,
            RecordKind::Activity,
            RecordKind::Lead,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// What a journal entry did to its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    /// The record was created.
    Create,
    /// The record changed.
    Update,
    /// The record was deleted (a tombstone remains).
    Delete,
}

impl ChangeOp {
    /// `create` | `update` | `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Create => "create",
            ChangeOp::Update => "update",
            ChangeOp::Delete => "delete",
        }
    }

    fn parse(text: &str) -> Option<ChangeOp> {
        match text {
            "create" => Some(ChangeOp::Create),
            "update" => Some(ChangeOp::Update),
            "delete" => Some(ChangeOp::Delete),
            _ => None,
        }
    }
}

/// One entry of the change journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its position: strictly increasing, never reused.
    pub seq: i64,
    /// The record's kind.
    pub kind: RecordKind,
    /// The record's id.
    pub id: i64,
    /// What happened.
    pub op: ChangeOp,
    /// Who did it: `User/ann`, `ChatChannel/web`, `Mailbox/sales`, `ContactSync/google`, ...
    pub origin: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// What a sync object knows of one record it exchanges with its remote side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRecordState {
    /// The sync object, as its origin (`ContactSync/google`).
    pub sync: String,
    /// The record's kind.
    pub kind: RecordKind,
    /// The record's id here.
    pub record_id: i64,
    /// Its id on the remote side.
    pub remote_id: String,
    /// Its version there (ETag, change key), when known.
    pub remote_version: Option<String>,
    /// The journal position up to which its changes were exported.
    pub exported_seq: i64,
}

/// A contact's account, as a contact shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountLink {
    /// The account's id.
    pub id: i64,
    /// Its name.
    pub name: String,
}

/// A chat identity of a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The `ChatChannel`.
    pub channel: String,
    /// The person's id on it.
    pub external_id: String,
}

/// A contact as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Its id (the one `/emails` `contactIds` and `/chats` `contact.id` name).
    pub id: i64,
    /// The name, when known.
    pub name: Option<String>,
    /// E-mail addresses, lower-cased, in the order they were added.
    pub emails: Vec<String>,
    /// Phone numbers, normalised, in the order they were added.
    pub phones: Vec<String>,
    /// Job title.
    pub job_title: Option<String>,
    /// The account it belongs to.
    pub account: Option<AccountLink>,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Chat identities, oldest first.
    pub identities: Vec<Identity>,
    /// Bumped by every change.
    pub version: i64,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// An account (a company) as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its e-mail domains, lower-cased, sorted.
    pub domains: Vec<String>,
    /// Bumped by every change.
    pub version: i64,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a caller may see of the contacts: those of the chats and letters they may see, and
/// those they created or changed themselves. `None` in a query means everything
/// (`CanManageAdministration`).
#[derive(Debug, Clone, Default)]
pub struct RecordViewer {
    /// The `User` name.
    pub user: String,
    /// The queues they operate in (their chats' rule, CH-01).
    pub queues: Vec<String>,
    /// They see every chat (`CanManageChats`), so the contacts of every chat.
    pub all_chats: bool,
    /// The mailboxes they may read (MB-04).
    pub mailboxes: Vec<String>,
}

/// The filters of a contact list.
#[derive(Debug, Clone, Default)]
pub struct ContactQuery {
    /// Only what this viewer may see; `None` = everything.
    pub viewer: Option<RecordViewer>,
    /// A substring of the name or of an address, case-insensitive.
    pub q: Option<String>,
    /// Has this address (any case).
    pub email: Option<String>,
    /// Has this phone (normalised first).
    pub phone: Option<String>,
    /// Has this tag.
    pub tag: Option<String>,
    /// Belongs to this account.
    pub account: Option<i64>,
    /// Changed at or after.
    pub updated_since: Option<DateTime<Utc>>,
    /// Skip this many.
    pub offset: usize,
    /// At most this many.
    pub limit: usize,
}

/// The filters of an account list.
#[derive(Debug, Clone, Default)]
pub struct AccountQuery {
    /// A substring of the name or a domain, case-insensitive.
    pub q: Option<String>,
    /// Has this domain.
    pub domain: Option<String>,
    /// Changed at or after.
    pub updated_since: Option<DateTime<Utc>>,
    /// Skip this many.
    pub offset: usize,
    /// At most this many.
    pub limit: usize,
}

/// How a write names a contact's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountRef {
    /// By id; it must exist.
    Id(i64),
    /// By company name: linked when exactly one account has it, left unlinked otherwise
    /// (CS-02).
    Name(String),
}

/// The fields of a contact to write. `None` leaves a field as it is; for a new contact, as
/// empty. Lists replace the whole list.
#[derive(Debug, Clone, Default)]
pub struct ContactChanges {
    /// `Some(None)` clears it.
    pub name: Option<Option<String>>,
    /// `Some(None)` clears it.
    pub job_title: Option<Option<String>>,
    /// Replaces the addresses (validated and lower-cased here).
    pub emails: Option<Vec<String>>,
    /// Replaces the phones (validated and normalised here).
    pub phones: Option<Vec<String>>,
    /// Replaces the tags.
    pub tags: Option<Vec<String>>,
    /// `Some(None)` unlinks it.
    pub account: Option<Option<AccountRef>>,
}

/// The fields of an account to write.
#[derive(Debug, Clone, Default)]
pub struct AccountChanges {
    /// The name.
    pub name: Option<String>,
    /// Replaces the domains (lower-cased here).
    pub domains: Option<Vec<String>>,
}

/// Why a record write was refused.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// No such record (or it was deleted).
    #[error("no {kind} {id}")]
    NotFound {
        /// The record's kind.
        kind: &'static str,
        /// The id asked for.
        id: i64,
    },
    /// The record changed since the version the caller read (`If-Match`).
    #[error("{kind} {id} changed since it was read; read it again")]
    Stale {
        /// The record's kind.
        kind: &'static str,
        /// Its id.
        id: i64,
    },
    /// A field's value is not acceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field path, e.g. `emails[1]`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// An address or phone already belongs to another contact.
    #[error("{field}: {value} belongs to contact {owner}")]
    Taken {
        /// The field path.
        field: String,
        /// The value.
        value: String,
        /// The contact that has it.
        owner: i64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A lead as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Lead {
    /// Its id.
    pub id: i64,
    /// The `LeadIntegration`.
    pub integration: String,
    /// The LinkedIn form id.
    pub form: String,
    /// LinkedIn's id of the lead.
    pub linkedin_lead_id: String,
    /// When the form was submitted.
    pub submitted_at: DateTime<Utc>,
    /// The mapped columns.
    pub columns: Map<String, Value>,
    /// The contact it was linked to.
    pub contact_id: Option<i64>,
    /// An earlier lead of the same person.
    pub duplicate_of: Option<i64>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// A lead to store.
#[derive(Debug, Clone)]
pub struct NewLead {
    /// The `LeadIntegration`.
    pub integration: String,
    /// The form id.
    pub form: String,
    /// LinkedIn's id of the lead.
    pub linkedin_lead_id: String,
    /// When it was submitted.
    pub submitted_at: DateTime<Utc>,
    /// The mapped columns.
    pub columns: Map<String, Value>,
    /// The contact it belongs to.
    pub contact_id: Option<i64>,
    /// An earlier lead of the same person.
    pub duplicate_of: Option<i64>,
}

/// The filters of a lead list.
#[derive(Debug, Clone, Default)]
pub struct LeadQuery {
    /// Only these integrations; `None`: all.
    pub integrations: Option<Vec<String>>,
    /// Only this form.
    pub form: Option<String>,
    /// Submitted at or after.
    pub since: Option<DateTime<Utc>>,
    /// Skip this many.
    pub offset: usize,
    /// At most this many.
    pub limit: usize,
}

// ---- pure rules ---------------------------------------------------------------------------

/// A phone number in the one form the store keeps: `+` and 8–15 digits (E.164) when the
/// number came with a country code (`+…` or `00…`), the bare digits (3–15) otherwise — a
/// number given without a country code is not guessed into one, so it only matches the same
/// digits given the same way. Spaces, dashes, dots, slashes and parentheses are dropped, a
/// `tel:` or `whatsapp:` prefix too. `None` when anything else is in it.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let text = raw.trim();
    let text = text
        .strip_prefix("tel:")
        .or_else(|| text.strip_prefix("whatsapp:"))
        .unwrap_or(text)
        .trim();
    let mut digits = String::with_capacity(text.len());
    let mut plus = false;
    for ch in text.chars() {
        match ch {
            '+' if digits.is_empty() && !plus => plus = true,
            '0'..='9' => digits.push(ch),
            ' ' | '-' | '.' | '(' | ')' | '/' | '\u{a0}' => {}
            _ => return None,
        }
    }
    if !plus && digits.len() > 2 && digits.starts_with("00") {
        digits.drain(..2);
        plus = true;
    }
    if plus {
        let ok = (8..=15).contains(&digits.len()) && !digits.starts_with('0');
        ok.then(|| format!("+{digits}"))
    } else {
        (3..=15).contains(&digits.len()).then_some(digits)
    }
}

/// An e-mail address in the one form the store keeps (trimmed, lower-cased), or `None` when
/// it is not one (`local@domain`, no spaces).
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.rsplit_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>');
    ok.then_some(email)
}

/// How much an origin's word weighs: an operator through the API, then a sync, then a
/// channel or mailbox (and anything else).
fn rank(origin: &str) -> u8 {
    let kind = origin.split('/').next().unwrap_or_default();
    match kind {
        "User" => 3,
        "ContactSync" | "CalendarSync" | "LeadIntegration" => 2,
        _ => 1,
    }
}

/// The merge policy of one scalar field: whether a value from `origin` replaces the current
/// value, which `current_origin` set (`None`: nobody recorded). An empty current value is
/// always filled; the same origin replaces its own value; an operator replaces anything; a
/// higher-ranked origin replaces a lower one; otherwise the current value stays.
pub fn takes_over(current: Option<&str>, current_origin: Option<&str>, origin: &str) -> bool {
    if current.is_none_or(str::is_empty) {
        return true;
    }
    match current_origin {
        None => rank(origin) > 1,
        Some(by) => by == origin || rank(origin) == 3 || rank(origin) > rank(by),
    }
}

// ---- what chat and mail call --------------------------------------------------------------

/// A person as a channel, mailbox or sync saw them: the input of `resolve_contact`.
#[derive(Debug, Clone, Default)]
pub struct Sighting<'a> {
    /// Who saw them: `ChatChannel/web`, `Mailbox/sales`, `ContactSync/google`.
    pub origin: &'a str,
    /// The name they gave, if any.
    pub name: Option<&'a str>,
    /// Addresses, already normalised ([`normalize_email`]).
    pub emails: Vec<String>,
    /// Phones, already normalised ([`normalize_phone`]).
    pub phones: Vec<String>,
    /// The contact their chat identity is linked to, if any.
    pub linked: Option<i64>,
}

impl<'a> Sighting<'a> {
    /// What a chat channel says of the person behind an identity: their name and, when the
    /// channel gives them, an address and a phone (normalised here; a malformed one is left
    /// out, as the identity still keeps it as given).
    pub fn of_chat(
        origin: &'a str,
        name: &'a str,
        email: Option<&str>,
        phone: Option<&str>,
        linked: Option<i64>,
    ) -> Sighting<'a> {
        Sighting {
            origin,
            name: Some(name),
            emails: email.and_then(normalize_email).into_iter().collect(),
            phones: phone.and_then(normalize_phone).into_iter().collect(),
            linked,
        }
    }
}

/// Finds the contact of a sighting — by the identity's link, else by any address, else by
/// any phone — or creates it, then merges what the sighting says into it by the merge policy
/// (see the module docs), journaling a change when anything changed. Returns the contact.
///
/// The one find-or-create of the store: the chat writer (through `ChatTx::contact`), mail
/// (`store_email`) and the migration call it. Every lookup is one indexed read of a cached
/// statement.
pub(super) fn resolve_contact(
    conn: &Connection,
    s: &Sighting<'_>,
    at: &str,
) -> rusqlite::Result<i64> {
    let mut found = match s.linked {
        Some(id) => live_contact(conn, id)?.then_some(id),
        None => None,
    };
    for email in &s.emails {
        if found.is_some() {
            break;
        }
        found = owner_of(conn, "contact_emails", "email", email)?;
    }
    for phone in &s.phones {
        if found.is_some() {
            break;
        }
        found = owner_of(conn, "contact_phones", "phone", phone)?;
    }
    let (id, created) = match found {
        Some(id) => (id, false),
        None => {
            let name = s.name.filter(|n| !n.is_empty());
            let sources = match name {
                Some(_) => format!("{{\"name\":{}}}", Value::from(s.origin)),
                None => "{}".to_owned(),
            };
            conn.prepare_cached(
                "INSERT INTO contacts (name, sources, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?3)",
            )?
            .execute(params![name, sources, at])?;
            (conn.last_insert_rowid(), true)
        }
    };
    let mut changed = false;
    if !created && let Some(name) = s.name.filter(|n| !n.is_empty()) {
        changed |= merge_scalar(conn, id, "name", "name", name, s.origin)?;
    }
    let mut new_email = false;
    for email in &s.emails {
        let added = add_key(conn, "contact_emails", "email", email, id, s.origin)?;
        new_email |= added;
        changed |= added;
    }
    for phone in &s.phones {
        changed |= add_key(conn, "contact_phones", "phone", phone, id, s.origin)?;
    }
    if new_email {
        changed |= link_account_by_domain(conn, id)?;
    }
    if created {
        journal(
            conn,
            RecordKind::Contact,
            id,
            ChangeOp::Create,
            s.origin,
            at,
        )?;
    } else if changed {
        touch(conn, "contacts", id, at)?;
        journal(
            conn,
            RecordKind::Contact,
            id,
            ChangeOp::Update,
            s.origin,
            at,
        )?;
    }
    Ok(id)
}

/// Whether contact `id` exists and is not deleted.
fn live_contact(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM contacts WHERE id = ?1 AND deleted_at IS NULL")?
        .query_row([id], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
}

/// The contact owning `value` in a key table (`contact_emails` or `contact_phones`).
fn owner_of(
    conn: &Connection,
    table: &'static str,
    column: &'static str,
    value: &str,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(&format!(
        "SELECT contact_id FROM {table} WHERE {column} = ?1"
    ))?
    .query_row([value], |r| r.get(0))
    .optional()
}

/// Adds a key to a contact unless some contact already has it; true when added.
fn add_key(
    conn: &Connection,
    table: &'static str,
    column: &'static str,
    value: &str,
    contact: i64,
    origin: &str,
) -> rusqlite::Result<bool> {
    conn.prepare_cached(&format!(
        "INSERT OR IGNORE INTO {table} ({column}, contact_id, origin) VALUES (?1, ?2, ?3)"
    ))?
    .execute(params![value, contact, origin])
    .map(|n| n > 0)
}

/// Applies the merge policy to one scalar field; true when it changed.
fn merge_scalar(
    conn: &Connection,
    id: i64,
    column: &'static str,
    field: &str,
    value: &str,
    origin: &str,
) -> rusqlite::Result<bool> {
    let (current, sources): (Option<String>, String) = conn
        .prepare_cached(&format!(
            "SELECT {column}, sources FROM contacts WHERE id = ?1"
        ))?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut sources = parse_sources(&sources);
    let by = sources.get(field).and_then(Value::as_str);
    if current.as_deref() == Some(value) || !takes_over(current.as_deref(), by, origin) {
        return Ok(false);
    }
    sources.insert(field.to_owned(), Value::from(origin));
    conn.prepare_cached(&format!(
        "UPDATE contacts SET {column} = ?2, sources = ?3 WHERE id = ?1"
    ))?
    .execute(params![id, value, Value::Object(sources).to_string()])?;
    Ok(true)
}

fn parse_sources(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// MB-01: links a contact without an account (and whose account no operator cleared) to the
/// account whose domains hold the domain of one of its addresses, when exactly one account
/// does. True when it linked.
fn link_account_by_domain(conn: &Connection, contact: i64) -> rusqlite::Result<bool> {
    let (account, sources): (Option<i64>, String) = conn
        .prepare_cached("SELECT account_id, sources FROM contacts WHERE id = ?1")?
        .query_row([contact], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if account.is_some() || parse_sources(&sources).contains_key("account") {
        return Ok(false);
    }
    let candidates: Vec<i64> = conn
        .prepare_cached(
            "SELECT DISTINCT d.account_id
             FROM contact_emails e
             JOIN account_domains d ON d.domain = substr(e.email, instr(e.email, '@') + 1)
             JOIN accounts a ON a.id = d.account_id AND a.deleted_at IS NULL
             WHERE e.contact_id = ?1 LIMIT 2",
        )?
        .query_map([contact], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let [account] = candidates[..] else {
        return Ok(false);
    };
    conn.prepare_cached("UPDATE contacts SET account_id = ?2 WHERE id = ?1")?
        .execute(params![contact, account])?;
    Ok(true)
}

/// CS-02: the one live account named `name` (case-insensitive), or `None` when none or
/// several are.
fn account_by_name(conn: &Connection, name: &str) -> rusqlite::Result<Option<i64>> {
    let ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT id FROM accounts WHERE name = ?1 COLLATE NOCASE AND deleted_at IS NULL LIMIT 2",
        )?
        .query_map([name.trim()], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(match ids[..] {
        [id] => Some(id),
        _ => None,
    })
}

/// Bumps a record's version and its `updated_at`.
pub(super) fn touch(
    conn: &Connection,
    table: &'static str,
    id: i64,
    at: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(&format!(
        "UPDATE {table} SET version = version + 1, updated_at = ?2 WHERE id = ?1"
    ))?
    .execute(params![id, at])
    .map(drop)
}

/// Appends one entry to the change journal.
pub(super) fn journal(
    conn: &Connection,
    kind: RecordKind,
    id: i64,
    op: ChangeOp,
    origin: &str,
    at: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO record_changes (record_kind, record_id, op, origin, at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![kind.as_str(), id, op.as_str(), origin, at])
    .map(drop)
}

/// The data step of migration `0009_records`: every mail contact enters the journal, and
/// every chat identity, oldest first, joins the contact that has its e-mail or phone, or a new
/// one, through `resolve_contact` — so the migration merges exactly as the running daemon
/// does.
pub(super) fn merge_chat_identities(conn: &Connection) -> rusqlite::Result<()> {
    let at = format_ts(Utc::now());
    conn.execute(
        "INSERT INTO record_changes (record_kind, record_id, op, origin, at)
         SELECT 'contact', id, 'create', ?1, ?2 FROM contacts ORDER BY id",
        params![MIGRATION_ORIGIN, at],
    )?;
    type Row = (i64, String, String, Option<String>, Option<String>);
    let identities: Vec<Row> = conn
        .prepare("SELECT id, channel, name, email, phone FROM chat_identities ORDER BY id")?
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (id, channel, name, email, phone) in identities {
        let origin = format!("ChatChannel/{channel}");
        let sighting = Sighting::of_chat(&origin, &name, email.as_deref(), phone.as_deref(), None);
        let contact = resolve_contact(conn, &sighting, &at)?;
        conn.execute(
            "UPDATE chat_identities SET contact_id = ?2 WHERE id = ?1",
            params![id, contact],
        )?;
    }
    Ok(())
}

// ---- the records API ------------------------------------------------------------------------

impl Store {
    /// The contact `id`, unless deleted.
    pub fn contact(&self, id: i64) -> Result<Option<Contact>, StoreError> {
        select_contact(&self.conn, id).map_err(|e| self.err(e))
    }

    /// Contacts matching `q`, oldest first, and how many match in all.
    pub fn contacts(&self, q: &ContactQuery) -> Result<(Vec<Contact>, usize), StoreError> {
        list_contacts(&self.conn, q).map_err(|e| self.err(e))
    }

    /// Whether `viewer` may see contact `id` (see [`RecordViewer`]).
    pub fn contact_visible(&self, id: i64, viewer: &RecordViewer) -> Result<bool, StoreError> {
        let q = ContactQuery {
            viewer: Some(viewer.clone()),
            ..ContactQuery::default()
        };
        let (condition, args) = contact_filter(&q);
        let sql = format!("SELECT count(*) FROM contacts k WHERE k.id = ?12 AND {condition}");
        let mut params = args;
        params.push(Value::from(id));
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_row(
                    rusqlite::params_from_iter(params.iter().map(sql_value)),
                    |r| r.get::<_, i64>(0),
                )
            })
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Creates a contact from the API (`origin` = `User/<name>`).
    pub fn create_contact(
        &mut self,
        changes: &ContactChanges,
        origin: &str,
        at: DateTime<Utc>,
    ) -> Result<Contact, RecordError> {
        self.record_tx(|tx, path| {
            let at = format_ts(at);
            let id: i64 = tx
                .query_row(
                    "INSERT INTO contacts (sources, created_at, updated_at)
                     VALUES ('{}', ?1, ?1) RETURNING id",
                    [&at],
                    |r| r.get(0),
                )
                .map_err(|e| db_error(path, e))?;
            write_contact(tx, path, id, changes, origin)?;
            journal(tx, RecordKind::Contact, id, ChangeOp::Create, origin, &at)
                .map_err(|e| db_error(path, e))?;
            select_contact(tx, id)
                .map_err(|e| db_error(path, e))?
                .ok_or(RecordError::NotFound {
                    kind: "contact",
                    id,
                })
        })
    }

    /// Changes a contact from the API. `expected_version` (from `If-Match`, or the version
    /// the caller read) must still be current, or [`RecordError::Stale`].
    pub fn update_contact(
        &mut self,
        id: i64,
        expected_version: Option<i64>,
        changes: &ContactChanges,
        origin: &str,
        at: DateTime<Utc>,
    ) -> Result<Contact, RecordError> {
        self.record_tx(|tx, path| {
            let at = format_ts(at);
            check_version(tx, path, "contacts", "contact", id, expected_version)?;
            write_contact(tx, path, id, changes, origin)?;
            touch(tx, "contacts", id, &at).map_err(|e| db_error(path, e))?;
            journal(tx, RecordKind::Contact, id, ChangeOp::Update, origin, &at)
                .map_err(|e| db_error(path, e))?;
            select_contact(tx, id)
                .map_err(|e| db_error(path, e))?
                .ok_or(RecordError::NotFound {
                    kind: "contact",
                    id,
                })
        })
    }

    /// Deletes a contact (a tombstone: see the module docs).
    pub fn delete_contact(
        &mut self,
        id: i64,
        expected_version: Option<i64>,
        origin: &str,
        at: DateTime<Utc>,
    ) -> Result<(), RecordError> {
        self.record_tx(|tx, path| {
            let at = format_ts(at);
            check_version(tx, path, "contacts", "contact", id, expected_version)?;
            tx.execute_batch(&format!(
                "DELETE FROM contact_emails WHERE contact_id = {id};
                 DELETE FROM contact_phones WHERE contact_id = {id};
                 DELETE FROM contact_tags WHERE contact_id = {id};"
            ))
            .and_then(|()| {
                tx.execute(
                    "UPDATE contacts SET deleted_at = ?2, version = version + 1, updated_at = ?2
                     WHERE id = ?1",
                    params![id, at],
                )
            })
            .and_then(|_| journal(tx, RecordKind::Contact, id, ChangeOp::Delete, origin, &at))
            .map_err(|e| db_error(path, e))?;
            Ok(())
        })
    }

    /// CS-02, for the sync connectors: links contact `id` to the one account named `company`;
    /// leaves it unlinked when no account or several have that name. True when it linked.
    pub fn link_contact_to_company(
        &mut self,
        id: i64,
        company: &str,
        origin: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, RecordError> {
        let changes = ContactChanges {
            account: Some(Some(AccountRef::Name(company.to_owned()))),
            ..ContactChanges::default()
        };
        let contact = self.update_contact(id, None, &changes, origin, at)?;
        Ok(contact.account.is_some())
    }

    /// The account `id`, unless deleted.
    pub fn account(&self, id: i64) -> Result<Option<Account>, StoreError> {
        select_account(&self.conn, id).map_err(|e| self.err(e))
    }

    /// Accounts matching `q`, oldest first, and how many match in all.
    pub fn accounts(&self, q: &AccountQuery) -> Result<(Vec<Account>, usize), StoreError> {
        list_accounts(&self.conn, q).map_err(|e| self.err(e))
    }

    /// Creates an account; contacts without an account whose addresses are in its domains
    /// are linked to it when it is the only account of that domain (MB-01).
    pub fn create_account(
        &mut self,
        changes: &AccountChanges,
        origin: &str,
        at: DateTime<Utc>,
    ) -> Result<Account, RecordError> {
        self.record_tx(|tx, path| {
            let at = format_ts(at);
            let name = changes.name.as_deref().unwrap_or_default();
            let id: i64 = tx
                .query_row(
                    "INSERT INTO accounts (name, created_at, updated_at) VALUES (?1, ?2, ?2)
                     RETURNING id",
                    params![name, at],
                    |r| r.get(0),
                )
                .map_err(|e| db_error(path, e))?;
            write_account(tx, path, id, changes, origin, &at)?;
            journal(tx, RecordKind::Account, id, ChangeOp::Create, origin, &at)
                .map_err(|e| db_error(path, e))?;
            select_account(tx, id)
                .map_err(|e| db_error(path, e))?
                .ok_or(RecordError::NotFound {
                    kind: "account",
                    id,
                })
        })
    }

    /// Changes an account (see [`Store::update_contact`] for `expected_version`).
    pub fn update_account(
        &mut self,
        id: i64,
        expected_version: Option<i64>,
        changes: &AccountChanges,
        origin: &str,
        at: DateTime<Utc>,
    ) -> Result<Account, RecordError> {
        self.record_tx(|tx, path| {
            let at = format_ts(at);
            check_version(tx, path, "accounts", "account", id, expected_version)?;
            if let Some(name) = &changes.name {
                tx.execute(
                    "UPDATE accounts SET name = ?2 WHERE id = ?1",
                    params![id, name],
                )
                .map_err(|e| db_error(path, e))?;
            }
            write_account(tx, path, id, changes, origin, &at)?;
            touch(tx, "accounts", id, &at).map_err(|e| db_error(path, e))?;
            journal(tx, RecordKind::Account, id, ChangeOp::Update, origin, &at)
                .map_err(|e| db_error(path, e))?;
            select_account(tx, id)
                .map_err(|e| db_error(path, e))?
                .ok_or(RecordError::NotFound {
                    kind: "account",
                    id,
                })
        })
    }

    /// Deletes an account (a tombstone); its contacts are unlinked, each change journaled.
    pub fn delete_account(
        &mut self,
        id: i64,
        expected_version: Option<i64>,
        origin: &str,
        at: DateTime<Utc>,
    ) -> Result<(), RecordError> {
        self.record_tx(|tx, path| {
            let at = format_ts(at);
            check_version(tx, path, "accounts", "account", id, expected_version)?;
            let contacts: Vec<i64> = tx
                .prepare("SELECT id FROM contacts WHERE account_id = ?1")
                .and_then(|mut s| s.query_map([id], |r| r.get(0))?.collect())
                .map_err(|e| db_error(path, e))?;
            for contact in contacts {
                tx.execute(
                    "UPDATE contacts SET account_id = NULL WHERE id = ?1",
                    [contact],
                )
                .and_then(|_| touch(tx, "contacts", contact, &at))
                .and_then(|()| {
                    journal(
                        tx,
                        RecordKind::Contact,
                        contact,
                        ChangeOp::Update,
                        origin,
                        &at,
                    )
                })
                .map_err(|e| db_error(path, e))?;
            }
            tx.execute("DELETE FROM account_domains WHERE account_id = ?1", [id])
                .and_then(|_| {
                    tx.execute(
                    "UPDATE accounts SET deleted_at = ?2, version = version + 1, updated_at = ?2
                     WHERE id = ?1",
                    params![id, at],
                )
                })
                .and_then(|_| journal(tx, RecordKind::Account, id, ChangeOp::Delete, origin, &at))
                .map_err(|e| db_error(path, e))?;
            Ok(())
        })
    }

    /// The journal after position `after`, oldest first, at most `limit` entries, leaving out
    /// the changes `origin` made itself: what a sync connector exports, so an imported change
    /// is never echoed back to where it came from. A run with nothing new reads nothing.
    pub fn changes_since(
        &self,
        after: i64,
        not_by: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.conn
            .prepare_cached(
                "SELECT seq, record_kind, record_id, op, origin, at FROM record_changes
                 WHERE seq > ?1 AND (?2 IS NULL OR origin <> ?2) ORDER BY seq LIMIT ?3",
            )
            .and_then(|mut s| {
                s.query_map(params![after, not_by, limit], |r| {
                    let kind: String = r.get(1)?;
                    let op: String = r.get(3)?;
                    let at: String = r.get(5)?;
                    Ok(Change {
                        seq: r.get(0)?,
                        kind: RecordKind::parse(&kind).ok_or_else(|| bad(1))?,
                        id: r.get(2)?,
                        op: ChangeOp::parse(&op).ok_or_else(|| bad(3))?,
                        origin: r.get(4)?,
                        at: parse_ts(&at).ok_or_else(|| bad(5))?,
                    })
                })?
                .collect()
            })
            .map_err(|e| self.err(e))
    }

    /// The last journal position (0 when empty).
    pub fn last_change_seq(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT coalesce(max(seq), 0) FROM record_changes",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// What sync object `sync` knows of record `(kind, id)`.
    pub fn sync_record(
        &self,
        sync: &str,
        kind: RecordKind,
        id: i64,
    ) -> Result<Option<SyncRecordState>, StoreError> {
        select_sync_record(&self.conn, "record_id = ?3", sync, kind, id.into())
            .map_err(|e| self.err(e))
    }

    /// The record sync object `sync` knows under `remote_id`.
    pub fn sync_record_by_remote(
        &self,
        sync: &str,
        kind: RecordKind,
        remote_id: &str,
    ) -> Result<Option<SyncRecordState>, StoreError> {
        select_sync_record(&self.conn, "remote_id = ?3", sync, kind, remote_id.into())
            .map_err(|e| self.err(e))
    }

    /// Records what sync object `sync` knows of a record (insert or replace).
    pub fn set_sync_record(
        &mut self,
        state: &SyncRecordState,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.ensure_writable()?;
        self.conn
            .execute(
                "INSERT INTO sync_records
                    (sync, record_kind, record_id, remote_id, remote_version, exported_seq,
                     updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (sync, record_kind, record_id) DO UPDATE SET
                    remote_id = excluded.remote_id, remote_version = excluded.remote_version,
                    exported_seq = excluded.exported_seq, updated_at = excluded.updated_at",
                params![
                    state.sync,
                    state.kind.as_str(),
                    state.record_id,
                    state.remote_id,
                    state.remote_version,
                    state.exported_seq,
                    format_ts(at)
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Stores a lead once per `(integration, linkedinLeadId)`; returns its id and whether it
    /// is new (a second delivery returns the first one's id).
    pub fn insert_lead(
        &mut self,
        lead: &NewLead,
        origin: &str,
        at: DateTime<Utc>,
    ) -> Result<(i64, bool), StoreError> {
        self.ensure_writable()?;
        let at = format_ts(at);
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_error(&path, e))?;
        let inserted: Option<i64> = tx
            .query_row(
                "INSERT INTO leads (integration, form, linkedin_lead_id, submitted_at, columns,
                                    contact_id, duplicate_of, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (integration, linkedin_lead_id) DO NOTHING RETURNING id",
                params![
                    lead.integration,
                    lead.form,
                    lead.linkedin_lead_id,
                    format_ts(lead.submitted_at),
                    Value::Object(lead.columns.clone()).to_string(),
                    lead.contact_id,
                    lead.duplicate_of,
                    at
                ],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_error(&path, e))?;
        let result = match inserted {
            Some(id) => {
                journal(&tx, RecordKind::Lead, id, ChangeOp::Create, origin, &at)
                    .map_err(|e| db_error(&path, e))?;
                (id, true)
            }
            None => (
                tx.query_row(
                    "SELECT id FROM leads WHERE integration = ?1 AND linkedin_lead_id = ?2",
                    params![lead.integration, lead.linkedin_lead_id],
                    |r| r.get(0),
                )
                .map_err(|e| db_error(&path, e))?,
                false,
            ),
        };
        tx.commit().map_err(|e| db_error(&path, e))?;
        Ok(result)
    }

    /// The lead `id`.
    pub fn lead(&self, id: i64) -> Result<Option<Lead>, StoreError> {
        let q = LeadQuery {
            limit: 1,
            ..LeadQuery::default()
        };
        list_leads(&self.conn, &q, Some(id))
            .map(|(mut leads, _)| leads.pop())
            .map_err(|e| self.err(e))
    }

    /// Leads matching `q`, newest submitted first, and how many match in all.
    pub fn leads(&self, q: &LeadQuery) -> Result<(Vec<Lead>, usize), StoreError> {
        list_leads(&self.conn, q, None).map_err(|e| self.err(e))
    }

    /// Runs one records-API write in an IMMEDIATE transaction.
    pub(super) fn record_tx<T>(
        &mut self,
        work: impl FnOnce(&rusqlite::Transaction<'_>, &std::path::Path) -> Result<T, RecordError>,
    ) -> Result<T, RecordError> {
        self.ensure_writable()?;
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_error(&path, e))?;
        let value = work(&tx, &path)?;
        tx.commit().map_err(|e| db_error(&path, e))?;
        Ok(value)
    }

    /// `import` for each of `items` in ONE transaction (a sync's multiget answer: one commit
    /// instead of one per item). Each item is its own savepoint, so an item the store refuses
    /// is rolled back alone and answered `Err(reason)`, in `items`' order; a store failure
    /// fails the whole batch, which is then not written at all.
    pub(super) fn record_batch_tx<I, T>(
        &mut self,
        items: &[I],
        import: impl Fn(&rusqlite::Transaction<'_>, &std::path::Path, &I) -> Result<T, RecordError>,
    ) -> Result<Vec<Result<T, String>>, StoreError> {
        let result = self.record_tx(|tx, path| {
            let db = |e| db_error(path, e);
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                tx.execute_batch("SAVEPOINT batch_item").map_err(db)?;
                match import(tx, path, item) {
                    Ok(value) => {
                        tx.execute_batch("RELEASE batch_item").map_err(db)?;
                        out.push(Ok(value));
                    }
                    Err(RecordError::Store(e)) => return Err(RecordError::Store(e)),
                    Err(refused) => {
                        tx.execute_batch("ROLLBACK TO batch_item; RELEASE batch_item")
                            .map_err(db)?;
                        out.push(Err(refused.to_string()));
                    }
                }
            }
            Ok(out)
        });
        match result {
            Ok(out) => Ok(out),
            Err(RecordError::Store(e)) => Err(e),
            Err(other) => Err(StoreError::Corrupt {
                path: self.path.clone(),
                detail: format!("a batch import failed outside its items: {other}"),
            }),
        }
    }
}

// ---- SQL of the API writes and reads --------------------------------------------------------

fn bad(index: usize) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        "unexpected value".into(),
    )
}

/// [`RecordError::NotFound`] unless the live record exists, [`RecordError::Stale`] unless it
/// is at `expected` (when given).
pub(super) fn check_version(
    conn: &Connection,
    path: &std::path::Path,
    table: &'static str,
    kind: &'static str,
    id: i64,
    expected: Option<i64>,
) -> Result<(), RecordError> {
    let version: Option<i64> = conn
        .query_row(
            &format!("SELECT version FROM {table} WHERE id = ?1 AND deleted_at IS NULL"),
            [id],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| db_error(path, e))?;
    match (version, expected) {
        (None, _) => Err(RecordError::NotFound { kind, id }),
        (Some(v), Some(e)) if v != e => Err(RecordError::Stale { kind, id }),
        _ => Ok(()),
    }
}

/// A refused field.
pub(super) fn invalid(field: impl Into<String>, message: impl Into<String>) -> RecordError {
    RecordError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Writes the API's changes to contact `id`, with `origin` as the source of every field set.
pub(super) fn write_contact(
    tx: &Connection,
    path: &std::path::Path,
    id: i64,
    c: &ContactChanges,
    origin: &str,
) -> Result<(), RecordError> {
    let db = |e| db_error(path, e);
    let (sources,): (String,) = tx
        .query_row("SELECT sources FROM contacts WHERE id = ?1", [id], |r| {
            Ok((r.get(0)?,))
        })
        .map_err(db)?;
    let mut sources = parse_sources(&sources);
    for (field, column, value) in [
        ("name", "name", &c.name),
        ("jobTitle", "job_title", &c.job_title),
    ] {
        let Some(value) = value else { continue };
        let value = value.as_deref().map(str::trim).filter(|v| !v.is_empty());
        if value.is_some_and(|v| v.chars().count() > 500) {
            return Err(invalid(field, "at most 500 characters"));
        }
        tx.execute(
            &format!("UPDATE contacts SET {column} = ?2 WHERE id = ?1"),
            params![id, value],
        )
        .map_err(db)?;
        sources.insert(field.to_owned(), Value::from(origin));
    }
    if let Some(emails) = &c.emails {
        let mut seen = BTreeSet::new();
        let mut normal = Vec::new();
        for (i, raw) in emails.iter().enumerate() {
            let email = normalize_email(raw)
                .ok_or_else(|| invalid(format!("emails[{i}]"), "not an e-mail address"))?;
            if seen.insert(email.clone()) {
                normal.push((i, email));
            }
        }
        replace_keys(
            tx,
            path,
            id,
            "contact_emails",
            "email",
            "emails",
            &normal,
            origin,
        )?;
    }
    if let Some(phones) = &c.phones {
        let mut seen = BTreeSet::new();
        let mut normal = Vec::new();
        for (i, raw) in phones.iter().enumerate() {
            let phone = normalize_phone(raw).ok_or_else(|| {
                invalid(
                    format!("phones[{i}]"),
                    "not a phone number (digits, optionally a leading + and a country code)",
                )
            })?;
            if seen.insert(phone.clone()) {
                normal.push((i, phone));
            }
        }
        replace_keys(
            tx,
            path,
            id,
            "contact_phones",
            "phone",
            "phones",
            &normal,
            origin,
        )?;
    }
    if let Some(tags) = &c.tags {
        tx.execute("DELETE FROM contact_tags WHERE contact_id = ?1", [id])
            .map_err(db)?;
        for (i, tag) in tags.iter().enumerate() {
            let tag = tag.trim();
            if tag.is_empty() || tag.chars().count() > 100 {
                return Err(invalid(format!("tags[{i}]"), "1 to 100 characters"));
            }
            tx.execute(
                "INSERT OR IGNORE INTO contact_tags (contact_id, tag) VALUES (?1, ?2)",
                params![id, tag],
            )
            .map_err(db)?;
        }
    }
    if let Some(account) = &c.account {
        let account_id = match account {
            None => None,
            Some(AccountRef::Id(account)) => {
                let live: Option<i64> = tx
                    .query_row(
                        "SELECT id FROM accounts WHERE id = ?1 AND deleted_at IS NULL",
                        [account],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(db)?;
                Some(live.ok_or_else(|| invalid("account.id", format!("no account {account}")))?)
            }
            Some(AccountRef::Name(name)) => account_by_name(tx, name).map_err(db)?,
        };
        tx.execute(
            "UPDATE contacts SET account_id = ?2 WHERE id = ?1",
            params![id, account_id],
        )
        .map_err(db)?;
        sources.insert("account".to_owned(), Value::from(origin));
    }
    tx.execute(
        "UPDATE contacts SET sources = ?2 WHERE id = ?1",
        params![id, Value::Object(sources).to_string()],
    )
    .map_err(db)?;
    if c.emails.is_some() {
        link_account_by_domain(tx, id).map_err(db)?;
    }
    Ok(())
}

/// Replaces a contact's keys in `table`, refusing one that another contact has.
#[allow(clippy::too_many_arguments)]
fn replace_keys(
    tx: &Connection,
    path: &std::path::Path,
    id: i64,
    table: &'static str,
    column: &'static str,
    field: &str,
    values: &[(usize, String)],
    origin: &str,
) -> Result<(), RecordError> {
    let db = |e| db_error(path, e);
    for (i, value) in values {
        if let Some(owner) = owner_of(tx, table, column, value).map_err(db)?
            && owner != id
        {
            return Err(RecordError::Taken {
                field: format!("{field}[{i}]"),
                value: value.clone(),
                owner,
            });
        }
    }
    let wanted: BTreeSet<&str> = values.iter().map(|(_, v)| v.as_str()).collect();
    let current: Vec<String> = tx
        .prepare(&format!(
            "SELECT {column} FROM {table} WHERE contact_id = ?1"
        ))
        .and_then(|mut s| s.query_map([id], |r| r.get(0))?.collect())
        .map_err(db)?;
    for value in current.iter().filter(|v| !wanted.contains(v.as_str())) {
        tx.execute(&format!("DELETE FROM {table} WHERE {column} = ?1"), [value])
            .map_err(db)?;
    }
    for (_, value) in values {
        add_key(tx, table, column, value, id, origin).map_err(db)?;
    }
    Ok(())
}

/// Writes an account's domains and links the contacts they now cover (MB-01).
fn write_account(
    tx: &Connection,
    path: &std::path::Path,
    id: i64,
    a: &AccountChanges,
    _origin: &str,
    at: &str,
) -> Result<(), RecordError> {
    let db = |e| db_error(path, e);
    if let Some(name) = &a.name
        && (name.trim().is_empty() || name.chars().count() > 500)
    {
        return Err(invalid("name", "1 to 500 characters"));
    }
    let Some(domains) = &a.domains else {
        return Ok(());
    };
    tx.execute("DELETE FROM account_domains WHERE account_id = ?1", [id])
        .map_err(db)?;
    for (i, domain) in domains.iter().enumerate() {
        let domain = domain.trim().trim_start_matches('@').to_lowercase();
        let ok = !domain.is_empty()
            && domain.contains('.')
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
        if !ok {
            return Err(invalid(format!("domains[{i}]"), "not a domain name"));
        }
        tx.execute(
            "INSERT OR IGNORE INTO account_domains (account_id, domain) VALUES (?1, ?2)",
            params![id, domain],
        )
        .map_err(db)?;
    }
    // Contacts without an account whose addresses are in these domains.
    let candidates: Vec<i64> = tx
        .prepare(
            "SELECT DISTINCT e.contact_id FROM contact_emails e
             JOIN contacts k ON k.id = e.contact_id AND k.account_id IS NULL
             WHERE substr(e.email, instr(e.email, '@') + 1)
                   IN (SELECT domain FROM account_domains WHERE account_id = ?1)",
        )
        .and_then(|mut s| s.query_map([id], |r| r.get(0))?.collect())
        .map_err(db)?;
    for contact in candidates {
        if link_account_by_domain(tx, contact).map_err(db)? {
            touch(tx, "contacts", contact, at)
                .and_then(|()| {
                    journal(
                        tx,
                        RecordKind::Contact,
                        contact,
                        ChangeOp::Update,
                        _origin,
                        at,
                    )
                })
                .map_err(db)?;
        }
    }
    Ok(())
}

/// A JSON value as an SQL parameter (NULL, integer or text).
fn sql_value(v: &Value) -> rusqlite::types::Value {
    match v {
        Value::Null => rusqlite::types::Value::Null,
        Value::Number(n) => n.as_i64().map_or(
            rusqlite::types::Value::Null,
            rusqlite::types::Value::Integer,
        ),
        Value::String(s) => rusqlite::types::Value::Text(s.clone()),
        other => rusqlite::types::Value::Text(other.to_string()),
    }
}

/// The WHERE condition of a contact list over `contacts k` and its parameters ?1..?11; one
/// statement serves every filter (a NULL parameter switches its condition off).
fn contact_filter(q: &ContactQuery) -> (&'static str, Vec<Value>) {
    let condition = "k.deleted_at IS NULL
        AND (?1 IS NULL OR k.name LIKE '%' || ?1 || '%'
             OR EXISTS (SELECT 1 FROM contact_emails e WHERE e.contact_id = k.id
                        AND e.email LIKE '%' || ?1 || '%'))
        AND (?2 IS NULL OR k.id = (SELECT contact_id FROM contact_emails WHERE email = ?2))
        AND (?3 IS NULL OR k.id = (SELECT contact_id FROM contact_phones WHERE phone = ?3))
        AND (?4 IS NULL OR EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = k.id
                                   AND t.tag = ?4))
        AND (?5 IS NULL OR k.account_id = ?5)
        AND (?6 IS NULL OR k.updated_at >= ?6)
        AND (?7 IS NULL
             OR EXISTS (SELECT 1 FROM chat_identities i JOIN chats c ON c.identity_id = i.id
                        WHERE i.contact_id = k.id
                          AND (?11 = 1 OR c.operator = ?7
                               OR c.queue IN (SELECT value FROM json_each(?8))
                               OR EXISTS (SELECT 1 FROM chat_offers o
                                          WHERE o.chat_id = c.id AND o.operator = ?7)))
             OR EXISTS (SELECT 1 FROM email_contacts ec JOIN emails m ON m.id = ec.email_id
                        WHERE ec.contact_id = k.id
                          AND m.mailbox IN (SELECT value FROM json_each(?9)))
             OR EXISTS (SELECT 1 FROM record_changes r
                        WHERE r.origin = ?10 AND r.record_kind = 'contact'
                          AND r.record_id = k.id))";
    let viewer = q.viewer.as_ref();
    let json = |list: Option<&Vec<String>>| {
        Value::from(
            serde_json::to_string(list.map_or(&[][..], |l| l.as_slice())).unwrap_or_default(),
        )
    };
    let args = vec![
        q.q.clone().map_or(Value::Null, Value::from),
        q.email
            .as_deref()
            .map_or(Value::Null, |e| Value::from(e.trim().to_lowercase())),
        q.phone.as_deref().map_or(Value::Null, |p| {
            Value::from(normalize_phone(p).unwrap_or_else(|| p.to_owned()))
        }),
        q.tag.clone().map_or(Value::Null, Value::from),
        q.account.map_or(Value::Null, Value::from),
        q.updated_since
            .map_or(Value::Null, |at| Value::from(format_ts(at))),
        viewer.map_or(Value::Null, |v| Value::from(v.user.clone())),
        json(viewer.map(|v| &v.queues)),
        json(viewer.map(|v| &v.mailboxes)),
        viewer.map_or(Value::Null, |v| Value::from(format!("User/{}", v.user))),
        Value::from(i64::from(viewer.is_some_and(|v| v.all_chats))),
    ];
    (condition, args)
}

fn list_contacts(conn: &Connection, q: &ContactQuery) -> rusqlite::Result<(Vec<Contact>, usize)> {
    // A lookup by address or phone names at most one contact: find it through its key's
    // index first, so the list query reads one row by id instead of scanning every contact
    // (one prepared statement serves every filter, so its plan cannot depend on which are set).
    let mut only: Option<i64> = None;
    let keys = [
        (
            "contact_emails",
            "email",
            q.email.as_deref().map(|e| e.trim().to_lowercase()),
        ),
        (
            "contact_phones",
            "phone",
            q.phone
                .as_deref()
                .map(|p| normalize_phone(p).unwrap_or_else(|| p.to_owned())),
        ),
    ];
    for (table, column, value) in keys {
        let Some(value) = value else { continue };
        match owner_of(conn, table, column, &value)? {
            Some(id) if only.is_none_or(|o| o == id) => only = Some(id),
            _ => return Ok((Vec::new(), 0)),
        }
    }
    let (condition, mut args) = contact_filter(q);
    let (condition, first) = match only {
        Some(id) => {
            args.push(Value::from(id));
            (format!("k.id = ?12 AND {condition}"), 13)
        }
        None => (condition.to_owned(), 12),
    };
    let total: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM contacts k WHERE {condition}"
        ))?
        .query_row(
            rusqlite::params_from_iter(args.iter().map(sql_value)),
            |r| r.get(0),
        )?;
    args.push(Value::from(i64::try_from(q.limit).unwrap_or(i64::MAX)));
    args.push(Value::from(i64::try_from(q.offset).unwrap_or(i64::MAX)));
    let ids: Vec<i64> = conn
        .prepare_cached(&format!(
            "SELECT k.id FROM contacts k WHERE {condition} ORDER BY k.id LIMIT ?{first} OFFSET ?{}",
            first + 1
        ))?
        .query_map(
            rusqlite::params_from_iter(args.iter().map(sql_value)),
            |r| r.get(0),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(contact) = select_contact(conn, id)? {
            items.push(contact);
        }
    }
    Ok((items, usize::try_from(total).unwrap_or(0)))
}

fn strings(conn: &Connection, sql: &str, id: i64) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached(sql)?
        .query_map([id], |r| r.get(0))?
        .collect()
}

fn ts(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<DateTime<Utc>> {
    let text: String = row.get(index)?;
    parse_ts(&text).ok_or_else(|| bad(index))
}

pub(super) fn select_contact(conn: &Connection, id: i64) -> rusqlite::Result<Option<Contact>> {
    let Some(mut contact) = conn
        .prepare_cached(
            "SELECT k.id, k.name, k.job_title, k.account_id, a.name, k.version, k.created_at,
                    k.updated_at
             FROM contacts k LEFT JOIN accounts a ON a.id = k.account_id
             WHERE k.id = ?1 AND k.deleted_at IS NULL",
        )?
        .query_row([id], |r| {
            let account: Option<i64> = r.get(3)?;
            Ok(Contact {
                id: r.get(0)?,
                name: r.get(1)?,
                job_title: r.get(2)?,
                account: match account {
                    Some(id) => Some(AccountLink {
                        id,
                        name: r.get(4)?,
                    }),
                    None => None,
                },
                version: r.get(5)?,
                created_at: ts(r, 6)?,
                updated_at: ts(r, 7)?,
                emails: Vec::new(),
                phones: Vec::new(),
                tags: Vec::new(),
                identities: Vec::new(),
            })
        })
        .optional()?
    else {
        return Ok(None);
    };
    contact.emails = strings(
        conn,
        "SELECT email FROM contact_emails WHERE contact_id = ?1 ORDER BY rowid",
        id,
    )?;
    contact.phones = strings(
        conn,
        "SELECT phone FROM contact_phones WHERE contact_id = ?1 ORDER BY rowid",
        id,
    )?;
    contact.tags = strings(
        conn,
        "SELECT tag FROM contact_tags WHERE contact_id = ?1 ORDER BY tag",
        id,
    )?;
    contact.identities = conn
        .prepare_cached(
            "SELECT channel, external_id FROM chat_identities WHERE contact_id = ?1 ORDER BY id",
        )?
        .query_map([id], |r| {
            Ok(Identity {
                channel: r.get(0)?,
                external_id: r.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(contact))
}

fn select_account(conn: &Connection, id: i64) -> rusqlite::Result<Option<Account>> {
    let Some(mut account) = conn
        .prepare_cached(
            "SELECT id, name, version, created_at, updated_at FROM accounts
             WHERE id = ?1 AND deleted_at IS NULL",
        )?
        .query_row([id], |r| {
            Ok(Account {
                id: r.get(0)?,
                name: r.get(1)?,
                version: r.get(2)?,
                created_at: ts(r, 3)?,
                updated_at: ts(r, 4)?,
                domains: Vec::new(),
            })
        })
        .optional()?
    else {
        return Ok(None);
    };
    account.domains = strings(
        conn,
        "SELECT domain FROM account_domains WHERE account_id = ?1 ORDER BY domain",
        id,
    )?;
    Ok(Some(account))
}

fn list_accounts(conn: &Connection, q: &AccountQuery) -> rusqlite::Result<(Vec<Account>, usize)> {
    let condition = "a.deleted_at IS NULL
        AND (?1 IS NULL OR a.name LIKE '%' || ?1 || '%'
             OR EXISTS (SELECT 1 FROM account_domains d WHERE d.account_id = a.id
                        AND d.domain LIKE '%' || ?1 || '%'))
        AND (?2 IS NULL OR EXISTS (SELECT 1 FROM account_domains d WHERE d.account_id = a.id
                                   AND d.domain = ?2))
        AND (?3 IS NULL OR a.updated_at >= ?3)";
    let domain = q.domain.as_deref().map(|d| d.trim().to_lowercase());
    let since = q.updated_since.map(format_ts);
    let total: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM accounts a WHERE {condition}"
        ))?
        .query_row(params![q.q, domain, since], |r| r.get(0))?;
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
    let ids: Vec<i64> = conn
        .prepare_cached(&format!(
            "SELECT a.id FROM accounts a WHERE {condition} ORDER BY a.id LIMIT ?4 OFFSET ?5"
        ))?
        .query_map(params![q.q, domain, since, limit, offset], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(account) = select_account(conn, id)? {
            items.push(account);
        }
    }
    Ok((items, usize::try_from(total).unwrap_or(0)))
}

fn select_sync_record(
    conn: &Connection,
    condition: &str,
    sync: &str,
    kind: RecordKind,
    key: Value,
) -> rusqlite::Result<Option<SyncRecordState>> {
    conn.prepare_cached(&format!(
        "SELECT sync, record_kind, record_id, remote_id, remote_version, exported_seq
         FROM sync_records WHERE sync = ?1 AND record_kind = ?2 AND {condition}"
    ))?
    .query_row(params![sync, kind.as_str(), sql_value(&key)], |r| {
        let kind: String = r.get(1)?;
        Ok(SyncRecordState {
            sync: r.get(0)?,
            kind: RecordKind::parse(&kind).ok_or_else(|| bad(1))?,
            record_id: r.get(2)?,
            remote_id: r.get(3)?,
            remote_version: r.get(4)?,
            exported_seq: r.get(5)?,
        })
    })
    .optional()
}

fn list_leads(
    conn: &Connection,
    q: &LeadQuery,
    id: Option<i64>,
) -> rusqlite::Result<(Vec<Lead>, usize)> {
    let condition = "(?1 IS NULL OR integration IN (SELECT value FROM json_each(?1)))
        AND (?2 IS NULL OR form = ?2)
        AND (?3 IS NULL OR submitted_at >= ?3) AND (?4 IS NULL OR id = ?4)";
    let since = q.since.map(format_ts);
    let integrations = q
        .integrations
        .as_ref()
        .map(|list| Value::from(list.clone()).to_string());
    let total: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM leads WHERE {condition}"))?
        .query_row(params![integrations, q.form, since, id], |r| r.get(0))?;
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
    let items = conn
        .prepare_cached(&format!(
            "SELECT id, integration, form, linkedin_lead_id, submitted_at, columns, contact_id,
                    duplicate_of, created_at
             FROM leads WHERE {condition} ORDER BY submitted_at DESC, id DESC LIMIT ?5 OFFSET ?6"
        ))?
        .query_map(
            params![integrations, q.form, since, id, limit, offset],
            |r| {
                let columns: String = r.get(5)?;
                Ok(Lead {
                    id: r.get(0)?,
                    integration: r.get(1)?,
                    form: r.get(2)?,
                    linkedin_lead_id: r.get(3)?,
                    submitted_at: ts(r, 4)?,
                    columns: parse_sources(&columns),
                    contact_id: r.get(6)?,
                    duplicate_of: r.get(7)?,
                    created_at: ts(r, 8)?,
                })
            },
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok((items, usize::try_from(total).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::chat::NewContact;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid timestamp")
    }

    /// A chat message from `(channel, id)`; answers the identity's contact.
    fn chat(
        store: &mut Store,
        channel: &str,
        id: &str,
        name: &str,
        email: Option<&str>,
        phone: Option<&str>,
    ) -> i64 {
        let identity = store
            .chat_batch(|tx| {
                tx.contact(
                    NewContact {
                        channel,
                        external_id: id,
                        name,
                        email,
                        phone,
                    },
                    t(0),
                )
            })
            .expect("chat contact");
        store
            .conn
            .query_row(
                "SELECT contact_id FROM chat_identities WHERE id = ?1",
                [identity],
                |r| r.get(0),
            )
            .expect("identity linked")
    }

    /// A letter's sender as mail sees them.
    fn mail(store: &Store, mailbox: &str, email: &str, name: Option<&str>) -> i64 {
        let origin = format!("Mailbox/{mailbox}");
        let sighting = Sighting {
            origin: &origin,
            name,
            emails: vec![normalize_email(email).expect("address")],
            ..Sighting::default()
        };
        resolve_contact(&store.conn, &sighting, &format_ts(t(1))).expect("resolve")
    }

    fn account(store: &mut Store, name: &str, domains: &[&str]) -> i64 {
        let changes = AccountChanges {
            name: Some(name.to_owned()),
            domains: Some(domains.iter().map(|d| (*d).to_owned()).collect()),
        };
        store
            .create_account(&changes, "User/ann", t(2))
            .expect("account")
            .id
    }

    #[test]
    fn phones_are_normalised_to_e164_only_when_a_country_code_is_given() {
        let n = |p: &str| normalize_phone(p);
        assert_eq!(n("+1 (415) 555-0100").as_deref(), Some("+14155550100"));
        assert_eq!(n("0049 30 1234567").as_deref(), Some("+49301234567"));
        assert_eq!(
            n("whatsapp:+447700900123").as_deref(),
            Some("+447700900123")
        );
        assert_eq!(n("tel:+33.1.23.45.67.89").as_deref(), Some("+33123456789"));
        // No country code: the digits as given, never guessed into one.
        assert_eq!(n("030 1234567").as_deref(), Some("0301234567"));
        assert_eq!(n("+0123456789"), None);
        assert_eq!(n("+1234"), None);
        assert_eq!(n("+1234567890123456"), None);
        assert_eq!(n("call me"), None);
        assert_eq!(n("12+34"), None);
    }

    #[test]
    fn the_merge_policy_fills_empty_lets_a_source_replace_itself_and_ranks_operators_first() {
        assert!(takes_over(None, None, "Mailbox/a"));
        assert!(takes_over(Some(""), Some("User/ann"), "Mailbox/a"));
        assert!(takes_over(
            Some("Bob"),
            Some("ChatChannel/web"),
            "ChatChannel/web"
        ));
        assert!(!takes_over(
            Some("Bob"),
            Some("ChatChannel/web"),
            "ChatChannel/app"
        ));
        assert!(!takes_over(
            Some("Bob"),
            Some("User/ann"),
            "ChatChannel/web"
        ));
        assert!(!takes_over(
            Some("Bob"),
            Some("User/ann"),
            "ContactSync/google"
        ));
        assert!(takes_over(
            Some("Bob"),
            Some("ChatChannel/web"),
            "ContactSync/google"
        ));
        assert!(takes_over(
            Some("Bob"),
            Some("ContactSync/google"),
            "User/sue"
        ));
        assert!(takes_over(Some("Bob"), Some("User/ann"), "User/sue"));
    }

    #[test]
    fn a_person_on_two_channels_and_in_mail_is_one_contact_found_by_any_key() {
        let mut store = Store::open_in_memory().expect("store");
        let web = chat(
            &mut store,
            "web",
            "w1",
            "Bob",
            Some("Bob@Example.org"),
            None,
        );
        let app = chat(
            &mut store,
            "app",
            "a1",
            "Bobby",
            Some("bob@example.org"),
            Some("+1 415 555 0100"),
        );
        let letter = mail(&store, "sales", "BOB@example.org", Some("Robert"));
        let phone_only = chat(
            &mut store,
            "wa",
            "+14155550100",
            "B",
            None,
            Some("+14155550100"),
        );
        assert_eq!([app, letter, phone_only], [web; 3]);
        let contact = store.contact(web).expect("read").expect("contact");
        // The first name stays: the others came from other origins of the same rank.
        assert_eq!(contact.name.as_deref(), Some("Bob"));
        assert_eq!(contact.emails, ["bob@example.org"]);
        assert_eq!(contact.phones, ["+14155550100"]);
        let channels: Vec<_> = contact
            .identities
            .iter()
            .map(|i| i.channel.as_str())
            .collect();
        assert_eq!(channels, ["web", "app", "wa"]);
        // The same channel renames its own value.
        chat(&mut store, "web", "w1", "Bob Smith", None, None);
        let contact = store.contact(web).expect("read").expect("contact");
        assert_eq!(contact.name.as_deref(), Some("Bob Smith"));
        // A stranger is another contact.
        assert_ne!(chat(&mut store, "web", "w2", "Eve", None, None), web);
    }

    #[test]
    fn a_value_an_operator_set_is_not_overwritten_by_chat_or_mail() {
        let mut store = Store::open_in_memory().expect("store");
        let id = chat(
            &mut store,
            "web",
            "w1",
            "bob",
            Some("bob@example.org"),
            None,
        );
        let changes = ContactChanges {
            name: Some(Some("Robert Brown".into())),
            ..ContactChanges::default()
        };
        store
            .update_contact(id, None, &changes, "User/ann", t(3))
            .expect("update");
        chat(&mut store, "web", "w1", "bobby", None, None);
        mail(&store, "sales", "bob@example.org", Some("B. Brown"));
        let contact = store.contact(id).expect("read").expect("contact");
        assert_eq!(contact.name.as_deref(), Some("Robert Brown"));
    }

    #[test]
    fn the_journal_answers_what_changed_since_a_position_not_made_by_the_reader() {
        let mut store = Store::open_in_memory().expect("store");
        let start = store.last_change_seq().expect("seq");
        let bob = chat(&mut store, "web", "w1", "Bob", None, None);
        let changes = ContactChanges {
            job_title: Some(Some("CTO".into())),
            ..ContactChanges::default()
        };
        store
            .update_contact(bob, None, &changes, "ContactSync/google", t(4))
            .expect("import");
        store
            .update_contact(bob, None, &ContactChanges::default(), "User/ann", t(5))
            .expect("edit");
        let seen = store
            .changes_since(start, Some("ContactSync/google"), 100)
            .expect("changes");
        let ops: Vec<_> = seen.iter().map(|c| (c.op, c.origin.as_str())).collect();
        assert_eq!(
            ops,
            [
                (ChangeOp::Create, "ChatChannel/web"),
                (ChangeOp::Update, "User/ann")
            ]
        );
        assert!(seen.windows(2).all(|w| w[0].seq < w[1].seq));
        // A run with nothing new reads nothing.
        let last = store.last_change_seq().expect("seq");
        assert!(
            store
                .changes_since(last, None, 100)
                .expect("changes")
                .is_empty()
        );
        // An unchanged chat message writes no journal entry.
        chat(&mut store, "web", "w1", "Bob", None, None);
        assert_eq!(store.last_change_seq().expect("seq"), last);
    }

    #[test]
    fn sync_state_keeps_remote_id_version_and_exported_position_per_record() {
        let mut store = Store::open_in_memory().expect("store");
        let bob = chat(&mut store, "web", "w1", "Bob", None, None);
        let mut state = SyncRecordState {
            sync: "ContactSync/dav".into(),
            kind: RecordKind::Contact,
            record_id: bob,
            remote_id: "/card/bob.vcf".into(),
            remote_version: Some("\"e1\"".into()),
            exported_seq: 3,
        };
        store.set_sync_record(&state, t(0)).expect("set");
        state.remote_version = Some("\"e2\"".into());
        state.exported_seq = 7;
        store.set_sync_record(&state, t(1)).expect("replace");
        let read = store
            .sync_record("ContactSync/dav", RecordKind::Contact, bob)
            .expect("read");
        assert_eq!(read.as_ref(), Some(&state));
        let by_remote = store
            .sync_record_by_remote("ContactSync/dav", RecordKind::Contact, "/card/bob.vcf")
            .expect("read");
        assert_eq!(by_remote, Some(state));
        assert_eq!(
            store
                .sync_record("ContactSync/other", RecordKind::Contact, bob)
                .expect("read"),
            None
        );
    }

    // REQ: MB-01
    #[test]
    fn a_letter_links_its_sender_to_the_one_account_of_the_domain() {
        let mut store = Store::open_in_memory().expect("store");
        let acme = account(&mut store, "Acme", &["acme.test"]);
        account(&mut store, "Shared A", &["shared.test"]);
        account(&mut store, "Shared B", &["shared.test"]);
        let bob = mail(&store, "sales", "bob@acme.test", None);
        let eve = mail(&store, "sales", "eve@shared.test", None);
        let account_of = |store: &Store, id| store.contact(id).unwrap().unwrap().account;
        assert_eq!(account_of(&store, bob).map(|a| a.id), Some(acme));
        assert_eq!(
            account_of(&store, eve),
            None,
            "two accounts claim the domain"
        );
        // An account created later picks up the contacts of its domain.
        let carol = mail(&store, "sales", "carol@later.test", None);
        let later = account(&mut store, "Later", &["later.test"]);
        assert_eq!(account_of(&store, carol).map(|a| a.id), Some(later));
    }

    // REQ: CS-02
    #[test]
    fn an_imported_contact_links_to_the_one_account_of_its_company_name() {
        let mut store = Store::open_in_memory().expect("store");
        let acme = account(&mut store, "Acme", &[]);
        account(&mut store, "Twin", &[]);
        account(&mut store, "twin", &[]);
        let bob = chat(&mut store, "web", "w1", "Bob", None, None);
        let eve = chat(&mut store, "web", "w2", "Eve", None, None);
        let linked = store
            .link_contact_to_company(bob, "ACME", "ContactSync/google", t(5))
            .expect("link");
        assert!(linked);
        assert_eq!(
            store.contact(bob).unwrap().unwrap().account.map(|a| a.id),
            Some(acme)
        );
        let linked = store
            .link_contact_to_company(eve, "Twin", "ContactSync/google", t(5))
            .expect("link");
        assert!(!linked, "two accounts share the name");
        assert_eq!(store.contact(eve).unwrap().unwrap().account, None);
    }

    #[test]
    fn a_deleted_contact_releases_its_keys_and_keeps_its_links() {
        let mut store = Store::open_in_memory().expect("store");
        let bob = chat(
            &mut store,
            "web",
            "w1",
            "Bob",
            Some("bob@example.org"),
            None,
        );
        store
            .delete_contact(bob, None, "User/ann", t(6))
            .expect("delete");
        assert_eq!(store.contact(bob).expect("read"), None);
        let again = mail(&store, "sales", "bob@example.org", None);
        assert_ne!(again, bob, "a new letter makes a new contact");
        let linked = |store: &Store| -> i64 {
            store
                .conn
                .query_row(
                    "SELECT contact_id FROM chat_identities WHERE external_id = 'w1'",
                    [],
                    |r| r.get(0),
                )
                .expect("identity")
        };
        assert_eq!(linked(&store), bob, "the chat keeps its contact");
        // The person writes again: the identity joins the live contact of the address.
        assert_eq!(
            chat(
                &mut store,
                "web",
                "w1",
                "Bob",
                Some("bob@example.org"),
                None
            ),
            again
        );
        assert_eq!(linked(&store), again);
    }

    #[test]
    fn a_stale_version_and_a_taken_address_are_refused() {
        let mut store = Store::open_in_memory().expect("store");
        let bob = chat(
            &mut store,
            "web",
            "w1",
            "Bob",
            Some("bob@example.org"),
            None,
        );
        let eve = chat(&mut store, "web", "w2", "Eve", None, None);
        let version = store.contact(eve).unwrap().unwrap().version;
        let take = ContactChanges {
            emails: Some(vec!["BOB@example.org".into()]),
            ..ContactChanges::default()
        };
        let err = store
            .update_contact(eve, Some(version), &take, "User/ann", t(7))
            .unwrap_err();
        assert!(
            matches!(&err, RecordError::Taken { field, owner, .. } if field == "emails[0]" && *owner == bob),
            "{err:?}"
        );
        let err = store
            .update_contact(
                eve,
                Some(version + 1),
                &ContactChanges::default(),
                "User/ann",
                t(7),
            )
            .unwrap_err();
        assert!(matches!(err, RecordError::Stale { .. }), "{err:?}");
        let bad = ContactChanges {
            phones: Some(vec!["+1 555".into(), "call me".into()]),
            ..ContactChanges::default()
        };
        let err = store
            .update_contact(eve, None, &bad, "User/ann", t(7))
            .unwrap_err();
        assert!(
            matches!(&err, RecordError::Invalid { field, .. } if field == "phones[0]"),
            "{err:?}"
        );
    }

    #[test]
    fn leads_are_stored_once_per_integration_and_linkedin_id() {
        let mut store = Store::open_in_memory().expect("store");
        let lead = NewLead {
            integration: "ads".into(),
            form: "f1".into(),
            linkedin_lead_id: "urn:li:lead:1".into(),
            submitted_at: t(0),
            columns: serde_json::json!({"Email": "bob@example.org"})
                .as_object()
                .cloned()
                .expect("object"),
            contact_id: None,
            duplicate_of: None,
        };
        let (id, new) = store
            .insert_lead(&lead, "LeadIntegration/ads", t(1))
            .expect("lead");
        assert!(new);
        assert_eq!(
            store
                .insert_lead(&lead, "LeadIntegration/ads", t(2))
                .expect("again"),
            (id, false)
        );
        let (leads, total) = store
            .leads(&LeadQuery {
                integrations: Some(vec!["ads".into()]),
                limit: 10,
                ..LeadQuery::default()
            })
            .expect("list");
        assert_eq!((leads.len(), total), (1, 1));
        assert_eq!(
            store.lead(id).expect("read").map(|l| l.form),
            Some("f1".into())
        );
    }
}
