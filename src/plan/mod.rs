//! TODO module plan
