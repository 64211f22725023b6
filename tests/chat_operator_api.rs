//! The chat operator API against the real daemon: status, chats and their rights, accept,
//! messages, completion, operators, quick replies and the event stream.

mod chat_support;
mod support;

use chat_support::{ANN, BOB, Events, SUE, call, files, send};
use reqwest::Method;
use support::{Daemon, free_port};

#[tokio::test(flavor = "multi_thread")]
async fn operators_see_their_chats_accept_once_reply_and_complete() {
    let port = free_port();
    let mut daemon = Daemon::start(
        port,
        &files(port, "http://127.0.0.1:9/callback", "toAll"),
        &[],
    );
    daemon.wait_ready().await;

    // Only operators set a status; the answer is the operator with their queues.
    let status = |s: &str| Some(serde_json::json!({ "status": s }));
    let (code, ann) = call(
        &daemon,
        Method::PUT,
        "/api/v1/operators/me/status",
        ANN,
        status("active"),
    )
    .await;
    assert_eq!(code, 200, "{ann}");
    assert_eq!(ann["status"], "active");
    assert_eq!(ann["displayName"], "Ann");
    assert_eq!(
        ann["queues"],
        serde_json::json!([{"queue": "support", "activeChats": 0}])
    );
    let (code, _) = call(
        &daemon,
        Method::PUT,
        "/api/v1/operators/me/status",
        BOB,
        status("active"),
    )
    .await;
    assert_eq!(code, 200);
    let (code, body) = call(
        &daemon,
        Method::PUT,
        "/api/v1/operators/me/status",
        SUE,
        status("active"),
    )
    .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (code, _) = call(
        &daemon,
        Method::PUT,
        "/api/v1/operators/me/status",
        ANN,
        status("away"),
    )
    .await;
    assert_eq!(code, 400);

    // REQ: CH-03 (offered to every active operator; the first accept wins, the second is 409)
    let mut ann_events = Events::open(&daemon, ANN).await;
    let chat = send(&daemon, "web", "m1", "visitor-1", "My order is late").await;
    let offered = ann_events.next("chat.offered").await;
    assert_eq!(offered["chat"]["id"], chat.as_str());
    assert_eq!(offered["chat"]["state"], "offered");
    let (code, list) = call(
        &daemon,
        Method::GET,
        "/api/v1/chats?state=offered",
        ANN,
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["items"][0]["messages"][0]["text"], "My order is late");
    assert_eq!(list["nextCursor"], serde_json::Value::Null);

    let (code, taken) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/accept"),
        BOB,
        None,
    )
    .await;
    assert_eq!(code, 200, "{taken}");
    assert_eq!(
        (taken["state"].as_str(), taken["operator"].as_str()),
        (Some("active"), Some("bob"))
    );
    let (code, late) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/accept"),
        ANN,
        None,
    )
    .await;
    assert_eq!(
        (code, late["error"]["code"].as_str()),
        (409, Some("chat-taken"))
    );
    let assigned = ann_events.next("chat.assigned").await;
    assert_eq!(
        assigned["chat"]["operator"], "bob",
        "ann's offer is withdrawn"
    );

    // Only the chat's operator writes; the message is stored and queued (202).
    let text = |t: &str| Some(serde_json::json!({ "text": t }));
    let (code, _) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/messages"),
        ANN,
        text("Hi"),
    )
    .await;
    assert_eq!(code, 403);
    let (code, _) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/messages"),
        BOB,
        text("  "),
    )
    .await;
    assert_eq!(code, 400);
    let (code, reply) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/messages"),
        BOB,
        text("Let me check"),
    )
    .await;
    assert_eq!(code, 202, "{reply}");
    assert_eq!(
        (reply["direction"].as_str(), reply["text"].as_str()),
        (Some("out"), Some("Let me check"))
    );

    // Rights: queue members see the queue's chats; others get 404; a supervisor sees all.
    let sales_chat = send(&daemon, "shop", "s1", "visitor-2", "Price?").await;
    let (code, _) = call(
        &daemon,
        Method::GET,
        &format!("/api/v1/chats/{sales_chat}"),
        ANN,
        None,
    )
    .await;
    assert_eq!(code, 404, "ann is not in sales");
    let (code, mine) = call(&daemon, Method::GET, "/api/v1/chats", ANN, None).await;
    assert_eq!((code, mine["total"].as_u64()), (200, Some(1)), "{mine}");
    let (_, all) = call(&daemon, Method::GET, "/api/v1/chats?limit=1", SUE, None).await;
    assert_eq!(all["total"], 2);
    assert_eq!(all["nextCursor"], "1");
    let (_, sales) = call(&daemon, Method::GET, "/api/v1/chats?queue=sales", SUE, None).await;
    assert_eq!(sales["items"][0]["id"], sales_chat.as_str());
    let (code, _) = call(&daemon, Method::GET, "/api/v1/chats?state=open", SUE, None).await;
    assert_eq!(code, 400);
    let (code, _) = call(
        &daemon,
        Method::GET,
        "/api/v1/chats/not-a-number",
        SUE,
        None,
    )
    .await;
    assert_eq!(code, 404);

    // REQ: CH-11 (the whole conversation, oldest first)
    send(&daemon, "web", "m2", "visitor-1", "Order 42").await;
    let (_, full) = call(
        &daemon,
        Method::GET,
        &format!("/api/v1/chats/{chat}"),
        ANN,
        None,
    )
    .await;
    let texts: Vec<(&str, &str)> = full["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["direction"].as_str().expect("dir"),
                m["text"].as_str().expect("text"),
            )
        })
        .collect();
    assert_eq!(
        texts,
        vec![
            ("in", "My order is late"),
            ("out", "Let me check"),
            ("in", "Order 42")
        ]
    );
    assert_eq!(full["contact"]["name"], "VISITOR-1");

    // Operators of the caller's queues, with active chats per queue.
    let (code, operators) = call(&daemon, Method::GET, "/api/v1/operators", ANN, None).await;
    assert_eq!(code, 200);
    assert_eq!(operators["total"], 2, "{operators}");
    let bob = operators["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|o| o["name"] == "bob")
        .expect("bob");
    assert_eq!(bob["status"], "active");
    assert_eq!(
        bob["queues"],
        serde_json::json!([{"queue": "sales", "activeChats": 0}, {"queue": "support", "activeChats": 1}])
    );

    // Quick replies by language and queue (a reply without queues is offered everywhere).
    let (_, en) = call(
        &daemon,
        Method::GET,
        "/api/v1/quick-replies?language=en-us&queue=support",
        ANN,
        None,
    )
    .await;
    let names: Vec<&str> = en["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, vec!["hello-en"]);
    let (_, ru) = call(
        &daemon,
        Method::GET,
        "/api/v1/quick-replies?language=ru-RU",
        ANN,
        None,
    )
    .await;
    assert_eq!(ru["items"][0]["text"], "Здравствуйте!");
    let (_, page) = call(
        &daemon,
        Method::GET,
        "/api/v1/quick-replies?limit=1",
        ANN,
        None,
    )
    .await;
    assert_eq!(
        (page["total"].as_u64(), page["nextCursor"].as_str()),
        (Some(3), Some("1"))
    );

    // Completion: only the operator (or CanManageChats); the stream says so.
    let mut bob_events = Events::open(&daemon, BOB).await;
    let (code, _) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/complete"),
        ANN,
        None,
    )
    .await;
    assert_eq!(code, 403);
    let (code, done) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/complete"),
        BOB,
        None,
    )
    .await;
    assert_eq!((code, done["state"].as_str()), (200, Some("completed")));
    assert_eq!(
        bob_events.next("chat.completed").await["chat"]["id"],
        chat.as_str()
    );
    let (code, again) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/complete"),
        BOB,
        None,
    )
    .await;
    assert_eq!(
        (code, again["error"]["code"].as_str()),
        (409, Some("chat-completed"))
    );

    // Going inactive is an operator.status event.
    let (code, _) = call(
        &daemon,
        Method::PUT,
        "/api/v1/operators/me/status",
        BOB,
        status("inactive"),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        bob_events.next("operator.status").await["status"],
        "inactive"
    );

    let anonymous = reqwest::get(format!("{}/api/v1/chats", daemon.base))
        .await
        .expect("GET");
    assert_eq!(anonymous.status(), 401);
    let metrics = daemon.metrics().await;
    assert!(
        metrics.contains(r#"switchboard_operators{queue="support",status="active"} 1"#),
        "{metrics}"
    );
}
