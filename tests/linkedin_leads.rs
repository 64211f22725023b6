//! LinkedIn lead generation end to end (issue 16): the real daemon over HTTP, a fake LinkedIn
//! (tests/support/linkedin_fake.rs) for the token endpoint and the Lead Sync API, and signed
//! notifications posted to `/webhooks/linkedin`.

mod chat_support;
#[path = "support/linkedin_fake.rs"]
mod linkedin_fake;
mod support;

use linkedin_fake::{CLIENT_ID, CLIENT_SECRET, LinkedInFake, REFRESH_TOKEN, notification, sign};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::records::{ROOT, admin_file, get};
use support::{Daemon, eventually, find, free_port};

/// The token of `mia`, a member of the `marketing` role the integration notifies.
const MIA: &str = "mia-marketing-token";

const AD_ACCOUNT: &str = "508912345";
/// Listed, custom mapping.
const EVENT_FORM: &str = "7123457";
/// Listed, inactive.
const OLD_FORM: &str = "7120001";
/// Not listed: the default mapping serves it.
const DEMO_FORM: &str = "7123456";

fn config(port: u16, fake: &LinkedInFake) -> Vec<(&'static str, String)> {
    vec![
        (
            "settings.yaml",
            format!(
                "apiVersion: switchboard/v1\nkind: Settings\nmetadata: {{name: default}}\nspec:\n  siteUrl: http://127.0.0.1:{port}\n  listen: 127.0.0.1:{port}\n  linkedin:\n    clientId: {CLIENT_ID}\n    clientSecret: {{env: LI_CLIENT_SECRET}}\n"
            ),
        ),
        admin_file(),
        (
            "marketing.yaml",
            format!(
                "apiVersion: switchboard/v1\nkind: Role\nmetadata: {{name: marketing}}\nspec: {{title: Marketing}}\n---\napiVersion: switchboard/v1\nkind: User\nmetadata: {{name: mia}}\nspec: {{displayName: Mia, email: mia@example.com, roles: [marketing], apiTokenSha256: [{}]}}\n",
                hex::encode(Sha256::digest(MIA.as_bytes()))
            ),
        ),
        (
            "leads.yaml",
            format!(
                "\
apiVersion: switchboard/v1
kind: LinkedInAccount
metadata: {{name: root-linkedin}}
spec:
  user: root
  refreshToken: {{env: LI_REFRESH_TOKEN}}
---
apiVersion: switchboard/v1
kind: LeadIntegration
metadata: {{name: ads}}
spec:
  title: LinkedIn ads
  adAccountId: \"{AD_ACCOUNT}\"
  accounts: [root-linkedin]
  apiBaseUrl: {base}
  notifyRole: marketing
  defaultMapping:
    - {{column: GivenName, field: FIRST_NAME}}
    - {{column: Email, field: EMAIL}}
    - {{column: LeadSource, constant: LinkedIn}}
  forms:
    - id: \"{EVENT_FORM}\"
      customMapping:
        - {{column: GivenName, field: FIRST_NAME}}
        - {{column: Surname, field: LAST_NAME}}
        - {{column: Email, field: EMAIL}}
        - {{column: UsrConsent, field: marketing_consent}}
        - {{column: Event, constant: Low-Code Days}}
        - {{column: UsrBudgetConfirmed, constant: false}}
        - {{column: UsrDescription, macro: not_mapped_fields}}
    - id: \"{OLD_FORM}\"
      active: false
---
apiVersion: switchboard/v1
kind: LeadIntegration
metadata: {{name: emea}}
spec:
  title: LinkedIn EMEA (paused)
  active: false
  adAccountId: \"508934567\"
  accounts: [root-linkedin]
  apiBaseUrl: {base}
  defaultMapping:
    - {{column: Email, field: EMAIL}}
---
apiVersion: switchboard/v1
kind: LeadIntegration
metadata: {{name: orphan}}
spec:
  title: LinkedIn APAC (its last account removed)
  adAccountId: \"508956789\"
  accounts: []
  apiBaseUrl: {base}
  defaultMapping:
    - {{column: Email, field: EMAIL}}
",
                base = fake.base
            ),
        ),
    ]
}

async fn start() -> (Daemon, LinkedInFake) {
    let fake = LinkedInFake::start().await;
    for form in [EVENT_FORM, DEMO_FORM, OLD_FORM] {
        fake.add_form(
            form,
            &[
                (1, "firstName", Some("FIRST_NAME")),
                (2, "lastName", Some("LAST_NAME")),
                (3, "email", Some("EMAIL")),
                (4, "company", Some("COMPANY_NAME")),
            ],
        );
    }
    let port = free_port();
    let mut daemon = Daemon::start(
        port,
        &config(port, &fake),
        &[
            ("LI_CLIENT_SECRET", CLIENT_SECRET),
            ("LI_REFRESH_TOKEN", REFRESH_TOKEN),
        ],
    );
    daemon.wait_ready().await;
    (daemon, fake)
}

fn respond(fake: &LinkedInFake, id: &str, form: &str, email: &str) {
    fake.add_response(
        id,
        form,
        1_765_000_000_000,
        &[
            (1, "Ada"),
            (2, "Lovelace"),
            (3, email),
            (4, "Analytical Engines"),
        ],
    );
}

/// POSTs `body` to the webhook with `signature`; answers status and JSON.
async fn post(daemon: &Daemon, body: &str, signature: Option<&str>) -> (u16, Value) {
    let mut request = switchboard::net::http_client()
        .post(format!("{}/webhooks/linkedin", daemon.base))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("X-LI-Signature", signature);
    }
    let response = request.send().await.expect("webhook request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn deliver(daemon: &Daemon, response: &str, form: &str) -> (u16, Value) {
    let body = notification(AD_ACCOUNT, response, form);
    post(daemon, &body, Some(&sign(CLIENT_SECRET, &body))).await
}

async fn leads(daemon: &Daemon) -> Value {
    get(daemon, "/api/v1/leads?integration=ads", ROOT)
        .await
        .body
}

async fn wait_for_leads(daemon: &Daemon, n: u64) -> Value {
    eventually(&format!("{n} leads"), daemon, || async {
        leads(daemon).await["total"] == n
    })
    .await;
    leads(daemon).await
}

// REQ: LI-05
#[tokio::test]
async fn forged_signatures_are_refused_and_the_challenge_is_answered() {
    let (daemon, fake) = start().await;
    respond(&fake, "r1", EVENT_FORM, "ada@example.com");
    let body = notification(AD_ACCOUNT, "r1", EVENT_FORM);
    assert_eq!(post(&daemon, &body, None).await.0, 401);
    let forged = sign("not-the-secret", &body);
    assert_eq!(post(&daemon, &body, Some(&forged)).await.0, 403);
    // Signed over the bare body (no `hmacsha256=` prefix): not LinkedIn's signature.
    let bare = {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(CLIENT_SECRET.as_bytes()).unwrap();
        mac.update(body.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    assert_eq!(post(&daemon, &body, Some(&bare)).await.0, 403);
    assert_eq!(fake.asked("leadFormResponses/r1"), 0, "nothing fetched");
    assert_eq!(leads(&daemon).await["total"], 0);

    let code = "f2b9b4f4-0b42-4a1c-9a5e-2f1c1d0e9a77";
    let answer = switchboard::net::http_client()
        .get(format!(
            "{}/webhooks/linkedin?challengeCode={code}",
            daemon.base
        ))
        .send()
        .await
        .expect("challenge");
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.expect("json");
    assert_eq!(
        answer,
        json!({"challengeCode": code, "challengeResponse": linkedin_fake::challenge_response(CLIENT_SECRET, code)})
    );
    let metrics = daemon.metrics().await;
    assert!(
        metrics.contains("provider=\"linkedin\""),
        "webhook requests counted"
    );
    assert!(!metrics.contains(CLIENT_SECRET) && !daemon.stderr().contains(CLIENT_SECRET));
}

// REQ: LI-01, LI-02, LI-03, LI-04, LI-05, LI-07, LI-08
#[tokio::test]
async fn a_notification_becomes_one_lead_with_its_contact() {
    let (daemon, fake) = start().await;
    let mut events = chat_support::Events::open(&daemon, MIA).await;
    respond(&fake, "r1", EVENT_FORM, "Ada@Example.com");
    let (status, body) = deliver(&daemon, "r1", EVENT_FORM).await;
    assert_eq!((status, &body["outcome"]), (200, &json!("accepted")));
    let all = wait_for_leads(&daemon, 1).await;
    let lead = &all["items"][0];
    // The notifyRole's members hear of it.
    let created = events.next("lead.created").await;
    assert_eq!(created["id"], lead["id"]);
    assert_eq!(created["integration"], "ads");
    assert_eq!(lead["integration"], "ads");
    assert_eq!(lead["form"], EVENT_FORM);
    assert_eq!(lead["linkedinLeadId"], "r1");
    assert_eq!(lead["submittedAt"], "2025-12-06T05:46:40.000Z");
    assert_eq!(
        lead["columns"],
        json!({
            "GivenName": "Ada",
            "Surname": "Lovelace",
            "Email": "Ada@Example.com",
            "UsrConsent": true,
            "Event": "Low-Code Days",
            "UsrBudgetConfirmed": false,
            "UsrDescription": "COMPANY_NAME: Analytical Engines\nutm_campaign: spring"
        })
    );
    assert_eq!(lead["duplicateOf"], Value::Null);
    let contacts = get(&daemon, "/api/v1/contacts?email=ada@example.com", ROOT).await;
    assert_eq!(contacts.body["total"], 1, "{}", contacts.body);
    assert_eq!(contacts.body["items"][0]["id"], lead["contactId"]);
    assert_eq!(contacts.body["items"][0]["name"], "Ada Lovelace");

    // The same notification again: acknowledged, one lead.
    let (status, body) = deliver(&daemon, "r1", EVENT_FORM).await;
    assert_eq!((status, &body["outcome"]), (200, &json!("duplicate")));
    // An inactive form and an inactive integration create nothing.
    respond(&fake, "r-old", OLD_FORM, "old@example.com");
    let (status, body) = deliver(&daemon, "r-old", OLD_FORM).await;
    assert_eq!((status, &body["outcome"]), (200, &json!("ignored")));
    let paused = notification("508934567", "r-emea", DEMO_FORM);
    let (status, body) = post(&daemon, &paused, Some(&sign(CLIENT_SECRET, &paused))).await;
    assert_eq!((status, &body["outcome"]), (200, &json!("ignored")));
    let objects = get(&daemon, "/api/v1/objects?limit=1000", ROOT).await.body;
    let emea = find(&objects, "LeadIntegration", "emea").expect("emea listed");
    assert!(
        emea.to_string().contains("inactive"),
        "the status says why: {emea}"
    );
    // LI-01/LI-07: with no LinkedInAccount left the integration stops and says why.
    let orphan = find(&objects, "LeadIntegration", "orphan").expect("orphan listed");
    assert!(
        orphan
            .to_string()
            .contains("no LinkedInAccount can reach ad account 508956789"),
        "{orphan}"
    );

    // The same person fills another form served by the default mapping, then the event form
    // again: a new lead each, the second a duplicate of the first event-form lead.
    respond(&fake, "r2", DEMO_FORM, "ada@example.com");
    deliver(&daemon, "r2", DEMO_FORM).await;
    let all = wait_for_leads(&daemon, 2).await;
    let demo = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["linkedinLeadId"] == "r2")
        .expect("r2");
    assert_eq!(
        demo["columns"],
        json!({
            "GivenName": "Ada",
            "Email": "ada@example.com",
            "LeadSource": "LinkedIn",
            "Notes": "LAST_NAME: Lovelace\nCOMPANY_NAME: Analytical Engines\nmarketing_consent: true\nutm_campaign: spring"
        })
    );
    assert_eq!(demo["duplicateOf"], Value::Null, "another form");
    respond(&fake, "r3", EVENT_FORM, "ADA@example.com");
    deliver(&daemon, "r3", EVENT_FORM).await;
    let all = wait_for_leads(&daemon, 3).await;
    let again = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["linkedinLeadId"] == "r3")
        .expect("r3");
    assert_eq!(again["duplicateOf"], lead["id"]);
    assert_eq!(again["contactId"], lead["contactId"]);
    assert_eq!(fake.asked("leadFormResponses/r1"), 1, "fetched once");
    assert_eq!(fake.asked("leadFormResponses/r-old"), 0);

    let metrics = daemon.metrics().await;
    assert!(
        metrics.contains("switchboard_leads_created_total{integration=\"ads\"} 3"),
        "{metrics}"
    );
    let log = get(&daemon, "/api/v1/lead-integrations/ads/log", ROOT).await;
    assert_eq!(log.status, 200, "{}", log.body);
    let events: Vec<&str> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["duplicate", "lead-created", "lead-created", "subscribed"],
        "newest first"
    );
    assert_eq!(
        get(&daemon, "/api/v1/lead-integrations/nope/log", ROOT)
            .await
            .status,
        404
    );
}

// REQ: LI-05
#[tokio::test]
async fn throttling_and_an_expired_token_are_ridden_out() {
    let (daemon, fake) = start().await;
    respond(&fake, "r1", EVENT_FORM, "ada@example.com");
    fake.throttle(1);
    deliver(&daemon, "r1", EVENT_FORM).await;
    wait_for_leads(&daemon, 1).await;
    assert_eq!(fake.with(|s| s.throttled), 1);
    assert_eq!(fake.grants(), 1);

    fake.expire_tokens();
    respond(&fake, "r2", EVENT_FORM, "grace@example.com");
    deliver(&daemon, "r2", EVENT_FORM).await;
    wait_for_leads(&daemon, 2).await;
    assert_eq!(fake.with(|s| s.unauthorized), 1, "one 401, then refreshed");
    assert_eq!(fake.grants(), 2);
    let stderr = daemon.stderr();
    assert!(
        !stderr.contains("li-access-") && !stderr.contains(REFRESH_TOKEN),
        "no token in the log"
    );

    // A response LinkedIn no longer has is given up, not retried for ever.
    deliver(&daemon, "r-gone", EVENT_FORM).await;
    eventually("the gone response given up", &daemon, || async {
        get(&daemon, "/api/v1/lead-integrations/ads/log", ROOT)
            .await
            .body["items"][0]["event"]
            == "gave-up"
    })
    .await;
    let log = get(&daemon, "/api/v1/lead-integrations/ads/log", ROOT).await;
    let message = log.body["items"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("r-gone") && message.contains("404"),
        "{message}"
    );
    assert_eq!(fake.asked("leadFormResponses/r-gone"), 1);
    assert_eq!(wait_for_leads(&daemon, 2).await["total"], 2);
}

/// Now in epoch milliseconds, minus `days`.
fn days_ago_ms(days: i64) -> i64 {
    (chrono::Utc::now() - chrono::Duration::days(days)).timestamp_millis()
}

/// `days` ago as `YYYY-MM-DD`.
fn date_days_ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

/// `n` responses on the demo form over the last days, one on the event form, one on the
/// inactive form and one before the period (`30` days ago).
fn backfill_responses(fake: &LinkedInFake, n: usize) {
    for i in 0..n {
        let email = format!("lead{i}@example.com");
        fake.add_response(
            &format!("b{i:04}"),
            DEMO_FORM,
            days_ago_ms(1 + (i as i64 % 10)),
            &[(1, "Lead"), (3, &email)],
        );
    }
    fake.add_response(
        "b-event",
        EVENT_FORM,
        days_ago_ms(2),
        &[(1, "Eve"), (3, "eve@example.com")],
    );
    fake.add_response(
        "b-inactive",
        OLD_FORM,
        days_ago_ms(2),
        &[(1, "Old"), (3, "old@example.com")],
    );
    fake.add_response(
        "b-before",
        DEMO_FORM,
        days_ago_ms(30),
        &[(1, "Before"), (3, "before@example.com")],
    );
}

async fn backfill(daemon: &Daemon, body: Value) -> support::records::Answer {
    support::records::request(
        daemon,
        reqwest::Method::POST,
        "/api/v1/lead-integrations/ads/backfill",
        ROOT,
        &[],
        Some(("application/json", body)),
    )
    .await
}

/// Waits until backfill `id` ends; answers it.
async fn finished_backfill(daemon: &Daemon, id: &str) -> Value {
    let path = format!("/api/v1/lead-integrations/ads/backfills/{id}");
    eventually(&format!("backfill {id} done"), daemon, || async {
        get(daemon, &path, ROOT).await.body["state"] != "queued"
    })
    .await;
    get(daemon, &path, ROOT).await.body
}

// REQ: LI-06, LI-05, LI-07, LI-08
#[tokio::test]
async fn a_backfill_loads_a_period_page_by_page_and_creates_only_unique_leads() {
    let (daemon, fake) = start().await;
    backfill_responses(&fake, 150);
    // One of them came by webhook already.
    deliver(&daemon, "b0000", DEMO_FORM).await;
    wait_for_leads(&daemon, 1).await;

    // LinkedIn keeps lead data 90 days: an older start is refused, naming the limit.
    let old = backfill(&daemon, json!({"since": date_days_ago(100)})).await;
    assert_eq!(old.status, 422, "{}", old.body);
    assert!(
        old.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("90 days"),
        "{}",
        old.body
    );
    let inactive = backfill(
        &daemon,
        json!({"since": date_days_ago(20), "form": OLD_FORM}),
    )
    .await;
    assert_eq!(inactive.status, 409, "{}", inactive.body);
    let mia = support::records::request(
        &daemon,
        reqwest::Method::POST,
        "/api/v1/lead-integrations/ads/backfill",
        MIA,
        &[],
        Some(("application/json", json!({"since": date_days_ago(20)}))),
    )
    .await;
    assert_eq!(mia.status, 403, "administrators only");

    let asked = backfill(&daemon, json!({"since": date_days_ago(20)})).await;
    assert_eq!(asked.status, 202, "{}", asked.body);
    let done = finished_backfill(&daemon, asked.body["id"].as_str().unwrap()).await;
    // 150 demo + event + inactive in the period; the one 30 days back is not.
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(
        (
            &done["fetched"],
            &done["created"],
            &done["known"],
            &done["skipped"]
        ),
        (&json!(152), &json!(150), &json!(1), &json!(1)),
        "{done}"
    );
    assert_eq!(wait_for_leads(&daemon, 151).await["total"], 151);
    // Paged: two pages of 100, asked once each (start 0 and 100).
    assert_eq!(fake.asked("leadFormResponses?q=owner&start=0"), 1);
    assert_eq!(fake.asked("leadFormResponses?q=owner&start=100"), 1);
    assert_eq!(
        fake.asked("leadFormResponses/b0001"),
        0,
        "the page carries the response"
    );

    // Again, on one form: nothing new.
    let again = backfill(
        &daemon,
        json!({"since": date_days_ago(20), "form": EVENT_FORM}),
    )
    .await;
    assert_eq!(again.status, 202, "{}", again.body);
    let done = finished_backfill(&daemon, again.body["id"].as_str().unwrap()).await;
    assert_eq!(
        (&done["created"], &done["known"]),
        (&json!(0), &json!(1)),
        "{done}"
    );
    assert_eq!(leads(&daemon).await["total"], 151);

    let log = get(&daemon, "/api/v1/lead-integrations/ads/log", ROOT)
        .await
        .body;
    let newest = &log["items"][0];
    assert_eq!(newest["event"], "backfill-done", "{log}");
    assert!(
        newest["message"]
            .as_str()
            .unwrap()
            .contains("0 leads created, 1 already leads"),
        "{newest}"
    );
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "backfill-requested"),
        "{log}"
    );
}

// REQ: LI-06
#[tokio::test]
async fn a_throttled_backfill_rides_out_429_and_the_cli_backfills_with_and_without_a_daemon() {
    let fake = LinkedInFake::start().await;
    for form in [EVENT_FORM, DEMO_FORM, OLD_FORM] {
        fake.add_form(
            form,
            &[
                (1, "firstName", Some("FIRST_NAME")),
                (3, "email", Some("EMAIL")),
            ],
        );
    }
    backfill_responses(&fake, 5);
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let config_dir = dir.path().join("config");
    std::fs::create_dir(&config_dir).unwrap();
    let files = config(port, &fake);
    for (name, text) in &files {
        std::fs::write(config_dir.join(name), text).unwrap();
    }
    let state = dir.path().join("state.db");
    let (config_at, state_at) = (config_dir.clone(), state.clone());
    let cli = move |token: Option<&str>, args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
        command
            .arg("--config")
            .arg(&config_at)
            .arg("--state")
            .arg(&state_at)
            .args(["leads", "backfill"])
            .args(args)
            .env("LI_CLIENT_SECRET", CLIENT_SECRET)
            .env("LI_REFRESH_TOKEN", REFRESH_TOKEN)
            .env_remove("SWITCHBOARD_TOKEN");
        if let Some(token) = token {
            command.env("SWITCHBOARD_TOKEN", token);
        }
        command.output().expect("run the CLI")
    };
    let since = date_days_ago(20);

    // No daemon: in this process. The first page is throttled once (429, Retry-After: 1).
    fake.throttle(1);
    let run = |args: Vec<String>, token: Option<&'static str>| {
        let cli = cli.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli(token, &args)
        })
    };
    let out = run(vec!["ads".into(), "--since".into(), since.clone()], None)
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("7 responses read, 6 leads created, 0 already leads, 1 skipped"),
        "{stdout}"
    );
    assert_eq!(fake.with(|s| s.throttled), 1);
    let too_old = run(
        vec!["ads".into(), "--since".into(), date_days_ago(95)],
        None,
    )
    .await
    .unwrap();
    assert!(!too_old.status.success());
    assert!(String::from_utf8_lossy(&too_old.stderr).contains("90 days"));

    // Through the daemon on the same state: everything is known already.
    let mut daemon = Daemon::start_with_state_at(
        port,
        &files,
        &[
            ("LI_CLIENT_SECRET", CLIENT_SECRET),
            ("LI_REFRESH_TOKEN", REFRESH_TOKEN),
        ],
        &state,
    );
    daemon.wait_ready().await;
    let out = run(
        vec!["LeadIntegration/ads".into(), "--since".into(), since],
        Some(ROOT),
    )
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("queued in the daemon"), "{stdout}");
    assert!(
        stdout.contains("0 leads created, 6 already leads, 1 skipped"),
        "{stdout}"
    );
    assert_eq!(leads(&daemon).await["total"], 6);
}

// REQ: LI-07, LI-08, LI-01
#[tokio::test]
async fn a_revoked_grant_is_reported_once_and_another_account_serves() {
    let fake = LinkedInFake::start().await;
    fake.add_form(
        DEMO_FORM,
        &[
            (1, "firstName", Some("FIRST_NAME")),
            (3, "email", Some("EMAIL")),
        ],
    );
    let port = free_port();
    let mut files = config(port, &fake);
    let leads_yaml = &mut files
        .iter_mut()
        .find(|(n, _)| *n == "leads.yaml")
        .unwrap()
        .1;
    *leads_yaml = leads_yaml
        .replace(
            "accounts: [root-linkedin]\n  apiBaseUrl",
            "accounts: [revoked-linkedin, root-linkedin]\n  apiBaseUrl",
        )
        .replacen(
            "---\n",
            "---\napiVersion: switchboard/v1\nkind: LinkedInAccount\nmetadata: {name: revoked-linkedin}\nspec:\n  user: root\n  refreshToken: {env: LI_REVOKED_TOKEN}\n---\n",
            1,
        );
    // The revoked account joins the integration once an administrator's event stream is open
    // (events are live: a stream opened later does not see earlier ones).
    let initial: Vec<_> = files
        .iter()
        .map(|(n, text)| {
            (
                *n,
                text.replace(
                    "accounts: [revoked-linkedin, root-linkedin]",
                    "accounts: [root-linkedin]",
                ),
            )
        })
        .collect();
    let mut daemon = Daemon::start(
        port,
        &initial,
        &[
            ("LI_CLIENT_SECRET", CLIENT_SECRET),
            ("LI_REFRESH_TOKEN", REFRESH_TOKEN),
            ("LI_REVOKED_TOKEN", "revoked-refresh-token-value"),
        ],
    );
    daemon.wait_ready().await;
    let mut events = chat_support::Events::open(&daemon, ROOT).await;
    let leads_yaml = &files.iter().find(|(n, _)| *n == "leads.yaml").unwrap().1;
    std::fs::write(daemon.config_dir().join("leads.yaml"), leads_yaml).expect("rewrite leads.yaml");
    daemon.signal("HUP");
    eventually("the revoked account is refused", &daemon, || async {
        fake.refused() == 1
    })
    .await;
    respond(&fake, "r1", DEMO_FORM, "ada@example.com");
    deliver(&daemon, "r1", DEMO_FORM).await;
    wait_for_leads(&daemon, 1).await;
    // REQ: BX-04 (one event for the refused grant, to administrators)
    assert_eq!(
        events.next("oauth.reauth-needed").await,
        json!({"kind": "LinkedInAccount", "name": "revoked-linkedin"})
    );
    // The access token expires: the refresh goes to the accounts again, skipping the revoked one.
    fake.expire_tokens();
    respond(&fake, "r2", DEMO_FORM, "grace@example.com");
    deliver(&daemon, "r2", DEMO_FORM).await;
    wait_for_leads(&daemon, 2).await;
    assert_eq!(fake.refused(), 1, "the refused grant is not asked again");
    let objects = get(&daemon, "/api/v1/objects?limit=1000", ROOT).await.body;
    let account = find(&objects, "LinkedInAccount", "revoked-linkedin").expect("listed");
    assert_eq!(account["state"], "error", "{account}");
    assert!(
        account["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("needs consent again")
                && e.contains("switchboard oauth url LinkedInAccount/revoked-linkedin")),
        "{account}"
    );
    assert!(!objects.to_string().contains("revoked-refresh-token-value"));
    let metrics = daemon.metrics().await;
    assert!(
        metrics.contains(
            "switchboard_oauth_refresh_failures_total{kind=\"LinkedInAccount\",name=\"revoked-linkedin\"} 1\n"
        ),
        "{metrics}"
    );
    let expiry: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "switchboard_oauth_token_expiry_timestamp_seconds{kind=\"LinkedInAccount\",name=\"root-linkedin\"} ",
            )
        })
        .and_then(|v| v.parse().ok())
        .expect("the serving account's token expiry");
    let in_sixty_days = (chrono::Utc::now().timestamp() + 5_183_999) as f64;
    assert!((expiry - in_sixty_days).abs() < 120.0, "{expiry}");
    assert!(!metrics.contains("revoked-refresh-token-value") && !metrics.contains("li-access-"));

    let log = get(&daemon, "/api/v1/lead-integrations/ads/log", ROOT)
        .await
        .body;
    let reauth: Vec<&Value> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "reauth-needed")
        .collect();
    assert_eq!(reauth.len(), 1, "reported once: {log}");
    let message = reauth[0]["message"].as_str().unwrap();
    assert!(
        message.contains("LinkedInAccount revoked-linkedin needs consent again")
            && message.contains("invalid_grant")
            && message.contains("other accounts serve"),
        "{message}"
    );
    assert!(!log.to_string().contains("revoked-refresh-token-value"));
    assert!(!daemon.stderr().contains("revoked-refresh-token-value"));

    // A new refresh token in the manifest: the account is asked again, and serves.
    let leads_yaml = files
        .iter()
        .find(|(n, _)| *n == "leads.yaml")
        .unwrap()
        .1
        .replace("{env: LI_REVOKED_TOKEN}", "{env: LI_REFRESH_TOKEN}");
    std::fs::write(daemon.config_dir().join("leads.yaml"), leads_yaml).expect("rewrite leads.yaml");
    daemon.signal("HUP");
    fake.expire_tokens();
    respond(&fake, "r3", DEMO_FORM, "linus@example.com");
    eventually("the re-consented account serves", &daemon, || async {
        // Delivered until the reloaded integration takes it (a delivery is deduplicated).
        deliver(&daemon, "r3", DEMO_FORM).await;
        daemon.metrics().await.contains(
            "switchboard_oauth_token_expiry_timestamp_seconds{kind=\"LinkedInAccount\",name=\"revoked-linkedin\"}",
        )
    })
    .await;
    wait_for_leads(&daemon, 3).await;
    assert_eq!(fake.refused(), 1);
}

// REQ: LI-01, LI-07, LI-05
#[tokio::test]
async fn the_lead_notification_subscription_is_registered_once_and_removed_with_the_integration() {
    let (daemon, fake) = start().await;
    let ours = format!("{}/webhooks/linkedin", daemon.base);
    respond(&fake, "r1", DEMO_FORM, "ada@example.com");
    deliver(&daemon, "r1", DEMO_FORM).await;
    wait_for_leads(&daemon, 1).await;
    assert_eq!(fake.subscriptions(AD_ACCOUNT), std::slice::from_ref(&ours));
    // More runs, and a reload of the same config: still one subscription.
    respond(&fake, "r2", DEMO_FORM, "grace@example.com");
    deliver(&daemon, "r2", DEMO_FORM).await;
    wait_for_leads(&daemon, 2).await;
    daemon.signal("HUP");
    respond(&fake, "r3", DEMO_FORM, "alan@example.com");
    deliver(&daemon, "r3", DEMO_FORM).await;
    wait_for_leads(&daemon, 3).await;
    assert_eq!(fake.subscriptions(AD_ACCOUNT), std::slice::from_ref(&ours));
    assert_eq!(fake.with(|s| s.subscribed), 1, "never created twice");
    // Inactive and orphaned integrations subscribe nothing.
    assert!(fake.subscriptions("508934567").is_empty());

    // The integration leaves the config: its subscription goes with it.
    let path = daemon.config_dir().join("leads.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    // Cut the `ads` document (from its `kind:` line to the next separator); the
    // `apiVersion:` line before it then heads the following document.
    let start = text
        .find("kind: LeadIntegration\nmetadata: {name: ads}")
        .unwrap();
    let end = start
        + text[start..]
            .find("\n---\napiVersion: switchboard/v1\n")
            .unwrap();
    let without = format!(
        "{}{}",
        &text[..start],
        &text[end + "\n---\napiVersion: switchboard/v1\n".len()..]
    );
    assert!(!without.contains("{name: ads}") && without.contains("{name: emea}"));
    std::fs::write(&path, without).unwrap();
    daemon.signal("HUP");
    eventually("the subscription removed", &daemon, || async {
        fake.subscriptions(AD_ACCOUNT).is_empty()
    })
    .await;
}

// REQ: LI-01, LI-07 (a LinkedInAccount connected through the consent flow, tokens sealed)
#[tokio::test]
async fn an_account_without_a_refresh_token_serves_once_its_consent_completes() {
    let fake = LinkedInFake::start().await;
    fake.add_form(
        DEMO_FORM,
        &[
            (1, "firstName", Some("FIRST_NAME")),
            (3, "email", Some("EMAIL")),
        ],
    );
    let port = free_port();
    let files: Vec<_> = config(port, &fake)
        .into_iter()
        .map(|(n, text)| {
            (
                n,
                text.replace("  refreshToken: {env: LI_REFRESH_TOKEN}\n", ""),
            )
        })
        .collect();
    assert!(!files.iter().any(|(_, t)| t.contains("refreshToken")));
    let mut daemon = Daemon::start(port, &files, &[("LI_CLIENT_SECRET", CLIENT_SECRET)]);
    daemon.wait_ready().await;

    // Before consent a notification waits, and the integration says how to connect the account.
    respond(&fake, "r1", DEMO_FORM, "ada@example.com");
    deliver(&daemon, "r1", DEMO_FORM).await;
    eventually("the integration asks for consent", &daemon, || async {
        let objects = get(&daemon, "/api/v1/objects?limit=1000", ROOT).await.body;
        find(&objects, "LeadIntegration", "ads")
            .and_then(|o| o["lastError"].as_str())
            .is_some_and(|e| e.contains("switchboard oauth url LinkedInAccount/root-linkedin"))
    })
    .await;
    assert_eq!(fake.grants(), 0);

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(daemon.config_dir())
        .arg("--state")
        .arg(daemon.dir.path().join("state.db"))
        .args(["oauth", "url", "LinkedInAccount/root-linkedin"])
        .env_remove("SWITCHBOARD_CONFIG")
        .env_remove("SWITCHBOARD_STATE")
        .env("LI_CLIENT_SECRET", CLIENT_SECRET)
        .output()
        .expect("run switchboard oauth url");
    assert!(output.status.success(), "{output:?}");
    let url = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        url.starts_with(&format!("{}/oauth/v2/authorization?", fake.base)),
        "{url}"
    );
    assert!(!url.contains(CLIENT_SECRET));
    fake.with(|s| s.consenting = true);
    let page = reqwest::get(&url).await.expect("consent");
    assert_eq!(page.status().as_u16(), 200);
    let body = page.text().await.expect("body");
    assert!(
        body.contains("LinkedInAccount root-linkedin is connected"),
        "{body}"
    );
    let consent = fake.with(|s| s.last_consent.clone());
    assert_eq!(
        consent["redirect_uri"],
        format!("http://127.0.0.1:{port}/oauth/linkedin/callback")
    );
    assert_eq!(consent["client_id"], CLIENT_ID);
    assert_eq!(consent["scope"], "r_marketing_leadgen_automation");

    // The callback asked the integration to run: the waiting notification becomes a lead with
    // the access token from the code.
    wait_for_leads(&daemon, 1).await;
    assert_eq!(fake.grants(), 1, "the code's access token is used as is");

    // Sealed at rest under the account's key; never in clear in the state file.
    let state = daemon.dir.path().join("state.db");
    let stored = switchboard::store::Store::open(&state)
        .expect("store")
        .mail_oauth_tokens("LinkedInAccount/root-linkedin")
        .expect("read")
        .expect("tokens stored");
    let sealer = switchboard::mail::oauth::Sealer::for_state(&state).expect("key");
    let refresh = sealer
        .open(
            "LinkedInAccount/root-linkedin",
            "refresh",
            stored.refresh_token.as_deref().expect("refresh"),
        )
        .expect("opens");
    assert!(refresh.starts_with("li-consented-refresh-"), "{refresh}");
    for file in ["state.db", "state.db-wal"] {
        let bytes = std::fs::read(daemon.dir.path().join(file)).unwrap_or_default();
        assert!(
            !bytes
                .windows(refresh.len())
                .any(|w| w == refresh.as_bytes()),
            "{file} holds the refresh token in clear"
        );
    }

    // The access token expires: the stored refresh token gets a new one.
    fake.expire_tokens();
    respond(&fake, "r2", DEMO_FORM, "grace@example.com");
    deliver(&daemon, "r2", DEMO_FORM).await;
    wait_for_leads(&daemon, 2).await;
    assert_eq!(fake.grants(), 2);
    assert!(!daemon.stderr().contains(&refresh));
    assert!(!daemon.stderr().contains(CLIENT_SECRET));

    // REQ: LI-01 (a removed account's sealed token is deleted; plan says so first)
    let leads_yaml = &files.iter().find(|(n, _)| *n == "leads.yaml").unwrap().1;
    let account = "apiVersion: switchboard/v1\nkind: LinkedInAccount\nmetadata: {name: root-linkedin}\nspec:\n  user: root\n---\n";
    assert!(leads_yaml.contains(account), "{leads_yaml}");
    let without = leads_yaml
        .replace(account, "")
        .replace("accounts: [root-linkedin]", "accounts: []");
    let desired = tempfile::tempdir().expect("tempdir");
    for (name, text) in &files {
        let text = if *name == "leads.yaml" {
            &without
        } else {
            text
        };
        std::fs::write(desired.path().join(name), text).expect("write manifest");
    }
    let plan = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(desired.path())
        .arg("--state")
        .arg(&state)
        .arg("plan")
        .env_remove("SWITCHBOARD_CONFIG")
        .env_remove("SWITCHBOARD_STATE")
        .env("LI_CLIENT_SECRET", CLIENT_SECRET)
        .output()
        .expect("run switchboard plan");
    let plan = String::from_utf8_lossy(&plan.stdout).into_owned();
    let destroyed = plan
        .find("- LinkedInAccount/root-linkedin will be destroyed")
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(
        plan[destroyed..]
            .split("\n\n")
            .next()
            .is_some_and(|block| block.contains(
                "# its OAuth tokens stored at run time (from its consent flow) are deleted"
            )),
        "{plan}"
    );
    std::fs::write(daemon.config_dir().join("leads.yaml"), &without).expect("rewrite leads.yaml");
    daemon.signal("HUP");
    eventually(
        "the removed account's token is deleted",
        &daemon,
        || async {
            switchboard::store::Store::open_read_only(&state)
                .expect("store")
                .mail_oauth_tokens("LinkedInAccount/root-linkedin")
                .expect("read")
                .is_none()
        },
    )
    .await;
}

// REQ: BX-04, LI-07
#[tokio::test]
async fn a_refused_grant_shows_in_status_and_stays_refused_after_a_restart() {
    let fake = LinkedInFake::start().await;
    fake.add_form(
        DEMO_FORM,
        &[
            (1, "firstName", Some("FIRST_NAME")),
            (3, "email", Some("EMAIL")),
        ],
    );
    // A revoked account listed first, a good one after it.
    let files = |port: u16| -> Vec<(&'static str, String)> {
        config(port, &fake)
            .into_iter()
            .map(|(n, text)| {
                if n != "leads.yaml" {
                    return (n, text);
                }
                let text = text
                    .replace(
                        "accounts: [root-linkedin]\n  apiBaseUrl",
                        "accounts: [revoked-linkedin, root-linkedin]\n  apiBaseUrl",
                    )
                    .replacen(
                        "---\n",
                        "---\napiVersion: switchboard/v1\nkind: LinkedInAccount\nmetadata: {name: revoked-linkedin}\nspec:\n  user: root\n  refreshToken: {env: LI_REVOKED_TOKEN}\n---\n",
                        1,
                    );
                (n, text)
            })
            .collect()
    };
    let env = [
        ("LI_CLIENT_SECRET", CLIENT_SECRET),
        ("LI_REFRESH_TOKEN", REFRESH_TOKEN),
        ("LI_REVOKED_TOKEN", "revoked-refresh-token-value"),
    ];
    let port = free_port();
    let mut daemon = Daemon::start(port, &files(port), &env);
    daemon.wait_ready().await;
    eventually("the revoked account is refused", &daemon, || async {
        fake.refused() == 1
    })
    .await;

    // `switchboard status` reads the store: the account needs consent, and says how.
    let state = daemon.dir.path().join("state.db");
    let status = || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--state")
            .arg(&state)
            .arg("status")
            .env_remove("SWITCHBOARD_CONFIG")
            .env_remove("SWITCHBOARD_STATE")
            .output()
            .expect("run switchboard status");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let text = status();
    let row = text
        .lines()
        .find(|l| l.starts_with("LinkedInAccount/revoked-linkedin "))
        .unwrap_or_else(|| panic!("no row for the account:\n{text}"));
    assert!(
        row.contains(" error ")
            && row.contains("needs consent again")
            && row.contains("switchboard oauth url LinkedInAccount/revoked-linkedin"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("LinkedInAccount/root-linkedin ") && !l.contains("error")),
        "{text}"
    );
    assert!(!text.contains("revoked-refresh-token-value"), "{text}");
    daemon.signal("TERM");
    assert!(
        daemon
            .wait_exit(std::time::Duration::from_secs(10))
            .is_some()
    );

    // Restarted on the same state: the refused grant is not asked again (so not announced
    // again); the good account serves.
    let grants = fake.grants();
    let port = free_port();
    let mut daemon = Daemon::start_on_state(port, &files(port), &env, &state);
    daemon.wait_ready().await;
    respond(&fake, "r1", DEMO_FORM, "ada@example.com");
    deliver(&daemon, "r1", DEMO_FORM).await;
    wait_for_leads(&daemon, 1).await;
    assert!(fake.grants() > grants, "the good account refreshed");
    assert_eq!(fake.refused(), 1, "the refused grant is not asked again");
    let objects = get(&daemon, "/api/v1/objects?limit=1000", ROOT).await.body;
    let account = find(&objects, "LinkedInAccount", "revoked-linkedin").expect("listed");
    assert_eq!(account["state"], "error", "{account}");
    let metrics = daemon.metrics().await;
    assert!(
        !metrics.contains("switchboard_oauth_refresh_failures_total{kind=\"LinkedInAccount\",name=\"revoked-linkedin\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchboard_oauth_token_expiry_timestamp_seconds{kind=\"LinkedInAccount\",name=\"revoked-linkedin\"} 0\n"),
        "{metrics}"
    );
    let text = std::fs::read(daemon.dir.path().join("state.db")).unwrap_or_default();
    assert!(
        !text
            .windows("revoked-refresh-token-value".len())
            .any(|w| w == b"revoked-refresh-token-value"),
        "the state file holds the token in clear"
    );
}
