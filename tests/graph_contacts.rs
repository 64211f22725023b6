//! Microsoft 365 contacts: `GraphContactsRemote` (the `ContactRemote` of a `ContactSync` over a
//! Mailbox on a `microsoft365` provider) against a fake Microsoft Graph contacts API written
//! from the documented wire format (tests/support/graph_contacts_fake.rs), through the public
//! API: folders (all, selected, the default one), delta rounds page by page with their links,
//! `@removed` entries and an expired link, the Graph JSON mapped to the neutral fields, a
//! create found again by its uid after a crash, `If-Match` updates and deletes (412 → conflict,
//! 404 → gone) that send only what changed, 429 → throttled with its `Retry-After`, 401 → one
//! retry with a fresh token, and no token in any error. Then the contact engine
//! (`ContactSyncConnector::with_remote`) over it: import from all or selected folders, export
//! (all, or by group), a no-change run, CS-02's company links, conflicts, deletes under both
//! policies, an expired delta link, 429 and 401 in a run (a test token source). Last, the real
//! daemon: a microsoft365 MailProvider and an `auth: oauth2` Mailbox whose apiBaseUrl and token
//! endpoint are the fakes (tests/support/oauth_fake.rs), a "sync now" both ways, a refresh after
//! 401, a throttled run, and no token or secret in the objects view, metrics, status or log.

#[path = "support/graph_contacts_fake.rs"]
mod graph_contacts_fake;
#[path = "support/oauth_fake.rs"]
mod oauth_fake;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use switchboard::clock::Clock;
use switchboard::config::kinds::ContactSyncSpec;
use switchboard::config::types::AllOrList;
use switchboard::config::{ConfigSet, Kind, KindSpec};
use switchboard::connector::{Connector, ConnectorError, SyncContext, SyncReport, resolve_secrets};
use switchboard::engine::apply::changes;
use switchboard::store::records::{
    AccountChanges, Contact, ContactChanges, ContactQuery, RecordKind,
};
use switchboard::store::{Store, StoreHandle};
use switchboard::sync::ContactSyncConnector;
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
use oauth_fake::OAuthFake;
use support::{Daemon, eventually, free_port};

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
    remote: Arc<GraphContactsRemote>,
}

async fn rig(page_size: usize, folders: &[&str], selected: Option<&[&str]>) -> Rig {
    let import = match selected {
        None => "  import: {enabled: true}\n".to_owned(),
        Some(list) => format!(
            "  import: {{enabled: true, folders: [{}]}}\n",
            list.join(", ")
        ),
    };
    rig_spec(
        &format!("{import}  export: {{enabled: true}}\n"),
        page_size,
        folders,
    )
    .await
}

/// `spec` is the ContactSync's spec after `account`, indented two spaces; the fake answers
/// `page_size` entries a page and has `folders` (made as a user would) besides Contacts.
async fn rig_spec(spec: &str, page_size: usize, folders: &[&str]) -> Rig {
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
             apiVersion: switchboard/v1\nkind: ContactSync\nmetadata: {{name: book}}\nspec:\n  account: box\n{spec}\n",
            graph = fake.base,
        ),
    )
    .expect("manifest");
    let set = switchboard::config::load(&[config])
        .into_result()
        .unwrap_or_else(|d| panic!("valid config: {d:?}"));
    let mut store = Store::open(&dir.path().join("state.db")).expect("store");
    store.apply(&changes(&set, &[]), Utc::now()).expect("apply");
    let object = set.object(Kind::ContactSync, "book").expect("sync object");
    let selected = match &ContactSyncSpec::from_spec(&object.spec)
        .expect("a ContactSync")
        .import
        .folders
    {
        AllOrList::All(_) => None,
        AllOrList::List(list) => Some(list.clone()),
    };
    let tokens = Arc::new(Tokens::default());
    let graph = Arc::new(Graph::new(
        Some(&fake.base),
        Arc::clone(&tokens) as Arc<dyn TokenProvider>,
    ));
    let remote = Arc::new(GraphContactsRemote::new(graph, selected));
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
    let base =
        switchboard::sync::graph::mailbox_api_base(&rig.set, "box").expect("a Graph mailbox");
    assert!(
        base.as_deref()
            .is_some_and(|b| b.starts_with(&rig.fake.base)),
        "the provider's apiBaseUrl: {base:?}"
    );
    assert!(switchboard::sync::graph::mailbox_api_base(&rig.set, "nobody").is_err());
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

// ---- The contact engine over the remote (ContactSyncConnector::with_remote) ----

const TWO_WAY: &str = "  import: {enabled: true}\n  export: {enabled: true}\n";

impl Rig {
    async fn try_sync(&self) -> Result<SyncReport, ConnectorError> {
        let object = self
            .set
            .object(Kind::ContactSync, "book")
            .expect("sync object");
        let spec = ContactSyncSpec::from_spec(&object.spec).expect("a ContactSync");
        let connector = ContactSyncConnector::with_remote(
            object,
            spec,
            &self.set,
            Arc::clone(&self.remote) as Arc<dyn ContactRemote>,
        );
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

    /// The Graph id (without the folder) of the item contact `id` is linked to.
    async fn linked(&self, id: i64) -> Option<String> {
        self.store
            .call(move |s| s.sync_record("ContactSync/book", RecordKind::Contact, id))
            .await
            .expect("sync record")
            .map(|r| {
                r.remote_id
                    .split_once(':')
                    .map(|(_, g)| g.to_owned())
                    .expect("folder:id")
            })
    }

    async fn create_local(&self, changes: ContactChanges) -> i64 {
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

    async fn account(&self, name: &str) -> i64 {
        let name = name.to_owned();
        self.store
            .call(move |s| {
                Ok(s.create_account(
                    &AccountChanges {
                        name: Some(name),
                        domains: None,
                    },
                    "User/owner",
                    Utc::now(),
                )
                .expect("account")
                .id)
            })
            .await
            .expect("store")
    }

    fn conflicts(&self) -> u64 {
        self.metrics
            .sync_conflicts_total
            .with_label_values(&["ContactSync", "book"])
            .get()
    }
}

fn emails(contacts: &[Contact]) -> Vec<String> {
    let mut all: Vec<String> = contacts.iter().flat_map(|c| c.emails.clone()).collect();
    all.sort();
    all
}

#[tokio::test]
async fn contacts_of_every_folder_are_imported_page_by_page_and_a_no_change_run_moves_nothing() {
    // REQ: CS-01 (import contacts from all folders)
    // REQ: CS-04 (incremental: a second run with no change reads nothing and writes nothing)
    let rig = rig_spec(TWO_WAY, 2, &["Customers"]).await;
    let partners = rig.fake.add_folder("Partners");
    for (name, email) in [
        ("Ann Lee", "ann@a.example"),
        ("Bob Roe", "bob@b.example"),
        ("Cy Yu", "cy@c.example"),
    ] {
        rig.fake.add_contact(DEFAULT_FOLDER_ID, person(name, email));
    }
    let mut dana = person("Dana Fox", "dana@d.example");
    dana["businessPhones"] = json!(["+1 415 555 0101"]);
    dana["jobTitle"] = json!("Buyer");
    dana["categories"] = json!(["customer"]);
    rig.fake.add_contact(&partners, dana);

    let report = rig.sync().await;
    assert_eq!(report.items_in, 4, "{report:?}");
    assert_eq!(
        emails(&rig.contacts().await),
        [
            "ann@a.example",
            "bob@b.example",
            "cy@c.example",
            "dana@d.example"
        ]
    );
    let dana = rig.contact_with("dana@d.example").await.expect("dana");
    assert_eq!(dana.name.as_deref(), Some("Dana Fox"));
    assert_eq!(dana.job_title.as_deref(), Some("Buyer"));
    assert_eq!(dana.phones, ["+14155550101"]);
    assert_eq!(dana.tags, ["customer"]);
    let requests = rig.fake.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.contains("%24skiptoken") || r.contains("$skiptoken")),
        "three contacts on pages of two follow a next link: {requests:#?}"
    );
    assert!(
        requests.iter().all(|r| r.starts_with("GET ")),
        "an import writes nothing back: {requests:#?}"
    );

    let before = rig.fake.requests().len();
    let report = rig.sync().await;
    assert_eq!((report.items_in, report.items_out), (0, 0), "{report:?}");
    let after = rig.fake.requests();
    let run: Vec<&String> = after[before..].iter().collect();
    assert!(
        run.iter().all(|r| r.starts_with("GET ")),
        "a no-change run writes nothing: {run:#?}"
    );
    assert!(
        run.iter().any(|r| r.contains("deltatoken")),
        "it starts from the delta links: {run:#?}"
    );
    assert_eq!(rig.contacts().await.len(), 4, "nothing twice");
}

#[tokio::test]
async fn only_the_selected_folders_are_imported_and_new_contacts_go_to_the_first() {
    // REQ: CS-01 (import contacts from selected folders)
    let rig = rig_spec(
        "  import: {enabled: true, folders: [Customers]}\n  export: {enabled: true}\n",
        50,
        &["Customers", "Private"],
    )
    .await;
    let folders = rig.fake.state.lock().expect("state").folders.clone();
    let (customers, private) = (folders[0].0.clone(), folders[1].0.clone());
    rig.fake
        .add_contact(&customers, person("Eve Ng", "eve@e.example"));
    rig.fake
        .add_contact(&private, person("Mum", "mum@home.example"));
    rig.fake
        .add_contact(DEFAULT_FOLDER_ID, person("Gus Ho", "gus@g.example"));
    rig.create_local(ContactChanges {
        name: Some(Some("Hal Ito".into())),
        emails: Some(vec!["hal@h.example".into()]),
        ..ContactChanges::default()
    })
    .await;
    rig.sync().await;
    assert_eq!(
        emails(&rig.contacts().await),
        ["eve@e.example", "hal@h.example"]
    );
    let hal = rig.fake.by_email("hal@h.example").expect("exported");
    assert_eq!(
        hal["parentFolderId"],
        customers.as_str(),
        "created in the first selected folder"
    );
}

#[tokio::test]
async fn a_contact_made_here_is_created_once_with_its_uid_and_updated_with_if_match() {
    // REQ: CS-04 (two-way: a record made here is written there; a change here updates it)
    let rig = rig_spec(TWO_WAY, 50, &[]).await;
    let id = rig
        .create_local(ContactChanges {
            name: Some(Some("Ivy Park".into())),
            emails: Some(vec!["ivy@i.example".into()]),
            phones: Some(vec!["+14155550111".into()]),
            job_title: Some(Some("CTO".into())),
            tags: Some(vec!["VIP".into()]),
            ..ContactChanges::default()
        })
        .await;
    let report = rig.sync().await;
    assert_eq!(report.items_out, 1, "{report:?}");
    let graph_id = rig.linked(id).await.expect("linked");
    let made = rig.fake.by_email("ivy@i.example").expect("created");
    assert_eq!(made["id"], graph_id.as_str());
    assert_eq!(made["displayName"], "Ivy Park");
    assert_eq!(made["businessPhones"], json!(["+14155550111"]));
    assert_eq!(made["jobTitle"], "CTO");
    assert_eq!(made["categories"], json!(["VIP"]));
    let extended = rig.fake.extended(&graph_id);
    assert_eq!(extended.len(), 1, "the uid rides on an extended property");
    // A user adds a note in Outlook (a property Switchboard does not model) ...
    rig.fake
        .edit_contact(&graph_id, json!({"personalNotes": "met at the fair"}));
    rig.sync().await;
    // ... and the title changes here: only it is patched, conditionally.
    rig.update_local(
        id,
        ContactChanges {
            job_title: Some(Some("CEO".into())),
            ..ContactChanges::default()
        },
    )
    .await;
    let report = rig.sync().await;
    assert_eq!(report.items_out, 1, "{report:?}");
    let now = rig.fake.by_email("ivy@i.example").expect("still there");
    assert_eq!(now["jobTitle"], "CEO");
    assert_eq!(now["personalNotes"], "met at the fair", "their note stays");
    assert_eq!(rig.fake.all_contacts().len(), 1, "never a second copy");
    assert_eq!(rig.fake.writes("POST"), 1);
}

#[tokio::test]
async fn export_by_group_writes_only_the_contacts_in_it() {
    // REQ: CS-01 (export all contacts, or only chosen categories and groups)
    let rig = rig_spec(
        "  import: {enabled: true}\n  export: {enabled: true, scope: {groups: [VIP]}}\n",
        50,
        &[],
    )
    .await;
    rig.create_local(ContactChanges {
        name: Some(Some("Vic Tor".into())),
        emails: Some(vec!["vic@v.example".into()]),
        tags: Some(vec!["VIP".into()]),
        ..ContactChanges::default()
    })
    .await;
    rig.create_local(ContactChanges {
        name: Some(Some("Wes Ux".into())),
        emails: Some(vec!["wes@w.example".into()]),
        ..ContactChanges::default()
    })
    .await;
    let report = rig.sync().await;
    assert_eq!(report.items_out, 1, "{report:?}");
    assert!(
        rig.fake.by_email("vic@v.example").is_some(),
        "in the group: exported"
    );
    assert!(
        rig.fake.by_email("wes@w.example").is_none(),
        "not in it: stays here"
    );
}

#[tokio::test]
async fn an_export_whose_answer_was_lost_makes_no_second_contact() {
    // REQ: CS-04 (a run that failed after the provider stored a create duplicates nothing)
    let rig = rig_spec(
        "  import: {enabled: false}\n  export: {enabled: true}\n",
        50,
        &[],
    )
    .await;
    let id = rig
        .create_local(ContactChanges {
            name: Some(Some("Zoe Ash".into())),
            emails: Some(vec!["zoe@z.example".into()]),
            ..ContactChanges::default()
        })
        .await;
    rig.fake.lose_create_answers(1);
    rig.try_sync()
        .await
        .expect_err("the create's answer was lost");
    assert_eq!(
        rig.fake.all_contacts().len(),
        1,
        "Graph made it all the same"
    );
    assert!(rig.linked(id).await.is_none());
    rig.sync().await;
    assert_eq!(
        rig.fake.all_contacts().len(),
        1,
        "found by its uid, not made again"
    );
    assert_eq!(rig.fake.writes("POST"), 1);
    let linked = rig.linked(id).await.expect("linked now");
    assert_eq!(rig.fake.all_contacts()[0]["id"], linked.as_str());
}

#[tokio::test]
async fn an_imported_company_links_the_one_account_of_that_name_and_not_one_of_two() {
    // REQ: CS-02 (linked to an account by name; unlinked when several share the name)
    let rig = rig_spec(TWO_WAY, 50, &[]).await;
    let acme = rig.account("Acme").await;
    rig.account("Globex").await;
    rig.account("Globex").await;
    let mut kim = person("Kim Oh", "kim@acme.example");
    kim["companyName"] = json!("Acme");
    rig.fake.add_contact(DEFAULT_FOLDER_ID, kim);
    let mut lou = person("Lou Ma", "lou@globex.example");
    lou["companyName"] = json!("Globex");
    rig.fake.add_contact(DEFAULT_FOLDER_ID, lou);
    rig.sync().await;
    let kim = rig.contact_with("kim@acme.example").await.expect("kim");
    assert_eq!(kim.account.as_ref().map(|a| a.id), Some(acme));
    let lou = rig.contact_with("lou@globex.example").await.expect("lou");
    assert!(lou.account.is_none(), "two accounts named Globex: unlinked");
}

#[tokio::test]
async fn a_stale_etag_is_a_conflict_resolved_by_policy_without_losing_a_write() {
    // REQ: CS-04 (a record changed on both sides: the policy decides, nothing is lost)
    let rig = rig_spec(
        "  import: {enabled: true}\n  export: {enabled: true}\n  conflict: {winner: switchboard, union: [phones]}\n",
        50,
        &[],
    )
    .await;
    let id = rig
        .create_local(ContactChanges {
            name: Some(Some("Max Bo".into())),
            emails: Some(vec!["max@m.example".into()]),
            phones: Some(vec!["+14155550101".into()]),
            ..ContactChanges::default()
        })
        .await;
    rig.sync().await;
    let graph_id = rig.linked(id).await.expect("exported");
    // Changed here ...
    rig.update_local(
        id,
        ContactChanges {
            name: Some(Some("Max Here".into())),
            phones: Some(vec!["+14155550101".into(), "+14155550303".into()]),
            ..ContactChanges::default()
        },
    )
    .await;
    // ... and in Outlook between this run's pull and its write: the PATCH's If-Match is stale.
    rig.fake.edit_before_next_write(
        &graph_id,
        json!({"displayName": "Max There", "mobilePhone": "+14155550202", "personalNotes": "theirs"}),
    );
    let report = rig.sync().await;
    assert_eq!(report.items_out, 1, "{report:?}");
    assert_eq!(rig.fake.conflicts(), 1, "the write met a 412");
    assert_eq!(rig.conflicts(), 1, "counted in sync_conflicts_total");
    let there = rig.fake.by_email("max@m.example").expect("there");
    assert_eq!(there["displayName"], "Max Here", "winner: switchboard");
    assert_eq!(there["personalNotes"], "theirs", "their other change stays");
    let mut phones: Vec<String> = there["businessPhones"]
        .as_array()
        .expect("phones")
        .iter()
        .chain(std::iter::once(&there["mobilePhone"]))
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect();
    phones.sort();
    assert_eq!(
        phones,
        ["+14155550101", "+14155550202", "+14155550303"],
        "union of phones"
    );
    let here = rig.contact_with("max@m.example").await.expect("here");
    assert_eq!(here.name.as_deref(), Some("Max Here"));
    assert_eq!(here.phones.len(), 3, "{:?}", here.phones);
}

#[tokio::test]
async fn a_change_on_both_sides_seen_on_pull_keeps_the_newer_one() {
    // REQ: CS-04 (a record changed on both sides keeps the later change)
    let rig = rig_spec(TWO_WAY, 50, &[]).await;
    let graph_id = rig
        .fake
        .add_contact(DEFAULT_FOLDER_ID, person("Ned Ko", "ned@n.example"));
    rig.sync().await;
    let ned = rig.contact_with("ned@n.example").await.expect("ned");
    rig.update_local(
        ned.id,
        ContactChanges {
            job_title: Some(Some("Here".into())),
            ..ContactChanges::default()
        },
    )
    .await;
    // The Outlook edit comes later: it is the newer one.
    tokio::time::sleep(Duration::from_millis(20)).await;
    rig.fake
        .edit_contact(&graph_id, json!({"jobTitle": "There"}));
    rig.sync().await;
    let ned = rig.contact_with("ned@n.example").await.expect("ned");
    assert_eq!(ned.job_title.as_deref(), Some("There"));
    let there = rig.fake.by_email("ned@n.example").expect("there");
    assert_eq!(there["jobTitle"], "There");
    assert!(rig.conflicts() >= 1);
}

#[tokio::test]
async fn deletes_are_kept_apart_by_default_and_carried_with_propagate() {
    // REQ: CS-05 (deletes are not propagated by default; `propagate` carries them)
    let rig = rig_spec(TWO_WAY, 50, &[]).await;
    let gone_there = rig
        .fake
        .add_contact(DEFAULT_FOLDER_ID, person("Oda Pi", "oda@o.example"));
    rig.fake
        .add_contact(DEFAULT_FOLDER_ID, person("Pat Qu", "pat@p.example"));
    rig.sync().await;
    rig.fake.delete_contact(&gone_there);
    let pat = rig.contact_with("pat@p.example").await.expect("pat");
    rig.delete_local(pat.id).await;
    rig.sync().await;
    assert!(
        rig.contact_with("oda@o.example").await.is_some(),
        "deleted in Outlook: kept here"
    );
    assert!(
        rig.fake.by_email("pat@p.example").is_some(),
        "deleted here: kept there"
    );
    assert_eq!(rig.fake.writes("DELETE"), 0);

    let rig = rig_propagate().await;
    let gone_there = rig
        .fake
        .add_contact(DEFAULT_FOLDER_ID, person("Oda Pi", "oda@o.example"));
    rig.fake
        .add_contact(DEFAULT_FOLDER_ID, person("Pat Qu", "pat@p.example"));
    rig.sync().await;
    rig.fake.delete_contact(&gone_there);
    let pat = rig.contact_with("pat@p.example").await.expect("pat");
    rig.delete_local(pat.id).await;
    rig.sync().await;
    assert!(
        rig.contact_with("oda@o.example").await.is_none(),
        "deleted in Outlook: deleted here"
    );
    assert!(
        rig.fake.by_email("pat@p.example").is_none(),
        "deleted here: deleted there"
    );
    assert_eq!(rig.fake.writes("DELETE"), 1);
}

async fn rig_propagate() -> Rig {
    rig_spec(
        "  import: {enabled: true}\n  export: {enabled: true}\n  deletes: propagate\n",
        50,
        &[],
    )
    .await
}

#[tokio::test]
async fn a_sync_run_over_an_expired_delta_link_imports_nothing_twice() {
    // REQ: CS-04 (an expired delta token: one full round, nothing twice)
    let rig = rig_spec(TWO_WAY, 2, &[]).await;
    for i in 0..3 {
        rig.fake.add_contact(
            DEFAULT_FOLDER_ID,
            person(&format!("Quinn N{i}"), &format!("q{i}@q.example")),
        );
    }
    rig.sync().await;
    rig.fake.expire_delta();
    rig.fake
        .add_contact(DEFAULT_FOLDER_ID, person("Rae Su", "rae@r.example"));
    rig.sync().await;
    assert_eq!(rig.fake.gone(), 1, "the old link met 410 syncStateNotFound");
    let all = rig.contacts().await;
    assert_eq!(all.len(), 4, "{:?}", emails(&all));
    assert_eq!(
        rig.fake.all_contacts().len(),
        4,
        "nothing written back twice"
    );
}

#[tokio::test]
async fn a_429_ends_the_sync_run_throttled_and_the_next_run_goes_on() {
    // REQ: CS-04 (a throttled run keeps what it did; the next one goes on)
    let rig = rig_spec(TWO_WAY, 50, &[]).await;
    rig.fake
        .add_contact(DEFAULT_FOLDER_ID, person("Sam Tu", "sam@s.example"));
    rig.fake.throttle(1, 7);
    match rig.try_sync().await {
        Err(ConnectorError::Throttled { retry_after, .. }) => {
            assert_eq!(retry_after, Duration::from_secs(7), "Retry-After honoured");
        }
        other => panic!("a throttled run: {other:?}"),
    }
    assert_eq!(rig.fake.throttled(), 1);
    rig.sync().await;
    assert!(rig.contact_with("sam@s.example").await.is_some());
}

#[tokio::test]
async fn a_sync_run_survives_an_expired_access_token_and_its_error_shows_no_token() {
    // REQ: CS-01 (automatic sync keeps working across access-token expiry)
    let rig = rig_spec(TWO_WAY, 50, &[]).await;
    rig.fake
        .add_contact(DEFAULT_FOLDER_ID, person("Tia Vo", "tia@t.example"));
    rig.sync().await;
    rig.fake.expire_tokens();
    rig.fake
        .add_contact(DEFAULT_FOLDER_ID, person("Uma Wu", "uma@u.example"));
    rig.sync().await;
    assert_eq!(rig.fake.unauthorized(), 1, "one 401, then a fresh token");
    assert_eq!(rig.tokens.refreshed.load(Ordering::SeqCst), 1);
    assert!(rig.contact_with("uma@u.example").await.is_some());

    // A token refused even when fresh fails the run, without the token in the message.
    let refused = rig.tokens.current();
    rig.fake.expire_tokens();
    rig.fake
        .state
        .lock()
        .expect("state")
        .expired
        .insert("m365-access-2".into());
    let err = rig.try_sync().await.expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("refused the access token"), "{text}");
    for token in rig.fake.tokens_seen().iter().chain([&refused]) {
        assert!(!text.contains(token.as_str()), "no token in {text}");
    }
}

// ---- The real daemon: a microsoft365 provider, an oauth2 Mailbox, a ContactSync over it ----

const CLIENT_ID: &str = "switchboard-contacts-m365";
const CLIENT_SECRET: &str = "m365-contacts-client-s3cret";
const REFRESH: &str = "m365-contacts-refresh-token";
const ADDRESS: &str = "sales@corp.example";

fn daemon_config(
    port: u16,
    graph: &GraphContactsFake,
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
             oauth2:\n    clientId: {CLIENT_ID}\n    clientSecret: {{env: SB_M365_SECRET}}\n    authUrl: {oauth}/auth\n    tokenUrl: {oauth}/token\n    scopes: [Contacts.ReadWrite, offline_access]\n---\n\
             apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: box}}\nspec:\n  address: {ADDRESS}\n  owner: alice\n  load: {{enabled: false}}\n  oauth2RefreshToken: {{env: SB_M365_REFRESH}}\n---\n\
             apiVersion: switchboard/v1\nkind: ContactSync\nmetadata: {{name: book}}\nspec:\n  account: box\n  import: {{enabled: true}}\n  export: {{enabled: true}}\n",
            graph = graph.base,
            oauth = oauth.base,
        ),
    ));
    files
}

#[tokio::test]
async fn the_daemon_syncs_a_microsoft_365_mailboxs_contacts_and_never_shows_a_token() {
    // REQ: CS-01 (a manual "sync now" imports the mailbox's contacts and exports ours)
    // REQ: CS-04 (a run after the access token expired refreshes it and goes on)
    let oauth = OAuthFake::start(CLIENT_ID, CLIENT_SECRET, Duration::from_secs(3600)).await;
    oauth.allow(REFRESH, ADDRESS);
    let graph = GraphContactsFake::start(2).await;
    for (name, email) in [
        ("Kim Oh", "kim@acme.example"),
        ("Lou Ma", "lou@l.example"),
        ("Mo Ng", "mo@m.example"),
    ] {
        graph.add_contact(DEFAULT_FOLDER_ID, person(name, email));
    }
    let port = free_port();
    let mut daemon = Daemon::start(
        port,
        &daemon_config(port, &graph, &oauth),
        &[
            ("SB_TEST_SECRET", "unused"),
            ("SB_M365_SECRET", CLIENT_SECRET),
            ("SB_M365_REFRESH", REFRESH),
        ],
    );
    daemon.wait_ready().await;
    let created = support::records::request(
        &daemon,
        reqwest::Method::POST,
        "/api/v1/contacts",
        support::records::ROOT,
        &[],
        Some((
            "application/json",
            json!({"name": "Api Person", "emails": ["api.person@example.org"]}),
        )),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let sync_now = || async {
        let queued = daemon
            .post(
                "/api/v1/objects/ContactSync/book/sync",
                Some(support::ADMIN_TOKEN),
            )
            .await;
        assert_eq!(queued.status(), 202);
    };
    sync_now().await;
    eventually("the API contact reaches Microsoft 365", &daemon, || async {
        graph.by_email("api.person@example.org").is_some()
    })
    .await;
    eventually(
        "the run is recorded with what it moved",
        &daemon,
        || async {
            let objects = daemon.objects().await;
            support::find(&objects, "ContactSync", "book").is_some_and(|o| {
                o["state"] == "ready"
                    && o["sync"]["lastRun"]["itemsIn"] == 3
                    && o["sync"]["lastRun"]["itemsOut"] == 1
            })
        },
    )
    .await;

    // The access token expires: the next run refreshes it once and goes on.
    graph.expire_tokens();
    graph.add_contact(DEFAULT_FOLDER_ID, person("Nia Oz", "nia@n.example"));
    let grants = oauth.grants();
    sync_now().await;
    eventually("the next run imports the new contact", &daemon, || async {
        let objects = daemon.objects().await;
        support::find(&objects, "ContactSync", "book")
            .is_some_and(|o| o["sync"]["lastRun"]["itemsIn"] == 1)
    })
    .await;
    assert!(graph.unauthorized() >= 1);
    assert!(
        oauth.grants() > grants,
        "a fresh token from the token endpoint"
    );

    // Throttled: the run ends with the provider's Retry-After, not by sleeping.
    graph.throttle(1, 30);
    sync_now().await;
    eventually("the throttled run is shown", &daemon, || async {
        let objects = daemon.objects().await;
        support::find(&objects, "ContactSync", "book")
            .and_then(|o| o["lastError"].as_str().map(str::to_owned))
            .is_some_and(|e| e.contains("throttled"))
    })
    .await;

    // No token or secret anywhere an operator looks.
    let objects = daemon.objects().await.to_string();
    let metrics = daemon.metrics().await;
    let status = {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--config")
            .arg(daemon.config_dir())
            .arg("--state")
            .arg(daemon.dir.path().join("state.db"))
            .arg("status")
            .env("SB_TEST_SECRET", "unused")
            .env("SB_M365_SECRET", CLIENT_SECRET)
            .env("SB_M365_REFRESH", REFRESH)
            .output()
            .expect("run switchboard");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let mut secrets = graph.tokens_seen();
    assert!(!secrets.is_empty());
    secrets.extend([REFRESH.to_owned(), CLIENT_SECRET.to_owned()]);
    for (what, text) in [
        ("objects", &objects),
        ("metrics", &metrics),
        ("status", &status),
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

#[test]
fn a_microsoft_365_mailbox_without_oauth2_is_pending_with_what_to_do() {
    // REQ: CS-01 (the sync says plainly why it cannot run yet)
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("sync.yaml"),
        "apiVersion: switchboard/v1\nkind: User\nmetadata: {name: owner}\nspec: {displayName: Owner, email: owner@example.com}\n---\n\
         apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {name: m365}\nspec:\n  type: microsoft365\n  title: Microsoft 365\n  domains: [corp.example]\n---\n\
         apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {name: box}\nspec:\n  address: sales@corp.example\n  owner: owner\n  password: {env: SB_UNUSED}\n---\n\
         apiVersion: switchboard/v1\nkind: ContactSync\nmetadata: {name: book}\nspec:\n  account: box\n  import: {enabled: true}\n  export: {enabled: true}\n",
    )
    .expect("manifest");
    let set = switchboard::config::load(&[dir.path().to_path_buf()])
        .into_result()
        .unwrap_or_else(|d| panic!("valid config: {d:?}"));
    let object = set.object(Kind::ContactSync, "book").expect("object");
    let reason = match ContactSyncConnector::new(object, &set) {
        Ok(_) => panic!("no sync without a grant"),
        Err(reason) => reason,
    };
    assert!(reason.contains("oauth2"), "{reason}");
}
