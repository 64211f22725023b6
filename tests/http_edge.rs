//! The HTTP edge against hostile clients, driven over loopback against the real daemon (issue
//! 13): slow and idle connections, the connection cap, oversized heads and bodies, shutdown with
//! unfinished requests, log injection, chat existence probes, and every error answered as JSON.

mod chat_support;
mod support;

use std::time::Duration;

use chat_support::{ANN, BOB, INBOUND, SUE, call, files, send};
use reqwest::Method;
use support::{Daemon, connect, eventually, free_port, raw, rss_kib, wait_closed, with_settings};
use tokio::io::AsyncWriteExt;

/// Short limits, so that each timeout is reached quickly (the waits are on the condition).
const TIGHT: &str = "  http: {headerReadTimeout: 1s, bodyReadTimeout: 1s, idleTimeout: 1s, maxConnections: 16, maxHeaderBytes: 8192}";

async fn start(extra: &str) -> Daemon {
    let port = free_port();
    let mut daemon = Daemon::start(
        port,
        &with_settings(&files(port, "http://127.0.0.1:9/callback", "toAll"), extra),
        &[],
    );
    daemon.wait_ready().await;
    daemon
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

// REQ: SPEC HTTP (Settings.http.headerReadTimeout, idleTimeout, bodyReadTimeout)
#[tokio::test(flavor = "multi_thread")]
async fn slow_heads_idle_connections_and_short_bodies_are_cut() {
    let daemon = start(TIGHT).await;

    // A head sent a few bytes at a time and never finished is cut after headerReadTimeout.
    let mut slow = connect(&daemon).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let said = wait_closed(&mut slow, Duration::from_secs(30)).await;
    assert!(said.is_empty(), "{}", String::from_utf8_lossy(&said));

    // A connection that never sends anything is cut too.
    let mut silent = connect(&daemon).await;
    wait_closed(&mut silent, Duration::from_secs(30)).await;

    // A kept-alive connection is closed once idle for idleTimeout.
    let mut kept = connect(&daemon).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let answer = wait_closed(&mut kept, Duration::from_secs(30)).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // A body shorter than its Content-Length is answered 408 after bodyReadTimeout.
    let mut short = connect(&daemon).await;
    short
        .write_all(
            format!(
                "POST /webhooks/api/web HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {INBOUND}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"messageId\""
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    let answer = String::from_utf8_lossy(&wait_closed(&mut short, Duration::from_secs(30)).await)
        .into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let body = json(answer.split_once("\r\n\r\n").expect("head").1);
    assert_eq!(body["error"]["code"], "request-timeout");
}

// REQ: SPEC HTTP (Settings.http.maxConnections)
#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_beyond_the_cap_are_refused_and_cost_no_memory() {
    let daemon = start(
        "  http: {headerReadTimeout: 2s, idleTimeout: 2s, maxConnections: 16, maxHeaderBytes: 8192}",
    )
    .await;
    let before = rss_kib(daemon.child.id());
    // Far more idle sockets than the cap: the daemon serves 16 and closes the others at once.
    let mut idle = Vec::new();
    for _ in 0..600 {
        idle.push(connect(&daemon).await);
    }
    let mut refused = 0;
    for stream in idle.iter_mut().skip(16) {
        wait_closed(stream, Duration::from_secs(30)).await;
        refused += 1;
    }
    assert_eq!(refused, 600 - 16);
    // The listener still answers: the idle ones it holds are cut by the header timeout.
    let client = switchboard::net::http_client();
    let health = format!("{}/healthz", daemon.base);
    eventually("/healthz answers beside 600 idle sockets", &daemon, || {
        let request = client.get(&health).timeout(Duration::from_secs(1)).send();
        async move { request.await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    let after = rss_kib(daemon.child.id());
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    drop(idle);
}

/// The value of the unlabelled sample `name` in `/metrics`.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (n, value) = line.split_once(' ')?;
        (n == name).then(|| value.parse().ok())?
    })
}

/// `GET /metrics` on a kept-alive `stream`; the body.
async fn scrape_on(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write the scrape");
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf).await.expect("read the scrape");
        assert!(
            n > 0,
            "closed mid-answer: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("a content-length");
            if body.len() >= length {
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                return body.to_owned();
            }
        }
    }
}

// REQ: SPEC metrics (the listener's connections: open now, refused at maxConnections)
#[tokio::test(flavor = "multi_thread")]
async fn open_and_refused_connections_are_counted() {
    // Idle connections are held for the whole test (headerReadTimeout), and so is the
    // scraper's kept-alive one (idleTimeout): nothing frees a place behind the test's back.
    let daemon = start(
        "  http: {headerReadTimeout: 60s, idleTimeout: 60s, maxConnections: 6, maxHeaderBytes: 8192}",
    )
    .await;
    // One kept-alive connection of our own for every scrape (an HTTP client's pool may open a
    // second one when it likes, which the cap would refuse).
    let scraper = tokio::sync::Mutex::new(connect(&daemon).await);
    let scrape = || async {
        let mut stream = scraper.lock().await;
        scrape_on(&mut stream).await
    };
    let open_is = |want: f64| {
        let scrape = &scrape;
        move || async move { sample(&scrape().await, "switchboard_http_connections") == Some(want) }
    };
    // The scraper's connection is the only one (the start-up probes' are closed).
    eventually("one open connection", &daemon, open_is(1.0)).await;

    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect(&daemon).await);
    }
    eventually(
        "five idle connections and the scraper's",
        &daemon,
        open_is(6.0),
    )
    .await;

    // At the cap of 6, three more are closed at once, without a byte.
    let mut beyond = Vec::new();
    for _ in 0..3 {
        beyond.push(connect(&daemon).await);
    }
    for stream in &mut beyond {
        let said = wait_closed(stream, Duration::from_secs(30)).await;
        assert!(said.is_empty(), "{}", String::from_utf8_lossy(&said));
    }
    drop(held);
    eventually("the held connections are gone", &daemon, open_is(1.0)).await;
    let refused = sample(
        &scrape().await,
        "switchboard_http_connections_refused_total",
    );
    assert_eq!(refused, Some(3.0));
}

// REQ: SPEC HTTP (Settings.http.maxHeaderBytes; every error answered as JSON)
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_head_is_431_and_bare_errors_carry_the_error_json() {
    let daemon = start(TIGHT).await;

    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(20_000)
    );
    let (status, head, body) = raw(&daemon, huge.as_bytes()).await;
    assert_eq!(status, 431, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    assert_eq!(json(&body)["error"]["code"], "header-too-large");

    // Many small headers over the cap are the same.
    let many: String = (0..600).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (status, _, body) = raw(
        &daemon,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status, 431);
    assert_eq!(json(&body)["error"]["code"], "header-too-large");

    // A request hyper cannot parse.
    let (status, _, body) = raw(&daemon, b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n").await;
    assert_eq!(status, 400);
    assert_eq!(json(&body)["error"]["code"], "bad-request");

    // A URI beyond hyper's 65534 bytes, under a header cap that admits it, is 414.
    let roomy = start("  http: {maxHeaderBytes: 131072}").await;
    let (status, _, body) = raw(
        &roomy,
        format!(
            "GET /healthz?{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "q".repeat(70_000)
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status, 414);
    assert_eq!(json(&body)["error"]["code"], "uri-too-long");

    // 405 keeps its Allow header and gets a body.
    let (status, head, body) = raw(
        &daemon,
        b"DELETE /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 405, "{head}");
    assert!(head.to_ascii_lowercase().contains("allow: get"), "{head}");
    assert_eq!(json(&body)["error"]["code"], "method-not-allowed");
}

// REQ: SPEC run (graceful stop on SIGTERM: unfinished requests are dropped)
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_half_sent_requests_exits_promptly() {
    // Long timeouts: only the shutdown may end these connections.
    let mut daemon =
        start("  http: {headerReadTimeout: 5m, bodyReadTimeout: 5m, idleTimeout: 5m}").await;
    let mut half_head = connect(&daemon).await;
    half_head
        .write_all(b"POST /webhooks/api/web HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut half_body = connect(&daemon).await;
    half_body
        .write_all(
            format!(
                "POST /webhooks/api/web HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {INBOUND}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    let mut idle = connect(&daemon).await;
    // The body's handler is running before the signal.
    let client = switchboard::net::http_client();
    assert_eq!(
        client
            .get(format!("{}/healthz", daemon.base))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );

    let signalled = std::time::Instant::now();
    daemon.signal("TERM");
    let status = daemon
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("still running 20 s after SIGTERM:\n{}", daemon.stderr()));
    assert!(status.success(), "{status}\n{}", daemon.stderr());
    // The process-wide grace is 8 s; nothing may have waited for it.
    assert!(
        signalled.elapsed() < Duration::from_secs(6),
        "the stop took {:?}:\n{}",
        signalled.elapsed(),
        daemon.stderr()
    );
    assert!(
        !daemon.stderr().contains("did not stop within"),
        "{}",
        daemon.stderr()
    );
    for stream in [&mut half_head, &mut half_body, &mut idle] {
        wait_closed(stream, Duration::from_secs(10)).await;
    }
}

// REQ: SPEC HTTP (operator API errors are JSON with the fitting status)
#[tokio::test(flavor = "multi_thread")]
async fn operator_api_errors_are_json_capped_and_fitting() {
    let daemon = start("").await;
    let chat = send(&daemon, "web", "m1", "visitor-1", "Hello").await;

    // ?limit= that is negative, not a number or given twice.
    for query in [
        "limit=-1",
        "limit=abc",
        "limit=1&limit=2",
        "limit=0",
        "cursor=x",
    ] {
        let (code, body) = call(
            &daemon,
            Method::GET,
            &format!("/api/v1/chats?{query}"),
            SUE,
            None,
        )
        .await;
        assert_eq!(code, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "bad-request", "{query}: {body}");
    }

    // The bearer scheme is case-insensitive; two Authorization headers are refused.
    let client = switchboard::net::http_client();
    let chats = format!("{}/api/v1/chats", daemon.base);
    let lower = client
        .get(&chats)
        .header("authorization", format!("bearer {SUE}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(lower.status(), 200);
    let twice = client
        .get(&chats)
        .header("authorization", format!("Bearer {SUE}"))
        .header("authorization", format!("Bearer {ANN}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(twice.status(), 400);
    let body: serde_json::Value = twice.json().await.expect("json");
    assert_eq!(body["error"]["code"], "bad-request");
    let webhook_twice = client
        .post(format!("{}/webhooks/api/web", daemon.base))
        .header("authorization", format!("Bearer {INBOUND}"))
        .header("authorization", "Bearer other")
        .json(&chat_support::message("m2", "visitor-2", "hi"))
        .send()
        .await
        .expect("POST");
    assert_eq!(webhook_twice.status(), 400);
    let lower_webhook = client
        .post(format!("{}/webhooks/api/web", daemon.base))
        .header("authorization", format!("bearer {INBOUND}"))
        .json(&chat_support::message("m3", "visitor-3", "hi"))
        .send()
        .await
        .expect("POST");
    assert_eq!(lower_webhook.status(), 200);

    // A 3 MB operator message is 413, not 400.
    let (code, body) = call(
        &daemon,
        Method::PUT,
        "/api/v1/operators/me/status",
        ANN,
        Some(serde_json::json!({"status": "active"})),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/accept"),
        ANN,
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{chat}/messages"),
        ANN,
        Some(serde_json::json!({"text": "x".repeat(3 * 1024 * 1024)})),
    )
    .await;
    assert_eq!(code, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload-too-large");

    // Error messages quoting input are capped and name none of our types.
    let (code, body) = call(
        &daemon,
        Method::PUT,
        "/api/v1/operators/me/status",
        ANN,
        Some(serde_json::json!({"status": "s".repeat(1024 * 1024)})),
    )
    .await;
    assert_eq!(code, 400);
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.len() <= 512, "{} bytes", message.len());
    let long_channel = "c".repeat(6000);
    let response = client
        .post(format!("{}/webhooks/api/{long_channel}", daemon.base))
        .bearer_auth(INBOUND)
        .json(&chat_support::message("m4", "v", "hi"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(body["error"]["message"].as_str().expect("message").len() <= 512);
    let response = client
        .post(format!("{}/webhooks/api/web", daemon.base))
        .bearer_auth(INBOUND)
        .json(&serde_json::json!("just a string"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 400);
    let text = response.text().await.expect("body");
    assert!(!text.contains("struct "), "{text}");
    assert!(!text.contains("InboundBody"), "{text}");
}

// REQ: CH-01 (a chat the caller may not see is answered 404, whatever is asked of it)
#[tokio::test(flavor = "multi_thread")]
async fn a_chat_the_caller_cannot_see_answers_404_to_every_probe() {
    let daemon = start("").await;
    for token in [ANN, BOB] {
        let (code, _) = call(
            &daemon,
            Method::PUT,
            "/api/v1/operators/me/status",
            token,
            Some(serde_json::json!({"status": "active"})),
        )
        .await;
        assert_eq!(code, 200);
    }
    // `shop` feeds the sales queue, where only bob operates: ann cannot see its chats.
    // bob works at most two chats at once: one completed, one active, one offered.
    let done = send(&daemon, "shop", "s1", "buyer-1", "Thanks").await;
    let (code, body) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{done}/accept"),
        BOB,
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{done}/complete"),
        BOB,
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let taken = send(&daemon, "shop", "s2", "buyer-2", "Still there?").await;
    let (code, body) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{taken}/accept"),
        BOB,
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let offered = send(&daemon, "shop", "s3", "buyer-3", "Price?").await;

    for chat in [&offered, &taken, &done, &"424242".to_owned()] {
        for (method, path, body) in [
            (Method::GET, format!("/api/v1/chats/{chat}"), None),
            (Method::POST, format!("/api/v1/chats/{chat}/accept"), None),
            (Method::POST, format!("/api/v1/chats/{chat}/complete"), None),
            (
                Method::POST,
                format!("/api/v1/chats/{chat}/messages"),
                Some(serde_json::json!({"text": "hi"})),
            ),
            (
                Method::POST,
                format!("/api/v1/chats/{chat}/actions/create-case"),
                None,
            ),
        ] {
            let (code, answer) = call(&daemon, method.clone(), &path, ANN, body).await;
            assert_eq!(
                (code, answer["error"]["code"].as_str()),
                (404, Some("not-found")),
                "{method} {path}: {answer}"
            );
            assert_eq!(
                answer["error"]["message"],
                format!("no chat {chat}"),
                "{method} {path}: the same words for every chat"
            );
        }
    }
    // The supervisor still learns the real state.
    let (code, body) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{taken}/accept"),
        SUE,
        None,
    )
    .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (409, Some("chat-taken"))
    );
}

// REQ: SPEC chat shape (offeredTo; GET /api/v1/chats/{id} pages its messages)
#[tokio::test(flavor = "multi_thread")]
async fn chats_say_who_they_are_offered_to_and_page_their_messages() {
    let daemon = start("").await;
    let (code, _) = call(
        &daemon,
        Method::PUT,
        "/api/v1/operators/me/status",
        BOB,
        Some(serde_json::json!({"status": "active"})),
    )
    .await;
    assert_eq!(code, 200);
    let offered = send(&daemon, "shop", "p1", "buyer-1", "one").await;
    for (i, text) in ["two", "three", "four", "five"].iter().enumerate() {
        let again = send(&daemon, "shop", &format!("p{}", i + 2), "buyer-1", text).await;
        assert_eq!(again, offered, "the same open chat");
    }
    let (code, list) = call(&daemon, Method::GET, "/api/v1/chats", SUE, None).await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(
        list["items"][0]["offeredTo"],
        serde_json::json!(["bob"]),
        "{list}"
    );

    let (code, page) = call(
        &daemon,
        Method::GET,
        &format!("/api/v1/chats/{offered}?limit=2"),
        BOB,
        None,
    )
    .await;
    assert_eq!(code, 200, "{page}");
    assert_eq!(page["offeredTo"], serde_json::json!(["bob"]));
    assert_eq!(page["messagesTotal"], 5);
    let texts = |p: &serde_json::Value| -> Vec<String> {
        p["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["text"].as_str().expect("text").to_owned())
            .collect()
    };
    assert_eq!(texts(&page), ["one", "two"]);
    let cursor = page["messagesNextCursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, last) = call(
        &daemon,
        Method::GET,
        &format!("/api/v1/chats/{offered}?limit=3&cursor={cursor}"),
        BOB,
        None,
    )
    .await;
    assert_eq!(texts(&last), ["three", "four", "five"]);
    assert_eq!(last["messagesNextCursor"], serde_json::Value::Null);

    // The list embeds only the newest 20 of a long chat's messages, and says how many there are.
    for n in 6..=26 {
        send(
            &daemon,
            "shop",
            &format!("p{n}"),
            "buyer-1",
            &format!("m{n}"),
        )
        .await;
    }
    let (code, list) = call(&daemon, Method::GET, "/api/v1/chats", BOB, None).await;
    assert_eq!(code, 200, "{list}");
    let listed = &list["items"][0];
    assert_eq!(listed["messagesTotal"], 26, "{listed}");
    let newest = texts(listed);
    assert_eq!(newest.len(), 20);
    assert_eq!((newest[0].as_str(), newest[19].as_str()), ("m7", "m26"));

    let (code, accepted) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{offered}/accept"),
        BOB,
        None,
    )
    .await;
    assert_eq!(code, 200, "{accepted}");
    assert_eq!(
        accepted["offeredTo"],
        serde_json::json!([]),
        "only an offered chat is offered"
    );
}

// REQ: SPEC manifests (secrets never in logs or errors: a value from outside cannot forge a log line)
#[tokio::test(flavor = "multi_thread")]
async fn values_from_outside_are_logged_escaped_and_cut() {
    let daemon = start("").await;
    let forged = format!(
        "/oauth/microsoft/callback?error=x&error_description=%0a2026-12-07T00:00:00.000000Z%20ERROR%20forged%1b%5b31m{}",
        "y".repeat(5000)
    );
    let response = daemon.get(&forged, None).await;
    assert_eq!(response.status(), 400);
    let page = response.text().await.expect("page");
    assert!(page.len() < 1000, "{} bytes", page.len());
    eventually("the refusal is logged", &daemon, || async {
        daemon.stderr().contains("consent was refused")
    })
    .await;
    let log = daemon.stderr();
    assert!(!log.contains('\u{1b}'), "a raw escape reached the log");
    assert!(
        !log.lines()
            .any(|l| l.contains("ERROR forged") && !l.contains("consent was refused")),
        "a forged line:\n{log}"
    );
    assert!(!log.contains(&"y".repeat(1000)), "the value was not cut");
}

// REQ: SPEC manifests (secrets: an unreadable secret file is logged once, its path shown to administrators only)
#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_secret_file_is_logged_once_and_its_path_kept_from_operators() {
    const MISSING: &str = "/nonexistent/sb-credentials-3f1c/inbound.txt";
    let port = free_port();
    let mut config = files(port, "http://127.0.0.1:9/callback", "toAll");
    for (name, text) in &mut config {
        if *name == "chat.yaml" {
            *text = text.replacen(
                "queue: sales, language: en-US, inboundToken: {file: inbound.txt}",
                &format!("queue: sales, language: en-US, inboundToken: {{file: {MISSING}}}"),
                1,
            );
            assert!(text.contains(MISSING));
        }
    }
    let mut daemon = Daemon::start(port, &config, &[]);
    daemon.wait_ready().await;
    let client = switchboard::net::http_client();
    for _ in 0..3 {
        let response = client
            .post(format!("{}/webhooks/api/shop", daemon.base))
            .json(&chat_support::message("x", "y", "z"))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), 503);
        let text = response.text().await.expect("body");
        assert!(!text.contains(MISSING), "{text}");
    }
    let log = daemon.stderr();
    assert_eq!(
        log.matches("a channel secret cannot be read").count(),
        1,
        "{log}"
    );
    eventually(
        "the channel's error is in the status view",
        &daemon,
        || async {
            let objects = chat_support::objects(&daemon, SUE).await;
            support::find(&objects, "ChatChannel", "shop").is_some_and(|o| o["state"] == "error")
        },
    )
    .await;
    let objects = chat_support::objects(&daemon, SUE).await.to_string();
    assert!(!objects.contains(MISSING), "{objects}");
    assert!(objects.contains("{file: …}"), "{objects}");
}
