//! A small W3C WebDriver client over reqwest for the console tests: starts Debian's
//! `chromedriver` on a free loopback port and drives headless `chromium` sessions through it.
//!
//! Only what the tests use: new session, navigate, find by CSS, click, send keys, text,
//! execute script, window size, screenshot, and a wait that polls the page (no sleeps).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// The key W3C WebDriver names an element reference with.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running `chromedriver`, shut down (with its browsers) when dropped.
pub struct Driver {
    child: Child,
    port: u16,
    base: String,
    http: reqwest::Client,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// Why the browser tests cannot run here, or `None` when chromium and chromedriver are
/// installed (`tests/run.sh` installs them).
pub fn missing() -> Option<String> {
    for (bin, package) in [
        ("/usr/bin/chromium", "chromium"),
        ("/usr/bin/chromedriver", "chromium-driver"),
    ] {
        if !Path::new(bin).exists() {
            return Some(format!(
                "{bin} is missing: install the Debian package {package} (tests/run.sh does)"
            ));
        }
    }
    None
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it answers `/status` ready.
    pub async fn start() -> Driver {
        if let Some(why) = missing() {
            panic!("{why}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("chromedriver.log");
        let port = super::free_port();
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            http: switchboard::net::http_client_builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            log,
            _dir: dir,
        };
        let status = format!("{}/status", driver.base);
        let http = driver.http.clone();
        super::eventually_or(
            "chromedriver answers /status ready",
            || driver.log(),
            || {
                let (http, status) = (http.clone(), status.clone());
                async move {
                    match http.get(&status).send().await {
                        Ok(r) => r
                            .json::<Value>()
                            .await
                            .is_ok_and(|v| v["value"]["ready"] == true),
                        Err(_) => false,
                    }
                }
            },
        )
        .await;
        driver
    }

    /// chromedriver's log, for failure messages.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// A new headless browser session, 1280×900.
    pub async fn session(&self) -> Session {
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": "/usr/bin/chromium",
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--window-size=1280,900",
                            "--disable-dev-shm-usage",
                            "--autoplay-policy=no-user-gesture-required",
                            "--no-first-run",
                            "--disable-extensions",
                        ],
                    },
                    "goog:loggingPrefs": { "browser": "ALL" },
                }
            }
        });
        let answer = send(
            &self.http,
            reqwest::Method::POST,
            &format!("{}/session", self.base),
            Some(caps),
        )
        .await
        .unwrap_or_else(|e| panic!("new session: {e}\n{}", self.log()));
        let id = answer["sessionId"].as_str().expect("sessionId").to_owned();
        Session {
            http: self.http.clone(),
            base: format!("{}/session/{id}", self.base),
            seen: Arc::new(Mutex::new(String::new())),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // `/shutdown` closes every session's browser and ends chromedriver; a plain blocking
        // request, since Drop cannot await. Then make sure the process is gone.
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.write_all(
                b"GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            );
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver command; answers its `value`, or the WebDriver error as text.
async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let mut request = http.request(method.clone(), url);
    // W3C wants a JSON body on every POST, `{}` when there is nothing to say.
    if method == reqwest::Method::POST {
        request = request.json(&body.unwrap_or_else(|| json!({})));
    }
    let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let value: Value = response
        .json()
        .await
        .map_err(|e| format!("{url}: not JSON: {e}"))?;
    if status.is_success() {
        Ok(value["value"].clone())
    } else {
        Err(format!(
            "{url}: {} {}: {}",
            status,
            value["value"]["error"].as_str().unwrap_or("?"),
            value["value"]["message"].as_str().unwrap_or("?")
        ))
    }
}

/// One browser session.
pub struct Session {
    http: reqwest::Client,
    base: String,
    /// The page's text as last seen by [`Session::wait`], shown when a wait times out.
    seen: Arc<Mutex<String>>,
}

/// An element of the page.
#[derive(Clone)]
pub struct Element {
    id: String,
    css: String,
}

impl Session {
    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        send(&self.http, method, &format!("{}{path}", self.base), body)
            .await
            .unwrap_or_else(|e| panic!("{e}\npage text:\n{}", self.seen.lock().unwrap()))
    }

    /// Navigates to `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// The first element matching `css`; panics when there is none.
    pub async fn find(&self, css: &str) -> Element {
        let value = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        Element {
            id: value[ELEMENT].as_str().expect("element id").to_owned(),
            css: css.to_owned(),
        }
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{}/click", element.id),
            None,
        )
        .await;
    }

    /// Types `text` into the first element matching `css`.
    pub async fn send_keys(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{}/value", element.id),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// The rendered text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        self.element_text(&element).await
    }

    /// The rendered text of `element`.
    pub async fn element_text(&self, element: &Element) -> String {
        let value = self
            .cmd(
                reqwest::Method::GET,
                &format!("/element/{}/text", element.id),
                None,
            )
            .await;
        value
            .as_str()
            .unwrap_or_else(|| panic!("text of {}", element.css))
            .to_owned()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and answers what it returns.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Sets the window's outer size.
    pub async fn resize(&self, width: u32, height: u32) {
        self.cmd(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    /// Saves a PNG screenshot of the viewport to `path` (creating its directory).
    pub async fn screenshot(&self, path: &Path) {
        let value = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().expect("base64 screenshot"))
            .expect("base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Polls the page until the JavaScript expression `condition` is true (every 100 ms, up to
    /// 10 s, through the `eventually` helpers' polling loop); on time-out the panic shows the page's text.
    pub async fn wait(&self, what: &str, condition: &str) {
        self.wait_within(what, Duration::from_secs(10), condition)
            .await;
    }

    /// [`Session::wait`] with a longer bound, for what follows a retry with backoff.
    pub async fn wait_within(&self, what: &str, limit: Duration, condition: &str) {
        let script =
            format!("return [Boolean({condition}), document.body ? document.body.innerText : ''];");
        let seen = self.seen.clone();
        super::poll(
            what,
            limit,
            || format!("page text:\n{}", seen.lock().unwrap()),
            || {
                let script = script.clone();
                let seen = self.seen.clone();
                async move {
                    let Ok(value) = send(
                        &self.http,
                        reqwest::Method::POST,
                        &format!("{}/execute/sync", self.base),
                        Some(json!({ "script": script, "args": [] })),
                    )
                    .await
                    else {
                        return false;
                    };
                    *seen.lock().unwrap() = value[1].as_str().unwrap_or_default().to_owned();
                    value[0] == true
                }
            },
        )
        .await;
    }

    /// The browser's console log since the last call (`goog:loggingPrefs`).
    pub async fn console_log(&self) -> String {
        send(
            &self.http,
            reqwest::Method::POST,
            &format!("{}/se/log", self.base),
            Some(json!({ "type": "browser" })),
        )
        .await
        .map(|v| v.to_string())
        .unwrap_or_default()
    }

    /// Ends the session and closes its browser.
    pub async fn quit(self) {
        let _ = send(&self.http, reqwest::Method::DELETE, &self.base, None).await;
    }
}
