//! A `CalendarSync` over a `GoogleAccount` through the real daemon, against the fake Calendar
//! API (tests/support/gcalendar_fake.rs) and the fake OAuth token endpoint
//! (tests/support/oauth_fake.rs): the first import from `since`, a group event becoming one
//! activity whose participants link to contacts by e-mail, an activity made here exported with
//! `sendUpdates` as `invitations` says, a run with nothing new writing nothing, an expired sync
//! token relisted without duplicates, a 429 ending the run, and an event deleted in Google
//! unlinking its activity (`deletes: keep`) without deleting it here.

mod chat_support;
#[path = "support/gcalendar_fake.rs"]
mod gcalendar_fake;
#[path = "support/oauth_fake.rs"]
mod oauth_fake;
mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use chat_support::ANN;
use gcalendar_fake::GCalendarFake;
use oauth_fake::OAuthFake;
use support::records::{ROOT, admin_file, get, request};
use support::{Daemon, eventually, free_port};

const CLIENT_ID: &str = "switchboard-google.apps.example";
const CLIENT_SECRET: &str = "google-client-s3cret";
const REFRESH: &str = "1//fake-refresh-ann";
const ACCOUNT: &str = "ann@example.com";

fn config(
    port: u16,
    oauth: &OAuthFake,
    google: &GCalendarFake,
    invitations: &str,
) -> Vec<(&'static str, String)> {
    let mut files = support::with_settings(
        &chat_support::files(port, "http://127.0.0.1:9/callback", "toAll"),
        &format!(
            "  google:\n    clientId: {CLIENT_ID}\n    clientSecret: {{file: google-secret.txt}}\n    authUrl: {o}/auth\n    tokenUrl: {o}/token\n",
            o = oauth.base
        ),
    );
    files.push(admin_file());
    files.push(("google-secret.txt", CLIENT_SECRET.to_owned()));
    files.push(("ann-refresh.txt", REFRESH.to_owned()));
    files.push((
        "google.yaml",
        format!(
            "apiVersion: switchboard/v1\nkind: GoogleAccount\nmetadata: {{name: ann-google}}\nspec:\n  user: ann\n  email: {ACCOUNT}\n  refreshToken: {{file: ann-refresh.txt}}\n  apiBaseUrl: {base}\n---\n\
             apiVersion: switchboard/v1\nkind: CalendarSync\nmetadata: {{name: ann-calendar}}\nspec:\n  account: ann-google\n  since: 2026-01-01\n  importMeetings: {{enabled: true, calendars: all}}\n  importTasks: {{enabled: false}}\n  export: {{enabled: true}}\n  invitations: {invitations}\n",
            base = google.base
        ),
    ));
    files
}

/// The CalendarSync's object as the API shows it.
async fn object(daemon: &Daemon) -> Value {
    let r = get(daemon, "/api/v1/objects?limit=1000", ROOT).await;
    r.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["kind"] == "CalendarSync" && o["name"] == "ann-calendar")
        .cloned()
        .unwrap_or(Value::Null)
}

fn runs(o: &Value) -> i64 {
    o["runsOk"].as_i64().unwrap_or(0) + o["runsFailed"].as_i64().unwrap_or(0)
}

/// Asks for a run and waits until it is recorded (ok or failed).
async fn sync_now(daemon: &Daemon) -> Value {
    let before = runs(&object(daemon).await);
    let r = request(
        daemon,
        Method::POST,
        "/api/v1/objects/CalendarSync/ann-calendar/sync",
        ROOT,
        &[],
        None,
    )
    .await;
    assert!(r.status < 300, "sync now: {} {}", r.status, r.body);
    eventually("the run recorded", daemon, || async {
        runs(&object(daemon).await) > before
    })
    .await;
    object(daemon).await
}

async fn activities(daemon: &Daemon) -> Vec<Value> {
    let r = get(daemon, "/api/v1/activities?limit=500", ROOT).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["items"].as_array().cloned().unwrap_or_default()
}

fn titled<'a>(list: &'a [Value], title: &str) -> Vec<&'a Value> {
    list.iter().filter(|a| a["title"] == title).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_google_calendar_syncs_both_ways_through_the_daemon() {
    // REQ: AS-01, AS-03, BX-03, CS-04, CS-05
    let oauth = OAuthFake::start(CLIENT_ID, CLIENT_SECRET, Duration::from_secs(3600)).await;
    oauth.allow(REFRESH, ACCOUNT);
    let google = GCalendarFake::start(ACCOUNT).await;
    google.add_event(
        ACCOUNT,
        json!({"summary": "Last year", "start": {"dateTime": "2025-06-01T10:00:00Z"},
               "end": {"dateTime": "2025-06-01T11:00:00Z"}}),
    );
    google.add_group_event(
        ACCOUNT,
        "Quarterly review",
        "2026-03-02T10:00:00+01:00",
        "2026-03-02T11:00:00+01:00",
        &["Carol@Customer.example", "bob@example.com"],
    );
    let gone_later = google.add_event(
        ACCOUNT,
        json!({"summary": "Dentist", "start": {"date": "2026-04-10"}, "end": {"date": "2026-04-11"}}),
    );
    let invitation = google.add_invitation(
        ACCOUNT,
        "dave@partner.example",
        "Partner sync",
        "2026-03-03T09:00:00Z",
        "2026-03-03T09:30:00Z",
    );
    let port = free_port();
    let mut daemon = Daemon::start(port, &config(port, &oauth, &google, "external"), &[]);
    daemon.wait_ready().await;
    let carol = request(
        &daemon,
        Method::POST,
        "/api/v1/contacts",
        ROOT,
        &[],
        Some((
            "application/json",
            json!({"name": "Carol", "emails": ["carol@customer.example"]}),
        )),
    )
    .await;
    assert_eq!(carol.status, 201, "{}", carol.body);
    let carol_id = carol.body["id"].clone();

    // First import: from `since` on; the group event is one activity with its participants.
    let o = sync_now(&daemon).await;
    assert_eq!(o["runsFailed"], 0, "{o}");
    let list = activities(&daemon).await;
    assert!(titled(&list, "Last year").is_empty(), "since: {list:?}");
    let review = titled(&list, "Quarterly review");
    assert_eq!(review.len(), 1, "{list:?}");
    assert_eq!(review[0]["organizer"]["email"], ACCOUNT);
    let parts = review[0]["participants"].as_array().expect("participants");
    assert!(
        parts
            .iter()
            .any(|p| p["email"] == "carol@customer.example" && p["contactId"] == carol_id),
        "{parts:?}"
    );
    assert!(
        parts.iter().any(|p| p["email"] == "bob@example.com"),
        "{parts:?}"
    );
    assert_eq!(titled(&list, "Dentist").len(), 1);
    assert!(google.writes().is_empty(), "an import writes nothing back");

    // An activity made here and shown in the schedule is exported, announced to external
    // guests only (BX-03: invitations: external → sendUpdates=externalOnly).
    let made = request(
        &daemon,
        Method::POST,
        "/api/v1/activities",
        ANN,
        &[],
        Some((
            "application/json",
            json!({"kind": "meeting", "title": "Demo", "start": "2026-12-08T10:00:00Z",
                   "end": "2026-12-08T11:00:00Z", "showInSchedule": true,
                   "participants": [{"email": "carol@customer.example"}]}),
        )),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let o = sync_now(&daemon).await;
    assert_eq!(o["runsFailed"], 0, "{o}");
    let demo: Vec<Value> = google
        .live_events(ACCOUNT)
        .into_iter()
        .filter(|e| e["summary"] == "Demo")
        .collect();
    assert_eq!(demo.len(), 1);
    assert_eq!(demo[0]["attendees"][0]["email"], "carol@customer.example");
    let writes = google.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].method, "POST");
    assert_eq!(writes[0].send_updates.as_deref(), Some("externalOnly"));

    // Nothing new: a run writes nothing and imports nothing new.
    let o = sync_now(&daemon).await;
    assert_eq!(o["runsFailed"], 0, "{o}");
    assert_eq!(google.writes().len(), 1);
    assert_eq!(activities(&daemon).await.len(), list.len() + 1);

    // Changed on both sides since the last run (conflict: newest): the later change, made in
    // Google, wins on both sides.
    let demo_id = demo[0]["id"].as_str().expect("event id").to_owned();
    let patched = request(
        &daemon,
        Method::PATCH,
        &format!(
            "/api/v1/activities/{}",
            made.body["id"].as_str().expect("activity id")
        ),
        ROOT,
        &[],
        Some(("application/json", json!({"title": "Demo (here)"}))),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    // Not a wait: Google's `updated` has millisecond resolution, so the two changes get
    // distinct times.
    tokio::time::sleep(Duration::from_millis(20)).await;
    google.edit_event(ACCOUNT, &demo_id, |e| e["summary"] = json!("Demo (there)"));
    let o = sync_now(&daemon).await;
    assert_eq!(o["runsFailed"], 0, "{o}");
    let now = activities(&daemon).await;
    assert_eq!(titled(&now, "Demo (there)").len(), 1, "{now:?}");
    assert!(titled(&now, "Demo (here)").is_empty());
    assert_eq!(
        google.event(ACCOUNT, &demo_id).expect("event")["summary"],
        "Demo (there)"
    );
    assert!(
        o["sync"]["conflictsTotal"].as_u64().unwrap_or(0) >= 1,
        "the conflict is counted: {o}"
    );
    let list_len = now.len();

    // AS-03: someone else's meeting, changed here, is not changed in Google (only the
    // organizer's changes propagate), and the run goes on.
    let partner = titled(&now, "Partner sync");
    assert_eq!(partner.len(), 1);
    assert_eq!(partner[0]["organizer"]["email"], "dave@partner.example");
    let writes_before = google.writes().len();
    let patched = request(
        &daemon,
        Method::PATCH,
        &format!(
            "/api/v1/activities/{}",
            partner[0]["id"].as_str().expect("activity id")
        ),
        ROOT,
        &[],
        Some(("application/json", json!({"location": "Room 7"}))),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let o = sync_now(&daemon).await;
    assert_eq!(o["runsFailed"], 0, "{o}");
    assert_eq!(google.writes().len(), writes_before);
    assert!(google.event(ACCOUNT, &invitation).expect("event")["location"].is_null());

    // The sync token expired: the calendar is listed again, nothing doubles.
    google.expire_sync_tokens();
    let o = sync_now(&daemon).await;
    assert_eq!(o["runsFailed"], 0, "{o}");
    assert!(google.gone() >= 1);
    let after = activities(&daemon).await;
    assert_eq!(titled(&after, "Quarterly review").len(), 1);
    assert_eq!(titled(&after, "Demo (there)").len(), 1);
    assert_eq!(after.len(), list_len);

    // Deleted in Google (deletes: keep): the activity stays here, unlinked; nothing is sent.
    let writes_before = google.writes().len();
    google.cancel_event(ACCOUNT, &gone_later);
    let o = sync_now(&daemon).await;
    assert_eq!(o["runsFailed"], 0, "{o}");
    assert_eq!(titled(&activities(&daemon).await, "Dentist").len(), 1);
    assert_eq!(google.writes().len(), writes_before);

    // 429: the run ends throttled; the data stays.
    google.throttle(1);
    let o = sync_now(&daemon).await;
    assert_eq!(google.throttled(), 1);
    assert!(
        o.to_string().to_lowercase().contains("throttl"),
        "the run says it was throttled: {o}"
    );
    assert_eq!(
        titled(&activities(&daemon).await, "Quarterly review").len(),
        1
    );
    assert!(!daemon.stderr().contains(REFRESH), "no secret in the log");
}
