//! The `CalendarSync` engine over a wire-level-free fake `CalendarRemote` (the contract Google
//! Calendar and Microsoft Graph implement beside CalDAV): page cursors checkpointed after each
//! page, a throttled run ending as `ConnectorError::Throttled` and the next one going on from
//! its page, an expired token listed again from the start without duplicates and with the
//! removals a complete full listing shows, items listed whole imported without a read, and
//! writes carrying the stable uid, the AS-02 target and the `Notify` of `invitations`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use switchboard::clock::Clock;
use switchboard::config::{ConfigSet, Kind};
use switchboard::connector::{Connector, ConnectorError, SyncContext, SyncReport};
use switchboard::engine::apply::changes;
use switchboard::store::activities::{Activity, ActivityChanges, ActivityKind, ActivityQuery};
use switchboard::store::records::RecordKind;
use switchboard::store::{Store, StoreHandle};
use switchboard::sync::CalendarSyncConnector;
use switchboard::sync::ical::{self, Fields, ItemKind};
use switchboard::sync::remote::{
    CalendarRemote, Cursor, Folder, Listed, Next, Notify, Page, RemoteError, RemoteFuture,
    RemoteItem, Write, Written,
};
use switchboard::telemetry::Metrics;
use tokio_util::sync::CancellationToken;

const PAGE: usize = 2;
const ORIGIN: &str = "CalendarSync/cal";

/// The provider's side, shared with the test.
#[derive(Default)]
struct World {
    /// Folder → item id → (version, iCalendar).
    items: BTreeMap<String, BTreeMap<String, (u32, String)>>,
    /// Ids changed since the last token, by folder.
    changed: BTreeMap<String, Vec<String>>,
    /// How many complete listings were handed out (the token is `t{n}`).
    tokens: u32,
    /// The next listing from a token or a page cursor answers `TokenExpired`.
    expire: bool,
    /// The listing of the page at this offset answers 429 once.
    throttle_at: Option<usize>,
    /// Lists whole items (Google, Graph) instead of versions (DAV).
    whole: bool,
    /// Every listing call: `start`, `token:T`, `page:P`.
    cursors: Vec<String>,
    /// Items read by `read`.
    reads: usize,
    /// Every write that changed something: (folder, uid, notify).
    writes: Vec<(String, String, Notify)>,
}

struct Fake(Arc<Mutex<World>>);

fn item(id: &str, version: u32, data: &str) -> RemoteItem<Fields> {
    RemoteItem {
        id: id.to_owned(),
        version: Some(version.to_string()),
        data: data.to_owned(),
        fields: ical::parse(data).expect("an event or a task"),
    }
}

impl Fake {
    fn page(&self, folder: &str, cursor: Cursor<'_>) -> Result<Page<Fields>, RemoteError> {
        let mut w = self.0.lock().expect("world");
        w.cursors.push(match cursor {
            Cursor::Start => "start".to_owned(),
            Cursor::Token(t) => format!("token:{t}"),
            Cursor::Page(p) => format!("page:{p}"),
        });
        let offset = match cursor {
            Cursor::Token(_) | Cursor::Page(_) if std::mem::take(&mut w.expire) => {
                return Err(RemoteError::TokenExpired);
            }
            Cursor::Token(_) => {
                let ids = w.changed.remove(folder).unwrap_or_default();
                let all = w.items.get(folder).cloned().unwrap_or_default();
                w.tokens += 1;
                return Ok(Page {
                    items: ids
                        .into_iter()
                        .filter_map(|id| {
                            let (v, _) = all.get(&id)?;
                            Some(Listed::Version {
                                id,
                                version: Some(v.to_string()),
                            })
                        })
                        .collect(),
                    removed: Vec::new(),
                    next: Next::Done(Some(format!("t{}", w.tokens))),
                    full: false,
                });
            }
            Cursor::Start => 0,
            Cursor::Page(p) => p.trim_start_matches('p').parse().expect("our cursor"),
        };
        if w.throttle_at == Some(offset) {
            w.throttle_at = None;
            return Err(RemoteError::Throttled {
                message: "429 Too Many Requests".into(),
                retry_after: Duration::from_secs(7),
            });
        }
        let all: Vec<(String, (u32, String))> = w
            .items
            .get(folder)
            .map(|m| m.clone().into_iter().collect())
            .unwrap_or_default();
        let slice = all.iter().skip(offset).take(PAGE);
        let items = slice
            .map(|(id, (v, data))| {
                if w.whole {
                    Listed::Item(item(id, *v, data))
                } else {
                    Listed::Version {
                        id: id.clone(),
                        version: Some(v.to_string()),
                    }
                }
            })
            .collect();
        let next = if offset + PAGE < all.len() {
            Next::More(format!("p{}", offset + PAGE))
        } else {
            w.changed.remove(folder);
            w.tokens += 1;
            Next::Done(Some(format!("t{}", w.tokens)))
        };
        Ok(Page {
            items,
            removed: Vec::new(),
            next,
            full: true,
        })
    }
}

impl CalendarRemote for Fake {
    fn folders<'a>(
        &'a self,
        _ctx: &'a SyncContext<'a>,
    ) -> RemoteFuture<'a, Vec<(Folder, ItemKind)>> {
        let folder = |id: &str| Folder {
            id: id.to_owned(),
            name: id.to_owned(),
        };
        Box::pin(async move {
            Ok(vec![
                (folder("cal"), ItemKind::Event),
                (folder("tasks"), ItemKind::Todo),
            ])
        })
    }

    fn list<'a>(
        &'a self,
        _ctx: &'a SyncContext<'a>,
        folder: &'a Folder,
        cursor: Cursor<'a>,
    ) -> RemoteFuture<'a, Page<Fields>> {
        let page = self.page(&folder.id, cursor);
        Box::pin(async move { page })
    }

    fn read<'a>(
        &'a self,
        _ctx: &'a SyncContext<'a>,
        folder: &'a Folder,
        ids: &'a [String],
    ) -> RemoteFuture<'a, Vec<RemoteItem<Fields>>> {
        let mut w = self.0.lock().expect("world");
        w.reads += ids.len();
        let all = w.items.get(&folder.id).cloned().unwrap_or_default();
        let items = ids
            .iter()
            .filter_map(|id| all.get(id).map(|(v, data)| item(id, *v, data)))
            .collect();
        Box::pin(async move { Ok(items) })
    }

    fn get<'a>(
        &'a self,
        _ctx: &'a SyncContext<'a>,
        id: &'a str,
    ) -> RemoteFuture<'a, Option<RemoteItem<Fields>>> {
        let w = self.0.lock().expect("world");
        let found = w
            .items
            .values()
            .find_map(|m| m.get(id))
            .map(|(v, data)| item(id, *v, data));
        Box::pin(async move { Ok(found) })
    }

    fn decode(&self, data: &str) -> Option<Fields> {
        ical::parse(data)
    }

    fn holds(&self, folder: &Folder, id: &str) -> bool {
        id.starts_with(&format!("{}/", folder.id))
    }

    fn write<'a>(
        &'a self,
        ctx: &'a SyncContext<'a>,
        write: Write<'a, Fields>,
        notify: Notify,
    ) -> RemoteFuture<'a, Written<Fields>> {
        let mut w = self.0.lock().expect("world");
        let data = ical::patch(
            write.current.map(|c| c.data.as_str()),
            write.fields,
            write.uid,
            ctx.clock.now(),
            &|_| notify == Notify::None,
        );
        let id = match write.current {
            Some(c) => c.id.clone(),
            None => format!("{}/{}", write.folder.id, write.uid),
        };
        let folder = id.split('/').next().unwrap_or_default().to_owned();
        let items = w.items.entry(folder.clone()).or_default();
        let version = items.get(&id).map(|(v, _)| *v);
        let answer = match (write.current, version) {
            (None, Some(v)) => Written::Exists(item(&id, v, &items[&id].1)),
            (Some(_), None) => Written::Gone,
            (Some(c), Some(v)) if c.version != Some(v.to_string()) => Written::Conflict,
            (Some(c), Some(_)) if ical::same(&c.data, &data) => Written::Done(Some(c.clone())),
            (_, v) => {
                let v = v.unwrap_or(0) + 1;
                items.insert(id.clone(), (v, data.clone()));
                w.writes
                    .push((write.folder.id.clone(), write.uid.to_owned(), notify));
                w.changed.entry(folder).or_default().push(id.clone());
                Written::Done(Some(item(&id, v, &data)))
            }
        };
        Box::pin(async move { Ok(answer) })
    }

    fn delete<'a>(
        &'a self,
        _ctx: &'a SyncContext<'a>,
        id: &'a str,
        _version: Option<&'a str>,
        _notify: Notify,
    ) -> RemoteFuture<'a, Written<Fields>> {
        let mut w = self.0.lock().expect("world");
        for m in w.items.values_mut() {
            m.remove(id);
        }
        Box::pin(async { Ok(Written::Done(None)) })
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
    world: Arc<Mutex<World>>,
    connector: Arc<dyn Connector>,
}

const TWO_WAY: &str = "  since: 2026-01-01\n  importMeetings: {enabled: true}\n  importTasks: {enabled: true}\n  export: {enabled: true}\n";

fn rig(spec: &str) -> Rig {
    rig_with(spec, "")
}

/// [`rig`] with more manifests (`---`-separated documents) beside the sync's own.
fn rig_with(spec: &str, more: &str) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    std::fs::write(config.join("dav-password.txt"), "unused-Pa55").expect("password file");
    std::fs::write(
        config.join("cal.yaml"),
        format!(
            "apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: owner}}\nspec: {{displayName: Owner, email: owner@example.com}}\n---\n\
             apiVersion: switchboard/v1\nkind: DavAccount\nmetadata: {{name: home}}\nspec:\n  user: owner\n  url: http://127.0.0.1:9/\n  username: owner\n  password: {{file: dav-password.txt}}\n---\n\
             apiVersion: switchboard/v1\nkind: CalendarSync\nmetadata: {{name: cal}}\nspec:\n  account: home\n{spec}\n{more}"
        ),
    )
    .expect("manifest");
    let set = switchboard::config::load(&[config])
        .into_result()
        .unwrap_or_else(|d| panic!("valid config: {d:?}"));
    let mut store = Store::open(&dir.path().join("state.db")).expect("store");
    store.apply(&changes(&set, &[]), Utc::now()).expect("apply");
    let world = Arc::new(Mutex::new(World::default()));
    let object = set.object(Kind::CalendarSync, "cal").expect("sync object");
    let connector =
        CalendarSyncConnector::with_remote(object, &set, Box::new(Fake(world.clone())), "owner")
            .map(|c| Arc::new(c) as Arc<dyn Connector>)
            .expect("connector");
    Rig {
        _dir: dir,
        set,
        store: StoreHandle::new(store),
        metrics: Metrics::new(),
        world,
        connector,
    }
}

fn event(uid: &str, title: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:{title}\r\nDTSTART:20260301T090000Z\r\nDTEND:20260301T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

impl Rig {
    fn with_world<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.world.lock().expect("world"))
    }

    /// `n` events `e0`.. in folder `cal`.
    fn events(&self, n: usize) {
        self.with_world(|w| {
            let cal = w.items.entry("cal".into()).or_default();
            for i in 0..n {
                cal.insert(
                    format!("cal/e{i}"),
                    (1, event(&format!("e{i}"), &format!("Event {i}"))),
                );
            }
        });
    }

    async fn try_sync(&self) -> Result<SyncReport, ConnectorError> {
        let object = self.set.object(Kind::CalendarSync, "cal").expect("object");
        self.connector
            .sync(SyncContext {
                object,
                secrets: &BTreeMap::new(),
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

    async fn checkpoint(&self, scope: &str) -> Option<String> {
        let scope = scope.to_owned();
        self.store
            .call(move |s| s.sync_checkpoint(ORIGIN, &scope))
            .await
            .expect("store")
    }

    async fn activities(&self) -> Vec<Activity> {
        self.store
            .call(|s| {
                s.activities(&ActivityQuery {
                    limit: 1000,
                    ..ActivityQuery::default()
                })
            })
            .await
            .expect("activities")
            .0
    }

    async fn linked(&self) -> Vec<String> {
        let mut links: Vec<String> = self
            .store
            .call(|s| s.sync_links(ORIGIN, RecordKind::Activity))
            .await
            .expect("store")
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        links.sort();
        links
    }

    fn cursors(&self) -> Vec<String> {
        self.with_world(|w| std::mem::take(&mut w.cursors))
    }
}

#[tokio::test]
async fn pages_are_checkpointed_and_a_throttled_run_goes_on_from_its_page() {
    // REQ: CS-04 (incremental: a run goes on from the page its throttled predecessor stored; a 429 ends
    // the run as Throttled, for the scheduler to wait out its Retry-After)
    let rig = rig(TWO_WAY);
    rig.events(5);
    rig.with_world(|w| w.throttle_at = Some(2));

    let error = rig.try_sync().await.expect_err("throttled");
    match error {
        ConnectorError::Throttled { retry_after, .. } => {
            assert_eq!(retry_after, Duration::from_secs(7));
        }
        other => panic!("not throttled: {other}"),
    }
    assert_eq!(rig.activities().await.len(), 2, "the first page is in");
    assert_eq!(rig.checkpoint("page cal").await.as_deref(), Some("p2"));
    assert_eq!(rig.checkpoint("token cal").await, None);
    assert_eq!(rig.cursors(), ["start", "page:p2"]);

    let report = rig.sync().await;
    assert_eq!(report.items_in, 3);
    assert_eq!(
        rig.cursors(),
        ["page:p2", "page:p4", "start"],
        "tasks listed from the start"
    );
    assert_eq!(rig.activities().await.len(), 5);
    assert_eq!(rig.checkpoint("page cal").await, None);
    assert!(rig.checkpoint("token cal").await.is_some());
    // the first page was read in the run before: a resumed listing removes nothing
    assert_eq!(rig.linked().await.len(), 5);

    assert_eq!(rig.sync().await, SyncReport::default());
    let cursors = rig.cursors();
    assert!(
        cursors.iter().all(|c| c.starts_with("token:")),
        "{cursors:?}"
    );
    assert_eq!(rig.with_world(|w| w.reads), 5, "each item read once");
}

#[tokio::test]
async fn an_expired_token_lists_again_without_duplicates_and_unlinks_what_is_gone() {
    // REQ: CS-05 (an item gone there is unlinked here under deletes: keep)
    let rig = rig(TWO_WAY);
    rig.events(3);
    rig.sync().await;
    rig.cursors();
    rig.with_world(|w| {
        w.items.get_mut("cal").expect("cal").remove("cal/e1");
        w.expire = true;
    });

    let report = rig.sync().await;
    assert_eq!(report.items_in, 1, "only the removal");
    let cursors = rig.cursors();
    assert_eq!(cursors, ["token:t1", "start", "token:t2"]);
    let titles: Vec<String> = rig
        .activities()
        .await
        .into_iter()
        .map(|a| a.title)
        .collect();
    assert_eq!(titles.len(), 3, "kept, no duplicates: {titles:?}");
    assert_eq!(rig.linked().await, ["cal/e0", "cal/e2"]);
    assert!(rig.checkpoint("token cal").await.is_some());
}

#[tokio::test]
async fn whole_items_are_imported_without_a_read_and_writes_carry_uid_target_and_notify() {
    // REQ: AS-02 (shown in the schedule → a meeting calendar, otherwise the task folder)
    // REQ: BX-03 (invitations: external is handed to the remote with every write)
    let rig = rig(&format!("{TWO_WAY}  invitations: external\n"));
    rig.events(2);
    rig.with_world(|w| w.whole = true);
    assert_eq!(rig.sync().await.items_in, 2);
    assert_eq!(rig.with_world(|w| w.reads), 0);

    let create = |title: &str, meeting: bool| {
        let changes = ActivityChanges {
            kind: Some(if meeting {
                ActivityKind::Meeting
            } else {
                ActivityKind::Task
            }),
            title: Some(title.into()),
            start: Some(Some("2026-04-01T09:00:00Z".parse().expect("time"))),
            show_in_schedule: Some(meeting),
            owner: Some(Some("owner".into())),
            ..ActivityChanges::default()
        };
        let store = rig.store.clone();
        async move {
            store
                .call(move |s| Ok(s.create_activity(&changes, "User/owner", Utc::now())))
                .await
                .expect("store")
                .expect("create")
                .id
        }
    };
    let meeting = create("Review", true).await;
    let task = create("Write it up", false).await;
    assert_eq!(rig.sync().await.items_out, 2);
    let writes = rig.with_world(|w| w.writes.clone());
    assert_eq!(writes.len(), 2, "{writes:?}");
    let of = |id: i64| {
        writes
            .iter()
            .find(|(_, uid, _)| uid.ends_with(&format!("-activity-{id}")))
            .unwrap_or_else(|| panic!("no write for {id}: {writes:?}"))
            .clone()
    };
    assert_eq!(of(meeting).0, "cal");
    assert_eq!(of(task).0, "tasks");
    assert!(writes.iter().all(|(_, _, n)| *n == Notify::External));
    assert!(
        rig.linked()
            .await
            .contains(&format!("cal/{}", of(meeting).1))
    );

    // nothing changed: nothing written, nothing read
    assert_eq!(rig.sync().await, SyncReport::default());
    assert_eq!(rig.with_world(|w| w.writes.len()), 2);
}

#[tokio::test]
async fn a_meeting_is_its_organizers_when_they_sync_else_the_syncing_users() {
    // REQ: AS-03 (keyed by organizer: a meeting organized by a User who has a CalendarSync of
    // their own is that User's, and only their sync exports it; an organizer without a sync
    // configured, a User or not, has the syncing user stand in as the organizer)
    let rig = rig_with(
        TWO_WAY,
        "---\napiVersion: switchboard/v1\nkind: User\nmetadata: {name: olga}\nspec: {displayName: Olga, email: Olga@Example.com}\n---\n\
         apiVersion: switchboard/v1\nkind: DavAccount\nmetadata: {name: olgas}\nspec:\n  user: olga\n  url: http://127.0.0.1:9/\n  username: olga\n  password: {file: dav-password.txt}\n---\n\
         apiVersion: switchboard/v1\nkind: CalendarSync\nmetadata: {name: olgacal}\nspec:\n  account: olgas\n  since: 2026-01-01\n  importMeetings: {enabled: true}\n  importTasks: {enabled: true}\n  export: {enabled: true}\n---\n\
         apiVersion: switchboard/v1\nkind: User\nmetadata: {name: pete}\nspec: {displayName: Pete, email: pete@example.com}\n",
    );
    let organized = |uid: &str, title: &str, organizer: &str| {
        event(uid, title).replace(
            "SUMMARY:",
            &format!(
                "ORGANIZER:mailto:{organizer}\r\nATTENDEE:mailto:owner@example.com\r\nSUMMARY:"
            ),
        )
    };
    rig.with_world(|w| {
        let cal = w.items.entry("cal".into()).or_default();
        for (uid, organizer) in [
            ("by-olga", "olga@example.com"),
            ("by-pete", "pete@example.com"),
            ("by-guest", "guest@partner.example"),
            ("by-owner", "owner@example.com"),
        ] {
            cal.insert(format!("cal/{uid}"), (1, organized(uid, uid, organizer)));
        }
    });
    assert_eq!(rig.sync().await.items_in, 4);
    let activities = rig.activities().await;
    let owner_of = |title: &str| {
        activities
            .iter()
            .find(|a| a.title == title)
            .unwrap_or_else(|| panic!("no {title}: {activities:?}"))
            .owner
            .clone()
    };
    assert_eq!(owner_of("by-olga").as_deref(), Some("olga"), "she syncs");
    assert_eq!(
        owner_of("by-pete").as_deref(),
        Some("owner"),
        "a User without a sync"
    );
    assert_eq!(owner_of("by-guest").as_deref(), Some("owner"), "not a User");
    assert_eq!(owner_of("by-owner").as_deref(), Some("owner"));

    // Every one changed here: this sync writes all but Olga's (her own sync does).
    for a in &activities {
        let (id, title) = (a.id, format!("{} (moved)", a.title));
        rig.store
            .call(move |s| {
                let changes = ActivityChanges {
                    title: Some(title),
                    ..ActivityChanges::default()
                };
                Ok(s.update_activity(id, None, &changes, "User/owner", Utc::now()))
            })
            .await
            .expect("store")
            .expect("update");
    }
    assert_eq!(rig.sync().await.items_out, 3);
    let mut written: Vec<String> =
        rig.with_world(|w| w.writes.iter().map(|(_, uid, _)| uid.clone()).collect());
    written.sort();
    assert_eq!(written, ["by-guest", "by-owner", "by-pete"]);
    rig.with_world(|w| {
        assert!(
            w.items["cal"]["cal/by-olga"]
                .1
                .contains("SUMMARY:by-olga\r\n"),
            "untouched"
        )
    });
}

#[tokio::test]
async fn an_expired_page_cursor_lists_again_from_the_start_and_completes_in_the_run() {
    // REQ: CS-04 (an interrupted listing whose cursor expired is taken again whole, no duplicates)
    let rig = rig(TWO_WAY);
    rig.events(5);
    rig.with_world(|w| w.throttle_at = Some(2));
    rig.try_sync().await.expect_err("throttled");
    rig.cursors();
    rig.with_world(|w| {
        w.expire = true;
        w.items.get_mut("cal").expect("cal").remove("cal/e0");
    });

    rig.sync().await;
    assert_eq!(
        rig.cursors(),
        ["page:p2", "start", "page:p2", "start"],
        "the calendar's stale page, its listing again, then the task folder"
    );
    assert_eq!(rig.checkpoint("page cal").await, None);
    assert_eq!(rig.activities().await.len(), 5, "no duplicates");
    // the listing from the start was read whole in this run: what it lacks is gone there
    assert_eq!(rig.linked().await, ["cal/e1", "cal/e2", "cal/e3", "cal/e4"]);
}

#[test]
fn google_accounts_build_and_a_microsoft_365_mailbox_without_oauth_stays_pending() {
    // REQ: AS-01 (a Microsoft 365 mailbox without OAuth: pending with a reason, never a fake
    // success; a GoogleAccount runs over the Google Calendar remote)
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("secret.txt"), "x").expect("secret");
    std::fs::write(
        dir.path().join("cal.yaml"),
        "apiVersion: switchboard/v1\nkind: Settings\nmetadata: {name: default}\nspec:\n  siteUrl: https://sb.example.test\n  google: {clientId: sb-test, clientSecret: {file: secret.txt}}\n---\n\
         apiVersion: switchboard/v1\nkind: User\nmetadata: {name: owner}\nspec: {displayName: Owner, email: owner@example.com}\n---\n\
         apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {name: m365}\nspec:\n  type: microsoft365\n  title: M365\n  domains: [corp.example]\n---\n\
         apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {name: work}\nspec:\n  address: a@corp.example\n  owner: owner\n  password: {file: secret.txt}\n---\n\
         apiVersion: switchboard/v1\nkind: GoogleAccount\nmetadata: {name: gmail}\nspec:\n  user: owner\n  email: owner@gmail.example\n  refreshToken: {file: secret.txt}\n---\n\
         apiVersion: switchboard/v1\nkind: CalendarSync\nmetadata: {name: google}\nspec:\n  account: gmail\n  since: 2026-01-01\n  importMeetings: {enabled: true}\n  importTasks: {enabled: true}\n  export: {enabled: true}\n---\n\
         apiVersion: switchboard/v1\nkind: CalendarSync\nmetadata: {name: graph}\nspec:\n  account: work\n  since: 2026-01-01\n  importMeetings: {enabled: true}\n  importTasks: {enabled: true}\n  export: {enabled: true}\n---\n\
         apiVersion: switchboard/v1\nkind: CalendarSync\nmetadata: {name: some-groups}\nspec:\n  account: gmail\n  since: 2026-01-01\n  importMeetings: {enabled: true}\n  importTasks: {enabled: true}\n  export: {enabled: true, groups: [Renewals]}\n",
    )
    .expect("manifest");
    let set = switchboard::config::load(&[dir.path().to_path_buf()])
        .into_result()
        .unwrap_or_else(|d| panic!("valid config: {d:?}"));
    let reason = |name: &str| {
        let object = set.object(Kind::CalendarSync, name).expect("sync");
        CalendarSyncConnector::new(object, &set)
            .err()
            .expect("no connector yet")
    };
    let google = set.object(Kind::CalendarSync, "google").expect("sync");
    assert!(CalendarSyncConnector::new(google, &set).is_ok());
    // a Microsoft 365 mailbox syncs through Graph (tests/graph_calendar.rs), which needs OAuth
    assert!(
        reason("graph").contains("`auth: oauth2`"),
        "{}",
        reason("graph")
    );
    // activities have no groups: a selection is pending, never silently exported in full
    assert!(
        reason("some-groups").contains("export.groups other than `all` is not built yet"),
        "{}",
        reason("some-groups")
    );
}
