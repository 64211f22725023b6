//! The `CalendarSync` connector over a `DavAccount` (CalDAV): two-way sync of meetings and
//! tasks with the record store (AS-01's since-date and collection selection, AS-02, CS-04,
//! CS-05, BX-01, BX-02, BX-03). It runs as `ContactSync` does (`contacts.rs`), item for item:
//!
//! - *Collections*: the calendars found through `calendar-home-set`; meetings come from those
//!   `importMeetings.calendars` selects that accept `VEVENT`, tasks from those
//!   `importTasks.folders` selects that accept `VTODO` (by display name or path, or `all`).
//!   Remembered between runs, keyed by URL, login and selection.
//! - *Pull*, per calendar: `sync-collection` from the stored token (a refused token falls back
//!   to a full listing), `calendar-multiget` in batches of what changed, each item imported
//!   with origin `CalendarSync/NAME` (found by its link, else by its iCalendar UID, else the
//!   activity this sync created under that UID, else created, owned by the account's user).
//!   `since` (AS-01): an item not yet linked that starts (or is due) before `since` and does
//!   not recur past it is skipped — filtered after the fetch, not with a time-range
//!   `calendar-query`, because the `sync-collection` listing must be taken anyway for its
//!   token and a time-range query gives none (and Radicale expands recurrences to answer
//!   one). Already linked items are updated whatever their date.
//! - *Push*: the journal's activity changes since the exported position, not made by this
//!   sync. A linked activity is patched into its stored object (`ical.rs`) and written with
//!   `If-Match`; an unlinked one owned by the account's user is created with
//!   `If-None-Match: *` under a UID derived from the sync and the activity id (read back on
//!   a later pull as the same activity, so a crash between PUT and checkpoint makes no second
//!   copy) — as a `VEVENT` in the first meeting calendar when it is shown in the schedule,
//!   else as a `VTODO` in the first task calendar (AS-02). A 412 is a conflict, resolved by
//!   policy and written again.
//! - *Conflicts*: `winner` as for contacts, `newest` comparing the object's `LAST-MODIFIED`
//!   with the activity's last change here; `union: [emails]` merges the participants.
//! - *Deletes* (CS-05): a removed item unlinks the activity (`keep`) or deletes it
//!   (`propagate`); an activity deleted here is deleted there only with `propagate` and only
//!   when it was synced there.
//! - *Invitations* (BX-03): with `none`, every write carries `Schedule-Reply: F` and every
//!   `ORGANIZER` / `ATTENDEE` line `SCHEDULE-AGENT=CLIENT`, so the server sends nothing to
//!   anyone; with `external`, only addresses outside the company are left to the server (an
//!   address is the company's when it is a `User`'s, or in the mail domain of a `User`'s
//!   address); with `all`, the server schedules everyone.
//!
//! OM-01: the online-meeting link is not decided here: the object's `URL` (or conference
//! property), location and description are stored, and the reader finds the link with the
//! running config's `MeetingService` masks, as for every activity.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, NaiveTime, Utc};
use sha2::{Digest, Sha256};
use url::Url;

use crate::config::kinds::{
    CalendarSyncSpec, ConflictPolicy, ConflictWinner, DavAccountSpec, DeletePolicy, Invitations,
    UnionField, UserSpec,
};
use crate::config::types::AllOrList;
use crate::config::{ConfigSet, Kind, KindSpec, Object};
use crate::connector::{
    Connector, ConnectorError, KindConnectors, SyncContext, SyncFuture, SyncReport, Trigger,
};
use crate::store::activities::{Activity, ActivityChanges, ActivityKind, RemoteActivity};
use crate::store::records::{ChangeOp, RecordKind, SyncRecordState};
use crate::store::{Store, StoreError};

use super::contacts::{parse_rev, refused};
use super::dav::caldav::Calendar;
use super::dav::{DavClient, DavError, Item, MULTIGET_BATCH, Written, join};
use super::ical::{self, Fields, ItemKind};
use super::report::RunRecorder;

/// How many journal entries one push step reads.
const JOURNAL_BATCH: usize = 500;
/// How many times a write that met a 412 is re-read, resolved and tried again.
const CONFLICT_RETRIES: usize = 3;

/// The `CalendarSync` kind's part of the connector contract.
pub struct CalendarSyncConnectors;

impl KindConnectors for CalendarSyncConnectors {
    fn build(&self, object: &Object, set: &ConfigSet) -> Result<Arc<dyn Connector>, String> {
        Ok(Arc::new(CalendarSyncConnector::new(object, set)?))
    }

    fn trigger(&self, object: &Object, _set: &ConfigSet) -> Trigger {
        Trigger::scheduled(
            CalendarSyncSpec::from_spec(&object.spec).and_then(|s| s.schedule.as_ref()),
        )
    }
}

/// One `CalendarSync` object over a `DavAccount`.
pub struct CalendarSyncConnector {
    origin: String,
    /// Conflicts, progress and the run record (shared with ContactSync).
    recorder: RunRecorder,
    url: Url,
    spec: CalendarSyncSpec,
    /// The account's `User`.
    owner: String,
    /// The company's addresses and mail domains (BX-03's `external`).
    company_addresses: Vec<String>,
    company_domains: Vec<String>,
    collections_key: String,
    client: DavClient,
}

/// The calendars a run works with.
#[derive(Debug, Clone, Default)]
struct Selected {
    /// Meeting calendars (`VEVENT`).
    meetings: Vec<Url>,
    /// Task calendars (`VTODO`).
    tasks: Vec<Url>,
}

impl Selected {
    fn all(&self) -> Vec<Url> {
        let mut all = self.meetings.clone();
        for t in &self.tasks {
            if !all.contains(t) {
                all.push(t.clone());
            }
        }
        all
    }
}

fn store_err(e: StoreError) -> ConnectorError {
    ConnectorError::Failed(e.to_string())
}

fn dav_err(e: DavError) -> ConnectorError {
    ConnectorError::Failed(e.to_string())
}

/// The calendars of `found` accepting `component` that `names` selects.
fn select(found: &[Calendar], names: &AllOrList, component: &str) -> Vec<Url> {
    found
        .iter()
        .filter(|c| c.accepts(component))
        .filter(|c| match names {
            AllOrList::All(_) => true,
            AllOrList::List(names) => names.iter().any(|n| {
                let n = n.trim_end_matches('/');
                c.display_name.as_deref() == Some(n)
                    || c.url.path().trim_end_matches('/') == n
                    || c.url.as_str().trim_end_matches('/') == n
            }),
        })
        .map(|c| c.url.clone())
        .collect()
}

/// The UID of the item Switchboard creates for activity `id`: the same on every attempt.
fn stable_uid(origin: &str, id: i64) -> String {
    let digest = hex::encode(Sha256::digest(origin.as_bytes()));
    format!("switchboard-{}-activity-{id}", &digest[..12])
}

/// The activity id in a UID [`stable_uid`] made for this sync.
fn own_id(origin: &str, uid: &str) -> Option<i64> {
    let digest = hex::encode(Sha256::digest(origin.as_bytes()));
    uid.strip_prefix(&format!("switchboard-{}-activity-", &digest[..12]))?
        .parse()
        .ok()
}

/// The store's changes for an object read from the server.
fn changes_of(f: &Fields) -> ActivityChanges {
    let meeting = f.kind == ItemKind::Event;
    ActivityChanges {
        kind: Some(if meeting {
            ActivityKind::Meeting
        } else {
            ActivityKind::Task
        }),
        title: Some(f.summary.clone().unwrap_or_default()),
        description: Some(f.description.clone()),
        location: Some(f.location.clone()),
        start: Some(f.start),
        end: Some(if meeting { f.end } else { None }),
        all_day: Some(f.all_day),
        due: Some(f.due),
        status: Some(f.status.clone()),
        show_in_schedule: Some(meeting),
        owner: None,
        organizer: Some(f.organizer.clone()),
        participants: Some(f.attendees.clone()),
        online_meeting_url: Some(f.url.clone()),
        time_zone: Some(f.time_zone.clone()),
        rrule: Some(f.rrule.clone()),
    }
}

/// The object fields of an activity (AS-02: shown in the schedule → an event).
fn fields_of(a: &Activity, old: Option<&Fields>) -> Fields {
    let kind = old.map(|o| o.kind).unwrap_or(if a.show_in_schedule {
        ItemKind::Event
    } else {
        ItemKind::Todo
    });
    Fields {
        kind,
        uid: old.and_then(|o| o.uid.clone()),
        summary: Some(a.title.clone()),
        description: a.description.clone(),
        location: a.location.clone(),
        start: a.start,
        end: a.end,
        due: a.due,
        all_day: a.all_day,
        time_zone: a.time_zone.clone(),
        status: a.status.clone(),
        organizer: a.organizer.as_ref().map(|o| o.email.clone()),
        attendees: a
            .participants
            .iter()
            .map(|p| (p.email.clone(), p.response.clone()))
            .collect(),
        rrule: a.rrule.clone(),
        url: a.online_meeting_url.clone(),
        last_modified: None,
        warnings: Vec::new(),
    }
}

/// The resolution of a conflict (CS-04, BX-02): the winner's fields; with `union: [emails]`
/// both sides' participants.
fn resolve(
    policy: &ConflictPolicy,
    local: &Activity,
    local_changed: Option<DateTime<Utc>>,
    remote: &Fields,
) -> ActivityChanges {
    let remote_wins = match policy.winner {
        ConflictWinner::Remote => true,
        ConflictWinner::Switchboard => false,
        ConflictWinner::Newest => match (remote.last_modified, local_changed) {
            (Some(there), Some(here)) => there > here,
            _ => true,
        },
    };
    let local_fields = fields_of(local, Some(remote));
    let (winner, loser) = if remote_wins {
        (remote, &local_fields)
    } else {
        (&local_fields, remote)
    };
    let mut changes = changes_of(winner);
    if policy.union.contains(&UnionField::Emails) {
        let mut all = winner.attendees.clone();
        for (a, r) in &loser.attendees {
            if !all.iter().any(|(e, _)| e == a) {
                all.push((a.clone(), r.clone()));
            }
        }
        changes.participants = Some(all);
    }
    changes
}

impl CalendarSyncConnector {
    /// Builds the connector: the account must be a `DavAccount`, `export.groups` `all`. The
    /// account's password is resolved here, at apply. `Err` is the pending reason.
    pub fn new(object: &Object, set: &ConfigSet) -> Result<CalendarSyncConnector, String> {
        let spec = CalendarSyncSpec::from_spec(&object.spec)
            .ok_or_else(|| format!("{} is not a CalendarSync", object.id()))?;
        let Some(account) = set.get::<DavAccountSpec>(&spec.account) else {
            return Err(format!(
                "calendar sync over `{}` is not built yet: only a DavAccount (CalDAV) syncs so far (issue: sync)",
                spec.account
            ));
        };
        if spec.export.enabled && matches!(spec.export.groups, AllOrList::List(_)) {
            return Err(
                "export.groups by group is not built yet for a DavAccount; use `all` (issue: sync)"
                    .into(),
            );
        }
        let account_object = set
            .object(Kind::DavAccount, &spec.account)
            .ok_or("the DavAccount object is missing")?;
        let secrets = crate::connector::resolve_secrets(account_object)
            .map_err(|e| format!("DavAccount {}: {e}", spec.account))?;
        let password = secrets
            .get("/password")
            .cloned()
            .ok_or("the DavAccount's password did not resolve")?;
        let ca_file = account.ca_file.as_ref().map(|p| {
            if p.is_absolute() {
                p.clone()
            } else {
                account_object.origin.dir().join(p)
            }
        });
        let client = DavClient::new(&account.username, password, ca_file.as_deref())?;
        let text = |l: &AllOrList| match l {
            AllOrList::All(_) => "all".to_owned(),
            AllOrList::List(list) => list.join("\n"),
        };
        let collections_key = hex::encode(Sha256::digest(
            format!(
                "{}\n{}\n{}\n{}",
                account.url.as_str(),
                account.username,
                text(&spec.import_meetings.calendars),
                text(&spec.import_tasks.folders)
            )
            .as_bytes(),
        ));
        let company_addresses: Vec<String> = set
            .specs::<UserSpec>()
            .map(|(_, u)| u.email.to_string().to_lowercase())
            .collect();
        let mut company_domains: Vec<String> = company_addresses
            .iter()
            .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d.to_owned()))
            .collect();
        company_domains.sort();
        company_domains.dedup();
        Ok(CalendarSyncConnector {
            origin: format!("CalendarSync/{}", object.name),
            recorder: RunRecorder::new("CalendarSync", &object.name),
            url: account.url.url().clone(),
            spec: spec.clone(),
            owner: account.user.clone(),
            company_addresses,
            company_domains,
            collections_key,
            client,
        })
    }

    /// Whether the server must not schedule `address` (BX-03).
    fn client_only(&self, address: &str) -> bool {
        match self.spec.invitations {
            Invitations::None => true,
            Invitations::All => false,
            Invitations::External => {
                self.company_addresses.iter().any(|a| a == address)
                    || address
                        .rsplit_once('@')
                        .is_some_and(|(_, d)| self.company_domains.iter().any(|c| c == d))
            }
        }
    }

    fn quiet(&self) -> bool {
        self.spec.invitations == Invitations::None
    }

    fn check_cancel(ctx: &SyncContext<'_>) -> Result<(), ConnectorError> {
        if ctx.cancel.is_cancelled() {
            Err(ConnectorError::Cancelled)
        } else {
            Ok(())
        }
    }

    fn count_conflict(&self, ctx: &SyncContext<'_>) {
        self.recorder.conflict(ctx);
    }

    /// The selected calendars: remembered, else discovered and selected now.
    async fn collections(&self, ctx: &SyncContext<'_>) -> Result<Selected, ConnectorError> {
        let origin = self.origin.clone();
        let remembered = ctx
            .store
            .call(move |s| s.sync_checkpoint(&origin, "collections"))
            .await
            .map_err(store_err)?;
        if let Some(text) = remembered {
            let mut lines = text.lines();
            if lines.next() == Some(self.collections_key.as_str()) {
                let mut sel = Selected::default();
                for l in lines {
                    match l.split_once(' ') {
                        Some(("meetings", u)) => sel.meetings.extend(Url::parse(u).ok()),
                        Some(("tasks", u)) => sel.tasks.extend(Url::parse(u).ok()),
                        _ => {}
                    }
                }
                if !sel.all().is_empty() {
                    return Ok(sel);
                }
            }
        }
        let found = self
            .client
            .discover_calendars(&self.url)
            .await
            .map_err(dav_err)?;
        let sel = Selected {
            meetings: select(&found, &self.spec.import_meetings.calendars, "VEVENT"),
            tasks: select(&found, &self.spec.import_tasks.folders, "VTODO"),
        };
        if sel.all().is_empty() {
            let names: Vec<String> = found
                .iter()
                .map(|c| {
                    c.display_name
                        .clone()
                        .unwrap_or_else(|| c.url.path().to_owned())
                })
                .collect();
            return Err(ConnectorError::Failed(format!(
                "no calendar matches importMeetings.calendars or importTasks.folders (found: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        }
        let mut text = vec![self.collections_key.clone()];
        text.extend(sel.meetings.iter().map(|u| format!("meetings {u}")));
        text.extend(sel.tasks.iter().map(|u| format!("tasks {u}")));
        let text = text.join("\n");
        let (origin, at) = (self.origin.clone(), ctx.clock.now());
        ctx.store
            .call(move |s| s.set_sync_checkpoint(&origin, "collections", Some(&text), at))
            .await
            .map_err(store_err)?;
        Ok(sel)
    }

    /// Whether an item not yet linked is older than `since` (AS-01).
    fn before_since(&self, f: &Fields) -> bool {
        let since = self.spec.since.and_time(NaiveTime::MIN).and_utc();
        let Some(at) = f.end.or(f.start).or(f.due) else {
            return false;
        };
        if at >= since {
            return false;
        }
        match &f.rrule {
            None => true,
            Some(rule) => {
                // a series recurs past `since` unless it ended (UNTIL) or counts out before
                rule.split(';').any(|p| {
                    p.strip_prefix("UNTIL=")
                        .and_then(|u| {
                            parse_rev(if u.len() == 8 { "" } else { u }).or_else(|| {
                                chrono::NaiveDate::parse_from_str(u, "%Y%m%d")
                                    .ok()
                                    .map(|d| d.and_time(NaiveTime::MIN).and_utc())
                            })
                        })
                        .is_some_and(|until| until < since)
                })
            }
        }
    }

    /// Pulls one calendar; adds the ids of the activities it imported to `imported`.
    async fn pull(
        &self,
        ctx: &SyncContext<'_>,
        collection: &Url,
        sel: &Selected,
        report: &mut SyncReport,
        imported: &mut Vec<i64>,
    ) -> Result<(), ConnectorError> {
        let scope = format!("token {collection}");
        let (origin, scope2) = (self.origin.clone(), scope.clone());
        let token = ctx
            .store
            .call(move |s| s.sync_checkpoint(&origin, &scope2))
            .await
            .map_err(store_err)?;
        let (delta, full) = match self
            .client
            .sync_collection(collection, token.as_deref())
            .await
        {
            Err(DavError::InvalidSyncToken) => {
                tracing::warn!(sync = %self.origin, collection = %collection, "the server refused the sync token; listing the calendar again");
                let delta = self
                    .client
                    .sync_collection(collection, None)
                    .await
                    .map_err(dav_err)?;
                (delta, true)
            }
            other => (other.map_err(dav_err)?, token.is_none()),
        };
        // The stored versions in one read, not one store call per listed item.
        let origin = self.origin.clone();
        let versions: HashMap<String, Option<String>> = ctx
            .store
            .call(move |s| s.sync_versions(&origin, RecordKind::Activity))
            .await
            .map_err(store_err)?
            .into_iter()
            .collect();
        let wanted: Vec<String> = delta
            .changed
            .iter()
            .filter(|(href, etag)| {
                versions
                    .get(href)
                    .is_none_or(|known| etag.is_none() || known != etag)
            })
            .map(|(href, _)| href.clone())
            .collect();
        let take_events = self.spec.import_meetings.enabled && sel.meetings.contains(collection);
        let take_tasks = self.spec.import_tasks.enabled && sel.tasks.contains(collection);
        self.recorder.known(wanted.len());
        for batch in wanted.chunks(MULTIGET_BATCH) {
            Self::check_cancel(ctx)?;
            let items = self
                .client
                .calendar_multiget(collection, batch)
                .await
                .map_err(dav_err)?;
            for id in self
                .import_batch(ctx, items, take_events, take_tasks)
                .await?
            {
                report.items_in += 1;
                imported.push(id);
            }
            self.recorder.done(ctx, batch.len()).await?;
        }
        let mut removed: Vec<String> = if full {
            Vec::new()
        } else {
            delta.removed.clone()
        };
        if full && token.is_some() {
            let listed: std::collections::HashSet<&str> =
                delta.changed.iter().map(|(h, _)| h.as_str()).collect();
            let origin = self.origin.clone();
            let links = ctx
                .store
                .call(move |s| s.sync_links(&origin, RecordKind::Activity))
                .await
                .map_err(store_err)?;
            let prefix = collection.path().to_owned();
            removed.extend(
                links
                    .into_iter()
                    .map(|(_, href)| href)
                    .filter(|h| h.starts_with(&prefix) && !listed.contains(h.as_str())),
            );
        }
        for href in removed {
            if self.remote_removed(ctx, &href).await? {
                report.items_in += 1;
            }
        }
        let (origin, at) = (self.origin.clone(), ctx.clock.now());
        let token = delta.token.clone();
        ctx.store
            .call(move |s| s.set_sync_checkpoint(&origin, &scope, token.as_deref(), at))
            .await
            .map_err(store_err)?;
        Ok(())
    }

    /// A remote item is gone: CS-05.
    async fn remote_removed(
        &self,
        ctx: &SyncContext<'_>,
        href: &str,
    ) -> Result<bool, ConnectorError> {
        let (origin, h) = (self.origin.clone(), href.to_owned());
        let propagate = self.spec.deletes == DeletePolicy::Propagate;
        let at = ctx.clock.now();
        ctx.store
            .call(move |s| {
                let Some(link) = s.sync_record_by_remote(&origin, RecordKind::Activity, &h)? else {
                    return Ok(false);
                };
                s.unlink_sync_record(&origin, RecordKind::Activity, link.record_id)?;
                if propagate && s.activity(link.record_id)?.is_some() {
                    let _ = refused(s.delete_activity(link.record_id, None, &origin, at))?;
                }
                Ok(true)
            })
            .await
            .map_err(store_err)
    }

    /// Imports one object read from the server, resolving a conflict with a local change.
    /// Imports one multiget answer: the local side of every item read in one store call,
    /// each conflict resolved here, and every import written in one transaction
    /// (`Store::import_remote_activities`). Returns the ids of the activities written.
    async fn import_batch(
        &self,
        ctx: &SyncContext<'_>,
        items: Vec<Item>,
        take_events: bool,
        take_tasks: bool,
    ) -> Result<Vec<i64>, ConnectorError> {
        let mut parsed = Vec::with_capacity(items.len());
        for item in items {
            let Some(remote) = ical::parse(&item.data) else {
                tracing::info!(sync = %self.origin, item = %item.href, "no VEVENT or VTODO: not imported");
                continue;
            };
            for w in &remote.warnings {
                tracing::warn!(sync = %self.origin, item = %item.href, "{w}");
            }
            parsed.push((item, remote));
        }
        let (origin, hrefs) = (
            self.origin.clone(),
            parsed
                .iter()
                .map(|(item, _)| item.href.clone())
                .collect::<Vec<_>>(),
        );
        let locals = ctx
            .store
            .call(move |s| {
                hrefs
                    .iter()
                    .map(|h| local_side(s, &origin, h))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(store_err)?;
        let mut writes = Vec::with_capacity(parsed.len());
        for ((item, remote), (linked, local)) in parsed.into_iter().zip(locals) {
            let wanted = match remote.kind {
                ItemKind::Event => take_events,
                ItemKind::Todo => take_tasks,
            };
            if !linked && (!wanted || self.before_since(&remote)) {
                continue;
            }
            let mut changes = match local {
                Some((activity, when)) => {
                    self.count_conflict(ctx);
                    resolve(&self.spec.conflict, &activity, when, &remote)
                }
                None => changes_of(&remote),
            };
            if !linked {
                changes.owner = Some(Some(self.owner.clone()));
            }
            let own = remote.uid.as_deref().and_then(|u| own_id(&self.origin, u));
            writes.push((item, remote.uid, own, changes));
        }
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let (origin, at) = (self.origin.clone(), ctx.clock.now());
        let hrefs: Vec<String> = writes.iter().map(|(item, ..)| item.href.clone()).collect();
        let results = ctx
            .store
            .call(move |s| {
                let batch: Vec<RemoteActivity<'_>> = writes
                    .iter()
                    .map(|(item, uid, own, changes)| RemoteActivity {
                        sync: &origin,
                        remote_id: &item.href,
                        version: item.etag.as_deref(),
                        data: &item.data,
                        uid: uid.as_deref(),
                        own_id: *own,
                        changes: changes.clone(),
                    })
                    .collect();
                s.import_remote_activities(&batch, at)
            })
            .await
            .map_err(store_err)?;
        let mut ids = Vec::with_capacity(results.len());
        for (href, result) in hrefs.iter().zip(results) {
            match result {
                Ok(activity) => ids.push(activity.id),
                Err(e) => {
                    tracing::warn!(sync = %self.origin, item = %href, "object not imported: {e}")
                }
            }
        }
        Ok(ids)
    }

    async fn store_item(
        &self,
        ctx: &SyncContext<'_>,
        item: &Item,
        remote: &Fields,
        changes: ActivityChanges,
    ) -> Result<Option<i64>, ConnectorError> {
        let (origin, h, etag, data) = (
            self.origin.clone(),
            item.href.clone(),
            item.etag.clone(),
            item.data.clone(),
        );
        let uid = remote.uid.clone();
        let own = uid.as_deref().and_then(|u| own_id(&self.origin, u));
        let at = ctx.clock.now();
        let result = ctx
            .store
            .call(move |s| {
                let item = RemoteActivity {
                    sync: &origin,
                    remote_id: &h,
                    version: etag.as_deref(),
                    data: &data,
                    uid: uid.as_deref(),
                    own_id: own,
                    changes,
                };
                refused(s.import_remote_activity(&item, at))
            })
            .await
            .map_err(store_err)?;
        match result {
            Ok(a) => Ok(Some(a.id)),
            Err(e) => {
                tracing::warn!(sync = %self.origin, item = %item.href, "object not imported: {e}");
                Ok(None)
            }
        }
    }

    /// Pushes the journal's activity changes since the exported position.
    async fn push(
        &self,
        ctx: &SyncContext<'_>,
        sel: &Selected,
        report: &mut SyncReport,
    ) -> Result<(), ConnectorError> {
        let origin = self.origin.clone();
        let mut after: i64 = ctx
            .store
            .call(move |s| s.sync_checkpoint(&origin, "exported"))
            .await
            .map_err(store_err)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        loop {
            Self::check_cancel(ctx)?;
            let origin = self.origin.clone();
            let changes = ctx
                .store
                .call(move |s| s.changes_since(after, Some(&origin), JOURNAL_BATCH))
                .await
                .map_err(store_err)?;
            let Some(last) = changes.last().map(|c| c.seq) else {
                return Ok(());
            };
            let mut latest: BTreeMap<i64, ChangeOp> = BTreeMap::new();
            for c in changes.iter().filter(|c| c.kind == RecordKind::Activity) {
                latest.insert(c.id, c.op);
            }
            for (id, op) in latest {
                let moved = if op == ChangeOp::Delete {
                    self.push_delete(ctx, id).await?
                } else {
                    self.push_activity(ctx, sel, id, last).await?
                };
                if moved {
                    report.items_out += 1;
                }
            }
            let (origin, at) = (self.origin.clone(), ctx.clock.now());
            ctx.store
                .call(move |s| {
                    s.set_sync_checkpoint(&origin, "exported", Some(&last.to_string()), at)
                })
                .await
                .map_err(store_err)?;
            after = last;
        }
    }

    /// An activity deleted here: CS-05.
    async fn push_delete(&self, ctx: &SyncContext<'_>, id: i64) -> Result<bool, ConnectorError> {
        let origin = self.origin.clone();
        let link = ctx
            .store
            .call(move |s| s.sync_record(&origin, RecordKind::Activity, id))
            .await
            .map_err(store_err)?;
        let Some(link) = link else {
            return Ok(false);
        };
        let mut moved = false;
        if self.spec.deletes == DeletePolicy::Propagate {
            let url = join(&self.url, &link.remote_id).map_err(dav_err)?;
            match self
                .client
                .delete_calendar_object(&url, link.remote_version.as_deref(), self.quiet())
                .await
                .map_err(dav_err)?
            {
                Written::Ok(_) => moved = true,
                Written::PreconditionFailed => {
                    self.count_conflict(ctx);
                    tracing::info!(sync = %self.origin, item = %link.remote_id, "not deleted remotely: it changed there since the last sync");
                }
            }
        }
        let origin = self.origin.clone();
        ctx.store
            .call(move |s| s.unlink_sync_record(&origin, RecordKind::Activity, id))
            .await
            .map_err(store_err)?;
        Ok(moved)
    }

    /// Writes activity `id` to the server (create or update), resolving 412s.
    async fn push_activity(
        &self,
        ctx: &SyncContext<'_>,
        sel: &Selected,
        id: i64,
        seq: i64,
    ) -> Result<bool, ConnectorError> {
        for _ in 0..=CONFLICT_RETRIES {
            let origin = self.origin.clone();
            let state = ctx
                .store
                .call(move |s| {
                    let Some(a) = s.activity(id)? else {
                        return Ok(None);
                    };
                    let link = s.sync_record(&origin, RecordKind::Activity, id)?;
                    let data = s.sync_record_data(&origin, RecordKind::Activity, id)?;
                    Ok(Some((a, link, data)))
                })
                .await
                .map_err(store_err)?;
            let Some((activity, link, data)) = state else {
                return Ok(false);
            };
            if link.is_none() && activity.owner.as_deref() != Some(self.owner.as_str()) {
                return Ok(false); // not the account user's: not exported by this sync
            }
            let old = data.as_deref().and_then(ical::parse);
            let fields = fields_of(&activity, old.as_ref());
            let uid = old
                .as_ref()
                .and_then(|o| o.uid.clone())
                .unwrap_or_else(|| stable_uid(&self.origin, id));
            let (url, if_match) = match &link {
                Some(l) => (
                    join(&self.url, &l.remote_id).map_err(dav_err)?,
                    Some(l.remote_version.clone().unwrap_or_else(|| "*".into())),
                ),
                None => {
                    let target = match fields.kind {
                        ItemKind::Event => sel.meetings.first(),
                        ItemKind::Todo => sel.tasks.first(),
                    };
                    let Some(target) = target else {
                        tracing::info!(sync = %self.origin, activity = id, "no selected calendar takes this kind of item: not exported");
                        return Ok(false);
                    };
                    (join(target, &format!("{uid}.ics")).map_err(dav_err)?, None)
                }
            };
            let now = ctx.clock.now();
            let object = ical::patch(data.as_deref(), &fields, &uid, now, &|a| {
                self.client_only(a)
            });
            if link.is_some() && data.as_deref().is_some_and(|d| ical::same(d, &object)) {
                return Ok(false);
            }
            match self
                .client
                .put_calendar_object(&url, &object, if_match.as_deref(), self.quiet())
                .await
                .map_err(dav_err)?
            {
                Written::Ok(etag) => {
                    let state = SyncRecordState {
                        sync: self.origin.clone(),
                        kind: RecordKind::Activity,
                        record_id: id,
                        remote_id: url.path().to_owned(),
                        remote_version: etag,
                        exported_seq: seq,
                    };
                    ctx.store
                        .call(move |s| {
                            s.set_sync_record_with_data(&state, &object, now)?;
                            s.set_activity_ical_uid(id, &uid)
                        })
                        .await
                        .map_err(store_err)?;
                    return Ok(true);
                }
                Written::PreconditionFailed => {
                    let Some(item) = self.client.get(&url).await.map_err(dav_err)? else {
                        self.remote_removed(ctx, url.path()).await?;
                        return Ok(false);
                    };
                    let Some(remote) = ical::parse(&item.data) else {
                        return Err(ConnectorError::Failed(format!(
                            "{}: the server's object holds no VEVENT or VTODO",
                            url.path()
                        )));
                    };
                    let item = Item {
                        href: url.path().to_owned(),
                        ..item
                    };
                    if link.is_some() {
                        self.count_conflict(ctx);
                        let changes = resolve(
                            &self.spec.conflict,
                            &activity,
                            Some(activity.updated_at),
                            &remote,
                        );
                        self.store_item(ctx, &item, &remote, changes).await?;
                    } else {
                        // our own earlier create (a crash before the checkpoint): adopt it,
                        // then update it
                        let state = SyncRecordState {
                            sync: self.origin.clone(),
                            kind: RecordKind::Activity,
                            record_id: id,
                            remote_id: item.href.clone(),
                            remote_version: item.etag.clone(),
                            exported_seq: 0,
                        };
                        ctx.store
                            .call(move |s| s.set_sync_record_with_data(&state, &item.data, now))
                            .await
                            .map_err(store_err)?;
                    }
                }
            }
        }
        Err(ConnectorError::Failed(format!(
            "activity {id}: the item kept changing on the server ({CONFLICT_RETRIES} conflicts in a row); retried on the next run"
        )))
    }
}

/// An activity changed here since it was last exported, and when it changed.
type LocalChange = (Activity, Option<DateTime<Utc>>);

/// What this side knows of the item at `href`: whether it is linked, and, when its activity
/// changed here since it was last exported (a conflict), that change.
fn local_side(
    s: &Store,
    origin: &str,
    href: &str,
) -> Result<(bool, Option<LocalChange>), StoreError> {
    let Some(link) = s.sync_record_by_remote(origin, RecordKind::Activity, href)? else {
        return Ok((false, None));
    };
    let changed = s.changed_since_by_other(
        RecordKind::Activity,
        link.record_id,
        link.exported_seq,
        origin,
    )?;
    if !changed {
        return Ok((true, None));
    }
    let when = s.last_change_by_other(RecordKind::Activity, link.record_id, origin)?;
    Ok((true, s.activity(link.record_id)?.map(|a| (a, when))))
}

impl Connector for CalendarSyncConnector {
    fn sync<'a>(&'a self, ctx: SyncContext<'a>) -> SyncFuture<'a> {
        Box::pin(async move {
            self.recorder.start();
            let result = self.run(&ctx).await;
            self.recorder.finish(&ctx, result).await
        })
    }
}

impl CalendarSyncConnector {
    /// One run: pull every selected calendar, then push.
    async fn run(&self, ctx: &SyncContext<'_>) -> Result<SyncReport, ConnectorError> {
        let mut report = SyncReport::default();
        let before = self.client.requests();
        let sel = self.collections(ctx).await?;
        let mut imported = Vec::new();
        if self.spec.import_meetings.enabled || self.spec.import_tasks.enabled {
            for c in sel.all() {
                Self::check_cancel(ctx)?;
                self.pull(ctx, &c, &sel, &mut report, &mut imported).await?;
            }
        }
        if self.spec.export.enabled {
            // a conflict resolved for this side, or a union, is written back now; an
            // activity the object describes exactly costs nothing
            let seq = ctx
                .store
                .call(|s| s.last_change_seq())
                .await
                .map_err(store_err)?;
            for id in imported {
                Self::check_cancel(ctx)?;
                if self.push_activity(ctx, &sel, id, seq).await? {
                    report.items_out += 1;
                }
            }
            self.push(ctx, &sel, &mut report).await?;
        }
        tracing::info!(
            sync = %self.origin,
            items_in = report.items_in,
            items_out = report.items_out,
            requests = self.client.requests() - before,
            "calendar sync done"
        );
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_created_uid_is_stable_and_read_back_as_the_activity() {
        let uid = stable_uid("CalendarSync/a", 7);
        assert_eq!(uid, stable_uid("CalendarSync/a", 7));
        assert_eq!(own_id("CalendarSync/a", &uid), Some(7));
        assert_eq!(own_id("CalendarSync/b", &uid), None);
    }

    #[test]
    fn select_by_component_and_name() {
        let cal = |path: &str, name: &str, comps: &[&str]| Calendar {
            url: Url::parse(&format!("http://h{path}")).expect("url"),
            display_name: Some(name.to_owned()),
            components: comps.iter().map(|c| (*c).to_owned()).collect(),
        };
        let found = vec![
            cal("/u/work/", "Work", &["VEVENT"]),
            cal("/u/todo/", "Todo", &["VTODO"]),
            cal("/u/any/", "Any", &[]),
        ];
        let all = AllOrList::All(crate::config::types::AllLiteral::All);
        assert_eq!(select(&found, &all, "VTODO").len(), 2);
        let list = AllOrList::List(vec!["Work".into(), "/u/todo".into()]);
        assert_eq!(select(&found, &list, "VEVENT").len(), 1);
        assert_eq!(select(&found, &list, "VTODO")[0].path(), "/u/todo/");
    }
}
