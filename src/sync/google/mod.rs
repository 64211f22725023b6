//! Google's APIs under the sync engine: the Calendar API (`calendar.rs`, a `CalendarRemote`).
//!
//! *Must not*: know the record store (the engine does), or read secrets (a `TokenProvider`
//! hands out bearer tokens).

pub mod calendar;
