//! CH-10 through the real binary: removing the manifest of a channel that has chats
//! deactivates it — `plan` says so and counts it as a change, the store keeps it inactive, its
//! history stays readable and its webhook answers 403 `channel-inactive` — while a removed
//! channel without chats is deleted.

mod chat_support;
mod support;

use std::process::Command;

use chat_support::{INBOUND, SUE, call, files, message, send};
use reqwest::Method;
use support::{Daemon, eventually, find, free_port};

fn plan(daemon: &Daemon) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(daemon.config_dir())
        .arg("--state")
        .arg(daemon.dir.path().join("state.db"))
        .arg("plan")
        .output()
        .expect("switchboard plan runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// `chat.yaml` without the documents of the channels `web` and `legacy`.
fn without_web_and_legacy(chat_yaml: &str) -> String {
    chat_yaml
        .split("---\n")
        .filter(|doc| !doc.contains("name: web}") && !doc.contains("name: legacy}"))
        .collect::<Vec<_>>()
        .join("---\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_channel_with_chats_is_deactivated_and_keeps_its_history() {
    let port = free_port();
    let config = files(port, "http://127.0.0.1:9/callback", "toAll");
    let mut daemon = Daemon::start(port, &config, &[]);
    daemon.wait_ready().await;
    let chat = send(&daemon, "web", "d-1", "visitor-1", "Hello").await;

    let chat_yaml = &config
        .iter()
        .find(|(n, _)| *n == "chat.yaml")
        .expect("chat")
        .1;
    let reduced = without_web_and_legacy(chat_yaml);
    assert!(!reduced.contains("name: web}") && reduced.contains("name: shop}"));
    std::fs::write(daemon.config_dir().join("chat.yaml"), reduced).expect("rewrite");

    // REQ: CH-10 (plan says "deactivate" for a channel with chats and counts it as a change)
    let text = plan(&daemon);
    assert!(
        text.contains("  ~ ChatChannel/web will be deactivated (it has chats; history is kept)"),
        "{text}"
    );
    assert!(text.contains("      ~ spec.active: true → false"), "{text}");
    assert!(
        text.contains("  - ChatChannel/legacy will be destroyed"),
        "{text}"
    );
    assert!(
        text.contains("Plan: 0 to add, 1 to change, 1 to destroy."),
        "{text}"
    );

    // REQ: CH-10 (applied: kept inactive, not deleted; the channel without chats is deleted)
    daemon.signal("HUP");
    eventually("the reload to apply", &daemon, || async {
        let objects = chat_support::objects(&daemon, SUE).await;
        find(&objects, "ChatChannel", "legacy").is_none()
    })
    .await;
    let objects = chat_support::objects(&daemon, SUE).await;
    let web = find(&objects, "ChatChannel", "web")
        .unwrap_or_else(|| panic!("web is kept: {objects}\n{}", daemon.stderr()));
    assert!(web.to_string().contains("deactivated"), "{web}");

    // REQ: CH-10, CH-11 (history readable; the webhook answers 403 channel-inactive)
    let (code, got) = call(
        &daemon,
        Method::GET,
        &format!("/api/v1/chats/{chat}"),
        SUE,
        None,
    )
    .await;
    assert_eq!(code, 200, "{got}");
    assert_eq!(got["channel"], "web");
    assert_eq!(got["messages"][0]["text"], "Hello");
    let response = switchboard::net::http_client()
        .post(format!("{}/webhooks/api/web", daemon.base))
        .bearer_auth(INBOUND)
        .json(&message("d-2", "visitor-1", "Still there?"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 403);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "channel-inactive");
    let response = switchboard::net::http_client()
        .post(format!("{}/webhooks/api/legacy", daemon.base))
        .bearer_auth(INBOUND)
        .json(&message("d-3", "visitor-1", "Hi"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 404, "no chats: deleted");

    // Once deactivated, there is nothing left to change.
    let text = plan(&daemon);
    assert!(!text.contains("ChatChannel/web"), "{text}");
}
