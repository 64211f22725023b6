//! XOAUTH2 end to end: a real Dovecot whose oauth2 passdb asks the fake token endpoint's
//! introspection (tests/support/oauth_fake.rs) whether each bearer token is active. The
//! mailbox syncs with a token refreshed from its refresh token; a token the server refuses
//! (revoked though not expired) is refreshed exactly once and the login retried; a token near
//! expiry is refreshed before use.

#[path = "support/oauth_fake.rs"]
mod oauth_fake;
mod support;

use std::sync::Arc;
use std::time::Duration;

use switchboard::clock::Clock;
use switchboard::config::Kind;
use switchboard::connector::resolve_secrets;
use switchboard::connector::{Connector, SyncContext, SyncReport};
use switchboard::engine::apply::changes;
use switchboard::store::Store;
use switchboard::store::StoreHandle;
use switchboard::store::mail::EmailQuery;
use switchboard::telemetry::Metrics;
use tokio_util::sync::CancellationToken;

use oauth_fake::OAuthFake;
use support::dovecot::{dovecot_with_oauth2, messages};

const CLIENT_ID: &str = "switchboard-imap.apps.example";
const CLIENT_SECRET: &str = "imap-client-s3cret";
const REFRESH: &str = "1//refresh-of-oauth-box";
const ADDRESS: &str = "oauth-box@example.test";

#[tokio::test]
async fn imap_sync_logs_in_with_xoauth2_and_a_refused_token_is_refreshed_once() {
    // REQ: EP-04 (oauth2 login), EP-06 (XOAUTH2 as Gmail uses it)
    // Tokens live an hour and are refreshed with less than 60 s left; the sync reads time
    // from the clock in its context, so "near expiry" is a clock set ahead, not a sleep.
    let fake = OAuthFake::start(CLIENT_ID, CLIENT_SECRET, Duration::from_secs(3600)).await;
    fake.allow(REFRESH, ADDRESS);
    let server = dovecot_with_oauth2(&format!("{}/introspect", fake.base));
    // The userdb entry; its password is never used by this mailbox.
    server.add_user(ADDRESS, "unused-password");
    server.load(ADDRESS, "INBOX", &messages("first", ADDRESS, 3));

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    std::fs::write(config.join("client-secret"), CLIENT_SECRET).expect("secret");
    std::fs::write(config.join("refresh"), REFRESH).expect("refresh");
    let base = &fake.base;
    std::fs::write(
        config.join("mail.yaml"),
        format!(
            "apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: owner}}\nspec: {{displayName: Owner, email: owner@example.com}}\n---\n\
             apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {{name: dovecot-oauth}}\nspec:\n  type: imap\n  title: Dovecot with OAuth 2.0\n  domains: [example.test]\n  \
             imap: {{host: 127.0.0.1, port: {port}, security: none}}\n  send: false\n  auth: oauth2\n  \
             oauth2:\n    clientId: {CLIENT_ID}\n    clientSecret: {{file: client-secret}}\n    authUrl: {base}/auth\n    tokenUrl: {base}/token\n    scopes: [mail]\n---\n\
             apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: box}}\nspec:\n  address: {ADDRESS}\n  owner: owner\n  oauth2RefreshToken: {{file: refresh}}\n  \
             send: {{enabled: false}}\n",
            port = server.imap_port,
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
    let store = StoreHandle::new(store);
    let metrics = Metrics::new();
    let object = set.object(Kind::Mailbox, "box").expect("mailbox");
    let connector: Arc<dyn Connector> =
        switchboard::mail::build(object, &set).expect("an oauth2 IMAP mailbox has a connector");
    let secrets = resolve_secrets(object).expect("secrets");
    let sync = |clock: Clock| {
        connector.sync(SyncContext {
            object,
            secrets: &secrets,
            cancel: CancellationToken::new(),
            store: &store,
            metrics: &metrics,
            clock,
        })
    };
    let stored = || async {
        store
            .call(|s| {
                s.emails(&EmailQuery {
                    mailbox: Some("box".into()),
                    limit: 1000,
                    ..EmailQuery::default()
                })
            })
            .await
            .expect("emails")
            .items
            .len()
    };

    // First sync: one refresh grant, then AUTHENTICATE XOAUTH2 with that token.
    let report = sync(Clock::system()).await.unwrap_or_else(|e| {
        panic!(
            "XOAUTH2 login and sync: {e}\nusers:\n{}\nlog:\n{}",
            std::fs::read_to_string(server.dir.join("users")).unwrap_or_default(),
            std::fs::read_to_string(server.dir.join("dovecot.log")).unwrap_or_default()
        )
    });
    assert_eq!(
        report,
        SyncReport {
            items_in: 3,
            items_out: 0
        }
    );
    assert_eq!(fake.grants(), 1);

    // The server stops honouring the token although it has not expired: the login is refused,
    // the token refreshed once, and the retry succeeds.
    fake.revoke_all();
    server.load(ADDRESS, "INBOX", &messages("second", ADDRESS, 2));
    let report = sync(Clock::system())
        .await
        .expect("refresh once after a refused token");
    assert_eq!(report.items_in, 2);
    assert_eq!(fake.grants(), 2, "exactly one refresh after the refusal");
    assert_eq!(stored().await, 5);

    // A token with less than a minute left is refreshed before it is presented.
    let near_expiry = Clock::tokio(chrono::Utc::now() + chrono::Duration::seconds(3600 - 59));
    server.load(ADDRESS, "INBOX", &messages("third", ADDRESS, 1));
    let report = sync(near_expiry).await.expect("refreshed before use");
    assert_eq!(report.items_in, 1);
    assert_eq!(fake.grants(), 3);
    assert_eq!(stored().await, 6);
}
