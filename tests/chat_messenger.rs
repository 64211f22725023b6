//! The Messenger channel through the real binary against a fake Graph API: verification GET,
//! signed POSTs, replies through the Send API, the Handover Protocol (FB-03: the bot's threads
//! are history with no operator; a thread passed to us is routed like any chat, and goes back
//! to the bot when its chat completes) and the detection of another installation subscribed
//! to the page (FB-02).

mod chat_support;
#[path = "support/messenger_fake.rs"]
mod messenger_fake;
mod support;

use chat_support::{ANN, SUE, call, files, objects};
use hmac::{Hmac, Mac};
use messenger_fake::{GraphFailure, MessengerFake};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use support::{Daemon, eventually, find, free_port};

const PAGE: &str = "1066";
const PAGE_TOKEN: &str = "EAAGpageTokenForTests";
const APP_SECRET: &str = "messenger-app-secret-42";
const VERIFY: &str = "verify-me-7";
const OUR_APP: &str = "900";
const BOT_APP: &str = "555";

fn config(port: u16, graph: &str) -> Vec<(&'static str, String)> {
    let mut config = files(port, "http://127.0.0.1:9/callback", "toAll");
    config.push((
        "messenger.yaml",
        format!(
            "apiVersion: switchboard/v1\nkind: ChatChannel\nmetadata: {{name: fb}}\nspec:\n  provider: facebookMessenger\n  title: Facebook\n  queue: support\n  language: en-US\n  pageId: '{PAGE}'\n  pageAccessToken: {{file: page.txt}}\n  appSecret: {{file: app.txt}}\n  verifyToken: {{file: verify.txt}}\n  handover: {{primaryReceiverAppId: '{BOT_APP}'}}\n  apiBaseUrl: '{graph}'\n"
        ),
    ));
    config.push(("page.txt", PAGE_TOKEN.to_owned()));
    config.push(("app.txt", APP_SECRET.to_owned()));
    config.push(("verify.txt", VERIFY.to_owned()));
    config
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(APP_SECRET.as_bytes()).expect("any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn post(daemon: &Daemon, body: &Value, signature: Option<String>) -> u16 {
    let bytes = serde_json::to_vec(body).expect("JSON");
    let mut request = switchboard::net::http_client()
        .post(format!("{}/webhooks/messenger", daemon.base))
        .header("content-type", "application/json");
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    request
        .body(bytes)
        .send()
        .await
        .expect("POST")
        .status()
        .as_u16()
}

async fn deliver(daemon: &Daemon, body: Value) {
    let signature = sign(&serde_json::to_vec(&body).expect("JSON"));
    assert_eq!(
        post(daemon, &body, Some(signature)).await,
        200,
        "{}",
        daemon.stderr()
    );
}

fn messaging(events: Value) -> Value {
    json!({"object": "page", "entry": [{"id": PAGE, "time": 1, "messaging": events}]})
}

fn message(psid: &str, mid: &str, text: &str) -> Value {
    json!({"sender": {"id": psid}, "recipient": {"id": PAGE}, "timestamp": 1, "message": {"mid": mid, "text": text}})
}

async fn chats(daemon: &Daemon, query: &str) -> Value {
    let (code, body) = call(
        daemon,
        Method::GET,
        &format!("/api/v1/chats{query}"),
        SUE,
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn bot_threads_are_history_and_a_thread_passed_to_us_is_routed_and_answered() {
    let fake = MessengerFake::start(PAGE, PAGE_TOKEN, (OUR_APP, "Switchboard")).await;
    fake.lock()
        .subscribed
        .push((BOT_APP.into(), "Bot platform".into()));
    let port = free_port();
    let mut daemon = Daemon::start(port, &config(port, &fake.base), &[]);
    daemon.wait_ready().await;
    eventually("the channel is ready", &daemon, || async {
        find(&objects(&daemon, SUE).await, "ChatChannel", "fb")
            .is_some_and(|o| o["state"] == "ready")
    })
    .await;

    // REQ: FB-01 (the verification GET echoes the challenge for the right token only)
    let verify = |token: &str| {
        format!(
            "{}/webhooks/messenger?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=c-77",
            daemon.base
        )
    };
    let response = reqwest::get(verify(VERIFY)).await.expect("GET");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("text"), "c-77");
    assert_eq!(
        reqwest::get(verify("wrong")).await.expect("GET").status(),
        403
    );

    let (code, _) = call(
        &daemon,
        Method::PUT,
        "/api/v1/operators/me/status",
        ANN,
        Some(json!({"status": "active"})),
    )
    .await;
    assert_eq!(code, 200);

    // REQ: FB-04 (unsigned or forged: refused)
    let hello = messaging(json!([message("P1", "m.1", "hi bot")]));
    assert_eq!(post(&daemon, &hello, None).await, 401);
    assert_eq!(
        post(&daemon, &hello, Some(format!("sha256={}", "0".repeat(64)))).await,
        403
    );

    // REQ: FB-03 (the bot owns the thread: history with no operator, nothing routed)
    deliver(&daemon, hello.clone()).await;
    deliver(&daemon, hello).await;
    let standby = json!({"object": "page", "entry": [{"id": PAGE, "time": 2, "standby": [message("P1", "m.2", "and more")]}]});
    deliver(&daemon, standby).await;
    assert_eq!(chats(&daemon, "?state=offered").await["total"], 0);
    let history = chats(&daemon, "?state=completed").await;
    assert_eq!(history["total"], 1, "{history}");
    let bot_chat = &history["items"][0];
    assert_eq!(bot_chat["channel"], "fb");
    assert_eq!(bot_chat["operator"], Value::Null);
    let texts: Vec<&str> = bot_chat["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["text"].as_str().expect("text"))
        .collect();
    assert_eq!(
        texts,
        ["hi bot", "and more"],
        "a repeated mid is stored once"
    );

    // REQ: FB-03, CH-03 (control passed to us: the chat opens and is routed)
    let pass = messaging(
        json!([{"sender": {"id": "P1"}, "recipient": {"id": PAGE}, "timestamp": 3,
        "pass_thread_control": {"new_owner_app_id": OUR_APP, "metadata": "wants a human"}}]),
    );
    deliver(&daemon, pass).await;
    let offered = chats(&daemon, "?state=offered").await;
    assert_eq!(offered["total"], 1, "{offered}");
    let chat = offered["items"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        offered["items"][0]["messages"][0]["text"],
        "[the bot passed the conversation: wants a human]"
    );
    let (code, _) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/accept"),
        ANN,
        None,
    )
    .await;
    assert_eq!(code, 200);

    // Our thread now: the client's messages join the chat; the reply goes out by the Send API.
    deliver(
        &daemon,
        messaging(json!([message("P1", "m.3", "hello human")])),
    )
    .await;
    let (code, _) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/messages"),
        ANN,
        Some(json!({"text": "Hi, Ann here"})),
    )
    .await;
    assert_eq!(code, 202);
    eventually("the reply reaches the Send API", &daemon, || async {
        !fake.lock().sent.is_empty()
    })
    .await;
    let sent = fake.lock().sent[0].clone();
    assert_eq!(sent["recipient"]["id"], "P1");
    assert_eq!(sent["message"]["text"], "Hi, Ann here");
    let (_, got) = call(
        &daemon,
        Method::GET,
        &format!("/api/v1/chats/{chat}"),
        ANN,
        None,
    )
    .await;
    assert_eq!(got["messages"][1]["text"], "hello human");

    // The bot takes the thread back: the client's messages are history again.
    let take = messaging(
        json!([{"sender": {"id": "P1"}, "recipient": {"id": PAGE}, "timestamp": 4,
        "take_thread_control": {"previous_owner_app_id": OUR_APP, "metadata": ""}}]),
    );
    deliver(&daemon, take).await;
    deliver(
        &daemon,
        messaging(json!([message("P1", "m.4", "back to the bot")])),
    )
    .await;
    let (_, got) = call(
        &daemon,
        Method::GET,
        &format!("/api/v1/chats/{chat}"),
        ANN,
        None,
    )
    .await;
    assert_eq!(got["messages"].as_array().expect("messages").len(), 3);
    let history = chats(&daemon, "?state=completed").await;
    assert_eq!(
        history["items"][0]["messages"][2]["text"],
        "back to the bot"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn another_app_subscribed_to_the_page_is_reported_as_a_conflict() {
    // REQ: FB-02
    let fake = MessengerFake::start(PAGE, PAGE_TOKEN, (OUR_APP, "Switchboard")).await;
    fake.lock()
        .subscribed
        .push(("777".into(), "Other installation".into()));
    let port = free_port();
    let mut daemon = Daemon::start(port, &config(port, &fake.base), &[]);
    daemon.wait_ready().await;
    eventually("the conflict is reported", &daemon, || async {
        find(&objects(&daemon, SUE).await, "ChatChannel", "fb").is_some_and(|o| {
            o["state"] == "error" && o.to_string().contains("Other installation (777)")
        })
    })
    .await;
    let object = find(&objects(&daemon, SUE).await, "ChatChannel", "fb")
        .expect("listed")
        .to_string();
    assert!(object.contains("FB-02"), "{object}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_completed_chat_passes_the_thread_back_to_the_bot() {
    // REQ: FB-03 (Switchboard is the secondary receiver: when its chat ends, the thread goes
    // back to the primary receiver through pass_thread_control, durably and retried)
    let fake = MessengerFake::start(PAGE, PAGE_TOKEN, (OUR_APP, "Switchboard")).await;
    fake.set_primary((BOT_APP, "Bot platform"));
    let port = free_port();
    let mut daemon = Daemon::start(port, &config(port, &fake.base), &[]);
    fake.lock().webhook = Some((
        format!("{}/webhooks/messenger", daemon.base),
        APP_SECRET.to_owned(),
    ));
    daemon.wait_ready().await;
    eventually("the channel is ready", &daemon, || async {
        find(&objects(&daemon, SUE).await, "ChatChannel", "fb")
            .is_some_and(|o| o["state"] == "ready")
    })
    .await;
    let (code, _) = call(
        &daemon,
        Method::PUT,
        "/api/v1/operators/me/status",
        ANN,
        Some(json!({"status": "active"})),
    )
    .await;
    assert_eq!(code, 200);

    // The bot talks first; then it passes the thread to us and a chat opens.
    assert_eq!(fake.customer_message("P7", "hi bot").await, Ok(200));
    assert_eq!(chats(&daemon, "?state=offered").await["total"], 0);
    assert_eq!(fake.pass_to_us("P7", "wants a human").await, Ok(200));
    let offered = chats(&daemon, "?state=offered").await;
    assert_eq!(offered["total"], 1, "{offered}");
    let chat = offered["items"][0]["id"].as_str().expect("id").to_owned();
    for (path, body) in [
        (format!("/api/v1/chats/{chat}/accept"), None),
        (
            format!("/api/v1/chats/{chat}/messages"),
            Some(json!({"text": "Glad to help. Bye!"})),
        ),
    ] {
        let (code, got) = call(&daemon, Method::POST, &path, ANN, body).await;
        assert!(code == 200 || code == 202, "{path}: {code} {got}");
    }

    // Graph is briefly unavailable: the hand-back is retried from the store.
    fake.lock()
        .pass_failures
        .push_back(GraphFailure::ServerError);
    let (code, done) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/complete"),
        ANN,
        None,
    )
    .await;
    assert_eq!((code, done["state"].as_str()), (200, Some("completed")));
    eventually("the thread is passed back to the bot", &daemon, || async {
        !fake.lock().passed.is_empty()
    })
    .await;
    {
        let state = fake.lock();
        assert_eq!(
            state.passed,
            [json!({"recipient": {"id": "P7"}, "target_app_id": 555,
                    "metadata": "switchboard: the chat with an operator was completed"})]
        );
        let order: Vec<&str> = state
            .calls
            .iter()
            .filter(|c| c.starts_with("POST"))
            .map(String::as_str)
            .collect();
        assert_eq!(
            order,
            [
                "POST me/messages",
                "POST me/pass_thread_control",
                "POST me/pass_thread_control"
            ],
            "the reply goes out first; the refused hand-back is tried again"
        );
    }
    assert!(!fake.ours("P7"));

    // The bot's thread again: the customer's next message is its history, no chat opens.
    assert_eq!(fake.customer_message("P7", "thanks bot").await, Ok(200));
    assert_eq!(chats(&daemon, "?state=offered").await["total"], 0);
    let history = chats(&daemon, "?state=completed").await;
    let bot_texts: Vec<String> = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|c| c["operator"].is_null())
        .flat_map(|c| c["messages"].as_array().cloned().unwrap_or_default())
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(bot_texts, ["hi bot", "thanks bot"], "{history}");

    // Until the bot passes it to us once more: a new chat is routed.
    assert_eq!(fake.pass_to_us("P7", "again").await, Ok(200));
    assert_eq!(chats(&daemon, "?state=offered").await["total"], 1);
    assert!(!daemon.stderr().contains(PAGE_TOKEN));
}
