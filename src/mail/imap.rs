//! IMAP: connecting (TLS, STARTTLS or plain), logging in, choosing folders, and syncing a
//! folder into the store from its checkpoint.
//!
//! One folder sync: SELECT (with CONDSTORE when offered) → compare UIDVALIDITY with the
//! checkpoint (a change starts the folder over; the store re-keys messages it already has) →
//! UID SEARCH for UIDs above the checkpoint (`SINCE` the load period until the first sync has
//! completed) → UID FETCH in batches of [`BATCH`]. Batches are pipelined: batch *n* is committed
//! (messages and checkpoint in one transaction) while batch *n+1* is on the wire. The
//! cancellation token is checked between batches, so a stop loses at most one uncommitted
//! batch, which the next run fetches again.
//!
//! async-imap (on tokio, its TLS left to us) does the protocol; it is the maintained async
//! IMAP client with IDLE, CONDSTORE and SASL. This module must not know manifests: it gets a
//! [`Server`] and a login.

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::types::{Fetch, Flag, NameAttribute};
use async_imap::{Client, Session};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::kinds::Security;
use crate::store::StoreError;
use crate::store::StoreHandle;
use crate::store::mail::{
    AttachmentMeta, Checkpoint, Direction, FolderState, MailAddress, NewEmail, Progress,
};

use super::mime;
use super::tls::{self, TlsError};

/// UIDs per UID FETCH (and per store transaction).
pub const BATCH: usize = 200;
/// How long connecting, the greeting, STARTTLS and LOGIN may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one command (SELECT, SEARCH, one batch's FETCH) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// What each message is fetched with.
const FETCH_ITEMS: &str = "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])";

/// Where an IMAP server is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Transport security.
    pub security: Security,
    /// A PEM CA file to trust besides the Web PKI roots.
    pub ca_file: Option<PathBuf>,
}

/// Why an IMAP step failed. Messages carry the server's own words and never a password.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// The TCP connection failed.
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// Why.
        source: std::io::Error,
    },
    /// TLS failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The server refused the login.
    #[error("the IMAP server refused the login of {login}: {answer}")]
    Login {
        /// The login name (never the password).
        login: String,
        /// The server's answer.
        answer: String,
    },
    /// A command failed.
    #[error("IMAP {command} failed: {answer}")]
    Command {
        /// The command (no arguments that could hold secrets).
        command: String,
        /// The server's answer or the transport error.
        answer: String,
    },
    /// A step took too long.
    #[error("IMAP {0} timed out")]
    Timeout(String),
    /// Listed folders that the server does not have.
    #[error("the server has no folder named {}", .0.join(", "))]
    MissingFolders(Vec<String>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cancellation token fired; everything before was committed.
    #[error("interrupted")]
    Cancelled,
}

/// The transport under an IMAP session: plain TCP or TLS over it.
pub enum Stream {
    /// Plain TCP (`security: none`).
    Plain(TcpStream),
    /// TLS (implicit, or after STARTTLS).
    Tls(Box<TlsStream<TcpStream>>),
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stream::Plain(_) => "Stream::Plain",
            Stream::Tls(_) => "Stream::Tls",
        })
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A logged-in IMAP session.
pub type ImapSession = Session<Stream>;

/// The human part of an async-imap error: for a NO/BAD, the server's text (async-imap formats
/// it as `code: .., info: Some("...")`), otherwise the error itself.
pub fn server_answer(error: &async_imap::error::Error) -> String {
    use async_imap::error::Error;
    match error {
        Error::No(detail) | Error::Bad(detail) => {
            let status = if matches!(error, Error::No(_)) {
                "NO"
            } else {
                "BAD"
            };
            let info = detail
                .split_once("info: Some(\"")
                .and_then(|(_, rest)| rest.rsplit_once("\")"))
                .map(|(text, _)| text.replace("\\\"", "\""));
            match info {
                Some(text) => format!("{status} {text}"),
                None => format!("{status} {detail}"),
            }
        }
        other => other.to_string(),
    }
}

fn command_error(command: &str) -> impl Fn(async_imap::error::Error) -> ImapError + '_ {
    move |e| ImapError::Command {
        command: command.to_owned(),
        answer: server_answer(&e),
    }
}

async fn timed<T>(
    what: &str,
    limit: Duration,
    future: impl std::future::Future<Output = Result<T, ImapError>>,
) -> Result<T, ImapError> {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| Err(ImapError::Timeout(what.to_owned())))
}

/// How a session proves who it is.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    /// LOGIN with a password (or an app password, EP-01).
    Password(&'a str),
    /// AUTHENTICATE XOAUTH2 with an OAuth 2.0 access token (EP-04..06).
    XOAuth2(&'a str),
}

/// The SASL exchange of XOAUTH2: the initial response, then an empty answer to the error
/// challenge a server sends before its NO (RFC 7628 style, as Gmail and Dovecot do).
struct XOAuth2 {
    initial: Option<String>,
}

impl async_imap::Authenticator for XOAuth2 {
    type Response = String;
    fn process(&mut self, _challenge: &[u8]) -> String {
        self.initial.take().unwrap_or_default()
    }
}

/// Connects with `server.security` and logs in as `login`.
pub async fn connect(
    server: &Server,
    login: &str,
    auth: Auth<'_>,
) -> Result<ImapSession, ImapError> {
    timed("connect and login", CONNECT_TIMEOUT, async {
        let client = open(server).await?;
        let refused = |(e, _): (async_imap::error::Error, _)| ImapError::Login {
            login: login.to_owned(),
            answer: server_answer(&e),
        };
        match auth {
            Auth::Password(password) => client.login(login, password).await.map_err(refused),
            Auth::XOAuth2(token) => client
                .authenticate(
                    "XOAUTH2",
                    XOAuth2 {
                        initial: Some(super::oauth::xoauth2(login, token)),
                    },
                )
                .await
                .map_err(refused),
        }
    })
    .await
}

/// Opens the connection and reads the greeting (upgrading with STARTTLS when asked).
async fn open(server: &Server) -> Result<Client<Stream>, ImapError> {
    let tcp = TcpStream::connect((server.host.as_str(), server.port))
        .await
        .map_err(|source| ImapError::Connect {
            host: server.host.clone(),
            port: server.port,
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    match server.security {
        Security::Tls => {
            let config = tls::client_config(server.ca_file.as_deref())?;
            let tls = tls::connect(config, &server.host, tcp).await?;
            let mut client = Client::new(Stream::Tls(Box::new(tls)));
            read_greeting(&mut client).await?;
            Ok(client)
        }
        Security::None => {
            let mut client = Client::new(Stream::Plain(tcp));
            read_greeting(&mut client).await?;
            Ok(client)
        }
        Security::Starttls => {
            let config = tls::client_config(server.ca_file.as_deref())?;
            let mut client = Client::new(Stream::Plain(tcp));
            read_greeting(&mut client).await?;
            client
                .run_command_and_check_ok("STARTTLS", None)
                .await
                .map_err(command_error("STARTTLS"))?;
            let Stream::Plain(tcp) = client.into_inner() else {
                unreachable!("the stream is plain until STARTTLS succeeds");
            };
            let tls = tls::connect(config, &server.host, tcp).await?;
            // No greeting after STARTTLS (RFC 3501 6.2.1).
            Ok(Client::new(Stream::Tls(Box::new(tls))))
        }
    }
}

async fn read_greeting(client: &mut Client<Stream>) -> Result<(), ImapError> {
    match client.read_response().await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ImapError::Command {
            command: "greeting".into(),
            answer: "the server closed the connection".into(),
        }),
        Err(e) => Err(ImapError::Command {
            command: "greeting".into(),
            answer: e.to_string(),
        }),
    }
}

/// A folder on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// Its full name (hierarchy separated by the server's delimiter).
    pub name: String,
    /// Whether it can be selected.
    pub selectable: bool,
}

/// Every folder on the server (LIST "" "*").
pub async fn list_folders(session: &mut ImapSession) -> Result<Vec<Folder>, ImapError> {
    timed("LIST", COMMAND_TIMEOUT, async {
        let names: Vec<_> = session
            .list(Some(""), Some("*"))
            .await
            .map_err(command_error("LIST"))?
            .try_collect()
            .await
            .map_err(command_error("LIST"))?;
        Ok(names
            .iter()
            .map(|n| Folder {
                name: n.name().to_owned(),
                selectable: !n.attributes().iter().any(|a| match a {
                    NameAttribute::NoSelect => true,
                    NameAttribute::Extension(ext) => ext.eq_ignore_ascii_case("\\NonExistent"),
                    _ => false,
                }),
            })
            .collect())
    })
    .await
}

/// The folders to sync: every selectable one for `None` (`folders: all`), or exactly the
/// listed ones — a listed parent does not bring its children (MB-02). Listed folders the
/// server lacks are returned apart, so the rest still syncs.
pub fn choose_folders(server: &[Folder], wanted: Option<&[String]>) -> (Vec<String>, Vec<String>) {
    match wanted {
        None => (
            server
                .iter()
                .filter(|f| f.selectable)
                .map(|f| f.name.clone())
                .collect(),
            Vec::new(),
        ),
        Some(list) => {
            let mut found = Vec::new();
            let mut missing = Vec::new();
            for name in list {
                // INBOX is case-insensitive (RFC 3501 5.1); other names are exact.
                let hit = server.iter().find(|f| {
                    f.selectable
                        && (f.name == *name
                            || (name.eq_ignore_ascii_case("INBOX")
                                && f.name.eq_ignore_ascii_case("INBOX")))
                });
                match hit {
                    Some(f) => found.push(f.name.clone()),
                    None => missing.push(name.clone()),
                }
            }
            (found, missing)
        }
    }
}

/// What a folder sync needs besides the session.
pub struct FolderSync<'a> {
    /// The Mailbox object's name (store key and metric label).
    pub mailbox: &'a str,
    /// The store.
    pub store: &'a StoreHandle,
    /// How far back the first sync reaches.
    pub period: Duration,
    /// The mailbox's own addresses (not linked as contacts).
    pub own: &'a [String],
    /// Stop between batches when this fires.
    pub cancel: &'a CancellationToken,
    /// Called with the number of new messages after each commit.
    pub on_commit: &'a (dyn Fn(u64) + Send + Sync),
    /// The time to use (the first sync's window, when messages were stored).
    pub clock: Clock,
}

/// Syncs one folder from its checkpoint; returns how many messages were new.
pub async fn sync_folder(
    session: &mut ImapSession,
    folder: &str,
    sync: &FolderSync<'_>,
    condstore: bool,
) -> Result<u64, ImapError> {
    let (mailbox, f) = (sync.mailbox.to_owned(), folder.to_owned());
    let state: Option<FolderState> = sync
        .store
        .call(move |s| s.mail_folder(&mailbox, &f))
        .await?;
    let selected = timed("SELECT", COMMAND_TIMEOUT, async {
        if condstore {
            session.select_condstore(folder).await
        } else {
            session.select(folder).await
        }
        .map_err(command_error("SELECT"))
    })
    .await?;
    let uidvalidity = selected.uid_validity.ok_or_else(|| ImapError::Command {
        command: "SELECT".into(),
        answer: format!("the server sent no UIDVALIDITY for {folder}"),
    })?;
    let mut checkpoint = match state {
        Some(s) if s.checkpoint.uidvalidity == uidvalidity => s.checkpoint,
        Some(s) => {
            tracing::warn!(
                mailbox = sync.mailbox,
                folder,
                old = s.checkpoint.uidvalidity,
                new = uidvalidity,
                "UIDVALIDITY changed; re-syncing the folder (stored mail is matched, not duplicated)"
            );
            Checkpoint {
                uidvalidity,
                last_uid: 0,
                highest_modseq: None,
                initial_complete: false,
                since: s.checkpoint.since,
                first_sync: None,
            }
        }
        None => Checkpoint {
            uidvalidity,
            last_uid: 0,
            highest_modseq: None,
            initial_complete: false,
            first_sync: None,
            // A period reaching before 1970 (or past chrono's range) means "everything".
            since: chrono::Duration::from_std(sync.period)
                .ok()
                .and_then(|p| sync.clock.now().checked_sub_signed(p))
                .map_or(DateTime::UNIX_EPOCH, |at| at.max(DateTime::UNIX_EPOCH)),
        },
    };
    let uid_next = selected.uid_next;
    let unchanged = state_is_current(&checkpoint, uid_next, selected.highest_modseq);
    if unchanged {
        return Ok(0);
    }

    let search = if checkpoint.initial_complete {
        format!("UID {}:*", checkpoint.last_uid.saturating_add(1))
    } else {
        format!(
            "UID {}:* SINCE {}",
            checkpoint.last_uid.saturating_add(1),
            imap_date(checkpoint.since)
        )
    };
    let mut uids: Vec<u32> = timed("UID SEARCH", COMMAND_TIMEOUT, async {
        session
            .uid_search(&search)
            .await
            .map_err(command_error("UID SEARCH"))
    })
    .await?
    .into_iter()
    // `n:*` matches the last message even when its UID is below n (RFC 3501 6.4.8).
    .filter(|uid| *uid > checkpoint.last_uid)
    .collect();
    uids.sort_unstable();

    let mut new = 0u64;
    if !checkpoint.initial_complete {
        // Status shows the first sync's progress: what earlier runs of it loaded (a resumed
        // sync searches only above the checkpoint) plus what this one found, recorded before
        // the first FETCH so `0 of N` shows while the first batch is on the wire.
        let loaded = checkpoint.first_sync.map_or(0, |p| p.loaded);
        checkpoint.first_sync = Some(Progress {
            loaded,
            total: loaded + uids.len() as u64,
        });
        new += commit(sync, folder, Some((Vec::new(), checkpoint.clone()))).await?;
    }
    let mut pending: Option<(Vec<NewEmail>, Checkpoint)> = None;
    for chunk in uids.chunks(BATCH) {
        if sync.cancel.is_cancelled() {
            break;
        }
        let set = uid_set(chunk);
        let commit = commit(sync, folder, pending.take());
        let fetch = timed("UID FETCH", COMMAND_TIMEOUT, fetch_batch(session, &set));
        let (committed, fetched) = tokio::join!(commit, fetch);
        new += committed?;
        let emails = fetched?;
        checkpoint.last_uid = chunk.last().copied().unwrap_or(checkpoint.last_uid);
        if let Some(progress) = checkpoint.first_sync.as_mut() {
            progress.loaded += chunk.len() as u64;
        }
        pending = Some((emails, checkpoint.clone()));
    }
    new += commit(sync, folder, pending.take()).await?;
    if sync.cancel.is_cancelled() {
        return Err(ImapError::Cancelled);
    }
    // Every UID below UIDNEXT existed at SELECT and was searched: none of them is wanted now.
    if let Some(next) = uid_next {
        checkpoint.last_uid = checkpoint.last_uid.max(next.saturating_sub(1));
    }
    checkpoint.initial_complete = true;
    checkpoint.first_sync = None;
    checkpoint.highest_modseq = selected.highest_modseq;
    new += commit(sync, folder, Some((Vec::new(), checkpoint))).await?;
    Ok(new)
}

/// Nothing to do: the first sync is done, no UID was assigned since, and (with CONDSTORE) the
/// folder did not change.
fn state_is_current(checkpoint: &Checkpoint, uid_next: Option<u32>, modseq: Option<u64>) -> bool {
    checkpoint.initial_complete
        && uid_next.is_some_and(|next| next <= checkpoint.last_uid.saturating_add(1))
        && (modseq.is_none() || modseq == checkpoint.highest_modseq)
}

async fn commit(
    sync: &FolderSync<'_>,
    folder: &str,
    batch: Option<(Vec<NewEmail>, Checkpoint)>,
) -> Result<u64, ImapError> {
    let Some((emails, checkpoint)) = batch else {
        return Ok(0);
    };
    let (mailbox, folder) = (sync.mailbox.to_owned(), folder.to_owned());
    let own = sync.own.to_vec();
    let at = sync.clock.now();
    let new = sync
        .store
        .call(move |s| s.commit_mail(&mailbox, &folder, &checkpoint, &emails, &own, at))
        .await?;
    (sync.on_commit)(new);
    Ok(new)
}

async fn fetch_batch(session: &mut ImapSession, set: &str) -> Result<Vec<NewEmail>, ImapError> {
    let mut stream = session
        .uid_fetch(set, FETCH_ITEMS)
        .await
        .map_err(command_error("UID FETCH"))?;
    let mut emails = Vec::new();
    while let Some(fetch) = stream
        .try_next()
        .await
        .map_err(command_error("UID FETCH"))?
    {
        if let Some(email) = to_email(&fetch) {
            emails.push(email);
        }
    }
    Ok(emails)
}

/// A fetched message as the store keeps it; `None` for an untagged FETCH without a body
/// (a flag change the server pushed during the fetch).
fn to_email(fetch: &Fetch) -> Option<NewEmail> {
    let raw = fetch.body()?;
    let uid = fetch.uid?;
    let parsed = mime::parse(raw);
    let address = |m: mime::Mailbox| MailAddress {
        address: m.address,
        name: m.name,
    };
    Some(NewEmail {
        direction: Direction::In,
        uid: Some(uid),
        message_id: parsed.message_id,
        fingerprint: parsed.fingerprint,
        from: parsed.from.map(address),
        to: parsed.to.into_iter().map(address).collect(),
        cc: parsed.cc.into_iter().map(address).collect(),
        subject: parsed.subject,
        date: parsed.date,
        internal_date: fetch.internal_date().map(|d| d.with_timezone(&Utc)),
        size: fetch.size.map_or(raw.len() as u64, u64::from),
        flags: fetch.flags().map(flag_name).collect::<Vec<_>>().join(" "),
        text: parsed.text,
        html: parsed.html,
        truncated: parsed.truncated,
        attachments: parsed
            .attachments
            .into_iter()
            .map(|a| AttachmentMeta {
                name: a.name,
                content_type: a.content_type,
                size: a.size,
            })
            .collect(),
    })
}

fn flag_name(flag: Flag<'_>) -> String {
    match flag {
        Flag::Seen => "\\Seen".into(),
        Flag::Answered => "\\Answered".into(),
        Flag::Flagged => "\\Flagged".into(),
        Flag::Deleted => "\\Deleted".into(),
        Flag::Draft => "\\Draft".into(),
        Flag::Recent => "\\Recent".into(),
        Flag::MayCreate => "\\*".into(),
        Flag::Custom(c) => c.into_owned(),
    }
}

/// `1:3,7,9:10` from sorted UIDs.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// An IMAP SEARCH date (`4-Mar-2025`).
pub fn imap_date(at: DateTime<Utc>) -> String {
    at.format("%-d-%b-%Y").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_compress_runs() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn search_dates_use_the_imap_form() {
        let at: DateTime<Utc> = "2025-03-04T23:00:00Z".parse().expect("ts");
        assert_eq!(imap_date(at), "4-Mar-2025");
    }

    #[test]
    fn a_listed_parent_does_not_bring_its_children() {
        // REQ: MB-02
        let server: Vec<Folder> = ["INBOX", "Projects", "Projects/Alpha", "Archive"]
            .iter()
            .map(|n| Folder {
                name: (*n).into(),
                selectable: true,
            })
            .collect();
        let wanted = vec!["inbox".to_owned(), "Projects".to_owned(), "Nope".to_owned()];
        let (found, missing) = choose_folders(&server, Some(&wanted));
        assert_eq!(found, ["INBOX", "Projects"]);
        assert_eq!(missing, ["Nope"]);
        let (all, _) = choose_folders(&server, None);
        assert_eq!(all.len(), 4);
    }

    #[test]
    fn server_answers_are_pulled_out_of_async_imap_errors() {
        let e = async_imap::error::Error::No(
            "code: None, info: Some(\"[AUTHENTICATIONFAILED] Authentication failed.\")".into(),
        );
        assert_eq!(
            server_answer(&e),
            "NO [AUTHENTICATIONFAILED] Authentication failed."
        );
    }
}
