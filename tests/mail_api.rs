//! `GET /api/v1/emails` on the real daemon, with mail it loaded from the real Dovecot: SPEC's
//! shape, the mailbox/folder/messageId filters, paging, and rights on shared mailboxes.

mod support;

use sha2::{Digest, Sha256};

use support::dovecot::{dovecot, message, messages};
use support::{Daemon, eventually, free_port};

const PASSWORD: &str = "api-pa55";

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn config(port: u16) -> Vec<(&'static str, String)> {
    let user = |name: &str, roles: &str| {
        format!(
            "apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: {name}}}\nspec:\n  displayName: {name}\n  email: {name}@corp.example\n  roles: [{roles}]\n  apiTokenSha256: [{}]\n",
            token_hash(&format!("{name}-token"))
        )
    };
    let imap = dovecot().imap_port;
    vec![
        (
            "settings.yaml",
            format!(
                "apiVersion: switchboard/v1\nkind: Settings\nmetadata: {{name: default}}\nspec:\n  siteUrl: http://127.0.0.1:{port}\n  listen: 127.0.0.1:{port}\n"
            ),
        ),
        (
            "users.yaml",
            [
                "apiVersion: switchboard/v1\nkind: Role\nmetadata: {name: sales}\nspec: {title: Sales}\n".to_owned(),
                // The owner of the shared mailbox `team` sets it up (MB-04).
                "apiVersion: switchboard/v1\nkind: Role\nmetadata: {name: mail-owners}\nspec: {title: Mail owners, operations: [CanConnectSharedMailbox, CanManageSharedMailboxSync]}\n".to_owned(),
                user("alice", "mail-owners"),
                user("bob", "sales"),
                user("carol", ""),
                user("dave", ""),
            ]
            .join("---\n"),
        ),
        (
            "mail.yaml",
            format!(
                "apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {{name: dovecot}}\nspec:\n  type: imap\n  title: Test Dovecot\n  domains: [api.example.test]\n  \
                 imap: {{host: 127.0.0.1, port: {imap}, security: none}}\n  smtp: {{host: 127.0.0.1, port: 25, security: none}}\n---\n\
                 apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: team}}\nspec:\n  address: team@api.example.test\n  owner: alice\n  password: {{env: SB_MAIL_PASSWORD}}\n  \
                 access:\n    - {{role: sales, readEmails: true}}\n    - {{user: dave, configure: true}}\n---\n\
                 apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: private}}\nspec:\n  address: private@api.example.test\n  owner: carol\n  password: {{env: SB_MAIL_PASSWORD}}\n"
            ),
        ),
    ]
}

async fn get(daemon: &Daemon, path: &str, who: &str) -> (u16, serde_json::Value) {
    let response = daemon.get(path, Some(&format!("{who}-token"))).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

#[tokio::test(flavor = "multi_thread")]
async fn emails_are_listed_with_filters_paging_and_mailbox_rights() {
    let server = dovecot();
    for (user, tag, n) in [
        ("team@api.example.test", "team", 3),
        ("private@api.example.test", "private", 2),
    ] {
        server.add_user(user, PASSWORD);
        server.load(user, "INBOX", &messages(tag, user, n));
    }
    server.load(
        "team@api.example.test",
        "Archive",
        &[message(
            "\"Bob Buyer\" <bob@customer.example>",
            "team@api.example.test",
            "Archived quote",
            "archived-1@customer.example",
            "Old news.",
        )],
    );
    let port = free_port();
    let mut daemon = Daemon::start(port, &config(port), &[("SB_MAIL_PASSWORD", PASSWORD)]);
    daemon.wait_ready().await;
    eventually("both mailboxes synced", &daemon, || async {
        get(&daemon, "/api/v1/emails", "alice").await.1["total"] == 4
            && get(&daemon, "/api/v1/emails", "carol").await.1["total"] == 2
    })
    .await;

    // REQ: MB-04 (readEmails through a role; configure alone does not read; owners read theirs)
    assert_eq!(get(&daemon, "/api/v1/emails", "bob").await.1["total"], 4);
    assert_eq!(get(&daemon, "/api/v1/emails", "dave").await.1["total"], 0);
    let (status, body) = get(&daemon, "/api/v1/emails?mailbox=private", "bob").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(daemon.get("/api/v1/emails", None).await.status(), 401);

    // REQ: MB-01 (the letter is readable with its contacts), SPEC HTTP (e-mail shape)
    let (status, archived) = get(
        &daemon,
        "/api/v1/emails?messageId=%3Carchived-1@customer.example%3E",
        "alice",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(archived["total"], 1);
    let email = &archived["items"][0];
    let keys: Vec<&str> = email
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "id",
        "mailbox",
        "folder",
        "messageId",
        "direction",
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "text",
        "html",
        "attachments",
        "contactIds",
    ] {
        assert!(keys.contains(&key), "missing {key}: {email}");
    }
    assert_eq!(email["mailbox"], "team");
    assert_eq!(email["folder"], "Archive");
    assert_eq!(email["messageId"], "archived-1@customer.example");
    assert_eq!(email["direction"], "in");
    assert_eq!(email["from"], "bob@customer.example");
    assert_eq!(email["to"], serde_json::json!(["team@api.example.test"]));
    assert_eq!(email["subject"], "Archived quote");
    assert!(email["id"].is_string());
    assert_eq!(email["contactIds"].as_array().expect("ids").len(), 1);

    // Filters.
    let (_, inbox) = get(&daemon, "/api/v1/emails?mailbox=team&folder=INBOX", "bob").await;
    assert_eq!(inbox["total"], 3);
    assert!(
        inbox["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|e| e["folder"] == "INBOX")
    );

    // Paging: two pages of two, the same total on each, no item twice.
    let (_, first) = get(&daemon, "/api/v1/emails?limit=2", "alice").await;
    assert_eq!(first["items"].as_array().expect("items").len(), 2);
    assert_eq!(first["total"], 4);
    let cursor = first["nextCursor"].as_str().expect("a next cursor");
    let (_, second) = get(
        &daemon,
        &format!("/api/v1/emails?limit=2&cursor={cursor}"),
        "alice",
    )
    .await;
    assert_eq!(second["items"].as_array().expect("items").len(), 2);
    assert_eq!(second["total"], 4);
    assert_eq!(second["nextCursor"], serde_json::Value::Null);
    let mut ids: Vec<String> = first["items"]
        .as_array()
        .into_iter()
        .chain(second["items"].as_array())
        .flatten()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    assert_eq!(get(&daemon, "/api/v1/emails?limit=0", "alice").await.0, 400);
    assert_eq!(
        get(&daemon, "/api/v1/emails?limit=1001", "alice").await.0,
        400
    );
    assert_eq!(
        get(&daemon, "/api/v1/emails?cursor=nope", "alice").await.0,
        400
    );

    // REQ: SPEC Metrics (mail_messages_total by mailbox name, never the address)
    let metrics = daemon.metrics().await;
    assert!(
        metrics.contains("switchboard_mail_messages_total{direction=\"in\",mailbox=\"team\"} 4"),
        "{metrics}"
    );
    assert!(!metrics.contains("api.example.test"));
    let stderr = daemon.stderr();
    assert!(
        !stderr.contains(PASSWORD),
        "the password leaked into the log"
    );
}
