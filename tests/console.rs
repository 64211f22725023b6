//! The operator console (`GET /console/`) against the real daemon: its assets and headers over
//! plain HTTP, and the page itself driven by a real headless Chromium through WebDriver.

mod chat_support;
mod support;

use std::path::PathBuf;

use std::time::Duration;

use chat_support::{ANN, BOB, SUE, call, files, send};
use reqwest::Method;
use support::faults::{Fault, FaultProxy};
use support::webdriver::{Driver, Session};
use support::{Daemon, free_port};

/// The policy every console answer carries.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; media-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'self'";

/// A visitor's message that would run script if it were put into the page as markup.
const HOSTILE: &str = "<img src=x onerror=\"document.body.dataset.pwned='yes'\">Where is my order?";

/// The chat test config plus a `createCase` action on `support` and a notification sound.
fn config(port: u16, sound: &std::path::Path) -> Vec<(&'static str, String)> {
    let mut config = files(port, "http://127.0.0.1:9/callback", "toAll");
    let settings = config
        .iter_mut()
        .find(|(name, _)| *name == "settings.yaml")
        .expect("settings");
    let plain = settings.1.clone();
    settings.1 = plain.replace(
        "acceptTimeout: 5m}",
        &format!(
            "acceptTimeout: 5m, notificationSound: '{}'}}",
            sound.display()
        ),
    );
    assert_ne!(settings.1, plain);
    config.push((
        "actions.yaml",
        "apiVersion: switchboard/v1\nkind: ChatAction\nmetadata: {name: case}\nspec: {title: Create case, queue: support, builtin: createCase}\n".to_owned(),
    ));
    config
}

/// A short, valid WAV file: 8 kHz mono 16-bit PCM, a tenth of a second of a quiet tone.
fn wav() -> Vec<u8> {
    let samples: Vec<i16> = (0..800)
        .map(|i| ((i as f64 * 0.3).sin() * 2000.0) as i16)
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&16000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// A daemon with [`config`] on a free port, its state file and the sound in the answered
/// directory (so a second daemon can take over the same state).
async fn start() -> (Daemon, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sound = dir.path().join("new-chat.wav");
    std::fs::write(&sound, wav()).expect("write the sound");
    let port = free_port();
    let mut daemon = Daemon::start_with_state_at(
        port,
        &config(port, &sound),
        &[],
        &dir.path().join("state.db"),
    );
    daemon.wait_ready().await;
    (daemon, dir)
}

// REQ: BX-06
#[tokio::test(flavor = "multi_thread")]
async fn console_assets_are_served_with_a_strict_policy_and_the_api_still_wants_a_token() {
    let (daemon, _dir) = start().await;
    let http = switchboard::net::http_client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    let moved = http
        .get(format!("{}/console", daemon.base))
        .send()
        .await
        .expect("GET /console");
    assert!(moved.status().is_redirection(), "{}", moved.status());
    assert_eq!(moved.headers()["location"], "/console/");

    for (path, content_type) in [
        ("/console/", "text/html; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/console.js", "text/javascript; charset=utf-8"),
        ("/console/api.js", "text/javascript; charset=utf-8"),
        ("/console/sse.js", "text/javascript; charset=utf-8"),
    ] {
        // No Authorization header: the page and its assets are public.
        let response = http
            .get(format!("{}{path}", daemon.base))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), 200, "{path}");
        let h = response.headers();
        assert_eq!(h["content-type"], content_type, "{path}");
        assert_eq!(h["content-security-policy"], CSP, "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["cache-control"], "no-cache", "{path}");
        let body = response.text().await.expect("body");
        assert!(!body.is_empty(), "{path}");
        // Nothing is fetched from elsewhere, and nothing inline would need the policy relaxed.
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{path} names an outside URL"
        );
        assert!(
            !body.contains("innerHTML") && !body.contains("outerHTML"),
            "{path} writes markup"
        );
        if path == "/console/" {
            assert!(
                !body.contains("<script>") && !body.contains("style="),
                "inline script or style"
            );
            assert!(body.contains("<script type=\"module\" src=\"console.js\">"));
        }
    }

    let missing = http
        .get(format!("{}/console/secrets.yaml", daemon.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status(), 404);
    let traversal = http
        .get(format!("{}/console/..%2Fsettings.yaml", daemon.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(traversal.status(), 404);

    // The API the page calls still wants the bearer token.
    for path in [
        "/api/v1/me",
        "/api/v1/chats",
        "/api/v1/events",
        "/api/v1/notification-sound",
    ] {
        let response = http
            .get(format!("{}{path}", daemon.base))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), 401, "{path}");
    }

    // What the console reads about its caller.
    let (code, me) = call(&daemon, Method::GET, "/api/v1/me", ANN, None).await;
    assert_eq!(code, 200, "{me}");
    assert_eq!(
        me,
        serde_json::json!({"name": "ann", "displayName": "Ann", "email": "ann@example.com",
            "rights": [], "status": "inactive", "queues": ["support"]})
    );
    let (_, sue) = call(&daemon, Method::GET, "/api/v1/me", SUE, None).await;
    assert_eq!(sue["rights"], serde_json::json!(["CanManageChats"]));
    assert_eq!(sue["queues"], serde_json::json!([]));
    let (code, actions) = call(
        &daemon,
        Method::GET,
        "/api/v1/chat-actions?queue=support",
        ANN,
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        actions["items"],
        serde_json::json!([{"name": "case", "title": "Create case", "queue": "support"}])
    );
    let (_, none) = call(
        &daemon,
        Method::GET,
        "/api/v1/chat-actions?queue=sales",
        ANN,
        None,
    )
    .await;
    assert_eq!(none["total"], 0);
}

/// Signs `session` in at `base` with `token` and waits for the console to show `name`.
async fn sign_in(session: &Session, base: &str, token: &str, name: &str) {
    session.goto(&format!("{base}/console/")).await;
    session
        .wait("the sign-in form", "document.getElementById('token')")
        .await;
    session.send_keys("#token", token).await;
    session.click("#sign-in button[type=submit]").await;
    session
        .wait(
            "signed in and the stream live",
            &format!(
                "!document.getElementById('console-view').hidden && \
                 document.getElementById('who').textContent === {name:?} && \
                 document.getElementById('connection').dataset.state === 'live'"
            ),
        )
        .await;
    let stored = session
        .execute(
            "return sessionStorage.getItem('switchboard.token');",
            vec![],
        )
        .await;
    assert_eq!(stored, token, "the token is kept in session storage");
    let local = session.execute("return localStorage.length;", vec![]).await;
    assert_eq!(local, 0, "nothing in local storage");
}

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots")
}

// REQ: BX-06
// REQ: CH-08
#[tokio::test(flavor = "multi_thread")]
async fn an_operator_takes_a_chat_in_the_browser_while_a_supervisor_watches_the_queue() {
    let (mut daemon, dir) = start().await;
    let base = daemon.base.clone();
    let port: u16 = base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let driver = Driver::start().await;
    let ann = driver.session().await;
    let sue = driver.session().await;

    sign_in(&ann, &base, ANN, "Ann").await;
    sign_in(&sue, &base, SUE, "Sue").await;
    sue.wait(
        "the supervisor panel",
        "!document.getElementById('supervisor').hidden",
    )
    .await;
    let hidden = ann
        .execute(
            "return document.getElementById('supervisor').hidden;",
            vec![],
        )
        .await;
    assert_eq!(hidden, true, "an operator has no supervisor panel");
    // Landmarks and live regions for screen readers.
    let landmarks = ann
        .execute(
            "return [document.querySelectorAll('header, main, nav[aria-label], aside[aria-labelledby]').length, \
              document.getElementById('messages').getAttribute('aria-live'), \
              document.getElementById('announcer').getAttribute('aria-live'), \
              document.querySelector('label[for=token]') !== null];",
            vec![],
        )
        .await;
    assert_eq!(
        landmarks,
        serde_json::json!([4, "polite", "assertive", true])
    );

    // Status: inactive at first; the operator sets it active, the supervisor sees it.
    assert_eq!(
        ann.execute("return document.getElementById('status').value;", vec![])
            .await,
        "inactive"
    );
    ann.click("#status option[value=active]").await;
    sue.wait(
        "the supervisor sees ann active",
        "document.querySelector('#operators li[data-operator=ann][data-status=active]')",
    )
    .await;
    let (_, me) = call(&daemon, Method::GET, "/api/v1/me", ANN, None).await;
    assert_eq!(me["status"], "active");

    // A chat arrives on the api channel: offered to ann, cued once (sound and highlight).
    let chat = send(&daemon, "web", "m1", "visitor-1", HOSTILE).await;
    let row = format!("#offered li[data-chat='{chat}']");
    ann.wait(
        "the chat is offered, highlighted and cued",
        &format!(
            "document.querySelector(\"{row}.new\") && document.body.dataset.offerCues === '1' \
             && document.title.startsWith('(1)')"
        ),
    )
    .await;
    ann.wait(
        "the notification sound played once",
        "document.body.dataset.soundPlays === '1'",
    )
    .await;
    let waiting = ann.text(&format!("{row} [data-since]")).await;
    assert!(waiting.starts_with("waiting 0:"), "{waiting}");
    sue.wait(
        "the supervisor sees the chat waiting in support",
        &format!(
            "document.querySelector(\"#queues table[data-queue=support] tr[data-chat='{chat}']\")"
        ),
    )
    .await;
    let caption = sue.text("#queues table[data-queue=support] caption").await;
    assert!(caption.starts_with("support: 1 waiting"), "{caption}");

    // Open it: the visitor's markup is shown as text, never run.
    ann.click(&format!("{row} button")).await;
    ann.wait(
        "the chat opens with its message and the focus moves to it",
        "document.querySelectorAll('#messages li').length === 1 && !document.getElementById('accept').hidden \
         && document.activeElement.id === 'chat-heading'",
    )
    .await;
    assert_eq!(ann.text("#messages li.in .text").await, HOSTILE);
    let injected = ann
        .execute(
            "return [document.querySelectorAll('#messages img').length, document.body.dataset.pwned || null];",
            vec![],
        )
        .await;
    assert_eq!(injected, serde_json::json!([0, null]));

    // Accept: it moves to "My chats"; the supervisor's queue empties and ann carries one chat.
    ann.click("#accept").await;
    ann.wait(
        "the chat is ann's",
        &format!(
            "document.querySelector(\"#mine li[data-chat='{chat}']\") && \
             !document.querySelector(\"#offered li[data-chat='{chat}']\") && \
             !document.getElementById('reply').hidden"
        ),
    )
    .await;
    sue.wait(
        "the supervisor sees the queue empty and ann busy",
        &format!(
            "!document.querySelector(\"#queues tr[data-chat='{chat}']\") && \
             document.querySelector('#operators li[data-operator=ann]').textContent.includes('1 active chat')"
        ),
    )
    .await;

    // Answer with the quick reply of the chat's language (en-US) and queue (support).
    let replies = ann
        .execute(
            "return [...document.querySelectorAll('#quick-replies button')].map(b => b.dataset.reply);",
            vec![],
        )
        .await;
    assert_eq!(
        replies,
        serde_json::json!(["hello-en"]),
        "not sales', not Russian"
    );
    ann.click("#quick-replies button[data-reply=hello-en]")
        .await;
    ann.click("#send").await;
    ann.wait(
        "the answer shows",
        "[...document.querySelectorAll('#messages li.out .text')].some(t => t.textContent === 'Hello! How can I help?')",
    )
    .await;
    // The visitor writes again while the chat is open: shown once.
    send(&daemon, "web", "m2", "visitor-1", "Order 1234").await;
    ann.wait(
        "the second visitor message shows once",
        "[...document.querySelectorAll('#messages li.in .text')].filter(t => t.textContent === 'Order 1234').length === 1 \
         && document.querySelectorAll('#messages li').length === 3",
    )
    .await;

    // Run the chat action: a case is created.
    ann.click("#action option[value=case]").await;
    ann.click("#run-action").await;
    ann.wait(
        "the action ran",
        "document.querySelector('#runs li[data-state=done]') && \
         document.getElementById('chat-status').textContent.startsWith('case: done (case ')",
    )
    .await;
    let (_, cases) = call(&daemon, Method::GET, "/api/v1/cases", ANN, None).await;
    assert_eq!(cases["total"], 1, "{cases}");

    std::fs::create_dir_all(screenshots()).expect("screenshot dir");
    ann.screenshot(&screenshots().join("operator.png")).await;
    sue.screenshot(&screenshots().join("supervisor.png")).await;

    // Readable at 360 px: nothing wider than the window.
    ann.resize(360, 800).await;
    ann.wait(
        "no horizontal scrolling at 360 px",
        "window.innerWidth <= 360 && document.documentElement.scrollWidth <= window.innerWidth",
    )
    .await;
    ann.screenshot(&screenshots().join("operator-360.png"))
        .await;
    ann.resize(1280, 900).await;

    // Complete: the chat leaves "My chats".
    ann.click("#complete").await;
    ann.wait(
        "the chat is completed",
        &format!(
            "!document.querySelector(\"#mine li[data-chat='{chat}']\") && \
             document.getElementById('chat-body').dataset.state === 'completed'"
        ),
    )
    .await;
    let (_, done) = call(
        &daemon,
        Method::GET,
        &format!("/api/v1/chats/{chat}"),
        ANN,
        None,
    )
    .await;
    assert_eq!(done["state"], "completed");
    let cues = ann
        .execute(
            "return [document.body.dataset.offerCues, document.body.dataset.soundPlays];",
            vec![],
        )
        .await;
    assert_eq!(
        cues,
        serde_json::json!(["1", "1"]),
        "one cue and one sound for one offer"
    );

    // Sign-out forgets the token.
    ann.click("#sign-out").await;
    ann.wait(
        "signed out",
        "!document.getElementById('sign-in-view').hidden",
    )
    .await;
    let stored = ann
        .execute(
            "return sessionStorage.getItem('switchboard.token');",
            vec![],
        )
        .await;
    assert_eq!(stored, serde_json::Value::Null);

    ann.quit().await;
    sue.quit().await;

    // A dropped stream: bob's console goes through a proxy that can refuse the event stream.
    let proxy = FaultProxy::start(port).await;
    let bob = driver.session().await;
    sign_in(
        &bob,
        &format!("http://127.0.0.1:{}", proxy.port()),
        BOB,
        "Bob",
    )
    .await;
    let status = |s: &str| Some(serde_json::json!({ "status": s }));
    call(
        &daemon,
        Method::PUT,
        "/api/v1/operators/me/status",
        ANN,
        status("inactive"),
    )
    .await;
    let (code, _) = call(
        &daemon,
        Method::PUT,
        "/api/v1/operators/me/status",
        BOB,
        status("active"),
    )
    .await;
    assert_eq!(code, 200);
    bob.wait(
        "bob's status shows active",
        "document.getElementById('status').value === 'active'",
    )
    .await;
    let second = send(&daemon, "web", "m3", "visitor-2", "First question").await;
    bob.wait(
        "offered to bob",
        &format!("document.querySelector(\"#offered li[data-chat='{second}']\")"),
    )
    .await;
    bob.click(&format!("#offered li[data-chat='{second}'] button"))
        .await;
    bob.wait(
        "the chat is open",
        "!document.getElementById('accept').hidden",
    )
    .await;
    bob.click("#accept").await;
    bob.wait("bob can answer", "!document.getElementById('reply').hidden")
        .await;

    // The daemon restarts; while it is away and after, the stream cannot reconnect.
    proxy.arm_every(b"GET /api/v1/events", Fault::Reset);
    daemon.signal("TERM");
    assert!(
        daemon.wait_exit(Duration::from_secs(20)).is_some(),
        "{}",
        daemon.stderr()
    );
    bob.wait(
        "the console says it reconnects",
        "document.getElementById('connection').dataset.state === 'retrying'",
    )
    .await;
    // The second daemon has a one-second accept timeout (for the status change below).
    let sound = dir.path().join("new-chat.wav");
    let mut files = config(port, &sound);
    for (name, text) in files.iter_mut() {
        if *name == "settings.yaml" {
            *text = text.replace("acceptTimeout: 5m,", "acceptTimeout: 1s,");
        }
    }
    daemon = Daemon::start_with_state_at(port, &files, &[], &dir.path().join("state.db"));
    daemon.wait_ready().await;
    send(&daemon, "web", "m4", "visitor-2", "Second question").await;
    let (code, _) = call(
        &daemon,
        Method::POST,
        &format!("/api/v1/chats/{second}/messages"),
        BOB,
        Some(serde_json::json!({ "text": "Answer from another tab" })),
    )
    .await;
    assert_eq!(code, 202);
    let shown = bob
        .execute(
            "return document.querySelectorAll('#messages li').length;",
            vec![],
        )
        .await;
    assert_eq!(
        shown, 1,
        "nothing new can have arrived while the stream is refused"
    );

    // The proxy heals: the console reconnects, re-reads, and shows each message once.
    proxy.disarm();
    bob.wait_within(
        "reconnected and reconciled, each message once",
        Duration::from_secs(30),
        "document.getElementById('connection').dataset.state === 'live' && \
         [...document.querySelectorAll('#messages li .text')].map(t => t.textContent).join('|') \
           === 'First question|Second question|Answer from another tab'",
    )
    .await;
    // Live again: the next message comes through the stream, once.
    send(&daemon, "web", "m5", "visitor-2", "Third question").await;
    bob.wait(
        "the live message shows once",
        "[...document.querySelectorAll('#messages li .text')].filter(t => t.textContent === 'Third question').length === 1 \
         && document.querySelectorAll('#messages li').length === 4",
    )
    .await;

    // An accept timeout sets bob inactive; the console shows it. (`sales` is leastBusy: its
    // offer is exclusive and has the one-second deadline.)
    send(&daemon, "shop", "s1", "visitor-3", "Prices?").await;
    bob.wait_within(
        "bob's status turns inactive after the accept timeout",
        Duration::from_secs(20),
        "document.getElementById('status').value === 'inactive' && \
         document.getElementById('announcer').textContent.includes('inactive')",
    )
    .await;
    let (_, me) = call(&daemon, Method::GET, "/api/v1/me", BOB, None).await;
    assert_eq!(me["status"], "inactive");

    // A long conversation opens at its newest page; older messages are paged in on request.
    for i in 0..50 {
        send(
            &daemon,
            "web",
            &format!("n{i}"),
            "visitor-2",
            &format!("Line {i}"),
        )
        .await;
    }
    bob.goto(&format!("http://127.0.0.1:{}/console/", proxy.port()))
        .await;
    bob.wait(
        "signed in again from the tab's session storage",
        &format!("document.querySelector(\"#mine li[data-chat='{second}'] button\")"),
    )
    .await;
    bob.wait(
        "live again",
        "document.getElementById('connection').dataset.state === 'live'",
    )
    .await;
    // A message to a chat that is not open counts as unread.
    send(&daemon, "web", "n-last", "visitor-2", "Unread line").await;
    bob.wait(
        "one unread message on the chat's row",
        &format!(
            "document.querySelector(\"#mine li[data-chat='{second}'] .unread\")?.textContent === '1' \
             && document.title.startsWith('(1)')"
        ),
    )
    .await;
    bob.click(&format!("#mine li[data-chat='{second}'] button"))
        .await;
    bob.wait(
        "the newest 50 of 55 messages, and a way to the older ones; nothing unread",
        &format!(
            "document.querySelectorAll('#messages li').length === 50 && !document.getElementById('older').hidden \
             && document.querySelector('#messages li:last-child .text').textContent === 'Unread line' \
             && !document.querySelector(\"#mine li[data-chat='{second}'] .unread\")"
        ),
    )
    .await;
    bob.click("#older").await;
    bob.wait(
        "the whole conversation, oldest first",
        "document.querySelectorAll('#messages li').length === 55 && document.getElementById('older').hidden \
         && document.querySelector('#messages li .text').textContent === 'First question'",
    )
    .await;
    bob.quit().await;
}
