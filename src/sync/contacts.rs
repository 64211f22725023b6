//! The `ContactSync` engine: two-way contact sync between the record store and a provider
//! (CS-01..CS-05, BX-01, BX-02), over the wire contract [`ContactRemote`] — CardDAV
//! (`dav/contact_remote.rs`), Google People, Microsoft Graph. Everything here is provider-
//! neutral; a remote only lists, reads and writes.
//!
//! One run: **pull**, then **push**.
//!
//! - *Pull*, per folder the remote selects: pages of changes from the folder's checkpoint (a
//!   page cursor when the last run stopped mid-listing, else the token of the last complete
//!   listing; an expired token lists again from the start, which duplicates nothing). Items
//!   whose version is the one last seen are skipped; items listed by version only are read in
//!   batches. Each is imported with origin `ContactSync/NAME` (found by its link, else by
//!   address or phone, else created; the company links the account by CS-02's rule), with its
//!   version and its provider representation in `sync_records`. A record changed here since it
//!   was last exported and changed there too is a conflict, resolved by `conflict` (below). A
//!   page's cursor is stored after its items are in; the token after the last page.
//!   Removed items: a delta's tombstones, or — after a full listing completed in this run —
//!   the linked items of the folder it did not list.
//! - *Push*: the journal after the exported position, without this sync's own changes, for
//!   the contacts `export` selects. A linked contact is written over its stored version (the
//!   remote writes only modelled fields, conditionally on the version); an unlinked one is
//!   created under a UID derived from the sync and the record id, so a retry after a crash
//!   finds its earlier copy ([`Written::Exists`]) instead of making a second one. A stale
//!   version is a conflict: the item is read again, resolved by policy and written again.
//!
//! Deletes (CS-05): a removed item unlinks the record (`deletes: keep`) or deletes it
//! (`propagate`); a contact deleted here is deleted there only with `propagate`, and only when
//! it was linked (synced) there.
//!
//! A *marker tag* (Google's `google.tag`, CS-03) narrows the sync to the contacts carrying it:
//! only they are exported; imported contacts get it; an item removed there takes the tag off
//! the contact here (and unlinks it) instead of deleting it; a contact deleted or untagged
//! here is released there (it leaves the Google group) instead of being deleted — the seed's
//! "deletes are not propagated". `deletes: propagate` still deletes on both sides.
//!
//! Export scope (CS-01): `all`, or `{categories, groups}` — a contact is exported when it is
//! in a listed category (an *employee* has an address of the company, see `company.rs`; a
//! *customer* has none) or carries a tag named in `groups`. A linked contact that leaves the
//! scope is released and unlinked (never deleted there).
//!
//! Accounts (CS-02): an imported contact's company links it to the one account of that name;
//! when several share the name it stays unlinked. The seed's exception — "unless the importing
//! user can see only one of them" — cannot arise here: accounts are not per-user in Switchboard
//! (every user sees every account), so the importing user always sees all of them.
//!
//! Conflicts: `winner: switchboard | remote`, or `newest` — the item's revision time against
//! the record's last change here; an item without one counts as the newer (its change is the
//! one seen last). Fields in `union` take both sides' values. Each is counted in
//! `sync_conflicts_total`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use url::Url;

use crate::config::kinds::{
    ConflictPolicy, ConflictWinner, ContactCategory, ContactSyncSpec, DavAccountSpec, DeletePolicy,
    ExportScope, GoogleAccountSpec, MailboxSpec, UnionField,
};
use crate::config::types::AllOrList;
use crate::config::{ConfigSet, Kind, KindSpec, Object};
use crate::connector::{
    Connector, ConnectorError, KindConnectors, SyncContext, SyncFuture, SyncReport, Trigger,
};
use crate::store::StoreError;
use crate::store::records::{
    AccountRef, ChangeOp, Contact, ContactChanges, RecordError, RecordKind, SyncRecordState,
};
use crate::store::sync_state::RemoteContact;

use super::company::Company;
use super::dav::DavClient;
use super::dav::contact_remote::DavContacts;
use super::google::people::PeopleRemote;
use super::remote::{
    ContactRemote, Cursor, Folder, Listed, Next, RemoteError, RemoteItem, Write, Written,
};
use super::report::RunRecorder;
use super::vcard::CardFields;

/// How many journal entries one push step reads.
const JOURNAL_BATCH: usize = 500;
/// How many items listed by version only one read asks for.
const READ_BATCH: usize = 100;
/// How many times a write that met a stale version is re-read, resolved and tried again.
const CONFLICT_RETRIES: usize = 3;

/// The `ContactSync` kind's part of the connector contract.
pub struct ContactSyncConnectors;

impl KindConnectors for ContactSyncConnectors {
    fn build(&self, object: &Object, set: &ConfigSet) -> Result<Arc<dyn Connector>, String> {
        Ok(Arc::new(ContactSyncConnector::new(object, set)?))
    }

    fn trigger(&self, object: &Object, _set: &ConfigSet) -> Trigger {
        Trigger::scheduled(
            ContactSyncSpec::from_spec(&object.spec).and_then(|s| s.schedule.as_ref()),
        )
    }

    /// The account's grant (a GoogleAccount and the Google app, or a Mailbox and its provider):
    /// a new refresh token, client secret or `apiBaseUrl` rebuilds the connector.
    fn inputs(&self, object: &Object, set: &ConfigSet) -> String {
        ContactSyncSpec::from_spec(&object.spec)
            .map(|spec| super::tokens::account_inputs(set, &spec.account))
            .unwrap_or_default()
    }
}

/// Which contacts a sync exports.
#[derive(Debug, Clone)]
struct ExportFilter {
    /// Only contacts carrying this tag (CS-03), which imported contacts get.
    marker: Option<String>,
    /// `None`: all; else these categories...
    categories: Option<Vec<ContactCategory>>,
    /// ... or these tags.
    groups: Vec<String>,
    company: Company,
}

impl ExportFilter {
    fn exports(&self, contact: &Contact) -> bool {
        if let Some(marker) = &self.marker
            && !contact.tags.contains(marker)
        {
            return false;
        }
        let Some(categories) = &self.categories else {
            return true;
        };
        let employee = contact.emails.iter().any(|e| self.company.is_internal(e));
        let category = if employee {
            ContactCategory::Employee
        } else {
            ContactCategory::Customer
        };
        categories.contains(&category) || contact.tags.iter().any(|t| self.groups.contains(t))
    }
}

/// One `ContactSync` object.
pub struct ContactSyncConnector {
    origin: String,
    /// The run record: conflicts, progress, what the last run moved.
    recorder: RunRecorder,
    import: bool,
    export: bool,
    filter: ExportFilter,
    conflict: ConflictPolicy,
    deletes: DeletePolicy,
    remote: Arc<dyn ContactRemote>,
}

fn store_err(e: StoreError) -> ConnectorError {
    ConnectorError::Failed(e.to_string())
}

/// The remote for `spec.account`: a `DavAccount`'s address books, a `GoogleAccount`'s
/// contacts, a Microsoft 365 mailbox's contact folders. `Err` is the pending reason.
fn remote_for(
    object: &Object,
    spec: &ContactSyncSpec,
    set: &ConfigSet,
    origin: &str,
) -> Result<Arc<dyn ContactRemote>, String> {
    if let Some(account) = set.get::<DavAccountSpec>(&spec.account) {
        return dav_remote(object, spec, set, account, origin);
    }
    if set.get::<MailboxSpec>(&spec.account).is_some() {
        return graph_remote(spec, set);
    }
    if set.get::<GoogleAccountSpec>(&spec.account).is_some() {
        return google_remote(spec, set);
    }
    Err(format!(
        "contact sync over `{}` is not built yet: a DavAccount (CardDAV), a GoogleAccount and a Mailbox on microsoft365 (Graph) sync so far (issue: sync)",
        spec.account
    ))
}

/// A Microsoft 365 mailbox's contact folders through Graph: the mailbox's OAuth grant (the one
/// its mail uses) and its provider's `apiBaseUrl`.
fn graph_remote(spec: &ContactSyncSpec, set: &ConfigSet) -> Result<Arc<dyn ContactRemote>, String> {
    let tokens = super::tokens::microsoft_mailbox(set, &spec.account)?;
    let base = super::graph::mailbox_api_base(set, &spec.account)?;
    let selected = match &spec.import.folders {
        AllOrList::All(_) => None,
        AllOrList::List(list) => Some(list.clone()),
    };
    let graph = Arc::new(super::graph::Graph::new(base.as_deref(), tokens));
    Ok(Arc::new(super::graph::contacts::GraphContactsRemote::new(
        graph, selected,
    )))
}

/// The People API remote of a ContactSync over a GoogleAccount (CS-03..05): the account's
/// grant, its `apiBaseUrl` (else Google's host), the `google.group` contact group.
fn google_remote(
    spec: &ContactSyncSpec,
    set: &ConfigSet,
) -> Result<Arc<dyn ContactRemote>, String> {
    let google = spec
        .google
        .as_ref()
        .ok_or("a ContactSync over a GoogleAccount needs `google: {tag, group}`")?;
    let tokens = super::tokens::google_account(set, &spec.account)?;
    let base = super::tokens::google_people_base(set, &spec.account);
    Ok(Arc::new(PeopleRemote::new(&base, tokens, &google.group)))
}

fn dav_remote(
    _object: &Object,
    spec: &ContactSyncSpec,
    set: &ConfigSet,
    account: &DavAccountSpec,
    origin: &str,
) -> Result<Arc<dyn ContactRemote>, String> {
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
    let folders_text = match &spec.import.folders {
        AllOrList::All(_) => "all".to_owned(),
        AllOrList::List(list) => list.join("\n"),
    };
    let collections_key = hex::encode(Sha256::digest(
        format!(
            "{}\n{}\n{folders_text}",
            account.url.as_str(),
            account.username
        )
        .as_bytes(),
    ));
    let url: Url = account.url.url().clone();
    Ok(Arc::new(DavContacts::new(
        origin.to_owned(),
        url,
        spec.import.folders.clone(),
        collections_key,
        client,
    )))
}

impl ContactSyncConnector {
    /// Builds the connector over the remote its account names. Secrets are resolved here, at
    /// apply. `Err` is the pending reason.
    pub fn new(object: &Object, set: &ConfigSet) -> Result<ContactSyncConnector, String> {
        let spec = ContactSyncSpec::from_spec(&object.spec)
            .ok_or_else(|| format!("{} is not a ContactSync", object.id()))?;
        let origin = format!("ContactSync/{}", object.name);
        let remote = remote_for(object, spec, set, &origin)?;
        Ok(ContactSyncConnector::with_remote(object, spec, set, remote))
    }

    /// The connector of `spec` over `remote` (a test's, or one [`ContactSyncConnector::new`]
    /// chose).
    pub fn with_remote(
        object: &Object,
        spec: &ContactSyncSpec,
        set: &ConfigSet,
        remote: Arc<dyn ContactRemote>,
    ) -> ContactSyncConnector {
        let (categories, groups) = match &spec.export.scope {
            ExportScope::All(_) => (None, Vec::new()),
            ExportScope::Selected(s) => (Some(s.categories.clone()), s.groups.clone()),
        };
        ContactSyncConnector {
            origin: format!("ContactSync/{}", object.name),
            recorder: RunRecorder::new("ContactSync", &object.name),
            import: spec.import.enabled,
            export: spec.export.enabled,
            filter: ExportFilter {
                marker: spec.google.as_ref().map(|g| g.tag.clone()),
                categories,
                groups,
                company: Company::of(set),
            },
            conflict: spec.conflict.clone(),
            deletes: spec.deletes,
            remote,
        }
    }

    fn check_cancel(ctx: &SyncContext<'_>) -> Result<(), ConnectorError> {
        if ctx.cancel.is_cancelled() {
            Err(ConnectorError::Cancelled)
        } else {
            Ok(())
        }
    }

    async fn checkpoint(
        &self,
        ctx: &SyncContext<'_>,
        scope: String,
    ) -> Result<Option<String>, ConnectorError> {
        super::checkpoints::get(ctx, &self.origin, &scope)
            .await
            .map_err(store_err)
    }

    async fn set_checkpoint(
        &self,
        ctx: &SyncContext<'_>,
        scope: String,
        value: Option<String>,
    ) -> Result<(), ConnectorError> {
        super::checkpoints::set(ctx, &self.origin, &scope, value.as_deref())
            .await
            .map_err(store_err)
    }

    /// Pulls one folder; adds to `imported` the ids of the contacts it imported that hold more
    /// than their item (to be written back).
    async fn pull<'c>(
        &self,
        ctx: &'c SyncContext<'c>,
        folder: &'c Folder,
        report: &mut SyncReport,
        imported: &mut Vec<i64>,
    ) -> Result<(), ConnectorError> {
        let token_scope = format!("token {}", folder.id);
        let page_scope = format!("page {}", folder.id);
        let mut token = self.checkpoint(ctx, token_scope.clone()).await?;
        let mut page_cursor = self.checkpoint(ctx, page_scope.clone()).await?;
        // The ids a full listing begun in this run has listed so far (None: not such a
        // listing — a delta, or a full listing resumed from an earlier run's page).
        let mut listed: Option<HashSet<String>> = None;
        let mut first = true;
        loop {
            Self::check_cancel(ctx)?;
            let cursor = match (&page_cursor, &token) {
                (Some(p), _) => Cursor::Page(p),
                (None, Some(t)) => Cursor::Token(t),
                (None, None) => Cursor::Start,
            };
            let from_start = cursor == Cursor::Start;
            let page = match self.remote.list(ctx, folder, cursor).await {
                Err(RemoteError::TokenExpired) if !from_start => {
                    tracing::warn!(sync = %self.origin, folder = %folder.name, "the provider refused the sync token; listing the folder again");
                    self.set_checkpoint(ctx, page_scope.clone(), None).await?;
                    (token, page_cursor, first) = (None, None, true);
                    continue;
                }
                other => other?,
            };
            if first && page.full && page_cursor.is_none() {
                listed = Some(HashSet::new());
            }
            first = false;
            if let Some(listed) = listed.as_mut() {
                listed.extend(page.items.iter().map(|i| i.id().to_owned()));
            }
            self.import_page(ctx, folder, page.items, report, imported)
                .await?;
            if !page.full {
                // a full listing's tombstones are old history, not news
                for id in page.removed {
                    if self.remote_removed(ctx, &id).await? {
                        report.items_in += 1;
                    }
                }
            }
            match page.next {
                Next::More(cursor) => {
                    self.set_checkpoint(ctx, page_scope.clone(), Some(cursor.clone()))
                        .await?;
                    page_cursor = Some(cursor);
                }
                Next::Done(next_token) => {
                    if let Some(listed) = listed {
                        // A full listing completed in this run: the folder's linked items it
                        // did not list were removed there.
                        let origin = self.origin.clone();
                        let known = ctx
                            .store
                            .call(move |s| s.sync_versions(&origin, RecordKind::Contact))
                            .await
                            .map_err(store_err)?;
                        for (id, _) in known {
                            if self.remote.holds(folder, &id)
                                && !listed.contains(&id)
                                && self.remote_removed(ctx, &id).await?
                            {
                                report.items_in += 1;
                            }
                        }
                    }
                    self.set_checkpoint(ctx, token_scope, next_token).await?;
                    self.set_checkpoint(ctx, page_scope, None).await?;
                    return Ok(());
                }
            }
        }
    }

    /// Imports one page's entries: those whose version is the one last seen are skipped, those
    /// listed by version only are read first.
    async fn import_page(
        &self,
        ctx: &SyncContext<'_>,
        folder: &Folder,
        entries: Vec<Listed<CardFields>>,
        report: &mut SyncReport,
        imported: &mut Vec<i64>,
    ) -> Result<(), ConnectorError> {
        if entries.is_empty() {
            return Ok(());
        }
        let origin = self.origin.clone();
        let known: HashMap<String, Option<String>> = ctx
            .store
            .call(move |s| s.sync_versions(&origin, RecordKind::Contact))
            .await
            .map_err(store_err)?
            .into_iter()
            .collect();
        let unchanged = |id: &str, version: &Option<String>| {
            version.is_some() && known.get(id).is_some_and(|k| k == version)
        };
        let mut items = Vec::new();
        let mut wanted = Vec::new();
        for entry in entries {
            match entry {
                Listed::Item(item) if !unchanged(&item.id, &item.version) => items.push(item),
                Listed::Version { id, version } if !unchanged(&id, &version) => wanted.push(id),
                _ => {}
            }
        }
        self.recorder.known(items.len() + wanted.len());
        for batch in items.chunks(READ_BATCH) {
            Self::check_cancel(ctx)?;
            self.import_and_count(ctx, batch.to_vec(), report, imported)
                .await?;
        }
        for batch in wanted.chunks(READ_BATCH) {
            Self::check_cancel(ctx)?;
            let read = self.remote.read(ctx, folder, batch).await?;
            self.import_and_count(ctx, read, report, imported).await?;
        }
        Ok(())
    }

    async fn import_and_count(
        &self,
        ctx: &SyncContext<'_>,
        items: Vec<RemoteItem<CardFields>>,
        report: &mut SyncReport,
        imported: &mut Vec<i64>,
    ) -> Result<(), ConnectorError> {
        let count = items.len();
        for (id, write_back) in self.import_batch(ctx, items).await? {
            report.items_in += 1;
            if write_back {
                imported.push(id);
            }
        }
        self.recorder.done(ctx, count).await
    }

    /// A remote item is gone (CS-05): the record is unlinked, and deleted with `propagate`;
    /// with a marker tag and `keep`, it loses the tag instead.
    async fn remote_removed(
        &self,
        ctx: &SyncContext<'_>,
        remote_id: &str,
    ) -> Result<bool, ConnectorError> {
        let (origin, h) = (self.origin.clone(), remote_id.to_owned());
        let propagate = self.deletes == DeletePolicy::Propagate;
        let marker = self.filter.marker.clone();
        let at = ctx.clock.now();
        ctx.store
            .call(move |s| {
                let Some(link) = s.sync_record_by_remote(&origin, RecordKind::Contact, &h)? else {
                    return Ok(false);
                };
                s.unlink_sync_record(&origin, RecordKind::Contact, link.record_id)?;
                let Some(contact) = s.contact(link.record_id)? else {
                    return Ok(true);
                };
                if propagate {
                    // a refusal here only means it is already gone
                    let _ = refused(s.delete_contact(link.record_id, None, &origin, at))?;
                } else if let Some(marker) = marker
                    && contact.tags.contains(&marker)
                {
                    let tags: Vec<String> =
                        contact.tags.into_iter().filter(|t| *t != marker).collect();
                    let changes = ContactChanges {
                        tags: Some(tags),
                        ..ContactChanges::default()
                    };
                    let _ = refused(s.update_contact(contact.id, None, &changes, &origin, at))?;
                }
                Ok(true)
            })
            .await
            .map_err(store_err)
    }

    /// Imports a batch of items read from the provider in one store call and one transaction,
    /// resolving conflicts with local changes. Returns, per imported contact, its id and
    /// whether it must be written back (the contact holds more than the item: a first link to
    /// a contact Switchboard already had, or a conflict resolved towards this side). An item
    /// the store refuses is skipped, its reason logged.
    async fn import_batch(
        &self,
        ctx: &SyncContext<'_>,
        items: Vec<RemoteItem<CardFields>>,
    ) -> Result<Vec<(i64, bool)>, ConnectorError> {
        let (origin, policy, at) = (self.origin.clone(), self.conflict.clone(), ctx.clock.now());
        let marker = self.filter.marker.clone();
        let remote = self.remote.clone();
        let (results, conflicts) = ctx
            .store
            .call(move |s| {
                let mut conflicts = 0u64;
                let mut all_changes = Vec::with_capacity(items.len());
                for item in &items {
                    let mut changes = match local_change(s, &origin, &item.id)? {
                        // A new version whose modelled fields are the ones last seen (an
                        // edit there of something not synced): no conflict, this side's
                        // change stands and is written back.
                        Some(_)
                            if unchanged_there(s, &origin, &item.id, &item.fields, &*remote)? =>
                        {
                            ContactChanges::default()
                        }
                        Some((contact, when)) => {
                            conflicts += 1;
                            resolve(&policy, &contact, when, &item.fields)
                        }
                        None => changes_of(&item.fields),
                    };
                    if marker.is_some() {
                        // the marker tag is this side's: the provider's tags do not replace
                        // the contact's (the marker is added below)
                        changes.tags = None;
                    }
                    all_changes.push(changes);
                }
                let remote: Vec<RemoteContact<'_>> = items
                    .iter()
                    .zip(all_changes)
                    .map(|(item, changes)| RemoteContact {
                        sync: &origin,
                        remote_id: &item.id,
                        version: item.version.as_deref(),
                        data: &item.data,
                        changes,
                    })
                    .collect();
                let imported = s.import_remote_contacts(&remote, at)?;
                let mut results: Vec<(String, ImportOutcome)> = Vec::with_capacity(items.len());
                for (item, result) in items.iter().zip(imported) {
                    let outcome = match result {
                        Ok(mut contact) => {
                            if let Some(marker) = &marker
                                && !contact.tags.contains(marker)
                            {
                                // CS-03: imported with the tag
                                let mut tags = contact.tags.clone();
                                tags.push(marker.clone());
                                let changes = ContactChanges {
                                    tags: Some(tags),
                                    ..ContactChanges::default()
                                };
                                if let Ok(tagged) = refused(
                                    s.update_contact(contact.id, None, &changes, &origin, at),
                                )? {
                                    contact = tagged;
                                }
                            }
                            let fields = outgoing(&contact, &item.fields, marker.is_some());
                            Ok((contact.id, !same_fields(&fields, &item.fields)))
                        }
                        Err(e) => Err(e),
                    };
                    results.push((item.id.clone(), outcome));
                }
                Ok((results, conflicts))
            })
            .await
            .map_err(store_err)?;
        for _ in 0..conflicts {
            self.recorder.conflict(ctx);
        }
        let mut out = Vec::with_capacity(results.len());
        for (id, result) in results {
            match result {
                Ok(done) => out.push(done),
                Err(e) => {
                    tracing::warn!(sync = %self.origin, item = %id, "item not imported: {e}");
                }
            }
        }
        Ok(out)
    }

    /// Pushes the journal's changes since the exported position.
    async fn push<'c>(
        &self,
        ctx: &'c SyncContext<'c>,
        folder: &'c Folder,
        report: &mut SyncReport,
    ) -> Result<(), ConnectorError> {
        let mut after: i64 = self
            .checkpoint(ctx, "exported".into())
            .await?
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
            // The last word on each contact in this batch.
            let mut latest: BTreeMap<i64, ChangeOp> = BTreeMap::new();
            for c in changes.iter().filter(|c| c.kind == RecordKind::Contact) {
                latest.insert(c.id, c.op);
            }
            self.recorder.known(latest.len());
            let count = latest.len();
            for (id, op) in latest {
                let moved = if op == ChangeOp::Delete {
                    self.push_delete(ctx, id).await?
                } else {
                    self.push_contact(ctx, folder, id, last).await?
                };
                if moved {
                    report.items_out += 1;
                }
            }
            self.recorder.done(ctx, count).await?;
            self.set_checkpoint(ctx, "exported".into(), Some(last.to_string()))
                .await?;
            after = last;
        }
    }

    /// The link of contact `id` and its item as last seen.
    async fn linked(
        &self,
        ctx: &SyncContext<'_>,
        id: i64,
    ) -> Result<Option<RemoteItem<CardFields>>, ConnectorError> {
        let origin = self.origin.clone();
        let (link, data) = ctx
            .store
            .call(move |s| {
                Ok((
                    s.sync_record(&origin, RecordKind::Contact, id)?,
                    s.sync_record_data(&origin, RecordKind::Contact, id)?,
                ))
            })
            .await
            .map_err(store_err)?;
        Ok(link.map(|l| {
            let data = data.unwrap_or_default();
            RemoteItem {
                fields: self.remote.decode(&data),
                id: l.remote_id,
                version: l.remote_version,
                data,
            }
        }))
    }

    async fn unlink(&self, ctx: &SyncContext<'_>, id: i64) -> Result<(), ConnectorError> {
        let origin = self.origin.clone();
        ctx.store
            .call(move |s| s.unlink_sync_record(&origin, RecordKind::Contact, id))
            .await
            .map_err(store_err)
    }

    /// A contact deleted here (CS-05), or one that left the export scope (`released`):
    /// deleted there with `propagate` (not for a scope change), else released (a Google
    /// contact leaves the group; elsewhere nothing happens there); unlinked either way.
    async fn push_delete(&self, ctx: &SyncContext<'_>, id: i64) -> Result<bool, ConnectorError> {
        let Some(item) = self.linked(ctx, id).await? else {
            return Ok(false); // never synced there: nothing to delete
        };
        self.take_out(ctx, id, &item, self.deletes == DeletePolicy::Propagate)
            .await
    }

    async fn take_out(
        &self,
        ctx: &SyncContext<'_>,
        id: i64,
        item: &RemoteItem<CardFields>,
        delete: bool,
    ) -> Result<bool, ConnectorError> {
        let written = if delete {
            self.remote
                .delete(ctx, &item.id, item.version.as_deref())
                .await?
        } else {
            self.remote.release(ctx, item).await?
        };
        let moved = match written {
            Written::Done(_) => delete || self.filter.marker.is_some(),
            Written::Gone => false,
            Written::Conflict | Written::Exists(_) => {
                // Changed there since: the newer remote version stays (never lose a write);
                // the link goes.
                self.recorder.conflict(ctx);
                tracing::info!(sync = %self.origin, item = %item.id, "not deleted remotely: it changed there since the last sync");
                false
            }
        };
        self.unlink(ctx, id).await?;
        Ok(moved)
    }

    /// Writes contact `id` (create or update), resolving stale versions.
    async fn push_contact(
        &self,
        ctx: &SyncContext<'_>,
        folder: &Folder,
        id: i64,
        seq: i64,
    ) -> Result<bool, ConnectorError> {
        for _ in 0..=CONFLICT_RETRIES {
            let contact = ctx
                .store
                .call(move |s| s.contact(id))
                .await
                .map_err(store_err)?;
            let Some(contact) = contact else {
                return Ok(false); // deleted since: its delete entry follows
            };
            let current = self.linked(ctx, id).await?;
            if !self.filter.exports(&contact) {
                return match current {
                    Some(item) => self.take_out(ctx, id, &item, false).await,
                    None => Ok(false),
                };
            }
            let old = current
                .as_ref()
                .map(|c| c.fields.clone())
                .unwrap_or_default();
            let fields = outgoing(&contact, &old, self.filter.marker.is_some());
            if current.is_some() && same_fields(&fields, &old) {
                return Ok(false); // the provider already has exactly this
            }
            let uid = stable_uid(&self.origin, id);
            let write = Write {
                folder,
                current: current.as_ref(),
                fields: &fields,
                uid: &uid,
            };
            match self.remote.write(ctx, write).await? {
                Written::Done(Some(item)) => {
                    self.link(ctx, id, &item, seq).await?;
                    return Ok(true);
                }
                Written::Done(None) => return Ok(true),
                Written::Exists(item) => {
                    // our own earlier create: adopt it, then update it
                    self.link(ctx, id, &item, 0).await?;
                }
                Written::Gone => {
                    if let Some(current) = &current {
                        // gone there: CS-05
                        self.remote_removed(ctx, &current.id).await?;
                    }
                    return Ok(false);
                }
                Written::Conflict => {
                    // Changed there since we read it: read it again and resolve.
                    let Some(current) = current else {
                        continue;
                    };
                    let Some(item) = self.remote.get(ctx, &current.id).await? else {
                        self.remote_removed(ctx, &current.id).await?;
                        return Ok(false);
                    };
                    if same_fields(&item.fields, &current.fields) {
                        // Only what the sync does not model changed there (a new version,
                        // the same fields): no conflict — write ours over the new version,
                        // or the policy could undo this side's change for an unrelated edit.
                        self.link(ctx, id, &item, 0).await?;
                        continue;
                    }
                    self.recorder.conflict(ctx);
                    let changes = resolve(
                        &self.conflict,
                        &contact,
                        Some(contact.updated_at),
                        &item.fields,
                    );
                    self.store_resolution(ctx, &item, changes).await?;
                }
            }
        }
        Err(ConnectorError::Failed(format!(
            "contact {id}: the item kept changing on the provider ({CONFLICT_RETRIES} conflicts in a row); retried on the next run"
        )))
    }

    /// Links contact `id` to `item` as written (or adopted), exported up to `seq`.
    async fn link(
        &self,
        ctx: &SyncContext<'_>,
        id: i64,
        item: &RemoteItem<CardFields>,
        seq: i64,
    ) -> Result<(), ConnectorError> {
        let state = SyncRecordState {
            sync: self.origin.clone(),
            kind: RecordKind::Contact,
            record_id: id,
            remote_id: item.id.clone(),
            remote_version: item.version.clone(),
            exported_seq: seq,
        };
        let (data, at) = (item.data.clone(), ctx.clock.now());
        ctx.store
            .call(move |s| s.set_sync_record_with_data(&state, &data, at))
            .await
            .map_err(store_err)
    }

    /// Writes a conflict's resolution here, linked to the item as just read.
    async fn store_resolution(
        &self,
        ctx: &SyncContext<'_>,
        item: &RemoteItem<CardFields>,
        mut changes: ContactChanges,
    ) -> Result<(), ConnectorError> {
        if self.filter.marker.is_some() {
            changes.tags = None;
        }
        let (origin, h, version, data) = (
            self.origin.clone(),
            item.id.clone(),
            item.version.clone(),
            item.data.clone(),
        );
        let at = ctx.clock.now();
        ctx.store
            .call(move |s| {
                let item = RemoteContact {
                    sync: &origin,
                    remote_id: &h,
                    version: version.as_deref(),
                    data: &data,
                    changes,
                };
                refused(s.import_remote_contact(&item, at))
            })
            .await
            .map_err(store_err)?
            .map(drop)
            .map_err(|e| {
                ConnectorError::Failed(format!(
                    "{}: the resolved contact was refused: {e}",
                    item.id
                ))
            })
    }
}

impl Connector for ContactSyncConnector {
    fn sync<'a>(&'a self, ctx: SyncContext<'a>) -> SyncFuture<'a> {
        Box::pin(async move {
            self.recorder.start();
            let result = self.run(&ctx).await;
            self.recorder.finish(&ctx, result).await
        })
    }
}

impl ContactSyncConnector {
    /// One run: pull, then push.
    async fn run<'c>(&self, ctx: &'c SyncContext<'c>) -> Result<SyncReport, ConnectorError> {
        let mut report = SyncReport::default();
        let before = self.remote.requests();
        let folders = self.remote.folders(ctx).await?;
        let Some(first) = folders.first() else {
            return Err(ConnectorError::Failed(
                "the account has no folder to sync".into(),
            ));
        };
        let mut imported = Vec::new();
        if self.import {
            for f in &folders {
                Self::check_cancel(ctx)?;
                self.pull(ctx, f, &mut report, &mut imported).await?;
            }
        }
        if self.export {
            // An item linked to a contact Switchboard already had, or a conflict resolved in
            // favour of this side, may leave the contact with more than the item says (the
            // union): write it back now. A contact the item describes exactly costs nothing.
            let seq = ctx
                .store
                .call(|s| s.last_change_seq())
                .await
                .map_err(store_err)?;
            for id in imported {
                Self::check_cancel(ctx)?;
                if self.push_contact(ctx, first, id, seq).await? {
                    report.items_out += 1;
                }
            }
            self.push(ctx, first, &mut report).await?;
        }
        tracing::info!(
            sync = %self.origin,
            items_in = report.items_in,
            items_out = report.items_out,
            requests = self.remote.requests() - before,
            "contact sync done"
        );
        Ok(report)
    }
}

/// A contact changed here, with the time of its last change here.
type LocalChange = (Contact, Option<DateTime<Utc>>);

/// One card's import: its contact's id and whether to write it back, or why it was refused.
type ImportOutcome = Result<(i64, bool), String>;

/// The contact linked to remote item `href` with its last local change, when it changed here
/// since it was last exported (a remote change to it is then a conflict).
fn local_change(
    s: &crate::store::Store,
    origin: &str,
    href: &str,
) -> Result<Option<LocalChange>, StoreError> {
    let Some(link) = s.sync_record_by_remote(origin, RecordKind::Contact, href)? else {
        return Ok(None);
    };
    let changed = s.changed_since_by_other(
        RecordKind::Contact,
        link.record_id,
        link.exported_seq,
        origin,
    )?;
    if !changed {
        return Ok(None);
    }
    let when = s.last_change_by_other(RecordKind::Contact, link.record_id, origin)?;
    Ok(s.contact(link.record_id)?.map(|c| (c, when)))
}

/// Whether the modelled fields of remote item `id` are still those of its version last seen
/// (kept with the link).
fn unchanged_there(
    s: &crate::store::Store,
    origin: &str,
    id: &str,
    fields: &CardFields,
    remote: &dyn ContactRemote,
) -> Result<bool, StoreError> {
    let Some(link) = s.sync_record_by_remote(origin, RecordKind::Contact, id)? else {
        return Ok(false);
    };
    Ok(
        s.sync_record_data(origin, RecordKind::Contact, link.record_id)?
            .is_some_and(|data| same_fields(&remote.decode(&data), fields)),
    )
}

/// A record write's outcome inside a store call: a store failure fails the call, a refused
/// write (a field the store rejects) is returned as its message.
pub(super) fn refused<T>(r: Result<T, RecordError>) -> Result<Result<T, String>, StoreError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(RecordError::Store(e)) => Err(e),
        Err(other) => Ok(Err(other.to_string())),
    }
}

/// A UID for the item Switchboard creates for record `id`: the same on every attempt.
fn stable_uid(origin: &str, id: i64) -> String {
    let digest = hex::encode(Sha256::digest(origin.as_bytes()));
    format!("switchboard-{}-contact-{id}", &digest[..12])
}

/// The store's changes for a card read from the server.
fn changes_of(card: &CardFields) -> ContactChanges {
    ContactChanges {
        name: Some(card.name.clone()),
        job_title: Some(card.job_title.clone()),
        emails: Some(card.emails.clone()),
        phones: Some(card.phones.clone()),
        tags: Some(card.tags.clone()),
        // CS-02: linked when exactly one account has the name; a card without ORG leaves
        // the link as it is (MB-01 may have made it by the address's domain)
        account: card.company.clone().map(|c| Some(AccountRef::Name(c))),
    }
}

/// The card fields of a contact; ORG stays what the card had when the contact has no
/// account (an unknown company is not Switchboard's to remove).
fn fields_of(contact: &Contact, old: &CardFields) -> CardFields {
    CardFields {
        uid: old.uid.clone(),
        name: contact.name.clone(),
        emails: contact.emails.clone(),
        phones: contact.phones.clone(),
        company: contact
            .account
            .as_ref()
            .map(|a| a.name.clone())
            .or_else(|| old.company.clone()),
        job_title: contact.job_title.clone(),
        tags: contact.tags.clone(),
        rev: None,
    }
}

/// The fields to write for `contact` over the item's `old` ones; with a marker tag the tags
/// are this side's business and the item keeps its own.
fn outgoing(contact: &Contact, old: &CardFields, marker: bool) -> CardFields {
    let mut fields = fields_of(contact, old);
    if marker {
        fields.tags = old.tags.clone();
    }
    fields
}

/// Whether two items say the same in every modelled field (lists compared as sets: the
/// provider's order is its own).
fn same_fields(a: &CardFields, b: &CardFields) -> bool {
    fn set(v: &[String]) -> std::collections::BTreeSet<&String> {
        v.iter().collect()
    }
    a.name == b.name
        && a.company == b.company
        && a.job_title == b.job_title
        && set(&a.emails) == set(&b.emails)
        && set(&a.phones) == set(&b.phones)
        && set(&a.tags) == set(&b.tags)
}

/// A vCard `REV` (`20240102T030405Z`, or RFC 3339) as a time.
pub(super) fn parse_rev(rev: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(rev)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(rev.trim_end_matches('Z'), "%Y%m%dT%H%M%S")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// The resolution of a conflict (CS-04, BX-02): the winner's fields, with the `union` fields
/// holding both sides' values (the winner's first).
fn resolve(
    policy: &ConflictPolicy,
    local: &Contact,
    local_changed: Option<DateTime<Utc>>,
    remote: &CardFields,
) -> ContactChanges {
    let remote_wins = match policy.winner {
        ConflictWinner::Remote => true,
        ConflictWinner::Switchboard => false,
        ConflictWinner::Newest => {
            match (remote.rev.as_deref().and_then(parse_rev), local_changed) {
                (Some(rev), Some(here)) => rev > here,
                _ => true,
            }
        }
    };
    let local_fields = fields_of(local, remote);
    let (winner, loser) = if remote_wins {
        (remote, &local_fields)
    } else {
        (&local_fields, remote)
    };
    let mut changes = changes_of(winner);
    let merge = |a: &[String], b: &[String]| {
        let mut all = a.to_vec();
        for v in b {
            if !all.contains(v) {
                all.push(v.clone());
            }
        }
        Some(all)
    };
    for field in &policy.union {
        match field {
            UnionField::Emails => changes.emails = merge(&winner.emails, &loser.emails),
            UnionField::Phones => changes.phones = merge(&winner.phones, &loser.phones),
            UnionField::Tags => changes.tags = merge(&winner.tags, &loser.tags),
        }
    }
    if !remote_wins {
        // the account stays as it is here
        changes.account = None;
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact() -> Contact {
        let t = chrono::DateTime::parse_from_rfc3339("2026-01-02T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        Contact {
            id: 1,
            name: Some("Here Name".into()),
            emails: vec!["a@example.org".into()],
            phones: vec!["+14155550100".into()],
            job_title: Some("CEO".into()),
            account: None,
            tags: vec!["x".into()],
            identities: vec![],
            version: 2,
            created_at: t,
            updated_at: t,
        }
    }

    fn remote() -> CardFields {
        CardFields {
            name: Some("There Name".into()),
            emails: vec!["b@example.org".into()],
            phones: vec!["+14155550199".into()],
            tags: vec!["y".into()],
            ..CardFields::default()
        }
    }

    #[test]
    fn switchboard_wins_with_phones_in_union() {
        let policy = ConflictPolicy {
            winner: ConflictWinner::Switchboard,
            union: vec![UnionField::Phones],
        };
        let c = resolve(&policy, &contact(), None, &remote());
        assert_eq!(c.name, Some(Some("Here Name".into())));
        assert_eq!(c.emails, Some(vec!["a@example.org".into()]));
        assert_eq!(
            c.phones,
            Some(vec!["+14155550100".into(), "+14155550199".into()])
        );
    }

    #[test]
    fn newest_compares_rev_with_the_local_change_and_without_rev_takes_the_remote() {
        let policy = ConflictPolicy::default();
        let here = contact().updated_at;
        let mut old = remote();
        old.rev = Some("20250101T000000Z".into());
        let c = resolve(&policy, &contact(), Some(here), &old);
        assert_eq!(c.name, Some(Some("Here Name".into())), "an older REV loses");
        let mut newer = remote();
        newer.rev = Some("2026-06-01T00:00:00Z".into());
        let c = resolve(&policy, &contact(), Some(here), &newer);
        assert_eq!(c.name, Some(Some("There Name".into())));
        let c = resolve(&policy, &contact(), Some(here), &remote());
        assert_eq!(c.name, Some(Some("There Name".into())));
    }

    // REQ: CS-01
    #[test]
    fn export_scope_selects_by_category_or_group_and_the_marker_narrows_it() {
        let company = Company::of(&ConfigSet::default());
        let mut employee = contact();
        employee.emails = vec!["ann@corp.example".into()];
        let filter = |marker: Option<&str>,
                      categories: Option<Vec<ContactCategory>>,
                      groups: &[&str]| ExportFilter {
            marker: marker.map(str::to_owned),
            categories,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            company: company.clone(),
        };
        let everyone = filter(None, None, &[]);
        assert!(everyone.exports(&contact()));
        // no User in the config: nobody's address is the company's
        let customers = filter(None, Some(vec![ContactCategory::Customer]), &[]);
        assert!(customers.exports(&contact()));
        let employees = filter(None, Some(vec![ContactCategory::Employee]), &[]);
        assert!(!employees.exports(&contact()));
        let by_group = filter(None, Some(vec![]), &["x"]);
        assert!(by_group.exports(&contact()), "tag x is a listed group");
        assert!(!filter(None, Some(vec![]), &["vip"]).exports(&contact()));
        // REQ: CS-03
        assert!(!filter(Some("sync-me"), None, &[]).exports(&contact()));
        let mut tagged = contact();
        tagged.tags.push("sync-me".into());
        assert!(filter(Some("sync-me"), None, &[]).exports(&tagged));
    }

    #[test]
    fn same_fields_ignores_order_and_the_marker_keeps_the_providers_tags() {
        let mut a = remote();
        a.emails = vec!["b@example.org".into(), "c@example.org".into()];
        let mut b = a.clone();
        b.emails.reverse();
        assert!(same_fields(&a, &b));
        b.name = Some("Other".into());
        assert!(!same_fields(&a, &b));
        let out = outgoing(&contact(), &remote(), true);
        assert_eq!(out.tags, vec!["y".to_owned()]);
        assert_eq!(
            outgoing(&contact(), &remote(), false).tags,
            vec!["x".to_owned()]
        );
    }

    #[test]
    fn the_created_uid_is_stable() {
        assert_eq!(
            stable_uid("ContactSync/a", 7),
            stable_uid("ContactSync/a", 7)
        );
        assert_ne!(
            stable_uid("ContactSync/a", 7),
            stable_uid("ContactSync/b", 7)
        );
    }
}

#[cfg(test)]
mod engine_tests;
