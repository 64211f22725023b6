//! Chat actions (CH-07) through the real binary: the built-in `createCase` makes a case linked
//! to the chat and its contact (listed at `/api/v1/cases` with the rights of chats), and a
//! webhook action is POSTed, signed with its secret, to a receiver that checks the HMAC —
//! after one refused delivery retried from the durable queue — with the outcome on the chat
//! and in a `chat.action` event on the operators' event stream.

mod chat_support;
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chat_support::{ANN, BOB, Events, SUE, call, files, send};
use hmac::{Hmac, Mac};
use reqwest::Method;
use sha2::Sha256;
use support::{Daemon, eventually, free_port};

/// The `notify` action's webhook secret.
const ACTION_SECRET: &str = "notify-action-secret-71fa";
/// The `stale` action's secret, which the receiver does not know (it answers 401).
const STALE_SECRET: &str = "stale-action-secret-0b3e";

/// What the receiver saw: each attempt's status and the bodies it accepted.
#[derive(Default)]
struct Received {
    attempts: Vec<u16>,
    accepted: Vec<serde_json::Value>,
}

/// Checks the signature; refuses the first valid delivery with 503 to exercise the retry.
async fn receiver(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let signature = headers
        .get("x-switchboard-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(|hex_mac| hex::decode(hex_mac).ok());
    let mut mac = Hmac::<Sha256>::new_from_slice(ACTION_SECRET.as_bytes()).expect("any key");
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

fn actions(hook: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "actions.yaml",
            format!(
                "apiVersion: switchboard/v1\nkind: ChatAction\nmetadata: {{name: case}}\nspec: {{title: Create case, queue: support, builtin: createCase}}\n---\n\
                 apiVersion: switchboard/v1\nkind: ChatAction\nmetadata: {{name: notify}}\nspec: {{title: Notify CRM, queue: support, webhook: {{url: '{hook}', secret: {{file: action.txt}}}}}}\n---\n\
                 apiVersion: switchboard/v1\nkind: ChatAction\nmetadata: {{name: stale}}\nspec: {{title: Old CRM hook, queue: support, webhook: {{url: '{hook}', secret: {{file: stale.txt}}}}}}\n"
            ),
        ),
        ("action.txt", ACTION_SECRET.to_owned()),
        ("stale.txt", STALE_SECRET.to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn actions_create_cases_and_call_signed_webhooks_with_the_outcome_on_the_chat() {
    let received = Arc::new(Mutex::new(Received::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receiver))
        .with_state(Arc::clone(&received));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let port = free_port();
    let mut config = files(port, "http://127.0.0.1:9/callback", "toAll");
    config.extend(actions(&hook));
    let mut daemon = Daemon::start(port, &config, &[]);
    daemon.wait_ready().await;

    // Ann follows her events from the start (she operates in support).
    let mut events = Events::open(&daemon, ANN).await;

    // A support chat (ann's and bob's queue) and a sales chat (bob's only).
    let chat = send(&daemon, "web", "a-1", "visitor-1", "I need a refund").await;
    let sales = send(&daemon, "shop", "s-1", "buyer-1", "Prices?").await;

    // REQ: CH-07 (builtin createCase: a case linked to the chat and its contact)
    let (code, run) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/actions/case"),
        ANN,
        None,
    )
    .await;
    assert_eq!(code, 200, "{run}");
    assert_eq!(
        (run["kind"].as_str(), run["state"].as_str()),
        (Some("createCase"), Some("done"))
    );
    let case_id = run["caseId"].as_str().expect("caseId").to_owned();
    let (code, cases) = call(&daemon, Method::GET, "/api/v1/cases", ANN, None).await;
    assert_eq!(code, 200, "{cases}");
    assert_eq!(
        (cases["total"].as_u64(), &cases["nextCursor"]),
        (Some(1), &serde_json::Value::Null)
    );
    let case = &cases["items"][0];
    assert_eq!(case["id"], case_id.as_str());
    assert_eq!(case["chatId"], chat.as_str());
    assert_eq!(case["title"], "Create case");
    assert_eq!(case["createdBy"], "ann");
    assert_eq!(case["contact"]["name"], "VISITOR-1");
    let (_, got) = call(
        &daemon,
        Method::GET,
        &format!("/api/v1/chats/{chat}"),
        ANN,
        None,
    )
    .await;
    assert_eq!(case["contact"]["id"], got["contact"]["id"]);
    // REQ: CH-07 (a built-in run ends at once: its event carries no HTTP status)
    let event = events.next("chat.action").await;
    assert_eq!(event["chatId"], chat.as_str());
    assert_eq!(event["run"]["action"], "case");
    assert_eq!(event["run"]["caseId"], case_id.as_str());
    assert_eq!(event["httpStatus"], serde_json::Value::Null);

    // REQ: CH-07 (rights like chats: a case is visible with its chat)
    let (_, sue_cases) = call(&daemon, Method::GET, "/api/v1/cases", SUE, None).await;
    assert_eq!(sue_cases["total"], 1);

    // REQ: CH-07 (the caller must see the chat; the action must be bound to its queue)
    let (code, _) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{sales}/actions/case"),
        ANN,
        None,
    )
    .await;
    assert_eq!(code, 404);
    let (code, body) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{sales}/actions/case"),
        BOB,
        None,
    )
    .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (409, Some("action-not-in-queue")),
        "{body}"
    );
    let (code, _) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/actions/nope"),
        ANN,
        None,
    )
    .await;
    assert_eq!(code, 404);
    let (_, bob_cases) = call(&daemon, Method::GET, "/api/v1/cases", BOB, None).await;
    assert_eq!(bob_cases["total"], 1, "bob operates in support too");

    // REQ: CH-07 (webhook: signed {chatId, contactId, action}, retried, outcome on the chat)
    let (code, run) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/actions/notify"),
        ANN,
        None,
    )
    .await;
    assert_eq!(code, 202, "{run}");
    assert_eq!(run["state"], "pending");
    let path = format!("/api/v1/chats/{chat}");
    eventually("the webhook action to be delivered", &daemon, || async {
        let (_, got) = call(&daemon, Method::GET, &path, ANN, None).await;
        got["actions"][1]["state"] == "done"
    })
    .await;
    let (_, got) = call(&daemon, Method::GET, &path, ANN, None).await;
    let actions = got["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 2, "{got}");
    assert_eq!(actions[0]["action"], "case");
    assert_eq!(actions[1]["action"], "notify");
    assert_eq!(actions[1]["attempts"], 2);
    assert!(
        actions[1]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{got}"
    );
    {
        let received = received.lock().expect("lock");
        assert_eq!(received.attempts, vec![503, 200]);
        let body = &received.accepted[0];
        assert_eq!(body["chatId"], chat.as_str());
        assert_eq!(body["contactId"], got["contact"]["id"]);
        assert_eq!(body["action"], "notify");
        assert_eq!(body["operator"], "ann");
        assert_eq!(body["runId"], actions[1]["id"]);
    }

    // REQ: CH-07 (the outcome is an event to the operators who may see the chat: done after
    // the retry, with the receiver's status)
    let event = events.next("chat.action").await;
    assert_eq!(event["chatId"], chat.as_str());
    assert_eq!(event["run"]["id"], actions[1]["id"]);
    assert_eq!(
        (
            event["run"]["state"].as_str(),
            event["run"]["attempts"].as_u64()
        ),
        (Some("done"), Some(2)),
        "{event}"
    );
    assert_eq!(event["httpStatus"], 200);

    // REQ: CH-07 (a receiver that refuses for good: the run fails at once, and the event says
    // so with the status — never the secret)
    let (code, run) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/actions/stale"),
        ANN,
        None,
    )
    .await;
    assert_eq!(code, 202, "{run}");
    let event = events.next("chat.action").await;
    assert_eq!(event["run"]["id"], run["id"]);
    assert_eq!(
        (
            event["run"]["state"].as_str(),
            event["run"]["attempts"].as_u64()
        ),
        (Some("failed"), Some(1)),
        "{event}"
    );
    assert_eq!(event["httpStatus"], 401);
    assert!(
        event["run"]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("401")),
        "{event}"
    );
    assert!(!event.to_string().contains(STALE_SECRET), "{event}");
    assert!(!daemon.stderr().contains(STALE_SECRET));
    server.abort();
}

/// The flaky receiver's state: whether it refuses, and the bodies it accepted.
type Flaky = (Arc<AtomicBool>, Arc<Mutex<Vec<serde_json::Value>>>);

/// Refuses every delivery with 503 while `refusing`; records the bodies it accepts.
async fn flaky(State((refusing, accepted)): State<Flaky>, body: Bytes) -> StatusCode {
    if refusing.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    accepted
        .lock()
        .expect("lock")
        .push(serde_json::from_slice(&body).expect("JSON body"));
    StatusCode::OK
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_action_acknowledged_before_a_crash_is_delivered_after_the_restart() {
    // REQ: CH-07 (the run is stored before the 202, so a kill -9 does not lose it)
    let refusing = Arc::new(AtomicBool::new(true));
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(flaky))
        .with_state((Arc::clone(&refusing), Arc::clone(&accepted)));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let port = free_port();
    let mut config = files(port, "http://127.0.0.1:9/callback", "toAll");
    config.extend(actions(&hook));
    let mut daemon = Daemon::start(port, &config, &[]);
    daemon.wait_ready().await;
    let chat = send(&daemon, "web", "k-1", "visitor-9", "Call me back").await;
    let (code, run) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/actions/notify"),
        ANN,
        None,
    )
    .await;
    assert_eq!(code, 202, "{run}");
    let path = format!("/api/v1/chats/{chat}");
    eventually("a refused attempt", &daemon, || async {
        let (_, got) = call(&daemon, Method::GET, &path, ANN, None).await;
        got["actions"][0]["attempts"] == 1
    })
    .await;

    daemon.signal("KILL");
    assert!(daemon.wait_exit(Duration::from_secs(5)).is_some());
    refusing.store(false, Ordering::SeqCst);
    daemon.child = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(daemon.config_dir())
        .arg("--state")
        .arg(daemon.dir.path().join("state.db"))
        .arg("run")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("SWITCHBOARD_CONFIG")
        .env_remove("SWITCHBOARD_STATE")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&daemon.stderr).expect("stderr file"))
        .spawn()
        .expect("restart switchboard");
    daemon.wait_ready().await;
    eventually(
        "the run is delivered after the restart",
        &daemon,
        || async {
            let (_, got) = call(&daemon, Method::GET, &path, ANN, None).await;
            got["actions"][0]["state"] == "done"
        },
    )
    .await;
    let accepted = accepted.lock().expect("lock");
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0]["runId"], run["id"]);
    server.abort();
}
