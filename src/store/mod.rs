//! TODO module store
