//! Faults injected between the real daemon and its real mail peers (tests/support/faults.rs):
//! each failed run is retried with backoff, nothing is lost or doubled, and the object's status
//! says what happened.

mod support;

use std::time::Duration;

use sha2::{Digest, Sha256};
use support::dovecot::{dovecot, messages};
use support::faults::{Fault, FaultProxy};
use support::{ADMIN_TOKEN, Daemon, eventually, eventually_within, find, free_port};

const PASSWORD: &str = "faults-pa55";

/// Settings, an admin, and an IMAP provider whose IMAP goes to `imap_port` (the proxy) and SMTP
/// to `smtp_port`, with one Mailbox `box` for `address`.
fn config(port: u16, imap_port: u16, smtp_port: u16, address: &str) -> Vec<(&'static str, String)> {
    vec![(
        "all.yaml",
        format!(
            "apiVersion: switchboard/v1\nkind: Settings\nmetadata: {{name: default}}\nspec: {{siteUrl: 'http://127.0.0.1:{port}', listen: '127.0.0.1:{port}'}}\n---\n\
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
