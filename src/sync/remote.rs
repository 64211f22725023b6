//! The wire side of a two-way sync: what a provider (CardDAV / CalDAV, Google's People and
//! Calendar APIs, Microsoft Graph) implements so that one engine — pull, push, conflicts,
//! deletes, checkpoints, the run record — runs unchanged over it.
//!
//! The engine (`contacts.rs`, `calendar.rs`) owns everything about the record store: which
//! record a remote item is (its link), what changed on which side since the last run, the
//! conflict policy, the delete policy, the journal position it exported up to. A remote owns
//! only the provider's wire format: how to list changes (a sync token, a delta link, an ETag
//! listing), how to read an item, how to write one conditionally, and the provider's fields
//! translated to the neutral ones ([`CardFields`] for contacts, [`ical::Fields`] for events and
//! tasks).
//!
//! Crash safety is shared: the engine stores a page's cursor only after the page's items are
//! imported, and links a written item only after the provider accepted it; a remote makes a
//! create idempotent (a client-chosen id, or the item found again by the `uid` the engine
//! passes), so a crash between a write and its link makes no second copy.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::connector::{ConnectorError, SyncContext};

use super::ical;
use super::vcard::CardFields;

/// The boxed future every remote method returns.
pub type RemoteFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, RemoteError>> + Send + 'a>>;

/// Why a remote call failed. Never carries a token or a secret.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The stored cursor or sync token is no longer valid (DAV `valid-sync-token`, Google's
    /// `410` / `EXPIRED_SYNC_TOKEN`, Graph's `410` / `syncStateNotFound`): the engine lists the
    /// folder again from the start, which duplicates nothing (items are found by their link).
    #[error("the sync token expired")]
    TokenExpired,
    /// The provider throttled (429): the run ends here and the scheduler retries after
    /// `retry_after`. Whatever was imported before stays, with its cursor.
    #[error("{message}")]
    Throttled {
        /// What was throttled.
        message: String,
        /// The provider's `Retry-After`.
        retry_after: Duration,
    },
    /// Anything else: the run fails and is retried with backoff.
    #[error("{0}")]
    Failed(String),
    /// The run's cancellation token fired.
    #[error("interrupted")]
    Cancelled,
}

impl From<RemoteError> for ConnectorError {
    fn from(e: RemoteError) -> ConnectorError {
        match e {
            RemoteError::Throttled {
                message,
                retry_after,
            } => ConnectorError::Throttled {
                message,
                retry_after,
            },
            RemoteError::Cancelled => ConnectorError::Cancelled,
            other => ConnectorError::Failed(other.to_string()),
        }
    }
}

/// One item as the provider holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteItem<F> {
    /// The provider's id for it (an href, `people/c123`, a Graph id): the link's remote id.
    pub id: String,
    /// Its version (ETag, `etag`, `@odata.etag` / change key), sent back on a conditional write.
    pub version: Option<String>,
    /// The provider's own representation (vCard, iCalendar, JSON), kept with the link so a
    /// later write changes only what the engine models and a no-change write is skipped.
    pub data: String,
    /// The neutral fields read from `data`.
    pub fields: F,
}

/// An entry of a listing page.
#[derive(Debug, Clone, PartialEq)]
pub enum Listed<F> {
    /// The item itself (APIs that list whole items: Google, Graph).
    Item(RemoteItem<F>),
    /// Only its id and version (DAV `sync-collection`): the engine reads the ones whose version
    /// differs from the one it last saw, with [`ContactRemote::read`] / [`CalendarRemote::read`].
    Version {
        /// The item's id.
        id: String,
        /// Its version, when the listing gave one.
        version: Option<String>,
    },
}

impl<F> Listed<F> {
    /// The listed item's id.
    pub fn id(&self) -> &str {
        match self {
            Listed::Item(item) => &item.id,
            Listed::Version { id, .. } => id,
        }
    }
}

/// Where the next page of a listing starts, or that the listing is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// More pages: the cursor of the next one (a page token, an `@odata.nextLink`), stored as the
    /// folder's checkpoint once this page's items are in.
    More(String),
    /// The listing is complete: the token the next run starts from (`None`: the provider gives
    /// none, and the next run lists everything again).
    Done(Option<String>),
}

/// One page of a folder's changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<F> {
    /// Items new or changed (or, in a full listing, every item).
    pub items: Vec<Listed<F>>,
    /// Ids of items removed there (a delta's tombstones).
    pub removed: Vec<String>,
    /// What follows.
    pub next: Next,
    /// This listing is a full one (no token was given, or it expired): linked items of the folder
    /// it does not list, over all its pages, were removed there.
    pub full: bool,
}

/// Where a listing starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor<'a> {
    /// From the beginning (no checkpoint, or the token expired).
    Start,
    /// From the token a completed listing gave ([`Next::Done`]).
    Token(&'a str),
    /// From the next page of a listing that was interrupted ([`Next::More`]).
    Page(&'a str),
}

/// A folder (address book, contact group, calendar, task list) the sync covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// The provider's id for it: the key of its checkpoint, passed back to every call.
    pub id: String,
    /// What an operator calls it (display name), for messages.
    pub name: String,
}

/// The outcome of a conditional write or delete.
#[derive(Debug, Clone, PartialEq)]
pub enum Written<F> {
    /// Done: the item as the provider now holds it (for a delete, `None`).
    Done(Option<RemoteItem<F>>),
    /// The item changed there since `version` (a stale ETag: 412, Google's
    /// `FAILED_PRECONDITION`): the engine reads it again, resolves by policy and writes again.
    Conflict,
    /// The item is gone there (404 / 410 on write): CS-05 applies.
    Gone,
    /// A create found the item an earlier attempt made under the same `Write.uid` (a crash
    /// between the provider's write and the link here): the engine links it and writes again
    /// as an update.
    Exists(RemoteItem<F>),
}

/// An item the engine writes: the linked item as last seen (`None`: create), and the fields it
/// should hold.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a, F> {
    /// The folder to create in (the first selected one); an update stays where the item is.
    pub folder: &'a Folder,
    /// The linked item as last seen (id, version, data), or `None` to create.
    pub current: Option<&'a RemoteItem<F>>,
    /// The fields to write.
    pub fields: &'a F,
    /// A stable id for a create, the same on every attempt for this record (a DAV resource
    /// name and UID, a Graph `transactionId`, a Google external id): a create retried after a
    /// crash must not make a second item.
    pub uid: &'a str,
}

/// The wire side of a `ContactSync`.
pub trait ContactRemote: Send + Sync {
    /// The folders to import from (`import.folders` applied), the first being where new
    /// contacts are created. Called once a run; a remote may remember its discovery.
    fn folders<'a>(&'a self, ctx: &'a SyncContext<'a>) -> RemoteFuture<'a, Vec<Folder>>;

    /// One page of `folder`'s changes from `cursor`.
    fn list<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        folder: &'a Folder,
        cursor: Cursor<'a>,
    ) -> RemoteFuture<'a, Page<CardFields>>;

    /// Reads items listed by version only. Items gone since are left out.
    fn read<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        folder: &'a Folder,
        ids: &'a [String],
    ) -> RemoteFuture<'a, Vec<RemoteItem<CardFields>>>;

    /// Reads one item again (after a conflict); `None` when it is gone.
    fn get<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        id: &'a str,
    ) -> RemoteFuture<'a, Option<RemoteItem<CardFields>>>;

    /// The neutral fields of an item's stored representation ([`RemoteItem::data`] as kept with
    /// the link): what the engine compares a contact with before writing.
    fn decode(&self, data: &str) -> CardFields;

    /// Whether linked item `id` belongs to `folder` (a full listing of the folder that does not
    /// list it means it was removed there). The default: ids are prefixed with the folder's id.
    fn holds(&self, folder: &Folder, id: &str) -> bool {
        id.starts_with(&folder.id)
    }

    /// Creates or updates (conditionally on `current.version`) an item.
    fn write<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        write: Write<'a, CardFields>,
    ) -> RemoteFuture<'a, Written<CardFields>>;

    /// Deletes (conditionally on `version`) an item.
    fn delete<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        id: &'a str,
        version: Option<&'a str>,
    ) -> RemoteFuture<'a, Written<CardFields>>;

    /// Takes an item out of the sync without deleting it there, for a contact that left the
    /// sync here (lost the `google.tag` marker, or was deleted with `deletes: keep` semantics
    /// for a provider whose sync is a membership): Google removes it from the contact group.
    /// The default has nothing to do.
    fn release<'a>(
        &'a self,
        _ctx: &'a SyncContext<'a>,
        _item: &'a RemoteItem<CardFields>,
    ) -> RemoteFuture<'a, Written<CardFields>> {
        Box::pin(async { Ok(Written::Done(None)) })
    }

    /// Requests made so far (for the run's log line and the benches).
    fn requests(&self) -> u64;
}

/// The wire side of a `CalendarSync`: meetings and tasks, as for contacts.
pub trait CalendarRemote: Send + Sync {
    /// The folders to import from: meeting calendars (`importMeetings.calendars`) and task
    /// lists (`importTasks.folders`), each with the kind it holds.
    fn folders<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
    ) -> RemoteFuture<'a, Vec<(Folder, ical::ItemKind)>>;

    /// One page of `folder`'s changes from `cursor` (the engine applies `since` to items it has
    /// not linked yet; a remote may also pass it to the provider).
    fn list<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        folder: &'a Folder,
        cursor: Cursor<'a>,
    ) -> RemoteFuture<'a, Page<ical::Fields>>;

    /// Reads items listed by version only.
    fn read<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        folder: &'a Folder,
        ids: &'a [String],
    ) -> RemoteFuture<'a, Vec<RemoteItem<ical::Fields>>>;

    /// Reads one item again; `None` when it is gone.
    fn get<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        id: &'a str,
    ) -> RemoteFuture<'a, Option<RemoteItem<ical::Fields>>>;

    /// The neutral fields of an item's stored representation ([`RemoteItem::data`] as kept with
    /// the link), to hand back as [`Write::current`]; `None` when it holds no event or task.
    fn decode(&self, data: &str) -> Option<ical::Fields>;

    /// Whether linked item `id` belongs to `folder` (a full listing of the folder that does not
    /// list it means it was removed there). The default: ids are prefixed with the folder's id.
    fn holds(&self, folder: &Folder, id: &str) -> bool {
        id.starts_with(&folder.id)
    }

    /// Creates or updates an item; `notify` is who the provider may send invitations or updates
    /// to (BX-03), already decided by the engine from `invitations`. An update that would
    /// change nothing the provider holds may be skipped: then `Done` with `current` as it was
    /// (the engine counts no write and keeps the link as it is).
    fn write<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        write: Write<'a, ical::Fields>,
        notify: Notify,
    ) -> RemoteFuture<'a, Written<ical::Fields>>;

    /// Deletes an item (conditionally on `version`).
    fn delete<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        id: &'a str,
        version: Option<&'a str>,
        notify: Notify,
    ) -> RemoteFuture<'a, Written<ical::Fields>>;

    /// Requests made so far.
    fn requests(&self) -> u64;
}

/// Who a write may notify (BX-03's `invitations`, as the provider says it: Google's
/// `sendUpdates=none|externalOnly|all`, CalDAV's `SCHEDULE-AGENT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    /// Nobody.
    None,
    /// Only participants outside the company.
    External,
    /// Everyone.
    All,
}

/// Where a provider client gets its bearer token (a GoogleAccount's grant, a Microsoft 365
/// mailbox's grant); a test hands out a fixed one.
pub trait TokenProvider: Send + Sync {
    /// A valid access token; with `fresh`, a new one (the last was refused with 401).
    fn token<'a>(&'a self, ctx: &'a SyncContext<'a>, fresh: bool) -> RemoteFuture<'a, String>;
}
