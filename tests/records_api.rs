//! The records API against the real daemon: contacts and accounts with ETag, If-Match, JSON
//! merge patch, 412 and 422, paging and filters, who sees which contact, MB-01 and CS-02
//! through the API, and leads.

mod chat_support;
mod support;

use chat_support::{ANN, BOB, Events, INBOUND, files};
use reqwest::Method;
use serde_json::json;
use support::records::{ROOT, admin_file, chat_message, get, request};
use support::{Daemon, free_port};

const MERGE_PATCH: &str = "application/merge-patch+json";

async fn daemon() -> Daemon {
    let port = free_port();
    let mut config = files(port, "http://127.0.0.1:9/callback", "toAll");
    config.push(admin_file());
    let mut daemon = Daemon::start(port, &config, &[]);
    daemon.wait_ready().await;
    daemon
}

async fn create(
    daemon: &Daemon,
    path: &str,
    token: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let answer = request(
        daemon,
        Method::POST,
        path,
        token,
        &[],
        Some(("application/json", body)),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.body
}

#[tokio::test(flavor = "multi_thread")]
async fn a_contact_answers_an_etag_and_takes_merge_patches_that_honour_if_match() {
    let daemon = daemon().await;
    let created = request(
        &daemon,
        Method::POST,
        "/api/v1/contacts",
        ROOT,
        &[],
        Some((
            "application/json",
            json!({"name": "Ann Lee", "emails": ["Ann.Lee@Example.org"],
                   "phones": ["+1 (415) 555-0100"], "tags": ["vip"]}),
        )),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        created.headers["location"],
        format!("/api/v1/contacts/{id}").as_str()
    );
    assert_eq!(created.body["emails"], json!(["ann.lee@example.org"]));
    assert_eq!(created.body["phones"], json!(["+14155550100"]));
    assert_eq!(created.body["account"], json!(null));
    assert_eq!(created.body["identities"], json!([]));
    let path = format!("/api/v1/contacts/{id}");
    let read = get(&daemon, &path, ROOT).await;
    assert_eq!(read.status, 200);
    let etag = read.etag();
    assert_eq!(etag, created.etag(), "the same record, the same ETag");
    assert!(
        etag.starts_with('"') && !etag.starts_with("W/"),
        "a strong ETag: {etag}"
    );

    // A merge patch: members set, null clears, absent members stay.
    let patched = request(
        &daemon,
        Method::PATCH,
        &path,
        ROOT,
        &[("if-match", &etag)],
        Some((MERGE_PATCH, json!({"jobTitle": "CTO", "tags": null}))),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["jobTitle"], "CTO");
    assert_eq!(patched.body["tags"], json!([]));
    assert_eq!(patched.body["name"], "Ann Lee");
    assert_ne!(patched.etag(), etag);

    // The old ETag is stale now: 412, and nothing changed.
    let stale = request(
        &daemon,
        Method::PATCH,
        &path,
        ROOT,
        &[("if-match", &etag)],
        Some((MERGE_PATCH, json!({"name": "Someone else"}))),
    )
    .await;
    assert_eq!(stale.status, 412, "{}", stale.body);
    assert_eq!(stale.body["error"]["code"], "stale");
    assert_eq!(get(&daemon, &path, ROOT).await.body["name"], "Ann Lee");

    // 422 names the field.
    for (patch, field) in [
        (
            json!({"emails": ["ann@example.org", "not an address"]}),
            "emails[1]",
        ),
        (json!({"phones": ["call me"]}), "phones[0]"),
        (json!({"identities": []}), "identities"),
        (json!({"nickname": "A"}), "nickname"),
        (json!({"account": {"id": "999999"}}), "account.id"),
    ] {
        let refused = request(
            &daemon,
            Method::PATCH,
            &path,
            ROOT,
            &[],
            Some((MERGE_PATCH, patch)),
        )
        .await;
        assert_eq!(refused.status, 422, "{field}: {}", refused.body);
        let message = refused.body["error"]["message"].as_str().expect("message");
        assert!(message.starts_with(field), "{field}: {message}");
    }
    // Another body type is refused; so is an address another contact has.
    let text = switchboard::net::http_client()
        .patch(format!("{}{path}", daemon.base))
        .bearer_auth(ROOT)
        .header("content-type", "text/plain")
        .body("name=x")
        .send()
        .await
        .expect("PATCH");
    assert_eq!(text.status(), 415);
    let other = create(&daemon, "/api/v1/contacts", ROOT, json!({"name": "Other"})).await;
    let taken = request(
        &daemon,
        Method::PATCH,
        &format!("/api/v1/contacts/{}", other["id"].as_str().expect("id")),
        ROOT,
        &[],
        Some((MERGE_PATCH, json!({"emails": ["ANN.LEE@example.org"]}))),
    )
    .await;
    assert_eq!(taken.status, 409, "{}", taken.body);

    // DELETE honours If-Match too; afterwards the contact is gone from the API.
    let current = get(&daemon, &path, ROOT).await.etag();
    let refused = request(
        &daemon,
        Method::DELETE,
        &path,
        ROOT,
        &[("if-match", &etag)],
        None,
    )
    .await;
    assert_eq!(refused.status, 412);
    let deleted = request(
        &daemon,
        Method::DELETE,
        &path,
        ROOT,
        &[("if-match", &current)],
        None,
    )
    .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(get(&daemon, &path, ROOT).await.status, 404);
    assert_eq!(
        get(&daemon, "/api/v1/contacts/nope", ROOT).await.status,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn contact_lists_page_with_cursors_and_filter() {
    let daemon = daemon().await;
    for i in 0..5 {
        let tags = if i % 2 == 0 {
            json!(["even"])
        } else {
            json!([])
        };
        create(
            &daemon,
            "/api/v1/contacts",
            ROOT,
            json!({"name": format!("Person {i}"), "emails": [format!("p{i}@example.org")],
                   "phones": [format!("+4930123456{i}")], "tags": tags}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/contacts?limit=2".to_owned();
    loop {
        let page = get(&daemon, &path, ROOT).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.body["total"], 5);
        let items = page.body["items"].as_array().expect("items");
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|c| c["name"].as_str().expect("name").to_owned()),
        );
        match page.body["nextCursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/contacts?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..5).map(|i| format!("Person {i}")).collect::<Vec<_>>()
    );

    let names = |body: &serde_json::Value| -> Vec<String> {
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|c| c["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let filtered = |query: &'static str| {
        let daemon = &daemon;
        async move {
            names(
                &get(daemon, &format!("/api/v1/contacts?{query}"), ROOT)
                    .await
                    .body,
            )
        }
    };
    assert_eq!(filtered("email=P3@EXAMPLE.ORG").await, ["Person 3"]);
    assert_eq!(filtered("phone=0049%2030%201234562").await, ["Person 2"]);
    assert_eq!(
        filtered("tag=even").await,
        ["Person 0", "Person 2", "Person 4"]
    );
    assert_eq!(filtered("q=son%201").await, ["Person 1"]);
    assert!(
        filtered("updatedSince=2999-01-01T00:00:00Z")
            .await
            .is_empty()
    );
    assert_eq!(
        get(&daemon, "/api/v1/contacts?limit=0", ROOT).await.status,
        400
    );
    assert_eq!(
        get(&daemon, "/api/v1/contacts?limit=1001", ROOT)
            .await
            .status,
        400
    );
    assert_eq!(
        get(&daemon, "/api/v1/contacts?updatedSince=yesterday", ROOT)
            .await
            .status,
        400
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_sees_the_contacts_of_the_chats_they_may_see_and_an_administrator_all() {
    let daemon = daemon().await;
    // web belongs to queue support (ann and bob), shop to queue sales (bob only).
    chat_message(
        &daemon,
        "web",
        INBOUND,
        "m1",
        json!({"id": "v1", "name": "Web Visitor"}),
    )
    .await;
    chat_message(
        &daemon,
        "shop",
        INBOUND,
        "m2",
        json!({"id": "v2", "name": "Shop Visitor"}),
    )
    .await;
    let names = |body: &serde_json::Value| -> Vec<String> {
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|c| c["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let ann = get(&daemon, "/api/v1/contacts", ANN).await;
    assert_eq!(names(&ann.body), ["Web Visitor"]);
    assert_eq!(ann.body["total"], 1);
    assert_eq!(
        names(&get(&daemon, "/api/v1/contacts", BOB).await.body),
        ["Web Visitor", "Shop Visitor"]
    );
    assert_eq!(
        names(&get(&daemon, "/api/v1/contacts", ROOT).await.body),
        ["Web Visitor", "Shop Visitor"]
    );
    let shop = get(&daemon, "/api/v1/contacts?q=Shop", ROOT).await.body["items"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/api/v1/contacts/{shop}");
    assert_eq!(
        get(&daemon, &path, ANN).await.status,
        404,
        "not ann's to see"
    );
    let refused = request(
        &daemon,
        Method::PATCH,
        &path,
        ANN,
        &[],
        Some((MERGE_PATCH, json!({"name": "x"}))),
    )
    .await;
    assert_eq!(refused.status, 404);
    assert_eq!(get(&daemon, &path, BOB).await.status, 200);
    // What ann creates, ann sees.
    create(
        &daemon,
        "/api/v1/contacts",
        ANN,
        json!({"name": "Ann's Lead"}),
    )
    .await;
    assert_eq!(
        names(&get(&daemon, "/api/v1/contacts", ANN).await.body),
        ["Web Visitor", "Ann's Lead"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_link_contacts_by_domain_and_by_a_unique_company_name() {
    let daemon = daemon().await;
    let acme = create(
        &daemon,
        "/api/v1/accounts",
        ROOT,
        json!({"name": "Acme", "domains": ["Acme.test"]}),
    )
    .await;
    assert_eq!(acme["domains"], json!(["acme.test"]));
    create(&daemon, "/api/v1/accounts", ROOT, json!({"name": "Twin"})).await;
    create(
        &daemon,
        "/api/v1/accounts",
        ROOT,
        json!({"name": "Twin", "domains": ["twin.test"]}),
    )
    .await;
    create(
        &daemon,
        "/api/v1/accounts",
        ROOT,
        json!({"name": "Twin Two", "domains": ["twin.test"]}),
    )
    .await;

    // REQ: MB-01 — a person writing from the account's domain joins it; a domain two
    // accounts claim links nobody.
    chat_message(
        &daemon,
        "web",
        INBOUND,
        "m1",
        json!({"id": "v1", "name": "Wile", "email": "wile@acme.test"}),
    )
    .await;
    chat_message(
        &daemon,
        "web",
        INBOUND,
        "m2",
        json!({"id": "v2", "name": "Tim", "email": "tim@twin.test"}),
    )
    .await;
    let wile = get(&daemon, "/api/v1/contacts?email=wile@acme.test", ROOT)
        .await
        .body["items"][0]
        .clone();
    assert_eq!(wile["account"], json!({"id": acme["id"], "name": "Acme"}));
    let tim = get(&daemon, "/api/v1/contacts?email=tim@twin.test", ROOT)
        .await
        .body["items"][0]
        .clone();
    assert_eq!(tim["account"], json!(null));
    let listed = get(
        &daemon,
        &format!("/api/v1/contacts?account={}", acme["id"].as_str().unwrap()),
        ROOT,
    )
    .await;
    assert_eq!(listed.body["total"], 1);

    // REQ: CS-02 — linked to the one account of its company name, unlinked when several share it.
    let imported = create(
        &daemon,
        "/api/v1/contacts",
        ROOT,
        json!({"name": "Imp", "account": {"name": "ACME"}}),
    )
    .await;
    assert_eq!(imported["account"]["id"], acme["id"]);
    let twin = create(
        &daemon,
        "/api/v1/contacts",
        ROOT,
        json!({"name": "Dup", "account": {"name": "Twin"}}),
    )
    .await;
    assert_eq!(twin["account"], json!(null));

    // Accounts have ETags and merge patches too.
    let path = format!("/api/v1/accounts/{}", acme["id"].as_str().unwrap());
    let etag = get(&daemon, &path, ROOT).await.etag();
    let renamed = request(
        &daemon,
        Method::PATCH,
        &path,
        ROOT,
        &[("if-match", &etag)],
        Some((MERGE_PATCH, json!({"name": "Acme Corp"}))),
    )
    .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(renamed.body["domains"], json!(["acme.test"]));
    let stale = request(
        &daemon,
        Method::PATCH,
        &path,
        ROOT,
        &[("if-match", &etag)],
        Some((MERGE_PATCH, json!({"name": "Acme Inc"}))),
    )
    .await;
    assert_eq!(stale.status, 412);
    let bad = request(
        &daemon,
        Method::PATCH,
        &path,
        ROOT,
        &[],
        Some((MERGE_PATCH, json!({"domains": ["not a domain"]}))),
    )
    .await;
    assert_eq!(bad.status, 422);
    assert!(
        bad.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("domains[0]")
    );
    let page = get(&daemon, "/api/v1/accounts?limit=2", ANN).await;
    assert_eq!(
        (
            page.body["total"].as_i64(),
            page.body["nextCursor"].as_str()
        ),
        (Some(4), Some("2"))
    );
    // Deleting an account needs CanManageAdministration and unlinks its contacts.
    assert_eq!(
        request(&daemon, Method::DELETE, &path, ANN, &[], None)
            .await
            .status,
        403
    );
    assert_eq!(
        request(&daemon, Method::DELETE, &path, ROOT, &[], None)
            .await
            .status,
        204
    );
    let wile = get(
        &daemon,
        &format!("/api/v1/contacts/{}", wile["id"].as_str().unwrap()),
        ROOT,
    )
    .await;
    assert_eq!(wile.body["account"], json!(null));
}

#[tokio::test(flavor = "multi_thread")]
async fn leads_are_listed_newest_first_with_filters() {
    let daemon = daemon().await;
    {
        let mut store = switchboard::store::Store::open(&daemon.dir.path().join("state.db"))
            .expect("the daemon's state file");
        for (i, form) in ["f1", "f2", "f1"].into_iter().enumerate() {
            let lead = switchboard::store::records::NewLead {
                integration: "ads".into(),
                form: form.into(),
                linkedin_lead_id: format!("urn:li:lead:{i}"),
                submitted_at: chrono::DateTime::from_timestamp(1_750_000_000 + i as i64 * 3600, 0)
                    .unwrap(),
                columns: json!({"FirstName": format!("Lead {i}")})
                    .as_object()
                    .cloned()
                    .unwrap(),
                contact_id: None,
                duplicate_of: None,
            };
            store
                .insert_lead(&lead, "LeadIntegration/ads", chrono::Utc::now())
                .expect("lead");
        }
    }
    let all = get(&daemon, "/api/v1/leads", ROOT).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(all.body["total"], 3);
    let first = &all.body["items"][0];
    assert_eq!(first["linkedinLeadId"], "urn:li:lead:2");
    assert_eq!(first["columns"], json!({"FirstName": "Lead 2"}));
    assert_eq!(
        get(&daemon, "/api/v1/leads?form=f1", ROOT).await.body["total"],
        2
    );
    assert_eq!(
        get(&daemon, "/api/v1/leads?since=2025-06-15T16:30:00Z", ROOT)
            .await
            .body["total"],
        1
    );
    let id = first["id"].as_str().unwrap();
    let one = get(&daemon, &format!("/api/v1/leads/{id}"), ROOT).await;
    assert_eq!(one.status, 200);
    one.etag();
    // Leads are for administrators and the integration's notifyRole (none here).
    assert_eq!(get(&daemon, "/api/v1/leads", ANN).await.body["total"], 0);
    assert_eq!(
        get(&daemon, &format!("/api/v1/leads/{id}"), ANN)
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn record_changes_reach_the_event_stream_of_those_who_may_see_them() {
    let daemon = daemon().await;
    let mut ann = Events::open(&daemon, ANN).await;
    let mut root = Events::open(&daemon, ROOT).await;
    // A visitor in the shop (queue sales: not ann's) and then one on the web site (ann's).
    chat_message(
        &daemon,
        "shop",
        INBOUND,
        "m1",
        json!({"id": "v1", "name": "Shop Visitor"}),
    )
    .await;
    chat_message(
        &daemon,
        "web",
        INBOUND,
        "m2",
        json!({"id": "v2", "name": "Web Visitor"}),
    )
    .await;
    let first = root.next("record.changed").await;
    assert_eq!(
        (first["kind"].as_str(), first["op"].as_str()),
        (Some("contact"), Some("create"))
    );
    assert_eq!(first["origin"], "ChatChannel/shop");
    let seen = ann.next("record.changed").await;
    assert_eq!(
        seen["origin"], "ChatChannel/web",
        "ann is not told of the shop's visitor"
    );
    let id = seen["id"].as_str().expect("id").to_owned();
    // An operator's change is announced with its origin.
    let patched = request(
        &daemon,
        Method::PATCH,
        &format!("/api/v1/contacts/{id}"),
        ANN,
        &[],
        Some((MERGE_PATCH, json!({"jobTitle": "Buyer"}))),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let update = ann.next("record.changed").await;
    assert_eq!(
        (
            update["id"].as_str(),
            update["op"].as_str(),
            update["origin"].as_str()
        ),
        (Some(id.as_str()), Some("update"), Some("User/ann"))
    );
}
