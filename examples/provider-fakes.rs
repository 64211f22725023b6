//! Fake chat providers for a demo of a config (`examples/contact-center/run.sh` runs it).
//!
//! For every `ChatChannel` of the config it serves, on loopback, the fake of its provider —
//! the same fakes the integration tests use (`tests/support/*_fake.rs`), so the demo and the
//! tests speak one documented wire format each:
//!
//! - `telegram`: a Bot API for the channel's bot; a customer's message is POSTed as an
//!   `Update` to the webhook the daemon registered, with the registered secret token.
//! - `facebookMessenger`: a Graph API for the channel's page (its `handover` bot as primary
//!   receiver); deliveries go to `{site}/webhooks/messenger`, signed with the app secret.
//! - `whatsapp`: a Twilio REST API for the channel's account (one per Account SID); a message
//!   to the channel's number is POSTed to `{site}/webhooks/twilio/{channel}`, signed.
//! - `api` with a `callbackUrl`: the web site's backend — it POSTs visitors' messages with the
//!   inbound token and receives the operators' replies, checking their signature.
//!
//! Secrets are read as the daemon reads them (`{env}`, `{file}`, `$CREDENTIALS_DIRECTORY`).
//!
//! A control API plays the customers and shows what reached the providers (plain text, for
//! `curl` in a shell script):
//!
//! - `POST /{channel}/messages` (form `from`, `name`, `text`): the customer writes.
//! - `POST /{channel}/pass` (form `from`, `metadata`): the Messenger bot passes the thread to
//!   Switchboard (FB-03).
//! - `GET /{channel}/sent?n=N`: the N-th message the provider was asked to send (waits up to
//!   10 s; 504 when none came).
//! - `GET /{channel}/handbacks?n=N`: the N-th `pass_thread_control` call (Messenger).
//!
//! Once everything listens, `--out FILE` is written (atomically): one line per channel,
//! `<channel> apiBaseUrl|callbackUrl <url>` — where the demo's manifests must point — and
//! `- control <url>`.
//!
//! ```sh
//! cargo run --example provider-fakes -- -c config.d -c examples/contact-center \
//!     --site http://127.0.0.1:8080 --out /tmp/fakes.txt
//! ```

#[path = "../tests/support/messenger_fake.rs"]
mod messenger_fake;
#[allow(dead_code)]
#[path = "../tests/support/telegram_fake.rs"]
mod telegram_fake;
#[allow(dead_code)]
#[path = "../tests/support/twilio_fake.rs"]
mod twilio_fake;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use clap::Parser;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use switchboard::config::kinds::{ChannelProvider, ChatChannelSpec};
use switchboard::config::types::Secret;
use switchboard::connector::resolve_secrets;
use tokio::net::TcpListener;

use messenger_fake::MessengerFake;
use telegram_fake::TelegramFake;
use twilio_fake::TwilioFake;

/// The app id the fake Graph API gives the pages' access tokens (our app).
const OUR_APP: (&str, &str) = ("1000000000000001", "Switchboard (demo)");
/// How long `sent` and `handbacks` wait for what they are asked for.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Parser)]
#[command(about = "Fake chat providers for every ChatChannel of a config")]
struct Args {
    /// A config directory (repeatable), as for `switchboard -c`.
    #[arg(short = 'c', long = "config", required = true)]
    config: Vec<PathBuf>,
    /// The daemon's public base URL (its `Settings.siteUrl` in the demo).
    #[arg(long)]
    site: String,
    /// Where to write the channels' fake URLs once everything listens.
    #[arg(long)]
    out: PathBuf,
}

/// The web site's backend of an `api` channel.
struct Site {
    inbound_token: Secret,
    callback_secret: Secret,
    /// Accepted callback bodies.
    received: Mutex<Vec<Value>>,
    /// Messages posted so far (their `messageId`s derive from it).
    posted: Mutex<u64>,
}

/// One channel's fake.
enum Fake {
    Telegram(Arc<TelegramFake>),
    Messenger(Arc<MessengerFake>),
    Twilio {
        fake: Arc<TwilioFake>,
        number: String,
    },
    Site(Arc<Site>),
}

#[derive(Clone)]
struct Control {
    site: String,
    channels: Arc<BTreeMap<String, Fake>>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let set = switchboard::config::load(&args.config)
        .into_result()
        .map_err(|d| {
            anyhow!(
                "the config is invalid ({} problems); run `switchboard validate`",
                d.len()
            )
        })?;
    let site = args.site.trim_end_matches('/').to_owned();
    let mut channels = BTreeMap::new();
    let mut lines = Vec::new();
    let mut bots: HashMap<String, Arc<TelegramFake>> = HashMap::new();
    let mut accounts: HashMap<String, Arc<TwilioFake>> = HashMap::new();
    let mut sites = Vec::new();
    for (object, spec) in set.specs::<ChatChannelSpec>() {
        let name = object.name.clone();
        let secrets = resolve_secrets(object)
            .with_context(|| format!("the secrets of ChatChannel/{name}"))?;
        let secret = |pointer: &str| {
            secrets
                .get(pointer)
                .cloned()
                .ok_or_else(|| anyhow!("ChatChannel/{name} has no {}", &pointer[1..]))
        };
        let (fake, field, url, what) = match spec.provider {
            ChannelProvider::Telegram => {
                let token = secret("/token")?;
                let fake = match bots.get(token.expose()) {
                    Some(fake) => Arc::clone(fake),
                    None => {
                        let fake = Arc::new(TelegramFake::serve(bind().await?, token.expose()));
                        bots.insert(token.expose().to_owned(), Arc::clone(&fake));
                        fake
                    }
                };
                let base = fake.base.clone();
                let what = "Telegram Bot API (updates go to the webhook the daemon registers)";
                (Fake::Telegram(fake), "apiBaseUrl", base, what.to_owned())
            }
            ChannelProvider::FacebookMessenger => {
                let page = spec
                    .page_id
                    .clone()
                    .context("a Messenger channel has a pageId")?;
                let token = secret("/pageAccessToken")?;
                let fake = MessengerFake::serve(bind().await?, &page, token.expose(), OUR_APP);
                if let Some(handover) = &spec.handover {
                    fake.set_primary((&handover.primary_receiver_app_id, "FAQ bot"));
                }
                let webhook = format!("{site}/webhooks/messenger");
                fake.lock().webhook =
                    Some((webhook.clone(), secret("/appSecret")?.expose().to_owned()));
                let base = fake.base.clone();
                let what = format!("Graph API for page {page} (webhooks to {webhook})");
                (Fake::Messenger(Arc::new(fake)), "apiBaseUrl", base, what)
            }
            ChannelProvider::Whatsapp => {
                let sid = spec
                    .account_sid
                    .clone()
                    .context("a whatsapp channel has an accountSid")?;
                let number = spec
                    .phone_number
                    .clone()
                    .context("a whatsapp channel has a phoneNumber")?;
                let token = secret("/authToken")?;
                let fake = match accounts.get(&sid) {
                    Some(fake) => Arc::clone(fake),
                    None => {
                        let fake = Arc::new(TwilioFake::serve(
                            bind().await?,
                            &sid,
                            token.expose(),
                            "active",
                        ));
                        accounts.insert(sid.clone(), Arc::clone(&fake));
                        fake
                    }
                };
                // What an admin sets as the number's "A message comes in" URL in Twilio.
                let webhook = format!("{site}/webhooks/twilio/{name}");
                fake.lock().webhooks.insert(number.clone(), webhook.clone());
                let base = fake.base.clone();
                let what =
                    format!("Twilio API for account {sid} (messages to {number} go to {webhook})");
                (Fake::Twilio { fake, number }, "apiBaseUrl", base, what)
            }
            ChannelProvider::Api => {
                if spec.callback_url.is_none() {
                    continue;
                }
                let backend = Arc::new(Site {
                    inbound_token: secret("/inboundToken")?,
                    callback_secret: secret("/callbackSecret")?,
                    received: Mutex::new(Vec::new()),
                    posted: Mutex::new(0),
                });
                sites.push((name.clone(), Arc::clone(&backend)));
                let what = format!("the web site's backend (posts to {site}/webhooks/api/{name})");
                (Fake::Site(backend), "callbackUrl", String::new(), what)
            }
        };
        channels.insert(name.clone(), fake);
        lines.push((name, field, url, what));
    }

    if lines.is_empty() {
        bail!("the config has no ChatChannel to fake");
    }
    let listener = bind().await?;
    let base = format!("http://{}", listener.local_addr()?);
    let control = Control {
        site,
        channels: Arc::new(channels),
    };
    let mut router = axum::Router::new()
        .route("/{channel}/messages", axum::routing::post(customer_message))
        .route("/{channel}/pass", axum::routing::post(pass))
        .route("/{channel}/sent", axum::routing::get(sent))
        .route("/{channel}/handbacks", axum::routing::get(handbacks));
    for (name, backend) in sites {
        router = router.route(
            &format!("/callback/{name}"),
            axum::routing::post(callback).with_state(backend),
        );
    }
    let router = router.with_state(control);
    tokio::spawn(async move { axum::serve(listener, router).await });

    let mut out = String::new();
    for (name, field, url, what) in &lines {
        let url = if url.is_empty() {
            format!("{base}/callback/{name}")
        } else {
            url.clone()
        };
        println!("{name:>18}  {url:<40} {what}");
        out.push_str(&format!("{name} {field} {url}\n"));
    }
    println!("{:>18}  {base:<40} plays the customers", "control");
    out.push_str(&format!("- control {base}\n"));
    let tmp = args.out.with_extension("tmp");
    std::fs::write(&tmp, out).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
    std::future::pending::<()>().await;
    Ok(())
}

async fn bind() -> anyhow::Result<TcpListener> {
    TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a loopback port")
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, format!("{}\n", body.into())).into_response()
}

/// What a customer's message came to: the webhook's status, as the provider saw it.
fn delivered(who: &str, outcome: Result<u16, String>) -> Response {
    match outcome {
        Ok(code) if (200..300).contains(&code) => text(
            StatusCode::OK,
            format!("{who}: Switchboard answered {code}"),
        ),
        Ok(code) => text(
            StatusCode::BAD_GATEWAY,
            format!("{who}: Switchboard answered {code}"),
        ),
        Err(e) => text(StatusCode::BAD_GATEWAY, format!("{who}: {e}")),
    }
}

/// A form-encoded body's fields (axum's `Form` needs a feature the daemon does not).
fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// The customer's message: form fields `from`, `name`, `text`.
struct Message {
    from: String,
    name: String,
    text: String,
}

async fn customer_message(
    State(control): State<Control>,
    Path(channel): Path<String>,
    body: Bytes,
) -> Response {
    let mut fields = form(&body);
    let mut field = |name: &str| fields.remove(name).unwrap_or_default();
    let m = Message {
        from: field("from"),
        name: field("name"),
        text: field("text"),
    };
    let Some(fake) = control.channels.get(&channel) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("no fake for channel {channel}"),
        );
    };
    match fake {
        Fake::Telegram(bot) => {
            let Ok(user) = m.from.parse::<i64>() else {
                return text(StatusCode::BAD_REQUEST, "a Telegram user id is a number");
            };
            let outcome = bot.customer_message(user, &m.name, &m.text).await;
            delivered("Telegram POSTed the update to the bot's webhook", outcome)
        }
        Fake::Messenger(page) => {
            let how = if page.ours(&m.from) {
                "messaging"
            } else {
                "standby: the bot owns the thread"
            };
            let outcome = page.customer_message(&m.from, &m.text).await;
            delivered(&format!("Meta POSTed the message ({how})"), outcome)
        }
        Fake::Twilio { fake, number } => {
            let outcome = fake
                .customer_message(number, &m.from, &m.name, &m.text)
                .await;
            delivered("Twilio POSTed the signed form", outcome)
        }
        Fake::Site(site) => {
            let id = {
                let mut posted = site.posted.lock().expect("site state");
                *posted += 1;
                format!("web-{}", *posted)
            };
            let body =
                json!({"messageId": id, "from": {"id": m.from, "name": m.name}, "text": m.text});
            let outcome = switchboard::net::http_client()
                .post(format!("{}/webhooks/api/{channel}", control.site))
                .bearer_auth(site.inbound_token.expose())
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| format!("the POST failed: {e}"));
            delivered("the web site POSTed the visitor's message", outcome)
        }
    }
}

/// The bot passes a thread: form fields `from` (the PSID) and `metadata`.
async fn pass(
    State(control): State<Control>,
    Path(channel): Path<String>,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
    match control.channels.get(&channel) {
        Some(Fake::Messenger(page)) => {
            let outcome = page.pass_to_us(&field("from"), &field("metadata")).await;
            delivered(
                "Meta POSTed pass_thread_control to Switchboard's app",
                outcome,
            )
        }
        _ => text(
            StatusCode::NOT_FOUND,
            format!("{channel} is no Messenger channel"),
        ),
    }
}

/// A JSON value as a person reads it: a string without its quotes.
fn plain(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

#[derive(Deserialize)]
struct Nth {
    n: usize,
}

/// The `n`-th (1-based) of what `list` reads, waiting up to [`WAIT`] for it.
async fn nth(n: usize, list: impl Fn() -> Vec<String>) -> Response {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(item) = list().into_iter().nth(n.saturating_sub(1)) {
            return text(StatusCode::OK, item);
        }
        if tokio::time::Instant::now() >= deadline {
            return text(
                StatusCode::GATEWAY_TIMEOUT,
                format!("nothing #{n} within 10 s"),
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sent(
    State(control): State<Control>,
    Path(channel): Path<String>,
    Query(q): Query<Nth>,
) -> Response {
    let Some(fake) = control.channels.get(&channel) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("no fake for channel {channel}"),
        );
    };
    match fake {
        Fake::Telegram(bot) => {
            nth(q.n, || {
                bot.lock()
                    .sent
                    .iter()
                    .map(|m| {
                        format!(
                            "sendMessage chat_id={}: {}",
                            plain(&m["chat_id"]),
                            m["text"]
                        )
                    })
                    .collect()
            })
            .await
        }
        Fake::Messenger(page) => {
            nth(q.n, || {
                page.lock()
                    .sent
                    .iter()
                    .map(|m| {
                        let to = plain(&m["recipient"]["id"]);
                        format!("Send API to {to}: {}", m["message"]["text"])
                    })
                    .collect()
            })
            .await
        }
        Fake::Twilio { fake, number } => {
            let from = format!("whatsapp:{number}");
            nth(q.n, || {
                fake.lock()
                    .sent
                    .iter()
                    .filter(|(_, f, _)| *f == from)
                    .map(|(to, _, body)| format!("Messages API to {to}: {body:?}"))
                    .collect()
            })
            .await
        }
        Fake::Site(site) => {
            nth(q.n, || {
                site.received
                    .lock()
                    .expect("site state")
                    .iter()
                    .map(|b| {
                        let (to, from) = (plain(&b["to"]["id"]), plain(&b["operator"]));
                        format!("signed callback for {to} from {from}: {}", b["text"])
                    })
                    .collect()
            })
            .await
        }
    }
}

async fn handbacks(
    State(control): State<Control>,
    Path(channel): Path<String>,
    Query(q): Query<Nth>,
) -> Response {
    match control.channels.get(&channel) {
        Some(Fake::Messenger(page)) => {
            nth(q.n, || {
                page.lock()
                    .passed
                    .iter()
                    .map(|b| {
                        let (psid, app) = (plain(&b["recipient"]["id"]), &b["target_app_id"]);
                        format!(
                            "pass_thread_control: thread {psid} to app {app} ({})",
                            b["metadata"]
                        )
                    })
                    .collect()
            })
            .await
        }
        _ => text(
            StatusCode::NOT_FOUND,
            format!("{channel} is no Messenger channel"),
        ),
    }
}

/// The web site's callback endpoint: checks `X-Switchboard-Signature` over the raw body
/// before reading it, as the README tells site owners to.
async fn callback(State(site): State<Arc<Site>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let presented = headers
        .get("x-switchboard-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(|v| hex::decode(v).ok());
    let mut mac = Hmac::<Sha256>::new_from_slice(site.callback_secret.expose().as_bytes())
        .expect("HMAC takes any key");
    mac.update(&body);
    if presented.is_none_or(|p| mac.verify_slice(&p).is_err()) {
        return StatusCode::UNAUTHORIZED;
    }
    match serde_json::from_slice(&body) {
        Ok(value) => {
            site.received.lock().expect("site state").push(value);
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}
