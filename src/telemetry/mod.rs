//! Telemetry: tracing initialisation and every Prometheus metric of Switchboard, in one place.
//!
//! - [`logging`]: installs the process-wide `tracing` subscriber (text or JSON on stderr, filter
//!   from `RUST_LOG`, default `info`).
//! - [`disk`]: the state file's disk-full episodes, logged once each.
//! - [`grants`]: OAuth grant health: which grants need consent again, and the
//!   `oauth.reauth-needed` announcements.
//! - [`metrics`]: [`Metrics`] owns the registry and a typed handle for each metric, renders the
//!   Prometheus text format, and drops the series of objects that left the config.
//!
//! Must not: serve HTTP (the `http` module mounts `/metrics` and calls [`Metrics::render`]),
//! touch the store, or take label values from anything but config names (never user data:
//! no message text, addresses, raw paths or secrets).

pub mod disk;
pub mod grants;
pub mod logging;
pub mod metrics;

pub use logging::{LogFormat, init};
pub use metrics::Metrics;
