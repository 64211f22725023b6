//! The state store: what was applied, and how each applied object is doing.
//!
//! # Responsibility
//! This is the only module in Switchboard that runs SQL. It owns one SQLite file (the
//! `--state` file) and exposes a small, typed API over it:
//!
//! - the **applied objects**: one row per `(kind, name)` of the last applied config, with the
//!   canonical JSON of its spec, the spec's hash, a generation that is bumped whenever the spec
//!   changes, and when that generation was applied ([`Store::apply`], [`Store::applied_objects`]);
//! - the **status** of each applied object: state, reason, last success and error, run and
//!   item counters ([`Store::set_state`], [`Store::record_sync_start`],
//!   [`Store::record_sync_result`], [`Store::statuses`]);
//! - the domains' tables, one submodule each: [`mail`], [`chat`], and the record store
//!   ([`records`]: contacts, accounts, the change journal, per-sync state, leads;
//!   [`activities`]).
//!
//! The file is opened in WAL mode with a busy timeout and foreign keys on, so the `status` and
//! `plan` commands can read it ([`Store::open_read_only`]) while a daemon is writing.
//! The schema is versioned with `PRAGMA user_version` and migrated at open from the numbered,
//! append-only files in `src/store/migrations/`, each in its own transaction. A file written by
//! a newer release is refused rather than guessed at.
//!
//! Timestamps are stored as RFC 3339 UTC text with millisecond precision
//! (`2025-01-31T12:00:00.000Z`) so the file stays readable with the `sqlite3` CLI; values read
//! back are therefore truncated to the millisecond.
//!
//! # What it must not do
//! - It knows nothing about manifests, plans or connectors: specs are opaque
//!   [`serde_json::Value`]s, kinds and names are opaque strings.
//! - It must not leak SQLite into its API: no `rusqlite` type is public, so a PostgreSQL
//!   backend can follow behind the same API. Keep SQL in the private functions at the bottom.
//! - It must never store or print secret values. Specs carry secret *references* only; callers
//!   must redact errors before passing them to [`Store::record_sync_result`].
//! - It does no logging and no scheduling; it does not decide *what* to apply, only records it.

pub mod mail;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub mod activities;
pub mod chat;
pub mod grants;
pub mod handle;
pub mod leads;
pub mod records;
pub mod sync_state;
mod wal;

pub use handle::StoreHandle;

pub use wal::WalSync;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior, params};
use sha2::{Digest, Sha256};

/// The schema migrations, in order. Migration `i` (0-based) brings the file to
/// `user_version = i + 1`. Append only: never edit or reorder a released entry.
const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "0001_init",
        sql: include_str!("migrations/0001_init.sql"),
        rebuilds_tables: false,
        then: None,
    },
    Migration {
        name: "0002_mail",
        sql: include_str!("migrations/0002_mail.sql"),
        rebuilds_tables: false,
        then: None,
    },
    Migration {
        name: "0003_chat",
        sql: include_str!("migrations/0003_chat.sql"),
        rebuilds_tables: false,
        then: None,
    },
    Migration {
        name: "0004_mail_oauth",
        sql: include_str!("migrations/0004_mail_oauth.sql"),
        rebuilds_tables: false,
        then: None,
    },
    Migration {
        name: "0005_chat_actions",
        sql: include_str!("migrations/0005_chat_actions.sql"),
        rebuilds_tables: false,
        then: None,
    },
    Migration {
        name: "0006_mail_graph",
        sql: include_str!("migrations/0006_mail_graph.sql"),
        rebuilds_tables: false,
        then: None,
    },
    Migration {
        name: "0007_chat_messenger_handback",
        sql: include_str!("migrations/0007_chat_messenger_handback.sql"),
        rebuilds_tables: false,
        then: None,
    },
    Migration {
        name: "0008_mail_status",
        sql: include_str!("migrations/0008_mail_status.sql"),
        rebuilds_tables: false,
        then: None,
    },
    Migration {
        name: "0009_records",
        sql: include_str!("migrations/0009_records.sql"),
        rebuilds_tables: true,
        then: Some(records::merge_chat_identities),
    },
    Migration {
        name: "0010_activities",
        sql: include_str!("migrations/0010_activities.sql"),
        rebuilds_tables: false,
        then: None,
    },
    Migration {
        name: "0011_linkedin",
        sql: include_str!("migrations/0011_linkedin.sql"),
        rebuilds_tables: false,
        then: None,
    },
    Migration {
        name: "0012_sync_state",
        sql: include_str!("migrations/0012_sync_state.sql"),
        rebuilds_tables: false,
        then: None,
    },
    Migration {
        name: "0013_activity_sync",
        sql: include_str!("migrations/0013_activity_sync.sql"),
        rebuilds_tables: false,
        then: None,
    },
    Migration {
        name: "0014_lead_backfills",
        sql: include_str!("migrations/0014_lead_backfills.sql"),
        rebuilds_tables: false,
        then: None,
    },
    Migration {
        name: "0015_grant_refusals",
        sql: include_str!("migrations/0015_grant_refusals.sql"),
        rebuilds_tables: false,
        then: None,
    },
];

/// How long a connection waits for a lock held by another connection before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The reason reported for an applied object that has no status yet.
const NOT_SYNCED_YET: &str = "not synced yet";

/// Shown as the path of an in-memory store in error messages.
const IN_MEMORY: &str = ":memory:";

struct Migration {
    name: &'static str,
    sql: &'static str,
    /// The migration drops and recreates a table that others reference (SQLite's 12-step
    /// ALTER): it runs with foreign keys off, and `PRAGMA foreign_key_check` must find
    /// nothing before it commits.
    rebuilds_tables: bool,
    /// A data step in Rust, run after the SQL in the same transaction.
    then: Option<fn(&Connection) -> rusqlite::Result<()>>,
}

/// The highest schema version this binary understands.
fn latest_version() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// An error from the state store. Every message names the state file and says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `--state` names a database server by URL; only a SQLite file is supported so far.
    #[error(
        "--state {0} is a PostgreSQL URL: PostgreSQL state is not supported yet; give a SQLite file path"
    )]
    Unsupported(String),

    /// The state file does not exist (only from [`Store::open_read_only`]). Callers can treat
    /// this as "nothing applied yet".
    #[error(
        "state file {} does not exist: nothing has been applied yet; \
         start the daemon (or point --state at the right file)",
        .0.display()
    )]
    Missing(PathBuf),

    /// The directory that should hold the state file could not be created.
    #[error(
        "cannot create directory {} for the state file: {source}; \
         create it with write access for this user or point --state elsewhere",
        dir.display()
    )]
    CreateDir {
        /// The directory that could not be created.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The file was written by a newer release with a schema this binary does not know.
    #[error(
        "state file {} has schema version {found}, but this switchboard understands up to \
         {supported}: it was written by a newer release; upgrade switchboard or point --state elsewhere",
        path.display()
    )]
    TooNew {
        /// The state file.
        path: PathBuf,
        /// The file's schema version.
        found: i64,
        /// The highest schema version this binary knows.
        supported: i64,
    },

    /// The file has an older schema and was opened read-only, so it cannot be migrated here.
    #[error(
        "state file {} has schema version {found}, but this switchboard needs {supported} and \
         opened it read-only; run the daemon (or any command that writes state) against it once \
         to upgrade it",
        path.display()
    )]
    Outdated {
        /// The state file.
        path: PathBuf,
        /// The file's schema version.
        found: i64,
        /// The schema version this binary needs.
        supported: i64,
    },

    /// Applying a migration failed; the file was left at the previous schema version.
    #[error(
        "upgrading state file {} to schema version {version} ({name}) failed: {source}; \
         the file was left at schema version {previous}; restore it from a backup or point \
         --state elsewhere",
        path.display()
    )]
    Migration {
        /// The state file.
        path: PathBuf,
        /// The schema version the failed migration would have produced.
        version: i64,
        /// The migration's name, e.g. `0001_init`.
        name: &'static str,
        /// The version the file is still at.
        previous: i64,
        /// The database error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The file is not an SQLite database.
    #[error(
        "{} is not a switchboard state file (it is not an SQLite database); \
         point --state at the right file or move this one away",
        .0.display()
    )]
    NotADatabase(PathBuf),

    /// The file or its directory is not writable by this process.
    #[error(
        "state file {} is not writable: {source}; give this user write access to the file and \
         its directory (SQLite creates -wal and -shm files next to it) or point --state elsewhere",
        path.display()
    )]
    NotWritable {
        /// The state file.
        path: PathBuf,
        /// The database error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The directory of the state file cannot be written (a read-only file system, missing
    /// permissions): SQLite cannot create the file or its `-wal` and `-shm` companions.
    #[error(
        "the state directory {} cannot be written: {source}; SQLite keeps the state file and \
         its -wal and -shm files there, so it must be writable: remount it read-write, give this \
         user write access to it, or point --state at a file in a writable directory",
        dir.display()
    )]
    DirNotWritable {
        /// The directory holding the state file.
        dir: PathBuf,
        /// Why it cannot be written.
        #[source]
        source: std::io::Error,
    },

    /// Another process held a lock on the file for longer than the busy timeout.
    #[error(
        "state file {} stayed locked by another process for more than {}s; \
         check for a stuck switchboard process using the same --state file and retry",
        .0.display(),
        BUSY_TIMEOUT.as_secs()
    )]
    Busy(PathBuf),

    /// The file (or a value in it) is damaged.
    #[error(
        "state file {} is corrupt ({detail}); restore it from a backup, or move it away to start \
         over (switchboard then forgets what it applied and re-applies the config)",
        path.display()
    )]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// What is wrong, without any stored value.
        detail: String,
    },

    /// A status update named an object that is not in the applied state.
    #[error(
        "object {kind}/{name} is not in the applied state of {}; apply a config that contains \
         it before recording its status",
        path.display()
    )]
    UnknownObject {
        /// The state file.
        path: PathBuf,
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
    },

    /// A write was attempted on a store opened with [`Store::open_read_only`].
    #[error(
        "state file {} was opened read-only and cannot be written; this is a bug in switchboard, \
         please report it",
        .0.display()
    )]
    ReadOnly(PathBuf),

    /// The file system holding the state file is full (SQLite's `SQLITE_FULL`): the write was
    /// rolled back and nothing of it was stored. The store stays usable; writes succeed again
    /// once space is freed.
    #[error(
        "the disk holding state file {} is full: nothing was stored; free space on that file \
         system (switchboard keeps running and recovers by itself)",
        .0.display()
    )]
    Full(PathBuf),

    /// Any other database error.
    #[error("state file {}: {source}", path.display())]
    Database {
        /// The state file.
        path: PathBuf,
        /// The database error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// Whether this is [`StoreError::Full`]: a transient condition the caller should answer
    /// with "retry later" (503) rather than as an internal error.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Full(_))
    }
}

/// The identity of an applied object: its kind and name. Orders by kind, then name, byte-wise
/// (the order of [`Store::applied_objects`] and [`Store::statuses`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The object's kind, e.g. `Channel`.
    pub kind: String,
    /// The object's name, unique within its kind.
    pub name: String,
}

impl ObjectKey {
    /// Builds a key from a kind and a name.
    pub fn new(kind: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    /// Formats as `kind/name`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// An object as it was last applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedObject {
    /// The object's kind.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// The applied spec (with secret references, never secret values).
    pub spec: serde_json::Value,
    /// [`spec_hash`] of `spec`.
    pub spec_hash: String,
    /// 1 when first applied, bumped each time the spec changed.
    pub generation: i64,
    /// When this generation was applied (millisecond precision).
    pub applied_at: DateTime<Utc>,
}

impl AppliedObject {
    /// This object's kind and name.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(&self.kind, &self.name)
    }
}

/// One change to the applied state, as passed to [`Store::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectChange {
    /// Create the object, or update it if its spec changed.
    Upsert {
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The desired spec (secret references only).
        spec: serde_json::Value,
    },
    /// Remove the object and its status.
    Delete {
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
    },
}

impl ObjectChange {
    /// The kind and name of the object this change is about.
    pub fn key(&self) -> ObjectKey {
        match self {
            Self::Upsert { kind, name, .. } | Self::Delete { kind, name } => {
                ObjectKey::new(kind, name)
            }
        }
    }
}

/// How an applied object is doing, as returned by [`Store::statuses`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStatus {
    /// The object's kind.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// The current state; [`ObjectState::Pending`] until something is recorded.
    pub state: ObjectState,
    /// Why the object is in this state, if known (`"not synced yet"` while nothing is recorded).
    pub reason: Option<String>,
    /// When the last successful sync finished.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The error of the last failed sync (kept after later successes).
    pub last_error: Option<String>,
    /// When the last failed sync finished.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Number of successful syncs.
    pub runs_ok: i64,
    /// Number of failed syncs.
    pub runs_failed: i64,
    /// Total items read by successful syncs.
    pub items_in: i64,
    /// Total items written by successful syncs.
    pub items_out: i64,
    /// The applied object's generation.
    pub generation: i64,
    /// When the applied object's generation was applied.
    pub applied_at: DateTime<Utc>,
}

impl ObjectStatus {
    /// This object's kind and name.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(&self.kind, &self.name)
    }
}

/// The state of an applied object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectState {
    /// The last sync succeeded.
    Ready,
    /// A sync is running.
    Syncing,
    /// The last sync failed.
    Error,
    /// Applied but not synced yet (or waiting for something, see the reason).
    Pending,
}

impl ObjectState {
    /// All states, in declaration order.
    pub const ALL: [ObjectState; 4] = [Self::Ready, Self::Syncing, Self::Error, Self::Pending];

    /// The stored and displayed name: `"ready"`, `"syncing"`, `"error"` or `"pending"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Syncing => "syncing",
            Self::Error => "error",
            Self::Pending => "pending",
        }
    }
}

impl fmt::Display for ObjectState {
    /// Formats as [`ObjectState::as_str`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown [`ObjectState`] name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown object state {0:?}; expected one of ready, syncing, error, pending")]
pub struct UnknownObjectState(pub String);

impl FromStr for ObjectState {
    type Err = UnknownObjectState;

    /// Parses the exact names produced by [`ObjectState::as_str`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownObjectState(s.to_owned()))
    }
}

/// The outcome of one sync run, as passed to [`Store::record_sync_result`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// The run succeeded.
    Success {
        /// Items read in this run.
        items_in: u64,
        /// Items written in this run.
        items_out: u64,
    },
    /// The run failed.
    Failure {
        /// What went wrong, already redacted: it is stored and shown as is.
        error: String,
    },
}

/// The lowercase hex sha256 of the canonical JSON of `spec`.
///
/// Canonical JSON is serde_json's compact output with the keys of every object sorted
/// byte-wise. serde_json without its `preserve_order` feature already keeps object keys sorted;
/// the keys are sorted explicitly anyway, so that a dependency turning that feature on (Cargo
/// unifies features) cannot silently change every hash. Numbers are written as serde_json
/// writes them, so `1` and `1.0` hash differently.
pub fn spec_hash(spec: &serde_json::Value) -> String {
    hash_canonical(&canonical_json(spec))
}

/// The SQLite state store. See the [module documentation](self).
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    /// The state file, for error messages (`:memory:` for an in-memory store).
    path: PathBuf,
    read_only: bool,
}

impl Store {
    /// Opens the state file for reading and writing, creating it (and its parent directory)
    /// if missing, and migrates it to the latest schema.
    ///
    /// Refuses a file written by a newer release ([`StoreError::TooNew`]).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        match Self::open_writable(path) {
            // Say which directory and why, rather than SQLite's "unable to open database file".
            Err(StoreError::NotWritable { path, source }) => Err(match unwritable_dir(&path) {
                Some((dir, source)) => StoreError::DirNotWritable { dir, source },
                None => StoreError::NotWritable { path, source },
            }),
            other => other,
        }
    }

    fn open_writable(path: &Path) -> Result<Store, StoreError> {
        refuse_url(path)?;
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                dir: dir.to_owned(),
                source,
            })?;
        }
        // No SQLITE_OPEN_URI: a --state value is a path, never a `file:` URI with options.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| db_error(path, e))?;
        let mut store = Store {
            conn,
            path: path.to_owned(),
            read_only: false,
        };
        store.configure()?;
        // Check before touching anything, so a newer file is left exactly as it was.
        store.refuse_newer()?;
        store.enable_wal()?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing state file read-only, for `status` and `plan`. Works while a daemon
    /// has the file open and is writing to it.
    ///
    /// Never creates anything: a missing file gives [`StoreError::Missing`] ("nothing applied
    /// yet"). The file must already be at this binary's schema version: older files give
    /// [`StoreError::Outdated`], newer ones [`StoreError::TooNew`]. Writes on the returned store
    /// fail with [`StoreError::ReadOnly`].
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        refuse_url(path)?;
        // On an error (e.g. permission denied on the directory), let SQLite report it.
        if matches!(path.try_exists(), Ok(false)) {
            return Err(StoreError::Missing(path.to_owned()));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| db_error(path, e))?;
        let store = Store {
            conn,
            path: path.to_owned(),
            read_only: true,
        };
        store.configure()?;
        store.refuse_newer()?;
        let found = store.schema_version()?;
        if found < latest_version() {
            return Err(StoreError::Outdated {
                path: store.path,
                found,
                supported: latest_version(),
            });
        }
        Ok(store)
    }

    /// Opens a fresh, migrated in-memory store, for unit tests of other modules.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let path = Path::new(IN_MEMORY);
        let conn = Connection::open_in_memory().map_err(|e| db_error(path, e))?;
        let mut store = Store {
            conn,
            path: path.to_owned(),
            read_only: false,
        };
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    /// A flusher of this store's write-ahead log for [`Store::chat_batch_unsynced`]; `None` for
    /// an in-memory store, which has no log (and nothing to make durable).
    pub fn wal_sync(&self) -> Option<WalSync> {
        if self.path == Path::new(IN_MEMORY) {
            return None;
        }
        let mut log = self.path.clone().into_os_string();
        log.push("-wal");
        Some(WalSync::new(PathBuf::from(log)))
    }

    /// `PRAGMA synchronous` (store tests only).
    #[cfg(test)]
    pub(crate) fn synchronous_for_tests(&self) -> i64 {
        self.conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .expect("pragma")
    }

    /// The file's schema version (`PRAGMA user_version`): the number of migrations applied.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        user_version(&self.conn).map_err(|e| self.err(e))
    }

    /// All applied objects, sorted by kind, then name (byte-wise, as [`ObjectKey`] orders).
    pub fn applied_objects(&self) -> Result<Vec<AppliedObject>, StoreError> {
        let rows = select_objects(&self.conn).map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|row| {
                let key = ObjectKey::new(&row.kind, &row.name);
                let spec = serde_json::from_str(&row.spec).map_err(|e| {
                    self.corrupt(format!("the spec of {key} is not valid JSON: {e}"))
                })?;
                Ok(AppliedObject {
                    applied_at: self.timestamp(&key, "applied_at", &row.applied_at)?,
                    kind: row.kind,
                    name: row.name,
                    spec,
                    spec_hash: row.spec_hash,
                    generation: row.generation,
                })
            })
            .collect()
    }

    /// Applies a whole config in ONE transaction: either every change is recorded or none is.
    ///
    /// - [`ObjectChange::Upsert`] inserts a new object with generation 1. For an existing
    ///   object, when the [`spec_hash`] of the spec differs from the stored one, it replaces the
    ///   spec and hash, bumps the generation and sets `applied_at` to `at`; an unchanged spec is
    ///   left alone (generation and `applied_at` unchanged). Status rows are kept.
    /// - [`ObjectChange::Delete`] removes the object and its status, and the OAuth tokens its
    ///   consent or refreshes stored under `KIND/NAME` (a GoogleAccount's, a LinkedInAccount's;
    ///   a Mailbox's, stored under its bare name, stay as before); deleting an object that is
    ///   not applied is a no-op.
    ///
    /// Changes are applied in order. Returns how many objects were inserted, updated or
    /// deleted (0 when the config was already applied).
    pub fn apply(
        &mut self,
        changes: &[ObjectChange],
        at: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        self.ensure_writable()?;
        let at = format_ts(at);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_error(&self.path, e))?;
        let mut changed = 0;
        for change in changes {
            changed += match change {
                ObjectChange::Upsert { kind, name, spec } => {
                    let spec = canonical_json(spec);
                    let hash = hash_canonical(&spec);
                    upsert_object(&tx, kind, name, &spec, &hash, &at)
                }
                ObjectChange::Delete { kind, name } => delete_object(&tx, kind, name),
            }
            .map_err(|e| db_error(&self.path, e))?;
        }
        tx.commit().map_err(|e| db_error(&self.path, e))?;
        Ok(changed)
    }

    /// The status of every applied object, sorted by kind, then name.
    ///
    /// An applied object with nothing recorded yet is [`ObjectState::Pending`] with reason
    /// `"not synced yet"` and zero counters.
    pub fn statuses(&self) -> Result<Vec<ObjectStatus>, StoreError> {
        let rows = select_statuses(&self.conn).map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|row| {
                let key = ObjectKey::new(&row.kind, &row.name);
                let state = row.state.parse().map_err(|_| {
                    self.corrupt(format!("the status of {key} has an unknown state"))
                })?;
                Ok(ObjectStatus {
                    state,
                    reason: row.reason,
                    last_success_at: self.opt_timestamp(
                        &key,
                        "last_success_at",
                        row.last_success_at,
                    )?,
                    last_error: row.last_error,
                    last_error_at: self.opt_timestamp(&key, "last_error_at", row.last_error_at)?,
                    runs_ok: row.runs_ok,
                    runs_failed: row.runs_failed,
                    items_in: row.items_in,
                    items_out: row.items_out,
                    generation: row.generation,
                    applied_at: self.timestamp(&key, "applied_at", &row.applied_at)?,
                    kind: row.kind,
                    name: row.name,
                })
            })
            .collect()
    }

    /// Sets an applied object's state and reason (`None` clears the reason), leaving its
    /// history and counters alone.
    pub fn set_state(
        &mut self,
        kind: &str,
        name: &str,
        state: ObjectState,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write_status(kind, name, |tx| {
            upsert_state(tx, kind, name, state.as_str(), reason)
        })
    }

    /// Records that a sync of an applied object started at `at`: state
    /// [`ObjectState::Syncing`], reason cleared.
    pub fn record_sync_start(
        &mut self,
        kind: &str,
        name: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let at = format_ts(at);
        self.write_status(kind, name, |tx| upsert_sync_start(tx, kind, name, &at))
    }

    /// Records how a sync of an applied object ended at `at`. The reason is cleared.
    ///
    /// - Success: state [`ObjectState::Ready`], `last_success_at = at`, `runs_ok + 1`, and the
    ///   run's items added to `items_in` / `items_out`. The last error is kept as history.
    /// - Failure: state [`ObjectState::Error`], `last_error` and `last_error_at = at`,
    ///   `runs_failed + 1`. The error text is stored as given: redact it first.
    pub fn record_sync_result(
        &mut self,
        kind: &str,
        name: &str,
        outcome: &SyncOutcome,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let at = format_ts(at);
        self.write_status(kind, name, |tx| match outcome {
            SyncOutcome::Success {
                items_in,
                items_out,
            } => upsert_sync_success(
                tx,
                kind,
                name,
                &at,
                saturating_i64(*items_in),
                saturating_i64(*items_out),
            ),
            SyncOutcome::Failure { error } => upsert_sync_failure(tx, kind, name, &at, error),
        })
    }

    /// At daemon start: every object a stopped process left `syncing` (killed or crashed in
    /// the middle of a run) becomes [`ObjectState::Pending`] with a reason saying so, until
    /// its next run starts — rather than showing a run (and its progress) that nobody runs.
    /// Returns how many there were.
    pub fn mark_interrupted_runs(&mut self) -> Result<usize, StoreError> {
        self.ensure_writable()?;
        self.conn
            .execute(
                "UPDATE object_status SET state = 'pending', reason = ?1 WHERE state = 'syncing'",
                params![
                    "interrupted: the daemon stopped during the run; it resumes from its checkpoint on the next run"
                ],
            )
            .map_err(|e| self.err(e))
    }

    // ---- helpers (no SQL here) --------------------------------------------------------------

    /// Connection settings that every store needs, read-only or not.
    fn configure(&self) -> Result<(), StoreError> {
        self.conn
            .busy_timeout(BUSY_TIMEOUT)
            .and_then(|()| enable_foreign_keys(&self.conn))
            .and_then(|()| keep_plans_stable(&self.conn))
            .and_then(|()| set_synchronous(&self.conn, "FULL"))
            .and_then(|()| keep_temporary_files_in_memory(&self.conn))
            .map_err(|e| self.err(e))
    }

    fn refuse_newer(&self) -> Result<(), StoreError> {
        let found = self.schema_version()?;
        if found > latest_version() {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found,
                supported: latest_version(),
            });
        }
        Ok(())
    }

    /// WAL lets `status` and `plan` read while the daemon writes. The mode is persistent.
    fn enable_wal(&self) -> Result<(), StoreError> {
        let mode = set_wal_mode(&self.conn).map_err(|e| self.err(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Database {
                path: self.path.clone(),
                source: format!(
                    "could not switch to WAL journal mode (SQLite kept {mode:?}); \
                     keep the state file on a local filesystem"
                )
                .into(),
            });
        }
        Ok(())
    }

    /// Applies the pending migrations, each in its own IMMEDIATE transaction. The version is
    /// re-read inside each transaction, so two processes opening the same file at once do not
    /// both apply a migration.
    fn migrate(&mut self) -> Result<(), StoreError> {
        self.migrate_with(MIGRATIONS)
    }

    /// [`Store::migrate`] over a given list, so tests can exercise a failing migration.
    fn migrate_with(&mut self, migrations: &[Migration]) -> Result<(), StoreError> {
        let supported = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| db_error(&self.path, e))?;
            let current = user_version(&tx).map_err(|e| db_error(&self.path, e))?;
            if current > supported {
                return Err(StoreError::TooNew {
                    path: self.path.clone(),
                    found: current,
                    supported,
                });
            }
            if current < 0 {
                return Err(StoreError::Corrupt {
                    path: self.path.clone(),
                    detail: format!("negative schema version {current}"),
                });
            }
            let Some(migration) = usize::try_from(current)
                .ok()
                .and_then(|index| migrations.get(index))
            else {
                return Ok(()); // Up to date; dropping `tx` ends the empty transaction.
            };
            let version = current + 1;
            if migration.rebuilds_tables {
                // A no-op inside a transaction: dropped with `tx` first, set again after.
                drop(tx);
                enable_foreign_keys_to(&self.conn, false).map_err(|e| self.err(e))?;
                let result = self.run_rebuild(migration, version, current);
                enable_foreign_keys_to(&self.conn, true).map_err(|e| self.err(e))?;
                result?;
                continue;
            }
            run_migration(&tx, migration.sql, version)
                .and_then(|()| migration.then.map_or(Ok(()), |step| step(&tx)))
                .and_then(|()| tx.commit())
                .map_err(|e| StoreError::Migration {
                    path: self.path.clone(),
                    version,
                    name: migration.name,
                    previous: current,
                    source: Box::new(e),
                })?;
        }
    }

    /// Runs a table-rebuilding migration (foreign keys are off) in its own IMMEDIATE
    /// transaction, refusing to commit when it left a dangling reference.
    fn run_rebuild(
        &mut self,
        migration: &Migration,
        version: i64,
        previous: i64,
    ) -> Result<(), StoreError> {
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Migration {
            path: self.path.clone(),
            version,
            name: migration.name,
            previous,
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_error(&self.path, e))?;
        if user_version(&tx).map_err(|e| db_error(&self.path, e))? != previous {
            return Ok(()); // Another process migrated it meanwhile.
        }
        run_migration(&tx, migration.sql, version)
            .and_then(|()| migration.then.map_or(Ok(()), |step| step(&tx)))
            .map_err(|e| failed(Box::new(e)))?;
        let dangling = foreign_key_violations(&tx).map_err(|e| failed(Box::new(e)))?;
        if dangling > 0 {
            return Err(failed(
                format!("{dangling} rows would point at rows that do not exist").into(),
            ));
        }
        tx.commit().map_err(|e| failed(Box::new(e)))
    }

    /// Runs one status write in an IMMEDIATE transaction and turns "no such object" into
    /// [`StoreError::UnknownObject`].
    fn write_status(
        &mut self,
        kind: &str,
        name: &str,
        write: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<usize>,
    ) -> Result<(), StoreError> {
        self.ensure_writable()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_error(&self.path, e))?;
        let changed = write(&tx).map_err(|e| db_error(&self.path, e))?;
        if changed == 0 {
            return Err(StoreError::UnknownObject {
                path: self.path.clone(),
                kind: kind.to_owned(),
                name: name.to_owned(),
            });
        }
        tx.commit().map_err(|e| db_error(&self.path, e))
    }

    fn ensure_writable(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly(self.path.clone()));
        }
        Ok(())
    }

    fn err(&self, error: rusqlite::Error) -> StoreError {
        db_error(&self.path, error)
    }

    fn corrupt(&self, detail: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            detail,
        }
    }

    fn timestamp(
        &self,
        key: &ObjectKey,
        column: &str,
        text: &str,
    ) -> Result<DateTime<Utc>, StoreError> {
        parse_ts(text)
            .ok_or_else(|| self.corrupt(format!("{column} of {key} is not an RFC 3339 timestamp")))
    }

    fn opt_timestamp(
        &self,
        key: &ObjectKey,
        column: &str,
        text: Option<String>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        text.map(|text| self.timestamp(key, column, &text))
            .transpose()
    }
}

/// Refuses a `postgres://` or `postgresql://` URL given as the state (it would otherwise be
/// taken for a relative path and create a folder named `postgres:`). The URL is not repeated
/// past its scheme: it may carry a password.
fn refuse_url(path: &Path) -> Result<(), StoreError> {
    let text = path.to_string_lossy();
    let lower = text.to_ascii_lowercase();
    for scheme in ["postgres://", "postgresql://"] {
        if lower.starts_with(scheme) {
            return Err(StoreError::Unsupported(format!("{scheme}...")));
        }
    }
    Ok(())
}

/// The directory of `path` and why a file cannot be created in it, when it cannot (probed with
/// a file created and removed at once; called only after SQLite failed to open `path`).
fn unwritable_dir(path: &Path) -> Option<(PathBuf, std::io::Error)> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let probe = dir.join(format!(".switchboard-write-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some((dir, e)),
    }
}

/// Maps a SQLite error to the [`StoreError`] that tells the user what to do.
fn db_error(path: &Path, error: rusqlite::Error) -> StoreError {
    let path = path.to_owned();
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy(path),
        Some(ErrorCode::NotADatabase) => StoreError::NotADatabase(path),
        Some(ErrorCode::DiskFull) => StoreError::Full(path),
        Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path,
            detail: error.to_string(),
        },
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            StoreError::NotWritable {
                path,
                source: Box::new(error),
            }
        }
        _ => StoreError::Database {
            path,
            source: Box::new(error),
        },
    }
}

fn canonical_json(value: &serde_json::Value) -> String {
    sorted(value).to_string()
}

/// A copy of `value` whose objects were built in sorted key order, so they serialize sorted
/// whether or not serde_json's `preserve_order` feature is on.
fn sorted(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(key, value)| (key.clone(), sorted(value)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn hash_canonical(canonical: &str) -> String {
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

fn format_ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_ts(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

// ---- SQL: the only place in Switchboard that speaks it --------------------------------------

fn enable_foreign_keys(conn: &Connection) -> rusqlite::Result<()> {
    enable_foreign_keys_to(conn, true)
}

fn enable_foreign_keys_to(conn: &Connection, on: bool) -> rusqlite::Result<()> {
    conn.pragma_update(None, "foreign_keys", on)
}

/// How many rows `PRAGMA foreign_key_check` reports.
fn foreign_key_violations(conn: &Connection) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let mut rows = stmt.query([])?;
    let mut n = 0;
    while rows.next()?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// `FULL`: a commit returns once the write-ahead log is on disk, so whatever the store has
/// acknowledged survives a power loss. Explicit rather than SQLite's compile-time default;
/// only the chat writer's pipelined batches lower it, for their commit alone (see [`wal`]).
fn set_synchronous(conn: &Connection, level: &str) -> rusqlite::Result<()> {
    conn.pragma_update(None, "synchronous", level)
}

/// Temporary files in memory. The one that matters is the sub-journal: the chat writer runs
/// every command of a batch in a savepoint, and SQLite saves the pages a savepoint changes in
/// it; past 64 KiB it spilled to a temporary file, and those writes took a fifth of the
/// daemon's CPU when every message opened a new chat. A batch's savepoints hold a few hundred
/// pages at most.
fn keep_temporary_files_in_memory(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "temp_store", "MEMORY")
}

/// The query planner stability guarantee: a statement keeps the plan it was prepared with,
/// whatever values are bound. Without it SQLite marks some cached statements (the chat
/// writer's offer lookup by integer key, for one) as depending on their bound values and
/// re-prepares them on every run — measured at 14% of the daemon's CPU under chat load.
/// Switchboard has no query whose best plan depends on a bound value (no `LIKE ?`, no
/// `ANALYZE` statistics), so nothing is lost.
fn keep_plans_stable(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map(drop)
}

fn set_wal_mode(conn: &Connection) -> rusqlite::Result<String> {
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

fn run_migration(conn: &Connection, sql: &str, version: i64) -> rusqlite::Result<()> {
    conn.execute_batch(sql)?;
    conn.pragma_update(None, "user_version", version)
}

struct ObjectRow {
    kind: String,
    name: String,
    spec: String,
    spec_hash: String,
    generation: i64,
    applied_at: String,
}

fn select_objects(conn: &Connection) -> rusqlite::Result<Vec<ObjectRow>> {
    let mut stmt = conn.prepare(
        "SELECT kind, name, spec, spec_hash, generation, applied_at
         FROM objects
         ORDER BY kind, name",
    )?;
    stmt.query_map([], |row| {
        Ok(ObjectRow {
            kind: row.get(0)?,
            name: row.get(1)?,
            spec: row.get(2)?,
            spec_hash: row.get(3)?,
            generation: row.get(4)?,
            applied_at: row.get(5)?,
        })
    })?
    .collect()
}

/// Inserts with generation 1, or updates and bumps the generation when the hash differs.
/// Returns 1 when a row was inserted or updated, 0 when the spec was unchanged.
fn upsert_object(
    conn: &Connection,
    kind: &str,
    name: &str,
    spec: &str,
    spec_hash: &str,
    at: &str,
) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO objects (kind, name, spec, spec_hash, generation, applied_at)
         VALUES (?1, ?2, ?3, ?4, 1, ?5)
         ON CONFLICT (kind, name) DO UPDATE SET
             spec = excluded.spec,
             spec_hash = excluded.spec_hash,
             generation = objects.generation + 1,
             applied_at = excluded.applied_at
         WHERE objects.spec_hash <> excluded.spec_hash",
        params![kind, name, spec, spec_hash, at],
    )
}

/// Deletes the object, its status (explicitly, not relying on the cascade), and what the store
/// kept for it beside: its grant's refusal mark (any kind) and the sealed OAuth tokens of its
/// grant when they are keyed `KIND/NAME` (`mail::oauth::grant_key`) — a removed GoogleAccount
/// or LinkedInAccount leaves no credential behind. Returns the number of objects deleted (0 or 1).
fn delete_object(conn: &Connection, kind: &str, name: &str) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM mail_oauth_tokens WHERE mailbox = ?1",
        params![format!("{kind}/{name}")],
    )?;
    conn.execute(
        "DELETE FROM object_status WHERE kind = ?1 AND name = ?2",
        params![kind, name],
    )?;
    grants::forget_object(conn, kind, name)?;
    conn.execute(
        "DELETE FROM objects WHERE kind = ?1 AND name = ?2",
        params![kind, name],
    )
}

struct StatusRow {
    kind: String,
    name: String,
    state: String,
    reason: Option<String>,
    last_success_at: Option<String>,
    last_error: Option<String>,
    last_error_at: Option<String>,
    runs_ok: i64,
    runs_failed: i64,
    items_in: i64,
    items_out: i64,
    generation: i64,
    applied_at: String,
}

fn select_statuses(conn: &Connection) -> rusqlite::Result<Vec<StatusRow>> {
    let mut stmt = conn.prepare(
        "SELECT o.kind, o.name,
                COALESCE(s.state, 'pending'),
                CASE WHEN s.kind IS NULL THEN ?1 ELSE s.reason END,
                s.last_success_at, s.last_error, s.last_error_at,
                COALESCE(s.runs_ok, 0), COALESCE(s.runs_failed, 0),
                COALESCE(s.items_in, 0), COALESCE(s.items_out, 0),
                o.generation, o.applied_at
         FROM objects AS o
         LEFT JOIN object_status AS s ON s.kind = o.kind AND s.name = o.name
         ORDER BY o.kind, o.name",
    )?;
    stmt.query_map([NOT_SYNCED_YET], |row| {
        Ok(StatusRow {
            kind: row.get(0)?,
            name: row.get(1)?,
            state: row.get(2)?,
            reason: row.get(3)?,
            last_success_at: row.get(4)?,
            last_error: row.get(5)?,
            last_error_at: row.get(6)?,
            runs_ok: row.get(7)?,
            runs_failed: row.get(8)?,
            items_in: row.get(9)?,
            items_out: row.get(10)?,
            generation: row.get(11)?,
            applied_at: row.get(12)?,
        })
    })?
    .collect()
}

// The status writes below insert FROM `objects`, so they change no row (and return 0) when
// the object is not applied; the caller reports that as `UnknownObject`.

fn upsert_state(
    conn: &Connection,
    kind: &str,
    name: &str,
    state: &str,
    reason: Option<&str>,
) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO object_status (kind, name, state, reason)
         SELECT kind, name, ?3, ?4 FROM objects WHERE kind = ?1 AND name = ?2
         ON CONFLICT (kind, name) DO UPDATE SET
             state = excluded.state,
             reason = excluded.reason",
        params![kind, name, state, reason],
    )
}

fn upsert_sync_start(
    conn: &Connection,
    kind: &str,
    name: &str,
    at: &str,
) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO object_status (kind, name, state, reason, last_started_at)
         SELECT kind, name, 'syncing', NULL, ?3 FROM objects WHERE kind = ?1 AND name = ?2
         ON CONFLICT (kind, name) DO UPDATE SET
             state = 'syncing',
             reason = NULL,
             last_started_at = excluded.last_started_at",
        params![kind, name, at],
    )
}

fn upsert_sync_success(
    conn: &Connection,
    kind: &str,
    name: &str,
    at: &str,
    items_in: i64,
    items_out: i64,
) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO object_status
             (kind, name, state, reason, last_success_at, runs_ok, items_in, items_out)
         SELECT kind, name, 'ready', NULL, ?3, 1, ?4, ?5 FROM objects WHERE kind = ?1 AND name = ?2
         ON CONFLICT (kind, name) DO UPDATE SET
             state = 'ready',
             reason = NULL,
             last_success_at = excluded.last_success_at,
             runs_ok = object_status.runs_ok + 1,
             items_in = object_status.items_in + excluded.items_in,
             items_out = object_status.items_out + excluded.items_out",
        params![kind, name, at, items_in, items_out],
    )
}

fn upsert_sync_failure(
    conn: &Connection,
    kind: &str,
    name: &str,
    at: &str,
    error: &str,
) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO object_status
             (kind, name, state, reason, last_error, last_error_at, runs_failed)
         SELECT kind, name, 'error', NULL, ?4, ?3, 1 FROM objects WHERE kind = ?1 AND name = ?2
         ON CONFLICT (kind, name) DO UPDATE SET
             state = 'error',
             reason = NULL,
             last_error = excluded.last_error,
             last_error_at = excluded.last_error_at,
             runs_failed = object_status.runs_failed + 1",
        params![kind, name, at, error],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_750_000_000 + secs, 0).unwrap()
    }

    fn upsert(kind: &str, name: &str, spec: serde_json::Value) -> ObjectChange {
        ObjectChange::Upsert {
            kind: kind.into(),
            name: name.into(),
            spec,
        }
    }

    fn delete(kind: &str, name: &str) -> ObjectChange {
        ObjectChange::Delete {
            kind: kind.into(),
            name: name.into(),
        }
    }

    fn state_file(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("nested/dir/state.db")
    }

    fn raw(path: &Path) -> Connection {
        Connection::open(path).unwrap()
    }

    fn status_of(store: &Store, kind: &str, name: &str) -> ObjectStatus {
        store
            .statuses()
            .unwrap()
            .into_iter()
            .find(|s| s.kind == kind && s.name == name)
            .unwrap()
    }

    #[test]
    fn open_creates_parent_directory_and_applies_every_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_file(&dir);
        let store = Store::open(&path).unwrap();

        assert!(path.is_file());
        assert_eq!(store.schema_version().unwrap(), latest_version());
        let mode: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = store
            .conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        assert!(store.applied_objects().unwrap().is_empty());
    }

    #[test]
    fn every_migration_file_is_registered_in_numbered_order() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        let registered: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{}.sql", m.name))
            .collect();
        assert_eq!(files, registered);
        // The schema version is the position in the list: numbers increase by one.
        for (i, name) in files.iter().enumerate() {
            assert!(
                name.starts_with(&format!("{:04}_", i + 1)),
                "{name} is out of sequence"
            );
        }
    }

    #[test]
    fn each_migration_commits_on_its_own_and_a_failing_one_is_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mut store = Store::open(&path).unwrap();
        let next = latest_version() + 1;
        let migrations: Vec<Migration> = MIGRATIONS
            .iter()
            .map(|m| Migration {
                name: m.name,
                sql: m.sql,
                rebuilds_tables: m.rebuilds_tables,
                then: m.then,
            })
            .chain([
                Migration {
                    name: "9998_good",
                    sql: "CREATE TABLE good (id INTEGER);",
                    rebuilds_tables: false,
                    then: None,
                },
                Migration {
                    name: "9999_bad",
                    sql: "CREATE TABLE half_done (id INTEGER); SELECT * FROM no_such_table;",
                    rebuilds_tables: false,
                    then: None,
                },
            ])
            .collect();

        let err = store.migrate_with(&migrations).unwrap_err();
        assert!(
            matches!(&err, StoreError::Migration { version, name: "9999_bad", previous, .. }
                if *version == next + 1 && *previous == next),
            "{err:?}"
        );
        assert!(err.to_string().contains("left at schema version"));
        assert_eq!(store.schema_version().unwrap(), next);
        let tables: Vec<String> = store
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE name IN ('good', 'half_done')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tables, ["good"]);
    }

    #[test]
    fn reopening_keeps_schema_and_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_file(&dir);
        let mut store = Store::open(&path).unwrap();
        store
            .apply(
                &[upsert("Channel", "ops", json!({"topic": "alerts"}))],
                t(0),
            )
            .unwrap();
        let before = store.applied_objects().unwrap();
        drop(store);

        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), latest_version());
        assert_eq!(store.applied_objects().unwrap(), before);
        drop(store);
        assert_eq!(
            Store::open(&path).unwrap().schema_version().unwrap(),
            latest_version()
        );
    }

    #[test]
    fn open_refuses_a_file_written_by_a_newer_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(Store::open(&path).unwrap());
        let newer = latest_version() + 1;
        raw(&path)
            .pragma_update(None, "user_version", newer)
            .unwrap();

        let err = Store::open(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::TooNew { found, .. } if found == newer),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "state file {} has schema version {newer}, but this switchboard understands up \
                 to {}: it was written by a newer release; upgrade switchboard or point --state \
                 elsewhere",
                path.display(),
                latest_version()
            )
        );
        // Left untouched.
        let version: i64 = raw(&path)
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, newer);

        let err = Store::open_read_only(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::TooNew { found, .. } if found == newer),
            "{err:?}"
        );
    }

    #[test]
    fn open_refuses_a_file_that_is_not_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        std::fs::write(
            &path,
            "this is not sqlite, just some text that is long enough",
        )
        .unwrap();

        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::NotADatabase(_)), "{err:?}");
        assert!(err.to_string().contains("is not a switchboard state file"));
        let err = Store::open_read_only(&path).unwrap_err();
        assert!(matches!(err, StoreError::NotADatabase(_)), "{err:?}");
    }

    #[test]
    fn apply_inserts_new_objects_at_generation_one() {
        let mut store = Store::open_in_memory().unwrap();
        let changed = store
            .apply(
                &[
                    upsert("Queue", "leads", json!({"max": 10})),
                    upsert("Channel", "ops", json!({"topic": "alerts"})),
                ],
                t(0),
            )
            .unwrap();
        assert_eq!(changed, 2);

        let objects = store.applied_objects().unwrap();
        let keys: Vec<ObjectKey> = objects.iter().map(AppliedObject::key).collect();
        assert_eq!(
            keys,
            [
                ObjectKey::new("Channel", "ops"),
                ObjectKey::new("Queue", "leads")
            ]
        );
        let ops = &objects[0];
        assert_eq!(ops.spec, json!({"topic": "alerts"}));
        assert_eq!(ops.spec_hash, spec_hash(&json!({"topic": "alerts"})));
        assert_eq!(ops.generation, 1);
        assert_eq!(ops.applied_at, t(0));
    }

    #[test]
    fn apply_bumps_generation_only_when_the_spec_changes() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .apply(&[upsert("Channel", "ops", json!({"a": 1, "b": 2}))], t(0))
            .unwrap();

        // Same spec, keys in another order: unchanged.
        let changed = store
            .apply(&[upsert("Channel", "ops", json!({"b": 2, "a": 1}))], t(10))
            .unwrap();
        assert_eq!(changed, 0);
        let ops = &store.applied_objects().unwrap()[0];
        assert_eq!((ops.generation, ops.applied_at), (1, t(0)));

        let changed = store
            .apply(&[upsert("Channel", "ops", json!({"a": 1, "b": 3}))], t(20))
            .unwrap();
        assert_eq!(changed, 1);
        let ops = &store.applied_objects().unwrap()[0];
        assert_eq!((ops.generation, ops.applied_at), (2, t(20)));
        assert_eq!(ops.spec, json!({"a": 1, "b": 3}));
        assert_eq!(ops.spec_hash, spec_hash(&json!({"b": 3, "a": 1})));
    }

    #[test]
    fn apply_delete_drops_the_objects_stored_grant_but_not_a_mailboxs() {
        // REQ: AS-04 (a removed Google account leaves no credential behind)
        let mut store = Store::open_in_memory().unwrap();
        store
            .apply(
                &[
                    upsert("GoogleAccount", "jonas", json!({})),
                    upsert("LinkedInAccount", "alice", json!({})),
                    upsert("Mailbox", "sales", json!({})),
                    upsert("GoogleAccount", "kept", json!({})),
                ],
                t(0),
            )
            .unwrap();
        let tokens = mail::OAuthTokens {
            access_token: Some(vec![1, 2, 3]),
            expires_at: Some(t(3600)),
            refresh_token: Some(vec![4, 5, 6]),
        };
        for key in [
            "GoogleAccount/jonas",
            "LinkedInAccount/alice",
            "sales",
            "GoogleAccount/kept",
        ] {
            store.set_mail_oauth_tokens(key, &tokens, t(1)).unwrap();
        }
        store
            .apply(
                &[
                    delete("GoogleAccount", "jonas"),
                    delete("LinkedInAccount", "alice"),
                    delete("Mailbox", "sales"),
                ],
                t(2),
            )
            .unwrap();
        assert_eq!(
            store.mail_oauth_tokens("GoogleAccount/jonas").unwrap(),
            None
        );
        assert_eq!(
            store.mail_oauth_tokens("LinkedInAccount/alice").unwrap(),
            None
        );
        assert!(
            store
                .mail_oauth_tokens("GoogleAccount/kept")
                .unwrap()
                .is_some()
        );
        assert!(
            store.mail_oauth_tokens("sales").unwrap().is_some(),
            "a mailbox's grant is keyed by its bare name and stays, as before"
        );
    }

    #[test]
    fn apply_delete_removes_the_object_and_its_status() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .apply(
                &[
                    upsert("Channel", "ops", json!({})),
                    upsert("Channel", "sales", json!({})),
                ],
                t(0),
            )
            .unwrap();
        store
            .record_sync_result(
                "Channel",
                "ops",
                &SyncOutcome::Success {
                    items_in: 1,
                    items_out: 1,
                },
                t(1),
            )
            .unwrap();

        let changed = store
            .apply(
                &[delete("Channel", "ops"), delete("Channel", "never-applied")],
                t(2),
            )
            .unwrap();
        assert_eq!(changed, 1);
        let keys: Vec<ObjectKey> = store
            .applied_objects()
            .unwrap()
            .iter()
            .map(AppliedObject::key)
            .collect();
        assert_eq!(keys, [ObjectKey::new("Channel", "sales")]);
        let status_rows: i64 = store
            .conn
            .query_row("SELECT COUNT(*) FROM object_status", [], |r| r.get(0))
            .unwrap();
        assert_eq!(status_rows, 0);

        // Re-applying a deleted object starts over at generation 1 and pending.
        store
            .apply(&[upsert("Channel", "ops", json!({}))], t(3))
            .unwrap();
        let ops = status_of(&store, "Channel", "ops");
        assert_eq!(
            (ops.generation, ops.state, ops.runs_ok),
            (1, ObjectState::Pending, 0)
        );
    }

    #[test]
    fn apply_is_all_or_nothing() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .conn
            .execute_batch(
                "CREATE TRIGGER fail_on_boom BEFORE INSERT ON objects WHEN NEW.name = 'boom'
                 BEGIN SELECT RAISE(ABORT, 'boom'); END;",
            )
            .unwrap();

        let err = store
            .apply(
                &[
                    upsert("Channel", "ok", json!({})),
                    upsert("Channel", "boom", json!({})),
                ],
                t(0),
            )
            .unwrap_err();
        assert!(matches!(err, StoreError::Database { .. }), "{err:?}");
        assert!(store.applied_objects().unwrap().is_empty());
    }

    #[test]
    fn a_full_disk_is_a_typed_error_and_the_store_stays_usable() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("state.db")).unwrap();
        // SQLite answers SQLITE_FULL past `max_page_count`, as on a full file system.
        let pages: i64 = store
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        store
            .conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .unwrap();
        let big = json!({ "padding": "x".repeat(64 * 1024) });
        let err = store
            .apply(&[upsert("Channel", "big", big.clone())], t(0))
            .unwrap_err();
        assert!(err.is_disk_full(), "{err:?}");
        assert!(err.to_string().contains("is full"), "{err}");
        assert!(store.applied_objects().unwrap().is_empty());

        // Room again: the same write succeeds.
        store
            .conn
            .query_row("PRAGMA max_page_count = 1000000", [], |_| Ok(()))
            .unwrap();
        store.apply(&[upsert("Channel", "big", big)], t(0)).unwrap();
        assert_eq!(store.applied_objects().unwrap().len(), 1);
    }

    #[test]
    fn statuses_default_to_pending_not_synced_yet() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .apply(&[upsert("Channel", "ops", json!({}))], t(0))
            .unwrap();

        assert_eq!(
            store.statuses().unwrap(),
            [ObjectStatus {
                kind: "Channel".into(),
                name: "ops".into(),
                state: ObjectState::Pending,
                reason: Some("not synced yet".into()),
                last_success_at: None,
                last_error: None,
                last_error_at: None,
                runs_ok: 0,
                runs_failed: 0,
                items_in: 0,
                items_out: 0,
                generation: 1,
                applied_at: t(0),
            }]
        );
    }

    #[test]
    fn sync_start_and_results_update_state_and_counters() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .apply(&[upsert("Channel", "ops", json!({}))], t(0))
            .unwrap();

        store.record_sync_start("Channel", "ops", t(1)).unwrap();
        let s = status_of(&store, "Channel", "ops");
        assert_eq!((s.state, s.reason), (ObjectState::Syncing, None));

        let ok = SyncOutcome::Success {
            items_in: 5,
            items_out: 3,
        };
        store
            .record_sync_result("Channel", "ops", &ok, t(2))
            .unwrap();
        let s = status_of(&store, "Channel", "ops");
        assert_eq!(s.state, ObjectState::Ready);
        assert_eq!(s.last_success_at, Some(t(2)));
        assert_eq!(
            (s.runs_ok, s.runs_failed, s.items_in, s.items_out),
            (1, 0, 5, 3)
        );

        store.record_sync_start("Channel", "ops", t(3)).unwrap();
        let failed = SyncOutcome::Failure {
            error: "upstream returned 503".into(),
        };
        store
            .record_sync_result("Channel", "ops", &failed, t(4))
            .unwrap();
        let s = status_of(&store, "Channel", "ops");
        assert_eq!(s.state, ObjectState::Error);
        assert_eq!(s.last_error.as_deref(), Some("upstream returned 503"));
        assert_eq!(s.last_error_at, Some(t(4)));
        assert_eq!(s.last_success_at, Some(t(2)));
        assert_eq!(
            (s.runs_ok, s.runs_failed, s.items_in, s.items_out),
            (1, 1, 5, 3)
        );

        store
            .set_state("Channel", "ops", ObjectState::Pending, Some("waiting"))
            .unwrap();
        store
            .record_sync_result("Channel", "ops", &ok, t(5))
            .unwrap();
        let s = status_of(&store, "Channel", "ops");
        assert_eq!((s.state, s.reason), (ObjectState::Ready, None));
        assert_eq!(
            (s.runs_ok, s.runs_failed, s.items_in, s.items_out),
            (2, 1, 10, 6)
        );
        // The last error stays as history.
        assert_eq!(s.last_error_at, Some(t(4)));
    }

    #[test]
    fn a_first_sync_result_without_a_start_creates_the_status() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .apply(&[upsert("Channel", "ops", json!({}))], t(0))
            .unwrap();
        let failed = SyncOutcome::Failure {
            error: "nope".into(),
        };
        store
            .record_sync_result("Channel", "ops", &failed, t(1))
            .unwrap();
        let s = status_of(&store, "Channel", "ops");
        assert_eq!(
            (s.state, s.runs_failed, s.runs_ok),
            (ObjectState::Error, 1, 0)
        );
    }

    #[test]
    fn set_state_sets_and_clears_the_reason_and_keeps_counters() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .apply(&[upsert("Channel", "ops", json!({}))], t(0))
            .unwrap();
        let ok = SyncOutcome::Success {
            items_in: 1,
            items_out: 2,
        };
        store
            .record_sync_result("Channel", "ops", &ok, t(1))
            .unwrap();

        store
            .set_state(
                "Channel",
                "ops",
                ObjectState::Pending,
                Some("secret ref missing"),
            )
            .unwrap();
        let s = status_of(&store, "Channel", "ops");
        assert_eq!(s.state, ObjectState::Pending);
        assert_eq!(s.reason.as_deref(), Some("secret ref missing"));
        assert_eq!((s.runs_ok, s.items_in), (1, 1));

        store
            .set_state("Channel", "ops", ObjectState::Ready, None)
            .unwrap();
        let s = status_of(&store, "Channel", "ops");
        assert_eq!((s.state, s.reason), (ObjectState::Ready, None));
    }

    #[test]
    fn status_writes_for_an_object_that_is_not_applied_are_refused() {
        let mut store = Store::open_in_memory().unwrap();
        let err = store
            .record_sync_start("Channel", "ghost", t(0))
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::UnknownObject { kind, name, .. } if kind == "Channel" && name == "ghost"),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("object Channel/ghost is not in the applied state")
        );
        assert!(
            store
                .set_state("Channel", "ghost", ObjectState::Ready, None)
                .is_err()
        );
        assert!(store.statuses().unwrap().is_empty());
    }

    #[test]
    fn results_are_sorted_by_kind_then_name_byte_wise() {
        let mut store = Store::open_in_memory().unwrap();
        let keys = [("b", "x"), ("B", "x"), ("a", "é"), ("a", "z"), ("a", "Z")];
        let changes: Vec<_> = keys.iter().map(|(k, n)| upsert(k, n, json!({}))).collect();
        store.apply(&changes, t(0)).unwrap();

        let mut expected: Vec<ObjectKey> =
            keys.iter().map(|(k, n)| ObjectKey::new(*k, *n)).collect();
        expected.sort();
        let objects: Vec<_> = store
            .applied_objects()
            .unwrap()
            .iter()
            .map(AppliedObject::key)
            .collect();
        let statuses: Vec<_> = store
            .statuses()
            .unwrap()
            .iter()
            .map(ObjectStatus::key)
            .collect();
        assert_eq!(objects, expected);
        assert_eq!(statuses, expected);
    }

    #[test]
    fn timestamps_are_stored_as_rfc3339_millisecond_utc_text() {
        let mut store = Store::open_in_memory().unwrap();
        let at = t(0) + chrono::Duration::nanoseconds(123_456_789);
        store
            .apply(&[upsert("Channel", "ops", json!({}))], at)
            .unwrap();

        let text: String = store
            .conn
            .query_row("SELECT applied_at FROM objects", [], |r| r.get(0))
            .unwrap();
        assert_eq!(text, "2025-06-15T15:06:40.123Z");
        assert_eq!(
            store.applied_objects().unwrap()[0].applied_at,
            t(0) + chrono::Duration::milliseconds(123)
        );
    }

    #[test]
    fn open_read_only_on_a_missing_file_is_missing_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_file(&dir);

        let err = Store::open_read_only(&path).unwrap_err();
        assert!(
            matches!(&err, StoreError::Missing(p) if p == &path),
            "{err:?}"
        );
        assert!(!path.exists());
        assert!(!path.parent().unwrap().exists());

        let in_existing_dir = dir.path().join("state.db");
        let err = Store::open_read_only(&in_existing_dir).unwrap_err();
        assert!(matches!(err, StoreError::Missing(_)), "{err:?}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn open_read_only_reads_while_a_writer_holds_the_file_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mut writer = Store::open(&path).unwrap();
        writer
            .apply(&[upsert("Channel", "ops", json!({"v": 1}))], t(0))
            .unwrap();

        let reader = Store::open_read_only(&path).unwrap();
        assert_eq!(reader.applied_objects().unwrap().len(), 1);

        // The writer holds an open write transaction: the reader still reads the last commit.
        let tx = writer
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        tx.execute("DELETE FROM objects", []).unwrap();
        assert_eq!(reader.applied_objects().unwrap().len(), 1);
        assert_eq!(reader.statuses().unwrap().len(), 1);
        tx.rollback().unwrap();

        // Commits made while the reader is open are visible to its next read.
        writer
            .apply(&[upsert("Channel", "sales", json!({}))], t(1))
            .unwrap();
        writer.record_sync_start("Channel", "ops", t(2)).unwrap();
        assert_eq!(reader.applied_objects().unwrap().len(), 2);
        assert_eq!(
            status_of(&reader, "Channel", "ops").state,
            ObjectState::Syncing
        );
        assert_eq!(reader.schema_version().unwrap(), latest_version());
    }

    #[test]
    fn open_read_only_reads_a_file_no_writer_has_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mut writer = Store::open(&path).unwrap();
        writer
            .apply(&[upsert("Channel", "ops", json!({}))], t(0))
            .unwrap();
        drop(writer);

        let reader = Store::open_read_only(&path).unwrap();
        assert_eq!(reader.applied_objects().unwrap().len(), 1);
    }

    #[test]
    fn a_read_only_store_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        Store::open(&path)
            .unwrap()
            .apply(&[upsert("Channel", "ops", json!({}))], t(0))
            .unwrap();

        let mut reader = Store::open_read_only(&path).unwrap();
        let err = reader.apply(&[delete("Channel", "ops")], t(1)).unwrap_err();
        assert!(matches!(err, StoreError::ReadOnly(_)), "{err:?}");
        let err = reader
            .record_sync_start("Channel", "ops", t(1))
            .unwrap_err();
        assert!(matches!(err, StoreError::ReadOnly(_)), "{err:?}");
        assert_eq!(reader.applied_objects().unwrap().len(), 1);
    }

    #[test]
    fn open_read_only_refuses_a_file_with_an_older_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        std::fs::write(&path, b"").unwrap();

        let err = Store::open_read_only(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::Outdated { found: 0, .. }),
            "{err:?}"
        );
        // Opening it for writing migrates it.
        assert_eq!(
            Store::open(&path).unwrap().schema_version().unwrap(),
            latest_version()
        );
        assert!(Store::open_read_only(&path).is_ok());
    }

    #[test]
    fn spec_hash_is_sha256_of_compact_json_with_sorted_keys() {
        // sha256("{}")
        assert_eq!(
            spec_hash(&json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let spec = json!({"z": [ {"b": 1, "a": null} ], "a": "x"});
        assert_eq!(canonical_json(&spec), r#"{"a":"x","z":[{"a":null,"b":1}]}"#);
        assert_eq!(
            spec_hash(&spec),
            hash_canonical(r#"{"a":"x","z":[{"a":null,"b":1}]}"#)
        );
        assert_ne!(spec_hash(&json!({"n": 1})), spec_hash(&json!({"n": 1.0})));
    }

    #[test]
    fn store_and_errors_can_cross_threads() {
        fn send<T: Send>() {}
        fn error<T: std::error::Error + Send + Sync + 'static>() {}
        send::<Store>();
        error::<StoreError>();
    }

    #[test]
    fn object_state_names_round_trip() {
        for state in ObjectState::ALL {
            assert_eq!(state.as_str().parse::<ObjectState>(), Ok(state));
            assert_eq!(state.to_string(), state.as_str());
        }
        assert_eq!(
            "Ready".parse::<ObjectState>(),
            Err(UnknownObjectState("Ready".into()))
        );
    }

    #[test]
    fn the_schema_rejects_unknown_states() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .apply(&[upsert("Channel", "ops", json!({}))], t(0))
            .unwrap();
        let result = store.conn.execute(
            "INSERT INTO object_status (kind, name, state) VALUES ('Channel', 'ops', 'bogus')",
            [],
        );
        assert!(result.is_err());
    }
}
