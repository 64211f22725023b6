//! `switchboard run`, driven as a real process: HTTP surface, reload, SIGHUP, SIGTERM, and
//! secrets staying out of every output.

mod support;

use std::time::Duration;

use support::{ADMIN_TOKEN, Daemon, VIEWER_TOKEN, base_config, eventually, find, free_port};

/// A value that must never leave the process.
const PLANTED_SECRET: &str = "sb-planted-secret-7f3a9c";

#[tokio::test(flavor = "multi_thread")]
async fn serves_health_metrics_and_the_objects_api_without_leaking_secrets() {
    let port = free_port();
    let mut daemon = Daemon::start(
        port,
        &base_config(port),
        &[("SB_TEST_SECRET", PLANTED_SECRET)],
    );
    daemon.wait_ready().await;

    // REQ: SPEC HTTP (GET /healthz, /readyz, /metrics)
    let health = daemon.get("/healthz", None).await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.expect("body"), "ok");
    assert_eq!(daemon.get("/readyz", None).await.status(), 200);
    let metrics = daemon.get("/metrics", None).await;
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain")
    );
    let metrics = metrics.text().await.expect("body");
    assert!(
        metrics.contains("switchboard_config_last_reload_successful 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchboard_objects{kind=\"Mailbox\",state=\"pending\"} 1"),
        "{metrics}"
    );

    // REQ: SPEC HTTP (operator API: bearer-token auth, JSON errors)
    let anonymous = daemon.get("/api/v1/objects", None).await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let body: serde_json::Value = anonymous.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(
        daemon.get("/api/v1/objects", Some("wrong")).await.status(),
        401
    );

    let objects = daemon.objects().await;
    assert_eq!(objects["total"], 7, "{objects}");
    assert_eq!(objects["nextCursor"], serde_json::Value::Null);
    let role = find(&objects, "Role", "admins").expect("role listed");
    assert_eq!(role["state"], "ready");
    let mailbox = find(&objects, "Mailbox", "alice-mail").expect("mailbox listed");
    assert_eq!(
        mailbox["state"], "pending",
        "never a fake success: {mailbox}"
    );
    assert!(
        mailbox["reason"]
            .as_str()
            .expect("reason")
            .contains("not built yet")
    );

    // Paging: an opaque cursor walks the list.
    let first: serde_json::Value = daemon
        .get("/api/v1/objects?limit=5", Some(VIEWER_TOKEN))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(first["items"].as_array().expect("items").len(), 5);
    let cursor = first["nextCursor"].as_str().expect("a next cursor");
    let rest: serde_json::Value = daemon
        .get(
            &format!("/api/v1/objects?limit=5&cursor={cursor}"),
            Some(VIEWER_TOKEN),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(rest["items"].as_array().expect("items").len(), 2);
    assert_eq!(
        daemon
            .get("/api/v1/objects?limit=5000", Some(ADMIN_TOKEN))
            .await
            .status(),
        400
    );

    // REQ: SPEC HTTP (POST /api/v1/objects/{Kind}/{name}/sync)
    let sync = "/api/v1/objects/Mailbox/alice-mail/sync";
    assert_eq!(daemon.post(sync, None).await.status(), 401);
    assert_eq!(daemon.post(sync, Some(VIEWER_TOKEN)).await.status(), 403);
    assert_eq!(
        daemon
            .post("/api/v1/objects/Mailbox/nope/sync", Some(ADMIN_TOKEN))
            .await
            .status(),
        404
    );
    assert_eq!(
        daemon
            .post("/api/v1/objects/Bogus/x/sync", Some(ADMIN_TOKEN))
            .await
            .status(),
        404
    );
    let pending = daemon.post(sync, Some(ADMIN_TOKEN)).await;
    assert_eq!(pending.status(), 409);
    let body: serde_json::Value = pending.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not-syncable");
    let passive = daemon
        .post("/api/v1/objects/Role/admins/sync", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(passive.status(), 409);

    // Route templates, never raw paths, label the request counter.
    let metrics = daemon.metrics().await;
    assert!(
        metrics.contains("route=\"/api/v1/objects/{kind}/{name}/sync\",status=\"409\""),
        "{metrics}"
    );
    assert!(!metrics.contains("alice-mail/sync"));

    // REQ: SPEC Manifests (secrets are never printed: logs, status, metrics, errors)
    let objects_text = daemon.objects().await.to_string();
    for (what, text) in [
        ("metrics", &metrics),
        ("objects", &objects_text),
        ("stderr", &daemon.stderr()),
    ] {
        assert!(
            !text.contains(PLANTED_SECRET),
            "the secret leaked into {what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_secret_puts_the_object_in_error_naming_only_the_reference() {
    let port = free_port();
    let mut daemon = Daemon::start(port, &base_config(port), &[]);
    daemon.wait_ready().await;
    let objects = daemon.objects().await;
    let mailbox = find(&objects, "Mailbox", "alice-mail").expect("mailbox listed");
    assert_eq!(mailbox["state"], "error");
    assert!(
        mailbox["reason"]
            .as_str()
            .expect("reason")
            .contains("{env: SB_TEST_SECRET}")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_applies_good_edits_keeps_the_last_good_config_on_bad_ones_and_answers_sighup() {
    let port = free_port();
    let mut daemon = Daemon::start(
        port,
        &base_config(port),
        &[("SB_TEST_SECRET", PLANTED_SECRET)],
    );
    daemon.wait_ready().await;
    let config = daemon.config_dir();

    // REQ: SPEC run (reloads on file changes, debounced)
    std::fs::write(
        config.join("extra.yaml"),
        "apiVersion: switchboard/v1\nkind: Role\nmetadata: {name: auditors}\nspec: {title: Auditors}\n",
    )
    .expect("write");
    eventually("the new Role to be applied", &daemon, || async {
        find(&daemon.objects().await, "Role", "auditors").is_some()
    })
    .await;

    // REQ: SPEC run (an invalid new config is rejected whole; the last good one keeps running)
    std::fs::write(
        config.join("bad.yaml"),
        "apiVersion: switchboard/v1\nkind: Role\nmetadata: {name: broken}\nspec: {title: Broken, colour: red}\n",
    )
    .expect("write");
    eventually("the bad config to be rejected", &daemon, || async {
        daemon
            .metrics()
            .await
            .contains("switchboard_config_last_reload_successful 0")
    })
    .await;
    let objects = daemon.objects().await;
    assert!(
        find(&objects, "Role", "auditors").is_some(),
        "last good config still served"
    );
    assert!(find(&objects, "Role", "broken").is_none());
    assert!(
        daemon
            .metrics()
            .await
            .contains("switchboard_config_reloads_total{result=\"failure\"}")
    );
    assert!(
        daemon.stderr().contains("bad.yaml"),
        "the diagnostic names the file"
    );

    std::fs::remove_file(config.join("bad.yaml")).expect("remove");
    eventually("the fixed config to be applied", &daemon, || async {
        daemon
            .metrics()
            .await
            .contains("switchboard_config_last_reload_successful 1")
    })
    .await;

    // REQ: SPEC run (reloads on SIGHUP)
    let successes = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("switchboard_config_reloads_total{result=\"success\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Let any straggling file events settle first, so the next count is SIGHUP's alone.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let before = successes(&daemon.metrics().await);
    daemon.signal("HUP");
    eventually("SIGHUP to reload", &daemon, || async {
        successes(&daemon.metrics().await) > before
    })
    .await;

    daemon.signal("TERM");
    let status = daemon
        .wait_exit(Duration::from_secs(10))
        .expect("exits within 10 s");
    assert!(status.success(), "{status}\n{}", daemon.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_daemon_with_status_zero() {
    // REQ: SPEC run (graceful stop on SIGTERM/SIGINT)
    let port = free_port();
    let mut daemon = Daemon::start(
        port,
        &base_config(port),
        &[("SB_TEST_SECRET", PLANTED_SECRET)],
    );
    daemon.wait_ready().await;
    daemon.signal("TERM");
    let status = daemon
        .wait_exit(Duration::from_secs(10))
        .expect("exits within 10 s");
    assert_eq!(status.code(), Some(0), "{}", daemon.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_config_at_start_prints_diagnostics_and_exits_1() {
    let port = free_port();
    let mut files = base_config(port);
    files.push((
        "bad.yaml",
        "apiVersion: switchboard/v1\nkind: Role\nmetadata: {name: broken}\nspec: {colour: red}\n"
            .to_owned(),
    ));
    let mut daemon = Daemon::start(port, &files, &[]);
    let status = daemon.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(1));
    assert!(daemon.stderr().contains("bad.yaml"), "{}", daemon.stderr());
}

#[test]
fn a_postgres_url_as_state_is_refused_and_creates_nothing() {
    // REQ: SPEC --state (a SQLite file; PostgreSQL is a later issue)
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    for (name, text) in base_config(free_port()) {
        std::fs::write(config.join(name), text).expect("write manifest");
    }
    let url = "postgresql://switchboard:hunter2@db.example/sb";
    let run = |verb: &str, by_env: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
        command
            .current_dir(dir.path())
            .arg("--config")
            .arg(&config)
            .env_remove("SWITCHBOARD_STATE")
            .env_remove("NOTIFY_SOCKET")
            .env("SB_TEST_SECRET", "s3cret");
        if by_env {
            command.env("SWITCHBOARD_STATE", url.replace("postgresql", "postgres"));
        } else {
            command.arg("--state").arg(url);
        }
        let out = command.arg(verb).output().expect("run switchboard");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (verb, by_env) in [
        ("run", false),
        ("run", true),
        ("status", false),
        ("plan", true),
    ] {
        let (code, stderr) = run(verb, by_env);
        assert_eq!(code, Some(1), "{verb}: {stderr}");
        assert!(
            stderr.contains("PostgreSQL state is not supported yet; give a SQLite file path"),
            "{verb}: {stderr}"
        );
        assert!(
            !stderr.contains("hunter2"),
            "{verb} shows the URL's password: {stderr}"
        );
    }
    let made: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(made, ["config"], "nothing but the config beside it");
}

#[test]
fn sync_without_a_daemon_applies_the_current_config_first() {
    // REQ: SPEC sync (in-process it first applies the current config to the store, as run would)
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    // Nothing listens on the port: `sync` finds no daemon and runs in this process.
    let mut files = base_config(free_port());
    files.push((
        "channel.yaml",
        "apiVersion: switchboard/v1\nkind: ChatChannel\nmetadata: {name: site}\nspec: {provider: api, title: Site, queue: support, language: en-US, inboundToken: {file: inbound.txt}}\n"
            .to_owned(),
    ));
    files.push(("inbound.txt", "inbound-token".to_owned()));
    for (name, text) in &files {
        std::fs::write(config.join(name), text).expect("write manifest");
    }
    let switchboard = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--config")
            .arg(&config)
            .arg("--state")
            .arg(dir.path().join("state.db"))
            .args(args)
            .env_remove("SWITCHBOARD_STATE")
            .env("SB_TEST_SECRET", PLANTED_SECRET)
            .output()
            .expect("run switchboard");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };

    let (code, stdout, stderr) = switchboard(&["sync", "ChatChannel/site"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    // The object is named once (it was twice: `ChatChannel/site: ChatChannel/site: synced`).
    assert_eq!(stdout, "ChatChannel/site: synced (0 in, 0 out)\n");

    // The whole config was applied, with the states a daemon gives it.
    let (code, stdout, stderr) = switchboard(&["status", "--format", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let status: serde_json::Value = serde_json::from_str(&stdout).expect("status JSON");
    let state = |kind: &str, name: &str| {
        status
            .as_array()
            .or_else(|| status["objects"].as_array())
            .expect("a list of objects")
            .iter()
            .find(|o| o["kind"] == kind && o["name"] == name)
            .unwrap_or_else(|| panic!("{kind}/{name} is applied: {status}"))["state"]
            .clone()
    };
    assert_eq!(state("ChatChannel", "site"), "ready");
    assert_eq!(state("Role", "admins"), "ready");
    assert_eq!(state("ChatQueue", "support"), "ready");
    assert_eq!(state("Mailbox", "alice-mail"), "pending");
    assert!(!stdout.contains(PLANTED_SECRET));
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_secrets_are_read_at_apply_and_an_unreadable_one_is_that_objects_error() {
    // REQ: SPEC secrets (resolved when a config is applied; status names the reference)
    let secrets = tempfile::tempdir().expect("secrets dir");
    let token_file = secrets.path().join("inbound.txt");
    let port = free_port();
    let mut files = base_config(port);
    files.push((
        "channel.yaml",
        format!(
            "apiVersion: switchboard/v1\nkind: ChatChannel\nmetadata: {{name: site}}\nspec: {{provider: api, title: Site, queue: support, language: en-US, inboundToken: {{file: '{}'}}}}\n",
            token_file.display()
        ),
    ));
    let mut daemon = Daemon::start(port, &files, &[("SB_TEST_SECRET", PLANTED_SECRET)]);
    daemon.wait_ready().await;
    let channel = find(&daemon.objects().await, "ChatChannel", "site")
        .expect("channel listed")
        .clone();
    assert_eq!(channel["state"], "error", "{channel}");
    assert!(
        channel["reason"]
            .as_str()
            .expect("reason")
            .contains("inbound.txt"),
        "the reason names the reference: {channel}"
    );
    let post = || async {
        switchboard::net::http_client()
            .post(format!("{}/webhooks/api/site", daemon.base))
            .bearer_auth("planted-inbound-token")
            .json(&serde_json::json!({"messageId": "m-1", "from": {"id": "c-1", "name": "C"}, "text": "hi"}))
            .send()
            .await
            .expect("POST")
            .status()
            .as_u16()
    };
    assert_eq!(post().await, 503, "no token could be read at apply");

    // The file appears; a request does not read it: secrets are the applied config's.
    std::fs::write(&token_file, "planted-inbound-token").expect("write token");
    assert_eq!(post().await, 503, "the secret is not read at request time");

    // The next apply reads it.
    daemon.signal("HUP");
    eventually(
        "the channel to accept with the token read at apply",
        &daemon,
        || async { post().await == 200 },
    )
    .await;
    let channel = find(&daemon.objects().await, "ChatChannel", "site")
        .expect("channel listed")
        .clone();
    assert_ne!(channel["state"], "error", "{channel}");
    assert!(!daemon.stderr().contains("planted-inbound-token"));
}
