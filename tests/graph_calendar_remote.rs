//! The Microsoft 365 calendar remote (`sync::graph::calendar`) through the library's public
//! API against a fake that follows Graph's documented wire format
//! (tests/support/graph_calendar_fake.rs): calendars and To Do lists selected (only lists the
//! user owns, AS-01), calendar view delta rounds from `since` with paging and delta links,
//! series listed by their master, `@removed` confirmed, expired deltas, 429 with Retry-After,
//! an expired access token refreshed once, idempotent creates, `If-Match` conflicts, and no
//! invitation mailed unless `invitations` allows it (BX-03).

#[path = "support/graph_calendar_fake.rs"]
mod graph_calendar_fake;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use switchboard::clock::Clock;
use switchboard::config::types::AllOrList;
use switchboard::config::{ConfigSet, Kind};
use switchboard::connector::SyncContext;
use switchboard::store::{Store, StoreHandle};
use switchboard::sync::graph::Graph;
use switchboard::sync::graph::calendar::GraphCalendarRemote;
use switchboard::sync::ical::{Fields, ItemKind};
use switchboard::sync::remote::{
    CalendarRemote, Cursor, Folder, Listed, Next, Notify, Page, RemoteError, RemoteFuture,
    RemoteItem, TokenProvider, Write, Written,
};
use switchboard::telemetry::Metrics;
use tokio_util::sync::CancellationToken;

use graph_calendar_fake::{CALENDAR_ID, GraphCalendarFake, TASKS_ID};

/// Hands out `token-N`; a fresh one after a 401.
struct Tokens(AtomicU64);

impl TokenProvider for Tokens {
    fn token<'a>(&'a self, _: &'a SyncContext<'a>, fresh: bool) -> RemoteFuture<'a, String> {
        Box::pin(async move {
            let n = if fresh {
                self.0.fetch_add(1, Ordering::SeqCst) + 1
            } else {
                self.0.load(Ordering::SeqCst)
            };
            Ok(format!("token-{n}"))
        })
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    set: ConfigSet,
    store: StoreHandle,
    metrics: Metrics,
    fake: GraphCalendarFake,
    remote: GraphCalendarRemote,
}

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("time")
}

/// A week from now at `h` o'clock.
fn soon(days: i64, h: u32) -> DateTime<Utc> {
    let day = (Utc::now() + chrono::Duration::days(days)).date_naive();
    day.and_hms_opt(h, 0, 0).expect("time").and_utc()
}

async fn rig(calendars: AllOrList, lists: AllOrList) -> Rig {
    let fake = GraphCalendarFake::start(2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    std::fs::write(
        config.join("user.yaml"),
        "apiVersion: switchboard/v1\nkind: User\nmetadata: {name: owner}\nspec: {displayName: Owner, email: owner@corp.example}\n",
    )
    .expect("manifest");
    let set = switchboard::config::load(&[config])
        .into_result()
        .unwrap_or_else(|d| panic!("valid config: {d:?}"));
    let store = Store::open(&dir.path().join("state.db")).expect("store");
    let graph = Graph::new(Some(&fake.base), Arc::new(Tokens(AtomicU64::new(0))));
    let since = Utc::now() - chrono::Duration::days(30);
    Rig {
        _dir: dir,
        set,
        store: StoreHandle::new(store),
        metrics: Metrics::new(),
        remote: GraphCalendarRemote::new(graph, calendars, lists, since),
        fake,
    }
}

/// Runs `f` with a sync context.
macro_rules! with_ctx {
    ($rig:expr, |$ctx:ident| $body:expr) => {{
        let object = $rig.set.object(Kind::User, "owner").expect("object");
        let secrets = BTreeMap::new();
        let $ctx = SyncContext {
            object,
            secrets: &secrets,
            cancel: CancellationToken::new(),
            store: &$rig.store,
            metrics: &$rig.metrics,
            clock: Clock::system(),
        };
        $body
    }};
}

/// Every page of a listing from `cursor`: the items, the removals, the final token.
async fn round(
    rig: &Rig,
    folder: &Folder,
    cursor: Option<&str>,
) -> Result<(Vec<RemoteItem<Fields>>, Vec<String>, Option<String>, bool), RemoteError> {
    with_ctx!(rig, |ctx| {
        let mut items = Vec::new();
        let mut removed = Vec::new();
        let mut page_cursor: Option<String> = None;
        let mut full = false;
        loop {
            let c = match (&page_cursor, cursor) {
                (Some(p), _) => Cursor::Page(p),
                (None, Some(t)) => Cursor::Token(t),
                (None, None) => Cursor::Start,
            };
            let page: Page<Fields> = rig.remote.list(&ctx, folder, c).await?;
            full |= page.full;
            for entry in page.items {
                match entry {
                    Listed::Item(item) => items.push(item),
                    Listed::Version { id, .. } => panic!("Graph lists whole items, not {id}"),
                }
            }
            removed.extend(page.removed);
            match page.next {
                Next::More(next) => page_cursor = Some(next),
                Next::Done(token) => return Ok((items, removed, token, full)),
            }
        }
    })
}

async fn folders(rig: &Rig) -> Vec<(Folder, ItemKind)> {
    with_ctx!(rig, |ctx| rig.remote.folders(&ctx).await.expect("folders"))
}

fn folder(all: &[(Folder, ItemKind)], name: &str) -> Folder {
    all.iter()
        .find(|(f, _)| f.name == name)
        .unwrap_or_else(|| panic!("no folder {name} in {all:?}"))
        .0
        .clone()
}

fn subjects(items: &[RemoteItem<Fields>]) -> Vec<String> {
    let mut s: Vec<String> = items
        .iter()
        .filter_map(|i| i.fields.summary.clone())
        .collect();
    s.sort();
    s
}

// REQ: AS-01
#[tokio::test]
async fn calendars_and_only_the_users_own_to_do_lists_are_folders() {
    let rig = rig(
        AllOrList::default(),
        AllOrList::List(vec!["Tasks".into(), "Team".into()]),
    )
    .await;
    rig.fake.add_calendar("Projects");
    let shared = rig.fake.add_list("Team", false);
    rig.fake.add_list("Private", true);
    let all = folders(&rig).await;
    let names: Vec<(&str, ItemKind)> = all.iter().map(|(f, k)| (f.name.as_str(), *k)).collect();
    assert_eq!(
        names,
        vec![
            ("Calendar", ItemKind::Event),
            ("Projects", ItemKind::Event),
            ("Tasks", ItemKind::Todo),
        ],
        "the shared list {shared} belongs to someone else and Private is not selected"
    );

    let only = rig_with_calendars(AllOrList::List(vec!["Projects".into()])).await;
    let names: Vec<String> = folders(&only)
        .await
        .into_iter()
        .map(|(f, _)| f.name)
        .collect();
    assert_eq!(names, vec!["Projects".to_owned(), "Tasks".to_owned()]);
}

async fn rig_with_calendars(calendars: AllOrList) -> Rig {
    let rig = rig(calendars, AllOrList::default()).await;
    rig.fake.add_calendar("Projects");
    rig
}

// REQ: AS-01
#[tokio::test]
async fn a_calendar_view_round_imports_from_since_pages_and_then_follows_the_delta() {
    let rig = rig(AllOrList::default(), AllOrList::default()).await;
    let old = rig.fake.add_event(
        CALENDAR_ID,
        "Long ago",
        at(2020, 1, 1, 9),
        at(2020, 1, 1, 10),
    );
    for n in 0..5 {
        rig.fake.add_event(
            CALENDAR_ID,
            &format!("Meeting {n}"),
            soon(n, 9),
            soon(n, 10),
        );
    }
    let series = rig.fake.add_event_json(
        CALENDAR_ID,
        json!({
            "subject": "Standup",
            "start": graph_calendar_fake::dtz(soon(1, 8)),
            "end": graph_calendar_fake::dtz(soon(1, 9)),
            "recurrence": {
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                "range": {"type": "noEnd", "startDate": soon(1, 8).format("%Y-%m-%d").to_string()}
            }
        }),
    );
    let calendar = folder(&folders(&rig).await, "Calendar");
    let (items, removed, token, full) = round(&rig, &calendar, None).await.expect("round");
    assert_eq!(
        subjects(&items),
        vec![
            "Meeting 0",
            "Meeting 1",
            "Meeting 2",
            "Meeting 3",
            "Meeting 4",
            "Standup"
        ],
        "the event before `since` is outside the view: {old}"
    );
    assert!(removed.is_empty());
    assert!(
        !full,
        "a calendar view is a window: its listing proves no deletion"
    );
    let standup = items
        .iter()
        .find(|i| i.id == series)
        .expect("the series by its master");
    assert_eq!(
        standup.fields.rrule.as_deref(),
        Some("FREQ=WEEKLY;INTERVAL=1;BYDAY=MO")
    );
    let delta = rig.fake.requests();
    let first = delta
        .iter()
        .find(|r| r.contains("calendarView/delta"))
        .expect("a delta request");
    assert!(
        first.contains("startDateTime") && first.contains("endDateTime"),
        "{first}"
    );

    // nothing changed: nothing listed
    let token = token.expect("a delta link");
    let (items, removed, token2, _) = round(&rig, &calendar, Some(&token)).await.expect("delta");
    assert!(items.is_empty() && removed.is_empty());

    // a user edits one, deletes one, moves one out of the window
    let ids: Vec<String> = rig
        .fake
        .events(CALENDAR_ID)
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    rig.fake
        .edit_event(&ids[1], |e| e["subject"] = json!("Meeting 0, moved"));
    rig.fake.delete_item(&ids[2]);
    rig.fake.edit_event(&ids[3], |e| {
        e["start"] = graph_calendar_fake::dtz(at(2019, 5, 1, 9));
        e["end"] = graph_calendar_fake::dtz(at(2019, 5, 1, 10));
    });
    let (items, removed, _, _) = round(&rig, &calendar, token2.as_deref())
        .await
        .expect("delta");
    assert_eq!(removed, vec![ids[2].clone()]);
    assert_eq!(
        subjects(&items),
        vec!["Meeting 0, moved", "Meeting 2"],
        "an event that left the window is still there, not removed"
    );
}

// REQ: CS-04
#[tokio::test]
async fn an_expired_delta_throttling_and_an_expired_token_are_told_apart() {
    let rig = rig(AllOrList::default(), AllOrList::default()).await;
    rig.fake
        .add_event(CALENDAR_ID, "One", soon(1, 9), soon(1, 10));
    let calendar = folder(&folders(&rig).await, "Calendar");
    let (_, _, token, _) = round(&rig, &calendar, None).await.expect("round");

    rig.fake.expire_deltas();
    let e = round(&rig, &calendar, token.as_deref())
        .await
        .expect_err("expired");
    assert!(matches!(e, RemoteError::TokenExpired), "{e:?}");
    assert_eq!(rig.fake.gone(), 1);

    rig.fake.throttle(1);
    let e = round(&rig, &calendar, None).await.expect_err("throttled");
    match e {
        RemoteError::Throttled { retry_after, .. } => {
            assert_eq!(retry_after, Duration::from_secs(1))
        }
        other => panic!("not throttled: {other:?}"),
    }

    rig.fake.expire_tokens();
    let (items, ..) = round(&rig, &calendar, None).await.expect("a fresh token");
    assert_eq!(subjects(&items), vec!["One"]);
    assert_eq!(rig.fake.unauthorized(), 1);
}

fn meeting(summary: &str, attendees: &[&str]) -> Fields {
    Fields {
        kind: ItemKind::Event,
        summary: Some(summary.into()),
        start: Some(soon(3, 14)),
        end: Some(soon(3, 15)),
        organizer: Some("sales@corp.example".into()),
        attendees: attendees
            .iter()
            .map(|a| ((*a).to_owned(), "none".to_owned()))
            .collect(),
        ..Fields::default()
    }
}

async fn write(
    rig: &Rig,
    folder: &Folder,
    current: Option<&RemoteItem<Fields>>,
    fields: &Fields,
    uid: &str,
    notify: Notify,
) -> Written<Fields> {
    with_ctx!(rig, |ctx| rig
        .remote
        .write(
            &ctx,
            Write {
                folder,
                current,
                fields,
                uid,
            },
            notify,
        )
        .await
        .expect("write"))
}

fn done(w: Written<Fields>) -> RemoteItem<Fields> {
    match w {
        Written::Done(Some(item)) => item,
        other => panic!("not written: {other:?}"),
    }
}

// REQ: BX-03
#[tokio::test]
async fn creates_are_idempotent_and_invite_nobody_unless_allowed() {
    let rig = rig(AllOrList::default(), AllOrList::default()).await;
    let calendar = folder(&folders(&rig).await, "Calendar");
    let fields = meeting("Demo", &["ann@client.example"]);
    let first = done(write(&rig, &calendar, None, &fields, "sb-uid-1", Notify::None).await);
    // the same create again (a crash before the link): Graph makes no second event
    let again = done(write(&rig, &calendar, None, &fields, "sb-uid-1", Notify::None).await);
    assert_eq!(first.id, again.id);
    assert_eq!(rig.fake.events(CALENDAR_ID).len(), 1);
    assert_eq!(first.fields.uid.as_deref(), Some("sb-uid-1"));
    assert!(rig.fake.mails().is_empty(), "{:?}", rig.fake.mails());
    let posted = &rig.fake.writes()[0].2;
    assert_eq!(posted["transactionId"], "sb-uid-1");
    assert!(posted.get("attendees").is_none());

    // a meeting the mailbox organizes, with attendees: changing or deleting it would mail them
    let loud = done(
        write(
            &rig,
            &calendar,
            None,
            &meeting("Kickoff", &["bo@client.example"]),
            "sb-uid-2",
            Notify::All,
        )
        .await,
    );
    assert_eq!(rig.fake.mails(), vec!["invitation to bo@client.example"]);
    let mut moved = loud.fields.clone();
    moved.location = Some("Room 2".into());
    let kept = done(
        write(
            &rig,
            &calendar,
            Some(&loud),
            &moved,
            "sb-uid-2",
            Notify::None,
        )
        .await,
    );
    assert_eq!(kept, loud, "left as Graph has it");
    let gone = with_ctx!(rig, |ctx| rig
        .remote
        .delete(&ctx, &loud.id, loud.version.as_deref(), Notify::External)
        .await
        .expect("delete"));
    assert!(matches!(gone, Written::Done(None)));
    assert!(rig.fake.get(&loud.id).is_some(), "not deleted there");
    assert_eq!(rig.fake.mails().len(), 1, "{:?}", rig.fake.mails());
}

// REQ: CS-04
#[tokio::test]
async fn updates_are_conditional_and_a_no_change_write_sends_nothing() {
    let rig = rig(AllOrList::default(), AllOrList::default()).await;
    let calendar = folder(&folders(&rig).await, "Calendar");
    let item = done(
        write(
            &rig,
            &calendar,
            None,
            &meeting("Demo", &[]),
            "sb-1",
            Notify::None,
        )
        .await,
    );
    let before = rig.fake.requests().len();
    let same = done(
        write(
            &rig,
            &calendar,
            Some(&item),
            &item.fields,
            "sb-1",
            Notify::None,
        )
        .await,
    );
    assert_eq!(same, item);
    assert_eq!(
        rig.fake.requests().len(),
        before,
        "no request for no change"
    );

    // a user changes it in Outlook: the stored version is stale
    rig.fake
        .edit_event(&item.id, |e| e["subject"] = json!("Demo (Outlook)"));
    let mut mine = item.fields.clone();
    mine.location = Some("Room 9".into());
    let w = write(&rig, &calendar, Some(&item), &mine, "sb-1", Notify::None).await;
    assert!(matches!(w, Written::Conflict), "{w:?}");
    let fresh = with_ctx!(rig, |ctx| rig
        .remote
        .get(&ctx, &item.id)
        .await
        .expect("get")
        .expect("there"));
    assert_eq!(fresh.fields.summary.as_deref(), Some("Demo (Outlook)"));
    let mut merged = fresh.fields.clone();
    merged.location = Some("Room 9".into());
    let updated = done(write(&rig, &calendar, Some(&fresh), &merged, "sb-1", Notify::None).await);
    assert_eq!(updated.fields.location.as_deref(), Some("Room 9"));
    assert_eq!(updated.fields.summary.as_deref(), Some("Demo (Outlook)"));
    let (_, path, body) = rig.fake.writes().last().cloned().expect("patch");
    assert!(path.ends_with(&item.id));
    assert_eq!(body, json!({"location": {"displayName": "Room 9"}}));

    // deleted in Outlook: the next write finds it gone
    rig.fake.delete_item(&item.id);
    merged.location = Some("Room 10".into());
    let w = write(
        &rig,
        &calendar,
        Some(&updated),
        &merged,
        "sb-1",
        Notify::None,
    )
    .await;
    assert!(matches!(w, Written::Gone), "{w:?}");
}

// REQ: AS-01
// REQ: AS-02
#[tokio::test]
async fn tasks_round_trip_through_to_do_with_their_uid() {
    let rig = rig(AllOrList::default(), AllOrList::default()).await;
    let shared = rig.fake.add_list("Someone else's", false);
    rig.fake.add_task(&shared, "Not mine", None);
    rig.fake.add_task(TASKS_ID, "Call back", Some(soon(2, 0)));
    let all = folders(&rig).await;
    assert!(!all.iter().any(|(f, _)| f.name == "Someone else's"));
    let tasks = folder(&all, "Tasks");
    let (items, _, token, full) = round(&rig, &tasks, None).await.expect("round");
    assert!(full, "a task list's first round is a full listing");
    assert_eq!(subjects(&items), vec!["Call back"]);
    assert_eq!(items[0].fields.kind, ItemKind::Todo);
    assert_eq!(items[0].fields.status.as_deref(), Some("NEEDS-ACTION"));

    // exported: a task created with the engine's uid, read back with it
    let fields = Fields {
        kind: ItemKind::Todo,
        summary: Some("Send the offer".into()),
        due: Some(soon(5, 0)),
        status: Some("NEEDS-ACTION".into()),
        ..Fields::default()
    };
    let created = done(write(&rig, &tasks, None, &fields, "sb-task-1", Notify::None).await);
    assert!(
        created.id.starts_with(&tasks.id),
        "{} in {}",
        created.id,
        tasks.id
    );
    assert_eq!(created.fields.uid.as_deref(), Some("sb-task-1"));
    let (items, removed, token, full) = round(&rig, &tasks, token.as_deref()).await.expect("delta");
    assert!(!full && removed.is_empty());
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].fields.uid.as_deref(), Some("sb-task-1"));

    let mut done_fields = created.fields.clone();
    done_fields.status = Some("COMPLETED".into());
    let completed = done(
        write(
            &rig,
            &tasks,
            Some(&created),
            &done_fields,
            "sb-task-1",
            Notify::None,
        )
        .await,
    );
    assert_eq!(completed.fields.status.as_deref(), Some("COMPLETED"));
    let w = with_ctx!(rig, |ctx| rig
        .remote
        .delete(&ctx, &created.id, created.version.as_deref(), Notify::None)
        .await
        .expect("delete"));
    assert!(matches!(w, Written::Conflict), "stale etag: {w:?}");
    let w = with_ctx!(rig, |ctx| rig
        .remote
        .delete(
            &ctx,
            &completed.id,
            completed.version.as_deref(),
            Notify::None
        )
        .await
        .expect("delete"));
    assert!(matches!(w, Written::Done(None)), "{w:?}");
    let (_, removed, _, _) = round(&rig, &tasks, token.as_deref()).await.expect("delta");
    assert_eq!(removed, vec![created.id.clone()]);
}
