//! IMAP sync against a real Dovecot (tests/support/dovecot.rs): security modes, login
//! formats, first and incremental sync, UIDVALIDITY changes, folder choice, contacts, metrics,
//! cancellation, and the error a refused login leaves on the object.
//!
//! Every test has its own Dovecot user, so they run in parallel against one server.

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use switchboard::clock::Clock;
use switchboard::config::{ConfigSet, Kind};
use switchboard::connector::resolve_secrets;
use switchboard::connector::{Connector, ConnectorError, SyncContext, SyncReport};
use switchboard::daemon::DaemonOptions;
use switchboard::engine::apply::changes;
use switchboard::store::Store;
use switchboard::store::StoreHandle;
use switchboard::store::mail::{EmailPage, EmailQuery};
use switchboard::telemetry::Metrics;
use tokio_util::sync::CancellationToken;

use support::dovecot::{Dovecot, dovecot, message, messages};

const PASSWORD: &str = "s3cret-Pa55";

/// One test's config directory, state file and mailbox.
struct Rig {
    dir: tempfile::TempDir,
    set: ConfigSet,
    store: StoreHandle,
    metrics: Metrics,
}

/// Provider and mailbox settings that vary between tests.
struct Setup<'a> {
    /// The mailbox address (its local part is the Dovecot user unless `login` says otherwise).
    address: &'a str,
    security: &'a str,
    port: u16,
    ca_file: Option<PathBuf>,
    login_format: &'a str,
    login: Option<&'a str>,
    folders: &'a str,
    password: &'a str,
}

impl<'a> Setup<'a> {
    fn plain(address: &'a str) -> Setup<'a> {
        Setup {
            address,
            security: "none",
            port: dovecot().imap_port,
            ca_file: None,
            login_format: "email",
            login: None,
            folders: "all",
            password: PASSWORD,
        }
    }
}

fn rig(setup: &Setup<'_>) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    std::fs::write(config.join("password.txt"), setup.password).expect("password file");
    let domain = setup.address.split('@').nth(1).expect("domain");
    let ca = setup
        .ca_file
        .as_ref()
        .map(|p| format!("  caFile: {}\n", p.display()))
        .unwrap_or_default();
    let login = setup
        .login
        .map(|l| format!("  login: {l}\n"))
        .unwrap_or_default();
    std::fs::write(
        config.join("mail.yaml"),
        format!(
            "apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: owner}}\nspec: {{displayName: Owner, email: owner@example.com}}\n---\n\
             apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {{name: dovecot}}\nspec:\n  type: imap\n  title: Test Dovecot\n  domains: [{domain}]\n  \
             imap: {{host: 127.0.0.1, port: {port}, security: {security}}}\n  smtp: {{host: 127.0.0.1, port: 25, security: none}}\n  loginFormat: {format}\n{ca}---\n\
             apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: box}}\nspec:\n  address: {address}\n  owner: owner\n{login}  password: {{file: password.txt}}\n  \
             load: {{period: 1w, folders: {folders}}}\n",
            port = setup.port,
            security = setup.security,
            format = setup.login_format,
            address = setup.address,
            folders = setup.folders,
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
        dir,
        set,
        store: StoreHandle::new(store),
        metrics: Metrics::new(),
    }
}

impl Rig {
    async fn sync_with(&self, cancel: CancellationToken) -> Result<SyncReport, ConnectorError> {
        let object = self.set.object(Kind::Mailbox, "box").expect("mailbox");
        let connector: Arc<dyn Connector> =
            switchboard::mail::build(object, &self.set).expect("an IMAP mailbox has a connector");
        let secrets = resolve_secrets(object).expect("secrets");
        connector
            .sync(SyncContext {
                object,
                secrets: &secrets,
                cancel,
                store: &self.store,
                metrics: &self.metrics,
                clock: Clock::system(),
            })
            .await
    }

    async fn sync(&self) -> SyncReport {
        self.sync_with(CancellationToken::new())
            .await
            .expect("sync succeeds")
    }

    async fn emails(&self, folder: Option<&str>) -> EmailPage {
        let folder = folder.map(str::to_owned);
        self.store
            .call(move |s| {
                s.emails(&EmailQuery {
                    mailbox: Some("box".into()),
                    folder,
                    limit: 100_000,
                    ..EmailQuery::default()
                })
            })
            .await
            .expect("emails")
    }

    /// Message-IDs stored, sorted; panics on a duplicate.
    async fn message_ids(&self, folder: Option<&str>) -> Vec<String> {
        let page = self.emails(folder).await;
        let mut ids: Vec<String> = page
            .items
            .iter()
            .map(|e| e.message_id.clone().expect("message id"))
            .collect();
        ids.sort();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len(), "a message was stored twice: {ids:?}");
        ids
    }
}

fn user(server: &Dovecot, address: &str) {
    server.add_user(address, PASSWORD);
}

#[tokio::test]
async fn first_sync_loads_the_period_then_only_new_mail() {
    // REQ: EP-02 (plain IMAP, security none), MB-02 (load period of the first sync)
    let server = dovecot();
    let address = "first@example.test";
    user(server, address);
    server.load_received(address, "INBOX", &messages("old", address, 2), 30);
    server.load(address, "INBOX", &messages("recent", address, 5));
    let rig = rig(&Setup::plain(address));

    let report = rig.sync().await;
    assert_eq!(
        report.items_in, 5,
        "mail older than load.period (1w) is not loaded"
    );
    let ids = rig.message_ids(None).await;
    assert!(ids.iter().all(|id| id.starts_with("recent-")), "{ids:?}");

    server.load(address, "INBOX", &messages("later", address, 3));
    assert_eq!(rig.sync().await.items_in, 3, "only the new mail");
    assert_eq!(rig.sync().await.items_in, 0, "nothing new, nothing loaded");
    assert_eq!(rig.message_ids(None).await.len(), 8);

    let folder = rig
        .store
        .call(|s| s.mail_folder("box", "INBOX"))
        .await
        .expect("read")
        .expect("checkpoint");
    assert!(folder.checkpoint.initial_complete);
    assert!(folder.checkpoint.last_uid >= 10, "{folder:?}");
    assert_eq!(folder.messages, 8);
    // Dovecot offers CONDSTORE: its HIGHESTMODSEQ is kept.
    assert!(folder.checkpoint.highest_modseq.is_some());
}

#[tokio::test]
async fn mail_is_parsed_and_linked_to_contacts_by_address() {
    // REQ: MB-01 (loaded letters are linked to contacts by address and enrich them)
    let server = dovecot();
    let address = "contacts@example.test";
    user(server, address);
    let mut m = message(
        "\"Bob Buyer\" <Bob@Customer.example>",
        &format!("{address}, carol@customer.example"),
        "Quote",
        "quote-1@customer.example",
        "Please see the quote.",
    );
    m = m.replace(
        "Content-Type: text/plain; charset=utf-8\r\n\r\nPlease see the quote.\r\n",
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Please see the <b>quote</b>.</p>\r\n\
         --b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=quote.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n",
    );
    server.load(address, "INBOX", &[m]);
    let rig = rig(&Setup::plain(address));
    rig.sync().await;

    let page = rig.emails(None).await;
    let email = &page.items[0];
    assert_eq!(email.subject.as_deref(), Some("Quote"));
    assert!(
        email
            .html
            .as_deref()
            .expect("html")
            .contains("<b>quote</b>")
    );
    assert!(
        email
            .text
            .as_deref()
            .expect("text from html")
            .contains("quote")
    );
    assert_eq!(email.attachments[0].name.as_deref(), Some("quote.pdf"));
    assert_eq!(email.attachments[0].content_type, "application/pdf");
    assert_eq!(email.attachments[0].size, 9);
    let bob = rig
        .store
        .call(|s| s.contact_by_email("bob@customer.example"))
        .await
        .expect("read")
        .expect("the sender became a contact");
    assert_eq!(bob.name.as_deref(), Some("Bob Buyer"));
    let carol = rig
        .store
        .call(|s| s.contact_by_email("carol@customer.example"))
        .await
        .expect("read")
        .expect("a recipient became a contact");
    assert_eq!(email.contact_ids, vec![bob.id, carol.id]);
    let own = rig
        .store
        .call(move |s| s.contact_by_email(address))
        .await
        .expect("read");
    assert_eq!(own, None, "the mailbox itself is no contact");
}

#[tokio::test]
async fn starttls_and_tls_trust_the_providers_ca_file() {
    // REQ: EP-02 (security starttls and tls; caFile trusts a private CA)
    let server = dovecot();
    let address = "tls@example.test";
    user(server, address);
    server.load(address, "INBOX", &messages("tls", address, 2));

    let starttls = rig(&Setup {
        security: "starttls",
        ca_file: Some(server.ca_file.clone()),
        ..Setup::plain(address)
    });
    assert_eq!(starttls.sync().await.items_in, 2);

    let tls = rig(&Setup {
        security: "tls",
        port: server.imaps_port,
        ca_file: Some(server.ca_file.clone()),
        ..Setup::plain(address)
    });
    assert_eq!(tls.sync().await.items_in, 2);

    // Without the CA the certificate is not trusted: TLS is really verified.
    let untrusted = rig(&Setup {
        security: "tls",
        port: server.imaps_port,
        ..Setup::plain(address)
    });
    let Err(ConnectorError::Failed(error)) = untrusted.sync_with(CancellationToken::new()).await
    else {
        panic!("an untrusted certificate must fail the sync");
    };
    assert!(error.contains("TLS handshake"), "{error}");
    assert!(error.to_lowercase().contains("certificate"), "{error}");
}

#[tokio::test]
async fn login_formats_email_local_part_and_manual() {
    // REQ: EP-03
    let server = dovecot();
    server.add_user("lpuser", PASSWORD);
    server.load("lpuser", "INBOX", &messages("lp", "lpuser@example.test", 1));
    let local = rig(&Setup {
        login_format: "localPart",
        ..Setup::plain("lpuser@local.example.test")
    });
    assert_eq!(local.sync().await.items_in, 1, "logged in as `lpuser`");

    server.add_user("custom-login-7", PASSWORD);
    server.load(
        "custom-login-7",
        "INBOX",
        &messages("manual", "x@example.test", 1),
    );
    let manual = rig(&Setup {
        login_format: "manual",
        login: Some("custom-login-7"),
        ..Setup::plain("someone@manual.example.test")
    });
    assert_eq!(
        manual.sync().await.items_in,
        1,
        "logged in as `custom-login-7`"
    );
}

#[tokio::test]
async fn a_refused_login_leaves_the_servers_answer_on_the_object_and_never_the_password() {
    // REQ: EP-01 (the password, or app password, is the mailbox's secret), EP-02
    let server = dovecot();
    let address = "refused@example.test";
    user(server, address);
    let wrong = "Wr0ng-Secret-xyz";
    let rig = rig(&Setup {
        password: wrong,
        ..Setup::plain(address)
    });
    let opts = DaemonOptions {
        config_dirs: vec![rig.dir.path().join("config")],
        state: rig.dir.path().join("state.db"),
    };
    let error = tokio::task::spawn_blocking(move || {
        switchboard::daemon::sync_once(&opts, Kind::Mailbox, "box")
    })
    .await
    .expect("join")
    .expect_err("a wrong password fails");
    assert!(
        error.contains("refused the login of refused@example.test"),
        "{error}"
    );
    assert!(
        error.contains("Authentication failed"),
        "the server's words: {error}"
    );
    assert!(!error.contains(wrong), "{error}");
    let status = Store::open_read_only(&rig.dir.path().join("state.db"))
        .expect("store")
        .statuses()
        .expect("statuses")
        .into_iter()
        .find(|s| s.kind == "Mailbox")
        .expect("mailbox status");
    assert_eq!(status.state.as_str(), "error");
    let last = status.last_error.expect("last error");
    assert!(
        last.contains("NO") && last.contains("Authentication failed"),
        "{last}"
    );
    assert!(!last.contains(wrong), "{last}");
}

#[tokio::test]
async fn a_uidvalidity_change_resyncs_the_folder_without_duplicating_mail() {
    // REQ: MB-02 (sync resumes from per-folder UIDVALIDITY + last UID)
    let server = dovecot();
    let address = "uidvalidity@example.test";
    user(server, address);
    server.load(address, "INBOX", &messages("uv", address, 4));
    let rig = rig(&Setup::plain(address));
    assert_eq!(rig.sync().await.items_in, 4);
    let before = rig
        .store
        .call(|s| s.mail_folder("box", "INBOX"))
        .await
        .expect("read")
        .expect("checkpoint");

    server.reset_uidvalidity(address, "INBOX");
    server.load(address, "INBOX", &messages("uv-after", address, 1));
    assert_eq!(rig.sync().await.items_in, 1, "only the new message is new");
    let ids = rig.message_ids(None).await;
    assert_eq!(ids.len(), 5, "{ids:?}");
    let after = rig
        .store
        .call(|s| s.mail_folder("box", "INBOX"))
        .await
        .expect("read")
        .expect("checkpoint");
    assert_ne!(
        before.checkpoint.uidvalidity, after.checkpoint.uidvalidity,
        "the server really changed UIDVALIDITY"
    );
    assert_eq!(rig.sync().await.items_in, 0);
}

#[tokio::test]
async fn folders_all_or_a_list_where_a_parent_does_not_bring_its_children() {
    // REQ: MB-02 (all folders or selected folders; a selected parent excludes its children)
    let server = dovecot();
    let address = "folders@example.test";
    user(server, address);
    for (folder, tag) in [
        ("INBOX", "inbox"),
        ("Projects", "projects"),
        ("Projects/Alpha", "alpha"),
        ("Archive", "archive"),
    ] {
        server.load(address, folder, &messages(tag, address, 1));
    }

    let listed = rig(&Setup {
        folders: "[INBOX, Projects]",
        ..Setup::plain(address)
    });
    assert_eq!(listed.sync().await.items_in, 2);
    assert_eq!(
        listed.message_ids(Some("Projects")).await,
        ["projects-1@example.test"]
    );
    assert!(listed.message_ids(Some("Projects/Alpha")).await.is_empty());

    let all = rig(&Setup::plain(address));
    assert_eq!(all.sync().await.items_in, 4);
    assert_eq!(
        all.message_ids(Some("Projects/Alpha")).await,
        ["alpha-1@example.test"]
    );

    let missing = rig(&Setup {
        folders: "[INBOX, Nowhere]",
        ..Setup::plain(address)
    });
    let Err(ConnectorError::Failed(error)) = missing.sync_with(CancellationToken::new()).await
    else {
        panic!("a listed folder the server lacks is an error");
    };
    assert!(error.contains("no folder named Nowhere"), "{error}");
    assert_eq!(
        missing.message_ids(None).await.len(),
        1,
        "the folders that exist are still synced"
    );
}

#[tokio::test]
async fn loaded_mail_is_counted_in_mail_messages_total() {
    // REQ: SPEC Metrics (mail_messages_total{mailbox,direction})
    let server = dovecot();
    let address = "metrics@example.test";
    user(server, address);
    server.load(address, "INBOX", &messages("metric", address, 3));
    let rig = rig(&Setup::plain(address));
    rig.sync().await;
    rig.sync().await;
    assert!(
        rig.metrics
            .render()
            .contains("switchboard_mail_messages_total{direction=\"in\",mailbox=\"box\"} 3"),
        "{}",
        rig.metrics.render()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cancellation_stops_between_batches_and_the_next_run_resumes() {
    // REQ: SPEC run (in-flight syncs checkpoint on stop)
    let server = dovecot();
    let address = "cancel@example.test";
    user(server, address);
    let total = 1200;
    let filler = "x".repeat(30_000);
    let big: Vec<String> = messages("cancel", address, total)
        .into_iter()
        .map(|m| m.replace("\r\n\r\nBody", &format!("\r\n\r\n{filler}\r\nBody")))
        .collect();
    server.load(address, "INBOX", &big);
    let rig = Arc::new(rig(&Setup::plain(address)));
    let cancel = CancellationToken::new();
    let running = {
        let (rig, cancel) = (Arc::clone(&rig), cancel.clone());
        tokio::spawn(async move { rig.sync_with(cancel).await })
    };
    loop {
        if rig.emails(None).await.total > 0 || running.is_finished() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    cancel.cancel();
    let result = running.await.expect("join");
    let stored = rig.emails(None).await.total;
    assert_eq!(
        result,
        Err(ConnectorError::Cancelled),
        "stopped after {stored}"
    );
    assert!(stored > 0 && stored < total as i64, "{stored}");
    let report = rig.sync().await;
    assert_eq!(report.items_in as i64 + stored, total as i64);
    assert_eq!(rig.message_ids(None).await.len(), total);
}
