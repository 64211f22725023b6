//! Outbound HTTPS works: Telegram, Twilio, Graph, OAuth token endpoints and callbacks are all
//! `https://` in production, while every fake in the suite is plain HTTP on loopback.

/// A client built the way the connectors build theirs can speak TLS: an `https://` request to
/// a closed local port fails to *connect*, not to *build* (which is what a client without TLS
/// support answers: "scheme is not http").
#[tokio::test]
async fn the_http_client_speaks_tls() {
    let client = switchboard::net::http_client_builder()
        .build()
        .expect("a client with rustls (ring) and the OS roots builds");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = client
        .get(format!("https://127.0.0.1:{port}/"))
        .send()
        .await
        .expect_err("nothing listens there");
    assert!(!err.is_builder(), "https is not supported: {err:?}");
    assert!(err.is_connect(), "{err:?}");
}
