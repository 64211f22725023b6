//! The Google Calendar remote (`GoogleCalendarRemote`, the wire side of a `CalendarSync` over
//! a `GoogleAccount`) against the fake Calendar API (tests/support/gcalendar_fake.rs), through
//! the public `CalendarRemote` contract: calendar selection, a full listing in pages, an
//! incremental listing from the sync token with cancelled events as removals, an expired sync
//! token, a group event and an invitation read with organizer and attendees, creates that are
//! idempotent across a crash, updates with `If-Match` (a stale etag is a conflict, a deleted
//! event gone), `sendUpdates` from `Notify`, deletes, 429 with `Retry-After`, and 401 answered
//! with a fresh token.

#[path = "support/gcalendar_fake.rs"]
mod gcalendar_fake;
#[path = "support/oauth_fake.rs"]
mod oauth_fake;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use switchboard::clock::Clock;
use switchboard::config::types::{AllLiteral, AllOrList};
use switchboard::config::{ConfigSet, Kind};
use switchboard::connector::SyncContext;
use switchboard::store::{Store, StoreHandle};
use switchboard::sync::google::calendar::GoogleCalendarRemote;
use switchboard::sync::ical::{Fields, ItemKind};
use switchboard::sync::remote::{
    CalendarRemote, Cursor, Folder, Listed, Next, Notify, Page, RemoteError, RemoteFuture,
    RemoteItem, TokenProvider, Write, Written,
};
use switchboard::telemetry::Metrics;
use tokio_util::sync::CancellationToken;

use gcalendar_fake::GCalendarFake;
use oauth_fake::OAuthFake;

const ACCOUNT: &str = "ann@corp.example";

/// Hands out `token-N`, a new N when asked for a fresh one.
struct Tokens {
    n: AtomicU32,
    fresh_asked: AtomicU32,
}

impl TokenProvider for Tokens {
    fn token<'a>(&'a self, _ctx: &'a SyncContext<'a>, fresh: bool) -> RemoteFuture<'a, String> {
        Box::pin(async move {
            if fresh {
                self.fresh_asked.fetch_add(1, Ordering::SeqCst);
                self.n.fetch_add(1, Ordering::SeqCst);
            }
            Ok(format!("token-{}", self.n.load(Ordering::SeqCst)))
        })
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    set: ConfigSet,
    store: StoreHandle,
    metrics: Metrics,
    fake: GCalendarFake,
    tokens: Arc<Tokens>,
    remote: GoogleCalendarRemote,
}

async fn rig(calendars: AllOrList, page_size: u32) -> Rig {
    let fake = GCalendarFake::start(ACCOUNT).await;
    fake.add_calendar("team@group.calendar.google.com", "Team", "writer", false);
    fake.add_calendar(
        "en.usa#holiday@group.v.calendar.google.com",
        "Holidays",
        "reader",
        false,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    std::fs::write(
        config.join("user.yaml"),
        format!(
            "apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: ann}}\nspec: {{displayName: Ann, email: {ACCOUNT}}}\n"
        ),
    )
    .expect("manifest");
    let set = switchboard::config::load(&[config])
        .into_result()
        .unwrap_or_else(|d| panic!("valid config: {d:?}"));
    let tokens = Arc::new(Tokens {
        n: AtomicU32::new(1),
        fresh_asked: AtomicU32::new(0),
    });
    let remote = GoogleCalendarRemote::new(
        &fake.calendar_base(),
        Arc::clone(&tokens) as Arc<dyn TokenProvider>,
        calendars,
    )
    .expect("remote")
    .with_page_size(page_size);
    Rig {
        _dir: dir,
        set,
        store: StoreHandle::new(Store::open_in_memory().expect("store")),
        metrics: Metrics::new(),
        fake,
        tokens,
        remote,
    }
}

fn all() -> AllOrList {
    AllOrList::All(AllLiteral::All)
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

/// Runs `f` with a SyncContext.
macro_rules! with_ctx {
    ($rig:expr, |$ctx:ident| $body:expr) => {{
        let secrets = BTreeMap::new();
        let object = $rig.set.object(Kind::User, "ann").expect("user object");
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

async fn list_all(
    remote: &GoogleCalendarRemote,
    ctx: &SyncContext<'_>,
    folder: &Folder,
    token: Option<&str>,
) -> Result<(Vec<Page<Fields>>, Option<String>), RemoteError> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let c = match (&cursor, token) {
            (Some(p), _) => Cursor::Page(p),
            (None, Some(t)) => Cursor::Token(t),
            (None, None) => Cursor::Start,
        };
        let page = remote.list(ctx, folder, c).await?;
        let next = page.next.clone();
        pages.push(page);
        match next {
            Next::More(p) => cursor = Some(p),
            Next::Done(t) => return Ok((pages, t)),
        }
    }
}

fn items(pages: &[Page<Fields>]) -> Vec<RemoteItem<Fields>> {
    pages
        .iter()
        .flat_map(|p| p.items.iter())
        .map(|l| match l {
            Listed::Item(i) => i.clone(),
            Listed::Version { .. } => panic!("Google lists whole events"),
        })
        .collect()
}

#[tokio::test]
async fn calendars_are_the_writable_ones_primary_first_or_those_named() {
    let r = rig(all(), 250).await;
    with_ctx!(r, |ctx| {
        let folders = r.remote.folders(&ctx).await.expect("folders");
        let ids: Vec<&str> = folders.iter().map(|(f, _)| f.id.as_str()).collect();
        assert_eq!(ids, [ACCOUNT, "team@group.calendar.google.com"]);
        // Google Calendar holds meetings only: tasks are Google Tasks, not synced.
        assert!(folders.iter().all(|(_, k)| *k == ItemKind::Event));
    });
    let r = rig(AllOrList::List(vec!["Holidays".into()]), 250).await;
    with_ctx!(r, |ctx| {
        let folders = r.remote.folders(&ctx).await.expect("folders");
        assert_eq!(
            folders[0].0.id,
            "en.usa#holiday@group.v.calendar.google.com"
        );
        // The '#' of the id is escaped in the path.
        let listed = r.remote.list(&ctx, &folders[0].0, Cursor::Start).await;
        assert!(listed.is_ok(), "{listed:?}");
    });
    let r = rig(AllOrList::List(vec!["Nope".into()]), 250).await;
    with_ctx!(r, |ctx| {
        let err = r.remote.folders(&ctx).await.expect_err("nothing selected");
        assert!(err.to_string().contains("Team"), "{err}");
    });
}

#[tokio::test]
async fn a_full_listing_pages_then_the_sync_token_lists_only_changes() {
    // REQ: AS-03, CS-04
    let r = rig(all(), 2).await;
    let group = r.fake.add_group_event(
        ACCOUNT,
        "Quarterly review",
        "2026-03-02T10:00:00+01:00",
        "2026-03-02T11:00:00+01:00",
        &["Bob@Customer.example", "carol@customer.example"],
    );
    let invitation = r.fake.add_invitation(
        ACCOUNT,
        "dave@partner.example",
        "Partner sync",
        "2026-03-03T09:00:00Z",
        "2026-03-03T09:30:00Z",
    );
    let day = r.fake.add_event(
        ACCOUNT,
        json!({"summary": "Offsite", "start": {"date": "2026-04-10"}, "end": {"date": "2026-04-11"}}),
    );
    let ooo = r.fake.add_event(
        ACCOUNT,
        json!({"summary": "Away", "eventType": "outOfOffice",
               "start": {"dateTime": "2026-04-20T00:00:00Z"}, "end": {"dateTime": "2026-04-21T00:00:00Z"}}),
    );
    let folder = Folder {
        id: ACCOUNT.into(),
        name: ACCOUNT.into(),
    };
    with_ctx!(r, |ctx| {
        let (pages, token) = list_all(&r.remote, &ctx, &folder, None)
            .await
            .expect("full listing");
        assert_eq!(pages.len(), 2, "4 events, 2 a page");
        assert!(pages.iter().all(|p| p.full && p.removed.is_empty()));
        let token = token.expect("the last page gives a sync token");
        let got = items(&pages);
        let ids: Vec<String> = got.iter().map(|i| i.id.clone()).collect();
        assert_eq!(
            ids,
            [
                format!("{ACCOUNT}/{group}"),
                format!("{ACCOUNT}/{invitation}"),
                format!("{ACCOUNT}/{day}")
            ],
            "the out-of-office entry is no meeting"
        );
        let g = &got[0];
        assert_eq!(
            g.fields.uid.as_deref(),
            Some(format!("{group}@google.com").as_str())
        );
        assert_eq!(g.fields.organizer.as_deref(), Some(ACCOUNT));
        assert_eq!(
            g.fields.attendees,
            vec![
                (ACCOUNT.into(), "accepted".into()),
                ("bob@customer.example".into(), "none".into()),
                ("carol@customer.example".into(), "none".into()),
            ]
        );
        assert_eq!(g.fields.start, Some(utc("2026-03-02T09:00:00Z")));
        assert_eq!(g.fields.time_zone.as_deref(), Some("Europe/Berlin"));
        assert!(g.version.is_some());
        // AS-03: an invitation names its organizer, someone else.
        assert_eq!(
            got[1].fields.organizer.as_deref(),
            Some("dave@partner.example")
        );
        assert!(got[2].fields.all_day);
        let queries = r.fake.list_queries();
        assert_eq!(
            queries[0].get("singleEvents").map(String::as_str),
            Some("false")
        );
        assert!(!queries[0].contains_key("timeMin"));

        // Nothing changed: one request, nothing listed.
        let before = r.fake.requests();
        let (pages, token2) = list_all(&r.remote, &ctx, &folder, Some(&token))
            .await
            .expect("incremental");
        assert_eq!(r.fake.requests() - before, 1);
        assert!(items(&pages).is_empty() && !pages[0].full);
        let token = token2.expect("token");

        // A user edits one event and deletes another in Google.
        r.fake
            .edit_event(ACCOUNT, &group, |e| e["summary"] = json!("QBR"));
        r.fake.cancel_event(ACCOUNT, &day);
        let (pages, token3) = list_all(&r.remote, &ctx, &folder, Some(&token))
            .await
            .expect("incremental");
        let got = items(&pages);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].fields.summary.as_deref(), Some("QBR"));
        let removed: Vec<String> = pages.iter().flat_map(|p| p.removed.clone()).collect();
        assert_eq!(removed, [format!("{ACCOUNT}/{day}")]);
        assert!(pages.iter().all(|p| !p.full));

        // Changes over several pages: every page repeats the sync token, as Google wants.
        r.fake
            .edit_event(ACCOUNT, &group, |e| e["location"] = json!("Room 1"));
        r.fake
            .edit_event(ACCOUNT, &invitation, |e| e["location"] = json!("Room 2"));
        r.fake
            .edit_event(ACCOUNT, &ooo, |e| e["summary"] = json!("Away!"));
        let token3 = token3.expect("token");
        let queries_before = r.fake.list_queries().len();
        let (pages, token4) = list_all(&r.remote, &ctx, &folder, Some(&token3))
            .await
            .expect("incremental pages");
        assert_eq!(pages.len(), 2);
        assert_eq!(items(&pages).len(), 2, "the out-of-office entry is skipped");
        let queries = r.fake.list_queries();
        let second = &queries[queries_before + 1];
        assert_eq!(second.get("syncToken"), Some(&token3));
        assert!(second.contains_key("pageToken"));

        // An expired token is TokenExpired, and the listing from the start is full again.
        r.fake.expire_sync_tokens();
        let err = r
            .remote
            .list(&ctx, &folder, Cursor::Token(&token4.expect("token")))
            .await
            .expect_err("expired");
        assert!(matches!(err, RemoteError::TokenExpired), "{err:?}");
        let (pages, _) = list_all(&r.remote, &ctx, &folder, None)
            .await
            .expect("relisting");
        assert_eq!(items(&pages).len(), 2);
        assert!(pages.iter().all(|p| p.full));
    });
}

fn w<'a>(
    folder: &'a Folder,
    current: Option<&'a RemoteItem<Fields>>,
    fields: &'a Fields,
    uid: &'a str,
) -> Write<'a, Fields> {
    Write {
        folder,
        current,
        fields,
        uid,
    }
}

fn meeting(summary: &str) -> Fields {
    Fields {
        kind: ItemKind::Event,
        summary: Some(summary.into()),
        start: Some(utc("2026-05-05T12:00:00Z")),
        end: Some(utc("2026-05-05T13:00:00Z")),
        time_zone: Some("Europe/Berlin".into()),
        attendees: vec![("bob@customer.example".into(), "none".into())],
        ..Fields::default()
    }
}

#[tokio::test]
async fn writes_are_conditional_idempotent_and_send_updates_as_told() {
    // REQ: BX-03, CS-04, CS-05
    let r = rig(all(), 250).await;
    let folder = Folder {
        id: ACCOUNT.into(),
        name: ACCOUNT.into(),
    };
    with_ctx!(r, |ctx| {
        let fields = meeting("Demo");
        let uid = "switchboard-0123456789ab-activity-7";
        let write = || w(&folder, None, &fields, uid);
        let Written::Done(Some(created)) = r
            .remote
            .write(&ctx, write(), Notify::None)
            .await
            .expect("create")
        else {
            panic!("created");
        };
        assert_eq!(created.fields.uid.as_deref(), Some(uid));
        assert_eq!(created.fields.organizer.as_deref(), Some(ACCOUNT));
        assert_eq!(created.fields.start, fields.start);
        assert_eq!(r.fake.live_events(ACCOUNT).len(), 1);

        // The same create again (a crash before the link was stored): no second event.
        let again = r
            .remote
            .write(&ctx, write(), Notify::None)
            .await
            .expect("create again");
        let Written::Exists(again) = again else {
            panic!("exists: {again:?}");
        };
        assert_eq!(again.id, created.id);
        assert_eq!(r.fake.live_events(ACCOUNT).len(), 1);

        // An update with nothing changed sends nothing.
        let writes_before = r.fake.writes().len();
        let same = r
            .remote
            .write(&ctx, w(&folder, Some(&again), &fields, uid), Notify::All)
            .await
            .expect("no-change");
        assert_eq!(same, Written::Done(Some(again.clone())));
        assert_eq!(r.fake.writes().len(), writes_before);

        // An update with a change, announced to external guests only.
        let mut moved = fields.clone();
        moved.summary = Some("Demo (moved)".into());
        moved.start = Some(utc("2026-05-06T12:00:00Z"));
        moved.end = Some(utc("2026-05-06T13:00:00Z"));
        let updated = r
            .remote
            .write(
                &ctx,
                w(&folder, Some(&again), &moved, uid),
                Notify::External,
            )
            .await
            .expect("update");
        let Written::Done(Some(updated)) = updated else {
            panic!("updated: {updated:?}");
        };
        assert_eq!(updated.fields.summary.as_deref(), Some("Demo (moved)"));
        assert_ne!(updated.version, again.version);

        // The old etag is stale now: a conflict, not a lost write.
        let other = meeting("Demo (other)");
        let stale = r
            .remote
            .write(&ctx, w(&folder, Some(&again), &other, uid), Notify::None)
            .await
            .expect("stale");
        assert_eq!(stale, Written::Conflict);
        let stale_delete = r
            .remote
            .delete(&ctx, &again.id, again.version.as_deref(), Notify::None)
            .await
            .expect("stale delete");
        assert_eq!(stale_delete, Written::Conflict);

        // get reads it again; a delete with the current etag removes it.
        let current = r
            .remote
            .get(&ctx, &updated.id)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(current.version, updated.version);
        let deleted = r
            .remote
            .delete(&ctx, &current.id, current.version.as_deref(), Notify::All)
            .await
            .expect("delete");
        assert_eq!(deleted, Written::Done(None));
        assert!(r.fake.live_events(ACCOUNT).is_empty());
        assert_eq!(r.remote.get(&ctx, &current.id).await.expect("get"), None);

        // Deleted there: an update meets the etag the delete changed (a conflict, which the
        // engine resolves by reading it again: gone), a delete says Gone.
        let gone = r
            .remote
            .write(&ctx, w(&folder, Some(&current), &fields, uid), Notify::None)
            .await
            .expect("gone write");
        assert_eq!(gone, Written::Conflict);
        let gone = r
            .remote
            .delete(&ctx, &current.id, None, Notify::None)
            .await
            .expect("gone delete");
        assert_eq!(gone, Written::Gone);

        // BX-03: every write carried sendUpdates as the engine decided.
        let sent: Vec<(String, Option<String>)> = r
            .fake
            .writes()
            .into_iter()
            .map(|w| (w.method, w.send_updates))
            .collect();
        let expected: Vec<(String, Option<String>)> = [
            ("POST", "none"),
            ("POST", "none"),
            ("PUT", "externalOnly"),
            ("PUT", "none"),
            ("DELETE", "none"),
            ("DELETE", "all"),
            ("PUT", "none"),
            ("DELETE", "none"),
        ]
        .iter()
        .map(|(m, s)| ((*m).to_owned(), Some((*s).to_owned())))
        .collect();
        assert_eq!(sent, expected);

        // An event that never was (or was purged): an update is Gone.
        let purged = RemoteItem {
            id: format!("{ACCOUNT}/purged0001"),
            ..current.clone()
        };
        let gone = r
            .remote
            .write(&ctx, w(&folder, Some(&purged), &fields, uid), Notify::None)
            .await
            .expect("purged write");
        assert_eq!(gone, Written::Gone);

        // The first create's id is taken by its cancelled event: created again, it comes back.
        let back = r
            .remote
            .write(&ctx, write(), Notify::None)
            .await
            .expect("recreate");
        let Written::Done(Some(back)) = back else {
            panic!("back: {back:?}");
        };
        assert_eq!(back.id, created.id);
        assert_eq!(back.fields.status.as_deref(), Some("CONFIRMED"));
        assert_eq!(r.fake.live_events(ACCOUNT).len(), 1);

        // A task is not exported to Google.
        let task = Fields {
            kind: ItemKind::Todo,
            ..meeting("Call back")
        };
        let refused = r
            .remote
            .write(&ctx, w(&folder, None, &task, uid), Notify::None)
            .await;
        assert!(refused.is_err());
    });
}

#[tokio::test]
async fn an_attendees_copy_keeps_the_organizers_fields() {
    // REQ: AS-03
    let r = rig(all(), 250).await;
    let id = r.fake.add_invitation(
        ACCOUNT,
        "dave@partner.example",
        "Partner sync",
        "2026-03-03T09:00:00Z",
        "2026-03-03T09:30:00Z",
    );
    with_ctx!(r, |ctx| {
        let item = r
            .remote
            .get(&ctx, &format!("{ACCOUNT}/{id}"))
            .await
            .expect("get")
            .expect("exists");
        let folder = Folder {
            id: ACCOUNT.into(),
            name: ACCOUNT.into(),
        };
        let mut fields = item.fields.clone();
        fields.summary = Some("Renamed here".into());
        let writes_before = r.fake.writes().len();
        let result = r
            .remote
            .write(&ctx, w(&folder, Some(&item), &fields, "u"), Notify::None)
            .await
            .expect("not an error");
        // Only the organizer's changes propagate: nothing is sent (Google would refuse it with
        // 403 forbiddenForNonOrganizer) and the event stays as it was.
        assert_eq!(result, Written::Done(Some(item.clone())));
        assert_eq!(r.fake.writes().len(), writes_before);
        assert_eq!(
            r.fake.event(ACCOUNT, &id).expect("event")["summary"],
            "Partner sync"
        );
    });
}

#[tokio::test]
async fn throttling_ends_with_retry_after_and_401_gets_a_fresh_token() {
    let r = rig(all(), 250).await;
    let folder = Folder {
        id: ACCOUNT.into(),
        name: ACCOUNT.into(),
    };
    with_ctx!(r, |ctx| {
        r.fake.throttle(1);
        let err = r
            .remote
            .list(&ctx, &folder, Cursor::Start)
            .await
            .expect_err("throttled");
        match err {
            RemoteError::Throttled { retry_after, .. } => {
                assert_eq!(retry_after, Duration::from_secs(1))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.fake.throttled(), 1);
        // Google's other rate-limit answer, a 403 with reason userRateLimitExceeded, is
        // throttling too (no Retry-After: the client's default wait).
        r.fake.throttle_with_403(1);
        let err = r
            .remote
            .list(&ctx, &folder, Cursor::Start)
            .await
            .expect_err("throttled by a 403");
        match err {
            RemoteError::Throttled { retry_after, .. } => assert!(retry_after > Duration::ZERO),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.fake.throttled(), 2);
        // The access token expired: a fresh one, and the call goes through.
        r.fake.accept_only("token-2");
        let before = r.remote.requests();
        r.remote
            .list(&ctx, &folder, Cursor::Start)
            .await
            .expect("after a fresh token");
        assert_eq!(r.tokens.fresh_asked.load(Ordering::SeqCst), 1);
        assert_eq!(r.remote.requests() - before, 2);
        // A token refused again is a failure that names no token.
        r.fake.accept_only("something-else");
        let err = r
            .remote
            .list(&ctx, &folder, Cursor::Start)
            .await
            .expect_err("refused");
        assert!(!err.to_string().contains("token-"), "{err}");
    });
}

#[tokio::test]
async fn for_account_spends_the_google_accounts_grant_on_its_api_base() {
    // REQ: AS-04
    const CLIENT_ID: &str = "switchboard-google.apps.example";
    const CLIENT_SECRET: &str = "google-client-s3cret";
    const REFRESH: &str = "1//fake-refresh-ann";
    let oauth = OAuthFake::start(CLIENT_ID, CLIENT_SECRET, Duration::from_secs(3600)).await;
    oauth.allow(REFRESH, ACCOUNT);
    let fake = GCalendarFake::start(ACCOUNT).await;
    fake.add_group_event(
        ACCOUNT,
        "Kick-off",
        "2026-03-02T10:00:00+01:00",
        "2026-03-02T11:00:00+01:00",
        &["bob@customer.example"],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    std::fs::write(config.join("secret.txt"), CLIENT_SECRET).expect("secret");
    std::fs::write(config.join("refresh.txt"), REFRESH).expect("refresh");
    std::fs::write(
        config.join("google.yaml"),
        format!(
            "apiVersion: switchboard/v1\nkind: Settings\nmetadata: {{name: default}}\nspec:\n  siteUrl: https://sb.example\n  google:\n    clientId: {CLIENT_ID}\n    clientSecret: {{file: secret.txt}}\n    authUrl: {o}/auth\n    tokenUrl: {o}/token\n---\n\
             apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: ann}}\nspec: {{displayName: Ann, email: {ACCOUNT}}}\n---\n\
             apiVersion: switchboard/v1\nkind: GoogleAccount\nmetadata: {{name: ann-google}}\nspec:\n  user: ann\n  email: {ACCOUNT}\n  refreshToken: {{file: refresh.txt}}\n  apiBaseUrl: {base}\n",
            o = oauth.base,
            base = fake.base,
        ),
    )
    .expect("manifest");
    let set = switchboard::config::load(&[config])
        .into_result()
        .unwrap_or_else(|d| panic!("valid config: {d:?}"));
    let mut store = Store::open(&dir.path().join("state.db")).expect("store");
    store
        .apply(&switchboard::engine::apply::changes(&set, &[]), Utc::now())
        .expect("apply");
    let store = StoreHandle::new(store);
    let metrics = Metrics::new();
    let remote = GoogleCalendarRemote::for_account(&set, "ann-google", all()).expect("remote");
    let secrets = BTreeMap::new();
    let ctx = SyncContext {
        object: set.object(Kind::User, "ann").expect("user object"),
        secrets: &secrets,
        cancel: CancellationToken::new(),
        store: &store,
        metrics: &metrics,
        clock: Clock::system(),
    };
    let folders = remote.folders(&ctx).await.expect("folders");
    let page = remote
        .list(&ctx, &folders[0].0, Cursor::Start)
        .await
        .expect("listing");
    assert_eq!(page.items.len(), 1);
    let bearer = fake.last_bearer().expect("a bearer token");
    assert!(oauth.active(&bearer), "the grant's access token is spent");
    assert_eq!(oauth.token_calls(), 1, "one refresh serves both requests");
}
