//! Filing sent mail in the server's Sent folder (MB-03): after SMTP accepted a message, a
//! mailbox that loads mail APPENDs it to the special-use `\Sent` folder (RFC 6154), or else to
//! `Sent` (created when missing), and records where it landed on the stored outgoing copy.
//!
//! The step is level-triggered and idempotent: "needs filing" is read from the store (sent,
//! no IMAP identity yet), and before APPENDing, the folder is searched for the message's
//! Message-ID, so a crash between APPEND and the store's commit files nothing twice. The UID
//! comes from `APPENDUID` (UIDPLUS) when offered, else from that same search. Once recorded,
//! the folder's sync finds the message already stored under its UID and skips it.
//!
//! This module must not run SQL (it calls `store::mail`) or decide when it runs (the
//! `Mailbox` connector does, before loading).

use std::time::Duration;

use async_imap::imap_proto::rfc4315::UidSetMember;
use async_imap::imap_proto::{Response, ResponseCode, Status};
use async_imap::types::NameAttribute;
use futures_util::TryStreamExt;
use tokio::io::AsyncWriteExt;

use crate::store::StoreHandle;
use crate::store::mail::SentCopy;

use super::imap::{ImapError, ImapSession, server_answer};

/// The folder used when the server marks none `\Sent`.
pub const FALLBACK_SENT: &str = "Sent";
/// How long one command (LIST, SELECT, SEARCH, APPEND) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// Files every copy in `copies` in the Sent folder and records each on the store. Returns how
/// many were filed now; a message the server did not let us find stays for the next run.
pub async fn file_sent(
    session: &mut ImapSession,
    store: &StoreHandle,
    copies: Vec<SentCopy>,
) -> Result<u64, ImapError> {
    if copies.is_empty() {
        return Ok(0);
    }
    let folder = sent_folder(session).await?;
    let selected = step("SELECT", session.select(&folder)).await?;
    let Some(validity) = selected.uid_validity else {
        return Err(ImapError::Command {
            command: "SELECT".into(),
            answer: format!("the server gave no UIDVALIDITY for {folder}"),
        });
    };
    let mut filed = 0;
    for copy in copies {
        let found = match &copy.message_id {
            Some(id) => find(session, id).await?,
            None => None,
        };
        let uid = match found {
            Some(uid) => Some(uid),
            None => {
                let appended = append(session, &folder, &copy.raw).await?;
                match (appended, &copy.message_id) {
                    (Some((v, uid)), _) if v == validity => Some(uid),
                    (_, Some(id)) => find(session, id).await?,
                    (_, None) => None,
                }
            }
        };
        let Some(uid) = uid else {
            tracing::warn!(email = copy.email_id, %folder, "a sent message was appended but could not be found again; it is looked for on the next run");
            continue;
        };
        let (id, f) = (copy.email_id, folder.clone());
        store
            .call(move |s| s.file_sent(id, &f, validity, uid))
            .await?;
        filed += 1;
    }
    Ok(filed)
}

/// The special-use `\Sent` folder, else `Sent`, created when the server has neither.
async fn sent_folder(session: &mut ImapSession) -> Result<String, ImapError> {
    let names: Vec<_> = step("LIST", async {
        session.list(Some(""), Some("*")).await?.try_collect().await
    })
    .await?;
    let special = names
        .iter()
        .find(|n| n.attributes().contains(&NameAttribute::Sent));
    if let Some(name) = special {
        return Ok(name.name().to_owned());
    }
    if !names.iter().any(|n| n.name() == FALLBACK_SENT) {
        step("CREATE", session.create(FALLBACK_SENT)).await?;
    }
    Ok(FALLBACK_SENT.to_owned())
}

/// The UID of the message with Message-ID `<id>` in the selected folder.
async fn find(session: &mut ImapSession, id: &str) -> Result<Option<u32>, ImapError> {
    if id.contains(['"', '\\', '\r', '\n']) {
        // Not expressible as a quoted string; the APPENDUID alone must do.
        return Ok(None);
    }
    let uids = step(
        "UID SEARCH",
        session.uid_search(format!("HEADER Message-ID \"<{id}>\"")),
    )
    .await?;
    Ok(uids.into_iter().min())
}

/// APPENDs `raw` (flagged `\Seen`) and returns the `APPENDUID` (UIDVALIDITY, UID) when the
/// server offers UIDPLUS. async-imap's own `append` drops that response code, so the command
/// is driven here.
async fn append(
    session: &mut ImapSession,
    folder: &str,
    raw: &[u8],
) -> Result<Option<(u32, u32)>, ImapError> {
    let quoted = format!("\"{}\"", folder.replace('\\', "\\\\").replace('"', "\\\""));
    let failed = |answer: String| ImapError::Command {
        command: "APPEND".into(),
        answer,
    };
    let io = |e: std::io::Error| failed(e.to_string());
    let appended = async {
        let tag = session
            .run_command(format!("APPEND {quoted} (\\Seen) {{{}}}", raw.len()))
            .await
            .map_err(|e| failed(server_answer(&e)))?;
        loop {
            let response = session
                .read_response()
                .await
                .map_err(io)?
                .ok_or_else(|| failed("the server closed the connection".into()))?;
            match response.parsed() {
                Response::Continue { .. } => break,
                Response::Done {
                    tag: t, outcome, ..
                } if *t == tag => {
                    return Err(failed(
                        outcome
                            .information
                            .as_deref()
                            .unwrap_or("refused")
                            .to_owned(),
                    ));
                }
                _ => {}
            }
        }
        let stream = session.get_mut();
        stream.write_all(raw).await.map_err(io)?;
        stream.write_all(b"\r\n").await.map_err(io)?;
        stream.flush().await.map_err(io)?;
        loop {
            let response = session
                .read_response()
                .await
                .map_err(io)?
                .ok_or_else(|| failed("the server closed the connection".into()))?;
            if let Response::Done {
                tag: t,
                status,
                outcome,
            } = response.parsed()
                && *t == tag
            {
                if *status != Status::Ok {
                    return Err(failed(
                        outcome
                            .information
                            .as_deref()
                            .unwrap_or("refused")
                            .to_owned(),
                    ));
                }
                return Ok(match &outcome.code {
                    Some(ResponseCode::AppendUid(validity, uids)) => match uids.as_slice() {
                        [UidSetMember::Uid(uid)] => Some((*validity, *uid)),
                        _ => None,
                    },
                    _ => None,
                });
            }
        }
    };
    tokio::time::timeout(STEP_TIMEOUT, appended)
        .await
        .unwrap_or_else(|_| Err(ImapError::Timeout("APPEND".into())))
}

async fn step<T>(
    what: &str,
    future: impl Future<Output = Result<T, async_imap::error::Error>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(STEP_TIMEOUT, future).await {
        Err(_) => Err(ImapError::Timeout(what.to_owned())),
        Ok(result) => result.map_err(|e| ImapError::Command {
            command: what.to_owned(),
            answer: server_answer(&e),
        }),
    }
}
