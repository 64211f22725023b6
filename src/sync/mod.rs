//! Contact and calendar sync with CardDAV / CalDAV servers (issue 14, BX-01): the
//! `ContactSync` and `CalendarSync` connectors over a `DavAccount`.
//!
//! - `dav.rs`: the WebDAV client (discovery, `sync-collection`, multiget, conditional writes).
//! - `vcard.rs`: vCard 3.0 / 4.0 to and from the store's contact fields, patching only the
//!   modelled properties.
//! - `contacts.rs`: the connector (pull, push, conflicts, deletes) and its `KindConnectors`.
//! - `dav/caldav.rs`: CalDAV discovery, `calendar-multiget`, iCalendar writes (BX-03).
//! - `ical.rs`: iCalendar VEVENT / VTODO to and from the store's activity fields, patching only
//!   the modelled properties.
//! - `calendar.rs`: the `CalendarSync` connector and its `KindConnectors`: the engine (pull,
//!   push, conflicts, deletes, checkpoints) over a `CalendarRemote`, picked by the account's
//!   kind (`remote_for`).
//! - `dav/calendar_remote.rs`: the CalDAV `CalendarRemote` (discovery, `sync-collection` or
//!   ETag listings, `calendar-multiget`, conditional writes with `SCHEDULE-AGENT`).
//! - `remote.rs`: the wire-side contract (`ContactRemote`, `CalendarRemote`) each provider
//!   implements under the one engine.
//! - `graph/`: Microsoft Graph (a Mailbox on `microsoft365`): the shared client (`mod.rs`:
//!   base URL, bearer and refresh, throttling, delta links, errors) and the contacts remote.
//! - `google/`: Google's APIs on one small client (`mod.rs`: base URL, bearer, 401 retry, 429,
//!   error answers); `google/people.rs`: the People API as a `ContactRemote` (CS-03..05).
//! - `checkpoints.rs`: a sync's checkpoints (tokens, cursors, remembered discovery), read and
//!   written from a run.
//! - `report.rs`: a run's conflicts, progress and run record, shared by the sync connectors.
//! - `tokens.rs`: the bearer tokens of the Google and Microsoft 365 clients (a GoogleAccount's
//!   grant, a microsoft365 Mailbox's), Google's API bases, and a GoogleAccount's consent target.
//! - `google/calendar.rs`: Google Calendar API v3 as a `CalendarRemote` (events, sync tokens,
//!   etags, `sendUpdates`).
//!
//! *Must not*: run SQL (it calls the store), build DTOs, read secrets outside the connector's
//! build (the DavAccount's password is resolved there, at apply), or read `Utc::now()` (time
//! comes from `SyncContext.clock`).

pub mod calendar;
pub mod checkpoints;
pub mod company;
pub mod contacts;
pub mod dav;
pub mod google;
pub mod graph;
pub mod ical;
pub mod remote;
pub mod report;
pub mod tokens;
pub mod vcard;

pub use calendar::{CalendarSyncConnector, CalendarSyncConnectors};
pub use contacts::{ContactSyncConnector, ContactSyncConnectors};
