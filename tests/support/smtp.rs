//! A real SMTP server with AUTH on loopback (aiosmtpd, Debian's `python3-aiosmtpd`), one per
//! test binary, for the sending tests.
//!
//! [`smtp()`] starts `tests/support/smtp_sink.py` on first use with the test Dovecot's
//! certificate (one test CA for both), a plaintext+STARTTLS port and an implicit-TLS port, and returns once it says it
//! is up. Accepted mail lands in a Maildir the tests read ([`Smtp::received`]). Recipients named
//! `tempfail@…` get a 451 and `reject@…` a 550, for the outbox tests. Like Dovecot, it is
//! stopped by a watchdog once the test binary exits (a `static` is never dropped).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::dovecot::{dovecot, reap_after_exit};

/// The test SMTP user and password.
pub const SMTP_USER: &str = "sender@example.test";
/// Its password.
pub const SMTP_PASSWORD: &str = "smtp-pa55";

/// The running sink.
pub struct Smtp {
    /// State directory.
    pub dir: PathBuf,
    /// Plain SMTP with STARTTLS.
    pub port: u16,
    /// Implicit TLS.
    pub tls_port: u16,
    /// The CA to trust.
    pub ca_file: PathBuf,
}

static SMTP: OnceLock<Smtp> = OnceLock::new();

/// The test binary's SMTP sink, started on first use.
pub fn smtp() -> &'static Smtp {
    SMTP.get_or_init(Smtp::start)
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

impl Smtp {
    #[allow(
        clippy::zombie_processes,
        reason = "lives until the test binary exits; the watchdog reaps it"
    )]
    fn start() -> Smtp {
        let dir = tempfile::Builder::new()
            .prefix("sb-smtp-")
            .tempdir()
            .expect("tempdir")
            .keep();
        // Dovecot's certificate: one test CA, so one provider `caFile` trusts IMAP and SMTP.
        let tls = dovecot().dir.join("tls");
        let (port, tls_port) = (free_port(), free_port());
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .arg(tls_port.to_string())
            .arg(dir.join("maildir"))
            .arg(tls.join("fullchain.pem"))
            .arg(tls.join("key.pem"))
            .arg(format!("{SMTP_USER}:{SMTP_PASSWORD}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the SMTP sink (is python3-aiosmtpd installed?)");
        reap_after_exit(child.id(), &dir);
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the sink's first line");
        assert!(
            line.starts_with("smtp sink up"),
            "the SMTP sink did not start: {line:?}"
        );
        Smtp {
            ca_file: tls.join("ca.pem"),
            dir,
            port,
            tls_port,
        }
    }

    /// Every message received so far, raw (with the X-Envelope-* headers first).
    pub fn received(&self) -> Vec<String> {
        let new = self.dir.join("maildir").join("new");
        let mut messages: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(new)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let modified = e.metadata().ok()?.modified().ok()?;
                        Some((modified, std::fs::read_to_string(e.path()).ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        messages.sort();
        messages.into_iter().map(|(_, m)| m).collect()
    }
}
