//! `POST /api/v1/emails` on the real daemon, delivered through a real SMTP server (aiosmtpd
//! with AUTH, STARTTLS trusting the test CA): alias and signature, the default sender, refusals,
//! and the durable outbox (5xx fails with the server's reply, 4xx waits for a retry).

mod support;

use std::time::Duration;

use sha2::{Digest, Sha256};

use support::dovecot::dovecot;
use support::smtp::{SMTP_PASSWORD, SMTP_USER, smtp};
use support::{Daemon, eventually, free_port};

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn config(port: u16) -> Vec<(&'static str, String)> {
    let user = |name: &str| {
        format!(
            "apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: {name}}}\nspec:\n  displayName: {name}\n  email: {name}@corp.example\n  apiTokenSha256: [{}]\n",
            token_hash(&format!("{name}-token"))
        )
    };
    let (imap, smtp_port) = (dovecot().imap_port, smtp().port);
    let ca = dovecot().ca_file.display().to_string();
    vec![
        (
            "settings.yaml",
            format!(
                "apiVersion: switchboard/v1\nkind: Settings\nmetadata: {{name: default}}\nspec:\n  siteUrl: http://127.0.0.1:{port}\n  listen: 127.0.0.1:{port}\n"
            ),
        ),
        (
            "users.yaml",
            [user("alice"), user("carol"), user("dave")].join("---\n"),
        ),
        (
            "mail.yaml",
            format!(
                "apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {{name: test}}\nspec:\n  type: imap\n  title: Test servers\n  domains: [example.test]\n  \
                 imap: {{host: 127.0.0.1, port: {imap}, security: none}}\n  smtp: {{host: localhost, port: {smtp_port}, security: starttls}}\n  caFile: {ca}\n---\n\
                 apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: sales}}\nspec:\n  address: {SMTP_USER}\n  owner: alice\n  password: {{env: SB_MAIL_PASSWORD}}\n  \
                 send: {{defaultSender: true, alias: ACME Sales, signature: '<p>Alice, <b>ACME</b></p>', useSignature: true}}\n---\n\
                 apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: quiet}}\nspec:\n  address: quiet@example.test\n  owner: dave\n  password: {{env: SB_MAIL_PASSWORD}}\n  \
                 load: {{enabled: false}}\n  send: {{enabled: false}}\n"
            ),
        ),
    ]
}

async fn post(daemon: &Daemon, who: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let response = switchboard::net::http_client()
        .post(format!("{}/api/v1/emails", daemon.base))
        .bearer_auth(format!("{who}-token"))
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

async fn sent(daemon: &Daemon, id: &str) -> serde_json::Value {
    let page: serde_json::Value = daemon
        .get("/api/v1/emails?folder=Sent&limit=1000", Some("alice-token"))
        .await
        .json()
        .await
        .expect("JSON");
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["id"] == id)
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_is_sent_through_smtp_from_the_durable_outbox() {
    dovecot().add_user(SMTP_USER, SMTP_PASSWORD);
    let sink = smtp();
    let port = free_port();
    let mut daemon = Daemon::start(port, &config(port), &[("SB_MAIL_PASSWORD", SMTP_PASSWORD)]);
    daemon.wait_ready().await;

    // REQ: MB-03 (default sender, alias as display name, signature appended when enabled)
    let (status, email) = post(
        &daemon,
        "alice",
        serde_json::json!({
            "to": ["bob@customer.example"], "cc": ["carol@customer.example"],
            "subject": "Your quote", "text": "Hello Bob,\nplease find the quote."
        }),
    )
    .await;
    assert_eq!(status, 202, "{email}\n{}", daemon.stderr());
    assert_eq!(email["mailbox"], "sales");
    assert_eq!(email["folder"], "Sent");
    assert_eq!(email["direction"], "out");
    assert_eq!(email["from"], SMTP_USER);
    assert_eq!(email["to"], serde_json::json!(["bob@customer.example"]));
    let id = email["id"].as_str().expect("id").to_owned();
    eventually("the message reached the SMTP server", &daemon, || async {
        !sink.received().is_empty()
    })
    .await;
    let received = sink.received().join("\n");
    assert!(
        received.contains("X-Auth-User: sender@example.test"),
        "{received}"
    );
    assert!(
        received.contains("X-Envelope-To: bob@customer.example, carol@customer.example"),
        "{received}"
    );
    assert!(
        received.contains("From: \"ACME Sales\" <sender@example.test>"),
        "{received}"
    );
    assert!(
        received.contains("Alice, ACME"),
        "plain-text signature: {received}"
    );
    assert!(
        received.contains("<b>ACME</b>"),
        "HTML signature: {received}"
    );
    assert!(received.contains(&format!(
        "Message-ID: <{}>",
        email["messageId"].as_str().expect("id")
    )));
    eventually("the outbox says sent", &daemon, || async {
        sent(&daemon, &id).await["delivery"]["state"] == "sent"
    })
    .await;

    // Refusals: send disabled (422), no right (403), no default sender (422), unknown (404),
    // bad input (400).
    let message = |mailbox: Option<&str>| {
        let mut m = serde_json::json!({"to": ["x@customer.example"], "subject": "s", "text": "t"});
        if let Some(mb) = mailbox {
            m["mailbox"] = mb.into();
        }
        m
    };
    let (status, body) = post(&daemon, "dave", message(Some("quiet"))).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("send.enabled: false")
    );
    assert_eq!(post(&daemon, "carol", message(Some("sales"))).await.0, 403);
    assert_eq!(post(&daemon, "carol", message(None)).await.0, 422);
    assert_eq!(post(&daemon, "alice", message(Some("nope"))).await.0, 404);
    assert_eq!(
        post(
            &daemon,
            "alice",
            serde_json::json!({"to": ["not an address"], "subject": "s"})
        )
        .await
        .0,
        400
    );
    assert_eq!(
        post(&daemon, "alice", serde_json::json!({"subject": "no to"}))
            .await
            .0,
        400
    );

    // A 5xx fails the message with the server's reply; a 4xx keeps it queued for a retry.
    let (_, rejected) = post(
        &daemon,
        "alice",
        serde_json::json!({"to": ["reject@customer.example"], "subject": "r", "text": "t"}),
    )
    .await;
    let rejected = rejected["id"].as_str().expect("id").to_owned();
    eventually("the 5xx failed the message", &daemon, || async {
        sent(&daemon, &rejected).await["delivery"]["state"] == "failed"
    })
    .await;
    let failed = sent(&daemon, &rejected).await;
    let error = failed["delivery"]["lastError"]
        .as_str()
        .expect("error")
        .to_owned();
    assert!(
        error.contains("550") && error.contains("no such user here"),
        "{error}"
    );

    let (_, deferred) = post(
        &daemon,
        "alice",
        serde_json::json!({"to": ["tempfail@customer.example"], "subject": "d", "text": "t"}),
    )
    .await;
    let deferred = deferred["id"].as_str().expect("id").to_owned();
    eventually("the 4xx was attempted", &daemon, || async {
        sent(&daemon, &deferred).await["delivery"]["attempts"] == 1
    })
    .await;
    let waiting = sent(&daemon, &deferred).await;
    assert_eq!(waiting["delivery"]["state"], "queued", "{waiting}");
    assert!(
        waiting["delivery"]["lastError"]
            .as_str()
            .expect("error")
            .contains("451")
    );
    eventually(
        "the mailbox reports the waiting message",
        &daemon,
        || async {
            let objects: serde_json::Value = daemon
                .get("/api/v1/objects", Some("alice-token"))
                .await
                .json()
                .await
                .expect("JSON");
            let mailbox = support::find(&objects, "Mailbox", "sales")
                .cloned()
                .unwrap_or_default();
            mailbox["lastError"]
                .as_str()
                .is_some_and(|e| e.contains("to be sent"))
        },
    )
    .await;

    // REQ: SPEC Metrics (mail_messages_total{direction="out"})
    tokio::time::sleep(Duration::from_millis(100)).await;
    let metrics = daemon.metrics().await;
    assert!(
        metrics.contains("switchboard_mail_messages_total{direction=\"out\",mailbox=\"sales\"} 1"),
        "{metrics}"
    );
    assert!(
        !daemon.stderr().contains(SMTP_PASSWORD),
        "the password leaked into the log"
    );
}
