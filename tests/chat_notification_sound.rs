//! CH-08 through the real binary: `Settings.chat.notificationSound` (relative to the manifest's
//! directory) is served to authenticated operators with its content type, and 404 when unset.

mod chat_support;
mod support;

use chat_support::{ANN, files};
use support::{Daemon, eventually, free_port};

/// Not a real MP3: the daemon serves the file's bytes as they are.
const SOUND: &[u8] = b"ID3\x03\x00\x00\x00\x00\x00\x0fnot-really-audio";

#[tokio::test(flavor = "multi_thread")]
async fn the_notification_sound_is_served_to_operators_with_its_type_or_404_when_unset() {
    let port = free_port();
    let mut config = files(port, "http://127.0.0.1:9/callback", "toAll");
    let settings = config
        .iter_mut()
        .find(|(n, _)| *n == "settings.yaml")
        .expect("settings");
    let plain = settings.1.clone();
    settings.1 = plain.replace(
        "acceptTimeout: 5m}",
        "acceptTimeout: 5m, notificationSound: new-chat.mp3}",
    );
    assert_ne!(settings.1, plain);
    let mut daemon = Daemon::start(port, &config, &[]);
    std::fs::write(daemon.config_dir().join("new-chat.mp3"), SOUND).expect("sound");
    daemon.wait_ready().await;

    // REQ: CH-08 (served to operators, with the content type of the file)
    let response = daemon.get("/api/v1/notification-sound", Some(ANN)).await;
    assert_eq!(response.status(), 200, "{}", daemon.stderr());
    assert_eq!(response.headers()["content-type"], "audio/mpeg");
    assert_eq!(response.bytes().await.expect("body").as_ref(), SOUND);
    let response = daemon.get("/api/v1/notification-sound", None).await;
    assert_eq!(response.status(), 401, "operators only");

    // REQ: CH-08 (404 when no sound is configured)
    std::fs::write(daemon.config_dir().join("settings.yaml"), plain).expect("rewrite");
    daemon.signal("HUP");
    eventually("the sound to be unset", &daemon, || async {
        daemon
            .get("/api/v1/notification-sound", Some(ANN))
            .await
            .status()
            == 404
    })
    .await;
}
