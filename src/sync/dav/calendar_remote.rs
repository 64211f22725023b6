//! The CalDAV side of a `CalendarSync`: [`CalendarRemote`] over a `DavAccount` (RFC 4791,
//! RFC 6578, RFC 6638). Only the wire format lives here; pull, push, conflicts, deletes and
//! checkpoints are the engine's (`sync/calendar.rs`).
//!
//! - *Folders*: the calendars found through `calendar-home-set`; meeting calendars are those
//!   `importMeetings.calendars` selects that accept `VEVENT`, task calendars those
//!   `importTasks.folders` selects that accept `VTODO` (by display name, path or URL, or `all`).
//!   Remembered between runs in the sync's `collections` checkpoint, keyed by URL, login and
//!   selection. A folder's id is the calendar's URL; an item's id is its href (a path), so a
//!   calendar holds the items whose href starts with its path.
//! - *Listing*: `sync-collection` (RFC 6578) from the token, one page per calendar; a refused
//!   token is [`RemoteError::TokenExpired`]. A server without `sync-collection` is listed by a
//!   `PROPFIND Depth: 1` with ETags (a full listing every run), remembered in the `listing URL`
//!   checkpoint so later runs send one request. Items come as [`Listed::Version`]; the engine
//!   reads the changed ones with `calendar-multiget`.
//! - *Writes*: the stored object patched with the engine's fields (`ical::patch`: only the
//!   modelled properties change), skipped when that changes nothing; `PUT` with `If-Match`, or a
//!   create at `UID.ics` with `If-None-Match: *` (a 412 there finds an earlier attempt's copy:
//!   [`Written::Exists`]). *Invitations* (BX-03): [`Notify::None`] sends `Schedule-Reply: F` and
//!   marks every `ORGANIZER` / `ATTENDEE` `SCHEDULE-AGENT=CLIENT`, so the server schedules
//!   nobody; [`Notify::External`] leaves only addresses outside the company to the server (an
//!   address is the company's when it is a `User`'s, or in the mail domain of a `User`'s
//!   address); [`Notify::All`] lets the server schedule everyone.

use sha2::{Digest, Sha256};
use url::Url;

use crate::config::ConfigSet;
use crate::config::Kind;
use crate::config::kinds::{CalendarSyncSpec, DavAccountSpec};
use crate::config::types::AllOrList;
use crate::connector::SyncContext;
use crate::store::StoreError;
use crate::sync::company::Company;
use crate::sync::ical::{self, Fields, ItemKind};
use crate::sync::remote::{
    CalendarRemote, Cursor, Folder, Listed, Next, Notify, Page, RemoteError, RemoteFuture,
    RemoteItem, Write, Written,
};

use super::caldav::Calendar;
use super::{DavClient, DavError, Item, SyncDelta, join};

/// The `listing URL` checkpoint of a calendar listed by PROPFIND and ETags (its server has no
/// `sync-collection`); absent: listed by `sync-collection`.
const LISTING_PROPFIND: &str = "propfind";

/// The CalDAV remote of one `CalendarSync`.
pub struct CalDavRemote {
    /// The sync's origin (`CalendarSync/NAME`): the key of this remote's own checkpoints.
    origin: String,
    url: Url,
    client: DavClient,
    meetings: AllOrList,
    tasks: AllOrList,
    /// Which discovery the remembered one is (URL, login, selection).
    collections_key: String,
    company: Company,
}

fn dav(e: DavError) -> RemoteError {
    RemoteError::from(e)
}

fn store(e: StoreError) -> RemoteError {
    RemoteError::Failed(e.to_string())
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

/// The folders of a selection: meeting calendars, then task calendars.
fn folders_of(meetings: &[Url], tasks: &[Url]) -> Vec<(Folder, ItemKind)> {
    let folder = |u: &Url| Folder {
        id: u.to_string(),
        name: u.path().to_owned(),
    };
    meetings
        .iter()
        .map(|u| (folder(u), ItemKind::Event))
        .chain(tasks.iter().map(|u| (folder(u), ItemKind::Todo)))
        .collect()
}

/// A page listing `delta`.
fn page_of(delta: SyncDelta, full: bool) -> Page<Fields> {
    Page {
        items: delta
            .changed
            .into_iter()
            .map(|(id, version)| Listed::Version { id, version })
            .collect(),
        removed: delta.removed,
        next: Next::Done(delta.token),
        full,
    }
}

impl CalDavRemote {
    /// The remote of `spec` over its `DavAccount`; the account's password is resolved here, at
    /// apply. `Err` is the pending reason.
    pub fn new(
        spec: &CalendarSyncSpec,
        set: &ConfigSet,
        origin: &str,
    ) -> Result<CalDavRemote, String> {
        let account = set
            .get::<DavAccountSpec>(&spec.account)
            .ok_or_else(|| format!("`{}` is not a DavAccount", spec.account))?;
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
        Ok(CalDavRemote {
            origin: origin.to_owned(),
            url: account.url.url().clone(),
            client,
            meetings: spec.import_meetings.calendars.clone(),
            tasks: spec.import_tasks.folders.clone(),
            collections_key,
            company: Company::of(set),
        })
    }

    /// Whether the server must not schedule `address` under `notify` (BX-03).
    fn client_only(&self, notify: Notify, address: &str) -> bool {
        match notify {
            Notify::None => true,
            Notify::All => false,
            Notify::External => self.company.is_internal(address),
        }
    }

    async fn checkpoint(
        &self,
        ctx: &SyncContext<'_>,
        scope: String,
    ) -> Result<Option<String>, RemoteError> {
        crate::sync::checkpoints::get(ctx, &self.origin, &scope)
            .await
            .map_err(store)
    }

    async fn set_checkpoint(
        &self,
        ctx: &SyncContext<'_>,
        scope: String,
        value: String,
    ) -> Result<(), RemoteError> {
        crate::sync::checkpoints::set(ctx, &self.origin, &scope, Some(&value))
            .await
            .map_err(store)
    }

    /// The selected calendars: remembered, else discovered and selected now.
    async fn selected(
        &self,
        ctx: &SyncContext<'_>,
    ) -> Result<Vec<(Folder, ItemKind)>, RemoteError> {
        if let Some(text) = self.checkpoint(ctx, "collections".into()).await? {
            let mut lines = text.lines();
            if lines.next() == Some(self.collections_key.as_str()) {
                let (mut meetings, mut tasks) = (Vec::new(), Vec::new());
                for l in lines {
                    match l.split_once(' ') {
                        Some(("meetings", u)) => meetings.extend(Url::parse(u).ok()),
                        Some(("tasks", u)) => tasks.extend(Url::parse(u).ok()),
                        _ => {}
                    }
                }
                if !meetings.is_empty() || !tasks.is_empty() {
                    return Ok(folders_of(&meetings, &tasks));
                }
            }
        }
        let found = self
            .client
            .discover_calendars(&self.url)
            .await
            .map_err(dav)?;
        let meetings = select(&found, &self.meetings, "VEVENT");
        let tasks = select(&found, &self.tasks, "VTODO");
        if meetings.is_empty() && tasks.is_empty() {
            let names: Vec<String> = found
                .iter()
                .map(|c| {
                    c.display_name
                        .clone()
                        .unwrap_or_else(|| c.url.path().to_owned())
                })
                .collect();
            return Err(RemoteError::Failed(format!(
                "no calendar matches importMeetings.calendars or importTasks.folders (found: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        }
        let mut text = vec![self.collections_key.clone()];
        text.extend(meetings.iter().map(|u| format!("meetings {u}")));
        text.extend(tasks.iter().map(|u| format!("tasks {u}")));
        self.set_checkpoint(ctx, "collections".into(), text.join("\n"))
            .await?;
        Ok(folders_of(&meetings, &tasks))
    }

    /// A server without `sync-collection`: the calendar's items and ETags by PROPFIND, as a full
    /// listing without a token.
    async fn by_etags(&self, calendar: &Url) -> Result<Page<Fields>, RemoteError> {
        let changed = self.client.list_etags(calendar).await.map_err(dav)?;
        Ok(page_of(
            SyncDelta {
                token: None,
                changed,
                removed: Vec::new(),
            },
            true,
        ))
    }

    async fn listed(
        &self,
        ctx: &SyncContext<'_>,
        folder: &Folder,
        cursor: Cursor<'_>,
    ) -> Result<Page<Fields>, RemoteError> {
        let calendar = Url::parse(&folder.id)
            .map_err(|e| RemoteError::Failed(format!("bad calendar URL {}: {e}", folder.id)))?;
        let token = match cursor {
            Cursor::Start => None,
            Cursor::Token(t) => Some(t),
            // sync-collection answers in one page: a page cursor is none of this remote's
            Cursor::Page(_) => return Err(RemoteError::TokenExpired),
        };
        let listing = format!("listing {calendar}");
        if self.checkpoint(ctx, listing.clone()).await?.as_deref() == Some(LISTING_PROPFIND) {
            return self.by_etags(&calendar).await;
        }
        match self.client.sync_collection(&calendar, token).await {
            Ok(delta) => Ok(page_of(delta, token.is_none())),
            Err(DavError::SyncUnsupported) => {
                tracing::info!(sync = %self.origin, collection = %calendar, "the server does not do sync-collection; comparing the ETags of a PROPFIND listing instead");
                self.set_checkpoint(ctx, listing, LISTING_PROPFIND.into())
                    .await?;
                self.by_etags(&calendar).await
            }
            Err(DavError::InvalidSyncToken) if token.is_none() => {
                Err(RemoteError::Failed(DavError::InvalidSyncToken.to_string()))
            }
            Err(e) => Err(dav(e)),
        }
    }

    /// `item` with its fields; `None` (logged) when it holds no event or task.
    fn item(&self, item: Item) -> Option<RemoteItem<Fields>> {
        let Some(fields) = ical::parse(&item.data) else {
            tracing::info!(sync = %self.origin, item = %item.href, "no VEVENT or VTODO: not imported");
            return None;
        };
        Some(RemoteItem {
            id: item.href,
            version: item.etag,
            data: item.data,
            fields,
        })
    }

    async fn written(
        &self,
        ctx: &SyncContext<'_>,
        write: Write<'_, Fields>,
        notify: Notify,
    ) -> Result<Written<Fields>, RemoteError> {
        let (url, if_match) = match write.current {
            Some(current) => (
                join(&self.url, &current.id).map_err(dav)?,
                Some(current.version.clone().unwrap_or_else(|| "*".into())),
            ),
            None => {
                let calendar = Url::parse(&write.folder.id).map_err(|e| {
                    RemoteError::Failed(format!("bad calendar URL {}: {e}", write.folder.id))
                })?;
                (
                    join(&calendar, &format!("{}.ics", write.uid)).map_err(dav)?,
                    None,
                )
            }
        };
        let object = ical::patch(
            write.current.map(|c| c.data.as_str()),
            write.fields,
            write.uid,
            ctx.clock.now(),
            &|a| self.client_only(notify, a),
        );
        if let Some(current) = write.current
            && ical::same(&current.data, &object)
        {
            return Ok(Written::Done(Some(current.clone())));
        }
        let quiet = notify == Notify::None;
        match self
            .client
            .put_calendar_object(&url, &object, if_match.as_deref(), quiet)
            .await
            .map_err(dav)?
        {
            super::Written::Ok(etag) => Ok(Written::Done(Some(RemoteItem {
                id: url.path().to_owned(),
                version: etag,
                fields: ical::parse(&object).unwrap_or_else(|| write.fields.clone()),
                data: object,
            }))),
            super::Written::PreconditionFailed if write.current.is_some() => Ok(Written::Conflict),
            // a create met an item under the same UID: an earlier attempt's
            super::Written::PreconditionFailed => {
                match self.client.get(&url).await.map_err(dav)? {
                    None => Ok(Written::Gone),
                    Some(item) => {
                        let item = Item {
                            href: url.path().to_owned(),
                            ..item
                        };
                        Ok(self.item(item).map_or(Written::Gone, Written::Exists))
                    }
                }
            }
        }
    }
}

impl CalendarRemote for CalDavRemote {
    fn folders<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
    ) -> RemoteFuture<'a, Vec<(Folder, ItemKind)>> {
        Box::pin(self.selected(ctx))
    }

    fn list<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        folder: &'a Folder,
        cursor: Cursor<'a>,
    ) -> RemoteFuture<'a, Page<Fields>> {
        Box::pin(self.listed(ctx, folder, cursor))
    }

    fn read<'a>(
        &'a self,
        _ctx: &'a SyncContext<'a>,
        folder: &'a Folder,
        ids: &'a [String],
    ) -> RemoteFuture<'a, Vec<RemoteItem<Fields>>> {
        Box::pin(async move {
            let calendar = Url::parse(&folder.id)
                .map_err(|e| RemoteError::Failed(format!("bad calendar URL {}: {e}", folder.id)))?;
            let items = self
                .client
                .calendar_multiget(&calendar, ids)
                .await
                .map_err(dav)?;
            Ok(items.into_iter().filter_map(|i| self.item(i)).collect())
        })
    }

    fn get<'a>(
        &'a self,
        _ctx: &'a SyncContext<'a>,
        id: &'a str,
    ) -> RemoteFuture<'a, Option<RemoteItem<Fields>>> {
        Box::pin(async move {
            let url = join(&self.url, id).map_err(dav)?;
            let Some(item) = self.client.get(&url).await.map_err(dav)? else {
                return Ok(None);
            };
            let Some(fields) = ical::parse(&item.data) else {
                return Err(RemoteError::Failed(format!(
                    "{}: the server's object holds no VEVENT or VTODO",
                    url.path()
                )));
            };
            Ok(Some(RemoteItem {
                id: url.path().to_owned(),
                version: item.etag,
                data: item.data,
                fields,
            }))
        })
    }

    fn decode(&self, data: &str) -> Option<Fields> {
        ical::parse(data)
    }

    fn holds(&self, folder: &Folder, id: &str) -> bool {
        Url::parse(&folder.id).is_ok_and(|u| id.starts_with(u.path()))
    }

    fn write<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        write: Write<'a, Fields>,
        notify: Notify,
    ) -> RemoteFuture<'a, Written<Fields>> {
        Box::pin(self.written(ctx, write, notify))
    }

    fn delete<'a>(
        &'a self,
        _ctx: &'a SyncContext<'a>,
        id: &'a str,
        version: Option<&'a str>,
        notify: Notify,
    ) -> RemoteFuture<'a, Written<Fields>> {
        Box::pin(async move {
            let url = join(&self.url, id).map_err(dav)?;
            match self
                .client
                .delete_calendar_object(&url, version, notify == Notify::None)
                .await
                .map_err(dav)?
            {
                super::Written::Ok(_) => Ok(Written::Done(None)),
                super::Written::PreconditionFailed => Ok(Written::Conflict),
            }
        })
    }

    fn requests(&self) -> u64 {
        self.client.requests()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn folders_are_meetings_then_tasks_and_a_calendar_holds_its_hrefs() {
        let work = Url::parse("http://h/u/work/").expect("url");
        let todo = Url::parse("http://h/u/todo/").expect("url");
        let folders = folders_of(std::slice::from_ref(&work), &[work.clone(), todo]);
        let kinds: Vec<_> = folders.iter().map(|(f, k)| (f.id.as_str(), *k)).collect();
        assert_eq!(
            kinds,
            [
                ("http://h/u/work/", ItemKind::Event),
                ("http://h/u/work/", ItemKind::Todo),
                ("http://h/u/todo/", ItemKind::Todo)
            ]
        );
        assert_eq!(folders[0].0.name, "/u/work/");
    }
}
