//! The chat tests' config: operators with tokens, a queue, api channels (one inactive) and a
//! telegram channel whose Bot API cannot be reached (port 9), written next to the secrets they reference.

#![allow(dead_code)]

use sha2::{Digest, Sha256};

/// Operator `ann`'s API token.
pub const ANN: &str = "ann-api-token";
/// Operator `bob`'s API token.
pub const BOB: &str = "bob-api-token";
/// Supervisor `sue`'s API token (`CanManageChats`, in no queue).
pub const SUE: &str = "sue-api-token";
/// The `web` channel's inbound token.
pub const INBOUND: &str = "web-inbound-token-5b1e";
/// The `web` channel's callback secret.
pub const CALLBACK_SECRET: &str = "web-callback-secret-9c2d";

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The manifests and secret files for a daemon on `port` whose `web` channel calls back to
/// `callback` (e.g. `http://127.0.0.1:1234/callback`).
pub fn files(port: u16, callback: &str, routing: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "settings.yaml",
            format!(
                "apiVersion: switchboard/v1\nkind: Settings\nmetadata: {{name: default}}\nspec:\n  siteUrl: http://127.0.0.1:{port}\n  listen: 127.0.0.1:{port}\n  chat: {{simultaneousChats: 2, acceptTimeout: 5m}}\n"
            ),
        ),
        (
            "users.yaml",
            format!(
                "apiVersion: switchboard/v1\nkind: Role\nmetadata: {{name: agents}}\nspec: {{title: Agents}}\n---\n\
                 apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: ann}}\nspec: {{displayName: Ann, email: ann@example.com, roles: [agents], apiTokenSha256: [{}]}}\n---\n\
                 apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: bob}}\nspec: {{displayName: Bob, email: bob@example.com, roles: [agents], apiTokenSha256: [{}]}}\n---\n\
                 apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: sue}}\nspec: {{displayName: Sue, email: sue@example.com, operations: [CanManageChats], apiTokenSha256: [{}]}}\n",
                sha(ANN),
                sha(BOB),
                sha(SUE)
            ),
        ),
        (
            "chat.yaml",
            format!(
                "apiVersion: switchboard/v1\nkind: ChatQueue\nmetadata: {{name: support}}\nspec: {{title: Support, routing: {routing}, completionTimeout: 30m, operators: [{{role: agents}}]}}\n---\n\
                 apiVersion: switchboard/v1\nkind: ChatQueue\nmetadata: {{name: sales}}\nspec: {{title: Sales, routing: leastBusy, operators: [{{user: bob}}]}}\n---\n\
                 apiVersion: switchboard/v1\nkind: ChatChannel\nmetadata: {{name: web}}\nspec:\n  provider: api\n  title: Web site\n  queue: support\n  language: en-US\n  inboundToken: {{file: inbound.txt}}\n  callbackUrl: {callback}\n  callbackSecret: {{file: callback.txt}}\n---\n\
                 apiVersion: switchboard/v1\nkind: ChatChannel\nmetadata: {{name: shop}}\nspec: {{provider: api, title: Shop, queue: sales, language: en-US, inboundToken: {{file: inbound.txt}}}}\n---\n\
                 apiVersion: switchboard/v1\nkind: ChatChannel\nmetadata: {{name: legacy}}\nspec: {{provider: api, title: Old site, active: false, queue: support, language: en-US, inboundToken: {{file: inbound.txt}}}}\n---\n\
                 apiVersion: switchboard/v1\nkind: ChatChannel\nmetadata: {{name: bot}}\nspec: {{provider: telegram, title: Bot, queue: support, language: ru-RU, token: {{file: inbound.txt}}, apiBaseUrl: 'http://127.0.0.1:9'}}\n---\n\
                 apiVersion: switchboard/v1\nkind: QuickReply\nmetadata: {{name: hello-en}}\nspec: {{language: en-US, text: 'Hello! How can I help?'}}\n---\n\
                 apiVersion: switchboard/v1\nkind: QuickReply\nmetadata: {{name: hello-ru}}\nspec: {{language: ru-RU, text: 'Здравствуйте!', queues: [support]}}\n---\n\
                 apiVersion: switchboard/v1\nkind: QuickReply\nmetadata: {{name: sales-en}}\nspec: {{language: en-US, text: 'Our prices', queues: [sales]}}\n"
            ),
        ),
        ("inbound.txt", INBOUND.to_owned()),
        ("callback.txt", CALLBACK_SECRET.to_owned()),
    ]
}

/// POSTs an api-channel message to `channel` with the right token; answers the chat id.
pub async fn send(
    daemon: &crate::support::Daemon,
    channel: &str,
    id: &str,
    from: &str,
    text: &str,
) -> String {
    let response = switchboard::net::http_client()
        .post(format!("{}/webhooks/api/{channel}", daemon.base))
        .bearer_auth(INBOUND)
        .json(&message(id, from, text))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200, "{}", daemon.stderr());
    let body: serde_json::Value = response.json().await.expect("JSON");
    body["chatId"].as_str().expect("chatId").to_owned()
}

/// A request to the operator API as the holder of `token`.
pub async fn call(
    daemon: &crate::support::Daemon,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = switchboard::net::http_client()
        .request(method, format!("{}{path}", daemon.base))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// An open `GET /api/v1/events` stream.
pub struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    /// Subscribes as the holder of `token`.
    pub async fn open(daemon: &crate::support::Daemon, token: &str) -> Events {
        let response = switchboard::net::http_client()
            .get(format!("{}/api/v1/events", daemon.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET /api/v1/events");
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .expect("ascii")
                .starts_with("text/event-stream")
        );
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// The next event named `name` (others are skipped), with its JSON data; panics after 10 s.
    pub async fn next(&mut self, name: &str) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        event = Some(e.trim().to_owned());
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                if event.as_deref() == Some(name) {
                    return serde_json::from_str(&data).expect("event data is JSON");
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no {name} event within 10 s"))
                .expect("stream")
                .expect("stream open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// An api-channel message body.
pub fn message(id: &str, from: &str, text: &str) -> serde_json::Value {
    serde_json::json!({"messageId": id, "from": {"id": from, "name": from.to_uppercase()}, "text": text})
}

/// `/api/v1/objects` as the holder of `token`.
pub async fn objects(daemon: &crate::support::Daemon, token: &str) -> serde_json::Value {
    daemon
        .get("/api/v1/objects?limit=1000", Some(token))
        .await
        .json()
        .await
        .expect("objects JSON")
}
