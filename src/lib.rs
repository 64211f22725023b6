//! Switchboard: a declarative, config-driven sync daemon for a company's communication
//! integrations (chat channels and queues, mail, contact and calendar sync, lead capture).
//!
//! Admins keep YAML manifests in Git; Switchboard validates them against JSON Schemas generated
//! from the Rust types in [`config`], previews changes against the applied state ([`plan`]),
//! and runs them as a daemon ([`engine`]) that records what it applied and how each object is
//! doing in one SQLite file ([`store`]), serves webhooks and the operator API ([`http`]) and
//! exposes Prometheus metrics ([`telemetry`]).
//!
//! # Layout
//! Layers point one way: `cli → daemon → engine, chat, mail, http`; the engine and the domains
//! (`chat`, `mail`, `http`, ...) never import each other but meet in the [`connector`] contract,
//! a leaf over `config`, `store`, `telemetry` and `clock` (`tests/tidy.rs` keeps it so).
//! `ARCHITECTURE.md` at the top of the repository is the map.
//!
//! - [`config`]: the manifest model, the loader that keeps line/column for every node,
//!   cross-reference checks and diagnostics. Pure: no I/O beyond reading the files.
//! - [`plan`]: desired vs applied, object by object, field by field. Pure.
//! - [`chat`]: the chat engine: channels, routing, durable timers, the outbox (a domain the
//!   engine runs).
//! - [`store`]: the only module that runs SQL; [`store::StoreHandle`] shares it with tasks.
//! - [`clock`]: the injected wall clock (system, or tokio's pausable clock in tests).
//! - [`connector`]: the connector contract (trait, contexts, per-kind `KindConnectors`,
//!   registry, the running set's read handle, secret resolution).
//! - [`daemon`]: the composition root: wires chat, mail and http to the engine; `run`.
//! - [`engine`]: the running set: apply, reload, scheduler, shutdown, sd_notify.
//! - [`http`]: axum router, auth, error JSON, `/metrics`.
//! - [`mail`]: the Mailbox connector: IMAP sync and IDLE, SMTP, Microsoft Graph, OAuth 2.0.
//! - [`sync`]: contact sync with CardDAV servers: the `ContactSync` connector over a
//!   `DavAccount` (issue 14).
//! - [`telemetry`]: tracing setup and every metric, defined in one place.
//! - [`net`]: outbound HTTP clients, all able to speak HTTPS.
//! - [`cli`]: one file per verb.

pub mod chat;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connector;
pub mod daemon;
pub mod engine;
pub mod http;
pub mod leads;
pub mod mail;
pub mod net;
pub mod plan;
pub mod store;
pub mod sync;
pub mod telemetry;
