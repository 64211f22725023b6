//! The `ContactSync` connector over a `DavAccount` (CardDAV): two-way contact sync with the
//! record store (CS-04, CS-05, BX-01, BX-02).
//!
//! One run: **pull**, then **push**.
//!
//! - *Pull*, per address book: `sync-collection` from the stored token (a refused token falls
//!   back to a full listing); items whose ETag is the one last seen are skipped, the rest are
//!   read with `addressbook-multiget` in batches and imported with origin `ContactSync/NAME`
//!   (found by their link, else by address or phone, else created; ORG links the account by
//!   CS-02's rule), each with its ETag and its card text in `sync_records`. A record changed
//!   here since it was last exported and changed there too is a conflict, resolved by
//!   `conflict` (below). Removed items: `deletes: keep` unlinks the record, `propagate`
//!   deletes it here. The token is stored after the collection's items are in.
//! - *Push*: the journal after the exported position, without this sync's own changes. A
//!   linked contact is patched into its stored card (only modelled properties change) and
//!   written with `If-Match`; an unlinked one is created with `If-None-Match: *` under a UID
//!   derived from the sync and the record id, so a retry after a crash finds the same item
//!   instead of making a second one. A `412` is a conflict: the item is read again, resolved
//!   by policy and written again with the new ETag. A contact deleted here is deleted there
//!   only with `deletes: propagate`, and only when it was linked (synced) there.
//!
//! Conflicts: `winner: switchboard | remote`, or `newest` — the card's `REV` against the
//! record's last change here; a card without `REV` counts as the newer (its change is the
//! one seen last). Fields in `union` take both sides' values. Each is counted in
//! `sync_conflicts_total`.
//!
//! A no-change run is one `REPORT` per address book: the collections found by discovery are
//! remembered (keyed by the URL and the folder selection), and the push reads only the store.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use url::Url;

use crate::config::kinds::{
    ConflictPolicy, ConflictWinner, ContactSyncSpec, DavAccountSpec, DeletePolicy, ExportScope,
    UnionField,
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

use super::dav::{Collection, DavClient, DavError, MULTIGET_BATCH, Written, join};
use super::report::RunRecorder;
use super::vcard::{self, CardFields};

/// How many journal entries one push step reads.
const JOURNAL_BATCH: usize = 500;
/// The `listing <collection>` checkpoint of a collection listed by PROPFIND and ETags (its
/// server has no `sync-collection`); absent: listed by `sync-collection`.
const LISTING_PROPFIND: &str = "propfind";
/// How many times a write that met a 412 is re-read, resolved and tried again.
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
}

/// One `ContactSync` object over a `DavAccount`.
pub struct ContactSyncConnector {
    origin: String,
    /// The run record: conflicts, progress, what the last run moved.
    recorder: RunRecorder,
    url: Url,
    folders: AllOrList,
    import: bool,
    export: bool,
    conflict: ConflictPolicy,
    deletes: DeletePolicy,
    /// The key under which discovered collections are remembered.
    collections_key: String,
    client: DavClient,
}

fn store_err(e: StoreError) -> ConnectorError {
    ConnectorError::Failed(e.to_string())
}

fn dav_err(e: DavError) -> ConnectorError {
    ConnectorError::Failed(e.to_string())
}

impl ContactSyncConnector {
    /// Builds the connector: the account must be a `DavAccount` (the other account types are
    /// pending), `export.scope` must be `all`. The account's password is resolved here, at
    /// apply. `Err` is the pending reason.
    pub fn new(object: &Object, set: &ConfigSet) -> Result<ContactSyncConnector, String> {
        let spec = ContactSyncSpec::from_spec(&object.spec)
            .ok_or_else(|| format!("{} is not a ContactSync", object.id()))?;
        let Some(account) = set.get::<DavAccountSpec>(&spec.account) else {
            return Err(format!(
                "contact sync over `{}` is not built yet: only a DavAccount (CardDAV) syncs so far (issue: sync)",
                spec.account
            ));
        };
        if spec.export.enabled && !matches!(spec.export.scope, ExportScope::All(_)) {
            return Err(
                "export.scope by categories or groups is not built yet for a DavAccount; use `all` (issue: sync)"
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
        Ok(ContactSyncConnector {
            origin: format!("ContactSync/{}", object.name),
            recorder: RunRecorder::new("ContactSync", &object.name),
            url: account.url.url().clone(),
            folders: spec.import.folders.clone(),
            import: spec.import.enabled,
            export: spec.export.enabled,
            conflict: spec.conflict.clone(),
            deletes: spec.deletes,
            collections_key,
            client,
        })
    }

    /// The selected address books: remembered from an earlier run with the same URL, login
    /// and selection, else discovered and selected now.
    async fn collections(&self, ctx: &SyncContext<'_>) -> Result<Vec<Url>, ConnectorError> {
        let origin = self.origin.clone();
        let remembered = ctx
            .store
            .call(move |s| s.sync_checkpoint(&origin, "collections"))
            .await
            .map_err(store_err)?;
        if let Some(text) = remembered
            && let Some((key, urls)) = text.split_once('\n')
            && key == self.collections_key
        {
            let urls: Vec<Url> = urls.lines().filter_map(|u| Url::parse(u).ok()).collect();
            if !urls.is_empty() {
                return Ok(urls);
            }
        }
        let found = self.client.discover(&self.url).await.map_err(dav_err)?;
        let selected = select(&found, &self.folders);
        if selected.is_empty() {
            let names: Vec<String> = found
                .iter()
                .map(|c| {
                    c.display_name
                        .clone()
                        .unwrap_or_else(|| c.url.path().to_owned())
                })
                .collect();
            return Err(ConnectorError::Failed(format!(
                "no address book matches import.folders (found: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        }
        let (origin, at) = (self.origin.clone(), ctx.clock.now());
        let without_sync: Vec<String> = found
            .iter()
            .filter(|c| c.sync_collection == Some(false) && selected.contains(&c.url))
            .map(|c| format!("listing {}", c.url))
            .collect();
        if !without_sync.is_empty() {
            ctx.store
                .call(move |s| {
                    without_sync.iter().try_for_each(|scope| {
                        s.set_sync_checkpoint(&origin, scope, Some(LISTING_PROPFIND), at)
                    })
                })
                .await
                .map_err(store_err)?;
        }
        let text = std::iter::once(self.collections_key.clone())
            .chain(selected.iter().map(|u| u.to_string()))
            .collect::<Vec<_>>()
            .join("\n");
        let (origin, at) = (self.origin.clone(), ctx.clock.now());
        ctx.store
            .call(move |s| s.set_sync_checkpoint(&origin, "collections", Some(&text), at))
            .await
            .map_err(store_err)?;
        Ok(selected)
    }

    fn check_cancel(ctx: &SyncContext<'_>) -> Result<(), ConnectorError> {
        if ctx.cancel.is_cancelled() {
            Err(ConnectorError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Pulls one address book; adds to `imported` the ids of the contacts it imported that
    /// hold more than their card (to be written back).
    async fn pull(
        &self,
        ctx: &SyncContext<'_>,
        collection: &Url,
        report: &mut SyncReport,
        imported: &mut Vec<i64>,
    ) -> Result<(), ConnectorError> {
        let scope = format!("token {collection}");
        let listing_scope = format!("listing {collection}");
        let (origin, scope2, listing2) =
            (self.origin.clone(), scope.clone(), listing_scope.clone());
        let (token, listing) = ctx
            .store
            .call(move |s| {
                Ok((
                    s.sync_checkpoint(&origin, &scope2)?,
                    s.sync_checkpoint(&origin, &listing2)?,
                ))
            })
            .await
            .map_err(store_err)?;
        let by_propfind = listing.as_deref() == Some(LISTING_PROPFIND);
        // `full`: the answer lists everything there is (not a delta), so linked items it
        // does not list were removed there.
        let (delta, full) = if by_propfind {
            (self.list_by_etags(collection).await?, true)
        } else {
            match self
                .client
                .sync_collection(collection, token.as_deref())
                .await
            {
                Err(DavError::InvalidSyncToken) => {
                    tracing::warn!(sync = %self.origin, collection = %collection, "the server refused the sync token; listing the address book again");
                    match self.client.sync_collection(collection, None).await {
                        Err(DavError::SyncUnsupported) => {
                            self.remember_propfind(ctx, &listing_scope).await?;
                            (self.list_by_etags(collection).await?, true)
                        }
                        other => (other.map_err(dav_err)?, true),
                    }
                }
                Err(DavError::SyncUnsupported) => {
                    tracing::info!(sync = %self.origin, collection = %collection, "the server does not do sync-collection; comparing the ETags of a PROPFIND listing instead");
                    self.remember_propfind(ctx, &listing_scope).await?;
                    (self.list_by_etags(collection).await?, true)
                }
                other => (other.map_err(dav_err)?, token.is_none()),
            }
        };
        // What needs reading: items whose ETag is not the one last seen.
        let origin = self.origin.clone();
        let known: std::collections::HashMap<String, Option<String>> = ctx
            .store
            .call(move |s| s.sync_versions(&origin, RecordKind::Contact))
            .await
            .map_err(store_err)?
            .into_iter()
            .collect();
        let wanted: Vec<String> = delta
            .changed
            .iter()
            .filter(|(href, etag)| known.get(href).is_none_or(|k| etag.is_none() || k != etag))
            .map(|(href, _)| href.clone())
            .collect();
        self.recorder.known(wanted.len());
        for batch in wanted.chunks(MULTIGET_BATCH) {
            Self::check_cancel(ctx)?;
            let items = self
                .client
                .multiget(collection, batch)
                .await
                .map_err(dav_err)?;
            for (id, write_back) in self.import_batch(ctx, items).await? {
                report.items_in += 1;
                if write_back {
                    imported.push(id);
                }
            }
            self.recorder.done(ctx, batch.len()).await?;
        }
        // Removed items: reported as such on a delta; on a full listing, the linked items it
        // no longer lists (an initial listing's 404 entries are old history, not ours; with
        // no links yet there is nothing to compare).
        let mut removed: Vec<String> = if full {
            Vec::new()
        } else {
            delta.removed.clone()
        };
        if full {
            let listed: std::collections::HashSet<&str> =
                delta.changed.iter().map(|(h, _)| h.as_str()).collect();
            let prefix = collection.path().to_owned();
            removed.extend(
                known
                    .into_keys()
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

    /// A server without `sync-collection`: the collection's items and ETags by PROPFIND, as
    /// a full listing (no token).
    async fn list_by_etags(
        &self,
        collection: &Url,
    ) -> Result<super::dav::SyncDelta, ConnectorError> {
        let changed = self.client.list_etags(collection).await.map_err(dav_err)?;
        Ok(super::dav::SyncDelta {
            token: None,
            changed,
            removed: Vec::new(),
        })
    }

    /// Remembers that a collection is listed by PROPFIND, so later runs cost one request.
    async fn remember_propfind(
        &self,
        ctx: &SyncContext<'_>,
        scope: &str,
    ) -> Result<(), ConnectorError> {
        let (origin, scope, at) = (self.origin.clone(), scope.to_owned(), ctx.clock.now());
        ctx.store
            .call(move |s| s.set_sync_checkpoint(&origin, &scope, Some(LISTING_PROPFIND), at))
            .await
            .map_err(store_err)
    }

    /// A remote item is gone: CS-05.
    async fn remote_removed(
        &self,
        ctx: &SyncContext<'_>,
        href: &str,
    ) -> Result<bool, ConnectorError> {
        let (origin, h) = (self.origin.clone(), href.to_owned());
        let propagate = self.deletes == DeletePolicy::Propagate;
        let at = ctx.clock.now();
        ctx.store
            .call(move |s| {
                let Some(link) = s.sync_record_by_remote(&origin, RecordKind::Contact, &h)? else {
                    return Ok(false);
                };
                s.unlink_sync_record(&origin, RecordKind::Contact, link.record_id)?;
                if propagate && s.contact(link.record_id)?.is_some() {
                    // a refusal here only means it is already gone
                    let _ = refused(s.delete_contact(link.record_id, None, &origin, at))?;
                }
                Ok(true)
            })
            .await
            .map_err(store_err)
    }

    /// Imports a batch of cards read from the server (one multiget's answer) in one store
    /// call and one transaction, resolving conflicts with local changes. Returns, per
    /// imported contact, its id and whether it must be written back (the contact holds more
    /// than the card: a first link to a contact Switchboard already had, or a conflict
    /// resolved towards this side). A card the store refuses is skipped, its reason logged.
    async fn import_batch(
        &self,
        ctx: &SyncContext<'_>,
        items: Vec<super::dav::Item>,
    ) -> Result<Vec<(i64, bool)>, ConnectorError> {
        let parsed: Vec<(super::dav::Item, CardFields)> = items
            .into_iter()
            .map(|item| {
                let fields = vcard::parse(&item.data);
                (item, fields)
            })
            .collect();
        let (origin, policy, at) = (self.origin.clone(), self.conflict.clone(), ctx.clock.now());
        let (results, conflicts) = ctx
            .store
            .call(move |s| {
                let mut conflicts = 0u64;
                let mut all_changes = Vec::with_capacity(parsed.len());
                for (item, remote) in &parsed {
                    let changes = match local_change(s, &origin, &item.href)? {
                        Some((contact, when)) => {
                            conflicts += 1;
                            resolve(&policy, &contact, when, remote)
                        }
                        None => changes_of(remote),
                    };
                    all_changes.push(changes);
                }
                let remote: Vec<RemoteContact<'_>> = parsed
                    .iter()
                    .zip(all_changes)
                    .map(|((item, _), changes)| RemoteContact {
                        sync: &origin,
                        remote_id: &item.href,
                        version: item.etag.as_deref(),
                        data: &item.data,
                        changes,
                    })
                    .collect();
                let imported = s.import_remote_contacts(&remote, at)?;
                let results: Vec<(String, ImportOutcome)> = parsed
                    .iter()
                    .zip(imported)
                    .map(|((item, remote), result)| {
                        let outcome = result.map(|contact| {
                            // as `push_contact` decides: would the patched card differ?
                            let uid = stable_uid(&origin, contact.id);
                            let card =
                                vcard::patch(Some(&item.data), &fields_of(&contact, remote), &uid);
                            (contact.id, !vcard::same(&item.data, &card))
                        });
                        (item.href.clone(), outcome)
                    })
                    .collect();
                Ok((results, conflicts))
            })
            .await
            .map_err(store_err)?;
        for _ in 0..conflicts {
            self.count_conflict(ctx);
        }
        let mut out = Vec::with_capacity(results.len());
        for (href, result) in results {
            match result {
                Ok(done) => out.push(done),
                Err(e) => {
                    tracing::warn!(sync = %self.origin, item = %href, "card not imported: {e}");
                }
            }
        }
        Ok(out)
    }

    fn count_conflict(&self, ctx: &SyncContext<'_>) {
        self.recorder.conflict(ctx);
    }

    /// Pushes the journal's changes since the exported position.
    async fn push(
        &self,
        ctx: &SyncContext<'_>,
        collection: &Url,
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
                    self.push_contact(ctx, collection, id, last).await?
                };
                if moved {
                    report.items_out += 1;
                }
            }
            self.recorder.done(ctx, count).await?;
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

    /// A contact deleted here: CS-05.
    async fn push_delete(&self, ctx: &SyncContext<'_>, id: i64) -> Result<bool, ConnectorError> {
        let origin = self.origin.clone();
        let link = ctx
            .store
            .call(move |s| s.sync_record(&origin, RecordKind::Contact, id))
            .await
            .map_err(store_err)?;
        let Some(link) = link else {
            return Ok(false); // never synced there: nothing to delete
        };
        let mut moved = false;
        if self.deletes == DeletePolicy::Propagate {
            let url = join(&self.url, &link.remote_id).map_err(dav_err)?;
            match self
                .client
                .delete(&url, link.remote_version.as_deref())
                .await
                .map_err(dav_err)?
            {
                Written::Ok(_) => moved = true,
                Written::PreconditionFailed => {
                    // Changed there since: the newer remote version stays (never lose a
                    // write); the record here stays deleted and the link goes.
                    self.count_conflict(ctx);
                    tracing::info!(sync = %self.origin, item = %link.remote_id, "not deleted remotely: it changed there since the last sync");
                }
            }
        }
        let origin = self.origin.clone();
        ctx.store
            .call(move |s| s.unlink_sync_record(&origin, RecordKind::Contact, id))
            .await
            .map_err(store_err)?;
        Ok(moved)
    }

    /// Writes contact `id` to the server (create or update), resolving 412s.
    async fn push_contact(
        &self,
        ctx: &SyncContext<'_>,
        collection: &Url,
        id: i64,
        seq: i64,
    ) -> Result<bool, ConnectorError> {
        for _ in 0..=CONFLICT_RETRIES {
            let origin = self.origin.clone();
            let state = ctx
                .store
                .call(move |s| {
                    let Some(contact) = s.contact(id)? else {
                        return Ok(None);
                    };
                    let link = s.sync_record(&origin, RecordKind::Contact, id)?;
                    let data = s.sync_record_data(&origin, RecordKind::Contact, id)?;
                    Ok(Some((contact, link, data)))
                })
                .await
                .map_err(store_err)?;
            let Some((contact, link, data)) = state else {
                return Ok(false); // deleted since: its delete entry follows
            };
            let uid = stable_uid(&self.origin, id);
            let (url, if_match) = match &link {
                Some(l) => (
                    join(collection, &l.remote_id).map_err(dav_err)?,
                    Some(l.remote_version.clone().unwrap_or_else(|| "*".into())),
                ),
                None => (
                    join(collection, &format!("{uid}.vcf")).map_err(dav_err)?,
                    None,
                ),
            };
            let old = data.as_deref().map(vcard::parse).unwrap_or_default();
            let fields = fields_of(&contact, &old);
            let card = vcard::patch(data.as_deref(), &fields, &uid);
            if link.is_some() && data.as_deref().is_some_and(|d| vcard::same(d, &card)) {
                return Ok(false); // the server already has exactly this
            }
            match self
                .client
                .put(&url, &card, if_match.as_deref())
                .await
                .map_err(dav_err)?
            {
                Written::Ok(etag) => {
                    let state = SyncRecordState {
                        sync: self.origin.clone(),
                        kind: RecordKind::Contact,
                        record_id: id,
                        remote_id: url.path().to_owned(),
                        remote_version: etag,
                        exported_seq: seq,
                    };
                    let at = ctx.clock.now();
                    ctx.store
                        .call(move |s| s.set_sync_record_with_data(&state, &card, at))
                        .await
                        .map_err(store_err)?;
                    return Ok(true);
                }
                Written::PreconditionFailed => {
                    // Changed there since we read it (or, for a create, an earlier run's PUT
                    // landed before a crash): read it again and resolve.
                    let Some(item) = self.client.get(&url).await.map_err(dav_err)? else {
                        // gone there: CS-05 — unlink; with `propagate` it is deleted here
                        self.remote_removed(ctx, url.path()).await?;
                        return Ok(false);
                    };
                    if link.is_some() {
                        self.count_conflict(ctx);
                        let remote = vcard::parse(&item.data);
                        let changes =
                            resolve(&self.conflict, &contact, Some(contact.updated_at), &remote);
                        self.store_resolution(ctx, url.path(), &item, changes)
                            .await?;
                    } else {
                        // our own earlier create: adopt it, then update it
                        let state = SyncRecordState {
                            sync: self.origin.clone(),
                            kind: RecordKind::Contact,
                            record_id: id,
                            remote_id: url.path().to_owned(),
                            remote_version: item.etag.clone(),
                            exported_seq: 0,
                        };
                        let at = ctx.clock.now();
                        ctx.store
                            .call(move |s| s.set_sync_record_with_data(&state, &item.data, at))
                            .await
                            .map_err(store_err)?;
                    }
                }
            }
        }
        Err(ConnectorError::Failed(format!(
            "contact {id}: the item kept changing on the server ({CONFLICT_RETRIES} conflicts in a row); retried on the next run"
        )))
    }

    /// Writes a conflict's resolution here, linked to the item as just read.
    async fn store_resolution(
        &self,
        ctx: &SyncContext<'_>,
        href: &str,
        item: &super::dav::Item,
        changes: ContactChanges,
    ) -> Result<(), ConnectorError> {
        let (origin, h, etag, data) = (
            self.origin.clone(),
            href.to_owned(),
            item.etag.clone(),
            item.data.clone(),
        );
        let at = ctx.clock.now();
        ctx.store
            .call(move |s| {
                let item = RemoteContact {
                    sync: &origin,
                    remote_id: &h,
                    version: etag.as_deref(),
                    data: &data,
                    changes,
                };
                refused(s.import_remote_contact(&item, at))
            })
            .await
            .map_err(store_err)?
            .map(drop)
            .map_err(|e| {
                ConnectorError::Failed(format!("{href}: the resolved contact was refused: {e}"))
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
    async fn run(&self, ctx: &SyncContext<'_>) -> Result<SyncReport, ConnectorError> {
        let mut report = SyncReport::default();
        let before = self.client.requests();
        let collections = self.collections(ctx).await?;
        let mut imported = Vec::new();
        if self.import {
            for c in &collections {
                Self::check_cancel(ctx)?;
                self.pull(ctx, c, &mut report, &mut imported).await?;
            }
        }
        if self.export {
            // A card linked to a contact Switchboard already had, or a conflict resolved
            // in favour of this side, may leave the contact with more than the card says
            // (the union): write it back now. A contact the card describes exactly
            // costs nothing (the patched card equals the stored one).
            let seq = ctx
                .store
                .call(|s| s.last_change_seq())
                .await
                .map_err(store_err)?;
            for id in imported {
                Self::check_cancel(ctx)?;
                if self.push_contact(ctx, &collections[0], id, seq).await? {
                    report.items_out += 1;
                }
            }
            self.push(ctx, &collections[0], &mut report).await?;
        }
        tracing::info!(
            sync = %self.origin,
            items_in = report.items_in,
            items_out = report.items_out,
            requests = self.client.requests() - before,
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

/// A record write's outcome inside a store call: a store failure fails the call, a refused
/// write (a field the store rejects) is returned as its message.
pub(super) fn refused<T>(r: Result<T, RecordError>) -> Result<Result<T, String>, StoreError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(RecordError::Store(e)) => Err(e),
        Err(other) => Ok(Err(other.to_string())),
    }
}

/// The collections of `found` that `folders` selects (by display name or path).
fn select(found: &[Collection], folders: &AllOrList) -> Vec<Url> {
    match folders {
        AllOrList::All(_) => found.iter().map(|c| c.url.clone()).collect(),
        AllOrList::List(names) => found
            .iter()
            .filter(|c| {
                names.iter().any(|n| {
                    c.display_name.as_deref() == Some(n.as_str())
                        || c.url.path().trim_end_matches('/') == n.trim_end_matches('/')
                        || c.url.as_str().trim_end_matches('/') == n.trim_end_matches('/')
                })
            })
            .map(|c| c.url.clone())
            .collect(),
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

    #[test]
    fn select_by_display_name_or_path() {
        let found = vec![
            Collection {
                url: Url::parse("http://h/a/contacts/").expect("url"),
                display_name: Some("Contacts".into()),
                sync_collection: None,
            },
            Collection {
                url: Url::parse("http://h/a/work/").expect("url"),
                display_name: None,
                sync_collection: Some(false),
            },
        ];
        let pick = |names: &[&str]| {
            select(
                &found,
                &AllOrList::List(names.iter().map(|s| (*s).to_owned()).collect()),
            )
        };
        assert_eq!(pick(&["Contacts"]).len(), 1);
        assert_eq!(pick(&["/a/work"])[0].path(), "/a/work/");
        assert!(pick(&["nope"]).is_empty());
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
