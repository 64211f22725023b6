//! The WhatsApp channel (Twilio) through the real binary against a fake Twilio API, with
//! request signatures made by Twilio's own SDK (`tests/data/twilio_signatures.*`): the account
//! is verified before the channel takes messages, forged requests store nothing, a redelivery
//! stores one message, refused media are told to the client and kept in the history, and
//! operator replies go out through the Messages API with Basic auth after a 429.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::twilio_fake::{SendFailure, TwilioFake};
use support::{Daemon, eventually, find, free_port};

const AUTH_TOKEN: &str = "wa-auth-token-3f7a";
const SID: &str = "AC00000000000000000000000000000001";
const ANN: &str = "ann-token-wa";
const ALICE: &str = "alice-admin-token-wa";

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A reference case: its form params and the SDK's signature.
fn case(name: &str) -> (Vec<(String, String)>, String) {
    let cases: Vec<Value> =
        serde_json::from_str(include_str!("data/twilio_signatures.json")).expect("cases");
    let case = cases.iter().find(|c| c["name"] == name).expect("case");
    let params = case["params"]
        .as_object()
        .expect("params")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_owned()))
        .collect();
    (params, case["signature"].as_str().expect("sig").to_owned())
}

fn files(port: u16, sales: &str, closed: &str) -> Vec<(&'static str, String)> {
    let channel = |name: &str, base: &str| {
        format!(
            "apiVersion: switchboard/v1\nkind: ChatChannel\nmetadata: {{name: {name}}}\nspec:\n  provider: whatsapp\n  title: WhatsApp\n  queue: support\n  language: en-US\n  phoneNumber: '+15557654321'\n  verificationPhoneNumber: '+15557654000'\n  accountSid: {SID}\n  authToken: {{file: twilio-token.txt}}\n  sandbox: true\n  apiBaseUrl: {base}\n"
        )
    };
    vec![
        (
            "settings.yaml",
            format!(
                "apiVersion: switchboard/v1\nkind: Settings\nmetadata: {{name: default}}\nspec:\n  siteUrl: https://sb.example.test\n  listen: 127.0.0.1:{port}\n"
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
            "channels.yaml",
            format!(
                "{}---\n{}",
                channel("wa-sales", sales),
                channel("wa-closed", closed)
            ),
        ),
        ("twilio-token.txt", AUTH_TOKEN.to_owned()),
    ]
}

async fn post(
    daemon: &Daemon,
    channel: &str,
    params: &[(String, String)],
    signature: Option<&str>,
) -> (u16, String) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let mut request = switchboard::net::http_client()
        .post(format!("{}/webhooks/twilio/{channel}", daemon.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(s) = signature {
        request = request.header("X-Twilio-Signature", s);
    }
    let response = request.send().await.expect("POST");
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
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

async fn object(daemon: &Daemon, name: &str) -> Value {
    let objects = daemon
        .get("/api/v1/objects?limit=1000", Some(ALICE))
        .await
        .json()
        .await
        .expect("objects");
    find(&objects, "ChatChannel", name).expect("listed").clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn whatsapp_messages_are_verified_signed_deduplicated_and_answered() {
    // REQ: WA-01, WA-02, WA-03, WA-04, WA-05, CH-09
    let sales = TwilioFake::start(SID, AUTH_TOKEN, "active").await;
    let closed = TwilioFake::start(SID, AUTH_TOKEN, "suspended").await;
    let port = free_port();
    let mut daemon = Daemon::start(port, &files(port, &sales.base, &closed.base), &[]);
    daemon.wait_ready().await;

    // The account is verified before the channel takes messages (WA-03).
    eventually("wa-sales is verified", &daemon, || async {
        object(&daemon, "wa-sales").await["state"] == "ready"
    })
    .await;
    eventually("wa-closed is refused", &daemon, || async {
        let o = object(&daemon, "wa-closed").await;
        o["state"] == "error" && o.to_string().contains("suspended")
    })
    .await;
    let (params, signature) = case("unverified-account");
    assert_eq!(
        post(&daemon, "wa-closed", &params, Some(&signature))
            .await
            .0,
        503
    );

    // Forged, unsigned, tampered: nothing stored (WA-05).
    let (params, signature) = case("text");
    assert_eq!(post(&daemon, "wa-sales", &params, None).await.0, 401);
    assert_eq!(
        post(
            &daemon,
            "wa-sales",
            &params,
            Some("AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        )
        .await
        .0,
        403
    );
    let mut tampered = params.clone();
    tampered
        .iter_mut()
        .find(|(k, _)| k == "Body")
        .expect("Body")
        .1 = "pay me".into();
    assert_eq!(
        post(&daemon, "wa-sales", &tampered, Some(&signature))
            .await
            .0,
        403
    );
    let (_, chats) = call(&daemon, Method::GET, "/api/v1/chats", ALICE, None).await;
    assert_eq!(chats["total"], 0, "{chats}");

    // The SDK-signed request is stored; Twilio's redelivery is not stored again.
    let (code, twiml) = post(&daemon, "wa-sales", &params, Some(&signature)).await;
    assert_eq!(code, 200, "{twiml}");
    assert!(twiml.contains("<Response></Response>"), "{twiml}");
    assert_eq!(
        post(&daemon, "wa-sales", &params, Some(&signature)).await.0,
        200
    );

    // An accepted image and a refused video (WA-02): the client is told, the history keeps it.
    let (params, signature) = case("image");
    assert_eq!(
        post(&daemon, "wa-sales", &params, Some(&signature)).await.0,
        200
    );
    let (params, signature) = case("refused-media");
    let (code, twiml) = post(&daemon, "wa-sales", &params, Some(&signature)).await;
    assert_eq!(code, 200);
    assert!(
        twiml.contains("<Message>Sorry, a video/quicktime file is not accepted."),
        "{twiml}"
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
    let texts: Vec<&str> = chat["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["text"].as_str().expect("text"))
        .collect();
    assert_eq!(texts.len(), 3, "{chat}");
    assert_eq!(texts[0], "Привет & hello = 1+1");
    assert!(
        texts[1].starts_with("[image/jpeg] https://api.twilio.com/"),
        "{}",
        texts[1]
    );
    assert!(
        texts[2].starts_with("my video\n[refused file: a video/quicktime file is not accepted"),
        "{}",
        texts[2]
    );
    assert_eq!(chat["contact"]["name"], "Tom");

    // The operator answers through the Messages API; the first attempt gets 429 Retry-After 1.
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
    assert_eq!(
        call(
            &daemon,
            Method::POST,
            &format!("/api/v1/chats/{id}/accept"),
            ANN,
            None
        )
        .await
        .0,
        200
    );
    sales
        .lock()
        .send_failures
        .push_back(SendFailure::RateLimited(1));
    let text = Some(json!({"text": "Hi Tom, how can we help?"}));
    let (code, _) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{id}/messages"),
        ANN,
        text,
    )
    .await;
    assert!((200..300).contains(&code), "{code}");
    for _ in 0..100 {
        if !sales.lock().sent.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let state = sales.lock();
    assert_eq!(
        state.sent,
        vec![(
            "whatsapp:+15551234567".to_owned(),
            "whatsapp:+15557654321".to_owned(),
            "Hi Tom, how can we help?".to_owned()
        )],
        "{:?}",
        state.calls
    );
    assert_eq!(
        state.calls.iter().filter(|c| *c == "POST message").count(),
        2
    );
    drop(state);
    assert!(
        !daemon.stderr().contains(AUTH_TOKEN),
        "the auth token is never logged"
    );
}
