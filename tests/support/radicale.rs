//! A real Radicale CardDAV/CalDAV server on loopback, one per test binary, for the DAV sync
//! tests.
//!
//! [`radicale()`] starts it on first use: its own config file (nothing from `/etc/radicale`,
//! whose Debian default asks for `remote_user` auth and a snakeoil certificate) in a fresh
//! directory, htpasswd auth with plain passwords in a file Radicale re-reads per request (so
//! tests add their own users while it runs), no failed-login delay, and an info-level log that
//! names every request with its user (`Successful login: 'USER'`): tests count one user's
//! requests with [`Radicale::requests_by`]. It returns once a real authenticated PROPFIND is
//! answered, not merely once the port is open.
//!
//! Cleanup as for Dovecot: a watchdog shell process kills Radicale and removes the directory
//! once the test binary has exited ([`super::dovecot::reap_after_exit`]).
//!
//! Needs Debian's `radicale` (3.1.x; `tests/run.sh` installs it). Its `PROPFIND Depth: 1`
//! grows with the square of a collection's size (about 1.3 s at 2,000 cards), and a `PUT` per
//! card grows with it too (400 cards took 16 s, the next 400 49 s, on 3.1.8 and PyPI's 3.9
//! alike), so the sync lists with `sync-collection` and the 2,000-card crash test seeds with
//! one `PUT` of the whole address book ([`Radicale::user_with_cards`]: about 20 s, plus 10 s
//! for Radicale's first parse, on a busy 2-core machine) — well under a minute, so the suite
//! keeps Debian's package and needs no PyPI. `benches/dav_sync.sh` uses PyPI's 3.x.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A manifest file for the test daemon: `DavAccount/home` (owned by `root`, the password from
/// the env variable `SB_DAV_PASSWORD`) at `base` (Radicale, or a proxy in front of it) logging
/// in as `user`, and a two-way `ContactSync/book` over it with `extra` spec lines (each
/// indented two spaces, ending in a newline).
pub fn contact_sync_manifest(base: &str, user: &str, extra: &str) -> (&'static str, String) {
    (
        "dav.yaml",
        format!(
            "apiVersion: switchboard/v1\nkind: DavAccount\nmetadata: {{name: home}}\nspec:\n  user: root\n  url: {base}/\n  username: {user}\n  password: {{env: SB_DAV_PASSWORD}}\n---\n\
             apiVersion: switchboard/v1\nkind: ContactSync\nmetadata: {{name: book}}\nspec:\n  account: home\n  import: {{enabled: true}}\n  export: {{enabled: true}}\n{extra}",
        ),
    )
}

/// The running server.
pub struct Radicale {
    /// All of its state: `config`, `users`, `collections/` (removed when the test binary exits).
    pub dir: PathBuf,
    /// Its log: `$TMPDIR/sb-radicale-<test binary>.log`, outside `dir` so it outlives the run
    /// (the last run of each test binary keeps its log, to read after a failure).
    pub log_path: PathBuf,
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
}

static RADICALE: OnceLock<Radicale> = OnceLock::new();

/// The test binary's Radicale, started on first use.
pub fn radicale() -> &'static Radicale {
    RADICALE.get_or_init(Radicale::start)
}

impl Radicale {
    #[allow(
        clippy::zombie_processes,
        reason = "lives until the test binary exits; the watchdog reaps it"
    )]
    fn start() -> Radicale {
        let dir = tempfile::Builder::new()
            .prefix("sb-radicale-")
            .tempdir()
            .expect("tempdir")
            .keep();
        std::fs::create_dir_all(dir.join("collections")).expect("collections dir");
        std::fs::write(dir.join("users"), "probe:probe\n").expect("users");
        let port = super::free_port();
        let d = dir.display();
        let config = format!(
            "# written by tests/support/radicale.rs: nothing from /etc/radicale\n\
             [server]\nhosts = 127.0.0.1:{port}\n\
             [auth]\ntype = htpasswd\nhtpasswd_filename = {d}/users\nhtpasswd_encryption = plain\n\
             # the default 1 s per failed login would slow the wrong-password tests\ndelay = 0\n\
             [rights]\ntype = owner_only\n\
             [storage]\nfilesystem_folder = {d}/collections\n\
             [logging]\nlevel = info\nmask_passwords = True\n\
             [web]\ntype = none\n"
        );
        std::fs::write(dir.join("config"), config).expect("config");
        let binary = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            // `dav_faults-8323edd3d7df25f2`: the name without cargo's hash, so a rebuild
            // overwrites the same file
            .map(|s| {
                s.rsplit_once('-')
                    .map_or(s.clone(), |(name, _)| name.to_owned())
            })
            .unwrap_or_else(|| "tests".into());
        let log_path = std::env::temp_dir().join(format!("sb-radicale-{binary}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new("radicale")
            .arg("--config")
            .arg(dir.join("config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start radicale (is Debian's `radicale` installed? tests/run.sh installs it)");
        super::dovecot::reap_after_exit(child.id(), &dir);
        let server = Radicale {
            dir,
            log_path,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if server.probe() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "radicale did not answer within 20 s; log:\n{}",
            server.log()
        );
    }

    /// An authenticated `PROPFIND /probe/` answered 207.
    fn probe(&self) -> bool {
        let status = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-u",
                "probe:probe",
            ])
            .args(["-X", "PROPFIND", "-H", "Depth: 0"])
            .arg(format!("{}/probe/", self.base()))
            .output();
        status.is_ok_and(|o| o.stdout == b"207")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything Radicale logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// How many requests `user` made so far (each authenticated request logs one login).
    pub fn requests_by(&self, user: &str) -> usize {
        let needle = format!("Successful login: '{user}'");
        self.log().lines().filter(|l| l.contains(&needle)).count()
    }

    /// Adds a user (one line written whole: tests add users in parallel).
    pub fn add_user(&self, user: &str, password: &str) {
        static USERS_FILE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = USERS_FILE.lock().unwrap_or_else(|e| e.into_inner());
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("users"))
            .expect("users file");
        file.write_all(format!("{user}:{password}\n").as_bytes())
            .expect("append user");
    }

    /// A fresh user with an address book `contacts` (display name `Contacts`); returns its
    /// collection URL.
    pub async fn user_with_addressbook(&self, user: &str, password: &str) -> String {
        self.add_user(user, password);
        let url = format!("{}/{user}/contacts/", self.base());
        let body = "<?xml version=\"1.0\"?><mkcol xmlns=\"DAV:\" xmlns:CR=\"urn:ietf:params:xml:ns:carddav\"><set><prop><resourcetype><collection/><CR:addressbook/></resourcetype><displayname>Contacts</displayname></prop></set></mkcol>";
        let response = self
            .request(user, password, "MKCOL", &url, &[], Some(body.to_owned()))
            .await;
        assert_eq!(response.0, 201, "MKCOL {url}: {}", response.2);
        url
    }

    /// A fresh user with two calendars: `work` (display name `Work`, events only) and
    /// `tasks` (`Tasks`, tasks only); returns their collection URLs.
    pub async fn user_with_calendars(&self, user: &str, password: &str) -> (String, String) {
        self.add_user(user, password);
        let mut urls = Vec::new();
        for (path, name, comp) in [("work", "Work", "VEVENT"), ("tasks", "Tasks", "VTODO")] {
            let url = format!("{}/{user}/{path}/", self.base());
            let body = format!(
                "<?xml version=\"1.0\"?><C:mkcalendar xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\"><D:set><D:prop><D:displayname>{name}</D:displayname><C:supported-calendar-component-set><C:comp name=\"{comp}\"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"
            );
            let response = self
                .request(user, password, "MKCALENDAR", &url, &[], Some(body))
                .await;
            assert_eq!(response.0, 201, "MKCALENDAR {url}: {}", response.2);
            urls.push(url);
        }
        (urls.remove(0), urls.remove(0))
    }

    /// PUTs an iCalendar object as `user` at `url`; returns its ETag.
    pub async fn put_ics(&self, user: &str, password: &str, url: &str, ics: &str) -> String {
        let (status, etag, body) = self
            .request(
                user,
                password,
                "PUT",
                url,
                &[("content-type", "text/calendar; charset=utf-8")],
                Some(ics.to_owned()),
            )
            .await;
        assert!(status == 201 || status == 204, "PUT {url}: {status} {body}");
        etag.expect("ETag of a PUT")
    }

    /// A fresh user with an address book `contacts` holding `cards` (whole vCards), made by
    /// one `PUT` of the collection (Radicale takes a whole address book in one request:
    /// far faster than a PUT per card, which grows with the collection's size), then listed
    /// once with `sync-collection` so that Radicale's first parse of the items is done before
    /// a test times anything. Returns the collection URL.
    pub async fn user_with_cards(&self, user: &str, password: &str, cards: &[String]) -> String {
        self.add_user(user, password);
        let url = format!("{}/{user}/contacts/", self.base());
        let response = self
            .request(
                user,
                password,
                "PUT",
                &url,
                &[("content-type", "text/vcard; charset=utf-8")],
                Some(cards.concat()),
            )
            .await;
        assert!(
            response.0 == 201 || response.0 == 204,
            "PUT {url}: {} {}",
            response.0,
            response.2
        );
        let warm = self
            .request(
                user,
                password,
                "REPORT",
                &url,
                &[("depth", "1")],
                Some("<?xml version=\"1.0\"?><d:sync-collection xmlns:d=\"DAV:\"><d:sync-token/><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>".to_owned()),
            )
            .await;
        assert_eq!(warm.0, 207, "warming {url}: {}", warm.2);
        url
    }

    /// The UIDs of the cards in `user`'s collection `book`, read from Radicale's storage
    /// directory (one per item file; duplicates kept, so a test can find them).
    pub fn uids_on_disk(&self, user: &str, book: &str) -> Vec<String> {
        let dir = self
            .dir
            .join("collections/collection-root")
            .join(user)
            .join(book);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "vcf"))
            .map(|e| {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                text.lines()
                    .find_map(|l| l.strip_prefix("UID:"))
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
            .collect()
    }

    /// How many `PUT`s under `/USER/` Radicale answered so far.
    pub fn puts_by(&self, user: &str) -> usize {
        let needle = format!("PUT response status for '/{user}/");
        self.log().lines().filter(|l| l.contains(&needle)).count()
    }

    /// One request as `user`: `(status, ETag, body)`.
    pub async fn request(
        &self,
        user: &str,
        password: &str,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> (u16, Option<String>, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = switchboard::net::http_client()
            .request(method, url)
            .basic_auth(user, Some(password));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("request to radicale");
        let status = response.status().as_u16();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status, etag, response.text().await.unwrap_or_default())
    }

    /// PUTs a vCard as `user` at `url` (a new item); returns its ETag.
    pub async fn put_card(&self, user: &str, password: &str, url: &str, card: &str) -> String {
        let (status, etag, body) = self
            .request(
                user,
                password,
                "PUT",
                url,
                &[("content-type", "text/vcard; charset=utf-8")],
                Some(card.to_owned()),
            )
            .await;
        assert!(status == 201 || status == 204, "PUT {url}: {status} {body}");
        etag.expect("ETag of a PUT")
    }

    /// GETs an item as `user`: `(status, ETag, body)`.
    pub async fn get(
        &self,
        user: &str,
        password: &str,
        url: &str,
    ) -> (u16, Option<String>, String) {
        self.request(user, password, "GET", url, &[], None).await
    }

    /// The hrefs of the items in a collection (a `PROPFIND Depth: 1`).
    pub async fn items(&self, user: &str, password: &str, collection: &str) -> Vec<String> {
        let (status, _, body) = self
            .request(
                user,
                password,
                "PROPFIND",
                collection,
                &[("depth", "1")],
                Some("<propfind xmlns=\"DAV:\"><prop><getetag/></prop></propfind>".to_owned()),
            )
            .await;
        assert_eq!(status, 207, "PROPFIND {collection}: {body}");
        let path = collection
            .split_once("//")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map(|(_, p)| format!("/{p}"))
            .unwrap_or_default();
        body.split("<href>")
            .skip(1)
            .filter_map(|s| s.split_once("</href>").map(|(h, _)| h.to_owned()))
            .filter(|h| *h != path)
            .collect()
    }
}
