//! The chat tests' config: operators with tokens, a queue, api channels (one inactive) and a
//! telegram channel that stays pending, written next to the secrets they reference.

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
                 apiVersion: switchboard/v1\nkind: ChatChannel\nmetadata: {{name: legacy}}\nspec: {{provider: api, title: Old site, active: false, queue: support, language: en-US, inboundToken: {{file: inbound.txt}}}}\n---\n\
                 apiVersion: switchboard/v1\nkind: ChatChannel\nmetadata: {{name: bot}}\nspec: {{provider: telegram, title: Bot, queue: support, language: ru-RU, token: {{file: inbound.txt}}}}\n---\n\
                 apiVersion: switchboard/v1\nkind: QuickReply\nmetadata: {{name: hello-en}}\nspec: {{language: en-US, text: 'Hello! How can I help?'}}\n---\n\
                 apiVersion: switchboard/v1\nkind: QuickReply\nmetadata: {{name: hello-ru}}\nspec: {{language: ru-RU, text: 'Здравствуйте!', queues: [support]}}\n---\n\
                 apiVersion: switchboard/v1\nkind: QuickReply\nmetadata: {{name: sales-en}}\nspec: {{language: en-US, text: 'Our prices', queues: [sales]}}\n"
            ),
        ),
        ("inbound.txt", INBOUND.to_owned()),
        ("callback.txt", CALLBACK_SECRET.to_owned()),
    ]
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
