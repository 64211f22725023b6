//! Sending: composing a message (MB-03: alias as display name, signature when `useSignature`)
//! and delivering queued messages over SMTP with lettre.
//!
//! A message is composed once and stored raw in the durable outbox with its envelope; delivery
//! sends those exact bytes, so a retry sends the same Message-ID. Temporary failures (4xx,
//! connection and TLS errors, timeouts) are retried with backoff; a permanent one (5xx) fails
//! the message with the server's reply. The password never appears in an error.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::address::Envelope;
use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::kinds::Security;
use crate::store::mail::{Direction, MailAddress, NewEmail, Outgoing};

/// The folder sent mail is stored under.
pub const SENT_FOLDER: &str = "Sent";
/// How long the SMTP server may keep one delivery waiting, unless `Settings.mail.smtpTimeout` says otherwise.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// The first retry delay after a temporary failure; doubled per attempt, at most an hour.
const RETRY_BASE: Duration = Duration::from_secs(30);

/// Where an SMTP server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpServer {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Transport security.
    pub security: Security,
    /// A PEM CA file to trust besides the Web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// How long the server may keep us waiting (`Settings.mail.smtpTimeout`).
    pub timeout: Duration,
}

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// The mailbox's address.
    pub from: String,
    /// Its alias (display name).
    pub alias: Option<String>,
    /// To.
    pub to: Vec<String>,
    /// Cc.
    pub cc: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub text: Option<String>,
    /// HTML body.
    pub html: Option<String>,
    /// The HTML signature to append, when the mailbox uses one.
    pub signature: Option<String>,
}

/// A composed message: what the store keeps and what goes on the wire.
#[derive(Debug, Clone)]
pub struct Composed {
    /// The stored e-mail.
    pub email: NewEmail,
    /// Envelope and bytes.
    pub outgoing: Outgoing,
}

/// Why a draft cannot be composed (the client's mistake).
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// An address does not parse.
    #[error("invalid address `{0}`")]
    Address(String),
    /// No recipient.
    #[error("give at least one recipient in `to`")]
    NoRecipient,
    /// lettre refused the message.
    #[error("cannot build the message: {0}")]
    Build(String),
}

/// The plain-text form of an HTML signature.
fn signature_text(html: &str) -> String {
    let with_breaks = html
        .replace("<br>", "\n")
        .replace("<br/>", "\n")
        .replace("<br />", "\n")
        .replace("</p>", "\n");
    let mut text = String::new();
    let mut in_tag = false;
    for c in with_breaks.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.trim().to_owned()
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Composes `draft` into a message with a fresh Message-ID.
pub fn compose(draft: &Draft, now: DateTime<Utc>) -> Result<Composed, ComposeError> {
    if draft.to.is_empty() {
        return Err(ComposeError::NoRecipient);
    }
    let parse = |a: &String| -> Result<lettre::Address, ComposeError> {
        a.trim()
            .parse()
            .map_err(|_| ComposeError::Address(a.clone()))
    };
    let from_address = parse(&draft.from)?;
    let from = Mailbox::new(draft.alias.clone(), from_address.clone());
    let domain = from_address.domain().to_owned();
    let message_id = format!(
        "{}.{}@{domain}",
        now.timestamp_millis(),
        rand::random::<u64>()
    );
    let mut text = draft.text.clone();
    let mut html = draft.html.clone();
    if let Some(signature) = &draft.signature {
        if let Some(h) = &mut html {
            h.push_str("<br>\n");
            h.push_str(signature);
        } else if let Some(t) = &text {
            // A text-only message gets an HTML alternative, so the signature keeps its markup.
            html = Some(format!(
                "<p>{}</p><br>\n{signature}",
                escape_html(t).replace('\n', "<br>\n")
            ));
        }
        if let Some(t) = &mut text {
            t.push_str("\n\n-- \n");
            t.push_str(&signature_text(signature));
        }
    }
    let mut builder = Message::builder()
        .from(from)
        .subject(draft.subject.clone())
        .message_id(Some(format!("<{message_id}>")))
        .date(now.into());
    let mut envelope_to = Vec::new();
    for a in &draft.to {
        let address = parse(a)?;
        envelope_to.push(address.to_string());
        builder = builder.to(Mailbox::new(None, address));
    }
    for a in &draft.cc {
        let address = parse(a)?;
        envelope_to.push(address.to_string());
        builder = builder.cc(Mailbox::new(None, address));
    }
    let message = match (&text, &html) {
        (Some(t), Some(h)) => {
            builder.multipart(MultiPart::alternative_plain_html(t.clone(), h.clone()))
        }
        (None, Some(h)) => builder.singlepart(SinglePart::html(h.clone())),
        (Some(t), None) => builder.header(ContentType::TEXT_PLAIN).body(t.clone()),
        (None, None) => builder.header(ContentType::TEXT_PLAIN).body(String::new()),
    }
    .map_err(|e| ComposeError::Build(e.to_string()))?;
    let raw = message.formatted();
    let address = |a: &String| MailAddress {
        address: a.trim().to_owned(),
        name: None,
    };
    Ok(Composed {
        email: NewEmail {
            direction: Direction::Out,
            uid: None,
            message_id: Some(message_id.clone()),
            fingerprint: message_id,
            from: Some(MailAddress {
                address: from_address.to_string(),
                name: draft.alias.clone(),
            }),
            to: draft.to.iter().map(address).collect(),
            cc: draft.cc.iter().map(address).collect(),
            subject: Some(draft.subject.clone()),
            date: Some(now),
            internal_date: Some(now),
            size: raw.len() as u64,
            flags: "\\Seen".into(),
            text,
            html,
            truncated: false,
            attachments: Vec::new(),
        },
        outgoing: Outgoing {
            envelope_from: from_address.to_string(),
            envelope_to,
            raw,
        },
    })
}

/// How a delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later (4xx, connection, TLS, timeout).
    #[error("{0}")]
    Temporary(String),
    /// Give up (5xx): the server's reply.
    #[error("{0}")]
    Permanent(String),
}

/// The delay before retry number `attempts` (1-based): 30 s · 2ⁿ⁻¹, at most an hour.
pub fn retry_delay(attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 7)).unwrap_or(7);
    RETRY_BASE
        .saturating_mul(1 << exp)
        .min(Duration::from_secs(3600))
}

/// Sends `raw` to `to` through `server`, logged in as `login` with a password, or with an
/// OAuth 2.0 access token (XOAUTH2) when `oauth` is set.
pub async fn deliver(
    server: &SmtpServer,
    login: &str,
    password: &str,
    oauth: bool,
    from: &str,
    to: &[String],
    raw: &[u8],
) -> Result<(), SendError> {
    let temporary = |e: String| SendError::Temporary(e);
    let tls = match server.security {
        Security::None => Tls::None,
        Security::Tls | Security::Starttls => {
            let mut params = TlsParameters::builder(server.host.clone());
            if let Some(ca) = &server.ca_file {
                let pem = std::fs::read(ca)
                    .map_err(|e| temporary(format!("cannot read caFile {}: {e}", ca.display())))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| temporary(format!("caFile {}: {e}", ca.display())))?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| temporary(format!("TLS setup: {e}")))?;
            if server.security == Security::Tls {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            }
        }
    };
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.host.clone())
        .port(server.port)
        .tls(tls)
        .credentials(Credentials::new(login.to_owned(), password.to_owned()))
        .authentication(if oauth {
            vec![Mechanism::Xoauth2]
        } else {
            vec![Mechanism::Plain, Mechanism::Login]
        })
        .timeout(Some(server.timeout))
        .build();
    let envelope = Envelope::new(
        Some(
            from.parse()
                .map_err(|_| SendError::Permanent(format!("invalid sender {from}")))?,
        ),
        to.iter()
            .map(|a| a.parse())
            .collect::<Result<Vec<lettre::Address>, _>>()
            .map_err(|_| SendError::Permanent("invalid recipient".into()))?,
    )
    .map_err(|e| SendError::Permanent(e.to_string()))?;
    // lettre's own timeout covers only the connect: a server that stalls after accepting the
    // connection (say, after DATA) would hold the outbox forever. Bound the whole delivery.
    let sending = tokio::time::timeout(server.timeout, transport.send_raw(&envelope, raw));
    let Ok(result) = sending.await else {
        return Err(SendError::Temporary(format!(
            "SMTP: the server did not finish the delivery within {}s (Settings.mail.smtpTimeout)",
            server.timeout.as_secs()
        )));
    };
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("SMTP server: {e}"))),
        Err(e) => Err(SendError::Temporary(format!("SMTP: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> Draft {
        Draft {
            from: "sales@example.com".into(),
            alias: Some("ACME Sales".into()),
            to: vec!["bob@customer.example".into()],
            cc: vec!["carol@customer.example".into()],
            subject: "Your quote".into(),
            text: Some("Hello Bob".into()),
            html: None,
            signature: Some("<p>Alice, <b>ACME</b></p>".into()),
        }
    }

    #[test]
    fn the_alias_is_the_display_name_and_the_signature_is_appended() {
        // REQ: MB-03
        let c = compose(&draft(), Utc::now()).expect("compose");
        let raw = String::from_utf8(c.outgoing.raw.clone()).expect("utf-8");
        assert!(
            raw.contains("From: \"ACME Sales\" <sales@example.com>"),
            "{raw}"
        );
        assert_eq!(c.outgoing.envelope_from, "sales@example.com");
        assert_eq!(
            c.outgoing.envelope_to,
            ["bob@customer.example", "carol@customer.example"]
        );
        let text = c.email.text.expect("text");
        assert!(
            text.starts_with("Hello Bob") && text.ends_with("-- \nAlice, ACME"),
            "{text}"
        );
        assert!(c.email.html.expect("html").contains("<b>ACME</b>"));
        assert_eq!(c.email.direction, Direction::Out);
        assert!(raw.contains(&format!(
            "Message-ID: <{}>",
            c.email.message_id.expect("id")
        )));
    }

    #[test]
    fn without_use_signature_nothing_is_appended_and_bad_addresses_are_refused() {
        let plain = compose(
            &Draft {
                signature: None,
                ..draft()
            },
            Utc::now(),
        )
        .expect("compose");
        assert_eq!(plain.email.text.as_deref(), Some("Hello Bob"));
        assert_eq!(plain.email.html, None);
        let bad = compose(
            &Draft {
                to: vec!["not an address".into()],
                ..draft()
            },
            Utc::now(),
        );
        assert!(matches!(bad, Err(ComposeError::Address(_))));
    }

    #[test]
    fn retries_back_off_from_thirty_seconds_to_an_hour() {
        assert_eq!(retry_delay(1), Duration::from_secs(30));
        assert_eq!(retry_delay(2), Duration::from_secs(60));
        assert_eq!(retry_delay(20), Duration::from_secs(3600));
    }
}
