//! TODO module http
