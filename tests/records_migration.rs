//! Migration `0009_records` on a state file written by the release before it
//! (`tests/data/state-v8.db`, made by `tests/data/make_state_v8.sh`): mail contacts and chat
//! contacts become one set of contacts without losing a row or a link, and `/emails`'
//! `contactIds` and `/chats`' `contact.id` then name the same people.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use support::records::get;
use support::{ADMIN_TOKEN as ROOT, Daemon, base_config, free_port};

use switchboard::store::Store;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/state-v8.db")
}

/// Rows of `sql` (two integer columns) in a file, read with plain SQLite.
fn pairs(path: &Path, sql: &str) -> BTreeSet<(i64, i64)> {
    let conn = rusqlite::Connection::open(path).expect("open");
    let mut stmt = conn.prepare(sql).expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn the_migration_merges_chat_and_mail_contacts_without_losing_a_row_or_a_link() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    std::fs::copy(fixture(), &path).expect("copy the fixture");
    let letters_before = pairs(&path, "SELECT email_id, contact_id FROM email_contacts");
    let mail_contacts: BTreeMap<i64, String> = {
        let conn = rusqlite::Connection::open(&path).expect("open");
        let mut stmt = conn
            .prepare("SELECT id, email FROM contacts")
            .expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    let chats_before = pairs(&path, "SELECT id, contact_id FROM chats");
    assert_eq!(
        (mail_contacts.len(), chats_before.len()),
        (3, 5),
        "the fixture as made"
    );

    let store = Store::open(&path).expect("migrate");
    // Migrated to the latest schema: one version per migration file .
    let migrations =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/migrations"))
            .expect("migrations dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".sql"))
            })
            .count();
    assert_eq!(
        store.schema_version().expect("version"),
        i64::try_from(migrations).expect("count")
    );
    drop(store);

    // Every letter keeps its links, and every mail contact its id and address.
    assert_eq!(
        pairs(&path, "SELECT email_id, contact_id FROM email_contacts"),
        letters_before
    );
    let store = Store::open(&path).expect("reopen");
    for (id, email) in &mail_contacts {
        let contact = store.contact(*id).expect("read").expect("kept");
        assert!(contact.emails.contains(email), "{contact:?}");
    }
    // Every chat keeps its identity; every identity has a contact.
    assert_eq!(
        pairs(&path, "SELECT id, identity_id FROM chats"),
        chats_before
    );
    let linked = pairs(&path, "SELECT id, contact_id FROM chat_identities");
    assert_eq!(linked.len(), 5);
    let contact_of = |identity: i64| {
        linked
            .iter()
            .find(|(id, _)| *id == identity)
            .map(|(_, c)| *c)
            .expect("identity")
    };
    // Bob wrote on web (BOB@…) and app (bob@…) and got letters: mail contact 1.
    assert_eq!((contact_of(1), contact_of(2)), (1, 1));
    let bob = store.contact(1).expect("read").expect("bob");
    assert_eq!(
        bob.name.as_deref(),
        Some("Bob Web"),
        "a chat name fills an empty one"
    );
    assert_eq!(bob.identities.len(), 2);
    // Carol's two phone spellings are one number: one new contact, apart from the mail one.
    assert_eq!(contact_of(3), contact_of(4));
    let carol = store.contact(contact_of(3)).expect("read").expect("carol");
    assert_eq!(carol.phones, ["+14155550100"]);
    assert!(!mail_contacts.contains_key(&carol.id));
    // Dave gave nothing to match: a contact of his own.
    assert!(![1, 2, 3, carol.id].contains(&contact_of(5)));
    // The journal starts with every contact.
    let created: BTreeSet<i64> = store
        .changes_since(0, None, 100)
        .expect("journal")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(created.len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn after_the_migration_emails_and_chats_name_the_same_contacts() {
    let port = free_port();
    let mut config = base_config(port);
    config.push((
        "fixture-mailbox.yaml",
        "apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {name: ann}\nspec:\n  address: ann@example.com\n  owner: alice\n  password: {env: SB_TEST_SECRET}\n"
            .to_owned(),
    ));
    let mut daemon = Daemon::start_on_state(port, &config, &[], &fixture());
    daemon.wait_ready().await;

    let emails = get(&daemon, "/api/v1/emails", ROOT).await;
    assert_eq!(emails.status, 200, "{}", emails.body);
    let mut by_address: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let letters = emails.body["items"].as_array().expect("items");
    assert_eq!(letters.len(), 2);
    for letter in letters {
        for id in letter["contactIds"].as_array().expect("contactIds") {
            let id = id.as_str().expect("id");
            let contact = get(&daemon, &format!("/api/v1/contacts/{id}"), ROOT).await;
            assert_eq!(contact.status, 200, "letter contact {id}: {}", contact.body);
            for address in contact.body["emails"].as_array().expect("emails") {
                by_address
                    .entry(address.as_str().expect("address").to_owned())
                    .or_default()
                    .insert(id.to_owned());
            }
        }
    }
    let bob = by_address["bob@example.org"]
        .iter()
        .next()
        .expect("bob")
        .clone();

    let chats = get(&daemon, "/api/v1/chats?limit=100", ROOT).await;
    assert_eq!(chats.status, 200, "{}", chats.body);
    let chats = chats.body["items"].as_array().expect("items").clone();
    assert_eq!(chats.len(), 5);
    for chat in &chats {
        let id = chat["contact"]["id"].as_str().expect("contact id");
        let contact = get(&daemon, &format!("/api/v1/contacts/{id}"), ROOT).await;
        assert_eq!(contact.status, 200, "chat contact {id}: {}", contact.body);
        assert_eq!(chat["contact"]["name"], contact.body["name"]);
    }
    // Bob's two chats (web and app) and his letters name one contact, with both identities.
    assert_eq!(chats[0]["contact"]["id"], bob.as_str());
    assert_eq!(chats[1]["contact"]["id"], bob.as_str());
    let contact = get(&daemon, &format!("/api/v1/contacts/{bob}"), ROOT)
        .await
        .body;
    assert_eq!(
        contact["identities"],
        serde_json::json!([
            {"channel": "web", "externalId": "w1"},
            {"channel": "app", "externalId": "a1"}
        ])
    );
    let total = get(&daemon, "/api/v1/contacts", ROOT).await.body["total"].clone();
    assert_eq!(total, 5, "3 mail contacts + Carol + Dave");
}
