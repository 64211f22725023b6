//! Making committed transactions durable apart from their commit: the chat writer's pipelined
//! group commit.
//!
//! With `synchronous=FULL` (the store's default) SQLite fsyncs the write-ahead log inside every
//! COMMIT, so the single writer sits idle for the whole disk flush and no batch can form
//! behind it. The chat writer instead commits with `synchronous=NORMAL` (the frames reach the
//! operating system: a killed process loses nothing) and hands the batch to a syncer that
//! fsyncs the log through its own descriptor while the writer executes the next batch. Each
//! batch is acknowledged only after a flush that started after its commit, which is exactly
//! the guarantee `synchronous=FULL` gives: an acknowledged message survives a power loss too.
//! One flush covers every batch committed before it, and the log is append-only between
//! checkpoints (which SQLite syncs itself), so batches become durable in commit order.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::StoreError;

/// Flushes a store's write-ahead log to disk. Made by [`super::Store::wal_sync`].
#[derive(Debug)]
pub struct WalSync {
    /// `<state file>-wal`.
    path: PathBuf,
    /// The log, opened at the first flush (SQLite creates it with the first write).
    file: Option<File>,
}

impl WalSync {
    pub(super) fn new(path: PathBuf) -> WalSync {
        WalSync { path, file: None }
    }

    /// Flushes every transaction committed so far to disk.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        let io = |source: std::io::Error| StoreError::Database {
            path: self.path.clone(),
            source: format!("cannot flush the write-ahead log to disk: {source}").into(),
        };
        let current = std::fs::metadata(&self.path).map_err(io)?;
        // SQLite keeps the log's inode while the store is open; reopen if it ever changes, so
        // a flush never goes to a file that is no longer the log.
        let stale = match &self.file {
            Some(file) => file.metadata().map_err(io)?.ino() != current.ino(),
            None => true,
        };
        if stale {
            self.file = Some(File::open(&self.path).map_err(io)?);
        }
        match &self.file {
            Some(file) => file.sync_data().map_err(io),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;

    #[test]
    fn a_file_store_flushes_its_log_and_an_in_memory_one_has_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("state.db")).expect("store");
        store
            .chat_batch_unsynced(|tx| tx.exec_for_tests("CREATE TABLE t (x)"))
            .expect("commit");
        let mut wal = store.wal_sync().expect("a file store has a log");
        wal.sync().expect("flush");
        wal.sync().expect("flush again through the same descriptor");
        assert!(Store::open_in_memory().expect("store").wal_sync().is_none());
    }

    #[test]
    fn an_unsynced_batch_leaves_the_store_fully_synchronous_afterwards() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("state.db")).expect("store");
        assert_eq!(store.synchronous_for_tests(), 2, "FULL by default");
        store
            .chat_batch_unsynced(|tx| tx.exec_for_tests("CREATE TABLE t (x)"))
            .expect("commit");
        assert_eq!(
            store.synchronous_for_tests(),
            2,
            "FULL again after the batch"
        );
        let failed: Result<(), _> = store.chat_batch_unsynced(|tx| {
            tx.exec_for_tests("INSERT INTO t VALUES (1)")?;
            tx.exec_for_tests("INSERT INTO no_such_table VALUES (1)")
        });
        assert!(failed.is_err());
        assert_eq!(
            store.synchronous_for_tests(),
            2,
            "FULL again after a failed batch"
        );
    }
}
