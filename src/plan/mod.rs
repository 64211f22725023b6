//! Plan: being built.
