//! Two-way sync state beyond what `records.rs` keeps per record (migration `0012_sync_state`):
//! the item as the remote side last had it (`sync_records.remote_data`, so an export patches
//! only the properties Switchboard models), per-sync checkpoints by scope (a collection's sync
//! token, the journal position exported up to), and the one transaction in which an imported
//! remote contact is found or created, written and linked to its remote item.
//!
//! A sync object's *run record* lives among its checkpoints too (scopes `run`, `conflicts`,
//! `progress`): what its last successful run moved, the conflicts it resolved in all, and how
//! far the run in progress got ([`SyncRunRecord`], written through `sync::report`). No
//! migration: checkpoints are key/value by design.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::records::{
    ChangeOp, Contact, ContactChanges, RecordError, RecordKind, Sighting, SyncRecordState, journal,
    resolve_contact, select_contact, touch, write_contact,
};
use super::{Store, StoreError, db_error, format_ts};

/// A contact as a sync read it from its remote side.
#[derive(Debug, Clone)]
pub struct RemoteContact<'a> {
    /// The sync object, as its origin (`ContactSync/home`).
    pub sync: &'a str,
    /// The item's id there (a DAV href).
    pub remote_id: &'a str,
    /// Its version there (ETag).
    pub version: Option<&'a str>,
    /// The item as read (a vCard), kept to patch on export.
    pub data: &'a str,
    /// The fields it carries, as the store writes them (lists already normalised).
    pub changes: ContactChanges,
}

/// How far a sync's current run got: items done of the items known to need work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncProgress {
    /// Items read or written so far in this run.
    pub done: u64,
    /// Items this run knows it has to read or write.
    pub known: u64,
}

/// What a sync object's runs recorded beside the engine's object status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncRunRecord {
    /// Items read in the last successful run.
    pub last_in: u64,
    /// Items written in the last successful run.
    pub last_out: u64,
    /// Conflicts resolved in the last successful run.
    pub last_conflicts: u64,
    /// Conflicts resolved in all runs.
    pub conflicts_total: u64,
    /// The run in progress, while one runs.
    pub progress: Option<SyncProgress>,
}

const SCOPE_RUN: &str = "run";
const SCOPE_CONFLICTS: &str = "conflicts";
const SCOPE_PROGRESS: &str = "progress";

/// `"a b"` or `"a b c"` as numbers (the run record's checkpoint values).
fn numbers(text: &str) -> Vec<u64> {
    text.split_whitespace()
        .map(|n| n.parse().unwrap_or(0))
        .collect()
}

impl Store {
    /// Records the end of a sync's run: the last run's counts, `conflicts` added to the
    /// total (those of a failed run too: they were resolved), the progress cleared. A failed
    /// run (`moved` is `None`) keeps the last successful run's counts.
    pub fn record_sync_run(
        &mut self,
        sync: &str,
        moved: Option<(u64, u64)>,
        conflicts: u64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.ensure_writable()?;
        let total = self
            .sync_checkpoint(sync, SCOPE_CONFLICTS)?
            .map_or(0, |t| numbers(&t).first().copied().unwrap_or(0))
            .saturating_add(conflicts);
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| db_error(&path, e))?;
        let set = |scope: &str, value: Option<String>| match value {
            Some(value) => tx.execute(
                "INSERT INTO sync_checkpoints (sync, scope, value, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (sync, scope) DO UPDATE SET
                    value = excluded.value, updated_at = excluded.updated_at",
                params![sync, scope, value, format_ts(at)],
            ),
            None => tx.execute(
                "DELETE FROM sync_checkpoints WHERE sync = ?1 AND scope = ?2",
                params![sync, scope],
            ),
        };
        let result = (|| {
            if let Some((items_in, items_out)) = moved {
                set(
                    SCOPE_RUN,
                    Some(format!("{items_in} {items_out} {conflicts}")),
                )?;
            }
            set(SCOPE_CONFLICTS, Some(total.to_string()))?;
            set(SCOPE_PROGRESS, None)
        })();
        result.map_err(|e| db_error(&path, e))?;
        tx.commit().map_err(|e| db_error(&path, e))
    }

    /// Sets how far the run in progress of `sync` got.
    pub fn set_sync_progress(
        &mut self,
        sync: &str,
        progress: SyncProgress,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let value = format!("{} {}", progress.done, progress.known);
        self.set_sync_checkpoint(sync, SCOPE_PROGRESS, Some(&value), at)
    }

    /// Every sync object's run record, by origin (`ContactSync/home`).
    pub fn sync_run_records(
        &self,
    ) -> Result<std::collections::BTreeMap<String, SyncRunRecord>, StoreError> {
        let rows: Vec<(String, String, String)> = self
            .conn
            .prepare_cached(
                "SELECT sync, scope, value FROM sync_checkpoints
                 WHERE scope IN ('run', 'conflicts', 'progress')",
            )
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(|e| self.err(e))?;
        let mut out = std::collections::BTreeMap::<String, SyncRunRecord>::new();
        for (sync, scope, value) in rows {
            let n = numbers(&value);
            let at = |i: usize| n.get(i).copied().unwrap_or(0);
            let record = out.entry(sync).or_default();
            match scope.as_str() {
                SCOPE_RUN => {
                    (record.last_in, record.last_out, record.last_conflicts) =
                        (at(0), at(1), at(2));
                }
                SCOPE_CONFLICTS => record.conflicts_total = at(0),
                _ => {
                    record.progress = Some(SyncProgress {
                        done: at(0),
                        known: at(1),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Checkpoint `scope` of sync object `sync` (`token <collection>`, `exported`).
    pub fn sync_checkpoint(&self, sync: &str, scope: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT value FROM sync_checkpoints WHERE sync = ?1 AND scope = ?2")
            .and_then(|mut s| s.query_row(params![sync, scope], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    /// Sets (or, with `None`, removes) checkpoint `scope` of sync object `sync`.
    pub fn set_sync_checkpoint(
        &mut self,
        sync: &str,
        scope: &str,
        value: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.ensure_writable()?;
        let result = match value {
            Some(value) => self.conn.execute(
                "INSERT INTO sync_checkpoints (sync, scope, value, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (sync, scope) DO UPDATE SET
                    value = excluded.value, updated_at = excluded.updated_at",
                params![sync, scope, value, format_ts(at)],
            ),
            None => self.conn.execute(
                "DELETE FROM sync_checkpoints WHERE sync = ?1 AND scope = ?2",
                params![sync, scope],
            ),
        };
        result.map(drop).map_err(|e| self.err(e))
    }

    /// The item as sync object `sync` last saw record `(kind, id)` on its remote side.
    pub fn sync_record_data(
        &self,
        sync: &str,
        kind: RecordKind,
        id: i64,
    ) -> Result<Option<String>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT remote_data FROM sync_records
                 WHERE sync = ?1 AND record_kind = ?2 AND record_id = ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![sync, kind.as_str(), id], |r| {
                    r.get::<_, Option<String>>(0)
                })
                .optional()
            })
            .map(Option::flatten)
            .map_err(|e| self.err(e))
    }

    /// Records what sync object `state.sync` knows of a record, with the item as the remote
    /// side now has it.
    pub fn set_sync_record_with_data(
        &mut self,
        state: &SyncRecordState,
        data: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.set_sync_record(state, at)?;
        self.conn
            .execute(
                "UPDATE sync_records SET remote_data = ?4
                 WHERE sync = ?1 AND record_kind = ?2 AND record_id = ?3",
                params![state.sync, state.kind.as_str(), state.record_id, data],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Every `(record id, remote id)` sync object `sync` links for records of `kind`.
    pub fn sync_links(
        &self,
        sync: &str,
        kind: RecordKind,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT record_id, remote_id FROM sync_records
                 WHERE sync = ?1 AND record_kind = ?2 ORDER BY record_id",
            )
            .and_then(|mut s| {
                s.query_map(params![sync, kind.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(|e| self.err(e))
    }

    /// Every `(remote id, remote version)` sync object `sync` links for records of `kind`: one
    /// read for a whole listing's "which of these changed" (ETag comparison).
    pub fn sync_versions(
        &self,
        sync: &str,
        kind: RecordKind,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT remote_id, remote_version FROM sync_records
                 WHERE sync = ?1 AND record_kind = ?2",
            )
            .and_then(|mut s| {
                s.query_map(params![sync, kind.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(|e| self.err(e))
    }

    /// Forgets the link between sync object `sync` and record `(kind, id)` (CS-05's
    /// `deletes: keep`: the record stays, it is no longer synced with that item).
    pub fn unlink_sync_record(
        &mut self,
        sync: &str,
        kind: RecordKind,
        id: i64,
    ) -> Result<(), StoreError> {
        self.ensure_writable()?;
        self.conn
            .execute(
                "DELETE FROM sync_records WHERE sync = ?1 AND record_kind = ?2 AND record_id = ?3",
                params![sync, kind.as_str(), id],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Imports one remote contact in one transaction: the contact linked to `item.remote_id`,
    /// else the one with any of its addresses or phones (`resolve_contact`), else a new one;
    /// its fields written with the sync as their origin (journaled as the sync's change, so
    /// they are not exported back); and the link with the item's version and text recorded,
    /// exported up to the journal's end.
    pub fn import_remote_contact(
        &mut self,
        item: &RemoteContact<'_>,
        at: DateTime<Utc>,
    ) -> Result<Contact, RecordError> {
        self.record_tx(|tx, path| import_in_tx(tx, path, item, at))
    }

    /// [`Store::import_remote_contact`] for a batch (a multiget's answer) in one transaction:
    /// one commit instead of one per card. Each card is its own savepoint, so a card the
    /// store refuses (its message in the answer, in `items`' order) leaves the others in; a
    /// store failure fails the whole batch, which is then not imported at all.
    pub fn import_remote_contacts(
        &mut self,
        items: &[RemoteContact<'_>],
        at: DateTime<Utc>,
    ) -> Result<Vec<Result<Contact, String>>, StoreError> {
        self.record_batch_tx(items, |tx, path, item| import_in_tx(tx, path, item, at))
    }

    /// Whether contact `id` changed after journal position `after` by anyone but `origin`
    /// (a local change a remote one may conflict with).
    pub fn changed_since_by_other(
        &self,
        kind: RecordKind,
        id: i64,
        after: i64,
        origin: &str,
    ) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM record_changes WHERE record_kind = ?1
                   AND record_id = ?2 AND seq > ?3 AND origin <> ?4)",
            )
            .and_then(|mut s| s.query_row(params![kind.as_str(), id, after, origin], |r| r.get(0)))
            .map_err(|e| self.err(e))
    }

    /// The last change of record `(kind, id)` by anyone but `origin`, when it has one.
    pub fn last_change_by_other(
        &self,
        kind: RecordKind,
        id: i64,
        origin: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT max(at) FROM record_changes WHERE record_kind = ?1 AND record_id = ?2
                   AND origin <> ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![kind.as_str(), id, origin], |r| {
                    r.get::<_, Option<String>>(0)
                })
            })
            .map(|at| at.and_then(|t| super::parse_ts(&t)))
            .map_err(|e| self.err(e))
    }
}

/// The transaction of one remote contact's import (see [`Store::import_remote_contact`]).
fn import_in_tx(
    tx: &rusqlite::Transaction<'_>,
    path: &std::path::Path,
    item: &RemoteContact<'_>,
    at: DateTime<Utc>,
) -> Result<Contact, RecordError> {
    let db = |e| db_error(path, e);
    let at = format_ts(at);
    let linked: Option<i64> = tx
        .query_row(
            "SELECT s.record_id FROM sync_records s JOIN contacts k ON k.id = s.record_id
                 WHERE s.sync = ?1 AND s.record_kind = 'contact' AND s.remote_id = ?2
                   AND k.deleted_at IS NULL",
            params![item.sync, item.remote_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(db)?;
    let mut changes = item.changes.clone();
    let id = match linked {
        Some(id) => id,
        None => {
            let name = item.changes.name.clone().flatten();
            let sighting = Sighting {
                origin: item.sync,
                name: name.as_deref(),
                emails: item.changes.emails.clone().unwrap_or_default(),
                phones: item.changes.phones.clone().unwrap_or_default(),
                linked: None,
            };
            let id = resolve_contact(tx, &sighting, &at).map_err(db)?;
            // A first link to a contact Switchboard already had: keep what it knew
            // (its name by the merge policy, which `resolve_contact` applied; its
            // addresses, phones and tags beside the card's), so the export that
            // follows carries the union to the remote side.
            if let Some(current) = select_contact(tx, id).map_err(db)? {
                changes.name = None;
                if current.job_title.is_some() {
                    changes.job_title = None;
                }
                let union = |mine: &[String], theirs: Option<Vec<String>>| {
                    let mut all = mine.to_vec();
                    for v in theirs.unwrap_or_default() {
                        if !all.contains(&v) {
                            all.push(v);
                        }
                    }
                    Some(all)
                };
                changes.emails = union(&current.emails, changes.emails.take());
                changes.phones = union(&current.phones, changes.phones.take());
                changes.tags = union(&current.tags, changes.tags.take());
                if current.account.is_some() {
                    changes.account = None;
                }
            }
            id
        }
    };
    write_contact(tx, path, id, &changes, item.sync)?;
    touch(tx, "contacts", id, &at).map_err(db)?;
    journal(
        tx,
        RecordKind::Contact,
        id,
        ChangeOp::Update,
        item.sync,
        &at,
    )
    .map_err(db)?;
    let seq: i64 = tx
        .query_row(
            "SELECT coalesce(max(seq), 0) FROM record_changes",
            [],
            |r| r.get(0),
        )
        .map_err(db)?;
    tx.execute(
        "INSERT INTO sync_records
                (sync, record_kind, record_id, remote_id, remote_version, exported_seq,
                 updated_at, remote_data)
             VALUES (?1, 'contact', ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (sync, record_kind, record_id) DO UPDATE SET
                remote_id = excluded.remote_id, remote_version = excluded.remote_version,
                exported_seq = excluded.exported_seq, updated_at = excluded.updated_at,
                remote_data = excluded.remote_data",
        params![
            item.sync,
            id,
            item.remote_id,
            item.version,
            seq,
            at,
            item.data
        ],
    )
    .map_err(db)?;
    select_contact(tx, id)
        .map_err(db)?
        .ok_or(RecordError::NotFound {
            kind: "contact",
            id,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("time")
    }

    #[test]
    fn the_run_record_keeps_the_last_success_totals_conflicts_and_clears_progress() {
        let mut store = Store::open_in_memory().expect("store");
        let sync = "ContactSync/book";
        assert!(store.sync_run_records().expect("records").is_empty());
        store
            .set_sync_progress(
                sync,
                SyncProgress {
                    done: 100,
                    known: 2000,
                },
                t(0),
            )
            .expect("progress");
        let records = store.sync_run_records().expect("records");
        assert_eq!(
            records[sync].progress,
            Some(SyncProgress {
                done: 100,
                known: 2000
            })
        );
        store
            .record_sync_run(sync, Some((2000, 3)), 2, t(1))
            .expect("success");
        // A failed run keeps the last success's counts, adds its conflicts to the total.
        store.record_sync_run(sync, None, 1, t(2)).expect("failure");
        let record = store.sync_run_records().expect("records")[sync];
        assert_eq!(
            record,
            SyncRunRecord {
                last_in: 2000,
                last_out: 3,
                last_conflicts: 2,
                conflicts_total: 3,
                progress: None,
            }
        );
    }
}
