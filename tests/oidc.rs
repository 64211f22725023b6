//! The operator API takes JWTs from `Settings.identityServer`: a fake OIDC issuer on loopback
//! (discovery + JWKS, RS256 and ES256 keys made in the test) and the real daemon. Acceptance,
//! every rejection, a key rotation picked up by the refresh on an unknown `kid` (and a flood of
//! forged `kid`s costing the issuer at most one fetch), API tokens beside JWTs, and neither the
//! JWTs nor the client secret in the (debug) logs.

#[path = "support/oidc_fake.rs"]
mod oidc_fake;
mod support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use oidc_fake::{OidcFake, SigningKey, signing_input};
use support::{ADMIN_TOKEN, Daemon, VIEWER_TOKEN, base_config, free_port, with_settings};

const CLIENT_ID: &str = "switchboard-console";
const CLIENT_SECRET: &str = "oidc-client-s3cret-never-logged";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// Claims of a valid token from `fake` for `email`, with `extra` set or replaced.
fn claims(fake: &OidcFake, email: &str, extra: Value) -> Value {
    let t = now();
    let mut c = json!({
        "iss": fake.base,
        "sub": "248289761001",
        "aud": CLIENT_ID,
        "iat": t,
        "exp": t + 300,
        "email": email,
        "email_verified": true,
    });
    for (k, v) in extra.as_object().expect("an object") {
        c[k] = v.clone();
    }
    c
}

async fn start(fake: &OidcFake) -> Daemon {
    start_with_issuer(&fake.base).await
}

async fn start_with_issuer(issuer: &str) -> Daemon {
    let port = free_port();
    let files = with_settings(
        &base_config(port),
        &format!(
            "  identityServer:\n    url: {issuer}\n    clientId: {CLIENT_ID}\n    clientSecret: {{env: SB_OIDC_SECRET}}\n"
        ),
    );
    let mut daemon = Daemon::start(
        port,
        &files,
        &[
            ("SB_TEST_SECRET", "mail-password"),
            ("SB_OIDC_SECRET", CLIENT_SECRET),
            ("RUST_LOG", "info,switchboard=debug"),
        ],
    );
    daemon.wait_ready().await;
    daemon
}

/// `GET /api/v1/me` with `token`: status and JSON body.
async fn me(daemon: &Daemon, token: &str) -> (u16, Value) {
    let response = daemon.get("/api/v1/me", Some(token)).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

/// Asserts a 401 with the error JSON whose message contains `reason`.
async fn refused(daemon: &Daemon, token: &str, reason: &str, what: &str) {
    let (status, body) = me(daemon, token).await;
    assert_eq!(status, 401, "{what}: {body}");
    assert_eq!(body["error"]["code"], "unauthorized", "{what}: {body}");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(
        message.contains(reason),
        "{what}: {message:?} lacks {reason:?}"
    );
    assert!(
        !message.contains(token),
        "{what}: the message echoes the token"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_server_tokens_are_verified_and_everything_else_is_refused() {
    // REQ: BX-07
    let rsa = SigningKey::rsa("rsa-1");
    let ec = SigningKey::ec("ec-1");
    let fake = OidcFake::start(&[&rsa, &ec]).await;
    let daemon = start(&fake).await;
    let mut sent: Vec<String> = Vec::new();

    // Accepted: RS256 and ES256, the user found by email ignoring case.
    let token = rsa.sign(&claims(&fake, "Alice@Example.COM", json!({})));
    let (status, body) = me(&daemon, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "alice");
    assert_eq!(body["email"], "alice@example.com");
    assert_eq!(body["displayName"], "Alice");
    assert!(
        body["rights"]
            .as_array()
            .expect("rights")
            .contains(&json!("CanManageAdministration")),
        "{body}"
    );
    sent.push(token);
    let token = ec.sign(&claims(
        &fake,
        "bob@example.com",
        json!({"aud": ["other", CLIENT_ID]}),
    ));
    let (status, body) = me(&daemon, &token).await;
    assert_eq!(
        (status, body["name"].as_str()),
        (200, Some("bob")),
        "{body}"
    );
    sent.push(token);
    // Inside the 60 s leeway: expired 30 s ago, valid from 30 s ahead.
    let token = rsa.sign(&claims(
        &fake,
        "alice@example.com",
        json!({"exp": now() - 30, "nbf": now() + 30}),
    ));
    assert_eq!(me(&daemon, &token).await.0, 200, "within the leeway");
    sent.push(token);

    // API tokens keep working beside JWTs.
    assert_eq!(me(&daemon, ADMIN_TOKEN).await.1["name"], "alice");
    assert_eq!(me(&daemon, VIEWER_TOKEN).await.1["name"], "bob");

    // Every rejection is a 401 with the error JSON.
    let alice = |extra: Value| claims(&fake, "alice@example.com", extra);
    let cases: Vec<(String, &str, &str)> = vec![
        (
            rsa.sign(&alice(json!({"iss": "https://evil.example.com"}))),
            "not issued by the configured identity server",
            "wrong issuer",
        ),
        (
            ec.sign(&alice(json!({"aud": "another-client"}))),
            "not meant for this application",
            "wrong audience",
        ),
        (
            rsa.sign(&alice(json!({"exp": now() - 120}))),
            "expired",
            "expired",
        ),
        (
            rsa.sign(&json!({"iss": fake.base, "aud": CLIENT_ID, "email": "alice@example.com"})),
            "expired",
            "no exp",
        ),
        (
            ec.sign(&alice(json!({"nbf": now() + 600}))),
            "not valid yet",
            "nbf in the future",
        ),
        (
            SigningKey::ec("stray").sign(&alice(json!({}))),
            "signing key is not known",
            "unknown kid",
        ),
        (
            {
                // Bob's valid token with Alice's claims pasted in.
                let bob = rsa.sign(&claims(&fake, "bob@example.com", json!({})));
                let forged = rsa.sign(&alice(json!({})));
                let mut bob_parts = bob.split('.');
                let mut forged_parts = forged.split('.');
                format!(
                    "{}.{}.{}",
                    bob_parts.next().expect("header"),
                    forged_parts.nth(1).expect("claims"),
                    bob_parts.nth(1).expect("signature")
                )
            },
            "signature is not valid",
            "bad signature",
        ),
        (
            format!(
                "{}.",
                signing_input(&json!({"alg": "none", "typ": "JWT"}), &alice(json!({})))
            ),
            "algorithm is not accepted",
            "alg none",
        ),
        (
            {
                let input = signing_input(
                    &json!({"alg": "HS256", "typ": "JWT", "kid": rsa.kid}),
                    &alice(json!({})),
                );
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &rsa.public_bytes());
                let tag = ring::hmac::sign(&key, input.as_bytes());
                format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
            },
            "algorithm is not accepted",
            "HS256 with the public key as the secret",
        ),
        (
            rsa.sign(&alice(json!({"email_verified": false}))),
            "no verified email",
            "unverified email",
        ),
        (
            rsa.sign(&claims(&fake, "mallory@example.com", json!({}))),
            "no user is configured",
            "a user not configured",
        ),
    ];
    for (token, reason, what) in &cases {
        refused(&daemon, token, reason, what).await;
        sent.push(token.clone());
    }

    // A flood of forged kids costs the issuer at most one fetch (the refresh cooldown).
    let before = fake.jwks_fetches();
    for i in 0..30 {
        let token = SigningKey::ec(&format!("forged-{i}")).sign(&alice(json!({})));
        refused(&daemon, &token, "signing key is not known", "forged kid").await;
        sent.push(token);
    }
    let flood = fake.jwks_fetches() - before;
    assert!(flood <= 1, "30 forged kids made {flood} JWKS fetches");

    // A key rotation at the issuer: the new kid is unknown to the cache and picked up by a
    // refresh (once the cooldown allows one); the retired key is then refused.
    let rotated = SigningKey::rsa("rsa-2");
    fake.publish(&[&rotated, &ec]);
    let token = rotated.sign(&alice(json!({})));
    support::eventually_within(
        "the rotated key is accepted",
        Duration::from_secs(15),
        &daemon,
        || {
            let token = token.clone();
            let daemon = &daemon;
            async move { me(daemon, &token).await.0 == 200 }
        },
    )
    .await;
    sent.push(token);
    let old = rsa.sign(&alice(json!({})));
    refused(&daemon, &old, "signing key is not known", "the retired key").await;
    sent.push(old);

    // Neither the tokens nor the client secret reach the logs, which did log the refusals.
    let log = daemon.stderr();
    assert!(
        log.contains("identity server token refused"),
        "debug logging was on:\n{log}"
    );
    assert!(
        !log.contains(CLIENT_SECRET),
        "the client secret is in the log"
    );
    for token in &sent {
        let signature = token.rsplit('.').next().expect("signature");
        assert!(!log.contains(token.as_str()), "a token is in the log");
        if !signature.is_empty() {
            assert!(
                !log.contains(signature),
                "a token's signature is in the log"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_issuer_off_loopback_and_an_empty_client_id_are_refused_by_validate() {
    // REQ: BX-07
    let dir = tempfile::tempdir().expect("tempdir");
    let files = with_settings(
        &base_config(free_port()),
        "  identityServer:\n    url: http://id.example.com/realms/corp\n    clientId: ''\n    clientSecret: {env: SB_OIDC_SECRET}\n",
    );
    for (name, text) in &files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(dir.path())
        .arg("validate")
        .output()
        .expect("run validate");
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("must be https://"), "{text}");
    assert!(text.contains("`clientId` must not be empty"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_issuer_refuses_jwts_but_not_api_tokens() {
    // REQ: BX-07
    let key = SigningKey::ec("ec-1");
    // A port nothing listens on: discovery fails.
    let issuer = format!("http://127.0.0.1:{}", free_port());
    let daemon = start_with_issuer(&issuer).await;
    let t = now();
    let token = key.sign(&json!({
        "iss": issuer, "aud": CLIENT_ID, "exp": t + 300, "email": "alice@example.com",
    }));
    refused(&daemon, &token, "could not be reached", "issuer down").await;
    assert_eq!(me(&daemon, ADMIN_TOKEN).await.1["name"], "alice");
    let log = daemon.stderr();
    assert!(
        log.contains("cannot read the identity server's discovery or keys"),
        "{log}"
    );
    assert!(
        !log.contains(&token) && !log.contains(CLIENT_SECRET),
        "{log}"
    );
}
