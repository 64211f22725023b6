//! Parsing a fetched message into what the store keeps: headers, bodies, attachment metadata.
//!
//! mail-parser 0.11 (lenient, zero-copy; 1.0 needs a newer Rust) reads the raw RFC 5322 bytes.
//! Bodies are capped at [`BODY_CAP`] bytes each and attachments are kept as metadata only
//! (name, content type, size): Switchboard links mail to contacts and shows it in records'
//! history; it is not a mail archive. This module is pure: no I/O, no store.

use chrono::{DateTime, Utc};
use mail_parser::{MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

/// The most bytes kept of each body (text and HTML separately): 1 MiB.
pub const BODY_CAP: usize = 1 << 20;

/// An address with its display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The address, as written (compare case-insensitively).
    pub address: String,
    /// The display name, when given.
    pub name: Option<String>,
}

/// An attachment's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The file name, when given.
    pub name: Option<String>,
    /// `type/subtype`.
    pub content_type: String,
    /// Decoded size in bytes.
    pub size: u64,
}

/// What the store keeps of a message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    /// Message-ID, or `sha256:<hex>` of the raw message when it has none.
    pub fingerprint: String,
    /// The first From address.
    pub from: Option<Mailbox>,
    /// To addresses.
    pub to: Vec<Mailbox>,
    /// Cc addresses.
    pub cc: Vec<Mailbox>,
    /// Subject.
    pub subject: Option<String>,
    /// The Date header.
    pub date: Option<DateTime<Utc>>,
    /// The plain-text body (converted from HTML when that is all there is), capped.
    pub text: Option<String>,
    /// The HTML body when the message has one, capped.
    pub html: Option<String>,
    /// A body was cut at [`BODY_CAP`].
    pub truncated: bool,
    /// Attachment metadata.
    pub attachments: Vec<Attachment>,
}

/// Parses `raw`. Never fails: a message mail-parser cannot read at all is kept with its
/// fingerprint only, so it is still stored (and counted) exactly once.
pub fn parse(raw: &[u8]) -> Parsed {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Parsed {
            fingerprint: hash_fingerprint(raw),
            ..Parsed::default()
        };
    };
    let message_id = message
        .message_id()
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    let fingerprint = message_id.clone().unwrap_or_else(|| hash_fingerprint(raw));
    let addresses = |a: Option<&mail_parser::Address<'_>>| -> Vec<Mailbox> {
        a.map(|a| {
            a.iter()
                .filter_map(|addr| {
                    let address = addr.address()?.trim();
                    (!address.is_empty()).then(|| Mailbox {
                        address: address.to_owned(),
                        name: addr
                            .name()
                            .map(str::trim)
                            .filter(|n| !n.is_empty())
                            .map(str::to_owned),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
    };
    let mut truncated = false;
    let mut cap = |body: String| -> String {
        if body.len() <= BODY_CAP {
            return body;
        }
        truncated = true;
        let mut end = BODY_CAP;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        body[..end].to_owned()
    };
    let text = message.body_text(0).map(|t| cap(t.into_owned()));
    // mail-parser renders a text-only message as HTML too; keep real HTML only.
    let html = match message.html_part(0).map(|p| &p.body) {
        Some(PartType::Html(html)) => Some(cap(html.to_string())),
        _ => None,
    };
    let attachments = message
        .attachments()
        .map(|part| Attachment {
            name: part.attachment_name().map(str::to_owned),
            content_type: part.content_type().map_or_else(
                || "application/octet-stream".to_owned(),
                |ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_owned(),
                },
            ),
            size: part.contents().len() as u64,
        })
        .collect();
    Parsed {
        from: addresses(message.from()).into_iter().next(),
        to: addresses(message.to()),
        cc: addresses(message.cc()),
        subject: message.subject().map(str::to_owned),
        date: message
            .date()
            .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0)),
        message_id,
        fingerprint,
        text,
        html,
        truncated,
        attachments,
    }
}

fn hash_fingerprint(raw: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(raw)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTIPART: &str = "From: \"Bob Buyer\" <Bob@Example.org>\r\n\
To: alice@example.test, Carol <carol@example.net>\r\n\
Cc: dave@example.com\r\n\
Subject: =?utf-8?q?Quote_=E2=82=AC?=\r\n\
Date: Tue, 04 Mar 2025 10:00:00 +0100\r\n\
Message-ID: <quote-1@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: multipart/alternative; boundary=\"b2\"\r\n\
\r\n\
--b2\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hello Alice\r\n\
--b2\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Hello <b>Alice</b></p>\r\n\
--b2--\r\n\
--b1\r\n\
Content-Type: application/pdf; name=\"quote.pdf\"\r\n\
Content-Disposition: attachment; filename=\"quote.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQK\r\n\
--b1--\r\n";

    #[test]
    fn headers_bodies_and_attachment_metadata_are_extracted() {
        let p = parse(MULTIPART.as_bytes());
        assert_eq!(p.message_id.as_deref(), Some("quote-1@example.org"));
        assert_eq!(p.fingerprint, "quote-1@example.org");
        let from = p.from.expect("from");
        assert_eq!(
            (from.address.as_str(), from.name.as_deref()),
            ("Bob@Example.org", Some("Bob Buyer"))
        );
        let to: Vec<&str> = p.to.iter().map(|m| m.address.as_str()).collect();
        assert_eq!(to, ["alice@example.test", "carol@example.net"]);
        assert_eq!(p.cc[0].address, "dave@example.com");
        assert_eq!(p.subject.as_deref(), Some("Quote €"));
        assert_eq!(
            p.date.expect("date").to_rfc3339(),
            "2025-03-04T09:00:00+00:00"
        );
        assert_eq!(p.text.as_deref().map(str::trim), Some("Hello Alice"));
        assert!(p.html.expect("html").contains("<b>Alice</b>"));
        assert_eq!(
            p.attachments,
            vec![Attachment {
                name: Some("quote.pdf".into()),
                content_type: "application/pdf".into(),
                size: 9,
            }]
        );
        assert!(!p.truncated);
    }

    #[test]
    fn a_text_only_message_has_no_invented_html() {
        let raw = "From: a@example.org\r\nSubject: hi\r\n\r\nplain\r\n";
        let p = parse(raw.as_bytes());
        assert_eq!(p.text.as_deref().map(str::trim), Some("plain"));
        assert_eq!(p.html, None);
        assert!(
            p.fingerprint.starts_with("sha256:"),
            "no Message-ID: hashed"
        );
    }

    #[test]
    fn bodies_are_capped_at_one_mebibyte_on_a_char_boundary() {
        let body = "é".repeat(BODY_CAP);
        let raw = format!(
            "From: a@example.org\r\nMessage-ID: <big@x>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
        );
        let p = parse(raw.as_bytes());
        let text = p.text.expect("text");
        assert!(text.len() <= BODY_CAP && text.len() > BODY_CAP - 4);
        assert!(p.truncated);
    }
}
