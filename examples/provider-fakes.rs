//! Fake providers for a demo of a config (`examples/contact-center/run.sh` and
//! `examples/sales-team/run.sh` run it).
//!
//! For every `ChatChannel`, `LeadIntegration` and synced account of the config it serves, on
//! loopback, the
//! fake of its provider — the same fakes the integration tests use
//! (`tests/support/*_fake.rs`), so the demo and the tests speak one documented wire format
//! each:
//!
//! - `telegram`: a Bot API for the channel's bot; a customer's message is POSTed as an
//!   `Update` to the webhook the daemon registered, with the registered secret token.
//! - `facebookMessenger`: a Graph API for the channel's page (its `handover` bot as primary
//!   receiver); deliveries go to `{site}/webhooks/messenger`, signed with the app secret.
//! - `whatsapp`: a Twilio REST API for the channel's account (one per Account SID); a message
//!   to the channel's number is POSTed to `{site}/webhooks/twilio/{channel}`, signed.
//! - `api` with a `callbackUrl`: the web site's backend — it POSTs visitors' messages with the
//!   inbound token and receives the operators' replies, checking their signature.
//! - `LeadIntegration`: one LinkedIn (OAuth 2.0 token endpoint, Lead Sync API, lead
//!   notification subscriptions) for the app of `Settings.linkedin` and the refresh tokens of
//!   the config's `LinkedInAccount`s. Each listed form of an integration asks what its mapping
//!   (custom or default) names — `FIRST_NAME`-style names as LinkedIn's predefined profile
//!   fields, others as custom questions — plus a `marketing_consent` checkbox and a
//!   `utm_campaign` hidden field. A submitted form is notified, signed with the client secret,
//!   to the webhook the daemon subscribed for the ad account.
//! - `GoogleAccount` synced by a `ContactSync` or `CalendarSync`: Google's OAuth 2.0 token
//!   endpoint for the app of `Settings.google` (honouring every such account's refresh token),
//!   and per account the People API and the Calendar API behind one `apiBaseUrl` (`/v1/…` and
//!   `/calendar/v3/…`), seeded with two contacts in the ContactSync's `google.group`, one
//!   outside it and two events.
//! - `Mailbox` of a `microsoft365` `MailProvider`, synced by a `ContactSync` or `CalendarSync`:
//!   per provider, a token endpoint for its `oauth2` app (honouring each such mailbox's refresh
//!   token) and one Graph `apiBaseUrl` that serves each mailbox its own contacts, calendars and
//!   To Do (`/me` is whoever the bearer token was issued to), seeded with two contacts and a
//!   meeting in a "Customer meetings" calendar. A mailbox whose refresh token is not at hand is
//!   not faked.
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
//! - `POST /{integration}/leads` (form `form` = the form id, then one `FIELD=value` per
//!   answered question, by the names above): a member submits the lead form; LinkedIn stores
//!   the response and notifies the subscribed webhook (409 while none is subscribed).
//! - `POST /{integration}/notify` (form `response`, `form`): LinkedIn delivers that
//!   notification again.
//! - `GET /{integration}/subscription`: the webhook subscribed for the integration's ad
//!   account (404 while none).
//! - `GET /{account}/contacts`: a GoogleAccount's contacts in its synced group, or a Mailbox's
//!   Outlook contacts, `Name <address>`, sorted.
//! - `GET /{account}/events`: a GoogleAccount's events in its primary calendar.
//!
//! Once everything listens, `--out FILE` is written (atomically): one line per channel and
//! integration, `<name> apiBaseUrl|callbackUrl <url>` — where the demo's manifests must
//! point —, `- control <url>`, for Google `- googleTokenUrl <url>` and `- googleAuthUrl
//! <url>` (`Settings.google`), and per microsoft365 provider `<provider> tokenUrl|authUrl
//! <url>` (its `oauth2`).
//!
//! ```sh
//! cargo run --example provider-fakes -- -c config.d -c examples/contact-center \
//!     --site http://127.0.0.1:8080 --out /tmp/fakes.txt
//! ```

#[path = "../tests/support/gcalendar_fake.rs"]
mod gcalendar_fake;
#[path = "../tests/support/graph_calendar_fake.rs"]
mod graph_calendar_fake;
#[path = "../tests/support/graph_contacts_fake.rs"]
mod graph_contacts_fake;
#[path = "../tests/support/linkedin_fake.rs"]
mod linkedin_fake;
#[path = "../tests/support/messenger_fake.rs"]
mod messenger_fake;
#[path = "../tests/support/oauth_fake.rs"]
mod oauth_fake;
#[path = "../tests/support/people_fake.rs"]
mod people_fake;
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
use switchboard::config::kinds::{
    CalendarSyncSpec, ChannelProvider, ChatChannelSpec, ColumnMapping, ContactSyncSpec,
    GoogleAccountSpec, LeadIntegrationSpec, MailProviderSpec, MailProviderType, MailboxSpec,
    SettingsSpec,
};
use switchboard::config::types::Secret;
use switchboard::config::{ConfigSet, Kind};
use switchboard::connector::resolve_secrets;
use tokio::net::TcpListener;

use gcalendar_fake::GCalendarFake;
use graph_calendar_fake::GraphCalendarFake;
use graph_contacts_fake::GraphContactsFake;
use linkedin_fake::LinkedInFake;
use messenger_fake::MessengerFake;
use oauth_fake::OAuthFake;
use people_fake::PeopleFake;
use telegram_fake::TelegramFake;
use twilio_fake::TwilioFake;

/// The app id the fake Graph API gives the pages' access tokens (our app).
const OUR_APP: (&str, &str) = ("1000000000000001", "Switchboard (demo)");
/// How long `sent` and `handbacks` wait for what they are asked for.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Parser)]
#[command(
    about = "Fake providers for every ChatChannel, LeadIntegration and synced account of a config"
)]
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
    LinkedIn(Arc<LeadAccount>),
}

/// One integration's ad account at the fake LinkedIn.
struct LeadAccount {
    fake: LinkedInFake,
    ad_account: String,
    /// Per form id, its questions: `(questionId, field name)`.
    forms: BTreeMap<String, Vec<(u32, String)>>,
    /// Responses submitted so far (their ids derive from it).
    submitted: Mutex<u64>,
}

#[derive(Clone)]
struct Control {
    site: String,
    channels: Arc<BTreeMap<String, Fake>>,
    google: Arc<BTreeMap<String, Arc<GoogleFake>>>,
    /// Per synced Microsoft 365 mailbox (by name), its Graph.
    graph: Arc<BTreeMap<String, Arc<GraphFake>>>,
}

/// One Microsoft 365 mailbox's Graph: contacts, calendars and To Do.
struct GraphFake {
    contacts: GraphContactsFake,
    calendar: GraphCalendarFake,
}

/// One GoogleAccount's Google: the People API and the Calendar API behind one `apiBaseUrl`.
struct GoogleFake {
    people: PeopleFake,
    calendar: GCalendarFake,
    email: String,
    /// The contact group its ContactSync syncs (`google.group`), if it has one.
    group: Option<String>,
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

    let leads = lead_accounts(&set).await?;
    for (name, account, base) in leads {
        let what = format!(
            "LinkedIn for ad account {} ({} forms; leads notified to the subscribed webhook)",
            account.ad_account,
            account.forms.len()
        );
        channels.insert(name.clone(), Fake::LinkedIn(account));
        lines.push((name, "apiBaseUrl", base, what));
    }

    let mut google = BTreeMap::new();
    let mut extra = Vec::new();
    if let Some((oauth, accounts)) = google_accounts(&set).await? {
        for (name, account, base) in accounts {
            let what = format!(
                "People and Calendar APIs of {} (seeded contacts and events)",
                account.email
            );
            google.insert(name.clone(), account);
            lines.push((name, "apiBaseUrl", base, what));
        }
        extra.push(format!("- googleTokenUrl {}/token\n", oauth.base));
        extra.push(format!("- googleAuthUrl {}/auth\n", oauth.base));
        println!(
            "{:>18}  {:<40} Google's OAuth 2.0 token endpoint (Settings.google)",
            "google oauth",
            format!("{}/token", oauth.base)
        );
    }

    let mut graph = BTreeMap::new();
    for (provider, oauth, mailboxes, base) in graph_providers(&set).await? {
        let what = format!(
            "Microsoft Graph for {} (contacts, calendars, To Do; seeded)",
            mailboxes.keys().cloned().collect::<Vec<_>>().join(", ")
        );
        lines.push((provider.clone(), "apiBaseUrl", base, what));
        extra.push(format!("{provider} tokenUrl {}/token\n", oauth.base));
        extra.push(format!("{provider} authUrl {}/auth\n", oauth.base));
        println!(
            "{:>18}  {:<40} the Microsoft identity platform's token endpoint ({provider}'s oauth2)",
            "microsoft oauth",
            format!("{}/token", oauth.base)
        );
        graph.extend(mailboxes);
    }

    if lines.is_empty() {
        bail!("the config has no ChatChannel, LeadIntegration or synced account to fake");
    }
    let listener = bind().await?;
    let base = format!("http://{}", listener.local_addr()?);
    let control = Control {
        site,
        channels: Arc::new(channels),
        google: Arc::new(google),
        graph: Arc::new(graph),
    };
    let mut router = axum::Router::new()
        .route("/{channel}/messages", axum::routing::post(customer_message))
        .route("/{channel}/pass", axum::routing::post(pass))
        .route("/{channel}/sent", axum::routing::get(sent))
        .route("/{channel}/handbacks", axum::routing::get(handbacks))
        .route("/{channel}/leads", axum::routing::post(lead_form))
        .route("/{channel}/notify", axum::routing::post(renotify))
        .route("/{channel}/subscription", axum::routing::get(subscription))
        .route("/{channel}/contacts", axum::routing::get(google_contacts))
        .route("/{channel}/events", axum::routing::get(google_events));
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
    println!(
        "{:>18}  {base:<40} plays the customers and members",
        "control"
    );
    out.push_str(&format!("- control {base}\n"));
    out.extend(extra);
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
        Fake::LinkedIn(_) => text(
            StatusCode::NOT_FOUND,
            format!("{channel} is a LeadIntegration: POST /{channel}/leads"),
        ),
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
        Fake::LinkedIn(_) => text(
            StatusCode::NOT_FOUND,
            format!("{channel} is a LeadIntegration: it sends nothing"),
        ),
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

/// The LinkedIn of the config's `LeadIntegration`s: one fake for the app of
/// `Settings.linkedin`, honouring every `LinkedInAccount`'s refresh token, and each
/// integration's ad account with its listed forms. `(integration, account, fake base URL)`.
async fn lead_accounts(set: &ConfigSet) -> anyhow::Result<Vec<(String, Arc<LeadAccount>, String)>> {
    let integrations: Vec<_> = set.specs::<LeadIntegrationSpec>().collect();
    if integrations.is_empty() {
        return Ok(Vec::new());
    }
    let (settings, app) = set
        .specs::<SettingsSpec>()
        .find_map(|(o, s)| s.linkedin.clone().map(|l| (o, l)))
        .context("LeadIntegrations need Settings.linkedin (the LinkedIn app)")?;
    // Only the LinkedIn app's secret: the example's other apps' credentials may be absent.
    let secret = app
        .client_secret
        .resolve(settings.origin.dir())
        .context("Settings.linkedin.clientSecret")?;
    let mut tokens = Vec::new();
    for account in set
        .objects
        .iter()
        .filter(|o| o.kind() == Kind::LinkedInAccount)
    {
        let secrets = resolve_secrets(account)
            .with_context(|| format!("the secrets of LinkedInAccount/{}", account.name))?;
        tokens.extend(secrets.get("/refreshToken").map(|t| t.expose().to_owned()));
    }
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let fake = LinkedInFake::serve(bind().await?, &app.client_id, secret.expose(), &tokens);
    let mut out = Vec::new();
    for (object, spec) in integrations {
        let mut forms = BTreeMap::new();
        for form in &spec.forms {
            let mapping = form
                .custom_mapping
                .as_ref()
                .unwrap_or(&spec.default_mapping);
            let questions = questions(mapping);
            let listed: Vec<(u32, &str, Option<&str>)> = questions
                .iter()
                .map(|(id, name)| {
                    let predefined = is_profile_field(name).then_some(name.as_str());
                    (*id, name.as_str(), predefined)
                })
                .collect();
            fake.add_form(&form.id, &listed);
            forms.insert(form.id.clone(), questions);
        }
        let account = Arc::new(LeadAccount {
            fake: fake.clone(),
            ad_account: spec.ad_account_id.clone(),
            forms,
            submitted: Mutex::new(0),
        });
        out.push((object.name.clone(), account, fake.base.clone()));
    }
    Ok(out)
}

/// LinkedIn's predefined profile fields are named in capitals (`FIRST_NAME`, `WORK_EMAIL`).
fn is_profile_field(name: &str) -> bool {
    name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
}

/// The questions a form asks: every field its mapping names, but the checkbox and the hidden
/// field every fake form has (`marketing_consent`, `utm_campaign`). Numbered from 1.
fn questions(mapping: &[ColumnMapping]) -> Vec<(u32, String)> {
    let mut names: Vec<String> = Vec::new();
    for field in mapping.iter().filter_map(|m| m.field.as_deref()) {
        if !matches!(field, "marketing_consent" | "utm_campaign")
            && !names.iter().any(|n| n == field)
        {
            names.push(field.to_owned());
        }
    }
    (1..).zip(names).collect()
}

fn lead_account(control: &Control, name: &str) -> Option<Arc<LeadAccount>> {
    match control.channels.get(name) {
        Some(Fake::LinkedIn(account)) => Some(Arc::clone(account)),
        _ => None,
    }
}

fn no_lead_account(name: &str) -> Response {
    text(
        StatusCode::NOT_FOUND,
        format!("{name} is no LeadIntegration of the config"),
    )
}

/// What LinkedIn's notification came to, as the member's side sees it.
async fn notified(account: &LeadAccount, response: &str, form: &str) -> Response {
    let answers = account
        .fake
        .notify(&account.ad_account, response, form)
        .await;
    if answers.is_empty() {
        return text(
            StatusCode::CONFLICT,
            format!(
                "no lead notification subscription for ad account {} yet",
                account.ad_account
            ),
        );
    }
    let mut all_ok = true;
    let mut lines = Vec::new();
    for (url, answer) in answers {
        lines.push(match answer {
            Ok((code, body)) => {
                all_ok &= (200..300).contains(&code);
                format!(
                    "LinkedIn POSTed the signed notification of response {response} (form {form}) to {url}: Switchboard answered {code} {}",
                    body.trim()
                )
            }
            Err(e) => {
                all_ok = false;
                format!("LinkedIn could not notify {url}: {e}")
            }
        });
    }
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    text(status, lines.join("\n"))
}

/// A member submits a lead form: form fields `form`, then `FIELD=value` per question.
async fn lead_form(
    State(control): State<Control>,
    Path(channel): Path<String>,
    body: Bytes,
) -> Response {
    let Some(account) = lead_account(&control, &channel) else {
        return no_lead_account(&channel);
    };
    let fields = form(&body);
    let Some(form_id) = fields.get("form") else {
        return text(StatusCode::BAD_REQUEST, "name the form: form=ID");
    };
    let Some(questions) = account.forms.get(form_id) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("ad account {} has no form {form_id}", account.ad_account),
        );
    };
    let answers: Vec<(u32, &str)> = questions
        .iter()
        .filter_map(|(id, name)| fields.get(name).map(|v| (*id, v.as_str())))
        .collect();
    let response = {
        let mut submitted = account.submitted.lock().expect("lead state");
        *submitted += 1;
        format!("demo-{}-{}", account.ad_account, *submitted)
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    account
        .fake
        .add_response_on(&account.ad_account, &response, form_id, now, &answers);
    notified(&account, &response, form_id).await
}

/// LinkedIn delivers a notification again: form fields `response`, `form`.
async fn renotify(
    State(control): State<Control>,
    Path(channel): Path<String>,
    body: Bytes,
) -> Response {
    let Some(account) = lead_account(&control, &channel) else {
        return no_lead_account(&channel);
    };
    let fields = form(&body);
    let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
    notified(&account, &field("response"), &field("form")).await
}

/// The webhook subscribed for the integration's ad account.
async fn subscription(State(control): State<Control>, Path(channel): Path<String>) -> Response {
    let Some(account) = lead_account(&control, &channel) else {
        return no_lead_account(&channel);
    };
    match account.fake.subscriptions(&account.ad_account).first() {
        Some(url) => text(StatusCode::OK, url.clone()),
        None => text(
            StatusCode::NOT_FOUND,
            format!(
                "no lead notification subscription for ad account {} yet",
                account.ad_account
            ),
        ),
    }
}

/// Google for the config's GoogleAccounts that a ContactSync or CalendarSync syncs: one OAuth
/// 2.0 token endpoint for the app of `Settings.google`, honouring each account's refresh
/// token, and per account a People API and a Calendar API behind one base URL, seeded with
/// contacts (in the ContactSync's group, and one outside it) and events as the user had them.
/// `(oauth, [(account, fake, apiBaseUrl)])`; `None` when no Google account is synced.
#[allow(clippy::type_complexity)]
async fn google_accounts(
    set: &ConfigSet,
) -> anyhow::Result<Option<(OAuthFake, Vec<(String, Arc<GoogleFake>, String)>)>> {
    let synced: Vec<(String, Option<String>)> = set
        .specs::<ContactSyncSpec>()
        .map(|(_, s)| {
            (
                s.account.clone(),
                s.google.as_ref().map(|g| g.group.clone()),
            )
        })
        .chain(
            set.specs::<CalendarSyncSpec>()
                .map(|(_, s)| (s.account.clone(), None)),
        )
        .collect();
    let accounts: Vec<_> = set
        .specs::<GoogleAccountSpec>()
        .filter(|(o, _)| synced.iter().any(|(a, _)| *a == o.name))
        .collect();
    if accounts.is_empty() {
        return Ok(None);
    }
    let (settings, app) = set
        .specs::<SettingsSpec>()
        .find_map(|(o, s)| s.google.clone().map(|g| (o, g)))
        .context("synced GoogleAccounts need Settings.google (the Google app)")?;
    let client_id = app.client_id.context("Settings.google has no clientId")?;
    let secret = app
        .client_secret
        .context("Settings.google has no clientSecret")?
        .resolve(settings.origin.dir())
        .context("Settings.google.clientSecret")?;
    let oauth = OAuthFake::start(&client_id, secret.expose(), Duration::from_secs(3600)).await;
    let mut out = Vec::new();
    for (object, spec) in accounts {
        let email = spec.email.to_string();
        let secrets = resolve_secrets(object)
            .with_context(|| format!("the secrets of GoogleAccount/{}", object.name))?;
        let token = secrets
            .get("/refreshToken")
            .with_context(|| format!("GoogleAccount/{} has no refreshToken", object.name))?;
        oauth.allow(token.expose(), &email);
        let people = PeopleFake::start().await;
        people.accept_any_token();
        let group = synced
            .iter()
            .find_map(|(a, g)| (*a == object.name).then(|| g.clone()).flatten());
        if let Some(group) = &group {
            people.create_group(group);
            people.add(
                "Lena Fischer",
                &["lena.fischer@fabrikam.example"],
                &[group.as_str()],
            );
            people.add(
                "Omar Haddad",
                &["omar.haddad@litware.example"],
                &[group.as_str()],
            );
        }
        // Not in the group: stays in Google.
        people.add("Grandma Weber", &["oma.weber@family.example"], &[]);
        let calendar = GCalendarFake::start(&email).await;
        calendar.add_group_event(
            &email,
            "Low-Code Days booth briefing",
            "2026-12-15T09:00:00+01:00",
            "2026-12-15T10:00:00+01:00",
            &["lena.fischer@fabrikam.example", "ava.lindqvist@example.com"],
        );
        calendar.add_event(
            &email,
            json!({"summary": "Webinar dry run", "start": {"dateTime": "2026-12-16T14:00:00Z"},
                   "end": {"dateTime": "2026-12-16T15:00:00Z"}}),
        );
        let listener = bind().await?;
        let base = format!("http://{}", listener.local_addr()?);
        let backends = Arc::new((base.clone(), people.base.clone(), calendar.base.clone()));
        let router = axum::Router::new()
            .fallback(google_proxy)
            .with_state(backends);
        tokio::spawn(async move { axum::serve(listener, router).await });
        let fake = Arc::new(GoogleFake {
            people,
            calendar,
            email,
            group,
        });
        out.push((object.name.clone(), fake, base));
    }
    Ok(Some((oauth, out)))
}

/// One `apiBaseUrl` for both APIs, as Google's own hosts are one to the daemon: `/calendar/…`
/// goes to the Calendar fake, everything else (`/v1/…`) to the People fake.
async fn google_proxy(
    State(backends): State<Arc<(String, String, String)>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (own, people, calendar) = &*backends;
    let backend = if uri.path().starts_with("/calendar/") {
        calendar
    } else {
        people
    };
    forward(method, &uri, &headers, body, backend, own).await
}

/// Forwards a request to `backend` and its answer back, with the backend's own URL in the
/// answer (the links of a page) made `own`: a client follows links on its base's origin only.
async fn forward(
    method: axum::http::Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: Bytes,
    backend: &str,
    own: &str,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = switchboard::net::http_client().request(method, format!("{backend}{path}"));
    for name in ["authorization", "content-type", "if-match", "prefer"] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value);
        }
    }
    match request.body(body).send().await {
        Ok(answer) => {
            let status = answer.status();
            let mut headers = HeaderMap::new();
            for name in ["content-type", "retry-after", "etag", "location"] {
                if let Some(value) = answer.headers().get(name) {
                    headers.insert(name, value.clone());
                }
            }
            let body = answer.bytes().await.unwrap_or_default();
            let body = String::from_utf8_lossy(&body).replace(backend, own);
            (status, headers, body).into_response()
        }
        Err(e) => text(
            StatusCode::BAD_GATEWAY,
            format!("the fake did not answer: {e}"),
        ),
    }
}

fn no_google_account(name: &str) -> Response {
    text(
        StatusCode::NOT_FOUND,
        format!("{name} is no synced GoogleAccount of the config"),
    )
}

/// The contacts in the account's synced group at Google, one `Name <email>` a line.
async fn google_contacts(State(control): State<Control>, Path(name): Path<String>) -> Response {
    if let Some(graph) = control.graph.get(&name) {
        let mut lines: Vec<String> = graph
            .contacts
            .all_contacts()
            .iter()
            .map(|c| {
                format!(
                    "{} <{}>",
                    plain(&c["displayName"]),
                    plain(&c["emailAddresses"][0]["address"])
                )
            })
            .collect();
        lines.sort();
        return text(StatusCode::OK, format!("Outlook: {}", lines.join(", ")));
    }
    let Some(account) = control.google.get(&name) else {
        return no_google_account(&name);
    };
    let Some(group) = &account.group else {
        return text(
            StatusCode::NOT_FOUND,
            format!("{name} has no synced contact group"),
        );
    };
    let mut lines: Vec<String> = account
        .people
        .members(group)
        .iter()
        .filter_map(|id| account.people.person(id))
        .map(|p| {
            let n = &p["names"][0];
            let full = format!(
                "{} {}",
                plain(&n["givenName"]),
                n["familyName"].as_str().unwrap_or_default()
            );
            format!(
                "{} <{}>",
                full.trim(),
                plain(&p["emailAddresses"][0]["value"])
            )
        })
        .collect();
    lines.sort();
    text(
        StatusCode::OK,
        format!("group {group:?}: {}", lines.join(", ")),
    )
}

/// The live events of the account's primary calendar at Google, `summary (start)`.
async fn google_events(State(control): State<Control>, Path(name): Path<String>) -> Response {
    let Some(account) = control.google.get(&name) else {
        return no_google_account(&name);
    };
    let mut lines: Vec<String> = account
        .calendar
        .live_events(&account.email)
        .iter()
        .map(|e| {
            let start = e["start"]["dateTime"]
                .as_str()
                .or(e["start"]["date"].as_str())
                .unwrap_or_default();
            format!("{} ({start})", plain(&e["summary"]))
        })
        .collect();
    lines.sort();
    text(StatusCode::OK, lines.join(", "))
}

/// A microsoft365 MailProvider's Graph: `(provider, token endpoint, {mailbox: fake}, apiBaseUrl)`.
type GraphProvider = (String, OAuthFake, BTreeMap<String, Arc<GraphFake>>, String);

/// Microsoft Graph for the config's microsoft365 MailProviders whose Mailboxes a ContactSync
/// or CalendarSync syncs: per provider, one token endpoint for its `oauth2` app, honouring
/// each mailbox's refresh token, and one `apiBaseUrl` that serves each mailbox its own
/// contacts, calendars and To Do (`/me` is whoever the bearer token was issued to), seeded as
/// the user had them.
async fn graph_providers(set: &ConfigSet) -> anyhow::Result<Vec<GraphProvider>> {
    let synced: Vec<String> = set
        .specs::<ContactSyncSpec>()
        .map(|(_, s)| s.account.clone())
        .chain(
            set.specs::<CalendarSyncSpec>()
                .map(|(_, s)| s.account.clone()),
        )
        .collect();
    let mut out = Vec::new();
    for (provider, spec) in set
        .specs::<MailProviderSpec>()
        .filter(|(_, s)| s.provider_type == MailProviderType::Microsoft365)
    {
        let mailboxes: Vec<_> = set
            .specs::<MailboxSpec>()
            .filter(|(o, m)| {
                synced.contains(&o.name)
                    && match &m.provider {
                        Some(p) => *p == provider.name,
                        None => spec.domains.contains(&m.address.domain()),
                    }
            })
            .collect();
        if mailboxes.is_empty() {
            continue;
        }
        let app = spec
            .oauth2
            .as_ref()
            .with_context(|| format!("MailProvider/{} has no oauth2 app", provider.name))?;
        let secret = app
            .client_secret
            .resolve(provider.origin.dir())
            .with_context(|| format!("MailProvider/{}'s oauth2.clientSecret", provider.name))?;
        let oauth =
            OAuthFake::start(&app.client_id, secret.expose(), Duration::from_secs(3600)).await;
        let mut by_name = BTreeMap::new();
        let mut by_user = HashMap::new();
        for (mailbox, m) in mailboxes {
            let address = m.address.to_string();
            // A mailbox whose refresh token is not handed over is not faked (the demo hands
            // over only the ones it syncs).
            let Some(token) = resolve_secrets(mailbox)
                .ok()
                .and_then(|mut s| s.remove("/oauth2RefreshToken"))
            else {
                println!(
                    "{:>18}  not faked: its oauth2RefreshToken is not at hand",
                    mailbox.name
                );
                continue;
            };
            oauth.allow(token.expose(), &address);
            let fake = Arc::new(GraphFake {
                contacts: GraphContactsFake::start(50).await,
                calendar: GraphCalendarFake::start(50).await,
            });
            seed_outlook(&fake, &address);
            by_user.insert(address, Arc::clone(&fake));
            by_name.insert(mailbox.name.clone(), fake);
        }
        let listener = bind().await?;
        let base = format!("http://{}", listener.local_addr()?);
        let proxy = Arc::new(GraphProxy {
            own: base.clone(),
            issued: Arc::clone(&oauth.state),
            users: by_user,
        });
        let router = axum::Router::new().fallback(graph_proxy).with_state(proxy);
        tokio::spawn(async move { axum::serve(listener, router).await });
        out.push((provider.name.clone(), oauth, by_name, base));
    }
    Ok(out)
}

/// A mailbox's Outlook as its user had it: two contacts, a meeting with a customer.
fn seed_outlook(fake: &GraphFake, address: &str) {
    for (given, surname, email, company) in [
        (
            "Henrik",
            "Dahl",
            "henrik.dahl@fjord.example",
            "Fjord Analytics",
        ),
        (
            "Ingrid",
            "Berg",
            "ingrid.berg@nordlys.example",
            "Nordlys Energi",
        ),
    ] {
        fake.contacts.add_contact(
            graph_contacts_fake::DEFAULT_FOLDER_ID,
            json!({"givenName": given, "surname": surname, "displayName": format!("{given} {surname}"),
                   "companyName": company, "categories": ["customer"],
                   "emailAddresses": [{"address": email, "name": format!("{given} {surname}")}]}),
        );
    }
    let customers = fake.calendar.add_calendar("Customer meetings");
    fake.calendar.add_event_json(
        &customers,
        json!({"subject": "Renewal call with Fjord Analytics",
               "start": {"dateTime": "2026-12-17T10:00:00.0000000", "timeZone": "UTC"},
               "end": {"dateTime": "2026-12-17T10:30:00.0000000", "timeZone": "UTC"},
               "organizer": {"emailAddress": {"name": address, "address": address}},
               "attendees": [{"type": "required",
                              "emailAddress": {"name": "Henrik Dahl", "address": "henrik.dahl@fjord.example"}}]}),
    );
}

/// A provider's Graph: each request goes to the fakes of the mailbox its token was issued to.
struct GraphProxy {
    own: String,
    issued: Arc<Mutex<oauth_fake::Inner>>,
    users: HashMap<String, Arc<GraphFake>>,
}

async fn graph_proxy(
    State(proxy): State<Arc<GraphProxy>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let user = proxy
        .issued
        .lock()
        .expect("oauth state")
        .issued
        .get(token)
        .map(|(user, _)| user.clone());
    let Some(fake) = user.and_then(|u| proxy.users.get(&u)) else {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"code": "InvalidAuthenticationToken",
                                        "message": "Access token is empty or invalid."}})),
        )
            .into_response();
    };
    let backend = if uri.path().starts_with("/v1.0/me/contact") {
        &fake.contacts.base
    } else {
        &fake.calendar.base
    };
    forward(method, &uri, &headers, body, backend, &proxy.own).await
}
