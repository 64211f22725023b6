//! The fault proxy of the test support (tests/support/faults.rs) against a tiny local server,
//! so the mail fault tests can trust it: it passes everything until its trigger, then cuts,
//! resets, stalls or delays only the connection that sent the trigger, once.

mod support;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use support::faults::{Fault, FaultProxy};

/// A server that answers every line it reads with 1,000 bytes of `a`.
async fn server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    if stream.write_all(&[b'a'; 1000]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Sends `line` and reads until 1,000 bytes came, the peer closed (`Ok` with fewer) or reset
/// (`Err`); `None` when nothing came within `limit` (a generous bound for "stalled").
async fn ask(
    stream: &mut TcpStream,
    line: &[u8],
    limit: Duration,
) -> Option<std::io::Result<usize>> {
    stream.write_all(line).await.ok()?;
    let mut got = 0;
    let mut buf = [0u8; 1024];
    let read = async {
        while got < 1000 {
            match stream.read(&mut buf).await {
                Ok(0) => return Ok(got),
                Ok(n) => got += n,
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    };
    tokio::time::timeout(limit, read).await.ok()
}

async fn connect(proxy: &FaultProxy) -> TcpStream {
    TcpStream::connect(("127.0.0.1", proxy.port()))
        .await
        .expect("connect to the proxy")
}

#[tokio::test]
async fn the_proxy_faults_only_the_connection_that_sends_the_trigger_once() {
    let proxy = FaultProxy::start(server().await).await;
    let long = Duration::from_secs(10);

    // Cut: 300 bytes of the answer to the trigger, then end-of-file.
    proxy.arm(b"FETCH", Fault::CutAfter(300));
    let mut a = connect(&proxy).await;
    assert_eq!(
        ask(&mut a, b"LOGIN\r\n", long)
            .await
            .expect("answer")
            .expect("ok"),
        1000
    );
    assert_eq!(
        ask(&mut a, b"1 FETCH\r\n", long)
            .await
            .expect("answer")
            .expect("ok"),
        300
    );
    assert_eq!(proxy.taken(), 1);
    // Taken once: the next connection passes, trigger and all.
    let mut b = connect(&proxy).await;
    assert_eq!(
        ask(&mut b, b"2 FETCH\r\n", long)
            .await
            .expect("answer")
            .expect("ok"),
        1000
    );

    // Reset: the client's read fails with a reset, not end-of-file.
    proxy.arm(b"DATA", Fault::Reset);
    let mut c = connect(&proxy).await;
    let reset = ask(&mut c, b"DATA\r\n", long)
        .await
        .expect("an answer or an error");
    assert_eq!(
        reset.expect_err("reset").kind(),
        std::io::ErrorKind::ConnectionReset
    );

    // Stall: nothing comes back, and the connection stays open.
    proxy.arm(b"DATA", Fault::Stall);
    let mut d = connect(&proxy).await;
    assert!(
        ask(&mut d, b"DATA\r\n", Duration::from_millis(500))
            .await
            .is_none()
    );
    assert_eq!(proxy.taken(), 3);

    // Delay: the answer still comes, whole.
    proxy.arm(b"SLOW", Fault::Delay(Duration::from_millis(50)));
    let mut e = connect(&proxy).await;
    assert_eq!(
        ask(&mut e, b"SLOW\r\n", long)
            .await
            .expect("answer")
            .expect("ok"),
        1000
    );
    assert_eq!(proxy.connections(), 5);
}
