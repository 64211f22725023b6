//! IMAP IDLE (RFC 2177): a long-lived watch of a mailbox's INBOX that asks the engine for a
//! sync when the server announces new mail.
//!
//! The watch never loads mail itself: on `EXISTS` or `RECENT` it requests the mailbox's run,
//! which the scheduler coalesces with any run already due, so one code path (the checkpointed
//! folder sync) stores mail. It also requests one run each time IDLE is (re-)established,
//! because mail that arrived while no connection was idling is announced to nobody. IDLE is
//! ended and restarted every [`REIDLE`] (servers may drop an IDLE after 30 minutes), and a
//! failed connection is retried with jittered exponential backoff. A server without the
//! `IDLE` capability ends the watch: the mailbox is then polled at `mail.syncInterval`,
//! which the scheduler does in every case.
//!
//! This module must not write to the store or sleep outside a `select!` on the cancellation
//! token: shutdown and reload stop it at once.

use std::sync::Arc;
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{MailboxDatum, Response};
use rand::Rng;

use crate::connector::WatchContext;

use super::imap::{ImapError, Server};
use super::mailbox::MailboxConnector;

/// How long one IDLE command lasts before it is renewed (RFC 2177: at most 29 minutes).
pub const REIDLE: Duration = Duration::from_secs(25 * 60);
/// The first reconnect delay after a failure.
pub const RECONNECT_BASE: Duration = Duration::from_secs(5);
/// The longest reconnect delay.
pub const RECONNECT_MAX: Duration = Duration::from_secs(5 * 60);
/// How long SELECT, IDLE and DONE may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// The folder IDLE watches.
const INBOX: &str = "INBOX";

/// The reconnect delay after `failures` consecutive failures (1-based), before jitter.
pub fn reconnect_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    RECONNECT_BASE.saturating_mul(1 << exp).min(RECONNECT_MAX)
}

/// Why an IDLE session ended.
enum Ended {
    /// The server does not offer IDLE: polling alone serves the mailbox.
    Unsupported,
}

/// Watches `connector`'s INBOX until `ctx.cancel` fires or the server turns out not to offer
/// IDLE.
pub async fn watch(connector: Arc<MailboxConnector>, ctx: WatchContext) {
    let Some(server) = connector.server.clone() else {
        return;
    };
    let mut failures: u32 = 0;
    loop {
        let ended = tokio::select! {
            () = ctx.cancel.cancelled() => return,
            ended = idle_session(&connector, &server, &ctx, &mut failures) => ended,
        };
        match ended {
            Ok(Ended::Unsupported) => {
                tracing::info!(mailbox = %connector.name, "the IMAP server does not offer IDLE; new mail is polled at mail.syncInterval");
                return;
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let delay = reconnect_delay(failures).mul_f64(rand::rng().random_range(0.8..=1.2));
                tracing::warn!(mailbox = %connector.name, %error, retry_in_s = delay.as_secs(), "IDLE connection failed; reconnecting");
                tokio::select! {
                    () = ctx.cancel.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// One connection: log in, SELECT INBOX, then IDLE in [`REIDLE`] rounds until an error.
/// `failures` is reset once IDLE is established.
async fn idle_session(
    connector: &MailboxConnector,
    server: &Server,
    ctx: &WatchContext,
    failures: &mut u32,
) -> Result<Ended, ImapError> {
    // Opening the connection takes a turn; waiting in IDLE does not (see `sessions`).
    let Some(permit) = super::sessions::turn(&ctx.cancel).await else {
        return Err(ImapError::Cancelled);
    };
    let mut turn = Some(permit);
    let sync = ctx.sync_context();
    let credential = connector
        .credential(&sync, false)
        .await
        .map_err(|e| ImapError::Command {
            command: "login".into(),
            answer: e.to_string(),
        })?;
    let mut session = connector
        .login(server, &sync, &credential)
        .await
        .map_err(|e| ImapError::Command {
            command: "login".into(),
            answer: e.to_string(),
        })?;
    let offers_idle = step("CAPABILITY", session.capabilities())
        .await?
        .has_str("IDLE");
    if !offers_idle {
        let _ = tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
        return Ok(Ended::Unsupported);
    }
    step("SELECT", session.select(INBOX)).await?;
    let mut first = true;
    loop {
        let mut handle = session.idle();
        step("IDLE", handle.init()).await?;
        *failures = 0;
        drop(turn.take());
        if first {
            // Mail that arrived before this IDLE was announced to nobody.
            ctx.request.notify_one();
            first = false;
        }
        let renew = tokio::time::Instant::now() + REIDLE;
        loop {
            let left = renew.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            // The stop source must live as long as the wait: dropping it interrupts the wait.
            let (wait, _stop) = handle.wait_with_timeout(left);
            match wait.await.map_err(|e| ImapError::Command {
                command: "IDLE".into(),
                answer: super::imap::server_answer(&e),
            })? {
                IdleResponse::NewData(data) => {
                    if announces_mail(data.parsed()) {
                        tracing::debug!(mailbox = %connector.name, "IDLE: new mail announced");
                        ctx.request.notify_one();
                    }
                }
                IdleResponse::Timeout | IdleResponse::ManualInterrupt => break,
            }
        }
        session = step("DONE", handle.done()).await?;
    }
}

/// Whether an untagged response during IDLE announces new mail (`EXISTS` or `RECENT`).
fn announces_mail(response: &Response<'_>) -> bool {
    matches!(
        response,
        Response::MailboxData(MailboxDatum::Exists(_) | MailboxDatum::Recent(_))
    )
}

async fn step<T>(
    what: &str,
    future: impl Future<Output = Result<T, async_imap::error::Error>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(STEP_TIMEOUT, future).await {
        Err(_) => Err(ImapError::Timeout(what.to_owned())),
        Ok(result) => result.map_err(|e| ImapError::Command {
            command: what.to_owned(),
            answer: super::imap::server_answer(&e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_backoff_doubles_and_is_capped() {
        assert_eq!(reconnect_delay(1), RECONNECT_BASE);
        assert_eq!(reconnect_delay(2), RECONNECT_BASE * 2);
        assert_eq!(reconnect_delay(40), RECONNECT_MAX);
    }

    #[test]
    fn only_exists_and_recent_announce_mail() {
        assert!(announces_mail(&Response::MailboxData(
            MailboxDatum::Exists(3)
        )));
        assert!(announces_mail(&Response::MailboxData(
            MailboxDatum::Recent(1)
        )));
        assert!(!announces_mail(&Response::Expunge(2)));
    }

    /// A scripted IMAP server without IDLE: greeting, LOGIN, CAPABILITY, LOGOUT.
    async fn server_without_idle() -> u16 {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read).lines();
            write.write_all(b"* OK ready\r\n").await.expect("greeting");
            while let Ok(Some(line)) = lines.next_line().await {
                let mut words = line.split_whitespace();
                let tag = words.next().unwrap_or("*").to_owned();
                let reply = match words.next().map(str::to_ascii_uppercase).as_deref() {
                    Some("CAPABILITY") => format!("* CAPABILITY IMAP4rev1\r\n{tag} OK done\r\n"),
                    Some("LOGOUT") => format!("* BYE\r\n{tag} OK done\r\n"),
                    _ => format!("{tag} OK done\r\n"),
                };
                if write.write_all(reply.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        port
    }

    #[tokio::test]
    async fn without_the_idle_capability_the_watch_ends_and_leaves_the_mailbox_to_polling() {
        // REQ: MB-02 (INBOX watched with IDLE where offered, otherwise polled)
        let port = server_without_idle().await;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("role.yaml"),
            "apiVersion: switchboard/v1\nkind: Role\nmetadata:\n  name: probe\nspec:\n  title: Probe\n",
        )
        .expect("manifest");
        let set = crate::config::load(&[dir.path().to_path_buf()])
            .into_result()
            .expect("valid config");
        let connector = Arc::new(MailboxConnector {
            name: "box".into(),
            server: Some(Server {
                host: "127.0.0.1".into(),
                port,
                security: crate::config::kinds::Security::None,
                ca_file: None,
            }),
            login: "user".into(),
            own: Vec::new(),
            folders: None,
            period: Duration::from_secs(86_400),
            smtp: None,
            oauth: None,
            graph: None,
            idle: true,
        });
        let request = Arc::new(tokio::sync::Notify::new());
        let ctx = WatchContext {
            object: set.objects[0].clone(),
            secrets: Default::default(),
            cancel: tokio_util::sync::CancellationToken::new(),
            store: crate::store::StoreHandle::new(
                crate::store::Store::open_in_memory().expect("store"),
            ),
            metrics: crate::telemetry::Metrics::new(),
            clock: crate::clock::Clock::system(),
            request: Arc::clone(&request),
        };
        tokio::time::timeout(Duration::from_secs(30), watch(connector, ctx))
            .await
            .expect("the watch returns by itself when the server has no IDLE");
    }

    #[test]
    fn reidle_is_within_rfc_2177s_29_minutes() {
        assert!(REIDLE < Duration::from_secs(29 * 60));
    }
}
