//! `switchboard plan`.
