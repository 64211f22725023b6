//! `switchboard status`: every applied object's state, read from the store.
