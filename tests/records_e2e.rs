//! One person, three ways in: they write on two `api` chat channels (the same address in
//! `from.email`, in another letter case on the second) and send a letter that the real
//! Dovecot serves. The real daemon keeps them as ONE contact, with both chat identities and
//! the address, and `/emails`' `contactIds` and `/chats`' `contact.id` name that contact.

mod chat_support;
mod support;

use chat_support::{ANN, BOB, INBOUND, SUE, files};
use reqwest::Method;
use serde_json::json;
use sha2::Digest;
use support::dovecot::{dovecot, message};
use support::records::{ROOT, admin_file, chat_message, get, request};
use support::{Daemon, eventually, free_port};

const PASSWORD: &str = "records-pa55";
const DESK: &str = "desk@records.example.test";
const DORA: &str = "dora-records-token";

// REQ: MB-01 (a letter links to its sender's contact and, by domain, its account)
#[tokio::test(flavor = "multi_thread")]
async fn a_person_on_two_chat_channels_and_in_mail_is_one_contact() {
    let server = dovecot();
    server.add_user(DESK, PASSWORD);
    server.load(
        DESK,
        "INBOX",
        &[message(
            "\"Pat Doe\" <Pat@Customer.example>",
            DESK,
            "A question",
            "question-1@customer.example",
            "Hello from Pat.",
        )],
    );
    let port = free_port();
    let mut config = files(port, "http://127.0.0.1:9/callback", "toAll");
    config.push(admin_file());
    // dora reads the desk's letters and takes no chats.
    config.push((
        "dora.yaml",
        format!(
            "apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: dora}}\nspec: {{displayName: Dora, email: dora@example.com, apiTokenSha256: [{}]}}\n",
            hex::encode(sha2::Sha256::digest(DORA.as_bytes()))
        ),
    ));
    config.push((
        "mail.yaml",
        format!(
            "apiVersion: switchboard/v1\nkind: MailProvider\nmetadata: {{name: dovecot}}\nspec:\n  type: imap\n  title: Test Dovecot\n  domains: [records.example.test]\n  \
             imap: {{host: 127.0.0.1, port: {}, security: none}}\n  smtp: {{host: 127.0.0.1, port: 25, security: none}}\n---\n\
             apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: desk}}\nspec:\n  address: {DESK}\n  owner: root\n  password: {{env: SB_MAIL_PASSWORD}}\n  access: [{{user: dora, readEmails: true}}]\n",
            server.imap_port
        ),
    ));
    let mut daemon = Daemon::start(port, &config, &[("SB_MAIL_PASSWORD", PASSWORD)]);
    daemon.wait_ready().await;

    // The letter comes first, so the name it gives is the first seen.
    eventually("the letter is loaded", &daemon, || async {
        get(&daemon, "/api/v1/emails", ROOT).await.body["total"] == 1
    })
    .await;
    // The person writes on the web site (queue support) and in the shop (queue sales).
    let web_chat = chat_message(
        &daemon,
        "web",
        INBOUND,
        "w-1",
        json!({"id": "pat-web", "name": "Pat", "email": "pat@customer.example"}),
    )
    .await;
    let shop_chat = chat_message(
        &daemon,
        "shop",
        INBOUND,
        "s-1",
        json!({"id": "pat-shop", "name": "Pat D.", "email": "PAT@customer.example",
               "phone": "+1 415 555 0199"}),
    )
    .await;
    assert_ne!(
        web_chat, shop_chat,
        "conversations on two channels stay apart"
    );
    // The company arrives later: its domain links the contact (MB-01).
    let account = request(
        &daemon,
        Method::POST,
        "/api/v1/accounts",
        ROOT,
        &[],
        Some((
            "application/json",
            json!({"name": "Customer Co", "domains": ["customer.example"]}),
        )),
    )
    .await;
    assert_eq!(account.status, 201, "{}", account.body);

    let contacts = get(&daemon, "/api/v1/contacts", ROOT).await.body;
    assert_eq!(contacts["total"], 1, "one person: {contacts}");
    let contact = &contacts["items"][0];
    let id = contact["id"].as_str().expect("id");
    assert_eq!(contact["name"], "Pat Doe", "the first name seen stays");
    assert_eq!(contact["emails"], json!(["pat@customer.example"]));
    assert_eq!(contact["phones"], json!(["+14155550199"]));
    assert_eq!(
        contact["identities"],
        json!([
            {"channel": "web", "externalId": "pat-web"},
            {"channel": "shop", "externalId": "pat-shop"}
        ])
    );
    assert_eq!(
        contact["account"],
        json!({"id": account.body["id"], "name": "Customer Co"})
    );

    let emails = get(&daemon, "/api/v1/emails", ROOT).await.body;
    assert_eq!(emails["items"][0]["contactIds"], json!([id]));
    // bob operates both queues, so he sees both chats and the contact.
    let chats = get(&daemon, "/api/v1/chats", BOB).await.body;
    let chats = chats["items"].as_array().expect("items");
    assert_eq!(chats.len(), 2);
    for chat in chats {
        assert_eq!(chat["contact"]["id"], id, "{chat}");
        assert_eq!(chat["contact"]["name"], "Pat Doe");
    }
    // Who sees the contact: the operators of either chat's queue (bob; ann through the web
    // chat), a supervisor of every chat (sue) and a reader of the letter (dora).
    for token in [BOB, ANN, SUE, DORA] {
        let seen = get(&daemon, &format!("/api/v1/contacts/{id}"), token).await;
        assert_eq!(seen.status, 200, "{token}: {}", seen.body);
        assert_eq!(
            get(&daemon, "/api/v1/contacts", token).await.body["total"],
            1
        );
    }
}
