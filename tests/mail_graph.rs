//! Microsoft 365 through Microsoft Graph (EP-05) against a fake that follows Graph's
//! documented wire format (tests/support/graph_fake.rs) and the fake token endpoint: delta
//! paging and resuming from the deltaLink, 429 with Retry-After, 410 / syncStateNotFound →
//! full resync without duplicates, attachment metadata, `@removed` entries (kept, marked),
//! moves between folders, and sendMail from the durable outbox.

#[path = "support/graph_fake.rs"]
mod graph_fake;
#[path = "support/oauth_fake.rs"]
mod oauth_fake;

use std::sync::Arc;
use std::time::Duration;

use switchboard::clock::Clock;
use switchboard::config::{ConfigSet, Kind};
use switchboard::connector::resolve_secrets;
use switchboard::connector::{Connector, SyncContext, SyncReport};
use switchboard::engine::apply::changes;
use switchboard::mail::smtp::{Draft, SENT_FOLDER, compose};
use switchboard::store::Store;
use switchboard::store::StoreHandle;
use switchboard::store::mail::{EmailQuery, EmailRecord};
use switchboard::telemetry::Metrics;
use tokio_util::sync::CancellationToken;

use graph_fake::GraphFake;
use oauth_fake::OAuthFake;

const CLIENT_ID: &str = "switchboard-test-m365";
const CLIENT_SECRET: &str = "m365-client-s3cret";
const REFRESH: &str = "m365-refresh-token";
const ADDRESS: &str = "sales@corp.example";

struct Rig {
    _dir: tempfile::TempDir,
    set: ConfigSet,
    store: StoreHandle,
    metrics: Metrics,
    graph: GraphFake,
    _oauth: OAuthFake,
}

async fn rig() -> Rig {
    let oauth = OAuthFake::start(CLIENT_ID, CLIENT_SECRET, Duration::from_secs(3600)).await;
    oauth.allow(REFRESH, ADDRESS);
    let graph = GraphFake::start(2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    std::fs::write(config.join("client-secret"), CLIENT_SECRET).expect("secret");
    std::fs::write(config.join("refresh"), REFRESH).expect("refresh token");
    std::fs::write(
        config.join("mail.yaml"),
        format!(
            "apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: owner}}\nspec: {{displayName: Owner, email: owner@example.com}}\n---\n\
             apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {{name: m365}}\nspec:\n  type: microsoft365\n  title: Microsoft 365\n  domains: [corp.example]\n  \
             apiBaseUrl: {graph}\n  auth: oauth2\n  \
             oauth2:\n    clientId: {CLIENT_ID}\n    clientSecret: {{file: client-secret}}\n    authUrl: {oauth}/auth\n    tokenUrl: {oauth}/token\n    scopes: [Mail.ReadWrite, Mail.Send]\n---\n\
             apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: box}}\nspec:\n  address: {ADDRESS}\n  owner: owner\n  oauth2RefreshToken: {{file: refresh}}\n  \
             load: {{period: 1w}}\n",
            graph = graph.base,
            oauth = oauth.base,
        ),
    )
    .expect("manifest");
    let set = switchboard::config::load(&[config])
        .into_result()
        .unwrap_or_else(|d| panic!("valid config: {d:?}"));
    let mut store = Store::open(&dir.path().join("state.db")).expect("store");
    store
        .apply(&changes(&set, &[]), chrono::Utc::now())
        .expect("apply");
    Rig {
        _dir: dir,
        set,
        store: StoreHandle::new(store),
        metrics: Metrics::new(),
        graph,
        _oauth: oauth,
    }
}

impl Rig {
    async fn sync(&self) -> SyncReport {
        let object = self.set.object(Kind::Mailbox, "box").expect("mailbox");
        let connector: Arc<dyn Connector> = switchboard::mail::build(object, &self.set)
            .expect("a microsoft365 mailbox on oauth2 has a connector");
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
            .expect("sync succeeds")
    }

    async fn emails(&self) -> Vec<EmailRecord> {
        self.store
            .call(|s| {
                s.emails(&EmailQuery {
                    mailbox: Some("box".into()),
                    limit: 10_000,
                    ..EmailQuery::default()
                })
            })
            .await
            .expect("emails")
            .items
    }

    /// `(folder, messages)` of the status view.
    async fn folder_counts(&self) -> Vec<(String, u64)> {
        self.store
            .call(|s| s.mail_folder_statuses())
            .await
            .expect("folder statuses")
            .into_iter()
            .filter(|f| f.mailbox == "box" && f.messages > 0)
            .map(|f| (f.folder, f.messages))
            .collect()
    }

    /// Message-IDs stored in `folder`, sorted; panics on a duplicate anywhere.
    async fn ids(&self, folder: &str) -> Vec<String> {
        let all = self.emails().await;
        let mut every: Vec<_> = all.iter().filter_map(|e| e.message_id.clone()).collect();
        every.sort();
        let n = every.len();
        every.dedup();
        assert_eq!(n, every.len(), "a message was stored twice: {all:?}");
        let mut ids: Vec<String> = all
            .into_iter()
            .filter(|e| e.folder == folder)
            .filter_map(|e| e.message_id)
            .collect();
        ids.sort();
        ids
    }
}

fn deliver(graph: &GraphFake, range: std::ops::RangeInclusive<usize>) {
    for i in range {
        graph.deliver(&format!("m{i}@customer.example"), &format!("Message {i}"));
    }
}

fn expected(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    let mut ids: Vec<String> = range.map(|i| format!("m{i}@customer.example")).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_sync_follows_next_links_then_resumes_from_the_delta_link() {
    // REQ: EP-05 (Microsoft 365 mailbox loads mail: Graph delta sync per folder)
    let rig = rig().await;
    deliver(&rig.graph, 1..=5);
    let report = rig.sync().await;
    assert_eq!(report.items_in, 5, "three pages of two");
    assert_eq!(rig.ids("Inbox").await, expected(1..=5));
    let inbox_rounds = |queries: &[std::collections::HashMap<String, String>], key: &str| {
        queries.iter().filter(|q| q.contains_key(key)).count()
    };
    let first = rig.graph.delta_queries();
    assert_eq!(
        inbox_rounds(&first, "$skiptoken"),
        2,
        "two nextLinks followed"
    );
    assert!(
        first.iter().any(|q| q
            .get("$filter")
            .is_some_and(|f| f.starts_with("receivedDateTime ge "))),
        "the first round is limited to load.period: {first:?}"
    );

    deliver(&rig.graph, 6..=7);
    let report = rig.sync().await;
    assert_eq!(report.items_in, 2, "only what came after the deltaLink");
    assert_eq!(rig.ids("Inbox").await, expected(1..=7));
    let second = rig.graph.delta_queries()[first.len()..].to_vec();
    assert!(
        second.iter().all(|q| !q.contains_key("$filter")),
        "the second round starts from the stored deltaLink, not from scratch: {second:?}"
    );
    assert_eq!(rig.sync().await.items_in, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_requests_wait_for_retry_after_and_then_succeed() {
    // REQ: EP-05 (Graph 429 Too Many Requests honoured with Retry-After)
    let rig = rig().await;
    deliver(&rig.graph, 1..=3);
    rig.graph.throttle(2);
    let report = rig.sync().await;
    assert_eq!(rig.graph.throttled(), 2);
    assert_eq!(report.items_in, 3);
    assert_eq!(rig.ids("Inbox").await, expected(1..=3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_delta_token_starts_a_full_resync_without_duplicates() {
    // REQ: EP-05 (410 Gone / syncStateNotFound → full resync, deduplicated by internetMessageId)
    let rig = rig().await;
    deliver(&rig.graph, 1..=3);
    rig.sync().await;
    rig.graph.expire_tokens();
    deliver(&rig.graph, 4..=4);
    let report = rig.sync().await;
    assert!(rig.graph.gone() >= 1, "the stored deltaLink was refused");
    assert_eq!(report.items_in, 1, "only the new message is new");
    assert_eq!(rig.ids("Inbox").await, expected(1..=4));
    // The resync's own deltaLink works.
    deliver(&rig.graph, 5..=5);
    let gone = rig.graph.gone();
    assert_eq!(rig.sync().await.items_in, 1);
    assert_eq!(rig.graph.gone(), gone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_mail_posts_the_outbox_mime_and_sent_items_does_not_store_it_twice() {
    // REQ: EP-05 (Microsoft 365 mailbox sends mail: POST /me/sendMail), MB-03
    let rig = rig().await;
    let draft = Draft {
        from: ADDRESS.into(),
        alias: Some("ACME Sales".into()),
        to: vec!["bob@customer.example".into()],
        cc: Vec::new(),
        subject: "Your quote".into(),
        text: Some("Hello Bob".into()),
        html: None,
        signature: None,
    };
    let composed = compose(&draft, chrono::Utc::now()).expect("compose");
    let id = composed.email.message_id.clone().expect("message id");
    rig.store
        .call(move |s| {
            s.enqueue_mail(
                "box",
                SENT_FOLDER,
                &composed.email,
                &composed.outgoing,
                chrono::Utc::now(),
            )
        })
        .await
        .expect("enqueue");
    let report = rig.sync().await;
    assert_eq!(report.items_out, 1);
    let sent = rig.graph.sent();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].contains(&format!("Message-ID: <{id}>")),
        "{}",
        sent[0]
    );
    assert!(sent[0].contains("Hello Bob"));
    rig.sync().await;
    let copies: Vec<_> = rig
        .emails()
        .await
        .into_iter()
        .filter(|e| e.message_id.as_deref() == Some(id.as_str()))
        .collect();
    assert_eq!(
        copies.len(),
        1,
        "Sent Items' copy is the stored one: {copies:?}"
    );
    assert_eq!(copies[0].direction.as_str(), "out");
    let delivery = copies[0].delivery.as_ref().expect("delivery");
    assert_eq!(delivery.state, "sent", "{delivery:?}");
}

#[test]
fn exchange_on_premises_and_microsoft365_without_oauth2_stay_pending_with_their_reason() {
    // REQ: EP-05 (on-premises Exchange (EWS) is not built: pending with that reason, never a
    // fake success; Graph needs OAuth 2.0)
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("password.txt"), "x").expect("password");
    std::fs::write(
        dir.path().join("mail.yaml"),
        "apiVersion: switchboard/v1\nkind: User\nmetadata: {name: owner}\nspec: {displayName: Owner, email: owner@example.com}\n---\n\
         apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {name: onprem}\nspec:\n  type: exchange\n  title: On-premises\n  domains: [onprem.example]\n  \
         exchange: {serviceUrl: https://mail.onprem.example/EWS/Exchange.asmx}\n---\n\
         apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {name: m365basic}\nspec:\n  type: microsoft365\n  title: M365 basic\n  domains: [basic.example]\n---\n\
         apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {name: ews}\nspec:\n  address: a@onprem.example\n  owner: owner\n  password: {file: password.txt}\n---\n\
         apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {name: basic}\nspec:\n  address: b@basic.example\n  owner: owner\n  password: {file: password.txt}\n",
    )
    .expect("manifest");
    let set = switchboard::config::load(&[dir.path().to_path_buf()])
        .into_result()
        .unwrap_or_else(|d| panic!("valid config: {d:?}"));
    let reason = |name: &str| {
        let object = set.object(Kind::Mailbox, name).expect("mailbox");
        switchboard::mail::build(object, &set)
            .err()
            .expect("no connector")
    };
    assert_eq!(reason("ews"), switchboard::mail::mailbox::EXCHANGE_PENDING);
    assert!(
        reason("basic").contains("auth: oauth2"),
        "{}",
        reason("basic")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachment_metadata_is_stored_without_the_content() {
    // REQ: EP-05 (Microsoft 365 mail is stored like IMAP mail: attachment metadata only)
    let rig = rig().await;
    rig.graph.deliver_with_attachments(
        "quote@customer.example",
        "Your quote",
        &[
            ("quote.pdf", "application/pdf", 12_345, false),
            ("logo.png", "image/png", 300, true),
        ],
    );
    deliver(&rig.graph, 1..=1);
    assert_eq!(rig.sync().await.items_in, 2);
    let emails = rig.emails().await;
    let quote = emails
        .iter()
        .find(|e| e.message_id.as_deref() == Some("quote@customer.example"))
        .expect("the quote");
    let listed: Vec<(Option<&str>, &str, u64)> = quote
        .attachments
        .iter()
        .map(|a| (a.name.as_deref(), a.content_type.as_str(), a.size))
        .collect();
    assert_eq!(
        listed,
        [(Some("quote.pdf"), "application/pdf", 12_345)],
        "the inline logo is part of the body, not an attachment"
    );
    let plain = emails
        .iter()
        .find(|e| e.message_id.as_deref() == Some("m1@customer.example"))
        .expect("m1");
    assert!(plain.attachments.is_empty());
    let queries = rig.graph.attachment_queries();
    assert_eq!(
        queries.len(),
        1,
        "only a message with hasAttachments is asked about: {queries:?}"
    );
    let select = queries[0].get("$select").expect("$select");
    assert!(
        !select.contains("contentBytes") && select.contains("size"),
        "metadata only: {select}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_messages_are_kept_marked_and_moves_and_resyncs_store_nothing_twice() {
    // REQ: EP-05 (Graph delta `@removed` entries), MB-01 (loaded letters stay in contacts'
    // history)
    const ARCHIVE_ID: &str = "AAMkArchive";
    let rig = rig().await;
    rig.graph.add_folder(ARCHIVE_ID, "Archive");
    deliver(&rig.graph, 1..=3);
    rig.sync().await;

    rig.graph
        .delete(graph_fake::INBOX_ID, "m1@customer.example");
    rig.graph
        .move_message(graph_fake::INBOX_ID, ARCHIVE_ID, "m2@customer.example");
    let report = rig.sync().await;
    assert_eq!(report.items_in, 0, "a move is not new mail");
    let folders = rig.folder_counts().await;
    assert_eq!(
        folders,
        [("Archive".to_owned(), 1), ("Inbox".to_owned(), 1)],
        "status counts what each folder holds"
    );
    let by_id = |emails: &[EmailRecord], id: &str| {
        emails
            .iter()
            .find(|e| e.message_id.as_deref() == Some(id))
            .cloned()
            .unwrap_or_else(|| panic!("{id} is kept: {emails:?}"))
    };
    let emails = rig.emails().await;
    assert_eq!(emails.len(), 3, "nothing deleted, nothing duplicated");
    let deleted = by_id(&emails, "m1@customer.example");
    assert_eq!(deleted.folder, "Inbox");
    assert_eq!(
        deleted.removed.as_ref().map(|r| r.reason.as_str()),
        Some("deleted")
    );
    let moved = by_id(&emails, "m2@customer.example");
    assert_eq!((moved.folder.as_str(), moved.removed), ("Archive", None));

    // A forgotten delta token: full rounds of every folder; the same three, still marked.
    rig.graph.expire_tokens();
    assert_eq!(rig.sync().await.items_in, 0);
    assert!(rig.graph.gone() >= 1);
    let emails = rig.emails().await;
    assert_eq!(emails.len(), 3, "{emails:?}");
    assert!(by_id(&emails, "m1@customer.example").removed.is_some());
    assert_eq!(by_id(&emails, "m2@customer.example").folder, "Archive");
    assert_eq!(rig.ids("Inbox").await.len(), 2, "m1 (removed) and m3");
    assert_eq!(
        rig.folder_counts().await,
        [("Archive".to_owned(), 1), ("Inbox".to_owned(), 1)]
    );

    // The removal survives the listing: the API shows it, marked.
    let listed = rig.emails().await;
    assert!(
        listed
            .iter()
            .filter(|e| e.removed.is_some())
            .all(|e| e.message_id.as_deref() == Some("m1@customer.example"))
    );
}
