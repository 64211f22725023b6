//! A TCP fault proxy: sits on a free loopback port between the daemon and a real peer
//! (Dovecot, the SMTP server, an HTTP fake) and forwards both ways until told to misbehave.
//!
//! A fault is armed with a *trigger*, bytes the client sends (`FETCH`, the end of an SMTP
//! `DATA`, an HTTP request line): the first connection whose client stream contains them takes
//! the fault, once; every other connection, before and after, passes untouched. So a test says
//! exactly where in the conversation things go wrong, with no timing involved:
//!
//! - [`Fault::Delay`]: every chunk from the server after the trigger waits that long;
//! - [`Fault::CutAfter`]: the server's next N bytes are forwarded, then both sides are closed
//!   (the client sees end-of-file in the middle of an answer);
//! - [`Fault::Reset`]: the client's connection is reset (RST) at the trigger, which is not
//!   forwarded;
//! - [`Fault::Stall`]: the trigger is not forwarded and nothing more moves either way; the
//!   connection stays open until the proxy is dropped;
//! - [`Fault::Answer`]: the trigger is not forwarded; the client gets this raw answer (an HTTP
//!   response with `Connection: close`) in the server's place, and the connection closes —
//!   for an HTTP peer that should refuse one request, such as a DAV server without
//!   `sync-collection` (`405 Method Not Allowed` for that REPORT).
//!
//! [`FaultProxy::arm_every`] arms a fault that every triggering connection takes, not only
//! the first.
//!
//! [`FaultProxy::taken`] tells whether the armed fault fired, so a test waits on that condition
//! instead of sleeping.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What goes wrong on the connection that sends the trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every chunk from the server waits this long before it is forwarded.
    Delay(Duration),
    /// Forward this many more bytes from the server, then close both sides.
    CutAfter(usize),
    /// Reset the client's connection (RST) at once.
    Reset,
    /// Forward nothing more, either way, and keep the connection open.
    Stall,
    /// Answer the client with these bytes instead of the server, then close.
    Answer(&'static str),
}

/// An armed fault: what and when.
struct Armed {
    trigger: Vec<u8>,
    fault: Fault,
    /// Stays armed after it fires ([`FaultProxy::arm_every`]).
    every: bool,
}

struct Shared {
    armed: Mutex<Option<Armed>>,
    taken: AtomicUsize,
    connections: AtomicUsize,
    /// Everything every client sent, in arrival order (for tests that assert on requests).
    sent: Mutex<Vec<u8>>,
}

/// A running proxy; stops (and drops every connection) when dropped.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port that forwards to `127.0.0.1:target`.
    pub async fn start(target: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            armed: Mutex::new(None),
            taken: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            sent: Mutex::new(Vec::new()),
        });
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(accept(listener, target, Arc::clone(&shared), stopped));
        FaultProxy { port, shared, stop }
    }

    /// Everything the clients sent through the proxy so far (requests, headers and bodies),
    /// lossily as text.
    pub fn sent(&self) -> String {
        String::from_utf8_lossy(
            &self
                .shared
                .sent
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
        .into_owned()
    }

    /// The port the daemon should connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Arms `fault` for the first connection whose client sends `trigger` (replacing any fault
    /// armed and not yet taken).
    pub fn arm(&self, trigger: &[u8], fault: Fault) {
        *self
            .shared
            .armed
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Armed {
            trigger: trigger.to_vec(),
            fault,
            every: false,
        });
    }

    /// Arms `fault` for every connection that sends `trigger`, until [`FaultProxy::disarm`]:
    /// a peer that fails the same way on every attempt (retries included).
    pub fn arm_every(&self, trigger: &[u8], fault: Fault) {
        *self
            .shared
            .armed
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Armed {
            trigger: trigger.to_vec(),
            fault,
            every: true,
        });
    }

    /// Removes the armed fault, if any: the peer heals.
    pub fn disarm(&self) {
        *self
            .shared
            .armed
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// How many armed faults have fired so far.
    pub fn taken(&self) -> usize {
        self.shared.taken.load(Ordering::SeqCst)
    }

    /// How many connections the proxy has accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn accept(
    listener: TcpListener,
    target: u16,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let client = tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(_) => continue,
            },
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let shared = Arc::clone(&shared);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                return;
            };
            tokio::select! {
                _ = stopped.changed() => {}
                () = relay(client, server, shared) => {}
            }
        });
    }
}

/// What the client→server side tells the server→client side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Passing,
    Faulted(Fault),
}

async fn relay(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let (state, watched) = watch::channel(State::Passing);
    tokio::join!(
        upstream(client_read, server_write, &shared, state),
        downstream(server_read, client_write, watched),
    );
}

/// Client → server: forwards, watching for the armed trigger.
async fn upstream(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    shared: &Shared,
    state: watch::Sender<State>,
) {
    let mut window: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        shared
            .sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(chunk);
        if *state.borrow() == State::Passing {
            window.extend_from_slice(chunk);
            if let Some(fault) = take_if_triggered(shared, &mut window) {
                let _ = state.send(State::Faulted(fault));
                match fault {
                    // The trigger goes through; the server's answer is what suffers.
                    Fault::Delay(_) | Fault::CutAfter(_) => {}
                    // Not forwarded; the downstream side resets the connection (or answers
                    // in the server's place) once this half is dropped too.
                    Fault::Reset | Fault::Answer(_) => return,
                    // Not forwarded; the connection stays open until the proxy stops.
                    Fault::Stall => std::future::pending::<()>().await,
                }
            }
        }
        if to.write_all(chunk).await.is_err() {
            return;
        }
    }
}

/// Takes the armed fault when `window` (the client's bytes so far, trimmed) holds its trigger.
fn take_if_triggered(shared: &Shared, window: &mut Vec<u8>) -> Option<Fault> {
    let mut armed = shared.armed.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(Armed {
        trigger,
        fault,
        every,
    }) = armed.as_ref()
    else {
        window.clear();
        return None;
    };
    if window
        .windows(trigger.len())
        .any(|w| w == trigger.as_slice())
    {
        let fault = *fault;
        if !every {
            *armed = None;
        }
        shared.taken.fetch_add(1, Ordering::SeqCst);
        return Some(fault);
    }
    // Keep only what could begin a trigger split across reads.
    let keep = trigger.len().saturating_sub(1).min(window.len());
    window.drain(..window.len() - keep);
    None
}

/// Server → client: forwards, applying the fault once the upstream side saw the trigger.
async fn downstream(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut state: watch::Receiver<State>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut left_before_cut: Option<usize> = None;
    let mut watching = true;
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return;
                }
                Ok(n) => n,
            },
            changed = state.changed(), if watching => {
                if changed.is_err() {
                    // The upstream side ended; keep forwarding what the server still sends.
                    watching = false;
                    continue;
                }
                let now = *state.borrow_and_update();
                match now {
                    State::Faulted(Fault::Reset) => {
                        reset(to);
                        return;
                    }
                    State::Faulted(Fault::Stall) => {
                        std::future::pending::<()>().await;
                    }
                    State::Faulted(Fault::Answer(answer)) => {
                        let _ = to.write_all(answer.as_bytes()).await;
                        let _ = to.shutdown().await;
                        return;
                    }
                    State::Faulted(Fault::CutAfter(0)) => {
                        let _ = to.shutdown().await;
                        return;
                    }
                    State::Faulted(Fault::CutAfter(n)) => left_before_cut = Some(n),
                    _ => {}
                }
                continue;
            }
        };
        let mut chunk = &buf[..n];
        let now = *state.borrow();
        match now {
            State::Faulted(Fault::Delay(d)) => tokio::time::sleep(d).await,
            State::Faulted(Fault::Stall) => std::future::pending::<()>().await,
            State::Faulted(Fault::CutAfter(n)) if left_before_cut.is_none() => {
                left_before_cut = Some(n);
            }
            _ => {}
        }
        if let Some(left) = left_before_cut.as_mut() {
            let cut = chunk.len() > *left;
            chunk = &chunk[..chunk.len().min(*left)];
            *left -= chunk.len();
            if cut || *left == 0 {
                let _ = to.write_all(chunk).await;
                let _ = to.shutdown().await;
                // Dropping both halves closes the server side too.
                return;
            }
        }
        if to.write_all(chunk).await.is_err() {
            return;
        }
    }
}

/// Resets the client's connection: with a zero linger time, the close (once the upstream half
/// is dropped too) sends RST instead of FIN.
fn reset(to: OwnedWriteHalf) {
    let _ = to.as_ref().set_zero_linger();
    // Dropping the write half must not send a FIN first.
    to.forget();
}
