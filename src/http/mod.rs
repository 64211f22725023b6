//! HTTP: being built.
