//! A real Dovecot IMAP server on loopback, one per test binary, for the mail tests.
//!
//! [`dovecot()`] starts it on first use: a standalone config (nothing from `/etc/dovecot`) in a
//! fresh directory, a throwaway CA and a `localhost`/`127.0.0.1` certificate made with the
//! `openssl` CLI, a plaintext+STARTTLS port and an IMAPS port on free loopback ports, users in a
//! passwd-file (re-read by Dovecot on change, so tests add their own users while it runs), and
//! Maildirs that tests fill by writing files straight into them (thousands of messages in well
//! under a second; Dovecot assigns UIDs on the next SELECT). It returns only after a real LOGIN
//! succeeded: Dovecot opens its port before its auth process answers.
//!
//! Cleanup: a `static` is never dropped, so the server cannot be stopped from a `Drop`. Instead a
//! tiny watchdog shell process polls the test binary's PID and, once it is gone, kills Dovecot
//! and removes the directory. Nothing outlives the test binary by more than a second.
//!
//! Needs Debian's `dovecot-imapd` and root (Dovecot's master starts as root and drops to
//! `dovenull` for logins and `nobody` for mail), as on CI. Recipes and pitfalls came from
//! the shared peers notes; this file is the project's own copy of what they found out.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The user that owns mail files (Dovecot's `mail_uid`).
const MAIL_OWNER: &str = "nobody:nogroup";

/// The running server.
pub struct Dovecot {
    /// All of its state.
    pub dir: PathBuf,
    /// Plaintext IMAP with STARTTLS offered.
    pub imap_port: u16,
    /// IMAP over implicit TLS.
    pub imaps_port: u16,
    /// The test CA's certificate: trust it through a provider's `caFile`.
    pub ca_file: PathBuf,
}

static DOVECOT: OnceLock<Dovecot> = OnceLock::new();

/// The test binary's Dovecot, started on first use.
pub fn dovecot() -> &'static Dovecot {
    DOVECOT.get_or_init(|| Dovecot::start(None))
}

/// A second Dovecot that also accepts `AUTHENTICATE XOAUTH2`, checking each bearer token at
/// `introspection_url` (RFC 7662, `POST token=…`; the token's `email` must be the login).
/// Passwords in the users file still work for PLAIN/LOGIN (the test's own probes).
pub fn dovecot_with_oauth2(introspection_url: &str) -> Dovecot {
    Dovecot::start(Some(introspection_url))
}

/// A free loopback port (bound then released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// Runs a command and panics with its output when it fails.
fn run(command: &mut Command) {
    let output = command.output().expect("run a helper command");
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Makes a throwaway CA and a leaf certificate for `localhost` and `127.0.0.1` in `dir`:
/// `ca.pem`, `key.pem`, `fullchain.pem`. The leaf is `CA:FALSE` with SANs, as rustls/webpki
/// insist (a plain self-signed `openssl req -x509` certificate is a CA and is refused).
pub fn make_certificates(dir: &Path) {
    std::fs::create_dir_all(dir).expect("tls dir");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509"])
        .args(ec)
        .args(["-days", "30", "-subj", "/CN=switchboard test CA"])
        .args(["-keyout", "ca.key", "-out", "ca.pem"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]));
    run(Command::new("openssl")
        .current_dir(dir)
        .arg("req")
        .args(ec)
        .args([
            "-subj",
            "/CN=localhost",
            "-keyout",
            "key.pem",
            "-out",
            "leaf.csr",
        ]));
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("leaf.ext");
    run(Command::new("openssl")
        .current_dir(dir)
        .args([
            "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        ])
        .args([
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "leaf.ext",
            "-out",
            "cert.pem",
        ]));
    let chain = std::fs::read_to_string(dir.join("cert.pem")).expect("cert")
        + &std::fs::read_to_string(dir.join("ca.pem")).expect("ca");
    std::fs::write(dir.join("fullchain.pem"), chain).expect("fullchain");
}

/// Kills `pid` and removes `dir` once this test binary has exited.
#[allow(
    clippy::zombie_processes,
    reason = "lives until the test binary exits; the watchdog reaps it"
)]
pub fn reap_after_exit(pid: u32, dir: &Path) {
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; kill {pid} 2>/dev/null; sleep 1; \
         kill -9 {pid} 2>/dev/null; rm -rf '{dir}'",
        me = std::process::id(),
        dir = dir.display()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the watchdog");
}

impl Dovecot {
    #[allow(
        clippy::zombie_processes,
        reason = "lives until the test binary exits; the watchdog reaps it"
    )]
    fn start(oauth2_introspection: Option<&str>) -> Dovecot {
        let dir = tempfile::Builder::new()
            .prefix("sb-dovecot-")
            .tempdir()
            .expect("tempdir")
            .keep();
        // dovenull (login) and nobody (mail) must traverse the directory: tempdir makes 0700.
        run(Command::new("chmod").arg("755").arg(&dir));
        for sub in ["run", "state", "home"] {
            std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
        }
        run(Command::new("chown").arg(MAIL_OWNER).arg(dir.join("home")));
        let tls = dir.join("tls");
        make_certificates(&tls);
        // The probe user that start() waits for (written before Dovecot reads the file).
        std::fs::write(dir.join("users"), "probe@example.test:{PLAIN}probe::::::\n")
            .expect("users");
        let (imap_port, imaps_port) = (free_port(), free_port());
        let d = dir.display();
        // Dovecot 2.3's oauth2 passdb after the passwd-file one: a token is not a password, so
        // passwd-file fails it (result_failure = continue) and the oauth2 passdb asks the
        // introspection endpoint.
        let (mechanisms, oauth2_passdb) = match oauth2_introspection {
            None => ("plain login", String::new()),
            Some(url) => {
                std::fs::write(
                    dir.join("oauth2.conf.ext"),
                    format!(
                        "introspection_mode = post\nintrospection_url = {url}\nusername_attribute = email\nactive_attribute = active\nactive_value = true\n"
                    ),
                )
                .expect("oauth2.conf.ext");
                (
                    "plain login xoauth2 oauthbearer",
                    format!(
                        "passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {d}/oauth2.conf.ext\n}}\n"
                    ),
                )
            }
        };
        let config = format!(
            r#"# written by tests/support/dovecot.rs: standalone, nothing from /etc/dovecot
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
instance_name = sbtest-{imap_port}
# LOGIN without TLS on loopback (the plaintext tests)
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
# the default 2 s delay would slow every wrong-password test
auth_failure_delay = 0
ssl = yes
ssl_cert = <{d}/tls/fullchain.pem
ssl_key = <{d}/tls/key.pem
ssl_dh = </usr/share/dovecot/dh.pem
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
{oauth2_passdb}userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
  default_fields = uid=nobody gid=nogroup home={d}/home/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \Sent
    auto = subscribe
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
# no anvil auth penalty (2 s, 4 s, ... per failed login from one IP): a mode-0 listener is not
# created, so the auth process cannot reach it and turns the penalty off
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"#
        );
        let conf = dir.join("dovecot.conf");
        std::fs::write(&conf, config).expect("dovecot.conf");
        // -F: stay in the foreground, so the PID we hold is the master's.
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dovecot (is dovecot-imapd installed?)");
        reap_after_exit(child.id(), &dir);
        let server = Dovecot {
            ca_file: tls.join("ca.pem"),
            dir,
            imap_port,
            imaps_port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if server.try_login("probe@example.test", "probe") {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "dovecot did not accept a LOGIN within 20 s; log:\n{}",
            std::fs::read_to_string(server.dir.join("dovecot.log")).unwrap_or_default()
        );
    }

    /// Adds a user and waits until Dovecot accepts its login: Dovecot re-reads a changed
    /// passwd-file, but checks it at most once a second.
    pub fn add_user(&self, user: &str, password: &str) {
        // Tests add users in parallel: `writeln!` on a File may split a line over several
        // write calls, and two threads' pieces interleaved into a corrupt line that Dovecot
        // never accepted. One lock, and the line written whole in one call.
        static USERS_FILE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        {
            let _guard = USERS_FILE.lock().unwrap_or_else(|e| e.into_inner());
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(self.dir.join("users"))
                .expect("users file");
            file.write_all(format!("{user}:{{PLAIN}}{password}::::::\n").as_bytes())
                .expect("append user");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.try_login(user, password) {
            assert!(
                Instant::now() < deadline,
                "dovecot never accepted user {user}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A plain LOGIN on the plaintext port; true when the server said OK.
    pub fn try_login(&self, user: &str, password: &str) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.imap_port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || !line.starts_with("* OK") {
            return false;
        }
        if write!(stream, "a LOGIN \"{user}\" \"{password}\"\r\n").is_err() {
            return false;
        }
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return false,
                Ok(_) if line.starts_with("a ") => {
                    let ok = line.starts_with("a OK");
                    let _ = write!(stream, "b LOGOUT\r\n");
                    return ok;
                }
                Ok(_) => {}
            }
        }
    }

    /// APPENDs `message` to `user`'s `folder` over a second IMAP connection, the way another
    /// client or a delivery agent would, so that sessions idling on the folder are told.
    pub fn append(&self, user: &str, password: &str, folder: &str, message: &str) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.imap_port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
        let mut line = String::new();
        let mut read_until = |prefix: &str, reader: &mut BufReader<TcpStream>| loop {
            line.clear();
            let n = reader.read_line(&mut line).expect("read a response line");
            assert!(
                n > 0,
                "dovecot closed the connection waiting for {prefix:?}"
            );
            if line.starts_with(prefix) {
                return line.clone();
            }
        };
        read_until("* OK", &mut reader);
        write!(stream, "a LOGIN \"{user}\" \"{password}\"\r\n").expect("login");
        let answer = read_until("a ", &mut reader);
        assert!(answer.starts_with("a OK"), "login refused: {answer}");
        write!(stream, "b APPEND \"{folder}\" {{{}}}\r\n", message.len()).expect("append");
        read_until("+", &mut reader);
        write!(stream, "{message}\r\n").expect("literal");
        let answer = read_until("b ", &mut reader);
        assert!(answer.starts_with("b OK"), "APPEND refused: {answer}");
        let _ = write!(stream, "c LOGOUT\r\n");
    }

    /// The Maildir of `user`'s `folder` (`INBOX`, or a name like `Archive/2024` with `/` as the
    /// hierarchy separator, stored Maildir++ style as `.Archive.2024`).
    pub fn maildir(&self, user: &str, folder: &str) -> PathBuf {
        let root = self.dir.join("home").join(user).join("Maildir");
        if folder.eq_ignore_ascii_case("INBOX") {
            root
        } else {
            root.join(format!(".{}", folder.replace('/', ".")))
        }
    }

    /// Writes `messages` (raw RFC 5322 text) into `user`'s `folder` as new mail. Files are named
    /// so that Dovecot assigns UIDs in the order given.
    pub fn load(&self, user: &str, folder: &str, messages: &[String]) {
        let dir = self.maildir(user, folder);
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).expect("maildir");
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_micros();
        for (i, text) in messages.iter().enumerate() {
            let name = format!("{stamp}.M{i:08}P{}.sbtest", std::process::id());
            std::fs::write(dir.join("tmp").join(&name), text).expect("write message");
            std::fs::rename(dir.join("tmp").join(&name), dir.join("new").join(&name))
                .expect("deliver message");
        }
        run(Command::new("chown")
            .arg("-R")
            .arg(MAIL_OWNER)
            .arg(self.dir.join("home").join(user)));
    }

    /// Like [`Dovecot::load`], with INTERNALDATE (the file's mtime, for Maildir) `days_ago`
    /// days in the past.
    pub fn load_received(&self, user: &str, folder: &str, messages: &[String], days_ago: u64) {
        let dir = self.maildir(user, folder).join("new");
        let before: std::collections::HashSet<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        self.load(user, folder, messages);
        let when = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            - days_ago * 86_400;
        for entry in std::fs::read_dir(&dir).expect("new") {
            let path = entry.expect("entry").path();
            if !before.contains(&path) {
                run(Command::new("touch")
                    .arg("-d")
                    .arg(format!("@{when}"))
                    .arg(&path));
            }
        }
    }

    /// Forgets every UID of `user`'s `folder`: its messages go back to `new/` and Dovecot's
    /// indexes and UID list are removed, so the next SELECT assigns a new UIDVALIDITY (the way a
    /// server restored from backup or migrated behaves).
    pub fn reset_uidvalidity(&self, user: &str, folder: &str) {
        let dir = self.maildir(user, folder);
        for entry in std::fs::read_dir(dir.join("cur")).expect("cur") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let base = name.split(":2,").next().expect("base name").to_owned();
            std::fs::rename(&path, dir.join("new").join(base)).expect("move back to new");
        }
        for entry in std::fs::read_dir(&dir).expect("folder") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            if name.starts_with("dovecot.index") || name == "dovecot-uidlist" {
                std::fs::remove_file(&path).expect("remove index");
            }
        }
        let root = self.maildir(user, "INBOX");
        for entry in std::fs::read_dir(&root).expect("root") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            if name.starts_with("dovecot.list.index") {
                std::fs::remove_file(&path).expect("remove list index");
            }
        }
    }
}

/// A plain-text test message.
pub fn message(from: &str, to: &str, subject: &str, message_id: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{message_id}>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        date = chrono::Utc::now().to_rfc2822()
    )
}

/// `n` plain-text messages from `sender{i}@example.org`, with Message-IDs `<{tag}-{i}@example.test>`.
pub fn messages(tag: &str, to: &str, n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| {
            message(
                &format!("Sender {i} <sender{i}@example.org>"),
                to,
                &format!("{tag} message {i}"),
                &format!("{tag}-{i}@example.test"),
                &format!("Body of {tag} message {i}."),
            )
        })
        .collect()
}
