//! Sent mail filed in the server's Sent folder (MB-03), against a real Dovecot (whose `Sent`
//! is marked `\Sent`, RFC 6154) and aiosmtpd: after SMTP accepts a message, the run APPENDs it
//! there, records the APPENDUID on the stored outgoing copy, and the Sent folder's sync then
//! finds it stored — one copy in the store and one on the server, however many runs follow.

mod support;

use std::sync::Arc;

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

use support::dovecot::dovecot;
use support::smtp::{SMTP_PASSWORD, SMTP_USER, smtp};

struct Rig {
    _dir: tempfile::TempDir,
    set: ConfigSet,
    store: StoreHandle,
    metrics: Metrics,
}

fn rig() -> Rig {
    dovecot().add_user(SMTP_USER, SMTP_PASSWORD);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    std::fs::write(config.join("password.txt"), SMTP_PASSWORD).expect("password file");
    std::fs::write(
        config.join("mail.yaml"),
        format!(
            "apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: owner}}\nspec: {{displayName: Owner, email: owner@example.com}}\n---\n\
             apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {{name: test}}\nspec:\n  type: imap\n  title: Test servers\n  domains: [example.test]\n  \
             imap: {{host: 127.0.0.1, port: {imap}, security: none}}\n  smtp: {{host: localhost, port: {smtp}, security: starttls}}\n  caFile: {ca}\n---\n\
             apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: box}}\nspec:\n  address: {SMTP_USER}\n  owner: owner\n  password: {{file: password.txt}}\n  \
             load: {{period: 1w}}\n",
            imap = dovecot().imap_port,
            smtp = smtp().port,
            ca = dovecot().ca_file.display(),
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
    }
}

impl Rig {
    async fn sync(&self) -> SyncReport {
        let object = self.set.object(Kind::Mailbox, "box").expect("mailbox");
        let connector: Arc<dyn Connector> =
            switchboard::mail::build(object, &self.set).expect("connector");
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

    /// Queues a message as `POST /api/v1/emails` does; returns its Message-ID.
    async fn queue(&self, subject: &str) -> String {
        self.queue_raw(subject).await.0
    }

    /// [`Rig::queue`], also returning the bytes that will be sent.
    async fn queue_raw(&self, subject: &str) -> (String, Vec<u8>) {
        let draft = Draft {
            from: SMTP_USER.into(),
            alias: None,
            to: vec!["bob@customer.example".into()],
            cc: Vec::new(),
            subject: subject.into(),
            text: Some("Hello Bob".into()),
            html: None,
            signature: None,
        };
        let composed = compose(&draft, chrono::Utc::now()).expect("compose");
        let id = composed.email.message_id.clone().expect("message id");
        let raw = composed.outgoing.raw.clone();
        self.store
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
        (id, raw)
    }

    async fn stored(&self, message_id: &str) -> Vec<EmailRecord> {
        let page = self
            .store
            .call(|s| {
                s.emails(&EmailQuery {
                    mailbox: Some("box".into()),
                    limit: 10_000,
                    ..EmailQuery::default()
                })
            })
            .await
            .expect("emails");
        page.items
            .into_iter()
            .filter(|e| e.message_id.as_deref() == Some(message_id))
            .collect()
    }
}

/// How many files of `user`'s `folder` on the server carry `message_id`.
fn on_server(user: &str, folder: &str, message_id: &str) -> usize {
    let dir = dovecot().maildir(user, folder);
    let needle = format!("<{message_id}>");
    ["cur", "new"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(dir.join(sub)).ok())
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .filter(|text| text.contains(&needle))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_mail_is_appended_to_the_sent_folder_once_and_not_loaded_twice() {
    // REQ: MB-03 (sent mail is stored, and APPENDed to the server's Sent folder when the
    // mailbox loads mail)
    let rig = rig();
    let id = rig.queue("Your quote").await;
    let report = rig.sync().await;
    assert_eq!(report.items_out, 1, "SMTP accepted the message");
    assert_eq!(
        on_server(SMTP_USER, "Sent", &id),
        1,
        "APPENDed to the \\Sent folder"
    );
    let copies = rig.stored(&id).await;
    assert_eq!(
        copies.len(),
        1,
        "the Sent folder's sync matched the stored copy: {copies:?}"
    );
    assert_eq!(copies[0].folder, "Sent");
    assert_eq!(copies[0].direction.as_str(), "out");

    // Later runs neither APPEND again nor store a second copy.
    rig.sync().await;
    rig.sync().await;
    assert_eq!(on_server(SMTP_USER, "Sent", &id), 1, "appended once");
    assert_eq!(rig.stored(&id).await.len(), 1, "stored once");

    // A second message in a later run: the folder's checkpoint is past the first.
    let second = rig.queue("Follow-up").await;
    rig.sync().await;
    assert_eq!(on_server(SMTP_USER, "Sent", &second), 1);
    assert_eq!(rig.stored(&second).await.len(), 1);
    assert_eq!(rig.stored(&id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_already_in_the_sent_folder_is_found_by_message_id_not_appended_again() {
    // REQ: MB-03 (filing is idempotent: a crash after APPEND and before the store recorded it
    // leaves the copy on the server, and the next run finds it by Message-ID)
    let rig = rig();
    let (id, raw) = rig.queue_raw("Already filed").await;
    dovecot().append(
        SMTP_USER,
        SMTP_PASSWORD,
        "Sent",
        std::str::from_utf8(&raw).expect("composed mail is text"),
    );
    rig.sync().await;
    assert_eq!(on_server(SMTP_USER, "Sent", &id), 1, "not appended twice");
    let copies = rig.stored(&id).await;
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(copies[0].direction.as_str(), "out", "the sent copy is kept");
}
