//! Microsoft 365 contacts: `GraphContactsRemote` (the `ContactRemote` of a `ContactSync` over a
//! Mailbox on a `microsoft365` provider) against a fake Microsoft Graph contacts API written
//! from the documented wire format (tests/support/graph_contacts_fake.rs), through the public
//! API: folders (all, selected, the default one), delta rounds page by page with their links,
//! `@removed` entries and an expired link, the Graph JSON mapped to the neutral fields, a
//! create found again by its uid after a crash, `If-Match` updates and deletes (412 → conflict,
//! 404 → gone) that send only what changed, 429 → throttled with its `Retry-After`, 401 → one
//! retry with a fresh token, and no token in any error. The token source is a test one (the
//! mailbox's OAuth grant is another module's).

#[path = "support/graph_contacts_fake.rs"]
mod graph_contacts_fake;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use switchboard::clock::Clock;
use switchboard::config::{ConfigSet, Kind};
use switchboard::connector::{SyncContext, resolve_secrets};
use switchboard::engine::apply::changes;
use switchboard::store::{Store, StoreHandle};
use switchboard::sync::graph::Graph;
use switchboard::sync::graph::contacts::GraphContactsRemote;
use switchboard::sync::remote::{
    ContactRemote, Cursor, Folder, Listed, Next, Page, RemoteError, RemoteFuture, RemoteItem,
    TokenProvider, Write, Written,
};
use switchboard::sync::vcard::CardFields;
use switchboard::telemetry::Metrics;
use tokio_util::sync::CancellationToken;

use graph_contacts_fake::{DEFAULT_FOLDER_ID, GraphContactsFake};

/// Access tokens `m365-access-N`; `fresh` moves to the next one (as a refresh would).
#[derive(Default)]
struct Tokens {
    n: AtomicU32,
    refreshed: AtomicU32,
}

impl Tokens {
    fn current(&self) -> String {
        format!("m365-access-{}", self.n.load(Ordering::SeqCst))
    }
}

impl TokenProvider for Tokens {
    fn token<'a>(&'a self, _: &'a SyncContext<'a>, fresh: bool) -> RemoteFuture<'a, String> {
        Box::pin(async move {
            if fresh {
                self.n.fetch_add(1, Ordering::SeqCst);
                self.refreshed.fetch_add(1, Ordering::SeqCst);
            }
            Ok(self.current())
        })
    }
}

/// A config with a microsoft365 provider whose apiBaseUrl is the fake, a mailbox on it and a
/// ContactSync over the mailbox; a store; the fake; the remote.
struct Rig {
    _dir: tempfile::TempDir,
    set: ConfigSet,
    store: StoreHandle,
    metrics: Metrics,
    fake: GraphContactsFake,
    tokens: Arc<Tokens>,
    remote: GraphContactsRemote,
}

async fn rig(page_size: usize, folders: &[&str], selected: Option<&[&str]>) -> Rig {
    let fake = GraphContactsFake::start(page_size).await;
    for f in folders {
        fake.add_folder(f);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    std::fs::write(config.join("client-secret"), "m365-client-s3cret").expect("secret");
    std::fs::write(config.join("refresh"), "m365-refresh-token").expect("refresh");
    std::fs::write(
        config.join("sync.yaml"),
        format!(
            "apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: owner}}\nspec: {{displayName: Owner, email: owner@example.com}}\n---\n\
             apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {{name: m365}}\nspec:\n  type: microsoft365\n  title: Microsoft 365\n  domains: [corp.example]\n  \
             apiBaseUrl: {graph}\n  auth: oauth2\n  \
             oauth2:\n    clientId: m365-client\n    clientSecret: {{file: client-secret}}\n    authUrl: http://127.0.0.1:9/auth\n    tokenUrl: http://127.0.0.1:9/token\n    scopes: [Contacts.ReadWrite]\n---\n\
             apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: box}}\nspec:\n  address: sales@corp.example\n  owner: owner\n  oauth2RefreshToken: {{file: refresh}}\n---\n\
             apiVersion: switchboard/v1\nkind: ContactSync\nmetadata: {{name: book}}\nspec:\n  account: box\n  import: {{enabled: true}}\n  export: {{enabled: true}}\n",
            graph = fake.base,
        ),
    )
    .expect("manifest");
    let set = switchboard::config::load(&[config])
        .into_result()
        .unwrap_or_else(|d| panic!("valid config: {d:?}"));
    let mut store = Store::open(&dir.path().join("state.db")).expect("store");
    store.apply(&changes(&set, &[]), Utc::now()).expect("apply");
    let tokens = Arc::new(Tokens::default());
    let graph = Arc::new(Graph::new(
        Some(&fake.base),
        Arc::clone(&tokens) as Arc<dyn TokenProvider>,
    ));
    let remote = GraphContactsRemote::new(
        graph,
        selected.map(|s| s.iter().map(|f| (*f).to_owned()).collect()),
    );
    Rig {
        _dir: dir,
        set,
        store: StoreHandle::new(store),
        metrics: Metrics::new(),
        fake,
        tokens,
        remote,
    }
}

/// Runs `f` with a sync context of the rig's ContactSync.
macro_rules! with_ctx {
    ($rig:expr, |$ctx:ident| $body:expr) => {{
        let object = $rig
            .set
            .object(Kind::ContactSync, "book")
            .expect("sync object");
        let secrets = resolve_secrets(object).expect("secrets");
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

fn person(name: &str, email: &str) -> serde_json::Value {
    let (given, surname) = name.split_once(' ').unwrap_or((name, ""));
    json!({
        "displayName": name,
        "givenName": given,
        "surname": surname,
        "emailAddresses": [{"address": email, "name": name}],
    })
}

/// Every page of `folder` from `cursor` to the end: the items, the removed ids, whether every
/// page said `full`, the token it ended with and the pages it took.
async fn round(
    remote: &GraphContactsRemote,
    ctx: &SyncContext<'_>,
    folder: &Folder,
    from: Option<&str>,
) -> (
    Vec<RemoteItem<CardFields>>,
    Vec<String>,
    bool,
    Option<String>,
    usize,
) {
    let mut cursor_text: Option<String> = None;
    let (mut items, mut removed, mut full, mut pages) = (Vec::new(), Vec::new(), true, 0);
    loop {
        let cursor = match (&cursor_text, from) {
            (Some(c), _) => Cursor::Page(c),
            (None, Some(t)) => Cursor::Token(t),
            (None, None) => Cursor::Start,
        };
        let page: Page<CardFields> = remote.list(ctx, folder, cursor).await.expect("page");
        pages += 1;
        full &= page.full;
        for item in page.items {
            match item {
                Listed::Item(i) => items.push(i),
                Listed::Version { id, .. } => panic!("Graph lists whole items, not {id}"),
            }
        }
        removed.extend(page.removed);
        match page.next {
            Next::More(c) => cursor_text = Some(c),
            Next::Done(token) => return (items, removed, full, token, pages),
        }
    }
}

/// A write (`Write` is `Copy` only for `Copy` fields).
fn w<'a>(
    folder: &'a Folder,
    current: Option<&'a RemoteItem<CardFields>>,
    fields: &'a CardFields,
    uid: &'a str,
) -> Write<'a, CardFields> {
    Write {
        folder,
        current,
        fields,
        uid,
    }
}

fn names(items: &[RemoteItem<CardFields>]) -> Vec<String> {
    let mut n: Vec<String> = items.iter().filter_map(|i| i.fields.name.clone()).collect();
    n.sort();
    n
}

#[tokio::test]
async fn folders_are_the_default_one_and_its_children_or_the_selected_ones() {
    // REQ: CS-01 (import contacts from all folders or selected folders)
    let rig = rig(50, &["Customers", "Private"], None).await;
    let folders = with_ctx!(rig, |ctx| rig.remote.folders(&ctx).await).expect("folders");
    let shown: Vec<&str> = folders.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(shown, ["Contacts", "Customers", "Private"]);

    let rig = rig_selected(&["private", "Contacts"]).await;
    let folders = with_ctx!(rig, |ctx| rig.remote.folders(&ctx).await).expect("folders");
    let shown: Vec<&str> = folders.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        shown,
        ["Private", "Contacts"],
        "the selection's order: new ones go to the first"
    );

    let rig = rig_selected(&["Partners"]).await;
    let err = with_ctx!(rig, |ctx| rig.remote.folders(&ctx).await).expect_err("missing");
    assert!(
        err.to_string().contains("no contact folder named Partners"),
        "{err}"
    );
}

async fn rig_selected(selected: &[&str]) -> Rig {
    rig(50, &["Customers", "Private"], Some(selected)).await
}

#[tokio::test]
async fn a_delta_round_pages_with_next_links_and_the_next_round_brings_only_changes() {
    // REQ: CS-01 (import from every folder), CS-04 (incremental: only what changed since)
    let rig = rig(2, &["Customers"], None).await;
    let mut ids = Vec::new();
    for (name, email) in [
        ("Ann Lee", "ann@a.example"),
        ("Bob Roe", "bob@b.example"),
        ("Cy Yu", "cy@c.example"),
    ] {
        ids.push(rig.fake.add_contact(DEFAULT_FOLDER_ID, person(name, email)));
    }
    let customers = rig.fake.state.lock().expect("state").folders[0].0.clone();
    let mut dana = person("Dana Fox", "Dana@D.example");
    dana["businessPhones"] = json!(["+1 415 555 0101"]);
    dana["mobilePhone"] = json!("+1 415 555 0102");
    dana["jobTitle"] = json!("Buyer");
    dana["companyName"] = json!("Acme");
    dana["categories"] = json!(["customer"]);
    rig.fake.add_contact(&customers, dana);

    with_ctx!(rig, |ctx| {
        let folders = rig.remote.folders(&ctx).await.expect("folders");
        let (items, removed, full, token, pages) =
            round(&rig.remote, &ctx, &folders[0], None).await;
        assert_eq!(names(&items), ["Ann Lee", "Bob Roe", "Cy Yu"]);
        assert!(removed.is_empty());
        assert!(
            full,
            "a round without a token is a full listing, on every page"
        );
        assert_eq!(pages, 2, "three contacts on pages of two");
        let token = token.expect("a delta link ends the round");
        assert!(token.contains("deltatoken"), "{token}");
        for item in &items {
            assert!(rig.remote.holds(&folders[0], &item.id));
            assert!(!rig.remote.holds(&folders[1], &item.id));
            assert!(
                item.version
                    .as_deref()
                    .is_some_and(|v| v.starts_with("W/\""))
            );
        }
        let (other, _, _, other_token, _) = round(&rig.remote, &ctx, &folders[1], None).await;
        let dana = &other[0].fields;
        assert_eq!(dana.name.as_deref(), Some("Dana Fox"));
        assert_eq!(dana.emails, ["dana@d.example"]);
        assert_eq!(dana.phones, ["+14155550101", "+14155550102"]);
        assert_eq!(dana.company.as_deref(), Some("Acme"));
        assert_eq!(dana.job_title.as_deref(), Some("Buyer"));
        assert_eq!(dana.tags, ["customer"]);
        assert!(dana.rev.is_some());
        assert!(
            rig.fake
                .requests()
                .iter()
                .filter(|r| r.contains("/delta"))
                .all(|r| !r.contains("delta?") || r.contains("select") || r.contains("token")),
            "the first request selects the modelled properties"
        );

        // Nothing changed: an empty round.
        let (items, removed, full, again, pages) =
            round(&rig.remote, &ctx, &folders[0], Some(&token)).await;
        assert!(
            items.is_empty() && removed.is_empty() && !full,
            "{items:?} {removed:?}"
        );
        assert_eq!(pages, 1);

        // A user edits one, deletes one and adds one in Outlook.
        rig.fake.edit_contact(&ids[0], json!({"jobTitle": "Owner"}));
        rig.fake.delete_contact(&ids[1]);
        rig.fake
            .add_contact(DEFAULT_FOLDER_ID, person("Eve Ng", "eve@e.example"));
        let (items, removed, full, _, _) =
            round(&rig.remote, &ctx, &folders[0], again.as_deref()).await;
        assert!(!full);
        assert_eq!(names(&items), ["Ann Lee", "Eve Ng"]);
        assert_eq!(
            items
                .iter()
                .find(|i| i.fields.name.as_deref() == Some("Ann Lee"))
                .and_then(|i| i.fields.job_title.clone())
                .as_deref(),
            Some("Owner")
        );
        assert_eq!(removed, [format!("contacts:{}", ids[1])]);
        // the other folder did not change
        let (items, removed, _, _, _) =
            round(&rig.remote, &ctx, &folders[1], other_token.as_deref()).await;
        assert!(items.is_empty() && removed.is_empty());
    });
}

#[tokio::test]
async fn an_expired_delta_link_is_a_token_expired_and_a_new_round_lists_everything() {
    // REQ: CS-04 (an expired delta token: the engine lists the folder again, nothing twice)
    let rig = rig(2, &[], None).await;
    for i in 0..3 {
        rig.fake.add_contact(
            DEFAULT_FOLDER_ID,
            person(&format!("Quinn N{i}"), &format!("q{i}@q.example")),
        );
    }
    with_ctx!(rig, |ctx| {
        let folders = rig.remote.folders(&ctx).await.expect("folders");
        let first = rig
            .remote
            .list(&ctx, &folders[0], Cursor::Start)
            .await
            .expect("page");
        let Next::More(page_cursor) = first.next else {
            panic!("more pages")
        };
        let (_, _, _, token, _) = round(&rig.remote, &ctx, &folders[0], None).await;
        rig.fake.expire_delta();
        for cursor in [
            Cursor::Token(token.as_deref().expect("token")),
            Cursor::Page(&page_cursor),
        ] {
            match rig.remote.list(&ctx, &folders[0], cursor).await {
                Err(RemoteError::TokenExpired) => {}
                other => panic!("expired: {other:?}"),
            }
        }
        assert_eq!(rig.fake.gone(), 2, "410 syncStateNotFound");
        let (items, _, full, _, _) = round(&rig.remote, &ctx, &folders[0], None).await;
        assert!(full);
        assert_eq!(items.len(), 3);
    });
}

#[tokio::test]
async fn a_create_retried_after_a_crash_finds_the_first_copy() {
    // REQ: CS-04 (a retried export makes no second contact)
    let rig = rig(50, &["Customers"], Some(&["Customers"])).await;
    with_ctx!(rig, |ctx| {
        let folders = rig.remote.folders(&ctx).await.expect("folders");
        let fields = CardFields {
            name: Some("Jo March".into()),
            emails: vec!["jo@j.example".into()],
            phones: vec!["+14155550111".into()],
            company: Some("Plumfield".into()),
            job_title: Some("Writer".into()),
            tags: vec!["VIP".into()],
            ..CardFields::default()
        };
        let uid = "switchboard-abc-contact-7";
        let first = match rig
            .remote
            .write(&ctx, w(&folders[0], None, &fields, uid))
            .await
            .expect("create")
        {
            Written::Done(Some(item)) => item,
            other => panic!("created: {other:?}"),
        };
        assert!(rig.remote.holds(&folders[0], &first.id));
        let graph_id = first.id.split_once(':').expect("folder:id").1.to_owned();
        let made = rig.fake.by_email("jo@j.example").expect("created");
        assert_eq!(made["id"], graph_id.as_str());
        assert_eq!(
            made["parentFolderId"],
            folders[0].id.as_str(),
            "in the first folder"
        );
        assert_eq!(made["displayName"], "Jo March");
        assert_eq!(made["givenName"], "Jo");
        assert_eq!(made["surname"], "March");
        assert_eq!(made["businessPhones"], json!(["+14155550111"]));
        assert_eq!(made["companyName"], "Plumfield");
        assert_eq!(made["jobTitle"], "Writer");
        assert_eq!(made["categories"], json!(["VIP"]));
        assert_eq!(
            rig.fake.extended(&graph_id)[0]["value"],
            "switchboard-abc-contact-7",
            "the uid rides on a single-value extended property"
        );
        // The link was never stored (a crash): the engine creates again under the same uid.
        match rig
            .remote
            .write(&ctx, w(&folders[0], None, &fields, uid))
            .await
            .expect("retry")
        {
            Written::Exists(found) => assert_eq!(found.id, first.id),
            other => panic!("the first copy is found: {other:?}"),
        }
        assert_eq!(rig.fake.all_contacts().len(), 1, "never a second copy");
        assert_eq!(rig.fake.writes("POST"), 1);
        assert!(
            rig.fake
                .requests()
                .iter()
                .any(|r| r.starts_with("GET ") && r.contains("singleValueExtendedProperties")),
            "looked up with $filter on the extended property"
        );
        // Another uid is another contact.
        let other = w(&folders[0], None, &fields, "switchboard-abc-contact-8");
        assert!(matches!(
            rig.remote.write(&ctx, other).await.expect("create"),
            Written::Done(Some(_))
        ));
        assert_eq!(rig.fake.all_contacts().len(), 2);
    });
}

#[tokio::test]
async fn an_update_patches_only_what_changed_with_if_match_and_a_stale_etag_is_a_conflict() {
    // REQ: CS-04 (a record changed on both sides is never silently overwritten: the stale
    // write is a conflict the engine resolves by policy)
    let rig = rig(50, &[], None).await;
    let mut ivy = person("Ivy Park", "ivy@i.example");
    ivy["mobilePhone"] = json!("+14155550199");
    ivy["personalNotes"] = json!("met at the fair");
    let graph_id = rig.fake.add_contact(DEFAULT_FOLDER_ID, ivy);
    with_ctx!(rig, |ctx| {
        let id = format!("contacts:{graph_id}");
        let item = rig
            .remote
            .get(&ctx, &id)
            .await
            .expect("get")
            .expect("there");
        assert_eq!(rig.remote.decode(&item.data), item.fields);

        // Nothing changed: nothing is sent.
        let before = rig.fake.requests().len();
        let folder = Folder {
            id: "contacts".into(),
            name: "Contacts".into(),
        };
        let same = w(&folder, Some(&item), &item.fields, "unused");
        assert!(matches!(
            rig.remote.write(&ctx, same).await.expect("write"),
            Written::Done(Some(_))
        ));
        assert_eq!(
            rig.fake.requests().len(),
            before,
            "a no-change write sends nothing"
        );

        // The title changes here: only it is patched, conditionally on the etag.
        let mut fields = item.fields.clone();
        fields.job_title = Some("CEO".into());
        let write = w(&folder, Some(&item), &fields, "unused");
        let updated = match rig.remote.write(&ctx, write).await.expect("write") {
            Written::Done(Some(updated)) => updated,
            other => panic!("updated: {other:?}"),
        };
        assert_ne!(updated.version, item.version, "a new etag");
        let now = rig.fake.by_email("ivy@i.example").expect("there");
        assert_eq!(now["jobTitle"], "CEO");
        assert_eq!(
            now["personalNotes"], "met at the fair",
            "unmodelled properties stay"
        );
        assert_eq!(now["mobilePhone"], "+14155550199", "a phone keeps its slot");
        assert_eq!(rig.fake.conflicts(), 0);

        // A user edits it in Outlook just before the next write: the etag is stale.
        rig.fake
            .edit_before_next_write(&graph_id, json!({"displayName": "Ivy There"}));
        let mut later = fields.clone();
        later.job_title = Some("Chair".into());
        let stale = w(&folder, Some(&updated), &later, "unused");
        assert!(matches!(
            rig.remote.write(&ctx, stale).await.expect("write"),
            Written::Conflict
        ));
        assert_eq!(rig.fake.conflicts(), 1, "412 on the stale If-Match");
        let there = rig.fake.by_email("ivy@i.example").expect("there");
        assert_eq!(there["displayName"], "Ivy There", "their write is not lost");
        assert_eq!(there["jobTitle"], "CEO", "ours waits for the policy");

        // Read again (as the engine does) and written over the fresh etag.
        let fresh = rig
            .remote
            .get(&ctx, &id)
            .await
            .expect("get")
            .expect("there");
        assert_eq!(fresh.fields.name.as_deref(), Some("Ivy There"));
        let retry = w(&folder, Some(&fresh), &later, "unused");
        assert!(matches!(
            rig.remote.write(&ctx, retry).await.expect("write"),
            Written::Done(Some(_))
        ));
        assert_eq!(
            rig.fake.by_email("ivy@i.example").expect("there")["jobTitle"],
            "Chair"
        );

        // Deleted in Outlook: a write is gone.
        rig.fake.delete_contact(&graph_id);
        let gone = w(&folder, Some(&fresh), &fields, "unused");
        assert!(matches!(
            rig.remote.write(&ctx, gone).await.expect("write"),
            Written::Gone
        ));
        assert!(rig.remote.get(&ctx, &id).await.expect("get").is_none());
    });
}

#[tokio::test]
async fn a_delete_is_conditional_on_the_etag() {
    // REQ: CS-05 (with `propagate`, a contact deleted here is deleted there — never one
    // changed there since)
    let rig = rig(50, &[], None).await;
    let graph_id = rig
        .fake
        .add_contact(DEFAULT_FOLDER_ID, person("Oda Pi", "oda@o.example"));
    with_ctx!(rig, |ctx| {
        let id = format!("contacts:{graph_id}");
        let item = rig
            .remote
            .get(&ctx, &id)
            .await
            .expect("get")
            .expect("there");
        rig.fake
            .edit_contact(&graph_id, json!({"jobTitle": "Changed"}));
        assert!(matches!(
            rig.remote.delete(&ctx, &id, item.version.as_deref()).await,
            Ok(Written::Conflict)
        ));
        assert!(rig.fake.by_email("oda@o.example").is_some());
        let fresh = rig
            .remote
            .get(&ctx, &id)
            .await
            .expect("get")
            .expect("there");
        assert!(matches!(
            rig.remote.delete(&ctx, &id, fresh.version.as_deref()).await,
            Ok(Written::Done(None))
        ));
        assert!(rig.fake.by_email("oda@o.example").is_none());
        assert!(matches!(
            rig.remote.delete(&ctx, &id, None).await,
            Ok(Written::Gone)
        ));
    });
}

#[tokio::test]
async fn a_429_is_throttled_with_its_retry_after_and_nothing_sleeps() {
    // REQ: CS-01 (automatic sync: a throttled run ends and the scheduler retries later)
    let rig = rig(50, &[], None).await;
    rig.fake.throttle(1, 7);
    let started = std::time::Instant::now();
    let err = with_ctx!(rig, |ctx| rig.remote.folders(&ctx).await).expect_err("throttled");
    match err {
        RemoteError::Throttled { retry_after, .. } => {
            assert_eq!(retry_after, Duration::from_secs(7));
        }
        other => panic!("throttled: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "not slept out");
    assert_eq!(rig.fake.throttled(), 1);
    let folders = with_ctx!(rig, |ctx| rig.remote.folders(&ctx).await).expect("then it answers");
    assert_eq!(folders.len(), 1);
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once_and_never_shown() {
    // REQ: CS-01 (automatic sync keeps working across access-token expiry)
    let rig = rig(50, &[], None).await;
    rig.fake
        .add_contact(DEFAULT_FOLDER_ID, person("Tia Vo", "tia@t.example"));
    with_ctx!(rig, |ctx| {
        rig.remote.folders(&ctx).await.expect("folders");
        rig.fake.expire_tokens();
        let folders = rig.remote.folders(&ctx).await.expect("after a refresh");
        assert_eq!(rig.fake.unauthorized(), 1, "one 401, then a fresh token");
        assert_eq!(rig.tokens.refreshed.load(Ordering::SeqCst), 1);
        let (items, ..) = round(&rig.remote, &ctx, &folders[0], None).await;
        assert_eq!(items.len(), 1);

        // Refused even when fresh: the call fails, without the token in the message.
        rig.fake.expire_tokens();
        let next = format!("m365-access-{}", rig.tokens.n.load(Ordering::SeqCst) + 1);
        rig.fake
            .state
            .lock()
            .expect("state")
            .expired
            .insert(next.clone());
        let err = rig.remote.folders(&ctx).await.expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("refused the access token"), "{text}");
        assert!(
            text.contains("InvalidAuthenticationToken"),
            "Graph's words: {text}"
        );
        for token in rig.fake.tokens_seen().iter().chain([&next]) {
            assert!(!text.contains(token.as_str()), "no token in {text}");
        }
        assert!(rig.remote.requests() >= 6, "requests are counted");
    });
}
