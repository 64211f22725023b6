//! The contact-center demo, `examples/contact-center/run.sh`, runs its whole story in a test,
//! so it cannot rot: against this build of `switchboard` and of the `provider-fakes` example,
//! on a free port, a chat on each channel the example configures must arrive through the
//! provider's signed webhook, be offered, accepted, answered — the answer seen at the
//! provider — and completed, and the Messenger thread handed over by the bot must go back.

#[path = "support/demo.rs"]
mod demo;
mod support;

use std::time::Duration;

#[test]
fn the_contact_center_demo_tells_its_whole_story() {
    // REQ: CH-03, CH-04, CH-09, TG-02, WA-03, WA-05, FB-03, FB-04
    // The story takes seconds; a hung step must not hang the suite.
    let run = demo::run(
        "examples/contact-center/run.sh",
        support::free_port(),
        Duration::from_secs(120),
    );
    let (status, stdout, told) = (run.status, &run.stdout, &run.told);
    assert!(
        status.is_some_and(|s| s.success()),
        "the demo failed ({status:?}):\n{told}"
    );

    // Every channel's answer reached its provider, in the provider's own terms.
    for arrived in [
        "sendMessage chat_id=5551001: \"Hi Ann,",
        "Messages API to whatsapp:+351910000002: \"Hi Bruno,",
        "Send API to PSID-CHLOE: \"Hi Chloe,",
        "signed callback for visitor-17 from lina-park: \"Hi Dev,",
        "Send API to PSID-EMMA: \"Hallo Emma,",
    ] {
        assert!(stdout.contains(arrived), "missing {arrived:?}:\n{told}");
    }
    // The bot's thread: its messages are history, and the thread goes back after the chat.
    assert!(
        stdout.contains("pass_thread_control: thread PSID-EMMA to app 263902037430900"),
        "{told}"
    );
    assert_eq!(
        stdout.matches("→ none: the bot's thread").count(),
        2,
        "{told}"
    );
    assert_eq!(stdout.matches("/complete → completed").count(), 5, "{told}");
    assert!(
        stdout.contains("The story is complete: 5 chats on 5 channels"),
        "{told}"
    );
    // Secrets travel as credentials, never in what the demo prints.
    for secret in [
        "demo-facebook-app-secret",
        "demo-twilio-auth-token",
        "AAdemo-telegram",
    ] {
        assert!(!told.contains(secret), "{secret} was printed:\n{told}");
    }
}
