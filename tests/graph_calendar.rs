//! `CalendarSync` over a Mailbox on a `microsoft365` provider: the real connector
//! (`CalendarSyncConnector::new`, so the account picks the Graph remote and the mailbox's own
//! OAuth grant, refreshed at the fake token endpoint tests/support/oauth_fake.rs) against a
//! fake Microsoft Graph calendar and To Do API written from the documented wire format
//! (tests/support/graph_calendar_fake.rs): import from `since` out of all or selected
//! calendars and only the user's own To Do lists (AS-01), export of activities made here as
//! events or tasks (AS-02) with no invitation mailed (BX-03), a no-change run, a conflict
//! resolved by policy (CS-04), an expired delta listed again without duplicates, 429 ending the
//! run as throttled, an expired access token refreshed, and deletes by policy (CS-05). Last,
//! the real daemon: a manual sync imports and exports through the fake, and no token or secret
//! shows in its objects, metrics, `status` or log.

mod support;

#[path = "support/graph_calendar_fake.rs"]
mod graph_calendar_fake;
#[path = "support/oauth_fake.rs"]
mod oauth_fake;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use switchboard::clock::Clock;
use switchboard::config::{ConfigSet, Kind};
use switchboard::connector::{Connector, ConnectorError, SyncContext, SyncReport, resolve_secrets};
use switchboard::engine::apply::changes;
use switchboard::store::activities::{Activity, ActivityChanges, ActivityKind, ActivityQuery};
use switchboard::store::records::RecordKind;
use switchboard::store::{Store, StoreHandle};
use switchboard::telemetry::Metrics;
use tokio_util::sync::CancellationToken;

use graph_calendar_fake::{CALENDAR_ID, GraphCalendarFake, ME, TASKS_ID};
use oauth_fake::OAuthFake;
use support::{Daemon, eventually, free_port};

const CLIENT_ID: &str = "switchboard-test-m365";
const CLIENT_SECRET: &str = "m365-client-s3cret";
const REFRESH: &str = "m365-refresh-token-cal";

struct Rig {
    _dir: tempfile::TempDir,
    set: ConfigSet,
    store: StoreHandle,
    metrics: Metrics,
    fake: GraphCalendarFake,
    oauth: OAuthFake,
}

/// The first day calendar views start at: 30 days ago.
fn since() -> NaiveDate {
    (Utc::now() - chrono::Duration::days(30)).date_naive()
}

/// `days` from today at `h` o'clock UTC.
fn day(days: i64, h: u32) -> DateTime<Utc> {
    (Utc::now() + chrono::Duration::days(days))
        .date_naive()
        .and_hms_opt(h, 0, 0)
        .expect("time")
        .and_utc()
}

const TWO_WAY: &str = "  importMeetings: {enabled: true}\n  importTasks: {enabled: true}\n  export: {enabled: true}\n";

/// `spec` is the CalendarSync's spec after `account` and `since`, indented two spaces.
async fn rig(spec: &str, prepare: impl FnOnce(&GraphCalendarFake)) -> Rig {
    let oauth = OAuthFake::start(CLIENT_ID, CLIENT_SECRET, Duration::from_secs(3600)).await;
    oauth.allow(REFRESH, ME);
    let fake = GraphCalendarFake::start(2).await;
    let check = OAuthFake {
        base: oauth.base.clone(),
        state: Arc::clone(&oauth.state),
    };
    fake.validate_with(move |t| check.active(t));
    prepare(&fake);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    std::fs::write(config.join("client-secret"), CLIENT_SECRET).expect("secret");
    std::fs::write(config.join("refresh"), REFRESH).expect("refresh token");
    std::fs::write(
        config.join("m365.yaml"),
        format!(
            "apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: owner}}\nspec: {{displayName: Owner, email: {ME}}}\n---\n\
             apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {{name: m365}}\nspec:\n  type: microsoft365\n  title: Microsoft 365\n  domains: [corp.example]\n  \
             apiBaseUrl: {graph}\n  auth: oauth2\n  \
             oauth2:\n    clientId: {CLIENT_ID}\n    clientSecret: {{file: client-secret}}\n    authUrl: {oauth}/auth\n    tokenUrl: {oauth}/token\n    scopes: [Mail.ReadWrite, Calendars.ReadWrite, Tasks.ReadWrite]\n---\n\
             apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: box}}\nspec:\n  address: {ME}\n  owner: owner\n  oauth2RefreshToken: {{file: refresh}}\n---\n\
             apiVersion: switchboard/v1\nkind: CalendarSync\nmetadata: {{name: cal}}\nspec:\n  account: box\n  since: {since}\n{spec}\n",
            graph = fake.base,
            oauth = oauth.base,
            since = since(),
        ),
    )
    .expect("manifest");
    let set = switchboard::config::load(&[config])
        .into_result()
        .unwrap_or_else(|d| panic!("valid config: {d:?}"));
    let mut store = Store::open(&dir.path().join("state.db")).expect("store");
    store.apply(&changes(&set, &[]), Utc::now()).expect("apply");
    Rig {
        _dir: dir,
        set,
        store: StoreHandle::new(store),
        metrics: Metrics::new(),
        fake,
        oauth,
    }
}

impl Rig {
    async fn try_sync(&self) -> Result<SyncReport, ConnectorError> {
        let object = self
            .set
            .object(Kind::CalendarSync, "cal")
            .expect("sync object");
        let connector: Arc<dyn Connector> =
            switchboard::sync::CalendarSyncConnector::new(object, &self.set)
                .map(|c| Arc::new(c) as Arc<dyn Connector>)
                .expect("a CalendarSync over a microsoft365 mailbox has a connector");
        let secrets = resolve_secrets(object).expect("secrets");
        connector
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

    async fn titles(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .activities()
            .await
            .into_iter()
            .map(|a| a.title)
            .collect();
        t.sort();
        t
    }

    async fn titled(&self, title: &str) -> Activity {
        let title = title.to_owned();
        self.activities()
            .await
            .into_iter()
            .find(|a| a.title == title)
            .unwrap_or_else(|| panic!("no activity titled {title}"))
    }

    async fn linked(&self, id: i64) -> Option<String> {
        self.store
            .call(move |s| s.sync_record("CalendarSync/cal", RecordKind::Activity, id))
            .await
            .expect("store")
            .map(|l| l.remote_id)
    }

    async fn create_local(&self, changes: ActivityChanges) -> i64 {
        self.store
            .call(move |s| Ok(s.create_activity(&changes, "User/owner", Utc::now())))
            .await
            .expect("store")
            .expect("create")
            .id
    }

    async fn update_local(&self, id: i64, changes: ActivityChanges) {
        self.store
            .call(move |s| Ok(s.update_activity(id, None, &changes, "User/owner", Utc::now())))
            .await
            .expect("store")
            .expect("update");
    }

    fn conflicts(&self) -> u64 {
        self.metrics
            .sync_conflicts_total
            .with_label_values(&["CalendarSync", "cal"])
            .get()
    }
}

#[tokio::test]
async fn meetings_from_since_and_only_the_users_own_tasks_come_in_and_a_second_run_moves_nothing() {
    // REQ: AS-01 (sync from a date; meetings from all calendars; tasks only the user owns)
    // REQ: CS-04 (incremental: a run with no change moves nothing)
    let rig = rig(TWO_WAY, |fake| {
        fake.add_event(CALENDAR_ID, "Before since", day(-60, 9), day(-60, 10));
        fake.add_event_json(
            CALENDAR_ID,
            json!({
                "subject": "Review with Ann",
                "start": graph_calendar_fake::dtz(day(2, 9)),
                "end": graph_calendar_fake::dtz(day(2, 10)),
                "location": {"displayName": "Room 4"},
                "attendees": [{"emailAddress": {"address": "ann@client.example"},
                               "status": {"response": "accepted"}}],
                "onlineMeeting": {"joinUrl": "https://teams.microsoft.com/l/meetup-join/42"},
            }),
        );
        let projects = fake.add_calendar("Projects");
        fake.add_event(&projects, "Project kickoff", day(3, 13), day(3, 14));
        fake.add_task(TASKS_ID, "Send the offer", Some(day(4, 0)));
        let team = fake.add_list("Team (shared by Bo)", false);
        fake.add_task(&team, "Bo's task", None);
    })
    .await;
    let report = rig.sync().await;
    assert_eq!(
        rig.titles().await,
        vec!["Project kickoff", "Review with Ann", "Send the offer"]
    );
    assert_eq!(report.items_in, 3);
    let review = rig.titled("Review with Ann").await;
    assert_eq!(review.kind, ActivityKind::Meeting);
    assert!(review.show_in_schedule);
    assert_eq!(review.location.as_deref(), Some("Room 4"));
    assert_eq!(review.start, Some(day(2, 9)));
    assert_eq!(
        review.online_meeting_url.as_deref(),
        Some("https://teams.microsoft.com/l/meetup-join/42")
    );
    assert!(
        review
            .participants
            .iter()
            .any(|p| p.email == "ann@client.example" && p.response == "accepted"),
        "{:?}",
        review.participants
    );
    let offer = rig.titled("Send the offer").await;
    assert!(!offer.show_in_schedule);
    assert_eq!(offer.due, Some(day(4, 0)));

    let writes = rig.fake.writes().len();
    let report = rig.sync().await;
    assert_eq!(
        report,
        SyncReport::default(),
        "nothing changed: nothing moved"
    );
    assert_eq!(rig.fake.writes().len(), writes);
}

#[tokio::test]
async fn only_the_selected_calendar_is_imported() {
    // REQ: AS-01 (meetings from selected calendars)
    let rig = rig(
        "  importMeetings: {enabled: true, calendars: [Projects]}\n  importTasks: {enabled: false}\n  export: {enabled: false}\n",
        |fake| {
            fake.add_event(CALENDAR_ID, "Private", day(1, 9), day(1, 10));
            let projects = fake.add_calendar("Projects");
            fake.add_event(&projects, "Project kickoff", day(3, 13), day(3, 14));
            fake.add_task(TASKS_ID, "A task", None);
        },
    )
    .await;
    rig.sync().await;
    assert_eq!(rig.titles().await, vec!["Project kickoff"]);
}

#[tokio::test]
async fn activities_made_here_become_events_or_tasks_and_nobody_is_invited() {
    // REQ: AS-02 (shown in the schedule → an event, otherwise a task)
    // REQ: BX-03 (invitations: none → Graph gets no attendees, so it mails nobody)
    let rig = rig(TWO_WAY, |_| {}).await;
    let meeting = rig
        .create_local(ActivityChanges {
            kind: Some(ActivityKind::Meeting),
            title: Some("Demo for Carol".into()),
            start: Some(Some(day(5, 15))),
            end: Some(Some(day(5, 16))),
            show_in_schedule: Some(true),
            owner: Some(Some("owner".into())),
            organizer: Some(Some(ME.into())),
            participants: Some(vec![("carol@customer.example".into(), "none".into())]),
            ..ActivityChanges::default()
        })
        .await;
    let task = rig
        .create_local(ActivityChanges {
            kind: Some(ActivityKind::Meeting),
            title: Some("Prepare the demo".into()),
            due: Some(Some(day(4, 12))),
            show_in_schedule: Some(false),
            owner: Some(Some("owner".into())),
            ..ActivityChanges::default()
        })
        .await;
    let report = rig.sync().await;
    assert_eq!(report.items_out, 2);
    let events = rig.fake.events(CALENDAR_ID);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["subject"], "Demo for Carol");
    assert_eq!(events[0]["attendees"], json!([]));
    assert!(events[0]["transactionId"].as_str().is_some());
    let tasks = rig.fake.tasks(TASKS_ID);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["title"], "Prepare the demo");
    assert!(rig.fake.mails().is_empty(), "{:?}", rig.fake.mails());
    assert!(rig.linked(meeting).await.is_some());
    assert!(rig.linked(task).await.expect("linked").starts_with("todo:"));

    let report = rig.sync().await;
    assert_eq!(
        report,
        SyncReport::default(),
        "our own items are not imported again"
    );
    assert_eq!(rig.activities().await.len(), 2);
    assert_eq!(rig.fake.events(CALENDAR_ID).len(), 1);
}

#[tokio::test]
async fn a_change_on_both_sides_is_one_conflict_resolved_by_policy() {
    // REQ: CS-04 (a record changed on both sides keeps the later change)
    let rig = rig(TWO_WAY, |fake| {
        fake.add_event(CALENDAR_ID, "Planning", day(2, 9), day(2, 10));
    })
    .await;
    rig.sync().await;
    let planning = rig.titled("Planning").await;
    let id = rig.linked(planning.id).await.expect("linked");
    rig.update_local(
        planning.id,
        ActivityChanges {
            location: Some(Some("Room here".into())),
            ..ActivityChanges::default()
        },
    )
    .await;
    // later, in Outlook
    tokio::time::sleep(Duration::from_millis(1100)).await;
    rig.fake.edit_event(&id, |e| {
        e["location"] = json!({"displayName": "Room in Outlook"});
    });
    rig.sync().await;
    assert_eq!(rig.conflicts(), 1);
    let after = rig.titled("Planning").await;
    let there = rig.fake.get(&id).expect("event");
    assert_eq!(
        after.location.as_deref(),
        there["location"]["displayName"].as_str(),
        "both sides agree"
    );
    rig.sync().await;
    assert_eq!(rig.conflicts(), 1, "resolved once");
}

#[tokio::test]
async fn an_expired_delta_lists_again_without_duplicates() {
    // REQ: CS-04 (a 410 / syncStateNotFound is one full round that duplicates nothing)
    let rig = rig(TWO_WAY, |fake| {
        fake.add_event(CALENDAR_ID, "One", day(1, 9), day(1, 10));
        fake.add_task(TASKS_ID, "Task one", None);
    })
    .await;
    rig.sync().await;
    rig.fake.expire_deltas();
    rig.fake
        .add_event(CALENDAR_ID, "Two", day(2, 9), day(2, 10));
    rig.sync().await;
    assert!(rig.fake.gone() >= 1);
    assert_eq!(rig.titles().await, vec!["One", "Task one", "Two"]);
}

#[tokio::test]
async fn a_throttled_run_ends_throttled_and_the_next_one_goes_on() {
    // REQ: AS-01 (synced automatically: 429's Retry-After goes to the scheduler)
    let rig = rig(TWO_WAY, |fake| {
        fake.add_event(CALENDAR_ID, "One", day(1, 9), day(1, 10));
    })
    .await;
    rig.fake.throttle(1);
    match rig.try_sync().await {
        Err(ConnectorError::Throttled { retry_after, .. }) => {
            assert_eq!(retry_after, Duration::from_secs(1))
        }
        other => panic!("not throttled: {other:?}"),
    }
    rig.sync().await;
    assert_eq!(rig.titles().await, vec!["One"]);
}

/// Collects everything logged on this thread, at every level.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_and_never_shown() {
    // REQ: AS-01 (synced automatically across token expiry)
    let logs = Logs::default();
    let writer = logs.clone();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish(),
    );
    let rig = rig(TWO_WAY, |fake| {
        fake.add_event(CALENDAR_ID, "One", day(1, 9), day(1, 10));
    })
    .await;
    rig.sync().await;
    rig.fake.expire_tokens();
    rig.oauth.revoke_all();
    rig.fake
        .add_event(CALENDAR_ID, "Two", day(2, 9), day(2, 10));
    rig.sync().await;
    assert_eq!(rig.titles().await, vec!["One", "Two"]);
    assert!(rig.fake.unauthorized() >= 1);

    // refused for good: the run fails without any token in its error
    rig.fake.validate_with(|_| false);
    let e = rig.try_sync().await.expect_err("refused");
    let text = e.to_string();
    assert!(text.contains("refused the access token"), "{text}");
    for token in rig.fake.with(|s| s.seen.clone()) {
        assert!(!text.contains(&token), "no token in {text}");
    }
    assert!(!text.contains(REFRESH) && !text.contains(CLIENT_SECRET));
    let logged = String::from_utf8_lossy(&logs.0.lock().expect("logs")).into_owned();
    assert!(
        logged.contains("refused the access token"),
        "logs were captured"
    );
    for token in rig.fake.with(|s| s.seen.clone()) {
        assert!(!logged.contains(&token), "no token in the logs");
    }
    assert!(!logged.contains(REFRESH) && !logged.contains(CLIENT_SECRET));
}

#[tokio::test]
async fn deletes_keep_by_default_and_propagate_when_asked() {
    // REQ: CS-05 (deletes: keep unlinks; propagate deletes on the other side)
    let keep = rig(TWO_WAY, |fake| {
        fake.add_event(CALENDAR_ID, "Kept", day(1, 9), day(1, 10));
    })
    .await;
    keep.sync().await;
    let kept = keep.titled("Kept").await;
    let id = keep.linked(kept.id).await.expect("linked");
    keep.fake.delete_item(&id);
    keep.sync().await;
    keep.titled("Kept").await;
    assert_eq!(keep.linked(kept.id).await, None, "unlinked");

    let gone = rig(&format!("{TWO_WAY}  deletes: propagate\n"), |fake| {
        fake.add_event(CALENDAR_ID, "Remote goes", day(1, 9), day(1, 10));
        fake.add_event(CALENDAR_ID, "Local goes", day(2, 9), day(2, 10));
        fake.add_task(TASKS_ID, "Task goes", None);
    })
    .await;
    gone.sync().await;
    let a = gone.titled("Remote goes").await;
    let b = gone.titled("Local goes").await;
    let c = gone.titled("Task goes").await;
    gone.fake
        .delete_item(&gone.linked(a.id).await.expect("linked"));
    for id in [b.id, c.id] {
        gone.store
            .call(move |s| Ok(s.delete_activity(id, None, "User/owner", Utc::now())))
            .await
            .expect("store")
            .expect("delete");
    }
    gone.sync().await;
    assert!(
        gone.activities().await.is_empty(),
        "{:?}",
        gone.titles().await
    );
    assert!(gone.fake.events(CALENDAR_ID).is_empty());
    assert!(gone.fake.tasks(TASKS_ID).is_empty());
    assert!(gone.fake.mails().is_empty());
}

// ---- The real daemon: a microsoft365 provider, an oauth2 Mailbox, a CalendarSync over it ----

const DAEMON_SECRET: &str = "m365-calendar-daemon-s3cret";
const DAEMON_REFRESH: &str = "m365-calendar-daemon-refresh";

fn daemon_config(
    port: u16,
    graph: &GraphCalendarFake,
    oauth: &OAuthFake,
) -> Vec<(&'static str, String)> {
    let mut files: Vec<_> = support::base_config(port)
        .into_iter()
        .filter(|(name, _)| *name != "mail.yaml")
        .collect();
    files.push(support::records::admin_file());
    files.push((
        "m365.yaml",
        format!(
            "apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {{name: m365}}\nspec:\n  type: microsoft365\n  title: Microsoft 365\n  domains: [corp.example]\n  \
             apiBaseUrl: {graph}\n  auth: oauth2\n  \
             oauth2:\n    clientId: {CLIENT_ID}\n    clientSecret: {{env: SB_M365_SECRET}}\n    authUrl: {oauth}/auth\n    tokenUrl: {oauth}/token\n    scopes: [Calendars.ReadWrite, Tasks.ReadWrite, offline_access]\n---\n\
             apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: box}}\nspec:\n  address: {ME}\n  owner: root\n  load: {{enabled: false}}\n  oauth2RefreshToken: {{env: SB_M365_REFRESH}}\n---\n\
             apiVersion: switchboard/v1\nkind: CalendarSync\nmetadata: {{name: cal}}\nspec:\n  account: box\n  since: {since}\n{TWO_WAY}",
            graph = graph.base,
            oauth = oauth.base,
            since = since(),
        ),
    ));
    files
}

#[tokio::test]
async fn the_daemon_syncs_a_microsoft_365_calendar_and_never_shows_a_token() {
    // REQ: AS-01 (a "sync now" imports meetings and the user's own tasks)
    // REQ: AS-02 (activities made through the API go out as an event and a task)
    let oauth = OAuthFake::start(CLIENT_ID, DAEMON_SECRET, Duration::from_secs(3600)).await;
    oauth.allow(DAEMON_REFRESH, ME);
    let graph = GraphCalendarFake::start(2).await;
    graph.add_event(CALENDAR_ID, "Review", day(2, 9), day(2, 10));
    graph.add_task(TASKS_ID, "Call back", None);
    let team = graph.add_list("Team (shared by Bo)", false);
    graph.add_task(&team, "Bo's task", None);
    let port = free_port();
    let mut daemon = Daemon::start(
        port,
        &daemon_config(port, &graph, &oauth),
        &[
            ("SB_TEST_SECRET", "unused"),
            ("SB_M365_SECRET", DAEMON_SECRET),
            ("SB_M365_REFRESH", DAEMON_REFRESH),
        ],
    );
    daemon.wait_ready().await;
    for (title, show) in [("Demo for Carol", true), ("Prepare the demo", false)] {
        let created = support::records::request(
            &daemon,
            reqwest::Method::POST,
            "/api/v1/activities",
            support::records::ROOT,
            &[],
            Some((
                "application/json",
                json!({"kind": "meeting", "title": title, "showInSchedule": show,
                       "start": day(5, 15).to_rfc3339(), "end": day(5, 16).to_rfc3339(),
                       "due": day(4, 12).to_rfc3339()}),
            )),
        )
        .await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let sync_now = || async {
        let queued = daemon
            .post(
                "/api/v1/objects/CalendarSync/cal/sync",
                Some(support::ADMIN_TOKEN),
            )
            .await;
        assert_eq!(queued.status(), 202);
    };
    sync_now().await;
    eventually(
        "the run is recorded with what it moved",
        &daemon,
        || async {
            let objects = daemon.objects().await;
            support::find(&objects, "CalendarSync", "cal").is_some_and(|o| {
                o["state"] == "ready"
                    && o["sync"]["lastRun"]["itemsIn"] == 2
                    && o["sync"]["lastRun"]["itemsOut"] == 2
            })
        },
    )
    .await;
    let events = graph.events(CALENDAR_ID);
    assert!(
        events.iter().any(|e| e["subject"] == "Demo for Carol"),
        "{events:?}"
    );
    let tasks = graph.tasks(TASKS_ID);
    assert!(
        tasks.iter().any(|t| t["title"] == "Prepare the demo"),
        "{tasks:?}"
    );
    let listed = support::records::request(
        &daemon,
        reqwest::Method::GET,
        "/api/v1/activities",
        support::records::ROOT,
        &[],
        None,
    )
    .await;
    let text = listed.body.to_string();
    assert!(
        text.contains("Review") && text.contains("Call back"),
        "{text}"
    );
    assert!(!text.contains("Bo's task"), "not the user's: {text}");

    // the access token expires: the next run refreshes it and goes on
    graph.expire_tokens();
    graph.add_event(CALENDAR_ID, "Later", day(6, 9), day(6, 10));
    sync_now().await;
    eventually("the next run imports the new event", &daemon, || async {
        let objects = daemon.objects().await;
        support::find(&objects, "CalendarSync", "cal")
            .is_some_and(|o| o["sync"]["lastRun"]["itemsIn"] == 1)
    })
    .await;
    assert!(graph.unauthorized() >= 1);

    // throttled: the run ends with Graph's Retry-After, shown as such
    graph.throttle(1);
    sync_now().await;
    eventually("the throttled run is shown", &daemon, || async {
        let objects = daemon.objects().await;
        support::find(&objects, "CalendarSync", "cal")
            .and_then(|o| o["lastError"].as_str().map(str::to_owned))
            .is_some_and(|e| e.contains("throttled"))
    })
    .await;

    let objects = daemon.objects().await.to_string();
    let metrics = daemon.metrics().await;
    let mut secrets = graph.with(|s| s.seen.clone());
    assert!(!secrets.is_empty());
    secrets.extend([DAEMON_REFRESH.to_owned(), DAEMON_SECRET.to_owned()]);
    for (what, text) in [
        ("objects", &objects),
        ("metrics", &metrics),
        ("log", &daemon.stderr()),
    ] {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a secret is in the {what}:\n{text}"
            );
        }
    }
}
