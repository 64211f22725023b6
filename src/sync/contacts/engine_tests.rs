//! The contact engine over an in-memory remote: the provider-neutral paths no single provider
//! exercises all of — paged listings resumed after a failure, an expired token's full listing
//! finding removals, the marker tag (CS-03 / CS-05), a retried create adopting its earlier copy.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::clock::Clock;
use crate::store::records::ContactQuery;
use crate::store::{Store, StoreHandle};
use crate::sync::remote::{Page, RemoteFuture};
use crate::sync::vcard;
use crate::telemetry::Metrics;

const FOLDER: &str = "book/";

#[derive(Default)]
struct State {
    /// id → (version, card)
    items: BTreeMap<String, (u64, String)>,
    /// (seq, id, removed)
    log: Vec<(u64, String, bool)>,
    seq: u64,
    created: u64,
    expired: bool,
    /// Fail listing requests for this page cursor once (a run dies mid-listing).
    fail_page: Option<String>,
    cursors: Vec<String>,
    released: Vec<String>,
    deleted: Vec<String>,
}

#[derive(Default)]
struct MemoryRemote {
    state: Mutex<State>,
}

impl MemoryRemote {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("state")
    }

    /// A user edits (or adds) an item there.
    fn put(&self, id: &str, name: &str, email: &str) {
        let mut s = self.state();
        s.seq += 1;
        let seq = s.seq;
        let card = vcard::patch(
            None,
            &CardFields {
                name: Some(name.into()),
                emails: vec![email.into()],
                ..CardFields::default()
            },
            id,
        );
        s.items.insert(id.to_owned(), (seq, card));
        s.log.push((seq, id.to_owned(), false));
    }

    fn remove(&self, id: &str) {
        let mut s = self.state();
        s.seq += 1;
        let seq = s.seq;
        s.items.remove(id);
        s.log.push((seq, id.to_owned(), true));
    }

    fn item(id: &str, (version, card): &(u64, String)) -> RemoteItem<CardFields> {
        RemoteItem {
            id: id.to_owned(),
            version: Some(version.to_string()),
            data: card.clone(),
            fields: vcard::parse(card),
        }
    }
}

impl ContactRemote for MemoryRemote {
    fn folders<'a>(&'a self, _ctx: &'a SyncContext<'a>) -> RemoteFuture<'a, Vec<Folder>> {
        Box::pin(async {
            Ok(vec![Folder {
                id: FOLDER.into(),
                name: "Book".into(),
            }])
        })
    }

    fn list<'a>(
        &'a self,
        _ctx: &'a SyncContext<'a>,
        _folder: &'a Folder,
        cursor: Cursor<'a>,
    ) -> RemoteFuture<'a, Page<CardFields>> {
        Box::pin(async move {
            let mut s = self.state();
            let seq = s.seq;
            match cursor {
                Cursor::Token(t) => {
                    if s.expired {
                        return Err(RemoteError::TokenExpired);
                    }
                    let after: u64 = t.parse().expect("token");
                    let mut items = Vec::new();
                    let mut removed = Vec::new();
                    let changed: BTreeSet<(String, bool)> = s
                        .log
                        .iter()
                        .filter(|(q, _, _)| *q > after)
                        .map(|(_, id, gone)| (id.clone(), *gone))
                        .collect();
                    for (id, gone) in changed {
                        match s.items.get(&id) {
                            Some(v) if !gone => items.push(Listed::Item(Self::item(&id, v))),
                            None => removed.push(id),
                            _ => {}
                        }
                    }
                    Ok(Page {
                        items,
                        removed,
                        next: Next::Done(Some(seq.to_string())),
                        full: false,
                    })
                }
                Cursor::Start | Cursor::Page(_) => {
                    let offset: usize = match cursor {
                        Cursor::Page(p) => {
                            s.cursors.push(p.to_owned());
                            if s.fail_page.as_deref() == Some(p) {
                                s.fail_page = None;
                                return Err(RemoteError::Failed("connection reset".into()));
                            }
                            p.parse().expect("page")
                        }
                        _ => 0,
                    };
                    s.expired = false;
                    // two per page, versions only on odd pages (read back with `read`)
                    let page: Vec<Listed<CardFields>> = s
                        .items
                        .iter()
                        .skip(offset)
                        .take(2)
                        .map(|(id, v)| {
                            if offset.is_multiple_of(4) {
                                Listed::Item(Self::item(id, v))
                            } else {
                                Listed::Version {
                                    id: id.clone(),
                                    version: Some(v.0.to_string()),
                                }
                            }
                        })
                        .collect();
                    let next = if offset + 2 < s.items.len() {
                        Next::More((offset + 2).to_string())
                    } else {
                        Next::Done(Some(seq.to_string()))
                    };
                    Ok(Page {
                        items: page,
                        removed: Vec::new(),
                        next,
                        full: true,
                    })
                }
            }
        })
    }

    fn read<'a>(
        &'a self,
        _ctx: &'a SyncContext<'a>,
        _folder: &'a Folder,
        ids: &'a [String],
    ) -> RemoteFuture<'a, Vec<RemoteItem<CardFields>>> {
        Box::pin(async move {
            let s = self.state();
            Ok(ids
                .iter()
                .filter_map(|id| s.items.get(id).map(|v| Self::item(id, v)))
                .collect())
        })
    }

    fn get<'a>(
        &'a self,
        _ctx: &'a SyncContext<'a>,
        id: &'a str,
    ) -> RemoteFuture<'a, Option<RemoteItem<CardFields>>> {
        Box::pin(async move { Ok(self.state().items.get(id).map(|v| Self::item(id, v))) })
    }

    fn decode(&self, data: &str) -> CardFields {
        vcard::parse(data)
    }

    fn write<'a>(
        &'a self,
        _ctx: &'a SyncContext<'a>,
        write: Write<'a, CardFields>,
    ) -> RemoteFuture<'a, Written<CardFields>> {
        Box::pin(async move {
            let mut s = self.state();
            let id = match write.current {
                Some(current) => {
                    let Some((version, _)) = s.items.get(&current.id) else {
                        return Ok(Written::Gone);
                    };
                    if current.version != Some(version.to_string()) {
                        return Ok(Written::Conflict);
                    }
                    current.id.clone()
                }
                None => {
                    let id = format!("{FOLDER}{}", write.uid);
                    if let Some(v) = s.items.get(&id) {
                        return Ok(Written::Exists(Self::item(&id, v)));
                    }
                    s.created += 1;
                    id
                }
            };
            s.seq += 1;
            let seq = s.seq;
            let card = vcard::patch(
                write.current.map(|c| c.data.as_str()),
                write.fields,
                write.uid,
            );
            s.items.insert(id.clone(), (seq, card));
            s.log.push((seq, id.clone(), false));
            let item = Self::item(&id, &s.items[&id]);
            Ok(Written::Done(Some(item)))
        })
    }

    fn delete<'a>(
        &'a self,
        _ctx: &'a SyncContext<'a>,
        id: &'a str,
        _version: Option<&'a str>,
    ) -> RemoteFuture<'a, Written<CardFields>> {
        Box::pin(async move {
            self.state().deleted.push(id.to_owned());
            Ok(Written::Done(None))
        })
    }

    fn release<'a>(
        &'a self,
        _ctx: &'a SyncContext<'a>,
        item: &'a RemoteItem<CardFields>,
    ) -> RemoteFuture<'a, Written<CardFields>> {
        Box::pin(async move {
            self.state().released.push(item.id.clone());
            Ok(Written::Done(None))
        })
    }

    fn requests(&self) -> u64 {
        0
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    set: ConfigSet,
    store: StoreHandle,
    metrics: Metrics,
    remote: Arc<MemoryRemote>,
    connector: ContactSyncConnector,
}

/// A ContactSync over a DavAccount in the config (for validation), run over a memory remote.
fn rig(spec: &str) -> Rig {
    rig_over(
        "kind: DavAccount\nmetadata: {name: home}\nspec:\n  user: owner\n  url: https://dav.example/\n  username: u\n  password: {file: pw.txt}\n",
        spec,
    )
}

/// As [`rig`] over a GoogleAccount (whose `google` settings the sync may then have).
fn google_rig(spec: &str) -> Rig {
    rig_over(
        "kind: Settings\nmetadata: {name: default}\nspec:\n  siteUrl: https://sb.example\n  google: {clientId: app, clientSecret: {file: pw.txt}}\n---\napiVersion: switchboard/v1\nkind: GoogleAccount\nmetadata: {name: home}\nspec:\n  user: owner\n  email: owner@corp.example\n  refreshToken: {file: pw.txt}\n",
        spec,
    )
}

fn rig_over(account: &str, spec: &str) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("pw.txt"), "pw").expect("password");
    std::fs::write(
        dir.path().join("sync.yaml"),
        format!(
            "apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: owner}}\nspec: {{displayName: Owner, email: owner@corp.example}}\n---\n\
             apiVersion: switchboard/v1\n{account}---\n\
             apiVersion: switchboard/v1\nkind: ContactSync\nmetadata: {{name: book}}\nspec:\n  account: home\n  import: {{enabled: true}}\n  export: {{enabled: true}}\n{spec}"
        ),
    )
    .expect("manifest");
    let set = crate::config::load(&[dir.path().to_path_buf()])
        .into_result()
        .unwrap_or_else(|d| panic!("valid config: {d:?}"));
    // The engine records no object here (the sync's checkpoints and links are keyed by its
    // origin), so the store needs no applied config.
    let store = Store::open(&dir.path().join("state.db")).expect("store");
    let object = set
        .object(Kind::ContactSync, "book")
        .expect("object")
        .clone();
    let spec = ContactSyncSpec::from_spec(&object.spec).expect("spec");
    let remote = Arc::new(MemoryRemote::default());
    let connector = ContactSyncConnector::with_remote(&object, spec, &set, remote.clone());
    Rig {
        _dir: dir,
        set,
        store: StoreHandle::new(store),
        metrics: Metrics::new(),
        remote,
        connector,
    }
}

impl Rig {
    async fn try_sync(&self) -> Result<SyncReport, ConnectorError> {
        let object = self.set.object(Kind::ContactSync, "book").expect("object");
        let secrets = BTreeMap::new();
        self.connector
            .sync(SyncContext {
                object,
                secrets: &secrets,
                cancel: CancellationToken::new(),
                store: &self.store,
                metrics: &self.metrics,
                clock: Clock::system(),
            })
            .await
    }

    async fn sync(&self) -> SyncReport {
        self.try_sync().await.expect("sync succeeds")
    }

    async fn contacts(&self) -> Vec<Contact> {
        self.store
            .call(|s| {
                s.contacts(&ContactQuery {
                    limit: 1000,
                    ..ContactQuery::default()
                })
            })
            .await
            .expect("contacts")
            .0
    }

    async fn by_email(&self, email: &str) -> Contact {
        self.contacts()
            .await
            .into_iter()
            .find(|c| c.emails.iter().any(|e| e == email))
            .unwrap_or_else(|| panic!("a contact with {email}"))
    }

    async fn change(&self, id: i64, changes: ContactChanges) {
        self.store
            .call(move |s| {
                s.update_contact(id, None, &changes, "User/owner", Utc::now())
                    .map(drop)
                    .map_err(|e| match e {
                        RecordError::Store(e) => e,
                        other => panic!("{other}"),
                    })
            })
            .await
            .expect("update");
    }
}

// REQ: CS-04
#[tokio::test]
async fn a_paged_listing_interrupted_mid_way_resumes_from_its_page_and_duplicates_nothing() {
    let rig = rig("");
    for i in 0..7 {
        rig.remote.put(
            &format!("{FOLDER}c{i}"),
            &format!("Person {i}"),
            &format!("p{i}@x.example"),
        );
    }
    rig.remote.state().fail_page = Some("4".into());
    let failed = rig.try_sync().await;
    assert!(failed.is_err(), "the run dies at page 4");
    assert_eq!(rig.contacts().await.len(), 4, "two pages are in");
    rig.sync().await;
    assert_eq!(rig.contacts().await.len(), 7, "every item once");
    let cursors = rig.remote.state().cursors.clone();
    assert_eq!(
        cursors,
        ["2", "4", "4", "6"],
        "the second run resumed at the page it died on, not from the start"
    );
    // a no-change run imports nothing and writes nothing
    let report = rig.sync().await;
    assert_eq!((report.items_in, report.items_out), (0, 0));
    assert_eq!(rig.remote.state().created, 0);
}

// REQ: CS-05
#[tokio::test]
async fn an_expired_token_lists_again_and_finds_what_was_removed_meanwhile() {
    let rig = rig("  deletes: propagate\n");
    for i in 0..3 {
        rig.remote.put(
            &format!("{FOLDER}c{i}"),
            &format!("Person {i}"),
            &format!("p{i}@x.example"),
        );
    }
    rig.sync().await;
    assert_eq!(rig.contacts().await.len(), 3);
    rig.remote.remove(&format!("{FOLDER}c1"));
    rig.remote
        .put(&format!("{FOLDER}c2"), "Renamed", "p2@x.example");
    rig.remote.state().expired = true;
    rig.sync().await;
    let names: Vec<Option<String>> = rig.contacts().await.into_iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [Some("Person 0".to_owned()), Some("Renamed".to_owned())],
        "the full listing removed c1 (propagate) and duplicated nothing"
    );
}

// REQ: CS-03
// REQ: CS-05
#[tokio::test]
async fn the_marker_tag_narrows_the_export_and_a_delete_is_a_release_not_a_delete() {
    let rig = google_rig("  google: {tag: crm}\n");
    rig.remote
        .put(&format!("{FOLDER}g1"), "From Google", "g1@x.example");
    let made = rig
        .store
        .call(|s| {
            let a = |name: &str, email: &str, tags: Vec<String>| ContactChanges {
                name: Some(Some(name.into())),
                emails: Some(vec![email.into()]),
                tags: Some(tags),
                ..ContactChanges::default()
            };
            let tagged = s
                .create_contact(
                    &a("Tagged", "t@x.example", vec!["crm".into()]),
                    "User/owner",
                    Utc::now(),
                )
                .map_err(|e| match e {
                    RecordError::Store(e) => e,
                    other => panic!("{other}"),
                })?;
            s.create_contact(
                &a("Untagged", "u@x.example", vec![]),
                "User/owner",
                Utc::now(),
            )
            .map_err(|e| match e {
                RecordError::Store(e) => e,
                other => panic!("{other}"),
            })?;
            Ok(tagged.id)
        })
        .await
        .expect("contacts");
    rig.sync().await;
    let imported = rig.by_email("g1@x.example").await;
    assert!(
        imported.tags.contains(&"crm".to_owned()),
        "imported with the tag"
    );
    let names: BTreeSet<String> = {
        let s = rig.remote.state();
        s.items
            .values()
            .map(|(_, card)| vcard::parse(card).name.unwrap_or_default())
            .collect()
    };
    assert_eq!(
        names,
        BTreeSet::from(["From Google".to_owned(), "Tagged".to_owned()]),
        "only the tagged contact was exported"
    );
    // the user takes the tag off here: released there, not deleted
    rig.change(
        made,
        ContactChanges {
            tags: Some(vec![]),
            ..ContactChanges::default()
        },
    )
    .await;
    rig.sync().await;
    let (released, deleted) = {
        let s = rig.remote.state();
        (s.released.clone(), s.deleted.clone())
    };
    assert_eq!(released.len(), 1, "{released:?}");
    assert!(deleted.is_empty());
    // deleted there: the contact here stays, without the tag
    rig.remote.remove(&format!("{FOLDER}g1"));
    rig.sync().await;
    let kept = rig.by_email("g1@x.example").await;
    assert!(
        !kept.tags.contains(&"crm".to_owned()),
        "lost the tag: {:?}",
        kept.tags
    );
}

#[tokio::test]
async fn a_create_retried_after_a_crash_adopts_its_earlier_copy() {
    let rig = rig("");
    let id = rig
        .store
        .call(|s| {
            s.create_contact(
                &ContactChanges {
                    name: Some(Some("Made Here".into())),
                    emails: Some(vec!["m@x.example".into()]),
                    ..ContactChanges::default()
                },
                "User/owner",
                Utc::now(),
            )
            .map(|c| c.id)
            .map_err(|e| match e {
                RecordError::Store(e) => e,
                other => panic!("{other}"),
            })
        })
        .await
        .expect("contact");
    // An earlier run's create landed there, then the daemon died before linking it.
    let uid = stable_uid("ContactSync/book", id);
    {
        let mut s = rig.remote.state();
        s.seq += 1;
        let card = vcard::patch(
            None,
            &CardFields {
                name: Some("Made Here (old)".into()),
                emails: vec!["m@x.example".into()],
                ..CardFields::default()
            },
            &uid,
        );
        let seq = s.seq;
        s.items.insert(format!("{FOLDER}{uid}"), (seq, card));
    }
    let mut cfg = rig;
    cfg.connector.import = false; // push only: the create meets its own copy
    cfg.sync().await;
    let s = cfg.remote.state();
    assert_eq!(s.created, 0, "no second item");
    assert_eq!(s.items.len(), 1);
    let (_, card) = s.items.values().next().expect("item");
    assert_eq!(
        vcard::parse(card).name.as_deref(),
        Some("Made Here"),
        "then updated"
    );
}
