//! A contact sync under trouble, with the real daemon and a real Radicale: `kill -9` in the
//! middle of a 2,000-card first import and in the middle of an export, then a restart on the
//! same state file; and a connection reset during a `PUT` (through the fault proxy of
//! tests/support/faults.rs), retried with backoff. Each test has its own Radicale user.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use switchboard::store::Store;
use switchboard::store::records::{ContactQuery, RecordKind};

use support::faults::{Fault, FaultProxy};
use support::radicale::{contact_sync_manifest, radicale};
use support::{Daemon, eventually_within, free_port};

const PASSWORD: &str = "dav-fault-Pa55-k2";
const CARDS: usize = 2000;
/// The longest wait for a run: the binary's one Radicale serialises its writes, and the
/// 2,000-card test's seeding holds it for tens of seconds on a busy machine.
const RUN_LIMIT: Duration = Duration::from_secs(180);

fn card(uid: &str, i: usize) -> String {
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:Person {i}\r\nN:{i};Person;;;\r\nEMAIL:p{i}@example.org\r\nEND:VCARD\r\n"
    )
}

/// `(contacts, links of ContactSync/book, distinct linked hrefs)` in the state file.
fn stored(state: &Path) -> (usize, usize, usize) {
    let store = Store::open_read_only(state).expect("read the state file");
    let (_, contacts) = store
        .contacts(&ContactQuery {
            limit: 1,
            ..ContactQuery::default()
        })
        .expect("contacts");
    let links = store
        .sync_links("ContactSync/book", RecordKind::Contact)
        .expect("links");
    let hrefs: HashSet<&str> = links.iter().map(|(_, h)| h.as_str()).collect();
    (contacts, links.len(), hrefs.len())
}

/// The sync object's row of the objects view.
async fn book(daemon: &Daemon) -> serde_json::Value {
    let objects = daemon.objects().await;
    support::find(&objects, "ContactSync", "book")
        .cloned()
        .unwrap_or_default()
}

fn start(port: u16, files: &[(&str, String)], state: &Path) -> Daemon {
    let env = [("SB_TEST_SECRET", "unused"), ("SB_DAV_PASSWORD", PASSWORD)];
    Daemon::start_with_state_at(port, files, &env, state)
}

async fn request_sync(daemon: &Daemon) {
    let queued = daemon
        .post(
            "/api/v1/objects/ContactSync/book/sync",
            Some(support::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(queued.status(), 202);
}

fn kill9(daemon: &mut Daemon) {
    daemon.signal("KILL");
    assert!(
        daemon.wait_exit(Duration::from_secs(10)).is_some(),
        "the daemon is gone after SIGKILL"
    );
}

#[tokio::test]
async fn kill_9_in_a_2000_card_first_sync_then_restart_loses_and_doubles_nothing() {
    // REQ: BX-01 (crash safety: the checkpoint and the records it covers commit together)
    // REQ: CS-04
    let user = "dav-crash-pull";
    let cards: Vec<String> = (0..CARDS).map(|i| card(&format!("c{i:05}"), i)).collect();
    let seeded = Instant::now();
    let book_url = radicale().user_with_cards(user, PASSWORD, &cards).await;
    eprintln!(
        "seeding {CARDS} cards into Radicale took {:.1} s",
        seeded.elapsed().as_secs_f64()
    );
    let state_dir = tempfile::tempdir().expect("tempdir");
    let state = state_dir.path().join("state.db");
    let port = free_port();
    // Paced, so the kill lands part way however fast the machine: every multiget answer of
    // the first daemon's run reaches it a chunk at a time, 150 ms apart.
    let proxy = FaultProxy::start(radicale().port).await;
    proxy.arm_every(
        b"addressbook-multiget",
        Fault::Delay(Duration::from_millis(150)),
    );
    let mut files = support::base_config(port);
    files.push(support::records::admin_file());
    files.push(contact_sync_manifest(
        &format!("http://127.0.0.1:{}", proxy.port()),
        user,
        "",
    ));

    let mut daemon = start(port, &files, &state);
    daemon.wait_ready().await;
    request_sync(&daemon).await;
    // Part way: the objects view shows how far the first sync got.
    eventually_within(
        "the first sync is part way (progress in the objects view)",
        RUN_LIMIT,
        &daemon,
        || async {
            let o = book(&daemon).await;
            let done = o["sync"]["progress"]["done"].as_u64().unwrap_or(0);
            o["state"] == "syncing" && o["sync"]["progress"]["known"] == CARDS && done >= 300
        },
    )
    .await;
    kill9(&mut daemon);
    let (at_kill, links, _) = stored(&state);
    assert!(
        (300..CARDS).contains(&at_kill),
        "killed part way: {at_kill} of {CARDS} contacts stored"
    );
    assert_eq!(links, at_kill, "every stored contact is linked, no more");
    proxy.disarm();

    let mut daemon = start(port, &files, &state);
    daemon.wait_ready().await;
    let o = book(&daemon).await;
    assert_eq!(o["state"], "pending", "not shown as still syncing: {o}");
    assert!(
        o["reason"]
            .as_str()
            .is_some_and(|r| r.contains("interrupted")),
        "{o}"
    );
    assert!(o["sync"]["progress"].is_null(), "{o}");
    request_sync(&daemon).await;
    eventually_within(
        "the sync finishes after the restart",
        RUN_LIMIT,
        &daemon,
        || async {
            let o = book(&daemon).await;
            o["state"] == "ready" && o["runsOk"] == 1
        },
    )
    .await;
    let o = book(&daemon).await;
    assert_eq!(
        o["sync"]["lastRun"]["itemsIn"].as_u64(),
        Some((CARDS - at_kill) as u64),
        "the second run read only what the first did not store: {o}"
    );
    assert_eq!(
        stored(&state),
        (CARDS, CARDS, CARDS),
        "no contact lost or doubled"
    );
    let uids = radicale().uids_on_disk(user, "contacts");
    let distinct: BTreeSet<&String> = uids.iter().collect();
    assert_eq!(
        (uids.len(), distinct.len()),
        (CARDS, CARDS),
        "the server still holds each card once"
    );
    assert_eq!(
        radicale().items(user, PASSWORD, &book_url).await.len(),
        CARDS
    );
}

#[tokio::test]
async fn kill_9_during_an_export_then_restart_makes_no_second_card() {
    // REQ: BX-01 (items Switchboard creates carry a stable UID: a crash between PUT and
    // checkpoint does not make a second copy)
    const MADE: usize = 150;
    let user = "dav-crash-push";
    radicale().user_with_addressbook(user, PASSWORD).await;
    let state_dir = tempfile::tempdir().expect("tempdir");
    let state = state_dir.path().join("state.db");
    let port = free_port();
    let mut files = support::base_config(port);
    files.push(support::records::admin_file());
    files.push(contact_sync_manifest(&radicale().base(), user, ""));

    let mut daemon = start(port, &files, &state);
    daemon.wait_ready().await;
    for i in 0..MADE {
        let created = support::records::request(
            &daemon,
            Method::POST,
            "/api/v1/contacts",
            support::records::ROOT,
            &[],
            Some((
                "application/json",
                json!({"name": format!("Made {i}"), "emails": [format!("made{i}@example.org")]}),
            )),
        )
        .await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    request_sync(&daemon).await;
    eventually_within("the export is part way", RUN_LIMIT, &daemon, || async {
        radicale().puts_by(user) >= 20
    })
    .await;
    kill9(&mut daemon);
    let at_kill = radicale().uids_on_disk(user, "contacts").len();
    assert!(
        at_kill < MADE,
        "killed part way: {at_kill} of {MADE} cards written"
    );

    let mut daemon = start(port, &files, &state);
    daemon.wait_ready().await;
    request_sync(&daemon).await;
    eventually_within(
        "the export finishes after the restart",
        RUN_LIMIT,
        &daemon,
        || async {
            let o = book(&daemon).await;
            o["state"] == "ready" && o["runsOk"] == 1
        },
    )
    .await;
    let uids = radicale().uids_on_disk(user, "contacts");
    let distinct: BTreeSet<&String> = uids.iter().collect();
    assert_eq!(
        (uids.len(), distinct.len()),
        (MADE, MADE),
        "each contact is on the server once: {uids:?}"
    );
    assert_eq!(
        stored(&state),
        (MADE, MADE, MADE),
        "each contact linked once"
    );
}

/// A connection reset where Radicale should have received the request.
const PUT_LINE: &[u8] = b"PUT /";

#[tokio::test]
async fn a_reset_during_a_put_is_retried_with_backoff_and_the_card_exists_once() {
    // REQ: BX-01 (a DAV server that resets during a PUT: retried with backoff, nothing lost
    // or doubled, the object's status says what happened)
    let user = "dav-reset";
    let book_url = radicale().user_with_addressbook(user, PASSWORD).await;
    let proxy = FaultProxy::start(radicale().port).await;
    let state_dir = tempfile::tempdir().expect("tempdir");
    let state = state_dir.path().join("state.db");
    let port = free_port();
    let mut files = support::base_config(port);
    files.push(support::records::admin_file());
    // A schedule far away: the retry comes from the scheduler's backoff, not from the cron.
    files.push(contact_sync_manifest(
        &format!("http://127.0.0.1:{}", proxy.port()),
        user,
        "  schedule: \"0 0 1 1 *\"\n",
    ));
    let mut daemon = start(port, &files, &state);
    daemon.wait_ready().await;

    let make = |i: usize| {
        let daemon = &daemon;
        async move {
            let created = support::records::request(
                daemon,
                Method::POST,
                "/api/v1/contacts",
                support::records::ROOT,
                &[],
                Some((
                    "application/json",
                    json!({"name": format!("Reset {i}"), "emails": [format!("reset{i}@example.org")]}),
                )),
            )
            .await;
            assert_eq!(created.status, 201, "{}", created.body);
        }
    };
    make(0).await;
    proxy.arm(PUT_LINE, Fault::Reset);
    request_sync(&daemon).await;
    eventually_within(
        "the reset fails the run and the status says so",
        RUN_LIMIT,
        &daemon,
        || async {
            let o = book(&daemon).await;
            o["state"] == "error"
                && o["sync"]["currentError"]
                    .as_str()
                    .is_some_and(|e| e.contains("PUT"))
        },
    )
    .await;
    assert_eq!(proxy.taken(), 1);
    // No request: the scheduler retries after its backoff (8 to 12 s).
    eventually_within(
        "the retry succeeds and clears the current error",
        RUN_LIMIT,
        &daemon,
        || async {
            let o = book(&daemon).await;
            o["state"] == "ready" && o["sync"]["currentError"].is_null()
        },
    )
    .await;
    let o = book(&daemon).await;
    assert!(
        o["lastError"].as_str().is_some_and(|e| e.contains("PUT")),
        "the error stays as history: {o}"
    );
    assert_eq!(o["runsFailed"], 1, "{o}");
    assert!(!o.to_string().contains(PASSWORD));
    assert_eq!(radicale().uids_on_disk(user, "contacts").len(), 1);
    assert_eq!(stored(&state), (1, 1, 1), "linked once");

    // Memory over repeated fault rounds (the retry asked for at once, not after backoff).
    let mut rss = Vec::new();
    for round in 1..=24 {
        make(round).await;
        proxy.arm(PUT_LINE, Fault::Reset);
        request_sync(&daemon).await;
        eventually_within("the round's reset", RUN_LIMIT, &daemon, || async {
            book(&daemon).await["state"] == "error"
        })
        .await;
        request_sync(&daemon).await;
        eventually_within("the round's retry", RUN_LIMIT, &daemon, || async {
            book(&daemon).await["state"] == "ready"
        })
        .await;
        if round == 4 || round == 24 {
            rss.push(support::rss_kib(daemon.child.id()));
        }
    }
    assert_eq!(proxy.taken(), 25);
    let uids = radicale().uids_on_disk(user, "contacts");
    let distinct: BTreeSet<&String> = uids.iter().collect();
    assert_eq!((uids.len(), distinct.len()), (25, 25), "each card once");
    assert_eq!(stored(&state), (25, 25, 25));
    assert_eq!(radicale().items(user, PASSWORD, &book_url).await.len(), 25);
    assert!(
        rss[1] <= rss[0] + 4 * 1024,
        "the daemon's memory grew over 20 fault rounds: {} KiB -> {} KiB",
        rss[0],
        rss[1]
    );
}
