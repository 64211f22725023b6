//! `PeopleRemote` (the People API side of a Google `ContactSync`) through its public API against
//! the People API fake (tests/support/people_fake.rs): the contact group found or created
//! (CS-03), listings with pages and sync tokens, deltas with deletes and group moves (CS-05),
//! an expired sync token, creates that a retry finds again, updates that keep what Switchboard
//! does not model and meet a stale etag as a conflict (CS-04), deletes and releases, 429 with
//! Retry-After, a refused access token refreshed once, and no token in any error.

#[path = "support/people_fake.rs"]
mod people_fake;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use switchboard::clock::Clock;
use switchboard::config::{ConfigSet, Kind};
use switchboard::connector::SyncContext;
use switchboard::store::{Store, StoreHandle};
use switchboard::sync::google::people::PeopleRemote;
use switchboard::sync::remote::{
    ContactRemote, Cursor, Folder, Listed, Next, Page, RemoteError, RemoteFuture, RemoteItem,
    TokenProvider, Write, Written,
};
use switchboard::sync::vcard::CardFields;
use switchboard::telemetry::Metrics;
use tokio_util::sync::CancellationToken;

use people_fake::{MY_CONTACTS, PeopleFake};

const GROUP: &str = "Creatio";

/// Hands out the fake's current token; a fresh one when asked.
struct FakeTokens {
    fake: PeopleFake,
    cached: Mutex<Option<String>>,
    fresh: AtomicU32,
    /// Never refresh (a revoked grant): always the first token.
    stuck: bool,
}

impl TokenProvider for FakeTokens {
    fn token<'a>(&'a self, _ctx: &'a SyncContext<'a>, fresh: bool) -> RemoteFuture<'a, String> {
        Box::pin(async move {
            let mut cached = self.cached.lock().expect("cache");
            if fresh {
                self.fresh.fetch_add(1, Ordering::Relaxed);
            }
            if cached.is_none() || (fresh && !self.stuck) {
                *cached = Some(self.fake.token());
            }
            Ok(cached.clone().expect("a token"))
        })
    }
}

/// A config object, a store and metrics for the contexts.
struct Rig {
    _dir: tempfile::TempDir,
    set: ConfigSet,
    store: StoreHandle,
    metrics: Metrics,
    secrets: BTreeMap<String, switchboard::config::types::Secret>,
    fake: PeopleFake,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    std::fs::write(
        config.join("user.yaml"),
        "apiVersion: switchboard/v1\nkind: User\nmetadata: {name: owner}\nspec: {displayName: Owner, email: owner@example.com}\n",
    )
    .expect("manifest");
    let set = switchboard::config::load(&[config])
        .into_result()
        .unwrap_or_else(|d| panic!("valid config: {d:?}"));
    Rig {
        _dir: dir,
        set,
        store: StoreHandle::new(Store::open_in_memory().expect("store")),
        metrics: Metrics::new(),
        secrets: BTreeMap::new(),
        fake: PeopleFake::start().await,
    }
}

impl Rig {
    fn ctx(&self) -> SyncContext<'_> {
        SyncContext {
            object: self.set.object(Kind::User, "owner").expect("user"),
            secrets: &self.secrets,
            cancel: CancellationToken::new(),
            store: &self.store,
            metrics: &self.metrics,
            clock: Clock::system(),
        }
    }

    fn tokens(&self, stuck: bool) -> Arc<FakeTokens> {
        Arc::new(FakeTokens {
            fake: self.fake.clone(),
            cached: Mutex::new(None),
            fresh: AtomicU32::new(0),
            stuck,
        })
    }

    fn remote(&self) -> PeopleRemote {
        PeopleRemote::new(&self.fake.base, self.tokens(false), GROUP)
    }
}

async fn folder(rig: &Rig, remote: &PeopleRemote) -> Folder {
    let folders = remote.folders(&rig.ctx()).await.expect("folders");
    assert_eq!(folders.len(), 1, "{folders:?}");
    folders.into_iter().next().expect("one")
}

/// Every page from `cursor`: items, removed ids, the final token, fullness.
async fn list_all(
    rig: &Rig,
    remote: &PeopleRemote,
    folder: &Folder,
    start: Option<&str>,
) -> Result<
    (
        Vec<RemoteItem<CardFields>>,
        Vec<String>,
        Option<String>,
        bool,
    ),
    RemoteError,
> {
    let ctx = rig.ctx();
    let mut items = Vec::new();
    let mut removed = Vec::new();
    let mut page_cursor: Option<String> = None;
    let mut full = None;
    loop {
        let cursor = match (&page_cursor, start) {
            (Some(p), _) => Cursor::Page(p),
            (None, Some(t)) => Cursor::Token(t),
            (None, None) => Cursor::Start,
        };
        let Page {
            items: page_items,
            removed: page_removed,
            next,
            full: page_full,
        } = remote.list(&ctx, folder, cursor).await?;
        assert!(
            full.is_none_or(|f| f == page_full),
            "every page of a listing says the same about fullness"
        );
        full = Some(page_full);
        for listed in page_items {
            match listed {
                Listed::Item(item) => items.push(item),
                Listed::Version { id, .. } => panic!("Google lists whole persons, not {id}"),
            }
        }
        removed.extend(page_removed);
        match next {
            Next::More(p) => page_cursor = Some(p),
            Next::Done(token) => return Ok((items, removed, token, full.expect("a page"))),
        }
    }
}

fn names(items: &[RemoteItem<CardFields>]) -> Vec<String> {
    let mut names: Vec<String> = items
        .iter()
        .map(|i| i.fields.name.clone().unwrap_or_default())
        .collect();
    names.sort();
    names
}

// REQ: CS-03
#[tokio::test]
async fn the_first_run_creates_the_contact_group_and_later_runs_find_it() {
    let rig = rig().await;
    assert_eq!(rig.fake.group_id(GROUP), None);
    let created = folder(&rig, &rig.remote()).await;
    assert_eq!(created.name, GROUP);
    assert_eq!(
        rig.fake.group_id(GROUP).as_deref(),
        Some(created.id.as_str())
    );

    // A later run (a new remote) finds it, through the pages of contactGroups.list.
    for i in 0..5 {
        rig.fake.create_group(&format!("Other {i}"));
    }
    rig.fake.set_page_size(2);
    let found = folder(&rig, &rig.remote()).await;
    assert_eq!(found, created);
    let creates = rig
        .fake
        .log()
        .iter()
        .filter(|l| l.starts_with("POST /v1/contactGroups"))
        .count();
    assert_eq!(creates, 1, "one group made: {:?}", rig.fake.log());
}

// REQ: CS-03, CS-04, CS-05
#[tokio::test]
async fn listings_cover_only_the_group_and_deltas_report_deletes_and_moves() {
    let rig = rig().await;
    let remote = rig.remote().with_page_size(2);
    let group = folder(&rig, &remote).await;
    let mut ids = Vec::new();
    for name in ["Ann One", "Bob Two", "Cy Three", "Di Four", "Ed Five"] {
        ids.push(rig.fake.add(
            name,
            &[&format!(
                "{}@example.com",
                name.to_lowercase().replace(' ', ".")
            )],
            &[GROUP],
        ));
    }
    let outside = rig.fake.add("Out Sider", &["out@example.com"], &[]);
    let later = rig.fake.add("Late Comer", &["late@example.com"], &[]);
    rig.fake.set_page_size(2);

    let (items, removed, token, full) = list_all(&rig, &remote, &group, None).await.expect("list");
    assert!(full, "no token: a full listing");
    assert!(removed.is_empty());
    assert_eq!(
        names(&items),
        ["Ann One", "Bob Two", "Cy Three", "Di Four", "Ed Five"],
        "only the group's persons"
    );
    assert_eq!(items[0].fields.emails, ["ann.one@example.com"]);
    let token = token.expect("a sync token on the last page");

    // Nothing changed: an empty delta.
    let (items, removed, same, full) = list_all(&rig, &remote, &group, Some(&token))
        .await
        .expect("delta");
    assert!(
        !full && items.is_empty() && removed.is_empty(),
        "{items:?} {removed:?}"
    );
    let token = same.expect("token");

    // As a user in Google would: edit one, delete one, take one out, move one in.
    rig.fake.edit(&ids[0], |p| {
        p["names"] = json!([{"givenName": "Ann", "familyName": "Renamed"}])
    });
    rig.fake.delete(&ids[1]);
    rig.fake.move_out(&ids[2], GROUP);
    rig.fake.move_into(&later, GROUP);
    rig.fake.edit(&outside, |p| {
        p["names"] = json!([{"givenName": "Still", "familyName": "Outside"}])
    });

    let (items, mut removed, next, full) = list_all(&rig, &remote, &group, Some(&token))
        .await
        .expect("delta");
    assert!(!full);
    assert_eq!(names(&items), ["Ann Renamed", "Late Comer"]);
    removed.sort();
    let mut expected = vec![ids[1].clone(), ids[2].clone(), outside.clone()];
    expected.sort();
    assert_eq!(
        removed, expected,
        "deleted, moved out, and an outsider the engine ignores"
    );
    assert_ne!(next, Some(token));
}

// REQ: CS-04
#[tokio::test]
async fn an_expired_sync_token_means_one_full_listing_without_duplicates() {
    let rig = rig().await;
    let remote = rig.remote();
    let group = folder(&rig, &remote).await;
    for name in ["Ann One", "Bob Two", "Cy Three"] {
        rig.fake.add(name, &[], &[GROUP]);
    }
    rig.fake.set_page_size(2);
    let (_, _, token, _) = list_all(&rig, &remote, &group, None).await.expect("list");
    let token = token.expect("token");
    rig.fake.expire_sync_tokens();
    match list_all(&rig, &remote, &group, Some(&token)).await {
        Err(RemoteError::TokenExpired) => {}
        other => panic!("an expired token is TokenExpired, not {other:?}"),
    }
    assert_eq!(rig.fake.expired(), 1);
    let (items, removed, token, full) =
        list_all(&rig, &remote, &group, None).await.expect("relist");
    assert!(full && removed.is_empty());
    assert_eq!(
        names(&items),
        ["Ann One", "Bob Two", "Cy Three"],
        "each once"
    );
    let (items, _, _, _) = list_all(&rig, &remote, &group, token.as_deref())
        .await
        .expect("delta from the new token");
    assert!(items.is_empty());
}

fn contact(name: &str, email: &str) -> CardFields {
    CardFields {
        name: Some(name.into()),
        emails: vec![email.into()],
        phones: vec!["+4930123456".into()],
        company: Some("Acme".into()),
        job_title: Some("Buyer".into()),
        ..CardFields::default()
    }
}

// REQ: CS-03
#[tokio::test]
async fn a_create_joins_the_group_and_a_retried_create_finds_it_again() {
    let rig = rig().await;
    let remote = rig.remote();
    let group = folder(&rig, &remote).await;
    let fields = contact("Grace Hopper", "grace@navy.example");
    let write = Write {
        folder: &group,
        current: None,
        fields: &fields,
        uid: "rec-1",
    };
    let item = match remote.write(&rig.ctx(), write).await.expect("create") {
        Written::Done(Some(item)) => item,
        other => panic!("created, not {other:?}"),
    };
    assert_eq!(item.fields.uid.as_deref(), Some("rec-1"));
    assert_eq!(item.fields.name.as_deref(), Some("Grace Hopper"));
    assert_eq!(item.fields.company.as_deref(), Some("Acme"));
    assert_eq!(rig.fake.members(GROUP), vec![item.id.clone()]);
    assert!(rig.fake.members("myContacts").contains(&item.id));
    assert_eq!(rig.fake.with_external_id("rec-1"), vec![item.id.clone()]);

    // The process crashed before the link was stored: a new remote (a new run) retries.
    for warm in [false, true] {
        let retry = rig.remote();
        let group = folder(&rig, &retry).await;
        if warm {
            // This run listed first: the person is known from the listing.
            list_all(&rig, &retry, &group, None).await.expect("list");
        }
        let write = Write {
            folder: &group,
            current: None,
            fields: &fields,
            uid: "rec-1",
        };
        match retry.write(&rig.ctx(), write).await.expect("retry") {
            Written::Exists(found) => assert_eq!(found.id, item.id),
            other => panic!("the earlier copy is found, not {other:?}"),
        }
    }
    assert_eq!(rig.fake.creates(), 1, "no second person");

    // A different record is created.
    let other = contact("Ada Lovelace", "ada@example.com");
    let write = Write {
        folder: &group,
        current: None,
        fields: &other,
        uid: "rec-2",
    };
    assert!(matches!(
        remote.write(&rig.ctx(), write).await.expect("create"),
        Written::Done(Some(_))
    ));
    assert_eq!(rig.fake.creates(), 2);
}

// REQ: CS-04
#[tokio::test]
async fn an_update_keeps_what_is_not_modelled_and_a_stale_etag_is_a_conflict() {
    let rig = rig().await;
    let remote = rig.remote();
    let group = folder(&rig, &remote).await;
    let id = rig.fake.add("Ann One", &["ann@example.com"], &[GROUP]);
    let (items, _, _, _) = list_all(&rig, &remote, &group, None).await.expect("list");
    let item = items.into_iter().next().expect("one");
    assert_eq!(remote.decode(&item.data), item.fields);

    let mut fields = item.fields.clone();
    fields.name = Some("Ann Updated".into());
    fields.emails.push("ann@home.example".into());
    let write = Write {
        folder: &group,
        current: Some(&item),
        fields: &fields,
        uid: "rec-ann",
    };
    let updated = match remote.write(&rig.ctx(), write).await.expect("update") {
        Written::Done(Some(updated)) => updated,
        other => panic!("updated, not {other:?}"),
    };
    assert_ne!(updated.version, item.version);
    let person = rig.fake.person(&id).expect("person");
    assert_eq!(rig.fake.name_of(&id).as_deref(), Some("Ann Updated"));
    assert_eq!(
        person["emailAddresses"],
        json!([{"value": "ann@example.com", "type": "work"}, {"value": "ann@home.example"}]),
        "the kept address keeps its type"
    );
    assert_eq!(
        person["biographies"],
        json!([{"value": "kept in Google", "contentType": "TEXT_PLAIN"}]),
        "a field Switchboard does not model is untouched"
    );
    assert!(rig.fake.members(GROUP).contains(&id), "still in the group");

    // The user edits it in Google meanwhile: the etag we hold is stale.
    rig.fake.edit(&id, |p| {
        p["phoneNumbers"] = json!([{"value": "+49 30 9990 1234"}])
    });
    let mut again = fields.clone();
    again.job_title = Some("Chief".into());
    let write = Write {
        folder: &group,
        current: Some(&updated),
        fields: &again,
        uid: "rec-ann",
    };
    assert_eq!(
        remote.write(&rig.ctx(), write).await.expect("write"),
        Written::Conflict
    );
    assert_eq!(rig.fake.stale(), 1);
    assert_eq!(
        rig.fake.name_of(&id).as_deref(),
        Some("Ann Updated"),
        "nothing lost"
    );

    // The engine reads it again and writes again: the user's phone stays, ours lands.
    let fresh = remote
        .get(&rig.ctx(), &id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(fresh.fields.phones, ["+493099901234"]);
    let mut merged = again.clone();
    merged.phones = fresh.fields.phones.clone();
    let write = Write {
        folder: &group,
        current: Some(&fresh),
        fields: &merged,
        uid: "rec-ann",
    };
    assert!(matches!(
        remote.write(&rig.ctx(), write).await.expect("write"),
        Written::Done(Some(_))
    ));
    let person = rig.fake.person(&id).expect("person");
    assert_eq!(person["organizations"][0]["title"], "Chief");
    assert_eq!(person["phoneNumbers"][0]["value"], "+49 30 9990 1234");
}

// REQ: CS-05
#[tokio::test]
async fn delete_removes_the_person_and_release_only_leaves_the_group() {
    let rig = rig().await;
    let remote = rig.remote();
    let group = folder(&rig, &remote).await;
    let gone = rig.fake.add("Del Me", &[], &[GROUP]);
    let kept = rig.fake.add("Keep Me", &[], &[GROUP]);
    let (items, _, _, _) = list_all(&rig, &remote, &group, None).await.expect("list");
    let item = |id: &str| items.iter().find(|i| i.id == id).expect("listed").clone();

    let ctx = rig.ctx();
    assert_eq!(
        remote.delete(&ctx, &gone, None).await.expect("delete"),
        Written::Done(None)
    );
    assert!(rig.fake.person(&gone).is_none());
    assert_eq!(
        remote.delete(&ctx, &gone, None).await.expect("again"),
        Written::Gone
    );
    assert_eq!(remote.get(&ctx, &gone).await.expect("get"), None);

    let kept_item = item(&kept);
    assert_eq!(
        remote.release(&ctx, &kept_item).await.expect("release"),
        Written::Done(None)
    );
    assert!(rig.fake.person(&kept).is_some(), "still in Google");
    assert!(!rig.fake.members(GROUP).contains(&kept), "out of the group");
    assert_eq!(
        remote.release(&ctx, &item(&gone)).await.expect("release"),
        Written::Gone
    );

    // A person whose only group is ours stays in My Contacts when it leaves.
    let only = rig.fake.add("Only Ours", &[], &[GROUP]);
    rig.fake.edit(&only, |p| {
        p["memberships"]
            .as_array_mut()
            .expect("memberships")
            .retain(|m| m["contactGroupMembership"]["contactGroupResourceName"] != MY_CONTACTS)
    });
    let only_item = remote.get(&ctx, &only).await.expect("get").expect("exists");
    assert_eq!(
        remote.release(&ctx, &only_item).await.expect("release"),
        Written::Done(None)
    );
    assert!(!rig.fake.members(GROUP).contains(&only));
    assert!(rig.fake.members("myContacts").contains(&only));
}

#[tokio::test]
async fn a_429_is_throttled_with_its_retry_after_and_the_next_call_succeeds() {
    let rig = rig().await;
    let remote = rig.remote();
    let group = folder(&rig, &remote).await;
    rig.fake.set_retry_after(7);
    rig.fake.throttle(1);
    match remote.list(&rig.ctx(), &group, Cursor::Start).await {
        Err(RemoteError::Throttled {
            retry_after,
            message,
        }) => {
            assert_eq!(retry_after, Duration::from_secs(7));
            assert!(message.contains("429"), "{message}");
        }
        other => panic!("throttled, not {other:?}"),
    }
    assert!(remote.list(&rig.ctx(), &group, Cursor::Start).await.is_ok());
    assert_eq!(rig.fake.throttled(), 1);
}

#[tokio::test]
async fn a_refused_access_token_is_refreshed_once_and_never_shown() {
    let rig = rig().await;
    let tokens = rig.tokens(false);
    let remote = PeopleRemote::new(&rig.fake.base, tokens.clone(), GROUP);
    folder(&rig, &remote).await;
    let first = rig.fake.token();
    rig.fake.expire_tokens();
    let group = folder(
        &rig,
        &PeopleRemote::new(&rig.fake.base, tokens.clone(), GROUP),
    )
    .await;
    assert_eq!(tokens.fresh.load(Ordering::Relaxed), 1, "one refresh");
    assert_eq!(rig.fake.unauthorized(), 1);
    assert!(remote.list(&rig.ctx(), &group, Cursor::Start).await.is_ok());

    // A grant that cannot refresh: the run fails, once, without the token in the message.
    let stuck_tokens = rig.tokens(true);
    let stuck = PeopleRemote::new(&rig.fake.base, stuck_tokens.clone(), GROUP);
    stuck
        .folders(&rig.ctx())
        .await
        .expect("a valid token still works");
    rig.fake.expire_tokens();
    let stuck = PeopleRemote::new(&rig.fake.base, stuck_tokens, GROUP);
    let err = stuck.folders(&rig.ctx()).await.expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("401") && text.contains("UNAUTHENTICATED"),
        "{text}"
    );
    for token in rig.fake.tokens_seen().into_iter().chain([first]) {
        assert!(!text.contains(&token), "no token in {text}");
    }
}

#[tokio::test]
async fn google_error_answers_read_as_clear_messages() {
    let rig = rig().await;
    let remote = rig.remote();
    let group = folder(&rig, &remote).await;
    // A page cursor whose sync token does not match its listing: Google's 400, in words.
    let cursor = json!({"pageToken": "pt.2.1.-", "syncToken": "st.1.0"}).to_string();
    let err = remote
        .list(&rig.ctx(), &group, Cursor::Page(&cursor))
        .await
        .expect_err("400");
    let text = err.to_string();
    assert!(
        text.contains("400 INVALID_ARGUMENT") && text.contains("page token"),
        "{text}"
    );
}
