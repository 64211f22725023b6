//! The listener's accept loop: hyper's HTTP/1 connections with the limits of `Settings.http`.
//!
//! `axum::serve` has no timeouts, so a client could hold a connection (and its buffers) for as
//! long as it liked. Here every connection is bounded:
//! - at most `maxConnections` are served at once: a connection beyond them is closed as soon
//!   as it is accepted, so a flood of idle sockets costs nothing and does not queue ahead of
//!   the clients that come after it;
//! - a request's line and headers must arrive within `headerReadTimeout` (counted from the
//!   connection's opening, or from the first byte of a later request) and fit `maxHeaderBytes`
//!   (hyper's read buffer is capped near it, so an unfinished huge header cannot grow it);
//! - a kept-alive connection waiting for its next request is closed after `idleTimeout`;
//! - a request body must arrive within `bodyReadTimeout` of the headers ([`Deadline`]; the
//!   handler sees [`BodyTimeout`] and answers 408);
//! - at shutdown, a connection with no request in a handler (idle, or a request still
//!   arriving) is dropped at once; one whose handler runs finishes that answer and closes.
//!
//! The open connections and those refused at the cap are counted in
//! `switchboard_http_connections` and `switchboard_http_connections_refused_total`.
//!
//! hyper answers some malformed requests itself (400, 414, 431) with an empty body; [`Watched`]
//! rewrites those answers, and only those, into the error JSON of the API.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::http::{Request, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use prometheus::{IntCounter, IntGauge};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;

use crate::config::kinds::HttpSettings;

/// hyper's smallest read buffer (`max_buf_size` panics below it).
const MIN_BUFFER: usize = 8 * 1024;

/// The limits of `Settings.http`, as the server applies them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time for a request's line and headers.
    pub header_read_timeout: Duration,
    /// Time for a request's body, from the end of its headers.
    pub body_read_timeout: Duration,
    /// Time a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// The largest request line plus headers, in bytes.
    pub max_header_bytes: usize,
}

impl From<&HttpSettings> for Limits {
    fn from(s: &HttpSettings) -> Limits {
        Limits {
            header_read_timeout: s.header_read_timeout.get(),
            body_read_timeout: s.body_read_timeout.get(),
            idle_timeout: s.idle_timeout.get(),
            max_connections: usize::try_from(s.max_connections.max(1)).unwrap_or(usize::MAX),
            max_header_bytes: usize::try_from(s.max_header_bytes).unwrap_or(usize::MAX),
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::from(&HttpSettings::default())
    }
}

/// The listener's own metrics: `switchboard_http_connections` (open now) and
/// `switchboard_http_connections_refused_total` (closed at once, at the cap).
#[derive(Clone)]
pub struct ConnectionMetrics {
    /// Connections held now.
    pub open: IntGauge,
    /// Connections refused at `maxConnections`.
    pub refused: IntCounter,
}

/// A connection's place under `maxConnections`, counted in the open-connections gauge while
/// it lives.
struct Slot {
    _permit: OwnedSemaphorePermit,
    open: IntGauge,
}

impl Slot {
    fn take(permit: OwnedSemaphorePermit, open: &IntGauge) -> Slot {
        open.inc();
        Slot {
            _permit: permit,
            open: open.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` fires; returns once every
/// connection has closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    metrics: ConnectionMetrics,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let limits = Arc::new(limits);
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // At the cap: closed at once, so a flood of idle sockets neither queues ahead of
            // real clients nor costs more than the moment it takes.
            tracing::debug!("a connection was refused: Settings.http.maxConnections are open");
            metrics.refused.inc();
            drop(stream);
            continue;
        };
        let slot = Slot::take(permit, &metrics.open);
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(
            stream,
            router.clone(),
            limits.clone(),
            shutdown.clone(),
            slot,
        ));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// What a connection is waiting for, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Phase {
    /// Requests in a handler or whose answer is still being sent.
    busy: usize,
    /// With `busy == 0`: whether a request has begun to arrive (or the connection is new).
    reading: bool,
    since: Instant,
}

type PhaseTx = Arc<watch::Sender<Phase>>;

async fn connection(
    stream: TcpStream,
    router: Router,
    limits: Arc<Limits>,
    shutdown: CancellationToken,
    _slot: Slot,
) {
    let (phase, watched_phase) = watch::channel(Phase {
        busy: 0,
        reading: true,
        since: Instant::now(),
    });
    let phase = Arc::new(phase);
    let io = TokioIo::new(Watched {
        inner: stream,
        phase: phase.clone(),
        out: Vec::new(),
    });
    let tower = TowerToHyperService::new(router);
    let body_timeout = limits.body_read_timeout;
    let service_phase = phase.clone();
    let stopping = shutdown.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let guard = BusyGuard::enter(service_phase.clone());
        let request = request.map(|body| Deadline::new(body, body_timeout, stopping.clone()));
        let answer = hyper::service::Service::call(&tower, request);
        async move {
            let response: Response<Body> = answer.await?;
            Ok::<_, std::convert::Infallible>(response.map(|inner| {
                Body::new(Guarded {
                    inner,
                    _guard: guard,
                })
            }))
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .half_close(false)
        .writev(false)
        // The timeouts are ours (they tell a slow head from an idle keep-alive).
        .header_read_timeout(None)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(MIN_BUFFER));
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let expiry = expire(watched_phase, limits.clone());
    tokio::pin!(expiry);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "an HTTP connection ended with an error");
            }
            return;
        }
        why = &mut expiry => {
            tracing::debug!(why, "an HTTP connection was closed");
            return;
        }
        () = shutdown.cancelled() => {}
    }
    if phase.borrow().busy == 0 {
        // Idle, or a request still arriving: nothing is lost by dropping it now.
        return;
    }
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = &mut expiry => {}
    }
}

/// Resolves when the connection has waited too long for a head or for its next request.
async fn expire(mut phase: watch::Receiver<Phase>, limits: Arc<Limits>) -> &'static str {
    loop {
        let now = *phase.borrow_and_update();
        if now.busy > 0 {
            if phase.changed().await.is_err() {
                return "connection gone";
            }
            continue;
        }
        let (limit, why) = if now.reading {
            (
                limits.header_read_timeout,
                "the request's headers did not arrive within Settings.http.headerReadTimeout",
            )
        } else {
            (
                limits.idle_timeout,
                "no request within Settings.http.idleTimeout",
            )
        };
        tokio::select! {
            () = tokio::time::sleep_until(now.since + limit) => return why,
            changed = phase.changed() => if changed.is_err() { return "connection gone" },
        }
    }
}

/// Counts a request as busy from its head until its answer has been sent (or dropped).
struct BusyGuard(PhaseTx);

impl BusyGuard {
    fn enter(phase: PhaseTx) -> BusyGuard {
        phase.send_modify(|p| p.busy += 1);
        BusyGuard(phase)
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.send_modify(|p| {
            p.busy = p.busy.saturating_sub(1);
            if p.busy == 0 {
                p.reading = false;
                p.since = Instant::now();
            }
        });
    }
}

/// A response body that keeps its request counted as busy until it is sent.
struct Guarded {
    inner: Body,
    _guard: BusyGuard,
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The error a request body gives when it did not arrive within `bodyReadTimeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive within Settings.http.bodyReadTimeout")
    }
}

impl std::error::Error for BodyTimeout {}

impl BodyTimeout {
    /// Whether `error` or one of its sources is a [`BodyTimeout`].
    pub fn caused(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut next = Some(error);
        while let Some(e) = next {
            if e.is::<BodyTimeout>() {
                return true;
            }
            next = e.source();
        }
        false
    }
}

/// A request body that fails with [`BodyTimeout`] once its time is up, or at once when the
/// daemon stops (a body still arriving then is an unfinished request).
pub struct Deadline<B> {
    inner: B,
    sleep: Pin<Box<Sleep>>,
    stopping: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<B> Deadline<B> {
    /// `inner`, which must have arrived whole within `limit` from now and before `shutdown`.
    pub fn new(inner: B, limit: Duration, shutdown: CancellationToken) -> Deadline<B> {
        Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep(limit)),
            stopping: Box::pin(shutdown.cancelled_owned()),
        }
    }
}

impl<B> HttpBody for Deadline<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.sleep.as_mut().poll(cx).is_ready() || self.stopping.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The TCP stream of one connection: marks the start of a request's arrival on its first byte,
/// and turns hyper's own bodiless error answers into the API's error JSON.
struct Watched {
    inner: TcpStream,
    phase: PhaseTx,
    /// A rewritten answer still to be written.
    out: Vec<u8>,
}

impl Watched {
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.out.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.out.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.phase.send_if_modified(|p| {
                let starts = p.busy == 0 && !p.reading;
                if starts {
                    p.reading = true;
                    p.since = Instant::now();
                }
                starts
            });
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        ready!(self.drain(cx))?;
        if let Some(answer) = json_for_bare_error(data) {
            self.out = answer;
            // Written from here on by `drain`, which flush and shutdown call first.
            let _ = self.drain(cx)?;
            return Poll::Ready(Ok(data.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        // One contiguous head per write, so `json_for_bare_error` sees it whole.
        false
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// When `data` is a whole bodiless answer with status 400, 414 or 431 (what hyper writes on a
/// request it could not parse), the same answer with the API's error JSON as its body.
fn json_for_bare_error(data: &[u8]) -> Option<Vec<u8>> {
    let status = data.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    let (code, message) = match status {
        b"400" => ("bad-request", "the request could not be parsed as HTTP/1.1"),
        b"414" => ("uri-too-long", "the request's URI is too long"),
        b"431" => (
            "header-too-large",
            "the request's line and headers are larger than Settings.http.maxHeaderBytes",
        ),
        _ => return None,
    };
    let end = find(data, b"\r\n\r\n")? + 4;
    if end != data.len() {
        return None;
    }
    // The head without its final empty line: every header line ends in CRLF.
    let head = &data[..end - 2];
    const EMPTY: &[u8] = b"\r\ncontent-length: 0\r\n";
    let at = find(&head.to_ascii_lowercase(), EMPTY)?;
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    let mut answer = Vec::with_capacity(head.len() + body.len() + 64);
    answer.extend_from_slice(&head[..at]);
    answer.extend_from_slice(
        format!(
            "\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        )
        .as_bytes(),
    );
    answer.extend_from_slice(&head[at + EMPTY.len()..]);
    answer.extend_from_slice(b"\r\n");
    answer.extend_from_slice(body.as_bytes());
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_bare_431_gets_the_error_json() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 18:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(json_for_bare_error(bare).expect("rewritten")).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(
            head.contains("\r\ncontent-type: application/json\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("\r\ncontent-length: {}", body.len())),
            "{head}"
        );
        assert!(
            head.ends_with("date: Mon, 07 Dec 2026 18:00:00 GMT\r\n") || head.contains("date:")
        );
        let json: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(json["error"]["code"], "header-too-large");
    }

    #[test]
    fn answers_with_a_body_or_another_status_are_left_alone() {
        assert_eq!(
            json_for_bare_error(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
            None
        );
        assert_eq!(
            json_for_bare_error(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}"),
            None
        );
        assert_eq!(
            json_for_bare_error(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nHTTP/1.1"),
            None,
            "a second answer behind it"
        );
        assert_eq!(
            json_for_bare_error(b"{\"error\": {\"code\": \"HTTP/1.1 400 \"}}"),
            None
        );
    }

    #[test]
    fn a_body_timeout_is_found_behind_its_wrappers() {
        let wrapped = axum::Error::new(BodyTimeout);
        assert!(BodyTimeout::caused(&wrapped));
        let other = axum::Error::new(std::io::Error::other("reset"));
        assert!(!BodyTimeout::caused(&other));
    }
}
