//! Mail: providers and mailboxes made into running connectors, IMAP sync, MIME parsing.
//!
//! - [`access`]: who may read and send with a mailbox (MB-04).
//! - [`mailbox`]: the `Mailbox` connector — resolves its provider (EP-07), login (EP-03) and
//!   folders (MB-02) from the config, and runs one sync through [`imap`].
//! - [`graph`]: Microsoft 365 through Microsoft Graph — delta sync and `sendMail` (EP-05).
//! - [`idle`]: IMAP IDLE on INBOX, which requests the mailbox's sync when mail arrives.
//! - [`imap`]: connect (TLS / STARTTLS / plain), log in, list and sync folders from their
//!   checkpoints in pipelined batches.
//! - [`sessions`]: at most [`sessions::MAX_BUSY`] mailboxes sync or open IDLE at once.
//! - [`tls`]: rustls (ring) with Web PKI roots plus a provider's `caFile`.
//! - [`sent`]: filing sent mail in the server's Sent folder (APPEND, MB-03).
//! - [`smtp`]: composing (alias, signature) and delivering queued mail with lettre.
//! - [`mime`]: raw message → headers, capped bodies, attachment metadata.
//! - [`oauth`]: OAuth 2.0 access tokens (refresh grant, sealed at rest) and XOAUTH2.
//! - [`consent`]: the authorization-code flow — signed `state`, consent URL, code exchange.
//!
//! This module must not run SQL (it calls the store's mail API), build HTTP DTOs, or read
//! secrets itself: the engine resolves them and hands them over in the sync context.

pub mod access;
pub mod consent;
pub mod graph;
pub mod idle;
pub mod imap;
pub mod mailbox;
pub mod mime;
pub mod oauth;
pub mod sent;
pub mod sessions;
pub mod smtp;
pub mod tls;

pub use mailbox::{
    ConsentTarget, MailboxConnector, MailboxConnectors, build, consent_target, oauth_grant,
};
