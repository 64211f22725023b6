//! Shared setup of the records tests: an administrator, raw requests that show headers
//! (`ETag`) and take any content type (merge patch), and api-channel messages with a
//! sender's e-mail and phone.

use reqwest::Method;
use reqwest::header::HeaderMap;
use sha2::{Digest, Sha256};

use super::Daemon;

/// The token of `root`, who holds `CanManageAdministration` (sees every contact) and may own
/// shared mailboxes.
pub const ROOT: &str = "root-records-token";

/// A manifest file with the user `root`.
pub fn admin_file() -> (&'static str, String) {
    (
        "records-admin.yaml",
        format!(
            "apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: root}}\nspec: {{displayName: Root, email: root@example.com, operations: [CanManageAdministration, CanConnectSharedMailbox, CanManageSharedMailboxSync], apiTokenSha256: [{}]}}\n",
            hex::encode(Sha256::digest(ROOT.as_bytes()))
        ),
    )
}

/// An answer: status, headers and JSON body (`Null` when there is none).
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as JSON.
    pub body: serde_json::Value,
}

impl Answer {
    /// The `ETag` header.
    pub fn etag(&self) -> String {
        self.headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no ETag in the answer: {}", self.body))
            .to_owned()
    }
}

/// A request as the holder of `token`, with extra headers and a body of a content type.
pub async fn request(
    daemon: &Daemon,
    method: Method,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, serde_json::Value)>,
) -> Answer {
    let mut request = switchboard::net::http_client()
        .request(method, format!("{}{path}", daemon.base))
        .bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some((content_type, body)) = body {
        request = request
            .header("content-type", content_type)
            .body(body.to_string());
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

/// GET as the holder of `token`.
pub async fn get(daemon: &Daemon, path: &str, token: &str) -> Answer {
    request(daemon, Method::GET, path, token, &[], None).await
}

/// POSTs an api-channel message on `channel` (inbound token `inbound`) from `from` (the
/// `from` object of the api channel: id, name, email, phone); answers the chat id.
pub async fn chat_message(
    daemon: &Daemon,
    channel: &str,
    inbound: &str,
    message_id: &str,
    from: serde_json::Value,
) -> String {
    let response = switchboard::net::http_client()
        .post(format!("{}/webhooks/api/{channel}", daemon.base))
        .bearer_auth(inbound)
        .json(&serde_json::json!({"messageId": message_id, "from": from, "text": "hello"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200, "{}", daemon.stderr());
    let body: serde_json::Value = response.json().await.expect("JSON");
    body["chatId"].as_str().expect("chatId").to_owned()
}
