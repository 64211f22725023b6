//! A chat from start to finish through the real binary: a message arrives on the api channel,
//! is offered, accepted, answered — the answer reaches a callback server that checks the
//! HMAC signature, after one failed delivery retried from the durable outbox — and completed;
//! the client's next message opens a new chat.

mod chat_support;
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chat_support::{ANN, CALLBACK_SECRET, Events, call, files, send};
use hmac::{Hmac, Mac};
use reqwest::Method;
use sha2::Sha256;
use support::{Daemon, eventually, free_port};

/// What the callback server saw: each attempt's status and the bodies it accepted.
#[derive(Default)]
struct Received {
    attempts: Vec<u16>,
    accepted: Vec<serde_json::Value>,
}

/// Checks the signature; refuses the first valid delivery with 503 to exercise the retry.
async fn callback(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let signature = headers
        .get("x-switchboard-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(|hex_mac| hex::decode(hex_mac).ok());
    let mut mac = Hmac::<Sha256>::new_from_slice(CALLBACK_SECRET.as_bytes()).expect("any key");
    mac.update(&body);
    let valid = signature.is_some_and(|s| mac.verify_slice(&s).is_ok());
    let mut received = received.lock().expect("lock");
    let status = if !valid {
        StatusCode::UNAUTHORIZED
    } else if received.attempts.is_empty() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        received
            .accepted
            .push(serde_json::from_slice(&body).expect("JSON body"));
        StatusCode::OK
    };
    received.attempts.push(status.as_u16());
    status
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_arrives_is_accepted_answered_through_the_signed_callback_and_completed() {
    let received = Arc::new(Mutex::new(Received::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let callback_url = format!("http://{}/callback", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route("/callback", axum::routing::post(callback))
        .with_state(Arc::clone(&received));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let port = free_port();
    let mut daemon = Daemon::start(port, &files(port, &callback_url, "toAll"), &[]);
    daemon.wait_ready().await;
    let status = Some(serde_json::json!({"status": "active"}));
    let (code, _) = call(
        &daemon,
        Method::PUT,
        "/api/v1/operators/me/status",
        ANN,
        status,
    )
    .await;
    assert_eq!(code, 200);
    let mut events = Events::open(&daemon, ANN).await;

    // REQ: CH-03, CH-05, CH-11, SPEC HTTP (api channel callback signed with X-Switchboard-Signature)
    // In: the visitor writes; the chat is offered to ann.
    let chat = send(&daemon, "web", "w-1", "visitor-1", "Hello, anyone there?").await;
    let offered = events.next("chat.offered").await;
    assert_eq!(offered["chat"]["id"], chat.as_str());

    // Accept and answer.
    let (code, active) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/accept"),
        ANN,
        None,
    )
    .await;
    assert_eq!((code, active["state"].as_str()), (200, Some("active")));
    let text = Some(serde_json::json!({"text": "Hi! How can I help?"}));
    let (code, reply) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/messages"),
        ANN,
        text,
    )
    .await;
    assert_eq!(code, 202, "{reply}");

    // Out: the callback gets the signed body, after a 503 that the outbox retried.
    eventually("the reply reaches the callback", &daemon, || async {
        !received.lock().expect("lock").accepted.is_empty()
    })
    .await;
    {
        let received = received.lock().expect("lock");
        assert_eq!(
            received.attempts,
            vec![503, 200],
            "one retry, every signature valid"
        );
        let body = &received.accepted[0];
        assert_eq!(body["chatId"], chat.as_str());
        assert_eq!(body["messageId"], reply["id"]);
        assert_eq!(body["to"]["id"], "visitor-1");
        assert_eq!(body["operator"], "ann");
        assert_eq!(body["text"], "Hi! How can I help?");
    }

    // Complete; the visitor's next message opens a new chat (CH-05).
    let (code, done) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/complete"),
        ANN,
        None,
    )
    .await;
    assert_eq!((code, done["state"].as_str()), (200, Some("completed")));
    assert_eq!(
        events.next("chat.completed").await["chat"]["id"],
        chat.as_str()
    );
    let next = send(&daemon, "web", "w-2", "visitor-1", "One more thing").await;
    assert_ne!(next, chat);
    assert_eq!(
        events.next("chat.offered").await["chat"]["id"],
        next.as_str()
    );

    let metrics = daemon.metrics().await;
    for line in [
        r#"switchboard_chat_messages_total{channel="web",direction="in"} 2"#,
        r#"switchboard_chat_messages_total{channel="web",direction="out"} 1"#,
        r#"switchboard_chats{queue="support",state="completed"} 1"#,
        r#"switchboard_chats{queue="support",state="offered"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    let stderr = daemon.stderr();
    assert!(
        !stderr.contains(CALLBACK_SECRET),
        "the callback secret is never logged"
    );

    // A graceful stop does not wait for the open event stream.
    daemon.signal("TERM");
    let exit = daemon.wait_exit(Duration::from_secs(5));
    assert!(
        exit.is_some_and(|s| s.success()),
        "exit {exit:?}\n{}",
        daemon.stderr()
    );
    server.abort();
}
