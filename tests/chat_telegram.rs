//! The Telegram channel through the real binary against a fake Bot API: the webhook is
//! registered with a secret token at apply, updates are authenticated before anything and
//! stored once, replies go out through `sendMessage` honouring `retry_after`, drift on our host
//! is repaired, another host's webhook is reported and left alone, and deactivating or
//! removing the channel deletes the webhook.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::telegram_fake::{SendFailure, TelegramFake};
use support::{Daemon, eventually, find, free_port};

const BOT_TOKEN: &str = "7001:AAHfakeTokenForTests_x9";
const ANN: &str = "ann-token-tg";
const ALICE: &str = "alice-admin-token-tg";

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn files(port: u16, api_base: &str, channel_extra: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "settings.yaml",
            format!(
                "apiVersion: switchboard/v1\nkind: Settings\nmetadata: {{name: default}}\nspec:\n  siteUrl: http://127.0.0.1:{port}\n  listen: 127.0.0.1:{port}\n"
            ),
        ),
        (
            "users.yaml",
            format!(
                "apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: ann}}\nspec: {{displayName: Ann, email: ann@example.com, apiTokenSha256: [{}]}}\n---\n\
                 apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: alice}}\nspec: {{displayName: Alice, email: alice@example.com, operations: [CanManageChats, CanManageAdministration], apiTokenSha256: [{}]}}\n---\n\
                 apiVersion: switchboard/v1\nkind: ChatQueue\nmetadata: {{name: support}}\nspec: {{title: Support, routing: toAll, operators: [{{user: ann}}]}}\n",
                sha(ANN),
                sha(ALICE)
            ),
        ),
        (
            "channel.yaml",
            format!(
                "apiVersion: switchboard/v1\nkind: ChatChannel\nmetadata: {{name: bot}}\nspec:\n  provider: telegram\n  title: Support bot\n  queue: support\n  language: en-US\n  token: {{file: bot-token.txt}}\n  apiBaseUrl: {api_base}\n{channel_extra}"
            ),
        ),
        ("bot-token.txt", BOT_TOKEN.to_owned()),
    ]
}

fn update(id: i64, user: i64, text: &str) -> Value {
    json!({"update_id": id, "message": {"message_id": id, "from": {"id": user, "is_bot": false, "first_name": "Tom"}, "chat": {"id": user, "type": "private"}, "date": 1, "text": text}})
}

async fn deliver(daemon: &Daemon, secret: Option<&str>, body: &Value) -> u16 {
    let mut request = switchboard::net::http_client()
        .post(format!("{}/webhooks/telegram/bot", daemon.base))
        .json(body);
    if let Some(secret) = secret {
        request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
    }
    request.send().await.expect("POST").status().as_u16()
}

async fn call(
    daemon: &Daemon,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = switchboard::net::http_client()
        .request(method, format!("{}{path}", daemon.base))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn channel_object(daemon: &Daemon) -> Value {
    let objects = daemon
        .get("/api/v1/objects?limit=1000", Some(ALICE))
        .await
        .json()
        .await
        .expect("objects");
    find(&objects, "ChatChannel", "bot")
        .expect("listed")
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_telegram_bot_is_registered_receives_once_replies_and_repairs_its_webhook() {
    // REQ: TG-01, TG-02, TG-03, CH-09
    let fake = TelegramFake::start(BOT_TOKEN).await;
    let port = free_port();
    let ours = format!("http://127.0.0.1:{port}/webhooks/telegram/bot");
    let mut daemon = Daemon::start(port, &files(port, &fake.base, ""), &[]);
    daemon.wait_ready().await;

    // Apply registers the webhook with a secret token and only the updates we handle.
    eventually("the webhook is registered", &daemon, || async {
        fake.lock().webhook_url == ours
    })
    .await;
    let secret = {
        let state = fake.lock();
        assert_eq!(state.calls[0], "getMe", "the token is checked first");
        assert_eq!(
            state.allowed_updates.as_deref(),
            Some(&["message".to_owned()][..])
        );
        state.secret_token.clone().expect("a secret token")
    };
    eventually("the channel is ready", &daemon, || async {
        channel_object(&daemon).await["state"] == "ready"
    })
    .await;

    // Forged or missing secret: 401, nothing stored.
    assert_eq!(deliver(&daemon, None, &update(1, 1001, "hi")).await, 401);
    assert_eq!(
        deliver(&daemon, Some("guess"), &update(1, 1001, "hi")).await,
        401
    );
    let (_, chats) = call(&daemon, Method::GET, "/api/v1/chats", ALICE, None).await;
    assert_eq!(chats["total"], 0, "{chats}");

    // The real delivery, then Telegram's redelivery of the same update_id: one message.
    assert_eq!(
        deliver(&daemon, Some(&secret), &update(1, 1001, "hi")).await,
        200
    );
    assert_eq!(
        deliver(&daemon, Some(&secret), &update(1, 1001, "hi")).await,
        200
    );
    let (_, chats) = call(&daemon, Method::GET, "/api/v1/chats", ALICE, None).await;
    assert_eq!(chats["total"], 1, "{chats}");
    let id = chats["items"][0]["id"].as_str().expect("id").to_owned();
    let (_, chat) = call(
        &daemon,
        Method::GET,
        &format!("/api/v1/chats/{id}"),
        ALICE,
        None,
    )
    .await;
    assert_eq!(
        chat["messages"].as_array().expect("messages").len(),
        1,
        "{chat}"
    );
    assert_eq!(chat["contact"]["name"], "Tom");

    // The operator answers; the Bot API first says 429 retry_after 1, the outbox waits and resends.
    let active = Some(json!({"status": "active"}));
    assert_eq!(
        call(
            &daemon,
            Method::PUT,
            "/api/v1/operators/me/status",
            ANN,
            active
        )
        .await
        .0,
        200
    );
    let (code, _) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{id}/accept"),
        ANN,
        None,
    )
    .await;
    assert_eq!(code, 200);
    fake.lock()
        .send_failures
        .push_back(SendFailure::RateLimited(1));
    let text = Some(json!({"text": "Hello Tom"}));
    let (code, _) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{id}/messages"),
        ANN,
        text,
    )
    .await;
    assert!(code == 200 || code == 201 || code == 202, "{code}");
    for _ in 0..100 {
        if !fake.lock().sent.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    {
        let state = fake.lock();
        assert_eq!(
            state.sent.len(),
            1,
            "delivered once after the 429: {:?}",
            state.calls
        );
        assert_eq!(state.sent[0]["chat_id"], "1001");
        assert_eq!(state.sent[0]["text"], "Hello Tom");
        assert_eq!(
            state.calls.iter().filter(|c| *c == "sendMessage").count(),
            2
        );
    }

    // Drift on our own host (an old route): registered again.
    fake.lock().webhook_url = format!("http://127.0.0.1:{port}/webhooks/telegram/old-name");
    let sync = "/api/v1/objects/ChatChannel/bot/sync";
    assert_eq!(call(&daemon, Method::POST, sync, ALICE, None).await.0, 202);
    eventually("drift is repaired", &daemon, || async {
        fake.lock().webhook_url == ours
    })
    .await;

    // Another installation took the bot: reported, not stolen.
    let foreign = "https://other.example.net/tg/hook".to_owned();
    fake.lock().webhook_url = foreign.clone();
    assert_eq!(call(&daemon, Method::POST, sync, ALICE, None).await.0, 202);
    eventually("the foreign webhook is reported", &daemon, || async {
        let o = channel_object(&daemon).await;
        o["state"] == "error"
            && o["lastError"]
                .as_str()
                .or(o["reason"].as_str())
                .is_some_and(|r| {
                    r.contains("foreign installation") && r.contains("https://other.example.net")
                })
    })
    .await;
    assert_eq!(fake.lock().webhook_url, foreign, "never stolen");

    // Deactivated: our webhook is deleted.
    fake.lock().webhook_url = ours.clone();
    std::fs::write(
        daemon.config_dir().join("channel.yaml"),
        &files(port, &fake.base, "  active: false\n")[2].1,
    )
    .expect("rewrite");
    daemon.signal("HUP");
    eventually("deactivation deletes the webhook", &daemon, || async {
        fake.lock().webhook_url.is_empty()
    })
    .await;
    assert_eq!(
        deliver(&daemon, Some(&secret), &update(2, 1001, "again")).await,
        403
    );

    // Removed: our webhook is deleted too.
    fake.lock().webhook_url = ours.clone();
    std::fs::remove_file(daemon.config_dir().join("channel.yaml")).expect("remove");
    daemon.signal("HUP");
    eventually("removal deletes the webhook", &daemon, || async {
        fake.lock().webhook_url.is_empty()
    })
    .await;

    let stderr = daemon.stderr();
    assert!(!stderr.contains(BOT_TOKEN), "the bot token is never logged");
    assert!(
        !stderr.contains(&secret),
        "the secret token is never logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_reconcile_registers_the_webhook_even_when_its_url_already_matches() {
    // REQ: TG-02 (getWebhookInfo cannot show the secret_token, so a URL that looks right may
    // carry a stale secret; the first run of a reconciler registers again, later runs do not)
    let fake = TelegramFake::start(BOT_TOKEN).await;
    let port = free_port();
    let ours = format!("http://127.0.0.1:{port}/webhooks/telegram/bot");
    {
        let mut state = fake.lock();
        state.webhook_url = ours.clone();
        state.secret_token = Some("stale-secret-from-an-older-registration".into());
        state.allowed_updates = Some(vec!["message".into()]);
    }
    let mut daemon = Daemon::start(port, &files(port, &fake.base, ""), &[]);
    daemon.wait_ready().await;
    eventually("the webhook is registered again", &daemon, || async {
        fake.count("setWebhook") == 1
    })
    .await;
    let secret = fake.lock().secret_token.clone().expect("secret");
    assert_ne!(secret, "stale-secret-from-an-older-registration");
    assert_eq!(
        deliver(&daemon, Some(&secret), &update(1, 1001, "hi")).await,
        200
    );

    // A later reconcile finds it in place and leaves it.
    let (code, _) = call(
        &daemon,
        Method::POST,
        "/api/v1/objects/ChatChannel/bot/sync",
        ALICE,
        None,
    )
    .await;
    assert_eq!(code, 202);
    eventually("the second reconcile ran", &daemon, || async {
        fake.count("getWebhookInfo") >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.count("setWebhook"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_that_cannot_bind_its_port_exits_before_calling_telegram() {
    // REQ: issue 20 item 3 (bind and open the store before any reconcile touches a provider)
    let fake = TelegramFake::start(BOT_TOKEN).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let mut daemon = Daemon::start(port, &files(port, &fake.base, ""), &[]);
    let status = daemon
        .wait_exit(Duration::from_secs(30))
        .expect("a daemon whose port is taken exits");
    assert_eq!(status.code(), Some(1), "{}", daemon.stderr());
    assert!(
        daemon
            .stderr()
            .contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{}",
        daemon.stderr()
    );
    assert_eq!(
        fake.lock().calls,
        Vec::<String>::new(),
        "a daemon that cannot serve changes nothing outside"
    );
    drop(taken);
}
