//! Who may ask the real daemon to sync a mailbox (EP-09, MB-04), over loopback HTTP and through
//! `switchboard sync`: administrators, owners and holders of the `configure` right (with
//! `CanManageSharedMailboxSync` on a shared mailbox) get 202 and a run against the real
//! Dovecot; readers, senders, `configure` without the operation and strangers get 403.
//! A MailProvider stays an administrator's business.

mod support;

use std::process::Command;

use sha2::{Digest, Sha256};

use support::dovecot::{dovecot, messages};
use support::{Daemon, eventually, find, free_port};

const PASSWORD: &str = "rights-pa55";
const TEAM: &str = "team@rights.example.test";
const PERSONAL: &str = "paul@rights.example.test";

fn token(user: &str) -> String {
    format!("{user}-token")
}

fn config(port: u16) -> Vec<(&'static str, String)> {
    let user = |name: &str, roles: &str, operations: &str| {
        format!(
            "apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: {name}}}\nspec:\n  displayName: {name}\n  email: {name}@corp.example\n  roles: [{roles}]\n  operations: [{operations}]\n  apiTokenSha256: [{}]\n",
            hex::encode(Sha256::digest(token(name).as_bytes()))
        )
    };
    let role = |name: &str, operations: &str| {
        format!(
            "apiVersion: switchboard/v1\nkind: Role\nmetadata: {{name: {name}}}\nspec: {{title: {name}, operations: [{operations}]}}\n"
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
            "people.yaml",
            [
                role("admins", "CanManageAdministration"),
                role(
                    "mail-owners",
                    "CanConnectSharedMailbox, CanManageSharedMailboxSync",
                ),
                role("it", ""),
                user("ada", "admins", ""),
                user("olga", "mail-owners", ""),
                // `configure` through the role `it`, the operation held directly.
                user("ivan", "it", "CanManageSharedMailboxSync"),
                // `configure` by name, without the operation.
                user("dina", "", ""),
                user("rita", "", ""),
                user("sam", "", ""),
                user("paul", "", ""),
            ]
            .join("---\n"),
        ),
        (
            "mail.yaml",
            format!(
                "apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {{name: dovecot}}\nspec:\n  type: imap\n  title: Test Dovecot\n  domains: [rights.example.test]\n  \
                 imap: {{host: 127.0.0.1, port: {imap}, security: none}}\n  smtp: {{host: 127.0.0.1, port: 25, security: none}}\n---\n\
                 apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: team}}\nspec:\n  address: {TEAM}\n  owner: olga\n  password: {{env: SB_MAIL_PASSWORD}}\n  \
                 load: {{auto: false, folders: [INBOX]}}\n  send: {{enabled: false}}\n  access:\n    - {{role: it, configure: true}}\n    - {{user: dina, configure: true}}\n    \
                 - {{user: rita, readEmails: true}}\n    - {{user: sam, sendEmails: true}}\n---\n\
                 apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: paul-mail}}\nspec:\n  address: {PERSONAL}\n  owner: paul\n  password: {{env: SB_MAIL_PASSWORD}}\n  \
                 load: {{auto: false, folders: [INBOX]}}\n  send: {{enabled: false}}\n"
            ),
        ),
    ]
}

async fn sync(daemon: &Daemon, object: &str, who: &str) -> (u16, serde_json::Value) {
    let response = daemon
        .post(&format!("/api/v1/objects/{object}/sync"), Some(&token(who)))
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

fn runs_ok(objects: &serde_json::Value, name: &str) -> i64 {
    find(objects, "Mailbox", name)
        .and_then(|o| o["runsOk"].as_i64())
        .unwrap_or(-1)
}

async fn objects(daemon: &Daemon) -> serde_json::Value {
    daemon
        .get("/api/v1/objects?limit=1000", Some(&token("ada")))
        .await
        .json()
        .await
        .expect("objects JSON")
}

/// Asks as `who` and waits for the run the 202 promised: one more successful run.
async fn sync_runs(daemon: &Daemon, name: &str, who: &str) {
    let before = runs_ok(&objects(daemon).await, name);
    let (status, body) = sync(daemon, &format!("Mailbox/{name}"), who).await;
    assert_eq!(status, 202, "{who} syncs Mailbox/{name}: {body}");
    assert_eq!(body["queued"], true);
    eventually(&format!("{who}'s run of {name}"), daemon, || async {
        runs_ok(&objects(daemon).await, name) == before + 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn administrators_owners_and_configure_holders_may_sync_others_are_refused() {
    let server = dovecot();
    for address in [TEAM, PERSONAL] {
        server.add_user(address, PASSWORD);
        server.load(address, "INBOX", &messages("rights", address, 1));
    }
    let port = free_port();
    let mut daemon = Daemon::start(port, &config(port), &[("SB_MAIL_PASSWORD", PASSWORD)]);
    daemon.wait_ready().await;
    let start = objects(&daemon).await;
    assert_eq!(
        runs_ok(&start, "team"),
        0,
        "load.auto: false waits: {start}"
    );

    // REQ: EP-09 (an administrator may act on any mailbox)
    sync_runs(&daemon, "team", "ada").await;
    // REQ: MB-04 (the owner of a shared mailbox; a `configure` holder — here through a role —
    // who holds CanManageSharedMailboxSync)
    sync_runs(&daemon, "team", "olga").await;
    sync_runs(&daemon, "team", "ivan").await;
    // REQ: EP-09 (a personal mailbox's owner needs no operation)
    sync_runs(&daemon, "paul-mail", "paul").await;

    // REQ: MB-04 (configure without CanManageSharedMailboxSync; read and send rights; another
    // user's mailbox)
    let before = objects(&daemon).await;
    for (who, mailbox, says) in [
        ("dina", "team", "CanManageSharedMailboxSync"),
        ("rita", "team", "CanManageAdministration"),
        ("sam", "team", "CanManageAdministration"),
        ("paul", "team", "CanManageAdministration"),
        ("olga", "paul-mail", "CanManageAdministration"),
    ] {
        let (status, body) = sync(&daemon, &format!("Mailbox/{mailbox}"), who).await;
        assert_eq!(status, 403, "{who} on {mailbox}: {body}");
        assert_eq!(body["error"]["code"], "forbidden", "{body}");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains(says), "{who} on {mailbox}: {message}");
    }

    // REQ: EP-09 (a provider's settings need CanManageAdministration; it has no run of its
    // own, so the administrator passes the check and hears why nothing is queued)
    let (status, body) = sync(&daemon, "MailProvider/dovecot", "olga").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("CanManageAdministration")),
        "{body}"
    );
    let (status, body) = sync(&daemon, "MailProvider/dovecot", "ada").await;
    assert_eq!(status, 409, "{body}");
    // Only an administrator learns that a mailbox does not exist.
    assert_eq!(sync(&daemon, "Mailbox/nope", "olga").await.0, 403);
    assert_eq!(sync(&daemon, "Mailbox/nope", "ada").await.0, 404);

    // The CLI's refusal says who may sync a mailbox.
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(daemon.config_dir())
        .arg("--state")
        .arg(daemon.dir.path().join("state.db"))
        .args(["sync", "Mailbox/team"])
        .env("SWITCHBOARD_TOKEN", token("dina"))
        .env_remove("SWITCHBOARD_CONFIG")
        .env_remove("SWITCHBOARD_STATE")
        .output()
        .expect("run switchboard sync");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("lacks the operation CanManageSharedMailboxSync")
            && stderr.contains("`configure` right"),
        "{stderr}"
    );

    // Every refused request queued nothing.
    let after = objects(&daemon).await;
    for name in ["team", "paul-mail"] {
        assert_eq!(runs_ok(&after, name), runs_ok(&before, name), "{after}");
    }
}
