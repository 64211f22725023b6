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
use crate::engine::connector::{Connector, ConnectorError, SyncContext, SyncFuture, SyncReport};

use super::imap::{self, FolderSync, ImapError, Server};

/// The pending reason of an `exchange` mailbox.
pub const EXCHANGE_PENDING: &str = "on-premises Exchange (EWS) is not supported yet";
/// The pending reason of a `microsoft365` mailbox.
pub const MICROSOFT365_PENDING: &str =
    "the Microsoft 365 (Graph) mail connector is not built yet (issue: mail)";
/// The pending reason of an OAuth 2.0 mailbox.
pub const OAUTH2_PENDING: &str = "OAuth 2.0 (XOAUTH2) mail login is not built yet (issue: mail); use basic auth with an app password";

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
}

/// The registry factory for `Mailbox` objects.
pub fn build(object: &Object, set: &ConfigSet) -> Result<Arc<dyn Connector>, String> {
    MailboxConnector::new(object, set).map(|c| Arc::new(c) as Arc<dyn Connector>)
}

impl MailboxConnector {
    /// Resolves `object`'s provider, login and folders; `Err` is the pending reason.
    pub fn new(object: &Object, set: &ConfigSet) -> Result<MailboxConnector, String> {
        let spec = MailboxSpec::from_spec(&object.spec)
            .ok_or_else(|| format!("{} is not a Mailbox", object.id()))?;
        let (provider_name, provider) = set
            .mail_provider_of(spec)
            .ok_or_else(|| format!("no MailProvider serves {}", spec.address.as_str()))?;
        match provider.provider_type {
            MailProviderType::Exchange => return Err(EXCHANGE_PENDING.into()),
            MailProviderType::Microsoft365 => return Err(MICROSOFT365_PENDING.into()),
            MailProviderType::Imap | MailProviderType::Gmail => {}
        }
        if provider.auth == AuthMethod::Oauth2 {
            return Err(OAUTH2_PENDING.into());
        }
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
        let server = (spec.load.enabled && provider.load)
            .then_some(provider.imap.as_ref())
            .flatten()
            .map(|imap| Server {
                host: imap.host.clone(),
                port: imap.port,
                security: imap.security,
                ca_file,
            });
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
        })
    }

    async fn run(&self, ctx: &SyncContext<'_>) -> Result<SyncReport, ImapError> {
        let Some(server) = &self.server else {
            // A send-only mailbox: there is nothing to load.
            return Ok(SyncReport::default());
        };
        let password = ctx
            .secrets
            .get("/password")
            .map(|s| s.expose().to_owned())
            .unwrap_or_default();
        let mut session = imap::connect(server, &self.login, &password).await?;
        let result = self.sync_folders(&mut session, ctx).await;
        // Best effort: the server closes idle sessions anyway.
        let _ = tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
        result
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

impl Connector for MailboxConnector {
    fn sync<'a>(&'a self, ctx: SyncContext<'a>) -> SyncFuture<'a> {
        Box::pin(async move {
            match self.run(&ctx).await {
                Ok(report) => Ok(report),
                Err(ImapError::Cancelled) => Err(ConnectorError::Cancelled),
                Err(e) => Err(ConnectorError::Failed(e.to_string())),
            }
        })
    }
}
