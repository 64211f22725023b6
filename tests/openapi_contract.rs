//! The OpenAPI document (`GET /api/v1/openapi.json`) against the running daemon: it is the
//! committed `schemas/openapi.json`, it needs no token, it names every route the router has
//! under `/api/v1` and `/webhooks` (and each documented operation answers), and schemathesis
//! finds no server error and no answer that breaks its schema.
//!
//! Issue: console / OpenAPI. schemathesis comes from the venv `tests/run.sh` makes
//! (`~/.cache/switchboard/schemathesis-venv`, or `SB_SCHEMATHESIS`); without it the contract
//! test fails and says how to install it: it never skips.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};
use support::{Daemon, free_port};

const TOKEN: &str = "sb-openapi-admin-token";
const INBOUND: &str = "sb-openapi-inbound-token";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A User with an API token (an administrator, so every operation is reachable), a queue it
/// operates in, an api chat channel, a quick reply and a chat action; no mailbox.
fn files(port: u16) -> Vec<(&'static str, String)> {
    let sha = hex::encode(Sha256::digest(TOKEN.as_bytes()));
    vec![
        (
            "settings.yaml",
            format!(
                "apiVersion: switchboard/v1\nkind: Settings\nmetadata: {{name: default}}\nspec:\n  siteUrl: http://127.0.0.1:{port}\n  listen: 127.0.0.1:{port}\n"
            ),
        ),
        (
            "users.yaml",
            format!(
                "apiVersion: switchboard/v1\nkind: Role\nmetadata: {{name: admins}}\nspec: {{title: Admins, operations: [CanManageAdministration, CanManageChats]}}\n---\n\
                 apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: ada}}\nspec: {{displayName: Ada, email: ada@example.com, roles: [admins], apiTokenSha256: [{sha}]}}\n"
            ),
        ),
        (
            "chat.yaml",
            "apiVersion: switchboard/v1\nkind: ChatQueue\nmetadata: {name: support}\nspec: {title: Support, routing: toAll, operators: [{user: ada}]}\n---\n\
             apiVersion: switchboard/v1\nkind: ChatChannel\nmetadata: {name: web}\nspec: {provider: api, title: Web site, queue: support, language: en-US, inboundToken: {file: inbound.txt}}\n---\n\
             apiVersion: switchboard/v1\nkind: QuickReply\nmetadata: {name: hello}\nspec: {language: en-US, text: 'Hello!'}\n"
                .to_owned(),
        ),
        ("inbound.txt", INBOUND.to_owned()),
    ]
}

async fn started() -> Daemon {
    let port = free_port();
    let mut daemon = Daemon::start(port, &files(port), &[]);
    daemon.wait_ready().await;
    daemon
}

// Issue: console / OpenAPI (served without a token; the committed file is what is served)
#[tokio::test(flavor = "multi_thread")]
async fn the_served_document_is_the_committed_one_and_needs_no_token() {
    let daemon = started().await;
    let response = daemon.get("/api/v1/openapi.json", None).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let served: serde_json::Value = response.json().await.expect("JSON");
    let committed: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo().join("schemas/openapi.json")).expect("schemas/openapi.json"),
    )
    .expect("committed JSON");
    assert!(
        served == committed,
        "schemas/openapi.json is stale: run `cargo run -- schema --out schemas`"
    );
    assert_eq!(served["openapi"], "3.1.0");
    for scheme in ["apiToken", "identityServer"] {
        assert!(
            served["components"]["securitySchemes"][scheme].is_object(),
            "{scheme}"
        );
    }
}

/// The paths the router names under `/api/v1` and `/webhooks` (read from `src/http/mod.rs`).
fn router_paths() -> BTreeSet<String> {
    let source = std::fs::read_to_string(repo().join("src/http/mod.rs")).expect("mod.rs");
    let mut paths = BTreeSet::new();
    for part in source.split(".route(").skip(1) {
        let path = part
            .trim_start()
            .strip_prefix('"')
            .and_then(|p| p.split('"').next())
            .expect("a route's path literal");
        if path.starts_with("/api/v1") || path.starts_with("/webhooks") {
            paths.insert(path.to_owned());
        }
    }
    paths
}

/// `path` with its parameters filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "1" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

// Issue: console / OpenAPI (the route table and the router agree, both ways)
#[tokio::test(flavor = "multi_thread")]
async fn every_route_is_documented_and_every_operation_answers() {
    let daemon = started().await;
    let doc: serde_json::Value = daemon
        .get("/api/v1/openapi.json", None)
        .await
        .json()
        .await
        .expect("JSON");
    let paths = doc["paths"].as_object().expect("paths");
    let documented: BTreeSet<String> = paths.keys().cloned().collect();
    assert_eq!(
        documented,
        router_paths(),
        "the OpenAPI route table (src/http/openapi.rs) and the router (src/http/mod.rs) differ"
    );
    let client = switchboard::net::http_client();
    for (path, item) in paths {
        if path == "/api/v1/events" {
            continue; // an endless stream; schemathesis leaves it out too
        }
        let methods: BTreeSet<&str> = item
            .as_object()
            .expect("item")
            .keys()
            .map(|m| m.as_str())
            .collect();
        for method in ["get", "post", "put", "patch", "delete"] {
            let response = client
                .request(
                    method.to_uppercase().parse().expect("method"),
                    format!("{}{}", daemon.base, concrete(path)),
                )
                .bearer_auth(TOKEN)
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            if methods.contains(method) {
                assert!(
                    status != 405 && body["error"]["message"] != "no such route",
                    "{method} {path} is documented but the router does not take it ({status})"
                );
            } else {
                assert_eq!(
                    status, 405,
                    "{method} {path} answers {status}: the router takes it but it is not documented"
                );
            }
        }
    }
}

/// The `st` of the venv `tests/run.sh` makes (`SB_SCHEMATHESIS`, or the default place).
fn schemathesis() -> PathBuf {
    let path = std::env::var_os("SB_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
                });
            cache.join("switchboard/schemathesis-venv/bin/st")
        });
    assert!(
        Path::new(&path).exists(),
        "schemathesis is not installed at {}: run tests/run.sh, which installs it into a venv \
         (python3 -m venv DIR && DIR/bin/pip install -r tests/schemathesis-requirements.txt), \
         or set SB_SCHEMATHESIS to an `st`",
        path.display()
    );
    path
}

// Issue: console / OpenAPI (schemathesis: every operation with the documented auth, no 5xx,
// every answer matching its schema)
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_answer_off_its_schema() {
    let st = schemathesis();
    let daemon = started().await;
    // A chat to work on, so the chat operations reach past "no such chat".
    let response = switchboard::net::http_client()
        .post(format!("{}/webhooks/api/web", daemon.base))
        .bearer_auth(INBOUND)
        .json(&serde_json::json!({"messageId": "m-1", "from": {"id": "v-1", "name": "Visitor"}, "text": "Hello"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    let reports = tempfile::tempdir().expect("temp dir");
    let started_at = Instant::now();
    let output = std::process::Command::new(&st)
        .arg("run")
        .arg(format!("{}/api/v1/openapi.json", daemon.base))
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
            "--header",
            &format!("Authorization: Bearer {TOKEN}"),
            // Bounded: each phase runs once (no --max-time, which would repeat fuzzing until it
            // is spent); about 2,500 cases in well under two minutes.
            "--max-examples",
            "20",
            "--exclude-path",
            "/api/v1/events",
            "--seed",
            "1",
            // One worker: CPython 3.11's parser is not safe for schemathesis's threads (a
            // spurious "AST constructor recursion depth mismatch" runtime error).
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--no-color",
            "--report-dir",
        ])
        .arg(reports.path())
        .current_dir(reports.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", st.display()));
    let took = started_at.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("schemathesis took {took:.1?}:\n{stdout}");
    assert!(
        output.status.success(),
        "schemathesis found problems ({}):\n{stdout}\n{stderr}\n--- daemon log ---\n{}",
        output.status,
        daemon.stderr()
    );
    assert!(
        stdout.contains("passed") || stdout.contains("Passed"),
        "schemathesis ran nothing?\n{stdout}\n{stderr}"
    );
}
