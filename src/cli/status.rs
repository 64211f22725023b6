//! `switchboard status`: every applied object's state, read from the store — works whether
//! or not the daemon runs (SQLite WAL lets a reader in beside it).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use super::Format;
use crate::config::Kind;
use crate::http::api::ObjectDto;
use crate::store::grants::GrantRefusal;
use crate::store::mail::FolderStatus;
use crate::store::sync_state::SyncRunRecord;
use crate::store::{ObjectState, ObjectStatus, Store, StoreError};
use crate::telemetry::grants::consent_needed;

/// Prints every object's status; exit 1 only when the store cannot be read.
pub fn run(state: &Path, format: Format) -> ExitCode {
    let read = Store::open_read_only(state).and_then(|s| {
        Ok((
            with_refusals(s.statuses()?, &s.grant_refusals()?),
            s.mail_folder_statuses()?,
            s.sync_run_records()?,
        ))
    });
    let (statuses, folders, records) = match read {
        Ok(s) => s,
        Err(StoreError::Missing(path)) => {
            if format == Format::Json {
                println!("[]");
            } else {
                println!(
                    "nothing applied yet: no state file at {} (start the daemon with `switchboard run`)",
                    path.display()
                );
            }
            return ExitCode::SUCCESS;
        }
        Err(e) => return super::fail(e),
    };
    match format {
        Format::Json => {
            // The same shape as the operator API's `GET /api/v1/objects` items.
            let rows: Vec<ObjectDto> = statuses
                .iter()
                .map(|s| ObjectDto::new(s.clone(), &folders).with_sync(s, &records))
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&rows).expect("rows serialize")
            );
        }
        Format::Text => print!("{}", table(&statuses, &folders, &records)),
    }
    ExitCode::SUCCESS
}

/// Objects whose OAuth grant the token endpoint refused (BX-04) are in error, saying that
/// consent is needed and how — as the operator API shows them; a LinkedInAccount has no runs
/// of its own that would say so.
fn with_refusals(mut statuses: Vec<ObjectStatus>, refusals: &[GrantRefusal]) -> Vec<ObjectStatus> {
    for s in &mut statuses {
        if let Some(r) = refusals
            .iter()
            .find(|r| r.kind == s.kind && r.name == s.name)
        {
            s.state = ObjectState::Error;
            s.last_error = Some(consent_needed(&r.kind, &r.name, &r.reason));
        }
    }
    statuses
}

fn table(
    statuses: &[ObjectStatus],
    folders: &[FolderStatus],
    records: &BTreeMap<String, SyncRunRecord>,
) -> String {
    let mut rows = vec![[
        "OBJECT".to_owned(),
        "STATE".to_owned(),
        "LAST SUCCESS".to_owned(),
        "RUNS OK/FAILED".to_owned(),
        "ITEMS IN/OUT".to_owned(),
        "DETAIL".to_owned(),
    ]];
    for s in statuses {
        let detail = match (&s.state, &s.last_error, &s.reason) {
            (crate::store::ObjectState::Error, Some(e), _) => e.clone(),
            (_, _, Some(r)) => r.clone(),
            _ => String::new(),
        };
        rows.push([
            format!("{}/{}", s.kind, s.name),
            s.state.as_str().to_owned(),
            s.last_success_at.map_or("-".to_owned(), |t| {
                t.format("%Y-%m-%d %H:%M:%S").to_string()
            }),
            format!("{}/{}", s.runs_ok, s.runs_failed),
            format!("{}/{}", s.items_in, s.items_out),
            detail.lines().next().unwrap_or("").to_owned(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        // Under a mailbox's row, one line per folder (row 0 is the header).
        if let Some(s) = i.checked_sub(1).map(|i| &statuses[i])
            && s.kind == Kind::Mailbox.as_str()
        {
            out.push_str(&folder_lines(&s.name, folders));
        }
        if let Some(s) = i.checked_sub(1).map(|i| &statuses[i])
            && let Some(r) = records.get(&format!("{}/{}", s.kind, s.name))
        {
            out.push_str(&sync_line(s, r));
        }
    }
    out
}

/// `  last run: 3 in, 1 out, 0 conflicts; 2 conflicts in all (syncing: 400 of 2000 done)`
/// under a record sync's row.
fn sync_line(s: &ObjectStatus, r: &SyncRunRecord) -> String {
    let last = if s.runs_ok > 0 {
        format!(
            "last run: {} in, {} out, {} conflicts; ",
            r.last_in, r.last_out, r.last_conflicts
        )
    } else {
        String::new()
    };
    let progress = r
        .progress
        .filter(|_| s.state == ObjectState::Syncing)
        .map_or(String::new(), |p| {
            format!(" (syncing: {} of {} done)", p.done, p.known)
        });
    format!("  {last}{} conflicts in all{progress}\n", r.conflicts_total)
}

/// `  INBOX: 1,200 messages (first sync: 400 of 650 loaded)` per folder of `mailbox`.
fn folder_lines(mailbox: &str, folders: &[FolderStatus]) -> String {
    let mine: Vec<&FolderStatus> = folders.iter().filter(|f| f.mailbox == mailbox).collect();
    let width = mine
        .iter()
        .map(|f| f.folder.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for f in mine {
        let noun = if f.messages == 1 {
            "message"
        } else {
            "messages"
        };
        let progress = f.first_sync.map_or(String::new(), |p| {
            format!("  (first sync: {} of {} loaded)", p.loaded, p.total)
        });
        out.push_str(&format!(
            "  {:<width$}  {} {noun}{progress}\n",
            f.folder, f.messages
        ));
    }
    out
}
