//! Faults injected between the real daemon and its mail peers through the fault proxy
//! (tests/support/faults.rs): an IMAP connection cut in the middle of a FETCH (Dovecot), an SMTP
//! server that stalls after DATA (aiosmtpd), and a Graph answer cut in the middle of its JSON
//! body (the Graph fake). Each failed run or delivery is retried, nothing is lost or doubled,
//! and the object's status (or the message's delivery) says what happened; thirty failed runs
//! in a row leave the daemon's memory where it was.

#[path = "support/graph_fake.rs"]
mod graph_fake;
#[path = "support/oauth_fake.rs"]
mod oauth_fake;
mod support;

use std::time::Duration;

use sha2::{Digest, Sha256};
use support::dovecot::{dovecot, messages};
use support::faults::{Fault, FaultProxy};
use support::smtp::{SMTP_PASSWORD, SMTP_USER, smtp};
use support::{ADMIN_TOKEN, Daemon, eventually, eventually_within, find, free_port};

const PASSWORD: &str = "faults-pa55";

/// Settings (an SMTP timeout of 2 s), an admin, and an IMAP provider whose IMAP goes to
/// `imap_port` and SMTP to `smtp_port` (either may be a proxy), with one Mailbox `box` for
/// `address`.
fn config(port: u16, imap_port: u16, smtp_port: u16, address: &str) -> Vec<(&'static str, String)> {
    vec![(
        "all.yaml",
        format!(
            "apiVersion: switchboard/v1\nkind: Settings\nmetadata: {{name: default}}\nspec: {{siteUrl: 'http://127.0.0.1:{port}', listen: '127.0.0.1:{port}', mail: {{smtpTimeout: 2s}}}}\n---\n\
             apiVersion: switchboard/v1\nkind: Role\nmetadata: {{name: admins}}\nspec: {{title: Admins, operations: [CanManageAdministration]}}\n---\n\
             apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: owner}}\nspec: {{displayName: Owner, email: owner@example.com, roles: [admins], apiTokenSha256: [{token}]}}\n---\n\
             apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {{name: dovecot}}\nspec:\n  type: imap\n  title: Test Dovecot\n  domains: [example.test]\n  \
             imap: {{host: 127.0.0.1, port: {imap_port}, security: none}}\n  smtp: {{host: 127.0.0.1, port: {smtp_port}, security: none}}\n---\n\
             apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: box}}\nspec:\n  address: {address}\n  owner: owner\n  password: {{env: SB_MAIL_PASSWORD}}\n",
            token = hex::encode(Sha256::digest(ADMIN_TOKEN.as_bytes())),
        ),
    )]
}

/// The Mailbox's entry in `/api/v1/objects`.
async fn mailbox(daemon: &Daemon) -> serde_json::Value {
    find(&daemon.objects().await, "Mailbox", "box")
        .cloned()
        .unwrap_or_default()
}

fn stored(mailbox: &serde_json::Value) -> u64 {
    mailbox["folders"]
        .as_array()
        .map_or(0, |f| f.iter().filter_map(|f| f["messages"].as_u64()).sum())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_imap_connection_cut_in_the_middle_of_a_fetch_is_retried_and_nothing_is_lost_or_doubled()
{
    // REQ: MB-02 (resumable sync: a failed run resumes from its checkpoint)
    let server = dovecot();
    let address = "cut@example.test";
    server.add_user(address, PASSWORD);
    let filler = "z".repeat(4_000);
    let letters = |tag: &str, n: usize| -> Vec<String> {
        messages(tag, address, n)
            .into_iter()
            .map(|m| m.replace("\r\n\r\nBody", &format!("\r\n\r\n{filler}\r\nBody")))
            .collect()
    };
    server.load(address, "INBOX", &letters("first", 299));

    let proxy = FaultProxy::start(server.imap_port).await;
    // A zero delay changes nothing: it only tells when the IDLE watch is in place.
    proxy.arm(b"IDLE\r\n", Fault::Delay(Duration::ZERO));
    let port = free_port();
    let mut daemon = Daemon::start(
        port,
        &config(port, proxy.port(), 9, address),
        &[("SB_MAIL_PASSWORD", PASSWORD)],
    );
    daemon.wait_ready().await;
    eventually("the first sync and the IDLE watch", &daemon, || async {
        let m = mailbox(&daemon).await;
        proxy.taken() == 1 && m["state"] == "ready" && stored(&m) == 299
    })
    .await;

    // A large letter arrives, announced over IDLE; the answer to the run's FETCH is cut
    // 50 KB in, inside the letter's body.
    proxy.arm(b"UID FETCH", Fault::CutAfter(50_000));
    let large = messages("large", address, 1)[0].replace(
        "\r\n\r\nBody",
        &format!("\r\n\r\n{}\r\nBody", "w".repeat(200_000)),
    );
    server.append(address, PASSWORD, "INBOX", &large);

    eventually("the cut happened", &daemon, || async { proxy.taken() == 2 }).await;
    eventually("the failed run is on the object", &daemon, || async {
        mailbox(&daemon).await["runsFailed"].as_i64() == Some(1)
    })
    .await;
    let failed = mailbox(&daemon).await;
    let error = failed["lastError"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("UID FETCH"), "{failed}");

    // Retried through the same proxy, which now passes everything, resuming from the
    // checkpoint. (The IDLE watch asks for a run as it re-establishes after announcing the
    // letter, which the scheduler honours at once; without it the retry comes after the
    // backoff, 8 to 12 s, hence the longer bound.)
    eventually_within(
        "the retry finished the sync",
        Duration::from_secs(40),
        &daemon,
        || async {
            let m = mailbox(&daemon).await;
            m["state"] == "ready" && stored(&m) == 300
        },
    )
    .await;
    let done = mailbox(&daemon).await;
    assert_eq!(done["folders"][0]["name"], "INBOX", "{done}");
    assert_eq!(done["runsFailed"], 1, "{done}");
    assert_eq!(done["lastError"].as_str(), Some(error.as_str()), "{done}");
    assert!(
        done["lastSuccessAt"].as_str() > done["lastErrorAt"].as_str(),
        "{done}"
    );
    let log = daemon.stderr();
    assert!(log.contains("sync failed"), "{log}");
    assert!(
        !log.contains(PASSWORD),
        "the password never reaches the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_cut_fetches_in_a_row_do_not_grow_the_daemons_memory() {
    // REQ: MB-02 (each failed run resumes from its checkpoint; a failure costs no memory)
    let server = dovecot();
    let address = "leak@example.test";
    server.add_user(address, PASSWORD);
    // A 2 MB letter whose FETCH is cut 1.5 MB in, run after run: a run that kept what it had
    // read (or its connection) would hold another 1.5 MB per round.
    let large = messages("large", address, 1)[0].replace(
        "\r\n\r\nBody",
        &format!("\r\n\r\n{}\r\nBody", "w".repeat(2_000_000)),
    );
    let mut letters = messages("small", address, 20);
    letters.push(large);
    server.load(address, "INBOX", &letters);
    let proxy = FaultProxy::start(server.imap_port).await;
    proxy.arm_every(b"UID FETCH", Fault::CutAfter(1_500_000));
    let port = free_port();
    let mut daemon = Daemon::start(
        port,
        &config(port, proxy.port(), 9, address),
        &[("SB_MAIL_PASSWORD", PASSWORD)],
    );
    daemon.wait_ready().await;

    // Runs are asked for one after another (besides the scheduler's own retries).
    let failed = || async { mailbox(&daemon).await["runsFailed"].as_u64().unwrap_or(0) };
    let mut warm = 0;
    loop {
        let before = failed().await;
        if before >= 30 {
            break;
        }
        if warm == 0 && before >= 5 {
            warm = support::rss_kib(daemon.child.id());
        }
        let asked = daemon
            .post("/api/v1/objects/Mailbox/box/sync", Some(ADMIN_TOKEN))
            .await;
        assert_eq!(asked.status(), 202);
        eventually("the cut run failed", &daemon, || async {
            failed().await > before
        })
        .await;
    }
    let after = support::rss_kib(daemon.child.id());
    assert!(
        after < warm + 10 * 1024,
        "RSS grew from {warm} KiB to {after} KiB over 25 cut fetches"
    );
    assert!(proxy.taken() >= 30);

    // The peer heals: every letter is stored, once.
    proxy.disarm();
    let asked = daemon
        .post("/api/v1/objects/Mailbox/box/sync", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(asked.status(), 202);
    eventually("the healed run stores the letter", &daemon, || async {
        let m = mailbox(&daemon).await;
        m["state"] == "ready" && stored(&m) == 21
    })
    .await;
}

/// The Sent entry of `id` in `/api/v1/emails`.
async fn sent(daemon: &Daemon, id: &str) -> serde_json::Value {
    let page: serde_json::Value = daemon
        .get("/api/v1/emails?folder=Sent&limit=1000", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .expect("JSON");
    page["items"]
        .as_array()
        .and_then(|items| items.iter().find(|e| e["id"] == id).cloned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_smtp_server_that_stalls_after_data_is_timed_out_and_the_message_sent_once() {
    // REQ: MB-03 (sent through the durable outbox; a temporary failure is retried)
    dovecot().add_user(SMTP_USER, SMTP_PASSWORD);
    let sink = smtp();
    let proxy = FaultProxy::start(sink.port).await;
    // The message's data goes through up to its last line; the final "." is held back and the
    // server is never heard from again, so the server cannot have accepted it.
    proxy.arm(b"\r\n.\r\n", Fault::Stall);
    let port = free_port();
    let mut daemon = Daemon::start(
        port,
        &config(port, dovecot().imap_port, proxy.port(), SMTP_USER),
        &[("SB_MAIL_PASSWORD", SMTP_PASSWORD)],
    );
    daemon.wait_ready().await;

    let subject = "Stalled quote 7f3a";
    let response = switchboard::net::http_client()
        .post(format!("{}/api/v1/emails", daemon.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({
            "mailbox": "box", "to": ["bob@customer.example"], "subject": subject, "text": "t"
        }))
        .send()
        .await
        .expect("POST");
    let status = response.status();
    let email: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(status, 202, "{email}");
    let id = email["id"].as_str().expect("id").to_owned();

    eventually("the SMTP server stalled after DATA", &daemon, || async {
        proxy.taken() == 1
    })
    .await;
    // Timed out (Settings.mail.smtpTimeout), kept queued with the reason, not sent twice.
    eventually("the stalled attempt is on the message", &daemon, || async {
        sent(&daemon, &id).await["delivery"]["attempts"] == 1
    })
    .await;
    let waiting = sent(&daemon, &id).await;
    assert_eq!(waiting["delivery"]["state"], "queued", "{waiting}");
    let error = waiting["delivery"]["lastError"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("within 2s"), "{waiting}");
    // The message records its attempt inside the run; the run's own result (the mailbox's
    // lastError) is recorded when the run ends, a moment later.
    eventually(
        "the mailbox shows the stalled delivery",
        &daemon,
        || async {
            find(&daemon.objects().await, "Mailbox", "box").is_some_and(|m| {
                m["lastError"]
                    .as_str()
                    .is_some_and(|e| e.contains("did not finish the delivery"))
            })
        },
    )
    .await;
    assert!(
        !sink.received().iter().any(|m| m.contains(subject)),
        "the stalled message never reached the server"
    );

    // The retry (30 s after the failure, brought forward by the scheduler's backoff) goes
    // through the proxy, which now passes everything.
    eventually_within(
        "the retry delivered the message",
        Duration::from_secs(90),
        &daemon,
        || async { sent(&daemon, &id).await["delivery"]["state"] == "sent" },
    )
    .await;
    let delivered = sent(&daemon, &id).await;
    assert_eq!(delivered["delivery"]["attempts"], 2, "{delivered}");
    let copies = sink
        .received()
        .iter()
        .filter(|m| m.contains(subject))
        .count();
    assert_eq!(copies, 1, "delivered exactly once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graph_answer_cut_in_the_middle_of_its_json_body_is_retried_with_backoff() {
    // REQ: EP-05 (Microsoft 365 through Graph: resumable delta sync)
    const CLIENT_ID: &str = "switchboard-faults-m365";
    const CLIENT_SECRET: &str = "m365-faults-s3cret";
    const REFRESH: &str = "m365-faults-refresh";
    const ADDRESS: &str = "sales@corp.example";
    let oauth =
        oauth_fake::OAuthFake::start(CLIENT_ID, CLIENT_SECRET, Duration::from_secs(3600)).await;
    oauth.allow(REFRESH, ADDRESS);
    let graph = graph_fake::GraphFake::start(2).await;
    for n in 1..=5 {
        graph.deliver(&format!("half-{n}@customer.example"), &format!("Half {n}"));
    }
    let graph_port: u16 = graph
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the fake's port");
    let proxy = FaultProxy::start(graph_port).await;
    // The first delta page's answer stops 600 bytes in: the headers and half of the JSON.
    proxy.arm(b"/messages/delta", Fault::CutAfter(600));

    let port = free_port();
    let files = vec![
        (
            "all.yaml",
            format!(
                "apiVersion: switchboard/v1\nkind: Settings\nmetadata: {{name: default}}\nspec: {{siteUrl: 'http://127.0.0.1:{port}', listen: '127.0.0.1:{port}'}}\n---\n\
                 apiVersion: switchboard/v1\nkind: Role\nmetadata: {{name: admins}}\nspec: {{title: Admins, operations: [CanManageAdministration]}}\n---\n\
                 apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: owner}}\nspec: {{displayName: Owner, email: owner@example.com, roles: [admins], apiTokenSha256: [{token}]}}\n---\n\
                 apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {{name: m365}}\nspec:\n  type: microsoft365\n  title: Microsoft 365\n  domains: [corp.example]\n  \
                 apiBaseUrl: http://127.0.0.1:{proxy}\n  auth: oauth2\n  \
                 oauth2:\n    clientId: {CLIENT_ID}\n    clientSecret: {{file: client-secret}}\n    authUrl: {oauth}/auth\n    tokenUrl: {oauth}/token\n    scopes: [Mail.ReadWrite, Mail.Send]\n---\n\
                 apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: box}}\nspec:\n  address: {ADDRESS}\n  owner: owner\n  oauth2RefreshToken: {{file: refresh}}\n  \
                 load: {{period: 1w}}\n",
                token = hex::encode(Sha256::digest(ADMIN_TOKEN.as_bytes())),
                proxy = proxy.port(),
                oauth = oauth.base,
            ),
        ),
        ("client-secret", CLIENT_SECRET.to_owned()),
        ("refresh", REFRESH.to_owned()),
    ];
    let mut daemon = Daemon::start(port, &files, &[]);
    daemon.wait_ready().await;

    eventually("the answer was cut", &daemon, || async {
        proxy.taken() == 1
    })
    .await;
    eventually("the failed run is on the object", &daemon, || async {
        mailbox(&daemon).await["runsFailed"].as_i64() == Some(1)
    })
    .await;
    let failed = mailbox(&daemon).await;
    assert_eq!(failed["state"], "error", "{failed}");
    let error = failed["lastError"].as_str().unwrap_or_default().to_owned();
    assert!(
        error.contains("Microsoft Graph delta of Inbox")
            && error.contains("decoding response body"),
        "{failed}"
    );

    // No IDLE here: the retry comes from the scheduler's backoff (8 to 12 s after the failure).
    eventually_within(
        "the retry finished the sync",
        Duration::from_secs(40),
        &daemon,
        || async {
            let m = mailbox(&daemon).await;
            m["state"] == "ready" && stored(&m) == 5
        },
    )
    .await;
    let done = mailbox(&daemon).await;
    assert_eq!(done["runsFailed"], 1, "{done}");
    let at = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(done[field].as_str().expect(field)).expect("RFC 3339")
    };
    let waited = (at("lastSuccessAt") - at("lastErrorAt")).num_milliseconds();
    assert!(
        waited >= 7_000,
        "retried after the backoff, not at once: {waited} ms"
    );
    let log = daemon.stderr();
    assert!(
        !log.contains(CLIENT_SECRET) && !log.contains(REFRESH),
        "{log}"
    );
}
