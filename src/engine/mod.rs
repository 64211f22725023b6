//! TODO module engine
