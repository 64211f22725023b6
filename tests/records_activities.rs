//! `/api/v1/activities` against the real daemon: SPEC's shape, organizer and participants
//! linked to contacts and users by address, `meeting` found by the MeetingService masks at run
//! time (and again after a reload changes them), filters, ETag / If-Match, 422 and rights.

mod chat_support;
mod support;

use chat_support::{ANN, BOB, files};
use reqwest::Method;
use serde_json::json;
use support::records::{ROOT, admin_file, get, request};
use support::{Daemon, eventually, free_port};

const ZOOM: &str = "apiVersion: switchboard/v1\nkind: MeetingService\nmetadata: {name: zoom}\nspec:\n  title: Zoom\n  description: Zoom meetings\n  mask: '(?i)https?://(?:[a-z0-9-]+\\.)*zoom\\.us/j/\\d'\n";
const OWN: &str = "---\napiVersion: switchboard/v1\nkind: MeetingService\nmetadata: {name: own-meet}\nspec:\n  title: Our meetings\n  description: The company's own server\n  mask: 'https://meet\\.example\\.com/\\w'\n";

// REQ: OM-01
#[tokio::test(flavor = "multi_thread")]
async fn activities_link_people_and_find_meetings_by_the_masks_of_the_running_config() {
    let port = free_port();
    let mut config = files(port, "http://127.0.0.1:9/callback", "toAll");
    config.push(admin_file());
    config.push(("meetings.yaml", ZOOM.to_owned()));
    let mut daemon = Daemon::start(port, &config, &[]);
    daemon.wait_ready().await;
    let carol = request(
        &daemon,
        Method::POST,
        "/api/v1/contacts",
        ROOT,
        &[],
        Some((
            "application/json",
            json!({"name": "Carol", "emails": ["carol@customer.example"]}),
        )),
    )
    .await;
    let carol_id = carol.body["id"].clone();

    let created = request(&daemon, Method::POST, "/api/v1/activities", ANN, &[], Some(("application/json", json!({
        "kind": "meeting", "title": "Demo", "start": "2026-12-08T10:00:00Z", "end": "2026-12-08T11:00:00Z",
        "location": "https://meet.example.com/demo",
        "description": "Dial in: https://acme.zoom.us/j/123456?pwd=abc (backup)",
        "organizer": {"email": "Ann@Example.com"},
        "participants": [{"email": "carol@customer.example", "response": "accepted"},
                         {"email": "stranger@else.example"}]
    })))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let a = &created.body;
    assert_eq!(a["owner"], "ann", "the owner defaults to the caller");
    assert_eq!(
        a["organizer"],
        json!({"email": "ann@example.com", "user": "ann"})
    );
    assert_eq!(
        a["participants"],
        json!([
            {"email": "carol@customer.example", "contactId": carol_id, "response": "accepted"},
            {"email": "stranger@else.example", "response": "none"}
        ])
    );
    // The location's link is no known service yet; the description's Zoom link is.
    assert_eq!(
        a["meeting"],
        json!({"service": "zoom", "url": "https://acme.zoom.us/j/123456?pwd=abc"})
    );
    for key in [
        "id",
        "kind",
        "title",
        "description",
        "location",
        "start",
        "end",
        "allDay",
        "due",
        "status",
        "showInSchedule",
        "owner",
        "organizer",
        "participants",
        "meeting",
        "createdAt",
        "updatedAt",
    ] {
        assert!(a.get(key).is_some(), "missing {key}: {a}");
    }
    let path = format!("/api/v1/activities/{}", a["id"].as_str().unwrap());

    // A reload that adds a mask applies to the stored activity at once (location before
    // description).
    std::fs::write(
        daemon.config_dir().join("meetings.yaml"),
        format!("{ZOOM}{OWN}"),
    )
    .expect("write");
    eventually("the new mask applies", &daemon, || async {
        get(&daemon, &path, ANN).await.body["meeting"]["service"] == "own-meet"
    })
    .await;

    // ETag, If-Match and 422 as for every record.
    let etag = get(&daemon, &path, ANN).await.etag();
    let moved = request(
        &daemon,
        Method::PATCH,
        &path,
        ANN,
        &[("if-match", &etag)],
        Some((
            "application/merge-patch+json",
            json!({"location": null, "status": "confirmed"}),
        )),
    )
    .await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(moved.body["meeting"]["service"], "zoom");
    let stale = request(
        &daemon,
        Method::PATCH,
        &path,
        ANN,
        &[("if-match", &etag)],
        Some(("application/merge-patch+json", json!({"title": "x"}))),
    )
    .await;
    assert_eq!(stale.status, 412);
    for (patch, field) in [
        (json!({"end": "2026-12-08T09:00:00Z"}), "end"),
        (json!({"kind": "party"}), "kind"),
        (
            json!({"participants": [{"email": "nope"}]}),
            "participants[0].email",
        ),
        (json!({"owner": "nobody"}), "owner"),
        (json!({"meeting": null}), "meeting"),
    ] {
        let refused = request(
            &daemon,
            Method::PATCH,
            &path,
            ANN,
            &[],
            Some(("application/merge-patch+json", patch)),
        )
        .await;
        assert_eq!(refused.status, 422, "{field}: {}", refused.body);
        assert!(
            refused.body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{}",
            refused.body
        );
    }

    // A task, and the filters.
    let task = request(&daemon, Method::POST, "/api/v1/activities", ROOT, &[], Some(("application/json",
        json!({"kind": "task", "title": "Send the offer", "due": "2026-12-09T12:00:00Z", "owner": "bob"})))).await;
    assert_eq!(task.status, 201, "{}", task.body);
    let count = |body: &serde_json::Value| body["total"].as_i64().unwrap();
    assert_eq!(
        count(&get(&daemon, "/api/v1/activities", ROOT).await.body),
        2
    );
    assert_eq!(
        count(
            &get(&daemon, "/api/v1/activities?kind=task", ROOT)
                .await
                .body
        ),
        1
    );
    assert_eq!(
        count(
            &get(&daemon, "/api/v1/activities?owner=ann", ROOT)
                .await
                .body
        ),
        1
    );
    assert_eq!(
        count(
            &get(
                &daemon,
                "/api/v1/activities?from=2026-12-09T00:00:00Z",
                ROOT
            )
            .await
            .body
        ),
        1
    );
    assert_eq!(
        count(
            &get(&daemon, "/api/v1/activities?to=2026-12-09T00:00:00Z", ROOT)
                .await
                .body
        ),
        1
    );
    // Rights: ann sees hers, bob his; only an administrator gives an activity to someone else.
    assert_eq!(
        count(&get(&daemon, "/api/v1/activities", ANN).await.body),
        1
    );
    assert_eq!(
        get(
            &daemon,
            &format!("/api/v1/activities/{}", task.body["id"].as_str().unwrap()),
            ANN
        )
        .await
        .status,
        404
    );
    let given = request(
        &daemon,
        Method::POST,
        "/api/v1/activities",
        BOB,
        &[],
        Some((
            "application/json",
            json!({"kind": "task", "title": "x", "owner": "ann"}),
        )),
    )
    .await;
    assert_eq!(given.status, 403);
    assert_eq!(
        request(&daemon, Method::DELETE, &path, ANN, &[], None)
            .await
            .status,
        204
    );
    assert_eq!(get(&daemon, &path, ANN).await.status, 404);
}
