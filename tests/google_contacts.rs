//! A Google `ContactSync`: the contact engine (src/sync/contacts.rs) over `PeopleRemote`
//! against the People API fake (tests/support/people_fake.rs), in process — the first run
//! creates the contact group and exports only tagged contacts (CS-03), a person moved into the
//! group is imported with the tag, a no-change run moves nothing, edits on both sides resolve
//! by the policy and a stale etag loses no write (CS-04), deletes are not propagated (CS-05),
//! an expired sync token lists again without duplicates, a 429 fails the run Throttled and the
//! next one succeeds, a refused access token is refreshed. And through the real daemon, with a
//! GoogleAccount whose grant the OAuth fake (tests/support/oauth_fake.rs) refreshes: export,
//! import, a 401 refreshed, a 429 retried by the scheduler, no secret in objects, metrics,
//! status or logs.

#[path = "support/oauth_fake.rs"]
mod oauth_fake;
#[path = "support/people_fake.rs"]
mod people_fake;
mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use switchboard::clock::Clock;
use switchboard::config::kinds::ContactSyncSpec;
use switchboard::config::{ConfigSet, Kind};
use switchboard::connector::{Connector, ConnectorError, SyncContext, SyncReport, resolve_secrets};
use switchboard::engine::apply::changes;
use switchboard::store::records::{Contact, ContactChanges, ContactQuery};
use switchboard::store::{Store, StoreHandle};
use switchboard::sync::ContactSyncConnector;
use switchboard::sync::google::people::PeopleRemote;
use switchboard::sync::remote::{RemoteFuture, TokenProvider};
use switchboard::telemetry::Metrics;
use tokio_util::sync::CancellationToken;

use people_fake::PeopleFake;

const TAG: &str = "google";
const GROUP: &str = "Creatio";

/// Hands out the fake's current token; a fresh one when asked.
struct FakeTokens {
    fake: PeopleFake,
    cached: Mutex<Option<String>>,
    fresh: AtomicU32,
}

impl TokenProvider for FakeTokens {
    fn token<'a>(&'a self, _ctx: &'a SyncContext<'a>, fresh: bool) -> RemoteFuture<'a, String> {
        Box::pin(async move {
            let mut cached = self.cached.lock().expect("cache");
            if fresh {
                self.fresh.fetch_add(1, Ordering::Relaxed);
            }
            if cached.is_none() || fresh {
                *cached = Some(self.fake.token());
            }
            Ok(cached.clone().expect("a token"))
        })
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    set: ConfigSet,
    store: StoreHandle,
    metrics: Metrics,
    fake: PeopleFake,
    tokens: Arc<FakeTokens>,
    connector: ContactSyncConnector,
}

async fn rig(conflict: &str) -> Rig {
    let fake = PeopleFake::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    std::fs::write(
        config.join("google-refresh.txt"),
        "1//refresh-not-used-here",
    )
    .expect("token");
    std::fs::write(
        config.join("google.yaml"),
        format!(
            "apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: owner}}\nspec: {{displayName: Owner, email: owner@example.com}}\n---\n\
             apiVersion: switchboard/v1\nkind: Settings\nmetadata: {{name: default}}\nspec:\n  siteUrl: https://sb.example\n  google: {{clientId: app, clientSecret: {{file: google-refresh.txt}}}}\n---\n\
             apiVersion: switchboard/v1\nkind: GoogleAccount\nmetadata: {{name: gmail}}\nspec:\n  user: owner\n  email: owner@gmail.example\n  refreshToken: {{file: google-refresh.txt}}\n---\n\
             apiVersion: switchboard/v1\nkind: ContactSync\nmetadata: {{name: google}}\nspec:\n  account: gmail\n  import: {{enabled: true}}\n  export: {{enabled: true}}\n  google: {{tag: {TAG}, group: {GROUP}}}\n{conflict}",
        ),
    )
    .expect("manifest");
    let set = switchboard::config::load(&[config])
        .into_result()
        .unwrap_or_else(|d| panic!("valid config: {d:?}"));
    let mut store = Store::open(&dir.path().join("state.db")).expect("store");
    store.apply(&changes(&set, &[]), Utc::now()).expect("apply");
    let tokens = Arc::new(FakeTokens {
        fake: fake.clone(),
        cached: Mutex::new(None),
        fresh: AtomicU32::new(0),
    });
    let object = set.object(Kind::ContactSync, "google").expect("object");
    let spec = set.get::<ContactSyncSpec>("google").expect("spec");
    let remote = Arc::new(PeopleRemote::new(&fake.base, tokens.clone(), GROUP));
    let connector = ContactSyncConnector::with_remote(object, spec, &set, remote);
    Rig {
        _dir: dir,
        set,
        store: StoreHandle::new(store),
        metrics: Metrics::new(),
        fake,
        tokens,
        connector,
    }
}

impl Rig {
    async fn try_sync(&self) -> Result<SyncReport, ConnectorError> {
        let object = self
            .set
            .object(Kind::ContactSync, "google")
            .expect("object");
        let secrets = resolve_secrets(object).expect("secrets");
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

    async fn contact_with(&self, email: &str) -> Option<Contact> {
        let email = email.to_owned();
        self.contacts()
            .await
            .into_iter()
            .find(|c| c.emails.contains(&email))
    }

    async fn create_local(&self, name: &str, email: &str, tags: &[&str]) -> i64 {
        let changes = ContactChanges {
            name: Some(Some(name.into())),
            emails: Some(vec![email.into()]),
            tags: Some(tags.iter().map(|t| t.to_string()).collect()),
            ..ContactChanges::default()
        };
        self.store
            .call(move |s| {
                Ok(s.create_contact(&changes, "User/owner", Utc::now())
                    .expect("create contact")
                    .id)
            })
            .await
            .expect("store")
    }

    async fn update_local(&self, id: i64, changes: ContactChanges) {
        self.store
            .call(move |s| {
                s.update_contact(id, None, &changes, "User/owner", Utc::now())
                    .expect("update contact");
                Ok(())
            })
            .await
            .expect("store");
    }

    async fn delete_local(&self, id: i64) {
        self.store
            .call(move |s| {
                s.delete_contact(id, None, "User/owner", Utc::now())
                    .expect("delete contact");
                Ok(())
            })
            .await
            .expect("store");
    }

    /// The group member whose first e-mail is `email`.
    fn member_with(&self, email: &str) -> Option<String> {
        self.fake.members(GROUP).into_iter().find(|id| {
            self.fake
                .person(id)
                .is_some_and(|p| p["emailAddresses"][0]["value"] == email)
        })
    }

    /// Requests the fake saw from `before` on.
    fn requests_since(&self, before: usize) -> Vec<String> {
        self.fake.log()[before..].to_vec()
    }
}

// REQ: CS-03
#[tokio::test]
async fn the_first_run_creates_the_group_and_exports_only_tagged_contacts() {
    let rig = rig("").await;
    rig.create_local("Ann Tagged", "ann@example.com", &[TAG])
        .await;
    rig.create_local("Bob Plain", "bob@example.com", &["vip"])
        .await;
    let report = rig.sync().await;
    assert_eq!(report.items_out, 1, "{report:?}");
    assert!(rig.fake.group_id(GROUP).is_some(), "the group was created");
    let members = rig.fake.members(GROUP);
    assert_eq!(members.len(), 1);
    let ann = rig.fake.person(&members[0]).expect("person");
    assert_eq!(ann["names"][0]["displayName"], "Ann Tagged");
    assert_eq!(ann["externalIds"][0]["type"], "switchboard");
    assert_eq!(
        rig.fake.persons().len(),
        1,
        "the untagged contact stays here"
    );

    // REQ: CS-04 (a no-change run moves nothing: one listing request)
    let before = rig.fake.log().len();
    assert_eq!(rig.sync().await, SyncReport::default());
    let requests = rig.requests_since(before);
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].starts_with("GET /v1/people/me/connections?"));
    assert!(requests[0].contains("syncToken="), "{requests:?}");
    assert_eq!(rig.fake.creates(), 1);
}

// REQ: CS-03
#[tokio::test]
async fn a_person_moved_into_the_group_is_imported_with_the_tag() {
    let rig = rig("").await;
    rig.sync().await;
    let cy = rig.fake.add("Cy Outside", &["cy@example.com"], &[]);
    assert_eq!(
        rig.sync().await,
        SyncReport::default(),
        "outside the group: not ours"
    );
    assert!(rig.contact_with("cy@example.com").await.is_none());

    rig.fake.move_into(&cy, GROUP);
    let report = rig.sync().await;
    assert_eq!(report.items_in, 1, "{report:?}");
    assert_eq!(report.items_out, 0, "not echoed back");
    let contact = rig.contact_with("cy@example.com").await.expect("imported");
    assert_eq!(contact.name.as_deref(), Some("Cy Outside"));
    assert!(contact.tags.contains(&TAG.to_owned()), "{:?}", contact.tags);
    assert_eq!(
        rig.sync().await,
        SyncReport::default(),
        "nothing moves after"
    );
    assert_eq!(rig.fake.creates(), 0);
}

// REQ: CS-04
#[tokio::test]
async fn edits_on_both_sides_resolve_by_the_policy_and_a_stale_etag_loses_no_write() {
    let rig = rig("").await;
    let id = rig
        .create_local("Ann Both", "ann@example.com", &[TAG])
        .await;
    rig.sync().await;
    let person = rig.member_with("ann@example.com").expect("exported");

    // Our change meets a user's edit made between our read and our write: a stale etag.
    rig.update_local(
        id,
        ContactChanges {
            job_title: Some(Some("Buyer".into())),
            ..ContactChanges::default()
        },
    )
    .await;
    rig.fake.edit_before_next_update(
        &person,
        json!({"biographies": [{"value": "met at the fair", "contentType": "TEXT_PLAIN"}]}),
    );
    rig.sync().await;
    assert_eq!(rig.fake.stale(), 1, "the first write met the stale etag");
    let p = rig.fake.person(&person).expect("person");
    assert_eq!(p["organizations"][0]["title"], "Buyer", "our write landed");
    assert_eq!(
        p["biographies"][0]["value"], "met at the fair",
        "the user's edit stayed"
    );

    // Both change the name: with `newest`, the later change wins — here the one in Google.
    rig.update_local(
        id,
        ContactChanges {
            name: Some(Some("Ann Here".into())),
            ..ContactChanges::default()
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await; // two distinct change times
    rig.fake.edit(&person, |p| {
        p["names"] = json!([{"givenName": "Ann", "familyName": "There"}])
    });
    rig.sync().await;
    let contact = rig.contact_with("ann@example.com").await.expect("contact");
    assert_eq!(contact.name.as_deref(), Some("Ann There"));
    assert_eq!(rig.fake.name_of(&person).as_deref(), Some("Ann There"));

    // And the other way round: the later change here wins.
    rig.fake.edit(&person, |p| {
        p["names"] = json!([{"givenName": "Ann", "familyName": "Google"}])
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    rig.update_local(
        id,
        ContactChanges {
            name: Some(Some("Ann Switchboard".into())),
            ..ContactChanges::default()
        },
    )
    .await;
    rig.sync().await;
    let contact = rig.contact_with("ann@example.com").await.expect("contact");
    assert_eq!(contact.name.as_deref(), Some("Ann Switchboard"));
    assert_eq!(
        rig.fake.name_of(&person).as_deref(),
        Some("Ann Switchboard")
    );
    assert_eq!(rig.fake.persons().len(), 1);
}

// REQ: CS-05
#[tokio::test]
async fn deletes_are_not_propagated_a_person_deleted_there_loses_the_tag_here() {
    let rig = rig("").await;
    rig.create_local("Ann Gone There", "ann@example.com", &[TAG, "vip"])
        .await;
    let bob = rig
        .create_local("Bob Gone Here", "bob@example.com", &[TAG])
        .await;
    let cy = rig
        .create_local("Cy Untagged", "cy@example.com", &[TAG])
        .await;
    rig.sync().await;
    let ann_person = rig.member_with("ann@example.com").expect("ann");
    let bob_person = rig.member_with("bob@example.com").expect("bob");
    let cy_person = rig.member_with("cy@example.com").expect("cy");

    // Deleted in Google: the contact stays here without the tag.
    rig.fake.delete(&ann_person);
    rig.sync().await;
    let ann = rig
        .contact_with("ann@example.com")
        .await
        .expect("kept here");
    assert_eq!(ann.tags, ["vip"]);
    // Taken out of the group in Google: the same.
    rig.create_local("Dee Moved Out", "dee@example.com", &[TAG])
        .await;
    rig.sync().await;
    let dee_person = rig.member_with("dee@example.com").expect("dee");
    rig.fake.move_out(&dee_person, GROUP);
    rig.sync().await;
    let dee = rig
        .contact_with("dee@example.com")
        .await
        .expect("kept here");
    assert!(dee.tags.is_empty(), "{:?}", dee.tags);
    assert!(rig.fake.person(&dee_person).is_some());

    // Deleted here, untagged here: the persons leave the group, and stay in Google.
    rig.delete_local(bob).await;
    rig.update_local(
        cy,
        ContactChanges {
            tags: Some(vec![]),
            ..ContactChanges::default()
        },
    )
    .await;
    rig.sync().await;
    let members = rig.fake.members(GROUP);
    assert!(
        !members.contains(&bob_person) && !members.contains(&cy_person),
        "{members:?}"
    );
    assert!(
        rig.fake.person(&bob_person).is_some(),
        "not deleted in Google"
    );
    assert!(rig.fake.person(&cy_person).is_some());

    // Nothing comes back on the next runs.
    assert_eq!(rig.sync().await, SyncReport::default());
    assert!(rig.contact_with("bob@example.com").await.is_none());
    assert_eq!(rig.fake.creates(), 4);
}

// REQ: CS-04
#[tokio::test]
async fn an_expired_sync_token_lists_again_without_duplicates() {
    let rig = rig("").await;
    rig.fake.set_page_size(2);
    for i in 0..3 {
        rig.create_local(
            &format!("Local {i}"),
            &format!("local{i}@example.com"),
            &[TAG],
        )
        .await;
    }
    let remote_only = rig.fake.create_group("unused");
    let _ = remote_only;
    rig.sync().await;
    // Two persons the user put into the group.
    rig.fake.add("Remote One", &["r1@example.com"], &[GROUP]);
    rig.fake.add("Remote Two", &["r2@example.com"], &[GROUP]);
    rig.sync().await;
    assert_eq!(rig.contacts().await.len(), 5);

    rig.fake.expire_sync_tokens();
    let report = rig.sync().await;
    assert_eq!(rig.fake.expired(), 1, "the old token was refused");
    assert_eq!(report.items_out, 0, "{report:?}");
    assert_eq!(rig.contacts().await.len(), 5, "no duplicates here");
    assert_eq!(rig.fake.members(GROUP).len(), 5, "none there");
    assert_eq!(rig.fake.creates(), 3);
    assert_eq!(rig.sync().await, SyncReport::default());
}

#[tokio::test]
async fn a_429_fails_the_run_throttled_and_the_next_run_succeeds() {
    let rig = rig("").await;
    rig.sync().await;
    rig.create_local("Ann Later", "ann@example.com", &[TAG])
        .await;
    rig.fake.set_retry_after(3);
    rig.fake.throttle(1);
    match rig.try_sync().await {
        Err(ConnectorError::Throttled { retry_after, .. }) => {
            assert_eq!(retry_after, Duration::from_secs(3))
        }
        other => panic!("throttled, not {other:?}"),
    }
    assert_eq!(rig.sync().await.items_out, 1);
    assert!(rig.member_with("ann@example.com").is_some());
}

#[tokio::test]
async fn a_listing_throttled_mid_way_resumes_from_its_page_without_duplicates() {
    let rig = rig("").await;
    rig.sync().await;
    rig.fake.set_page_size(2);
    let mut added = Vec::new();
    for i in 0..5 {
        added.push(rig.fake.add(
            &format!("Paged {i}"),
            &[&format!("paged{i}@example.com")],
            &[GROUP],
        ));
    }
    // The delta's first page passes, the second is throttled.
    rig.fake.throttle_after(1, 1);
    match rig.try_sync().await {
        Err(ConnectorError::Throttled { .. }) => {}
        other => panic!("throttled, not {other:?}"),
    }
    assert_eq!(rig.contacts().await.len(), 2, "the first page is in");
    let before = rig.fake.log().len();
    let report = rig.sync().await;
    assert_eq!(report.items_in, 3, "{report:?}");
    let resumed = &rig.requests_since(before)[0];
    assert!(
        resumed.contains("pageToken=") && resumed.contains("syncToken="),
        "{resumed}"
    );
    assert_eq!(rig.contacts().await.len(), 5, "each once");
    assert_eq!(rig.fake.creates(), 0, "nothing echoed back");
}

#[tokio::test]
async fn a_refused_access_token_is_refreshed_once() {
    let rig = rig("").await;
    rig.sync().await;
    rig.fake.expire_tokens();
    rig.create_local("Ann Token", "ann@example.com", &[TAG])
        .await;
    assert_eq!(rig.sync().await.items_out, 1);
    assert_eq!(rig.tokens.fresh.load(Ordering::Relaxed), 1);
    assert_eq!(rig.fake.unauthorized(), 1);
}

const CLIENT_ID: &str = "switchboard-people.apps.example";
const CLIENT_SECRET: &str = "google-client-s3cret-9d";
const REFRESH: &str = "1//google-refresh-7Qx";

// REQ: CS-03, CS-04
#[tokio::test]
async fn the_daemon_syncs_a_google_account_refreshes_its_token_honours_429_and_shows_no_secret() {
    let oauth =
        oauth_fake::OAuthFake::start(CLIENT_ID, CLIENT_SECRET, Duration::from_secs(3600)).await;
    oauth.allow(REFRESH, "root@gmail.example");
    let people = PeopleFake::start().await;
    people.accept_any_token();
    let port = support::free_port();
    let mut files = support::with_settings(
        &support::base_config(port),
        &format!(
            "  google:\n    clientId: {CLIENT_ID}\n    clientSecret: {{env: SB_GOOGLE_CLIENT_SECRET}}\n    tokenUrl: {}/token\n",
            oauth.base
        ),
    );
    files.push(support::records::admin_file());
    files.push((
        "google.yaml",
        format!(
            "apiVersion: switchboard/v1\nkind: GoogleAccount\nmetadata: {{name: gmail}}\nspec:\n  user: root\n  email: root@gmail.example\n  refreshToken: {{env: SB_GOOGLE_REFRESH}}\n  apiBaseUrl: {}\n---\n\
             apiVersion: switchboard/v1\nkind: ContactSync\nmetadata: {{name: google}}\nspec:\n  account: gmail\n  import: {{enabled: true}}\n  export: {{enabled: true}}\n  google: {{tag: {TAG}, group: {GROUP}}}\n",
            people.base
        ),
    ));
    let env = [
        ("SB_TEST_SECRET", "unused"),
        ("SB_GOOGLE_CLIENT_SECRET", CLIENT_SECRET),
        ("SB_GOOGLE_REFRESH", REFRESH),
    ];
    let mut daemon = support::Daemon::start(port, &files, &env);
    daemon.wait_ready().await;

    let create = |name: &'static str, email: &'static str| {
        let daemon = &daemon;
        async move {
            let created = support::records::request(
                daemon,
                reqwest::Method::POST,
                "/api/v1/contacts",
                support::records::ROOT,
                &[],
                Some((
                    "application/json",
                    json!({"name": name, "emails": [email], "tags": [TAG]}),
                )),
            )
            .await;
            assert_eq!(created.status, 201, "{}", created.body);
        }
    };
    let run = || {
        let daemon = &daemon;
        async move {
            let queued = daemon
                .post(
                    "/api/v1/objects/ContactSync/google/sync",
                    Some(support::ADMIN_TOKEN),
                )
                .await;
            assert_eq!(queued.status(), 202);
        }
    };
    let exported = |email: &'static str| {
        let people = people.clone();
        move || {
            let people = people.clone();
            async move {
                people.members(GROUP).iter().any(|id| {
                    people
                        .person(id)
                        .is_some_and(|p| p["emailAddresses"][0]["value"] == email)
                })
            }
        }
    };

    // The first run creates the group and exports the tagged contact (CS-03).
    create("Ann Daemon", "ann.daemon@example.com").await;
    run().await;
    support::eventually(
        "the contact reaches the Google group",
        &daemon,
        exported("ann.daemon@example.com"),
    )
    .await;
    // A person moved into the group in Google comes back with the tag.
    let cy = people.add("Cy Google", &["cy.google@example.com"], &[]);
    people.move_into(&cy, GROUP);
    run().await;
    support::eventually("the person is imported", &daemon, || async {
        let found = support::records::request(
            &daemon,
            reqwest::Method::GET,
            "/api/v1/contacts?q=cy.google",
            support::records::ROOT,
            &[],
            None,
        )
        .await;
        found.body.to_string().contains(&format!("\"{TAG}\""))
    })
    .await;

    // The access token expires at Google: the next run refreshes it once and goes on.
    let grants = oauth.grants();
    people.expire_tokens();
    create("Bob Refresh", "bob.refresh@example.com").await;
    run().await;
    support::eventually(
        "exported after a refresh",
        &daemon,
        exported("bob.refresh@example.com"),
    )
    .await;
    assert!(people.unauthorized() >= 1);
    assert_eq!(oauth.grants(), grants + 1, "one refresh");

    // A 429: the run fails Throttled and the scheduler runs it again after Retry-After.
    people.set_retry_after(1);
    people.throttle(1);
    create("Cleo Throttled", "cleo.throttled@example.com").await;
    run().await;
    support::eventually(
        "exported after the Retry-After",
        &daemon,
        exported("cleo.throttled@example.com"),
    )
    .await;
    assert_eq!(people.throttled(), 1);
    assert_eq!(people.creates(), 3, "no duplicates");
    support::eventually("the sync is recorded", &daemon, || async {
        let objects = daemon.objects().await;
        support::find(&objects, "ContactSync", "google")
            .is_some_and(|o| o["state"] == "ready" && !o["lastSuccessAt"].is_null())
    })
    .await;

    // No secret where an operator looks.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(daemon.config_dir())
        .arg("--state")
        .arg(daemon.dir.path().join("state.db"))
        .arg("status")
        .envs(env)
        .output()
        .expect("status");
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.contains("ContactSync"), "{status}");
    let places = [
        ("objects", daemon.objects().await.to_string()),
        ("metrics", daemon.metrics().await),
        ("status", status),
        ("logs", daemon.stderr()),
    ];
    let mut secrets = vec![CLIENT_SECRET.to_owned(), REFRESH.to_owned()];
    secrets.extend(people.tokens_seen());
    assert!(
        people.tokens_seen().iter().all(|t| oauth.active(t)),
        "every bearer came from the token endpoint"
    );
    for (place, text) in &places {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{place} shows a secret");
        }
    }
}
