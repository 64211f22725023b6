//! The `Mailbox` connector: one run loads new mail from every chosen folder into the store.
//!
//! Built from the object and the whole config: the provider is the one `validate` resolved
//! (explicit, or by domain, EP-07), the login follows the provider's `loginFormat` (EP-03),
//! and the password arrives resolved in the sync context (EP-01 app passwords are just
//! passwords here). Provider types without a built transport stay `pending` with a reason,
//! never a fake success.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::kinds::{AuthMethod, LoginFormat, MailProviderType, MailboxSpec};
use crate::config::types::AllOrList;
use crate::config::{ConfigSet, Kind, KindSpec, Object};
use crate::connector::{
    Connector, ConnectorError, KindConnectors, SyncContext, SyncFuture, SyncReport, Trigger,
    WatchContext, WatchFuture,
};

use crate::config::kinds::MailProviderSpec;
use crate::store::mail::OutboxOutcome;

use super::access::{self, Right};
use super::consent::Callback;
use super::graph::{self, GraphApi, GraphClient, GraphError, MailFolder};
use super::imap::{self, Auth, FolderSync, ImapError, Server};
use super::oauth::{OAuthApp, OAuthError, TokenSource};
use super::smtp::{self, Draft, SendError, SmtpServer};

/// The pending reason of an `exchange` mailbox.
pub const EXCHANGE_PENDING: &str = "on-premises Exchange (EWS) is not supported yet";
/// The pending reason of a `microsoft365` mailbox whose provider does not use OAuth 2.0.
pub const MICROSOFT365_PENDING: &str = "Microsoft 365 through Graph needs `auth: oauth2` on the provider (password sign-in is not built yet; Exchange Online accepts only OAuth 2.0 tokens)";

/// A mailbox served by Microsoft Graph (EP-05).
#[derive(Debug, Clone)]
pub struct GraphMailbox {
    /// Where Graph is.
    pub api: GraphApi,
    /// Mail is loaded (mailbox and provider allow it).
    pub load: bool,
    /// Mail may be sent.
    pub send: bool,
}

/// A mailbox ready to sync.
#[derive(Debug, Clone)]
pub struct MailboxConnector {
    /// The Mailbox object's name.
    pub name: String,
    /// The IMAP server (`None` for a mailbox that does not load mail).
    pub server: Option<Server>,
    /// The login name.
    pub login: String,
    /// The mailbox's own addresses (not made contacts).
    pub own: Vec<String>,
    /// Folders: `None` = all.
    pub folders: Option<Vec<String>>,
    /// How far back the first sync reaches.
    pub period: Duration,
    /// The SMTP server, when the mailbox may send.
    pub smtp: Option<SmtpServer>,
    /// OAuth 2.0 access tokens, for a provider with `auth: oauth2` (shared across runs, so a
    /// valid token is reused).
    pub oauth: Option<Arc<TokenSource>>,
    /// Microsoft Graph, for a `microsoft365` mailbox (then `server` and `smtp` are `None`).
    pub graph: Option<GraphMailbox>,
    /// Whether INBOX is watched with IDLE: the mailbox loads mail automatically
    /// (`load.auto`) and INBOX is among its folders.
    pub idle: bool,
}

/// The registry factory for `Mailbox` objects.
pub fn build(object: &Object, set: &ConfigSet) -> Result<Arc<dyn Connector>, String> {
    MailboxConnector::new(object, set).map(|c| Arc::new(c) as Arc<dyn Connector>)
}

/// `Settings.mail.syncInterval`'s default, when there is no `Settings` object.
const DEFAULT_MAIL_SYNC_INTERVAL: Duration = Duration::from_secs(300);

/// What the registry knows of `Mailbox` objects: [`build`], and a mailbox that loads mail
/// automatically runs every `Settings.mail.syncInterval` (otherwise only on request).
pub struct MailboxConnectors;

impl KindConnectors for MailboxConnectors {
    fn build(&self, object: &Object, set: &ConfigSet) -> Result<Arc<dyn Connector>, String> {
        build(object, set)
    }

    /// The mailbox's provider (its manifest and resolved secrets, hashed): a new OAuth client
    /// secret or token URL rebuilds the connector, so a grant refused before is tried with
    /// it (BX-04).
    fn inputs(&self, object: &Object, set: &ConfigSet) -> String {
        use sha2::Digest;
        let Some((name, _)) =
            MailboxSpec::from_spec(&object.spec).and_then(|m| set.mail_provider_of(m))
        else {
            return String::new();
        };
        let Some(provider) = set.object(Kind::MailProvider, name) else {
            return String::new();
        };
        let mut hash = sha2::Sha256::new();
        hash.update(provider.spec.to_json().to_string().as_bytes());
        if let Ok(secrets) = crate::connector::resolve_secrets(provider) {
            for (pointer, secret) in secrets {
                for part in [pointer.as_str(), secret.expose()] {
                    hash.update((part.len() as u64).to_be_bytes());
                    hash.update(part.as_bytes());
                }
            }
        }
        hex::encode(hash.finalize())
    }

    fn trigger(&self, object: &Object, set: &ConfigSet) -> Trigger {
        match MailboxSpec::from_spec(&object.spec) {
            Some(m)
                if m.load.auto
                    && set
                        .mail_provider_of(m)
                        .is_some_and(|(_, p)| m.load.on(p.load)) =>
            {
                Trigger::Interval(
                    set.settings()
                        .map_or(DEFAULT_MAIL_SYNC_INTERVAL, |s| s.mail.sync_interval.get()),
                )
            }
            _ => Trigger::Manual,
        }
    }
}

impl MailboxConnector {
    /// Resolves `object`'s provider, login and folders; `Err` is the pending reason.
    pub fn new(object: &Object, set: &ConfigSet) -> Result<MailboxConnector, String> {
        let spec = MailboxSpec::from_spec(&object.spec)
            .ok_or_else(|| format!("{} is not a Mailbox", object.id()))?;
        let (provider_name, provider) = set
            .mail_provider_of(spec)
            .ok_or_else(|| format!("no MailProvider serves {}", spec.address.as_str()))?;
        let graph = match provider.provider_type {
            MailProviderType::Exchange => return Err(EXCHANGE_PENDING.into()),
            MailProviderType::Microsoft365 if provider.auth != AuthMethod::Oauth2 => {
                return Err(MICROSOFT365_PENDING.into());
            }
            MailProviderType::Microsoft365 => Some(GraphMailbox {
                api: GraphApi {
                    base: provider
                        .api_base_url
                        .as_ref()
                        .map_or(graph::DEFAULT_BASE_URL, |u| u.as_str())
                        .trim_end_matches('/')
                        .to_owned(),
                },
                load: spec.load.on(provider.load),
                send: spec.send.on(provider.send),
            }),
            MailProviderType::Imap | MailProviderType::Gmail => None,
        };
        let oauth = oauth_app(set, provider_name, provider)?
            .map(|app| Arc::new(TokenSource::new(&object.name, app)));
        let address = spec.address.as_str().to_owned();
        let login = match provider.login_format {
            LoginFormat::Email => address.clone(),
            LoginFormat::LocalPart => spec.address.local_part().to_owned(),
            LoginFormat::Manual => spec
                .login
                .clone()
                .ok_or("the provider's loginFormat is manual and the mailbox has no login")?,
        };
        // A relative caFile is relative to the provider's manifest, like secret files.
        let base = set
            .object(Kind::MailProvider, provider_name)
            .map(|o| o.origin.dir().to_path_buf())
            .unwrap_or_default();
        let ca_file = provider.ca_file.as_ref().map(|p| -> PathBuf {
            if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }
        });
        let smtp = (graph.is_none() && spec.send.on(provider.send))
            .then_some(provider.smtp.as_ref())
            .flatten()
            .map(|smtp| SmtpServer {
                host: smtp.host.clone(),
                port: smtp.port,
                security: smtp.security,
                ca_file: ca_file.clone(),
                timeout: set
                    .settings()
                    .map_or(super::smtp::SEND_TIMEOUT, |s| s.mail.smtp_timeout.get()),
            });
        let server = (graph.is_none() && spec.load.on(provider.load))
            .then_some(provider.imap.as_ref())
            .flatten()
            .map(|imap| Server {
                host: imap.host.clone(),
                port: imap.port,
                security: imap.security,
                ca_file,
            });
        let idle = spec.load.auto
            && server.is_some()
            && match &spec.load.folders {
                AllOrList::All(_) => true,
                AllOrList::List(list) => list.iter().any(|f| f.eq_ignore_ascii_case("INBOX")),
            };
        let mut own = vec![address];
        if !own.contains(&login) {
            own.push(login.clone());
        }
        Ok(MailboxConnector {
            name: object.name.clone(),
            server,
            login,
            own,
            folders: match &spec.load.folders {
                AllOrList::All(_) => None,
                AllOrList::List(list) => Some(list.clone()),
            },
            period: spec.load.period.get(),
            smtp,
            oauth,
            graph,
            idle,
        })
    }

    /// The password, or with OAuth 2.0 an access token (a new one with `force`).
    pub(super) async fn credential(
        &self,
        ctx: &SyncContext<'_>,
        force: bool,
    ) -> Result<String, RunError> {
        match &self.oauth {
            None => Ok(ctx
                .secrets
                .get("/password")
                .map(|s| s.expose().to_owned())
                .unwrap_or_default()),
            Some(source) => Ok(source
                .token(
                    ctx.store,
                    &ctx.clock,
                    ctx.secrets.get("/oauth2RefreshToken"),
                    force,
                    ctx.metrics,
                )
                .await?),
        }
    }

    /// Connects and logs in; with OAuth 2.0 a refused token is refreshed once and retried
    /// (it may have been revoked before it expired).
    pub(super) async fn login(
        &self,
        server: &Server,
        ctx: &SyncContext<'_>,
        credential: &str,
    ) -> Result<imap::ImapSession, RunError> {
        if self.oauth.is_none() {
            return Ok(imap::connect(server, &self.login, Auth::Password(credential)).await?);
        }
        match imap::connect(server, &self.login, Auth::XOAuth2(credential)).await {
            Err(ImapError::Login { answer, .. }) => {
                tracing::info!(mailbox = %self.name, %answer, "XOAUTH2 refused; refreshing the access token once");
                let token = self.credential(ctx, true).await?;
                Ok(imap::connect(server, &self.login, Auth::XOAuth2(&token)).await?)
            }
            other => Ok(other?),
        }
    }

    async fn run(&self, ctx: &SyncContext<'_>) -> Result<SyncReport, RunError> {
        // Held for the whole run: at start every mailbox is due at once.
        let Some(_turn) = super::sessions::turn(&ctx.cancel).await else {
            return Err(RunError::Imap(ImapError::Cancelled));
        };
        let password = self.credential(ctx, false).await?;
        if let Some(graph) = &self.graph {
            return self.run_graph(ctx, graph, password).await;
        }
        // The outbox first: sending is what a user waits for.
        let (sent, waiting) = self.flush_outbox(ctx, &password).await?;
        let mut report = match &self.server {
            None => SyncReport::default(),
            Some(server) => {
                let mut session = self.login(server, ctx, &password).await?;
                let result = async {
                    // Filed before loading, so the Sent folder's sync finds the copy stored.
                    // A refused APPEND (a message over the server's size limit, a read-only
                    // folder) must not stop loading: it is retried on the next run.
                    match self.file_sent(&mut session, ctx).await {
                        Err(ImapError::Command { command, answer }) => {
                            tracing::warn!(mailbox = %self.name, %command, %answer, "sent mail could not be filed in the Sent folder; retrying on the next run");
                        }
                        other => other?,
                    }
                    self.sync_folders(&mut session, ctx).await
                }
                .await;
                // Best effort: the server closes idle sessions anyway.
                let _ = tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
                result?
            }
        };
        report.items_out += sent;
        if let Some(error) = waiting {
            // Loading succeeded, but mail waits: fail the run so the scheduler retries soon.
            return Err(RunError::Waiting(error));
        }
        Ok(report)
    }

    /// One Graph run: the outbox through `sendMail`, then each folder's delta round. A
    /// refused access token is refreshed once.
    async fn run_graph(
        &self,
        ctx: &SyncContext<'_>,
        graph: &GraphMailbox,
        token: String,
    ) -> Result<SyncReport, RunError> {
        let (sent, waiting) = self.flush_outbox(ctx, &token).await?;
        let mut report = SyncReport::default();
        if graph.load {
            report = match self.load_graph(ctx, &graph.api, token).await {
                Err(RunError::Graph(GraphError::Unauthorized(answer))) if self.oauth.is_some() => {
                    tracing::info!(mailbox = %self.name, %answer, "Graph refused the access token; refreshing it once");
                    let token = self.credential(ctx, true).await?;
                    self.load_graph(ctx, &graph.api, token).await?
                }
                other => other?,
            };
        }
        report.items_out += sent;
        if let Some(error) = waiting {
            return Err(RunError::Waiting(error));
        }
        Ok(report)
    }

    async fn load_graph(
        &self,
        ctx: &SyncContext<'_>,
        api: &GraphApi,
        token: String,
    ) -> Result<SyncReport, RunError> {
        let client = GraphClient::new(api, token, &ctx.cancel);
        let on_server = client.folders().await?;
        let (folders, missing): (Vec<MailFolder>, Vec<String>) = match &self.folders {
            None => (on_server, Vec::new()),
            Some(list) => {
                let mut found = Vec::new();
                let mut missing = Vec::new();
                for name in list {
                    let hit = on_server.iter().find(|f| {
                        f.display_name == *name
                            || (name.eq_ignore_ascii_case("INBOX")
                                && f.display_name.eq_ignore_ascii_case("Inbox"))
                    });
                    match hit {
                        Some(f) => found.push(f.clone()),
                        None => missing.push(name.clone()),
                    }
                }
                (found, missing)
            }
        };
        let since = ctx.clock.now()
            - chrono::Duration::from_std(self.period).unwrap_or(chrono::Duration::days(30));
        let counter = ctx
            .metrics
            .mail_messages_total
            .with_label_values(&[self.name.as_str(), "in"]);
        let mut report = SyncReport::default();
        for folder in &folders {
            let new = client
                .sync_folder(ctx.store, &ctx.clock, &self.name, folder, since, &self.own)
                .await?;
            counter.inc_by(new);
            report.items_in += new;
        }
        if !missing.is_empty() {
            return Err(GraphError::MissingFolders(missing).into());
        }
        Ok(report)
    }

    /// Sends the due messages of the outbox. Returns how many went out, and the error of the
    /// first one that must wait for a retry.
    async fn flush_outbox(
        &self,
        ctx: &SyncContext<'_>,
        password: &str,
    ) -> Result<(u64, Option<String>), RunError> {
        let transport = match (&self.smtp, &self.graph) {
            (Some(server), _) => Transport::Smtp(server),
            (None, Some(graph)) if graph.send => Transport::Graph(&graph.api),
            _ => return Ok((0, None)),
        };
        let name = self.name.clone();
        let now = ctx.clock.now();
        let due = ctx
            .store
            .call(move |s| s.due_outbox(&name, now))
            .await
            .map_err(ImapError::Store)?;
        let counter = ctx
            .metrics
            .mail_messages_total
            .with_label_values(&[self.name.as_str(), "out"]);
        let (mut sent, mut waiting) = (0u64, None);
        for item in due {
            if ctx.cancel.is_cancelled() {
                return Err(ImapError::Cancelled.into());
            }
            let deliver = |credential: String| {
                let item = &item;
                let cancel = &ctx.cancel;
                async move {
                    match transport {
                        Transport::Smtp(server) => {
                            smtp::deliver(
                                server,
                                &self.login,
                                &credential,
                                self.oauth.is_some(),
                                &item.envelope_from,
                                &item.envelope_to,
                                &item.raw,
                            )
                            .await
                        }
                        Transport::Graph(api) => {
                            GraphClient::new(api, credential, cancel)
                                .send_mail(&item.raw)
                                .await
                        }
                    }
                }
            };
            let mut result = deliver(password.to_owned()).await;
            // A refused token (SMTP 535, Graph 401) is refreshed once, not reported as
            // undeliverable.
            if self.oauth.is_some()
                && matches!(&result, Err(SendError::Permanent(e))
                    if e.contains("535") || e.contains(graph::TOKEN_REFUSED))
            {
                result = deliver(self.credential(ctx, true).await?).await;
            }
            let now = ctx.clock.now();
            let outcome = match result {
                Ok(()) => {
                    sent += 1;
                    counter.inc();
                    OutboxOutcome::Sent
                }
                Err(SendError::Permanent(error)) => {
                    tracing::warn!(mailbox = %self.name, email = item.email_id, %error, "a message could not be delivered");
                    OutboxOutcome::Failed { error }
                }
                Err(SendError::Temporary(error)) => {
                    let delay = smtp::retry_delay(item.attempts + 1);
                    waiting.get_or_insert_with(|| {
                        format!(
                            "a message waits to be sent (retry in {}s): {error}",
                            delay.as_secs()
                        )
                    });
                    OutboxOutcome::Retry {
                        at: now + chrono::Duration::from_std(delay).unwrap_or_default(),
                        error,
                    }
                }
            };
            let id = item.email_id;
            ctx.store
                .call(move |s| s.outbox_result(id, &outcome, now))
                .await
                .map_err(ImapError::Store)?;
        }
        if waiting.is_none() {
            // Messages deferred earlier and not due yet still wait: say so, so the run fails
            // and the scheduler's backoff brings the next attempt forward.
            let name = self.name.clone();
            let queued = ctx
                .store
                .call(move |s| s.outbox_waiting(&name))
                .await
                .map_err(ImapError::Store)?;
            if queued > 0 {
                waiting = Some(format!(
                    "{queued} message(s) wait to be sent after a temporary failure"
                ));
            }
        }
        Ok((sent, waiting))
    }

    /// APPENDs sent mail not yet in the server's Sent folder (MB-03).
    async fn file_sent(
        &self,
        session: &mut imap::ImapSession,
        ctx: &SyncContext<'_>,
    ) -> Result<(), ImapError> {
        let name = self.name.clone();
        let copies = ctx.store.call(move |s| s.unfiled_sent(&name)).await?;
        let filed = super::sent::file_sent(session, ctx.store, copies).await?;
        if filed > 0 {
            tracing::info!(mailbox = %self.name, filed, "sent mail filed in the Sent folder");
        }
        Ok(())
    }

    async fn sync_folders(
        &self,
        session: &mut imap::ImapSession,
        ctx: &SyncContext<'_>,
    ) -> Result<SyncReport, ImapError> {
        let condstore = session
            .capabilities()
            .await
            .map(|c| c.has_str("CONDSTORE"))
            .unwrap_or(false);
        let on_server = imap::list_folders(session).await?;
        let (folders, missing) = imap::choose_folders(&on_server, self.folders.as_deref());
        let counter = ctx
            .metrics
            .mail_messages_total
            .with_label_values(&[self.name.as_str(), "in"]);
        let on_commit = move |new: u64| counter.inc_by(new);
        let sync = FolderSync {
            mailbox: &self.name,
            store: ctx.store,
            period: self.period,
            own: &self.own,
            cancel: &ctx.cancel,
            on_commit: &on_commit,
            clock: ctx.clock,
        };
        let mut report = SyncReport::default();
        for folder in &folders {
            if ctx.cancel.is_cancelled() {
                return Err(ImapError::Cancelled);
            }
            report.items_in += imap::sync_folder(session, folder, &sync, condstore).await?;
        }
        if !missing.is_empty() {
            return Err(ImapError::MissingFolders(missing));
        }
        Ok(report)
    }
}

/// The provider's OAuth 2.0 application with its client secret resolved; `None` for basic
/// auth, `Err` (a pending reason) when it cannot be built.
fn oauth_app(
    set: &ConfigSet,
    provider_name: &str,
    provider: &MailProviderSpec,
) -> Result<Option<OAuthApp>, String> {
    match (&provider.auth, &provider.oauth2) {
        (AuthMethod::Basic, _) => Ok(None),
        (AuthMethod::Oauth2, None) => {
            Err("the provider has auth: oauth2 but no oauth2 application".into())
        }
        (AuthMethod::Oauth2, Some(app)) => {
            // The client secret is the provider's; resolve it the way the engine resolves
            // the mailbox's own secrets.
            let provider_object = set
                .object(Kind::MailProvider, provider_name)
                .ok_or("the provider object is missing")?;
            let secrets = crate::connector::resolve_secrets(provider_object)
                .map_err(|e| format!("provider {provider_name}: {e}"))?;
            let client_secret = secrets
                .get("/oauth2/clientSecret")
                .cloned()
                .ok_or("the provider's oauth2.clientSecret did not resolve")?;
            Ok(Some(OAuthApp {
                client_id: app.client_id.clone(),
                client_secret,
                auth_url: app.auth_url.as_str().to_owned(),
                token_url: app.token_url.as_str().to_owned(),
                scopes: app.scopes.clone(),
            }))
        }
    }
}

/// The OAuth 2.0 grant of mailbox `name` as its connector refreshes it: its provider's
/// application and the mailbox's `oauth2RefreshToken` (resolved; `None` = the one its consent
/// stored). `Err` says why the mailbox has none (basic auth, no provider, a secret that does
/// not resolve). Another domain that reuses the grant (contact and calendar sync over Graph)
/// makes a [`TokenSource::new`] from it, so the tokens stay under the mailbox's key.
pub fn oauth_grant(
    set: &ConfigSet,
    name: &str,
) -> Result<(OAuthApp, Option<crate::config::types::Secret>), String> {
    let object = set
        .object(Kind::Mailbox, name)
        .ok_or_else(|| format!("no Mailbox named `{name}` in the configuration"))?;
    let spec = MailboxSpec::from_spec(&object.spec)
        .ok_or_else(|| format!("{} is not a Mailbox", object.id()))?;
    let (provider_name, provider) = set
        .mail_provider_of(spec)
        .ok_or_else(|| format!("no MailProvider serves {}", spec.address.as_str()))?;
    let app = oauth_app(set, provider_name, provider)?.ok_or_else(|| {
        format!("mailbox {name}'s provider {provider_name} uses basic auth, not OAuth 2.0")
    })?;
    let configured = spec
        .oauth2_refresh_token
        .as_ref()
        .map(|r| r.resolve(object.origin.dir()))
        .transpose()
        .map_err(|e| format!("mailbox {name}'s oauth2RefreshToken: {e}"))?;
    Ok((app, configured))
}

/// Where a mailbox's consent flow goes and comes back.
#[derive(Debug, Clone)]
pub struct ConsentTarget {
    /// The key its tokens are stored under: a Mailbox's name, or `KIND/NAME` for another
    /// kind's grant (`LinkedInAccount/alice`).
    pub mailbox: String,
    /// Its provider's OAuth 2.0 application.
    pub app: OAuthApp,
    /// The callback the provider redirects to.
    pub callback: Callback,
    /// `{Settings.siteUrl}/oauth/{callback}/callback`.
    pub redirect_uri: String,
}

/// The consent flow of mailbox `name` (EP-05, EP-06): its provider's application and the
/// callback — `google` for `gmail`, `microsoft` for `microsoft365` and `exchange`, and for
/// `imap` by the host of `oauth2.authUrl`. `Err` says what to fix.
pub fn consent_target(set: &ConfigSet, name: &str) -> Result<ConsentTarget, String> {
    let object = set
        .object(Kind::Mailbox, name)
        .ok_or_else(|| format!("no Mailbox named `{name}` in the configuration"))?;
    let spec = MailboxSpec::from_spec(&object.spec)
        .ok_or_else(|| format!("{} is not a Mailbox", object.id()))?;
    let (provider_name, provider) = set
        .mail_provider_of(spec)
        .ok_or_else(|| format!("no MailProvider serves {}", spec.address.as_str()))?;
    let app = oauth_app(set, provider_name, provider)?.ok_or_else(|| {
        format!(
            "mailbox {name}'s provider {provider_name} uses basic auth; the consent flow is for `auth: oauth2` providers"
        )
    })?;
    let callback = match provider.provider_type {
        MailProviderType::Gmail => Callback::Google,
        MailProviderType::Microsoft365 | MailProviderType::Exchange => Callback::Microsoft,
        MailProviderType::Imap => Callback::by_auth_url(&app.auth_url),
    };
    let site_url = set
        .settings()
        .map(|s| s.site_url.as_str().to_owned())
        .ok_or("the consent flow needs Settings.siteUrl (the public address the provider redirects to)")?;
    Ok(ConsentTarget {
        mailbox: name.to_owned(),
        redirect_uri: callback.redirect_uri(&site_url),
        app,
        callback,
    })
}

/// How the outbox is delivered.
#[derive(Clone, Copy)]
enum Transport<'a> {
    Smtp(&'a SmtpServer),
    Graph(&'a GraphApi),
}

/// Why a run did not succeed.
#[derive(Debug, thiserror::Error)]
pub(super) enum RunError {
    /// Loading failed.
    #[error(transparent)]
    Imap(#[from] ImapError),
    /// Sending must be retried.
    #[error("{0}")]
    Waiting(String),
    /// Microsoft Graph failed.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// No OAuth 2.0 access token.
    #[error(transparent)]
    OAuth(#[from] OAuthError),
}

impl Connector for MailboxConnector {
    fn sync<'a>(&'a self, ctx: SyncContext<'a>) -> SyncFuture<'a> {
        Box::pin(async move {
            match self.run(&ctx).await {
                Ok(report) => Ok(report),
                Err(
                    RunError::Imap(ImapError::Cancelled) | RunError::Graph(GraphError::Cancelled),
                ) => Err(ConnectorError::Cancelled),
                Err(e) => Err(ConnectorError::Failed(e.to_string())),
            }
        })
    }

    fn watch(self: Arc<Self>, ctx: WatchContext) -> Option<WatchFuture> {
        self.idle
            .then(|| Box::pin(super::idle::watch(self, ctx)) as WatchFuture)
    }
}

/// Why a send request is refused (each maps to an HTTP status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendRefusal {
    /// No such mailbox (404).
    #[error("no mailbox named {0}")]
    Unknown(String),
    /// The caller may not send with it (403).
    #[error("user {user} may not send with mailbox {mailbox}")]
    Forbidden {
        /// Caller.
        user: String,
        /// Mailbox.
        mailbox: String,
    },
    /// It cannot send (422).
    #[error("{0}")]
    Unprocessable(String),
}

/// The mailbox `user` sends with — `requested`, or their default sender (MB-03) — and the
/// draft's sender fields from its settings (alias, signature when `useSignature`).
pub fn sender(
    set: &ConfigSet,
    user: &str,
    requested: Option<&str>,
) -> Result<(String, Draft), SendRefusal> {
    let (object, spec) = match requested {
        Some(name) => set
            .specs::<MailboxSpec>()
            .find(|(o, _)| o.name == name)
            .ok_or_else(|| SendRefusal::Unknown(name.to_owned()))?,
        None => set
            .specs::<MailboxSpec>()
            .find(|(_, m)| m.owner == user && m.send.default_sender)
            .ok_or_else(|| {
                SendRefusal::Unprocessable(format!(
                    "no `mailbox` given and user {user} has no default sender mailbox (send.defaultSender)"
                ))
            })?,
    };
    if !access::allowed(set, user, spec, Right::Send) {
        return Err(SendRefusal::Forbidden {
            user: user.to_owned(),
            mailbox: object.name.clone(),
        });
    }
    if spec.send.enabled == Some(false) {
        return Err(SendRefusal::Unprocessable(format!(
            "mailbox {} has send.enabled: false and cannot be used as a sender",
            object.name
        )));
    }
    let provider: Option<&MailProviderSpec> = set.mail_provider_of(spec).map(|(_, p)| p);
    let can = provider.is_some_and(|p| {
        p.send
            && match p.provider_type {
                MailProviderType::Imap | MailProviderType::Gmail => p.smtp.is_some(),
                MailProviderType::Microsoft365 => p.auth == AuthMethod::Oauth2,
                MailProviderType::Exchange => false,
            }
    });
    if !can {
        return Err(SendRefusal::Unprocessable(format!(
            "mailbox {} cannot send: its provider has no SMTP server, or is Microsoft 365 without auth: oauth2 (on-premises Exchange sending is not built yet)",
            object.name
        )));
    }
    let draft = Draft {
        from: spec.address.as_str().to_owned(),
        alias: spec.send.alias.clone(),
        to: Vec::new(),
        cc: Vec::new(),
        subject: String::new(),
        text: None,
        html: None,
        signature: spec
            .send
            .use_signature
            .then(|| spec.send.signature.clone())
            .flatten(),
    };
    Ok((object.name.clone(), draft))
}
