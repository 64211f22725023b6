//! Operator API handlers and their DTOs: `/api/v1/objects` and the sync request.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Kind;
use crate::config::kinds::{MailboxSpec, Operation};
use crate::connector::SyncRequestError;
use crate::mail::access;
use std::collections::BTreeMap;

use crate::store::mail::FolderStatus;
use crate::store::sync_state::SyncRunRecord;
use crate::store::{ObjectState, ObjectStatus};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;

/// `?limit=` when absent.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `?limit=`.
pub const MAX_LIMIT: usize = 1000;

/// `?limit=&cursor=` of list endpoints.
#[derive(Debug, Deserialize)]
pub struct Page {
    limit: Option<usize>,
    cursor: Option<String>,
}

/// A list answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct List<T> {
    items: Vec<T>,
    total: usize,
    next_cursor: Option<String>,
}

impl<T> List<T> {
    /// One page of `total` items that started at `offset`; `nextCursor` points past it while
    /// more remain.
    pub fn page(items: Vec<T>, total: usize, offset: usize) -> List<T> {
        let end = offset.saturating_add(items.len());
        List {
            items,
            total,
            next_cursor: (end < total).then(|| end.to_string()),
        }
    }
}

/// One object of the status view: `GET /api/v1/objects` items and `status --format json` rows.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDto {
    kind: String,
    name: String,
    state: &'static str,
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
    /// Mailboxes only: each folder with stored mail or a checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    folders: Option<Vec<FolderDto>>,
    /// Record syncs only (`ContactSync`, `CalendarSync`): the last run, conflicts, progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    sync: Option<SyncDto>,
}

/// A record sync's part of the status view.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncDto {
    /// What the last successful run moved; null before the first.
    last_run: Option<LastRunDto>,
    /// Conflicts resolved in all runs (`sync_conflicts_total` survives restarts here).
    conflicts_total: u64,
    /// The error of the last run while it is the current state (null once a run succeeds;
    /// `lastError` keeps it as history).
    current_error: Option<String>,
    /// While a run is in progress: items done of the items it knows about (a long first
    /// sync shows how far it got); null otherwise.
    progress: Option<SyncProgressDto>,
}

/// What one run moved.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastRunDto {
    items_in: u64,
    items_out: u64,
    conflicts: u64,
}

/// How far a run got.
#[derive(Debug, Serialize)]
pub struct SyncProgressDto {
    done: u64,
    known: u64,
}

/// The kinds whose status view has a [`SyncDto`].
const RECORD_SYNC_KINDS: [Kind; 2] = [Kind::ContactSync, Kind::CalendarSync];

/// A mailbox folder in the status view.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderDto {
    name: String,
    /// Messages stored from it (and not removed from it on the server).
    messages: u64,
    /// While its first sync runs: `{loaded, total}`; otherwise null.
    first_sync: Option<ProgressDto>,
}

/// How far a folder's first sync got.
#[derive(Debug, Serialize)]
pub struct ProgressDto {
    loaded: u64,
    total: u64,
}

impl ObjectDto {
    /// The status view of one object; a Mailbox gets its folders out of `folders` (every
    /// mailbox's, as `Store::mail_folder_statuses` returns them).
    pub fn new(status: ObjectStatus, folders: &[FolderStatus]) -> ObjectDto {
        let mailbox = (status.kind == Kind::Mailbox.as_str()).then(|| {
            folders
                .iter()
                .filter(|f| f.mailbox == status.name)
                .map(|f| FolderDto {
                    name: f.folder.clone(),
                    messages: f.messages,
                    first_sync: f.first_sync.map(|p| ProgressDto {
                        loaded: p.loaded,
                        total: p.total,
                    }),
                })
                .collect()
        });
        ObjectDto {
            folders: mailbox,
            ..ObjectDto::from(status)
        }
    }

    /// Adds a record sync's run record (`records` as `Store::sync_run_records` returns them,
    /// by `Kind/name`); other kinds are left as they are.
    pub fn with_sync(
        mut self,
        status: &ObjectStatus,
        records: &BTreeMap<String, SyncRunRecord>,
    ) -> ObjectDto {
        if !RECORD_SYNC_KINDS.iter().any(|k| k.as_str() == status.kind) {
            return self;
        }
        let record = records
            .get(&format!("{}/{}", status.kind, status.name))
            .copied()
            .unwrap_or_default();
        self.sync = Some(SyncDto {
            last_run: (status.runs_ok > 0).then_some(LastRunDto {
                items_in: record.last_in,
                items_out: record.last_out,
                conflicts: record.last_conflicts,
            }),
            conflicts_total: record.conflicts_total,
            current_error: (status.state == ObjectState::Error)
                .then(|| status.last_error.clone())
                .flatten(),
            progress: record
                .progress
                .filter(|_| status.state == ObjectState::Syncing)
                .map(|p| SyncProgressDto {
                    done: p.done,
                    known: p.known,
                }),
        });
        self
    }
}

pub(super) fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl From<ObjectStatus> for ObjectDto {
    fn from(s: ObjectStatus) -> Self {
        ObjectDto {
            state: s.state.as_str(),
            last_success_at: s.last_success_at.map(ts),
            last_error_at: s.last_error_at.map(ts),
            applied_at: ts(s.applied_at),
            kind: s.kind,
            name: s.name,
            reason: s.reason,
            last_error: s.last_error,
            runs_ok: s.runs_ok,
            runs_failed: s.runs_failed,
            items_in: s.items_in,
            items_out: s.items_out,
            generation: s.generation,
            folders: None,
            sync: None,
        }
    }
}

/// Checks `?limit=` and decodes `?cursor=` (an opaque offset) into `(offset, limit)`.
pub fn page_bounds(page: &Page) -> Result<(usize, usize), ApiError> {
    let limit = page.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let offset = match &page.cursor {
        None => 0,
        Some(c) => c
            .parse()
            .map_err(|_| ApiError::bad_request("invalid cursor; pass back a nextCursor value"))?,
    };
    Ok((offset, limit))
}

/// `reason` or `lastError` for a caller who is no administrator: the paths of secret files
/// left out (`{file: …}`), since they tell where the installation keeps its secrets.
fn without_secret_paths(text: String) -> String {
    static FILE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\{file: [^}]*\}").expect("the pattern is valid")
    });
    if FILE.is_match(&text) {
        FILE.replace_all(&text, "{file: …}").into_owned()
    } else {
        text
    }
}

/// `GET /api/v1/objects`. The paths of secret files in `reason` and `lastError` are shown to
/// `CanManageAdministration` holders only.
pub async fn list_objects(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<List<ObjectDto>>, ApiError> {
    let admin = caller
        .operations
        .contains(&Operation::CanManageAdministration);
    let (offset, limit) = page_bounds(&page)?;
    let (statuses, folders, records) = state
        .engine
        .store()
        .call(|s| {
            Ok((
                s.statuses()?,
                s.mail_folder_statuses()?,
                s.sync_run_records()?,
            ))
        })
        .await
        .map_err(ApiError::store)?;
    let total = statuses.len();
    let items: Vec<ObjectDto> = statuses
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|s| ObjectDto::new(s.clone(), &folders).with_sync(&s, &records))
        .map(|mut o| {
            // A grant refused with invalid_grant (BX-04): the object holding it says so, even a
            // LinkedInAccount, which has no runs of its own (`switchboard status` reads the
            // same marks from the store).
            if let Some(reason) = state.metrics.grants.needs_consent(&o.kind, &o.name) {
                o.state = ObjectState::Error.as_str();
                o.last_error = Some(crate::telemetry::grants::consent_needed(
                    &o.kind, &o.name, &reason,
                ));
            }
            if !admin {
                o.reason = o.reason.map(without_secret_paths);
                o.last_error = o.last_error.map(without_secret_paths);
                if let Some(sync) = o.sync.as_mut() {
                    sync.current_error = sync.current_error.take().map(without_secret_paths);
                }
            }
            o
        })
        .collect();
    let end = offset.saturating_add(items.len());
    let next_cursor = (end < total).then(|| end.to_string());
    Ok(Json(List {
        items,
        total,
        next_cursor,
    }))
}

/// The answer to an accepted sync request.
#[derive(Debug, Serialize)]
pub struct Queued {
    queued: bool,
}

/// `POST /api/v1/objects/{kind}/{name}/sync`.
///
/// Who may ask (EP-09, MB-04): a Mailbox by a `CanManageAdministration` holder, its owner, or
/// a holder of its `configure` right (plus `CanManageSharedMailboxSync` when it is shared) —
/// the rule is `mail::access::may_sync`; every other kind, MailProvider included, only by a
/// `CanManageAdministration` holder.
pub async fn sync_object(
    State(state): State<AppState>,
    caller: Caller,
    Path((kind, name)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let unknown = || {
        ApiError::not_found(format!(
            "no object {kind}/{name} in the running configuration"
        ))
    };
    let parsed = Kind::parse(&kind);
    if parsed == Some(Kind::Mailbox) {
        let config = state.engine.config();
        let Some(mailbox) = config.get::<MailboxSpec>(&name) else {
            // Only an administrator learns that a mailbox does not exist.
            caller.require(Operation::CanManageAdministration)?;
            return Err(unknown());
        };
        access::may_sync(&config, &caller.user, &caller.operations, &name, mailbox)
            .map_err(|refusal| ApiError::forbidden(refusal.to_string()))?;
    } else {
        caller.require(Operation::CanManageAdministration)?;
    }
    let parsed = parsed.ok_or_else(unknown)?;
    match state.engine.request_sync(parsed, &name) {
        Ok(()) => Ok((StatusCode::ACCEPTED, Json(Queued { queued: true }))),
        Err(SyncRequestError::Unknown) => Err(unknown()),
        Err(SyncRequestError::NotSyncable(reason)) => Err(ApiError::conflict(
            "not-syncable",
            format!("{kind}/{name} cannot be synced: {reason}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_paths_are_left_out_for_non_administrators() {
        assert_eq!(
            without_secret_paths(
                "secret {file: /etc/sb/creds/token}: No such file or directory (os error 2)".into()
            ),
            "secret {file: …}: No such file or directory (os error 2)"
        );
        assert_eq!(
            without_secret_paths("secret {env: TOKEN}: the environment variable is not set".into()),
            "secret {env: TOKEN}: the environment variable is not set"
        );
    }
}
