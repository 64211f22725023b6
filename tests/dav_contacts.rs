//! Two-way contact sync with a real Radicale (tests/support/radicale.rs): first import,
//! export of records made here (in-process and through the running daemon), a no-change run's
//! request count, a refused sync token, a 412 on PUT resolved by policy, deletes under both
//! policies, a foreign vCard property surviving a round trip, and no password in logs, status,
//! plan or metrics. Each test has its own Radicale user, so request counts do not mix.

mod support;

use std::process::Command;
use std::sync::Arc;

use chrono::Utc;
use reqwest::Method;
use serde_json::json;
use switchboard::clock::Clock;
use switchboard::config::{ConfigSet, Kind};
use switchboard::connector::{Connector, ConnectorError, SyncContext, SyncReport, resolve_secrets};
use switchboard::engine::apply::changes;
use switchboard::store::records::{AccountChanges, ContactChanges, ContactQuery, RecordKind};
use switchboard::store::{Store, StoreHandle};
use switchboard::telemetry::Metrics;
use tokio_util::sync::CancellationToken;

use support::faults::Fault;
use support::radicale::radicale;
use support::{Daemon, eventually, free_port};

const PASSWORD: &str = "dav-Pa55-w0rd-q7";

/// One test's config, store and Radicale user with an address book.
struct Rig {
    _dir: tempfile::TempDir,
    set: ConfigSet,
    store: StoreHandle,
    metrics: Metrics,
    user: String,
    book: String,
}

/// `spec` is the ContactSync's spec after `account`, indented two spaces.
async fn rig(user: &str, spec: &str) -> Rig {
    rig_via(user, spec, &radicale().base()).await
}

/// As [`rig`], with the DavAccount's URL at `base` (a proxy in front of Radicale).
async fn rig_via(user: &str, spec: &str, base: &str) -> Rig {
    let book = radicale().user_with_addressbook(user, PASSWORD).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    std::fs::write(config.join("dav-password.txt"), PASSWORD).expect("password file");
    std::fs::write(
        config.join("dav.yaml"),
        format!(
            "apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: owner}}\nspec: {{displayName: Owner, email: owner@example.com}}\n---\n\
             apiVersion: switchboard/v1\nkind: DavAccount\nmetadata: {{name: home}}\nspec:\n  user: owner\n  url: {base}/\n  username: {user}\n  password: {{file: dav-password.txt}}\n---\n\
             apiVersion: switchboard/v1\nkind: ContactSync\nmetadata: {{name: book}}\nspec:\n  account: home\n{spec}\n",
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
        book,
    }
}

const TWO_WAY: &str = "  import: {enabled: true}\n  export: {enabled: true}\n";

impl Rig {
    async fn try_sync(&self) -> Result<SyncReport, ConnectorError> {
        let object = self
            .set
            .object(Kind::ContactSync, "book")
            .expect("sync object");
        let connector: Arc<dyn Connector> =
            switchboard::sync::ContactSyncConnector::new(object, &self.set)
                .map(|c| Arc::new(c) as Arc<dyn Connector>)
                .expect("a ContactSync over a DavAccount has a connector");
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

    async fn put(&self, name: &str, card: &str) -> String {
        radicale()
            .put_card(&self.user, PASSWORD, &format!("{}{name}", self.book), card)
            .await
    }

    async fn get(&self, href: &str) -> (u16, Option<String>, String) {
        let url = format!("{}{href}", radicale().base());
        radicale().get(&self.user, PASSWORD, &url).await
    }

    async fn items(&self) -> Vec<String> {
        radicale().items(&self.user, PASSWORD, &self.book).await
    }

    async fn contacts(&self) -> Vec<switchboard::store::records::Contact> {
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

    async fn contact_with(&self, email: &str) -> switchboard::store::records::Contact {
        let email = email.to_owned();
        self.contacts()
            .await
            .into_iter()
            .find(|c| c.emails.contains(&email))
            .unwrap_or_else(|| panic!("no contact with {email}"))
    }

    /// The remote href of contact `id`.
    async fn href_of(&self, id: i64) -> Option<String> {
        self.store
            .call(move |s| s.sync_record("ContactSync/book", RecordKind::Contact, id))
            .await
            .expect("sync record")
            .map(|r| r.remote_id)
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

    fn conflicts(&self) -> u64 {
        self.metrics
            .sync_conflicts_total
            .with_label_values(&["ContactSync", "book"])
            .get()
    }
}

fn card(uid: &str, extra: &str) -> String {
    format!("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\n{extra}END:VCARD\r\n")
}

#[tokio::test]
async fn first_import_maps_the_card_and_a_no_change_run_costs_one_request() {
    // REQ: BX-01 (CardDAV import with RFC 6578 sync tokens: a no-change run is one request)
    // REQ: CS-04 (incremental: only what changed since the previous sync)
    let rig = rig("dav-import", TWO_WAY).await;
    rig.store
        .call(|s| {
            s.create_account(
                &AccountChanges {
                    name: Some("Acme".into()),
                    domains: None,
                },
                "User/owner",
                Utc::now(),
            )
            .expect("account");
            Ok(())
        })
        .await
        .expect("store");
    rig.put(
        "ann.vcf",
        &card(
            "ann-1",
            "FN:Ann Lee\r\nN:Lee;Ann;;;\r\nEMAIL;TYPE=work:Ann@Example.org\r\nTEL;TYPE=cell:+1 (415) 555-0100\r\n\
             ORG:Acme;Sales\r\nTITLE:CTO\r\nCATEGORIES:vip,partner\r\n",
        ),
    )
    .await;
    rig.put(
        "bo.vcf",
        &card("bo-1", "FN:Bo\r\nN:;Bo;;;\r\nEMAIL:bo@example.net\r\n"),
    )
    .await;
    let report = rig.sync().await;
    assert_eq!(report.items_in, 2);
    assert_eq!(report.items_out, 0, "imported records are not echoed back");
    let ann = rig.contact_with("ann@example.org").await;
    assert_eq!(ann.name.as_deref(), Some("Ann Lee"));
    assert_eq!(ann.phones, ["+14155550100"]);
    assert_eq!(ann.job_title.as_deref(), Some("CTO"));
    assert_eq!(ann.tags, ["partner", "vip"]);
    assert_eq!(
        ann.account.as_ref().map(|a| a.name.as_str()),
        Some("Acme"),
        "ORG links the one account of that name (CS-02)"
    );
    assert_eq!(rig.contacts().await.len(), 2);

    let before = radicale().requests_by(&rig.user);
    let report = rig.sync().await;
    assert_eq!(report, SyncReport::default());
    assert_eq!(
        radicale().requests_by(&rig.user) - before,
        1,
        "a no-change run is one sync-collection REPORT; log:\n{}",
        radicale().log()
    );

    // A change on the server: only that card is read.
    rig.put(
        "bo.vcf",
        &card(
            "bo-1",
            "FN:Bo Brown\r\nN:Brown;Bo;;;\r\nEMAIL:bo@example.net\r\n",
        ),
    )
    .await;
    assert_eq!(rig.sync().await.items_in, 1);
    assert_eq!(
        rig.contact_with("bo@example.net").await.name.as_deref(),
        Some("Bo Brown")
    );
    assert_eq!(rig.contacts().await.len(), 2);
}

#[tokio::test]
async fn a_contact_made_here_is_exported_and_a_foreign_property_survives_a_round_trip() {
    // REQ: CS-04 (two-way: a record made here is written there, a change here updates it)
    // REQ: BX-01
    let rig = rig("dav-export", TWO_WAY).await;
    let id = rig
        .create_local(ContactChanges {
            name: Some(Some("Cy Local".into())),
            emails: Some(vec!["cy@example.org".into()]),
            phones: Some(vec!["+49 30 1234567".into()]),
            tags: Some(vec!["lead".into()]),
            ..ContactChanges::default()
        })
        .await;
    assert_eq!(rig.sync().await.items_out, 1);
    let href = rig.href_of(id).await.expect("linked after the export");
    let (status, _, text) = rig.get(&href).await;
    assert_eq!(status, 200);
    assert!(text.contains("FN:Cy Local"), "{text}");
    assert!(
        text.contains("EMAIL;TYPE=INTERNET:cy@example.org"),
        "{text}"
    );
    assert!(text.contains("TEL:+49301234567"), "{text}");
    assert!(text.contains("CATEGORIES:lead"), "{text}");
    assert!(text.contains("UID:switchboard-"), "{text}");
    assert_eq!(rig.items().await.len(), 1);
    assert_eq!(
        rig.sync().await,
        SyncReport::default(),
        "our own write is not re-imported"
    );

    // Someone adds properties Switchboard does not model, with another client.
    let (_, etag, text) = rig.get(&href).await;
    let foreign = text.replace(
        "END:VCARD",
        "X-FOREIGN;X-PARAM=\"a:b\":keep me\r\nADR;TYPE=work:;;1 Main St;Springfield;;12345;US\r\nEND:VCARD",
    );
    let url = format!("{}{href}", radicale().base());
    let (status, _, body) = radicale()
        .request(
            &rig.user,
            PASSWORD,
            "PUT",
            &url,
            &[("if-match", etag.as_deref().expect("etag"))],
            Some(foreign),
        )
        .await;
    assert!(status == 201 || status == 204, "{status} {body}");
    assert_eq!(rig.sync().await.items_in, 1);

    // A change here patches only the modelled properties.
    rig.update_local(
        id,
        ContactChanges {
            job_title: Some(Some("Buyer".into())),
            phones: Some(vec!["+49301234567".into(), "+4930765432".into()]),
            ..ContactChanges::default()
        },
    )
    .await;
    assert_eq!(rig.sync().await.items_out, 1);
    let (_, _, text) = rig.get(&href).await;
    assert!(
        text.contains("X-FOREIGN;X-PARAM=\"a:b\":keep me\r\n"),
        "{text}"
    );
    assert!(
        text.contains("ADR;TYPE=work:;;1 Main St;Springfield;;12345;US\r\n"),
        "{text}"
    );
    assert!(text.contains("TITLE:Buyer"), "{text}");
    assert!(text.contains("TEL:+4930765432"), "{text}");
    assert_eq!(rig.items().await.len(), 1, "updated in place, not copied");
}

#[tokio::test]
async fn a_refused_sync_token_falls_back_to_a_listing_without_duplicates() {
    // REQ: BX-01 (an expired or refused token falls back to a full listing)
    let rig = rig("dav-token", TWO_WAY).await;
    rig.put("a.vcf", &card("a", "FN:A\r\nEMAIL:a@example.org\r\n"))
        .await;
    rig.put("b.vcf", &card("b", "FN:B\r\nEMAIL:b@example.org\r\n"))
        .await;
    assert_eq!(rig.sync().await.items_in, 2);
    let scope = format!("token {}", rig.book);
    rig.store
        .call(move |s| {
            s.set_sync_checkpoint(
                "ContactSync/book",
                &scope,
                Some("http://radicale.org/ns/sync/0000000000000000"),
                Utc::now(),
            )
        })
        .await
        .expect("spoil the token");
    rig.put("c.vcf", &card("c", "FN:C\r\nEMAIL:c@example.org\r\n"))
        .await;
    let url = format!("{}a.vcf", rig.book);
    let (status, _, _) = radicale()
        .request(&rig.user, PASSWORD, "DELETE", &url, &[], None)
        .await;
    assert_eq!(status, 200);

    let report = rig.sync().await;
    assert_eq!(
        report.items_in, 2,
        "the new card read, the removed one unlinked"
    );
    assert!(
        radicale().log().contains("invalid sync token"),
        "the server refused the token"
    );
    let contacts = rig.contacts().await;
    assert_eq!(contacts.len(), 3, "no duplicates: {contacts:?}");
    let a = rig.contact_with("a@example.org").await;
    assert_eq!(
        rig.href_of(a.id).await,
        None,
        "deletes: keep unlinks only (CS-05)"
    );
    let before = radicale().requests_by(&rig.user);
    assert_eq!(rig.sync().await, SyncReport::default());
    assert_eq!(
        radicale().requests_by(&rig.user) - before,
        1,
        "the new token works"
    );
}

/// What a server without RFC 6578 answers to `sync-collection`.
const NO_SYNC_COLLECTION: &str =
    "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// What a busy server answers: 429 with the time to wait.
const TOO_MANY_REQUESTS: &str = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 120\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn a_429_ends_the_run_throttled_with_the_servers_retry_after_and_the_next_run_completes() {
    // REQ: CS-04 (a throttled run loses nothing: the next one completes without duplicates)
    let proxy = support::faults::FaultProxy::start(radicale().port).await;
    let base = format!("http://127.0.0.1:{}", proxy.port());
    let rig = rig_via("dav-throttled", TWO_WAY, &base).await;
    rig.put(
        "a.vcf",
        &card("a", "FN:Ann\r\nN:;Ann;;;\r\nEMAIL:a@example.org\r\n"),
    )
    .await;
    proxy.arm(b"sync-collection", Fault::Answer(TOO_MANY_REQUESTS));
    match rig.try_sync().await {
        Err(ConnectorError::Throttled { retry_after, .. }) => {
            assert_eq!(retry_after, std::time::Duration::from_secs(120));
        }
        other => panic!("expected a throttled run, got {other:?}"),
    }
    assert_eq!(rig.sync().await.items_in, 1);
    assert_eq!(rig.sync().await, SyncReport::default());
    assert_eq!(rig.contacts().await.len(), 1);
}

#[tokio::test]
async fn a_server_without_sync_collection_is_synced_by_comparing_etags() {
    // REQ: BX-01 (a server without sync-collection: ETag comparison of a PROPFIND listing;
    // a no-change run is still one request)
    // REQ: CS-04 (only what changed is read)
    let proxy = support::faults::FaultProxy::start(radicale().port).await;
    proxy.arm_every(b"sync-collection", Fault::Answer(NO_SYNC_COLLECTION));
    let base = format!("http://127.0.0.1:{}", proxy.port());
    let rig = rig_via("dav-no-sync", TWO_WAY, &base).await;
    for name in ["a", "b", "c"] {
        rig.put(
            &format!("{name}.vcf"),
            &card(
                name,
                &format!("FN:{name}\r\nN:;{name};;;\r\nEMAIL:{name}@example.org\r\n"),
            ),
        )
        .await;
    }
    assert_eq!(rig.sync().await.items_in, 3);
    assert_eq!(proxy.taken(), 1, "the REPORT was tried once and refused");
    assert_eq!(rig.contacts().await.len(), 3);

    let before = radicale().requests_by(&rig.user);
    assert_eq!(rig.sync().await, SyncReport::default());
    assert_eq!(
        radicale().requests_by(&rig.user) - before,
        1,
        "a no-change run is one PROPFIND; log:\n{}",
        radicale().log()
    );
    assert_eq!(
        proxy.taken(),
        1,
        "the refusal is remembered: no REPORT tried again"
    );

    // b changed and c removed there, d added: read b and d, unlink c.
    rig.put(
        "b.vcf",
        &card(
            "b",
            "FN:Bea Changed\r\nN:Changed;Bea;;;\r\nEMAIL:b@example.org\r\n",
        ),
    )
    .await;
    rig.put(
        "d.vcf",
        &card("d", "FN:d\r\nN:;d;;;\r\nEMAIL:d@example.org\r\n"),
    )
    .await;
    let url = format!("{}c.vcf", rig.book);
    let (status, _, _) = radicale()
        .request(&rig.user, PASSWORD, "DELETE", &url, &[], None)
        .await;
    assert_eq!(status, 200);
    let before = radicale().requests_by(&rig.user);
    let report = rig.sync().await;
    assert_eq!(report.items_in, 3, "b and d read, c unlinked: {report:?}");
    assert_eq!(
        radicale().requests_by(&rig.user) - before,
        2,
        "one PROPFIND and one multiget of the two changed items"
    );
    assert_eq!(
        rig.contact_with("b@example.org").await.name.as_deref(),
        Some("Bea Changed")
    );
    let c = rig.contact_with("c@example.org").await;
    assert_eq!(
        rig.href_of(c.id).await,
        None,
        "deletes: keep unlinks (CS-05)"
    );
    assert_eq!(rig.contacts().await.len(), 4, "nothing doubled");

    // A contact made here is still exported through the same server.
    let id = rig
        .create_local(ContactChanges {
            name: Some(Some("Made Here".into())),
            emails: Some(vec!["here@example.org".into()]),
            ..ContactChanges::default()
        })
        .await;
    assert_eq!(rig.sync().await.items_out, 1);
    let href = rig.href_of(id).await.expect("linked");
    assert!(rig.items().await.contains(&href));
    assert_eq!(
        rig.sync().await,
        SyncReport::default(),
        "its own write is not read back"
    );
}

#[tokio::test]
async fn a_412_on_put_is_a_conflict_resolved_by_policy_without_losing_a_write() {
    // REQ: CS-04 (a record changed on both sides: the policy decides, nothing is lost)
    // REQ: BX-02 (conflict.union merges both sides' phones)
    let rig = rig(
        "dav-412",
        "  import: {enabled: false}\n  export: {enabled: true}\n  conflict: {winner: switchboard, union: [phones]}\n",
    )
    .await;
    let id = rig
        .create_local(ContactChanges {
            name: Some(Some("Dee".into())),
            emails: Some(vec!["dee@example.org".into()]),
            phones: Some(vec!["+14155550101".into()]),
            ..ContactChanges::default()
        })
        .await;
    rig.sync().await;
    let href = rig.href_of(id).await.expect("exported");
    // Changed there (with another client) ...
    let (_, etag, text) = rig.get(&href).await;
    let theirs = text
        .replace("FN:Dee", "FN:Dee There")
        .replace("END:VCARD", "TEL:+14155550202\r\nX-THEIRS:1\r\nEND:VCARD");
    let url = format!("{}{href}", radicale().base());
    let (status, _, _) = radicale()
        .request(
            &rig.user,
            PASSWORD,
            "PUT",
            &url,
            &[("if-match", etag.as_deref().expect("etag"))],
            Some(theirs),
        )
        .await;
    assert!(status == 201 || status == 204, "{status}");
    // ... and here: the PUT with the old ETag meets a 412.
    rig.update_local(
        id,
        ContactChanges {
            name: Some(Some("Dee Here".into())),
            phones: Some(vec!["+14155550101".into(), "+14155550303".into()]),
            ..ContactChanges::default()
        },
    )
    .await;
    let report = rig.sync().await;
    assert_eq!(report.items_out, 1);
    assert_eq!(rig.conflicts(), 1, "counted in sync_conflicts_total");
    assert!(
        radicale().log().contains("412 Precondition Failed"),
        "the write met a 412"
    );
    let (_, _, text) = rig.get(&href).await;
    assert!(text.contains("FN:Dee Here"), "winner: switchboard\n{text}");
    for phone in ["+14155550101", "+14155550202", "+14155550303"] {
        assert!(text.contains(phone), "union keeps {phone}\n{text}");
    }
    assert!(
        text.contains("X-THEIRS:1"),
        "their other change stays\n{text}"
    );
    let here = rig.contact_with("dee@example.org").await;
    assert_eq!(here.name.as_deref(), Some("Dee Here"));
    assert_eq!(here.phones.len(), 3, "{:?}", here.phones);
}

#[tokio::test]
async fn a_conflict_seen_on_pull_keeps_the_newer_remote_change_and_unions_tags() {
    // REQ: CS-04 (newest wins), BX-02 (union of tags)
    let rig = rig(
        "dav-pull-conflict",
        "  import: {enabled: true}\n  export: {enabled: true}\n  conflict: {union: [tags]}\n",
    )
    .await;
    rig.put(
        "e.vcf",
        &card("e", "FN:Eve\r\nEMAIL:eve@example.org\r\nCATEGORIES:one\r\n"),
    )
    .await;
    rig.sync().await;
    let eve = rig.contact_with("eve@example.org").await;
    rig.update_local(
        eve.id,
        ContactChanges {
            name: Some(Some("Eve Here".into())),
            tags: Some(vec!["one".into(), "here".into()]),
            ..ContactChanges::default()
        },
    )
    .await;
    let later = (Utc::now() + chrono::Duration::minutes(5)).format("%Y%m%dT%H%M%SZ");
    rig.put(
        "e.vcf",
        &card(
            "e",
            &format!(
                "FN:Eve There\r\nEMAIL:eve@example.org\r\nCATEGORIES:one,there\r\nREV:{later}\r\n"
            ),
        ),
    )
    .await;
    rig.sync().await;
    assert_eq!(rig.conflicts(), 1);
    let record = rig
        .store
        .call(|s| s.sync_run_records())
        .await
        .expect("run records")
        .remove("ContactSync/book")
        .expect("a run record");
    assert_eq!(
        (record.last_conflicts, record.conflicts_total),
        (1, 1),
        "the conflict is in the run record the objects view shows"
    );
    let eve = rig.contact_with("eve@example.org").await;
    assert_eq!(eve.name.as_deref(), Some("Eve There"), "the later REV wins");
    assert_eq!(eve.tags, ["here", "one", "there"]);
    let (_, _, text) = rig.get(&rig.href_of(eve.id).await.expect("linked")).await;
    assert!(text.contains("here"), "the merged tags went back: {text}");
    assert!(text.contains("FN:Eve There"), "{text}");
}

#[tokio::test]
async fn deletes_keep_unlinks_and_propagate_deletes_only_what_was_synced() {
    // REQ: CS-05 (deletes are not carried over by default; `propagate` carries them)
    let keep = rig("dav-keep", TWO_WAY).await;
    keep.put("k.vcf", &card("k", "FN:Kay\r\nEMAIL:kay@example.org\r\n"))
        .await;
    keep.sync().await;
    let kay = keep.contact_with("kay@example.org").await;
    let url = format!("{}k.vcf", keep.book);
    radicale()
        .request(&keep.user, PASSWORD, "DELETE", &url, &[], None)
        .await;
    keep.sync().await;
    assert!(keep.href_of(kay.id).await.is_none(), "unlinked");
    assert_eq!(keep.contacts().await.len(), 1, "kept here");
    let other = keep
        .create_local(ContactChanges {
            name: Some(Some("Lou".into())),
            ..ContactChanges::default()
        })
        .await;
    keep.sync().await;
    keep.store
        .call(move |s| {
            s.delete_contact(other, None, "User/owner", Utc::now())
                .expect("delete");
            Ok(())
        })
        .await
        .expect("store");
    keep.sync().await;
    let items = keep.items().await;
    assert_eq!(items.len(), 1, "lou deleted here, kept there: {items:?}");

    let prop = rig(
        "dav-propagate",
        "  import: {enabled: true}\n  export: {enabled: true}\n  deletes: propagate\n",
    )
    .await;
    prop.put("m.vcf", &card("m", "FN:Mo\r\nEMAIL:mo@example.org\r\n"))
        .await;
    prop.put("n.vcf", &card("n", "FN:Ned\r\nEMAIL:ned@example.org\r\n"))
        .await;
    prop.sync().await;
    let mo = prop.contact_with("mo@example.org").await;
    prop.store
        .call(move |s| {
            s.delete_contact(mo.id, None, "User/owner", Utc::now())
                .expect("delete");
            Ok(())
        })
        .await
        .expect("store");
    let url = format!("{}n.vcf", prop.book);
    radicale()
        .request(&prop.user, PASSWORD, "DELETE", &url, &[], None)
        .await;
    prop.sync().await;
    let items = prop.items().await;
    assert!(
        items.iter().all(|h| !h.ends_with("m.vcf")),
        "deleted there: {items:?}"
    );
    assert!(prop.contacts().await.is_empty(), "ned deleted here");
}

#[tokio::test]
async fn the_daemon_exports_an_api_contact_and_never_shows_the_password() {
    // REQ: CS-04 (a record made through the API reaches the server on "sync now")
    // REQ: BX-01
    let user = "dav-daemon";
    let book = radicale().user_with_addressbook(user, PASSWORD).await;
    let port = free_port();
    let mut files = support::base_config(port);
    files.push(support::records::admin_file());
    files.push(support::radicale::contact_sync_manifest(
        &radicale().base(),
        user,
        "",
    ));
    let env = [("SB_TEST_SECRET", "unused"), ("SB_DAV_PASSWORD", PASSWORD)];
    let mut daemon = Daemon::start(port, &files, &env);
    daemon.wait_ready().await;
    let created = support::records::request(
        &daemon,
        Method::POST,
        "/api/v1/contacts",
        support::records::ROOT,
        &[],
        Some((
            "application/json",
            json!({"name": "Api Person", "emails": ["api.person@example.org"], "phones": ["+1 415 555 0199"]}),
        )),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let queued = daemon
        .post(
            "/api/v1/objects/ContactSync/book/sync",
            Some(support::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(queued.status(), 202);
    eventually("the API contact reaches Radicale", &daemon, || async {
        radicale().items(user, PASSWORD, &book).await.len() == 1
    })
    .await;
    let href = radicale().items(user, PASSWORD, &book).await.remove(0);
    let (_, _, text) = radicale()
        .get(user, PASSWORD, &format!("{}{href}", radicale().base()))
        .await;
    assert!(text.contains("api.person@example.org"), "{text}");
    assert!(text.contains("TEL:+14155550199"), "{text}");
    eventually("the sync is recorded", &daemon, || async {
        let objects = daemon.objects().await;
        support::find(&objects, "ContactSync", "book")
            .is_some_and(|o| o["state"] == "ready" && !o["lastSuccessAt"].is_null())
    })
    .await;

    // The password is nowhere an operator looks.
    let objects = daemon.objects().await.to_string();
    let metrics = daemon.metrics().await;
    let cli = |verb: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--config")
            .arg(daemon.config_dir())
            .arg("--state")
            .arg(daemon.dir.path().join("state.db"))
            .arg(verb)
            .env("SB_TEST_SECRET", "unused")
            .env("SB_DAV_PASSWORD", PASSWORD)
            .output()
            .expect("run switchboard");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let status = cli("status");
    let plan = cli("plan");
    assert!(
        status.contains("ContactSync/book") || status.contains("book"),
        "{status}"
    );
    for (what, text) in [
        ("objects", &objects),
        ("metrics", &metrics),
        ("status", &status),
        ("plan", &plan),
        ("log", &daemon.stderr()),
    ] {
        assert!(
            !text.contains(PASSWORD),
            "the password is in the {what}:\n{text}"
        );
    }
}

#[tokio::test]
async fn switchboard_sync_runs_a_contact_sync_in_process_without_a_daemon() {
    // REQ: BX-01 (`switchboard sync ContactSync/NAME` works with no daemon running)
    let user = "dav-cli";
    let book = radicale().user_with_addressbook(user, PASSWORD).await;
    radicale()
        .put_card(
            user,
            PASSWORD,
            &format!("{book}f.vcf"),
            &card("f", "FN:Fay\r\nEMAIL:fay@example.org\r\n"),
        )
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    let port = free_port(); // nothing listens there: the CLI runs the sync itself
    std::fs::write(config.join("dav-password.txt"), PASSWORD).expect("password file");
    std::fs::write(
        config.join("dav.yaml"),
        format!(
            "apiVersion: switchboard/v1\nkind: Settings\nmetadata: {{name: default}}\nspec:\n  siteUrl: http://127.0.0.1:{port}\n  listen: 127.0.0.1:{port}\n---\n\
             apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: owner}}\nspec: {{displayName: Owner, email: owner@example.com}}\n---\n\
             apiVersion: switchboard/v1\nkind: DavAccount\nmetadata: {{name: home}}\nspec:\n  user: owner\n  url: {book}\n  username: {user}\n  password: {{file: dav-password.txt}}\n---\n\
             apiVersion: switchboard/v1\nkind: ContactSync\nmetadata: {{name: book}}\nspec:\n  account: home\n{TWO_WAY}",
        ),
    )
    .expect("manifest");
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--config")
            .arg(&config)
            .arg("--state")
            .arg(dir.path().join("state.db"))
            .args(args)
            .output()
            .expect("run switchboard");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = cli(&["sync", "ContactSync/book"]);
    assert!(ok, "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    let (ok, status) = cli(&["status", "--format", "json"]);
    assert!(ok, "{status}");
    assert!(!status.contains(PASSWORD), "{status}");
    let rows: serde_json::Value = serde_json::from_str(
        status
            .lines()
            .skip_while(|l| !l.starts_with(['[', '{']))
            .collect::<Vec<_>>()
            .join("\n")
            .as_str(),
    )
    .unwrap_or_else(|e| panic!("status JSON: {e}\n{status}"));
    let rows = rows
        .as_array()
        .cloned()
        .or_else(|| rows["items"].as_array().cloned())
        .unwrap_or_default();
    let row = rows
        .iter()
        .find(|r| r["kind"] == "ContactSync" && r["name"] == "book")
        .unwrap_or_else(|| panic!("no ContactSync/book in {status}"));
    assert_eq!(row["itemsIn"], 1, "{row}");
    assert_eq!(row["state"], "ready", "{row}");
    assert_eq!(
        row["sync"]["lastRun"],
        json!({"itemsIn": 1, "itemsOut": row["itemsOut"], "conflicts": 0}),
        "the in-process run records its run as the daemon's does: {row}"
    );
}

#[tokio::test]
async fn a_card_linked_to_a_contact_made_here_gets_what_the_contact_knew() {
    // REQ: CS-04 (both sides end with the union of what each knew of the person)
    let rig = rig("dav-first-link", TWO_WAY).await;
    let id = rig
        .create_local(ContactChanges {
            name: Some(Some("Gil".into())),
            emails: Some(vec!["gil@example.org".into()]),
            phones: Some(vec!["+14155550111".into()]),
            ..ContactChanges::default()
        })
        .await;
    rig.sync().await; // exported as a new card
    rig.put(
        "gil-other.vcf",
        &card(
            "gil-other",
            "FN:Gil\r\nEMAIL:gil@example.org\r\nTEL:+14155550222\r\nX-KEEP:yes\r\n",
        ),
    )
    .await;
    // A second card for the same address: no second contact, and the card hears of the phone.
    rig.sync().await;
    assert_eq!(rig.contacts().await.len(), 1);
    let gil = rig.contact_with("gil@example.org").await;
    assert_eq!(gil.id, id);
    assert_eq!(gil.phones, ["+14155550111", "+14155550222"]);
    let href = rig.href_of(id).await.expect("linked");
    let (_, _, text) = rig.get(&href).await;
    assert!(
        text.contains("+14155550111") && text.contains("+14155550222"),
        "{text}"
    );
    let before = radicale().requests_by(&rig.user);
    assert_eq!(rig.sync().await, SyncReport::default(), "settled");
    assert_eq!(radicale().requests_by(&rig.user) - before, 1);
}

#[test]
fn validate_checks_a_dav_account_and_the_sync_over_it() {
    // REQ: BX-01 (a DavAccount is a sync account; its user must exist, google settings refused)
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("dav.yaml"),
        "apiVersion: switchboard/v1\nkind: DavAccount\nmetadata: {name: home}\nspec:\n  user: nobody\n  url: https://cloud.example.com/remote.php/dav\n  username: ann\n  password: {env: DAV_PASSWORD}\n---\n\
         apiVersion: switchboard/v1\nkind: ContactSync\nmetadata: {name: book}\nspec:\n  account: home\n  import: {enabled: true}\n  export: {enabled: true}\n  google: {tag: mine}\n  conflict: {winner: remote, union: [emails]}\n  deletes: propagate\n---\n\
         apiVersion: switchboard/v1\nkind: ContactSync\nmetadata: {name: stray}\nspec:\n  account: missing\n  import: {enabled: true}\n  export: {enabled: false}\n",
    )
    .expect("manifest");
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(dir.path())
        .arg("validate")
        .output()
        .expect("run switchboard");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("DavAccount/home") && text.contains("nobody"),
        "{text}"
    );
    assert!(
        text.contains("`google` settings apply to a GoogleAccount only"),
        "{text}"
    );
    assert!(text.contains("account `missing` does not exist"), "{text}");
    assert!(
        text.contains("or a DavAccount"),
        "the hint names DavAccount: {text}"
    );
}

#[tokio::test]
async fn the_objects_view_shows_runs_and_switchboard_sync_asks_the_daemon() {
    // REQ: BX-01 (status per sync object: last sync, items each way in the last run and in
    // all, conflicts, current error; `switchboard sync ContactSync/NAME` through the daemon)
    // REQ: CS-04
    let user = "dav-status";
    let book = radicale().user_with_addressbook(user, PASSWORD).await;
    for name in ["s1", "s2"] {
        radicale()
            .put_card(
                user,
                PASSWORD,
                &format!("{book}{name}.vcf"),
                &card(
                    name,
                    &format!("FN:{name}\r\nN:;{name};;;\r\nEMAIL:{name}@example.org\r\n"),
                ),
            )
            .await;
    }
    let port = free_port();
    let mut files = support::base_config(port);
    files.push(support::records::admin_file());
    files.push(support::radicale::contact_sync_manifest(
        &radicale().base(),
        user,
        "",
    ));
    let env = [("SB_TEST_SECRET", "unused"), ("SB_DAV_PASSWORD", PASSWORD)];
    let mut daemon = Daemon::start(port, &files, &env);
    daemon.wait_ready().await;
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--config")
            .arg(daemon.config_dir())
            .arg("--state")
            .arg(daemon.dir.path().join("state.db"))
            .args(args)
            .env("SB_TEST_SECRET", "unused")
            .env("SB_DAV_PASSWORD", PASSWORD)
            .env("SWITCHBOARD_TOKEN", support::ADMIN_TOKEN)
            .output()
            .expect("run switchboard");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = cli(&["sync", "ContactSync/book"]);
    assert!(ok, "{text}");
    assert!(text.contains("requested from the running daemon"), "{text}");
    let done = |items_in: u64| {
        let daemon = &daemon;
        move || async move {
            let objects = daemon.objects().await;
            support::find(&objects, "ContactSync", "book").is_some_and(|o| {
                o["state"] == "ready" && o["sync"]["lastRun"]["itemsIn"] == items_in
            })
        }
    };
    eventually("the daemon ran the requested sync", &daemon, done(2)).await;

    // One more card there and a contact made here: the second run moves one each way.
    radicale()
        .put_card(
            user,
            PASSWORD,
            &format!("{book}s3.vcf"),
            &card("s3", "FN:s3\r\nN:;s3;;;\r\nEMAIL:s3@example.org\r\n"),
        )
        .await;
    let created = support::records::request(
        &daemon,
        Method::POST,
        "/api/v1/contacts",
        support::records::ROOT,
        &[],
        Some((
            "application/json",
            json!({"name": "Here", "emails": ["here@example.org"]}),
        )),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let (ok, text) = cli(&["sync", "ContactSync/book"]);
    assert!(ok, "{text}");
    eventually("the second run is recorded", &daemon, done(1)).await;
    let objects = daemon.objects().await;
    let o = support::find(&objects, "ContactSync", "book").expect("the sync object");
    let mut shape = o.clone();
    for volatile in ["lastSuccessAt", "appliedAt"] {
        assert!(o[volatile].is_string(), "{volatile} in {o}");
        shape[volatile] = json!("<time>");
    }
    assert_eq!(
        shape,
        json!({
            "kind": "ContactSync", "name": "book", "state": "ready", "reason": null,
            "lastSuccessAt": "<time>", "lastError": null, "lastErrorAt": null,
            "runsOk": 2, "runsFailed": 0, "itemsIn": 3, "itemsOut": 1,
            "generation": 1, "appliedAt": "<time>",
            "sync": {
                "lastRun": {"itemsIn": 1, "itemsOut": 1, "conflicts": 0},
                "conflictsTotal": 0,
                "currentError": null,
                "progress": null
            }
        }),
        "the objects view of a contact sync"
    );
    let metrics = daemon.metrics().await;
    for line in [
        r#"switchboard_sync_runs_total{kind="ContactSync",name="book",result="success"} 2"#,
        r#"switchboard_sync_items_total{direction="in",kind="ContactSync",name="book"} 3"#,
        r#"switchboard_sync_items_total{direction="out",kind="ContactSync",name="book"} 1"#,
        r#"switchboard_sync_last_success_timestamp_seconds{kind="ContactSync",name="book"}"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    let (ok, status) = cli(&["status"]);
    assert!(ok, "{status}");
    assert!(
        status.contains("last run: 1 in, 1 out, 0 conflicts; 0 conflicts in all"),
        "{status}"
    );
}
