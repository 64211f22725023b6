//! The chat engine end to end below HTTP: a real state file, the writer, the timer task and a
//! paused tokio clock (no test sleeps in real time).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::channels::messenger::Received;
use super::*;
use crate::clock::Clock;
use crate::connector::EngineHandle;
use crate::store::Store;
use crate::store::StoreHandle;
use crate::store::chat::{ChatFilter, ChatState, OperatorStatus};
use crate::telemetry::Metrics;

const MINUTE: Duration = Duration::from_secs(60);

/// Settings, three operators, and queues/channels given by the test.
fn config(capacity: u32, extra: &str) -> String {
    format!(
        "apiVersion: switchboard/v1\nkind: Settings\nmetadata: {{name: default}}\nspec: {{siteUrl: 'http://127.0.0.1:1', chat: {{simultaneousChats: {capacity}, acceptTimeout: 5m}}}}\n---\n\
         apiVersion: switchboard/v1\nkind: Role\nmetadata: {{name: agents}}\nspec: {{title: Agents}}\n---\n\
         apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: ann}}\nspec: {{displayName: Ann, email: ann@example.com, roles: [agents]}}\n---\n\
         apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: bob}}\nspec: {{displayName: Bob, email: bob@example.com, roles: [agents]}}\n---\n\
         apiVersion: switchboard/v1\nkind: User\nmetadata: {{name: cid}}\nspec: {{displayName: Cid, email: cid@example.com}}\n---\n\
         {extra}"
    )
}

fn queue(name: &str, routing: &str, completion: Option<&str>, operators: &str) -> String {
    let completion = completion.map_or(String::new(), |c| format!(", completionTimeout: {c}"));
    format!(
        "apiVersion: switchboard/v1\nkind: ChatQueue\nmetadata: {{name: {name}}}\nspec: {{title: T, routing: {routing}{completion}, operators: {operators}}}\n---\n\
         apiVersion: switchboard/v1\nkind: ChatChannel\nmetadata: {{name: {name}-web}}\nspec: {{provider: api, title: Web, queue: {name}, language: en, inboundToken: {{file: token.txt}}}}\n---\n"
    )
}

struct Rig {
    dir: tempfile::TempDir,
    chat: ChatService,
    engine: EngineHandle,
    clock: Clock,
    events: broadcast::Receiver<Arc<ChatEvent>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Rig {
    async fn new(yaml: &str) -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config");
        std::fs::create_dir(&config).expect("config dir");
        std::fs::write(config.join("chat.yaml"), yaml).expect("write");
        std::fs::write(config.join("token.txt"), "inbound-token").expect("write");
        let set = crate::config::load(&[config])
            .into_result()
            .expect("valid config");
        let state = dir.path().join("state.db");
        let store = Store::open(&state).expect("store");
        let engine = EngineHandle::new(StoreHandle::new(store), Metrics::new());
        let secrets = crate::connector::resolve_all(&set);
        engine.publish(Arc::new(set), secrets, HashMap::new());
        let clock = Clock::tokio("2025-01-01T09:00:00Z".parse().expect("ts"));
        let (chat, cancel, tracker) = start(&dir, &engine, clock).await;
        let events = chat.subscribe();
        Rig {
            dir,
            chat,
            engine,
            clock,
            events,
            cancel,
            tracker,
        }
    }

    /// Stops the chat engine and starts a new one on the same state file (a daemon restart).
    async fn restart(&mut self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        let (chat, cancel, tracker) = start(&self.dir, &self.engine, self.clock).await;
        self.events = chat.subscribe();
        (self.chat, self.cancel, self.tracker) = (chat, cancel, tracker);
    }

    /// Applies a new config, as a reload does.
    fn reload(&self, yaml: &str) {
        let config = self.dir.path().join("config");
        std::fs::write(config.join("chat.yaml"), yaml).expect("write");
        let set = crate::config::load(&[config])
            .into_result()
            .expect("valid config");
        let secrets = crate::connector::resolve_all(&set);
        self.engine.publish(Arc::new(set), secrets, HashMap::new());
    }

    async fn message(&self, queue: &str, from: &str, id: &str) -> i64 {
        let (chat, _) = self
            .chat
            .inbound(Inbound {
                channel: format!("{queue}-web"),
                provider_id: id.into(),
                contact_id: from.into(),
                name: from.to_uppercase(),
                email: None,
                phone: None,
                text: format!("message {id}"),
            })
            .await
            .expect("stored");
        chat
    }

    async fn active(&self, users: &[&str]) {
        for user in users {
            self.chat
                .set_status(user, OperatorStatus::Active)
                .await
                .expect("status set");
        }
    }

    async fn chat(&self, id: i64) -> crate::store::chat::ChatRow {
        self.chat
            .store()
            .call(move |s| s.chat(id))
            .await
            .expect("read")
            .expect("exists")
    }

    async fn offered_to(&self, id: i64) -> Vec<String> {
        self.chat
            .store()
            .call(move |s| s.chat_offers(id))
            .await
            .expect("read")
            .into_iter()
            .map(|o| o.operator)
            .collect()
    }

    async fn status(&self, user: &str) -> OperatorStatus {
        let names = vec![user.to_owned()];
        self.chat
            .store()
            .call(move |s| s.chat_operators(&names))
            .await
            .expect("read")[0]
            .status
    }

    /// The events published so far: (name, recipients).
    fn drain(&mut self) -> Vec<(&'static str, Vec<String>)> {
        let mut seen = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            seen.push((event.kind.name(), event.recipients.clone()));
        }
        seen
    }

    /// Lets the timer task notice the paused clock's new time and fire what is due, by
    /// sleeping on tokio's clock (auto-advanced: instant in real time).
    async fn wait(&self, d: Duration) {
        tokio::time::sleep(d).await;
        // A command after the sleep queues behind whatever the timer task sent.
        self.chat.tick().await.expect("tick");
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn start(
    dir: &tempfile::TempDir,
    engine: &EngineHandle,
    clock: Clock,
) -> (ChatService, CancellationToken, TaskTracker) {
    let (cancel, tracker) = (CancellationToken::new(), TaskTracker::new());
    let chat = ChatService::start(
        &dir.path().join("state.db"),
        engine.clone(),
        clock,
        &tracker,
        cancel.clone(),
    )
    .await
    .expect("chat engine starts");
    (chat, cancel, tracker)
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(start_paused = true)]
async fn the_same_message_id_twice_stores_one_message_and_answers_the_same_chat() {
    let rig = Rig::new(&config(
        2,
        &queue("support", "toAll", None, "[{user: ann}]"),
    ))
    .await;
    let first = rig.message("support", "u1", "m1").await;
    let again = rig
        .chat
        .inbound(Inbound {
            channel: "support-web".into(),
            provider_id: "m1".into(),
            contact_id: "u1".into(),
            name: "U1".into(),
            email: None,
            phone: None,
            text: "message m1".into(),
        })
        .await
        .expect("stored");
    assert_eq!(again, (first, true));
    let second = rig.message("support", "u1", "m2").await;
    assert_eq!(
        second, first,
        "the contact's open chat takes the next message"
    );
    let messages = rig
        .chat
        .store()
        .call(move |s| s.chat_messages(&[first]))
        .await
        .expect("read");
    assert_eq!(messages.len(), 2);
    let text = rig.engine.metrics().render();
    assert!(
        text.contains(r#"switchboard_chat_messages_total{channel="support-web",direction="in"} 2"#),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn to_all_offers_every_active_operator_and_the_first_accept_wins() {
    // REQ: CH-03
    let mut rig = Rig::new(&config(
        2,
        &queue("support", "toAll", None, "[{role: agents}, {user: cid}]"),
    ))
    .await;
    rig.active(&["ann", "bob"]).await;
    let chat = rig.message("support", "u1", "m1").await;
    assert_eq!(
        rig.offered_to(chat).await,
        names(&["ann", "bob"]),
        "cid is inactive"
    );
    let events = rig.drain();
    assert!(
        events.contains(&("chat.offered", names(&["ann", "bob"]))),
        "{events:?}"
    );

    let taken = rig.chat.accept("bob", chat).await.expect("bob is first");
    assert_eq!(taken.state, ChatState::Active);
    assert_eq!(taken.operator.as_deref(), Some("bob"));
    let late = rig
        .chat
        .accept("ann", chat)
        .await
        .expect_err("ann is second");
    assert!(
        matches!(
            late,
            ChatError::Conflict {
                code: "chat-taken",
                ..
            }
        ),
        "{late:?}"
    );
    assert!(matches!(
        rig.chat.accept("cid", chat).await,
        Err(ChatError::Conflict { .. })
    ));
    assert!(rig.offered_to(chat).await.is_empty());
    assert!(
        rig.drain()
            .contains(&("chat.assigned", names(&["bob", "ann"])))
    );
    let text = rig.engine.metrics().render();
    assert!(
        text.contains(r#"switchboard_chats{queue="support",state="active"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"switchboard_chats{queue="support",state="offered"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(r#"switchboard_operators{queue="support",status="active"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"switchboard_chat_assignment_seconds_count{queue="support"} 1"#),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_chat_not_offered_to_an_operator_cannot_be_accepted_by_them() {
    // REQ: CH-03
    let rig = Rig::new(&config(
        2,
        &queue("support", "toAll", None, "[{user: ann}, {user: bob}]"),
    ))
    .await;
    rig.active(&["ann"]).await;
    let chat = rig.message("support", "u1", "m1").await;
    let refused = rig
        .chat
        .accept("bob", chat)
        .await
        .expect_err("bob is inactive");
    assert!(matches!(refused, ChatError::Forbidden(_)), "{refused:?}");
    assert!(matches!(
        rig.chat.accept("ann", 999).await,
        Err(ChatError::NotFound(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn least_busy_assigns_to_the_active_operator_with_the_fewest_chats() {
    // REQ: CH-04
    let rig = Rig::new(&config(
        3,
        &queue("sales", "leastBusy", None, "[{role: agents}]"),
    ))
    .await;
    rig.active(&["ann", "bob"]).await;
    let first = rig.message("sales", "u1", "m1").await;
    let [taker] = &rig.offered_to(first).await[..] else {
        panic!("one operator is assigned")
    };
    rig.chat.accept(taker, first).await.expect("accepted");
    let second = rig.message("sales", "u2", "m2").await;
    let other = if taker == "ann" { "bob" } else { "ann" };
    assert_eq!(rig.offered_to(second).await, names(&[other]));
    let third = rig.message("sales", "u3", "m3").await;
    assert_eq!(
        rig.offered_to(third).await.len(),
        1,
        "one operator per leastBusy chat"
    );
}

#[tokio::test(start_paused = true)]
async fn least_busy_tie_goes_to_longest_idle() {
    // REQ: CH-04
    let rig = Rig::new(&config(
        2,
        &queue("sales", "leastBusy", None, "[{user: ann}, {user: bob}]"),
    ))
    .await;
    rig.active(&["ann"]).await;
    let a = rig.message("sales", "u1", "m1").await;
    rig.chat
        .accept("ann", a)
        .await
        .expect("ann takes a chat first");
    rig.chat.complete("ann", a, false).await.expect("done");
    tokio::time::advance(MINUTE).await;
    rig.active(&["bob"]).await;
    let b = rig.message("sales", "u2", "m2").await;
    assert_eq!(
        rig.offered_to(b).await,
        names(&["bob"]),
        "never took one: longest idle"
    );
    rig.chat.accept("bob", b).await.expect("bob takes it");
    rig.chat.complete("bob", b, false).await.expect("done");
    // Both have no chat in work now; ann took hers longer ago.
    let c = rig.message("sales", "u3", "m3").await;
    assert_eq!(rig.offered_to(c).await, names(&["ann"]));
}

#[tokio::test(start_paused = true)]
async fn a_lapsed_assignment_moves_to_the_next_operator_and_sets_the_first_inactive() {
    // REQ: CH-04
    let mut rig = Rig::new(&config(
        2,
        &queue("sales", "leastBusy", None, "[{user: ann}, {user: bob}]"),
    ))
    .await;
    rig.active(&["ann"]).await;
    let chat = rig.message("sales", "u1", "m1").await;
    assert_eq!(rig.offered_to(chat).await, names(&["ann"]));
    rig.active(&["bob"]).await;
    rig.drain();

    rig.wait(4 * MINUTE).await;
    assert_eq!(rig.offered_to(chat).await, names(&["ann"]), "still in time");
    rig.wait(MINUTE + Duration::from_secs(1)).await;
    assert_eq!(
        rig.offered_to(chat).await,
        names(&["bob"]),
        "re-distributed"
    );
    assert_eq!(rig.status("ann").await, OperatorStatus::Inactive);
    let events = rig.drain();
    assert!(
        events.contains(&("operator.status", names(&["ann"]))),
        "{events:?}"
    );
    assert!(
        events.contains(&("chat.offered", names(&["bob"]))),
        "{events:?}"
    );
    let refused = rig.chat.accept("ann", chat).await.expect_err("too late");
    assert!(matches!(refused, ChatError::Forbidden(_)), "{refused:?}");
    rig.chat
        .accept("bob", chat)
        .await
        .expect("bob accepts in time");

    // An inactive operator gets nothing until active again.
    let next = rig.message("sales", "u2", "m2").await;
    assert_eq!(rig.offered_to(next).await, names(&["bob"]));
}

#[tokio::test(start_paused = true)]
async fn a_chat_with_no_available_operator_waits_and_goes_out_oldest_first() {
    // REQ: CH-04, CH-06
    let rig = Rig::new(&config(
        1,
        &queue("sales", "leastBusy", None, "[{user: ann}]"),
    ))
    .await;
    let early = rig.message("sales", "u1", "m1").await;
    assert!(
        rig.offered_to(early).await.is_empty(),
        "nobody is active: it waits"
    );
    rig.active(&["ann"]).await;
    assert_eq!(
        rig.offered_to(early).await,
        names(&["ann"]),
        "distributed once ann is active"
    );
    rig.chat.accept("ann", early).await.expect("accepted");
    let older = rig.message("sales", "u2", "m2").await;
    let newer = rig.message("sales", "u3", "m3").await;
    assert!(
        rig.offered_to(older).await.is_empty(),
        "ann is at her capacity of 1"
    );
    rig.chat.complete("ann", early, false).await.expect("done");
    assert_eq!(rig.offered_to(older).await, names(&["ann"]), "oldest first");
    assert!(rig.offered_to(newer).await.is_empty());
    assert_eq!(rig.chat(newer).await.state, ChatState::Offered);
}

#[tokio::test(start_paused = true)]
async fn capacity_is_one_per_operator_across_all_queues() {
    // REQ: CH-06, CH-02
    let yaml = config(
        1,
        &format!(
            "{}{}",
            queue("sales", "toAll", None, "[{user: ann}]"),
            queue("support", "toAll", None, "[{user: ann}]")
        ),
    );
    let rig = Rig::new(&yaml).await;
    rig.active(&["ann"]).await;
    let sales = rig.message("sales", "u1", "m1").await;
    rig.chat.accept("ann", sales).await.expect("accepted");
    let support = rig.message("support", "u2", "m2").await;
    assert!(
        rig.offered_to(support).await.is_empty(),
        "ann is full across queues"
    );
    rig.chat.complete("ann", sales, false).await.expect("done");
    assert_eq!(rig.offered_to(support).await, names(&["ann"]));
}

#[tokio::test(start_paused = true)]
async fn an_operator_at_capacity_cannot_accept_another_offer() {
    // REQ: CH-06
    let rig = Rig::new(&config(
        1,
        &queue("support", "toAll", None, "[{user: ann}]"),
    ))
    .await;
    rig.active(&["ann"]).await;
    let a = rig.message("support", "u1", "m1").await;
    let b = rig.message("support", "u2", "m2").await;
    assert_eq!(
        rig.offered_to(b).await,
        names(&["ann"]),
        "toAll offers do not hold capacity"
    );
    rig.chat.accept("ann", a).await.expect("accepted");
    let full = rig.chat.accept("ann", b).await.expect_err("at capacity");
    assert!(
        matches!(
            full,
            ChatError::Conflict {
                code: "at-capacity",
                ..
            }
        ),
        "{full:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn completion_timeout_counts_from_the_last_outgoing_message() {
    // REQ: CH-05
    let mut rig = Rig::new(&config(
        2,
        &queue("support", "toAll", Some("10m"), "[{user: ann}]"),
    ))
    .await;
    rig.active(&["ann"]).await;
    let chat = rig.message("support", "u1", "m1").await;
    rig.chat.accept("ann", chat).await.expect("accepted");
    rig.wait(30 * MINUTE).await;
    assert_eq!(
        rig.chat(chat).await.state,
        ChatState::Active,
        "no reply yet: no timer"
    );
    rig.chat.send("ann", chat, "hello").await.expect("sent");
    rig.wait(9 * MINUTE).await;
    rig.message("support", "u1", "m2").await;
    rig.chat
        .send("ann", chat, "anything else?")
        .await
        .expect("sent");
    rig.wait(9 * MINUTE).await;
    assert_eq!(
        rig.chat(chat).await.state,
        ChatState::Active,
        "restarted by the 2nd reply"
    );
    rig.drain();
    rig.wait(MINUTE).await;
    let done = rig.chat(chat).await;
    assert_eq!(done.state, ChatState::Completed);
    assert_eq!(
        done.completed_at,
        Some(done.last_out_at.expect("replied") + chrono::Duration::minutes(10))
    );
    assert!(rig.drain().contains(&("chat.completed", names(&["ann"]))));
}

#[tokio::test(start_paused = true)]
async fn a_client_message_after_completion_starts_a_new_chat_that_is_routed_again() {
    // REQ: CH-05
    let rig = Rig::new(&config(
        2,
        &queue("support", "toAll", None, "[{user: ann}]"),
    ))
    .await;
    rig.active(&["ann"]).await;
    let first = rig.message("support", "u1", "m1").await;
    rig.chat.accept("ann", first).await.expect("accepted");
    rig.chat.complete("ann", first, false).await.expect("done");
    let second = rig.message("support", "u1", "m2").await;
    assert_ne!(second, first);
    assert_eq!(rig.chat(second).await.state, ChatState::Offered);
    assert_eq!(rig.offered_to(second).await, names(&["ann"]));
    let again = rig
        .chat
        .complete("ann", first, false)
        .await
        .expect_err("done already");
    assert!(matches!(
        again,
        ChatError::Conflict {
            code: "chat-completed",
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn only_the_chats_operator_writes_and_completes_it() {
    // REQ: CH-01
    let rig = Rig::new(&config(
        2,
        &queue("support", "toAll", None, "[{user: ann}, {user: bob}]"),
    ))
    .await;
    rig.active(&["ann", "bob"]).await;
    let chat = rig.message("support", "u1", "m1").await;
    assert!(matches!(
        rig.chat.send("ann", chat, "hi").await,
        Err(ChatError::Conflict {
            code: "chat-not-accepted",
            ..
        })
    ));
    rig.chat.accept("ann", chat).await.expect("accepted");
    assert!(matches!(
        rig.chat.send("bob", chat, "hi").await,
        Err(ChatError::Forbidden(_))
    ));
    assert!(matches!(
        rig.chat.complete("bob", chat, false).await,
        Err(ChatError::Forbidden(_))
    ));
    rig.chat
        .complete("bob", chat, true)
        .await
        .expect("a supervisor may complete any chat");
    assert!(matches!(
        rig.chat.set_status("nobody", OperatorStatus::Active).await,
        Err(ChatError::Forbidden(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn accept_deadlines_survive_a_restart() {
    // REQ: CH-04
    let mut rig = Rig::new(&config(
        2,
        &queue("sales", "leastBusy", None, "[{user: ann}, {user: bob}]"),
    ))
    .await;
    rig.active(&["ann"]).await;
    let chat = rig.message("sales", "u1", "m1").await;
    rig.active(&["bob"]).await;
    rig.restart().await;
    rig.wait(6 * MINUTE).await;
    assert_eq!(rig.offered_to(chat).await, names(&["bob"]));
    assert_eq!(rig.status("ann").await, OperatorStatus::Inactive);
    let all = rig
        .chat
        .store()
        .call(|s| s.chats(&ChatFilter::default(), 0, 10))
        .await
        .expect("list");
    assert_eq!(all.1, 1);
}

#[tokio::test(start_paused = true)]
async fn a_reload_that_gives_an_operator_room_routes_the_waiting_chats_on_its_own() {
    // REQ: CH-06
    let rig = Rig::new(&config(
        1,
        &queue("sales", "leastBusy", None, "[{user: ann}]"),
    ))
    .await;
    rig.active(&["ann"]).await;
    let first = rig.message("sales", "u1", "m1").await;
    rig.chat.accept("ann", first).await.expect("accepted");
    let waiting = rig.message("sales", "u2", "m2").await;
    assert!(rig.offered_to(waiting).await.is_empty(), "ann is full");
    rig.reload(&config(
        2,
        &queue("sales", "leastBusy", None, "[{user: ann}]"),
    ));
    // No command is sent: the timer task's periodic tick picks the new config up.
    tokio::time::sleep(timers::RESYNC + Duration::from_secs(1)).await;
    assert_eq!(rig.offered_to(waiting).await, names(&["ann"]));
    let text = rig.engine.metrics().render();
    assert!(
        text.contains(r#"switchboard_operators{queue="sales",status="active"} 1"#),
        "{text}"
    );
}

/// A Messenger channel whose bot (app 555) is the primary receiver, on queue `support`; its
/// Graph API cannot be reached (port 1), so nothing leaves the test.
fn messenger_with_handover() -> String {
    "apiVersion: switchboard/v1\nkind: ChatChannel\nmetadata: {name: fb}\nspec: {provider: facebookMessenger, title: FB, queue: support, language: en, pageId: '1066', pageAccessToken: {file: token.txt}, appSecret: {file: token.txt}, verifyToken: {file: token.txt}, handover: {primaryReceiverAppId: '555'}, apiBaseUrl: 'http://127.0.0.1:1'}\n---\n".to_owned()
}

/// A Messenger client's message on channel `fb`.
fn psid_message(psid: &str, id: &str) -> Inbound {
    Inbound {
        channel: "fb".into(),
        provider_id: id.into(),
        contact_id: psid.into(),
        name: psid.into(),
        email: None,
        phone: None,
        text: format!("message {id}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_chat_on_a_passed_thread_hands_it_back_when_the_completion_timeout_ends_it() {
    // REQ: FB-03, CH-05
    let rig = Rig::new(&config(
        2,
        &format!(
            "{}{}",
            queue("support", "toAll", Some("10m"), "[{user: ann}]"),
            messenger_with_handover()
        ),
    ))
    .await;
    rig.active(&["ann"]).await;
    let owner = |psid: &str, ours: bool| Command::ThreadOwner {
        channel: "fb".into(),
        psid: psid.into(),
        ours,
        event: None,
    };
    let mut chats = Vec::new();
    for psid in ["P1", "P2"] {
        rig.chat
            .command(owner(psid, true))
            .await
            .expect("passed to us");
        let (chat, _) = rig
            .chat
            .inbound(psid_message(psid, &format!("{psid}-1")))
            .await
            .expect("stored");
        rig.chat.accept("ann", chat).await.expect("accepted");
        rig.chat.send("ann", chat, "hello").await.expect("sent");
        chats.push(chat);
    }
    // The bot takes P2's thread back before its chat ends: there is nothing to hand back.
    rig.chat.command(owner("P2", false)).await.expect("taken");

    rig.wait(10 * MINUTE).await;
    let mut handbacks = Vec::new();
    for &chat in &chats {
        assert_eq!(rig.chat(chat).await.state, ChatState::Completed);
        let handback = rig.chat.store().call(move |s| s.chat_handback(chat));
        handbacks.push(handback.await.expect("read"));
    }
    let queued = handbacks[0].as_ref().expect("P1's thread is handed back");
    assert_eq!(
        queued.state, "pending",
        "it waits for the undelivered reply"
    );
    assert_eq!(handbacks[1], None);
    let ours = rig
        .chat
        .store()
        .call(|s| s.messenger_thread_ours("fb", "P1"))
        .await
        .expect("read");
    assert!(
        !ours,
        "the thread is the bot's from the completion on: its messages are history"
    );
    // Meta redelivers the old pass that opened P1's chat (its key is the chat's first
    // message): the thread stays the bot's.
    rig.chat
        .command(Command::ThreadOwner {
            channel: "fb".into(),
            psid: "P1".into(),
            ours: true,
            event: Some("P1-1".into()),
        })
        .await
        .expect("a redelivery is answered");
    let ours = rig
        .chat
        .store()
        .call(|s| s.messenger_thread_ours("fb", "P1"))
        .await
        .expect("read");
    assert!(!ours, "a redelivered pass does not take the thread back");
}

#[tokio::test(start_paused = true)]
async fn a_message_racing_a_pass_is_sorted_on_the_ownership_the_pass_left() {
    // REQ: FB-03 (the writer, not the HTTP layer, reads the thread's owner)
    let rig = Rig::new(&config(
        2,
        &format!(
            "{}{}",
            queue("support", "toAll", Some("10m"), "[{user: ann}]"),
            messenger_with_handover()
        ),
    ))
    .await;
    let event = |event: Received| Command::Messenger {
        channel: "fb".into(),
        event,
    };
    let chat_of = |reply: Result<Reply, ChatError>| match reply.expect("answered") {
        Reply::Inbound { chat_id, .. } => chat_id,
        other => panic!("not an inbound reply: {other:?}"),
    };

    // Before the pass the thread is the bot's: a message is history.
    let before = chat_of(
        rig.chat
            .command(event(Received::Message(psid_message("P7", "m-0"))))
            .await,
    );
    assert_eq!(rig.chat(before).await.state, ChatState::Completed);

    // The pass and the next message arrive together (two webhook deliveries at once): both
    // are queued before either is sorted, and the message sees the pass.
    let (passed, message) = tokio::join!(
        rig.chat.command(event(Received::Passed {
            psid: "P7".into(),
            to: "999".into(),
            event_id: "pass-1".into(),
            metadata: Some("wants a human".into()),
        })),
        rig.chat
            .command(event(Received::Message(psid_message("P7", "m-1")))),
    );
    let opened = chat_of(passed);
    assert_eq!(
        chat_of(message),
        opened,
        "the message joins the chat the pass opened"
    );
    assert_ne!(opened, before);
    assert_eq!(rig.chat(opened).await.state, ChatState::Offered);
    let ours = rig
        .chat
        .store()
        .call(|s| s.messenger_thread_ours("fb", "P7"))
        .await
        .expect("read");
    assert!(ours);

    // Standby events stay history; the bot taking the thread back makes messages history.
    rig.chat
        .command(event(Received::Taken { psid: "P7".into() }))
        .await
        .expect("taken");
    let after = chat_of(
        rig.chat
            .command(event(Received::Message(psid_message("P7", "m-2"))))
            .await,
    );
    assert_ne!(
        after, opened,
        "a message in the bot's thread is not the operator chat's"
    );
}
