//! Outbound HTTP clients: the one place they are made, so every client can speak HTTPS.
//!
//! reqwest is built on rustls without a bundled crypto provider (the default would bring
//! aws-lc-rs); ring is installed as the process's provider here, before the first client is
//! built. Provider APIs (Telegram, Twilio, Graph, token endpoints) and callbacks are `https://`
//! in production; the test fakes are plain HTTP on loopback, and `tests/https_client.rs` checks
//! the TLS path exists.

/// A client builder whose clients can speak HTTPS.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        // Err means another provider is already installed, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

/// The delay an HTTP answer asks for in `Retry-After`, in its delay-seconds form (the form the
/// providers we call send), if any.
pub fn retry_after(response: &reqwest::Response) -> Option<std::time::Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(std::time::Duration::from_secs)
}

/// A client with default settings.
pub fn http_client() -> reqwest::Client {
    http_client_builder()
        .build()
        .expect("an HTTP client with rustls (ring) and the OS roots builds")
}
