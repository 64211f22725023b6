//! Two-way calendar sync with a real Radicale (tests/support/radicale.rs): first import of
//! events and tasks (time zones, all-day, a recurring series, `since`, calendar selection), a
//! no-change run's request count, export of activities made here as events or tasks without
//! scheduling side effects (seen on the wire through the recording proxy), a foreign
//! iCalendar property surviving a round trip, a conflict resolved by `newest` with the
//! participants merged, and deletes under both policies. Each test has its own Radicale user.

mod support;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use switchboard::clock::Clock;
use switchboard::config::kinds::{MeetingServiceSpec, find_meeting};
use switchboard::config::{ConfigSet, Kind};
use switchboard::connector::{Connector, ConnectorError, SyncContext, SyncReport, resolve_secrets};
use switchboard::engine::apply::changes;
use switchboard::store::activities::{Activity, ActivityChanges, ActivityKind, ActivityQuery};
use switchboard::store::records::RecordKind;
use switchboard::store::{Store, StoreHandle};
use switchboard::telemetry::Metrics;
use tokio_util::sync::CancellationToken;

use support::faults::FaultProxy;
use support::radicale::radicale;

const PASSWORD: &str = "cal-Pa55-w0rd-z9";

struct Rig {
    _dir: tempfile::TempDir,
    set: ConfigSet,
    store: StoreHandle,
    metrics: Metrics,
    user: String,
    work: String,
    tasks: String,
}

/// `spec` is the CalendarSync's spec after `account`, indented two spaces; `base` the URL the
/// DavAccount names (Radicale, or a proxy in front of it).
async fn rig_at(user: &str, spec: &str, base: Option<String>) -> Rig {
    let (work, tasks) = radicale().user_with_calendars(user, PASSWORD).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    std::fs::write(config.join("dav-password.txt"), PASSWORD).expect("password file");
    std::fs::write(
        config.join("dav.yaml"),
        format!(
            "apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: owner}}\nspec: {{displayName: Owner, email: owner@example.com}}\n---\n\
             apiVersion: switchboard/v1\nkind: MeetingService\nmetadata: {{name: zoom}}\nspec: {{title: Zoom, description: Zoom, mask: 'https://[a-z0-9.]*zoom\\.us/j/'}}\n---\n\
             apiVersion: switchboard/v1\nkind: DavAccount\nmetadata: {{name: home}}\nspec:\n  user: owner\n  url: {base}/\n  username: {user}\n  password: {{file: dav-password.txt}}\n---\n\
             apiVersion: switchboard/v1\nkind: CalendarSync\nmetadata: {{name: cal}}\nspec:\n  account: home\n{spec}\n",
            base = base.unwrap_or_else(|| radicale().base()),
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
        user: user.to_owned(),
        work,
        tasks,
    }
}

async fn rig(user: &str, spec: &str) -> Rig {
    rig_at(user, spec, None).await
}

const TWO_WAY: &str = "  since: 2026-01-01\n  importMeetings: {enabled: true}\n  importTasks: {enabled: true}\n  export: {enabled: true}\n";

impl Rig {
    async fn try_sync(&self) -> Result<SyncReport, ConnectorError> {
        let object = self
            .set
            .object(Kind::CalendarSync, "cal")
            .expect("sync object");
        let connector: Arc<dyn Connector> =
            switchboard::sync::CalendarSyncConnector::new(object, &self.set)
                .map(|c| Arc::new(c) as Arc<dyn Connector>)
                .expect("a CalendarSync over a DavAccount has a connector");
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

    async fn put(&self, collection: &str, name: &str, ics: &str) -> String {
        radicale()
            .put_ics(&self.user, PASSWORD, &format!("{collection}{name}"), ics)
            .await
    }

    async fn get(&self, href: &str) -> (u16, Option<String>, String) {
        let url = format!("{}{href}", radicale().base());
        radicale().get(&self.user, PASSWORD, &url).await
    }

    async fn items(&self, collection: &str) -> Vec<String> {
        radicale().items(&self.user, PASSWORD, collection).await
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

    async fn titled(&self, title: &str) -> Activity {
        let title = title.to_owned();
        self.activities()
            .await
            .into_iter()
            .find(|a| a.title == title)
            .unwrap_or_else(|| panic!("no activity titled {title}"))
    }

    async fn href_of(&self, id: i64) -> Option<String> {
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

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("time")
        .with_timezone(&Utc)
}

fn ics(component: &str, uid: &str, body: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:{component}\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n{body}END:{component}\r\nEND:VCALENDAR\r\n"
    )
}

const BERLIN: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n\
BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:weekly-1\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Weekly sync\r\nLOCATION:https://acme.zoom.us/j/555 (Zoom)\r\n\
DTSTART;TZID=Europe/Berlin:20260701T100000\r\nDTEND;TZID=Europe/Berlin:20260701T103000\r\nRRULE:FREQ=WEEKLY;BYDAY=WE\r\n\
ORGANIZER;CN=Owner:mailto:owner@example.com\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:Carol@Customer.example\r\n\
X-ACME-ROOM;X-P=\"a:b\":Blue room\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

#[tokio::test]
async fn first_import_reads_zones_all_day_series_and_tasks_from_the_selected_calendars() {
    // REQ: AS-01 (import from a date; meetings and tasks from the selected calendars)
    // REQ: BX-01 (CalDAV with RFC 6578 sync tokens: a no-change run is one request per calendar)
    // REQ: OM-01 (an imported event's link is recognised by the MeetingService masks)
    let rig = rig("cal-import", TWO_WAY).await;
    rig.put(&rig.work, "weekly.ics", BERLIN).await;
    rig.put(
        &rig.work,
        "offsite.ics",
        &ics(
            "VEVENT",
            "offsite-1",
            "SUMMARY:Offsite\r\nDTSTART;VALUE=DATE:20260504\r\nDTEND;VALUE=DATE:20260506\r\n",
        ),
    )
    .await;
    rig.put(
        &rig.work,
        "old.ics",
        &ics(
            "VEVENT",
            "old-1",
            "SUMMARY:Last year\r\nDTSTART:20251201T100000Z\r\nDTEND:20251201T110000Z\r\n",
        ),
    )
    .await;
    rig.put(
        &rig.tasks,
        "call.ics",
        &ics("VTODO", "call-1", "SUMMARY:Call Carol back\r\nDUE;TZID=America/New_York:20260302T170000\r\nSTATUS:NEEDS-ACTION\r\n"),
    )
    .await;
    let report = rig.sync().await;
    assert_eq!(report.items_in, 3, "the event before `since` is skipped");
    assert_eq!(
        report.items_out, 0,
        "imported activities are not echoed back"
    );
    assert_eq!(rig.activities().await.len(), 3);

    let weekly = rig.titled("Weekly sync").await;
    assert_eq!(weekly.kind, ActivityKind::Meeting);
    assert!(weekly.show_in_schedule);
    assert_eq!(
        weekly.start,
        Some(t("2026-07-01T08:00:00Z")),
        "CEST is UTC+2"
    );
    assert_eq!(weekly.end, Some(t("2026-07-01T08:30:00Z")));
    assert_eq!(weekly.time_zone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(weekly.rrule.as_deref(), Some("FREQ=WEEKLY;BYDAY=WE"));
    assert_eq!(weekly.owner.as_deref(), Some("owner"));
    assert_eq!(
        weekly.organizer.as_ref().map(|o| o.email.as_str()),
        Some("owner@example.com")
    );
    assert_eq!(weekly.participants.len(), 1);
    assert_eq!(weekly.participants[0].email, "carol@customer.example");
    assert_eq!(weekly.participants[0].response, "accepted");
    let services: Vec<(String, MeetingServiceSpec)> = rig
        .set
        .specs::<MeetingServiceSpec>()
        .map(|(o, m)| (o.name.clone(), m.clone()))
        .collect();
    assert_eq!(
        find_meeting(
            services.iter().map(|(n, m)| (n.as_str(), m)),
            &[
                weekly.online_meeting_url.as_deref(),
                weekly.location.as_deref(),
                weekly.description.as_deref()
            ]
        ),
        Some(("zoom".to_owned(), "https://acme.zoom.us/j/555".to_owned()))
    );

    let offsite = rig.titled("Offsite").await;
    assert!(offsite.all_day);
    assert_eq!(offsite.start, Some(t("2026-05-04T00:00:00Z")));
    assert_eq!(offsite.end, Some(t("2026-05-06T00:00:00Z")));

    let call = rig.titled("Call Carol back").await;
    assert_eq!(call.kind, ActivityKind::Task);
    assert!(!call.show_in_schedule);
    assert_eq!(call.due, Some(t("2026-03-02T22:00:00Z")), "EST is UTC-5");
    assert_eq!(call.status.as_deref(), Some("NEEDS-ACTION"));

    let before = radicale().requests_by(&rig.user);
    assert_eq!(rig.sync().await, SyncReport::default());
    assert_eq!(
        radicale().requests_by(&rig.user) - before,
        2,
        "a no-change run is one sync-collection REPORT per calendar"
    );

    // Only the changed item is read on the next run, and `since` no longer hides the series.
    rig.put(
        &rig.work,
        "weekly.ics",
        &BERLIN.replace("Weekly sync", "Weekly sync (moved)"),
    )
    .await;
    assert_eq!(rig.sync().await.items_in, 1);
    rig.titled("Weekly sync (moved)").await;
    assert_eq!(rig.activities().await.len(), 3);
}

#[tokio::test]
async fn a_calendar_selection_imports_only_the_named_calendar() {
    // REQ: AS-01 (meetings from selected calendars only; tasks import off)
    let rig = rig(
        "cal-select",
        "  since: 2026-01-01\n  importMeetings: {enabled: true, calendars: [Work]}\n  importTasks: {enabled: false}\n  export: {enabled: false}\n",
    )
    .await;
    rig.put(
        &rig.work,
        "a.ics",
        &ics("VEVENT", "a-1", "SUMMARY:A\r\nDTSTART:20260301T100000Z\r\n"),
    )
    .await;
    rig.put(&rig.tasks, "b.ics", &ics("VTODO", "b-1", "SUMMARY:B\r\n"))
        .await;
    assert_eq!(rig.sync().await.items_in, 1);
    let titles: Vec<String> = rig
        .activities()
        .await
        .into_iter()
        .map(|a| a.title)
        .collect();
    assert_eq!(titles, ["A"]);
}

#[tokio::test]
async fn activities_made_here_are_exported_as_events_or_tasks_without_invitations() {
    // REQ: AS-02 (shown in the schedule → an event, otherwise a task)
    // REQ: BX-03 (invitations: none → Schedule-Reply: F, SCHEDULE-AGENT=CLIENT, no METHOD)
    // REQ: CS-04 (a record made here is written there; a second run writes nothing)
    let proxy = FaultProxy::start(radicale().port).await;
    let rig = rig_at(
        "cal-export",
        TWO_WAY,
        Some(format!("http://127.0.0.1:{}", proxy.port())),
    )
    .await;
    let meeting = rig
        .create_local(ActivityChanges {
            kind: Some(ActivityKind::Meeting),
            title: Some("Demo for Carol".into()),
            start: Some(Some(t("2026-03-10T15:00:00Z"))),
            end: Some(Some(t("2026-03-10T16:00:00Z"))),
            show_in_schedule: Some(true),
            owner: Some(Some("owner".into())),
            organizer: Some(Some("owner@example.com".into())),
            participants: Some(vec![("carol@customer.example".into(), "none".into())]),
            ..ActivityChanges::default()
        })
        .await;
    let task = rig
        .create_local(ActivityChanges {
            kind: Some(ActivityKind::Meeting),
            title: Some("Prepare the demo".into()),
            due: Some(Some(t("2026-03-09T12:00:00Z"))),
            show_in_schedule: Some(false),
            owner: Some(Some("owner".into())),
            ..ActivityChanges::default()
        })
        .await;
    // someone else's activity is not this sync's to export
    rig.create_local(ActivityChanges {
        kind: Some(ActivityKind::Task),
        title: Some("Not mine".into()),
        owner: Some(None),
        ..ActivityChanges::default()
    })
    .await;
    let report = rig.sync().await;
    assert_eq!(report.items_out, 2);
    assert_eq!(rig.items(&rig.work).await.len(), 1);
    assert_eq!(rig.items(&rig.tasks).await.len(), 1);
    let (_, _, event) = rig.get(&rig.href_of(meeting).await.expect("linked")).await;
    assert!(
        event.contains("BEGIN:VEVENT") && event.contains("SUMMARY:Demo for Carol"),
        "{event}"
    );
    assert!(event.contains("DTSTART:20260310T150000Z"));
    let (_, _, todo) = rig.get(&rig.href_of(task).await.expect("linked")).await;
    assert!(
        todo.contains("BEGIN:VTODO") && todo.contains("DUE:20260309T120000Z"),
        "{todo}"
    );

    let wire = proxy.sent();
    let puts: Vec<&str> = wire.split("PUT /").skip(1).collect();
    assert_eq!(puts.len(), 2, "{wire}");
    for put in &puts {
        let lower = put.to_ascii_lowercase();
        assert!(lower.contains("\r\nschedule-reply: f\r\n"), "{put}");
        assert!(
            lower.contains("\r\nif-none-match: *\r\n"),
            "a create: {put}"
        );
        assert!(!put.contains("METHOD:"), "{put}");
    }
    let unfolded = wire.replace("\r\n ", "");
    assert!(
        unfolded.contains("ORGANIZER;SCHEDULE-AGENT=CLIENT:mailto:owner@example.com"),
        "{unfolded}"
    );
    assert!(unfolded.contains("SCHEDULE-AGENT=CLIENT:mailto:carol@customer.example"));
    assert!(
        !wire.contains(PASSWORD),
        "the password travels only base64 in Authorization"
    );

    let report = rig.sync().await;
    assert_eq!(
        report,
        SyncReport::default(),
        "nothing changed: nothing written"
    );
    assert_eq!(rig.items(&rig.work).await.len(), 1);
    assert_eq!(
        rig.activities().await.len(),
        3,
        "our own items are not imported again"
    );
}

#[tokio::test]
async fn a_crash_between_put_and_checkpoint_does_not_make_a_second_copy() {
    // REQ: CS-04 (items Switchboard creates carry a stable UID)
    let rig = rig("cal-crash", TWO_WAY).await;
    let id = rig
        .create_local(ActivityChanges {
            kind: Some(ActivityKind::Meeting),
            title: Some("Once".into()),
            start: Some(Some(t("2026-04-01T09:00:00Z"))),
            show_in_schedule: Some(true),
            owner: Some(Some("owner".into())),
            ..ActivityChanges::default()
        })
        .await;
    rig.sync().await;
    // forget what the run recorded after its PUT, as a kill before the checkpoint would
    rig.store
        .call(move |s| {
            s.unlink_sync_record("CalendarSync/cal", RecordKind::Activity, id)?;
            s.set_sync_checkpoint("CalendarSync/cal", "exported", None, Utc::now())
        })
        .await
        .expect("store");
    rig.sync().await;
    assert_eq!(rig.items(&rig.work).await.len(), 1);
    assert_eq!(rig.activities().await.len(), 1);
    assert!(rig.href_of(id).await.is_some(), "linked again");
}

#[tokio::test]
async fn a_foreign_property_survives_and_a_conflict_keeps_the_newest_with_participants_merged() {
    // REQ: CS-04 (a record changed on both sides keeps the later change)
    // REQ: BX-02 (conflict.union: [emails] merges both sides' participants)
    let rig = rig(
        "cal-conflict",
        &format!("{TWO_WAY}  conflict: {{winner: newest, union: [emails]}}\n"),
    )
    .await;
    rig.put(&rig.work, "weekly.ics", BERLIN).await;
    rig.sync().await;
    let weekly = rig.titled("Weekly sync").await;
    let href = rig.href_of(weekly.id).await.expect("linked");

    // a change here is written back into the server's object, which keeps the rest
    rig.update_local(
        weekly.id,
        ActivityChanges {
            title: Some("Weekly sync with Carol".into()),
            ..ActivityChanges::default()
        },
    )
    .await;
    assert_eq!(rig.sync().await.items_out, 1);
    let (_, etag, object) = rig.get(&href).await;
    let flat = object.replace("\r\n ", "");
    assert!(flat.contains("SUMMARY:Weekly sync with Carol"), "{flat}");
    assert!(flat.contains("X-ACME-ROOM;X-P=\"a:b\":Blue room"), "{flat}");
    assert!(flat.contains("RRULE:FREQ=WEEKLY;BYDAY=WE"));
    assert!(
        flat.contains("DTSTART;TZID=Europe/Berlin:20260701T100000"),
        "the zone stays"
    );

    // both sides change: the server's is the later one
    rig.update_local(
        weekly.id,
        ActivityChanges {
            title: Some("Here".into()),
            participants: Some(vec![
                ("carol@customer.example".into(), "accepted".into()),
                ("dan@customer.example".into(), "none".into()),
            ]),
            ..ActivityChanges::default()
        },
    )
    .await;
    let there = flat
        .replace("SUMMARY:Weekly sync with Carol", "SUMMARY:There")
        .replace(
            "ATTENDEE;",
            "ATTENDEE;PARTSTAT=TENTATIVE:mailto:erin@customer.example\r\nATTENDEE;",
        );
    let there = there
        .lines()
        .filter(|l| !l.starts_with("LAST-MODIFIED"))
        .map(|l| {
            if l.starts_with("END:VEVENT") {
                "LAST-MODIFIED:20990101T000000Z\r\nEND:VEVENT".to_owned()
            } else {
                l.trim_end_matches('\r').to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n");
    let (status, _, body) = radicale()
        .request(
            &rig.user,
            PASSWORD,
            "PUT",
            &format!("{}{href}", radicale().base()),
            &[
                ("if-match", etag.as_deref().expect("etag")),
                ("content-type", "text/calendar"),
            ],
            Some(there),
        )
        .await;
    assert!(status == 201 || status == 204, "{status} {body}");
    let report = rig.sync().await;
    assert_eq!(rig.conflicts(), 1);
    // The run record the objects view shows counts the conflict, as ContactSync's does.
    let runs = rig
        .store
        .call(|s| s.sync_run_records())
        .await
        .expect("run records");
    let run = &runs["CalendarSync/cal"];
    assert_eq!(
        (
            run.last_in,
            run.last_out,
            run.last_conflicts,
            run.conflicts_total
        ),
        (report.items_in, report.items_out, 1, 1),
    );
    assert!(run.progress.is_none(), "no run in progress");
    let resolved = rig
        .activities()
        .await
        .into_iter()
        .find(|a| a.id == weekly.id)
        .expect("kept");
    assert_eq!(
        resolved.title, "There",
        "the server's change is the later one"
    );
    let mut people: Vec<String> = resolved
        .participants
        .iter()
        .map(|p| p.email.clone())
        .collect();
    people.sort();
    assert_eq!(
        people,
        [
            "carol@customer.example",
            "dan@customer.example",
            "erin@customer.example"
        ]
    );
    // the union goes back to the server
    let (_, _, object) = rig.get(&href).await;
    assert!(
        object
            .replace("\r\n ", "")
            .contains("mailto:dan@customer.example"),
        "{object}"
    );
}

#[tokio::test]
async fn deletes_keep_by_default_and_propagate_when_asked() {
    // REQ: CS-05 (deletes: keep unlinks; propagate deletes on the other side, only what was synced)
    let keep = rig("cal-keep", TWO_WAY).await;
    keep.put(
        &keep.work,
        "a.ics",
        &ics(
            "VEVENT",
            "a-1",
            "SUMMARY:Kept\r\nDTSTART:20260301T100000Z\r\n",
        ),
    )
    .await;
    keep.sync().await;
    let kept = keep.titled("Kept").await;
    let href = keep.href_of(kept.id).await.expect("linked");
    let (status, _, _) = radicale()
        .request(
            &keep.user,
            PASSWORD,
            "DELETE",
            &format!("{}{href}", radicale().base()),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 200);
    keep.sync().await;
    keep.titled("Kept").await;
    assert_eq!(keep.href_of(kept.id).await, None, "unlinked");

    let gone = rig("cal-propagate", &format!("{TWO_WAY}  deletes: propagate\n")).await;
    gone.put(
        &gone.work,
        "a.ics",
        &ics(
            "VEVENT",
            "a-1",
            "SUMMARY:Remote goes\r\nDTSTART:20260301T100000Z\r\n",
        ),
    )
    .await;
    gone.put(
        &gone.work,
        "b.ics",
        &ics(
            "VEVENT",
            "b-1",
            "SUMMARY:Local goes\r\nDTSTART:20260302T100000Z\r\n",
        ),
    )
    .await;
    gone.sync().await;
    let a = gone.titled("Remote goes").await;
    let b = gone.titled("Local goes").await;
    let href_a = gone.href_of(a.id).await.expect("linked");
    radicale()
        .request(
            &gone.user,
            PASSWORD,
            "DELETE",
            &format!("{}{href_a}", radicale().base()),
            &[],
            None,
        )
        .await;
    gone.store
        .call(move |s| Ok(s.delete_activity(b.id, None, "User/owner", Utc::now())))
        .await
        .expect("store")
        .expect("delete");
    gone.sync().await;
    assert!(gone.activities().await.is_empty());
    assert!(gone.items(&gone.work).await.is_empty());
}

#[tokio::test]
async fn an_error_names_the_calendars_and_never_the_password() {
    // REQ: BX-01 (secrets never in errors or status)
    let rig = rig(
        "cal-nomatch",
        "  since: 2026-01-01\n  importMeetings: {enabled: true, calendars: [Nope]}\n  importTasks: {enabled: true, folders: [Nope]}\n  export: {enabled: false}\n",
    )
    .await;
    let err = rig.try_sync().await.expect_err("no calendar matches");
    let text = err.to_string();
    assert!(text.contains("Work") && text.contains("Tasks"), "{text}");
    assert!(!text.contains(PASSWORD));
    assert!(!radicale().log().contains(PASSWORD));
}

#[tokio::test]
async fn invitations_external_leaves_only_outside_participants_to_the_server() {
    // REQ: BX-03 (invitations: external — the company's addresses are never scheduled)
    let proxy = FaultProxy::start(radicale().port).await;
    let rig = rig_at(
        "cal-external",
        &format!("{TWO_WAY}  invitations: external\n"),
        Some(format!("http://127.0.0.1:{}", proxy.port())),
    )
    .await;
    rig.create_local(ActivityChanges {
        kind: Some(ActivityKind::Meeting),
        title: Some("Kick-off".into()),
        start: Some(Some(t("2026-03-10T15:00:00Z"))),
        end: Some(Some(t("2026-03-10T16:00:00Z"))),
        show_in_schedule: Some(true),
        owner: Some(Some("owner".into())),
        organizer: Some(Some("owner@example.com".into())),
        participants: Some(vec![
            ("colleague@example.com".into(), "none".into()),
            ("carol@customer.example".into(), "none".into()),
        ]),
        ..ActivityChanges::default()
    })
    .await;
    assert_eq!(rig.sync().await.items_out, 1);
    let wire = proxy.sent();
    let put = wire.split("PUT /").nth(1).expect("a PUT");
    assert!(
        !put.to_ascii_lowercase().contains("schedule-reply"),
        "{put}"
    );
    let flat = put.replace("\r\n ", "");
    assert!(
        flat.contains("ORGANIZER;SCHEDULE-AGENT=CLIENT:mailto:owner@example.com"),
        "{flat}"
    );
    assert!(
        flat.contains("SCHEDULE-AGENT=CLIENT:mailto:colleague@example.com"),
        "a User's domain"
    );
    assert!(
        flat.contains("ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=FALSE:mailto:carol@customer.example"),
        "an outside participant is the server's to invite: {flat}"
    );
}
