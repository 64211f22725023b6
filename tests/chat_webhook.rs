//! The `api` channel's webhook against the real daemon: authentication before anything,
//! bounded bodies, the error JSON, and each delivery stored exactly once.

mod chat_support;
mod support;

use chat_support::{INBOUND, SUE, files, message};
use support::{Daemon, eventually, find, free_port};
use switchboard::store::Store;
use switchboard::store::chat::{ChatFilter, ChatState};

async fn post(
    daemon: &Daemon,
    channel: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = switchboard::net::http_client()
        .post(format!("{}/webhooks/api/{channel}", daemon.base))
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("POST")
}

async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.expect("error JSON");
    (
        status,
        body["error"]["code"].as_str().expect("code").to_owned(),
    )
}

/// What the daemon has stored: (chats, messages), read from its state file.
fn stored(daemon: &Daemon) -> (usize, usize) {
    let store = Store::open_read_only(&daemon.dir.path().join("state.db")).expect("state file");
    let (chats, total) = store.chats(&ChatFilter::default(), 0, 1000).expect("chats");
    let ids: Vec<i64> = chats.iter().map(|c| c.id).collect();
    (total, store.chat_messages(&ids).expect("messages").len())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_webhook_stores_each_message_once_and_refuses_what_it_must() {
    let port = free_port();
    let mut daemon = Daemon::start(
        port,
        &files(port, "http://127.0.0.1:9/callback", "toAll"),
        &[],
    );
    daemon.wait_ready().await;
    let body = |id: &str| serde_json::to_vec(&message(id, "visitor-1", "Hi there")).expect("JSON");

    // REQ: SPEC HTTP (the api channel: token first, 2xx only once stored, one message per messageId)
    // A forged or missing token is refused before anything is read, and nothing is stored.
    let forged = post(&daemon, "web", Some("not-the-token"), body("m1")).await;
    assert_eq!(forged.headers()["www-authenticate"], "Bearer");
    assert_eq!(error_code(forged).await, (401, "unauthorized".into()));
    assert_eq!(
        error_code(post(&daemon, "web", None, body("m1")).await).await,
        (401, "unauthorized".into())
    );
    assert_eq!(stored(&daemon), (0, 0));

    // Malformed and oversized bodies get 400 and 413 with the error JSON.
    assert_eq!(
        error_code(
            post(
                &daemon,
                "web",
                Some(INBOUND),
                b"{\"messageId\": 1}".to_vec()
            )
            .await
        )
        .await,
        (400, "bad-request".into())
    );
    let huge =
        serde_json::to_vec(&message("m9", "visitor-1", &"x".repeat(70 * 1024))).expect("JSON");
    assert_eq!(
        error_code(post(&daemon, "web", Some(INBOUND), huge).await).await,
        (413, "payload-too-large".into())
    );
    assert_eq!(stored(&daemon), (0, 0));

    // The same messageId twice: one message, the same chatId.
    let first = post(&daemon, "web", Some(INBOUND), body("m1")).await;
    assert_eq!(first.status(), 200);
    let first: serde_json::Value = first.json().await.expect("JSON");
    let chat_id = first["chatId"].as_str().expect("chatId").to_owned();
    let again: serde_json::Value = post(&daemon, "web", Some(INBOUND), body("m1"))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(again["chatId"], chat_id.as_str());
    assert_eq!(stored(&daemon), (1, 1), "one chat with one message");
    let store = Store::open_read_only(&daemon.dir.path().join("state.db")).expect("state file");
    let chat = store
        .chat(chat_id.parse().expect("numeric id"))
        .expect("read")
        .expect("stored");
    assert_eq!(
        (
            chat.channel.as_str(),
            chat.contact_name.as_str(),
            chat.state
        ),
        ("web", "VISITOR-1", ChatState::Offered)
    );
    drop(store);

    // A deactivated channel: 403 for its own client (after the token), 404 for no channel.
    assert_eq!(
        error_code(post(&daemon, "legacy", Some(INBOUND), body("m2")).await).await,
        (403, "channel-inactive".into())
    );
    assert_eq!(
        error_code(post(&daemon, "legacy", Some("wrong"), body("m2")).await).await,
        (401, "unauthorized".into())
    );
    assert_eq!(
        error_code(post(&daemon, "nowhere", Some(INBOUND), body("m2")).await).await,
        (404, "not-found".into())
    );
    assert_eq!(
        error_code(post(&daemon, "bot", Some(INBOUND), body("m2")).await).await,
        (404, "not-found".into()),
        "the api route serves api channels only"
    );
    assert_eq!(stored(&daemon), (1, 1));

    let metrics = daemon.metrics().await;
    for line in [
        r#"switchboard_webhook_requests_total{outcome="accepted",provider="api"} 1"#,
        r#"switchboard_webhook_requests_total{outcome="duplicate",provider="api"} 1"#,
        r#"switchboard_webhook_requests_total{outcome="unauthorized",provider="api"} 3"#,
        r#"switchboard_webhook_requests_total{outcome="invalid",provider="api"} 2"#,
        r#"switchboard_chat_messages_total{channel="web",direction="in"} 1"#,
        r#"switchboard_chats{queue="support",state="offered"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }

    // The api channel reconciles to ready.
    eventually("the web channel is reconciled", &daemon, || async {
        find(
            &chat_support::objects(&daemon, SUE).await,
            "ChatChannel",
            "web",
        )
        .is_some_and(|o| o["state"] == "ready")
    })
    .await;
    // A telegram channel whose Bot API cannot be reached is an error naming the failed
    // call, never a fake success.
    eventually(
        "the bot channel reports its unreachable Bot API",
        &daemon,
        || async {
            find(
                &chat_support::objects(&daemon, SUE).await,
                "ChatChannel",
                "bot",
            )
            .is_some_and(|o| o["state"] == "error" && o.to_string().contains("getMe failed"))
        },
    )
    .await;
    assert!(
        !daemon.stderr().contains(INBOUND),
        "the inbound token must never be logged"
    );
}
