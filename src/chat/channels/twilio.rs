//! The WhatsApp channel through Twilio (WA-01..WA-05).
//!
//! - **Reconcile**: `GET /2010-04-01/Accounts/{Sid}.json` with Basic auth (Account SID, auth
//!   token) must answer `status: active` before the channel takes messages (WA-03): the
//!   webhook refuses with 503 until the channel's current generation has been reconciled
//!   successfully. A `Trial` account is only accepted with `sandbox: true` (WA-01: Twilio
//!   lets trial accounts use WhatsApp only through its sandbox).
//! - **Inbound**: `POST /webhooks/twilio/{channel}`, form-encoded. `X-Twilio-Signature` is
//!   `base64(HMAC-SHA1(authToken, URL + concat(key + value, sorted by key)))` over the URL
//!   Twilio called — `{siteUrl}/webhooks/twilio/{channel}` plus the request's query — checked
//!   before anything is stored; the check is tested against signatures made by Twilio's SDK
//!   (`tests/data/twilio_signatures.*`). `AccountSid` and `To` must be this channel's (WA-04).
//!   `MessageSid` is the deduplication key.
//! - **Media** (WA-02): jpg/jpeg/png, mp3/ogg/amr, pdf, mp4, at most 16 MB. An accepted file is
//!   stored in the message as `[media type] URL`. A refused one is never dropped silently: the
//!   stored message says which file was refused and why (so the operator sees it), and the
//!   webhook's TwiML answer tells the client the same in one `<Message>`. Twilio's inbound
//!   webhook carries no file size (Twilio caps WhatsApp media at 16 MB itself); a size is
//!   checked wherever one is known ([`check_media`]).
//! - **Outbound**: `POST /2010-04-01/Accounts/{Sid}/Messages.json` (Basic auth) with
//!   `From=whatsapp:{phoneNumber}`, `To=whatsapp:{contact}`, `Body`. 429 honours `Retry-After`;
//!   5xx and network errors retry; other 4xx give up with Twilio's error code and message.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::kinds::{ChatChannelSpec, api_base};
use crate::config::types::Secret;
use crate::config::{ConfigSet, KindSpec, Object};
use crate::connector::SyncFuture;
use crate::connector::{ConnectorError, SyncContext, SyncReport};
use crate::store::chat::OutboxItem;

use super::super::commands::Inbound;
use super::super::outbox::Failure;
use super::super::snapshot::ChannelSetup;

/// The header carrying Twilio's request signature.
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";
/// The largest inbound form accepted (Twilio's are a few KB; 413 beyond).
pub const MAX_BODY: usize = 64 * 1024;
/// The largest file (WA-02).
pub const MAX_MEDIA_BYTES: u64 = 16 * 1024 * 1024;
/// The media types accepted (WA-02), with the extension users know them by.
pub const MEDIA_TYPES: &[(&str, &str)] = &[
    ("image/jpeg", "jpg/jpeg"),
    ("image/jpg", "jpg"),
    ("image/png", "png"),
    ("audio/mpeg", "mp3"),
    ("audio/mp3", "mp3"),
    ("audio/ogg", "ogg"),
    ("audio/amr", "amr"),
    ("application/pdf", "pdf"),
    ("video/mp4", "mp4"),
];
/// What a refused file is answered with.
pub const MEDIA_RULE: &str = "Only jpg/jpeg/png images, mp3/ogg/amr audio, pdf documents and mp4 videos up to 16 MB can be received";
/// How long one Twilio call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// `base64(HMAC-SHA1(auth_token, url + concat(key + value)))`, params sorted by key, then by
/// value for a repeated key (as Twilio's SDK does).
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key");
    mac.update(url.as_bytes());
    for (key, value) in sorted {
        mac.update(key.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `presented` is the signature of this request (constant time).
pub fn signature_matches(
    auth_token: &Secret,
    url: &str,
    params: &[(String, String)],
    presented: Option<&str>,
) -> bool {
    let Some(presented) = presented else {
        return false;
    };
    let expected = signature(auth_token.expose(), url, params);
    let a = Sha256::digest(presented.trim().as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

/// The URL Twilio signed: `{siteUrl}/webhooks/twilio/{channel}`, plus the request's query.
pub fn signed_url(site: &url::Url, channel: &str, query: Option<&str>) -> String {
    let base = format!(
        "{}/webhooks/twilio/{channel}",
        site.as_str().trim_end_matches('/')
    );
    match query {
        Some(q) if !q.is_empty() => format!("{base}?{q}"),
        _ => base,
    }
}

/// Why a file is refused, or `None` when it is accepted (WA-02).
pub fn check_media(content_type: &str, size: Option<u64>) -> Option<String> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if !MEDIA_TYPES.iter().any(|(t, _)| *t == essence) {
        return Some(format!("a {essence} file is not accepted"));
    }
    match size {
        Some(n) if n > MAX_MEDIA_BYTES => Some(format!(
            "the file is {:.1} MB, more than 16 MB",
            n as f64 / 1_048_576.0
        )),
        _ => None,
    }
}

/// A parsed inbound request: the message to store, and the refusals to tell the client.
#[derive(Debug)]
pub struct Received {
    /// The message.
    pub inbound: Inbound,
    /// One line per refused file; empty when everything was accepted.
    pub refused: Vec<String>,
}

/// Parses an authenticated inbound form of `channel`: checks it is for this channel's account
/// and number, and applies the media rules.
pub fn parse_inbound(
    channel: &str,
    spec: &ChatChannelSpec,
    params: &[(String, String)],
) -> Result<Received, String> {
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let required = |key: &str| {
        get(key)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| format!("the form has no {key}"))
    };
    let sid = required("MessageSid")?;
    let from = required("From")?;
    if let (Some(account), Some(expected)) = (get("AccountSid"), spec.account_sid.as_deref())
        && account != expected
    {
        return Err("the message is for another Twilio account than this channel's".into());
    }
    if let (Some(to), Some(number)) = (get("To"), spec.phone_number.as_deref())
        && to.strip_prefix("whatsapp:").unwrap_or(to) != number
    {
        return Err(format!(
            "the message is for {to}, not this channel's number"
        ));
    }
    let number = from.strip_prefix("whatsapp:").unwrap_or(from).to_owned();
    let mut lines = Vec::new();
    if let Some(body) = get("Body").filter(|b| !b.is_empty()) {
        lines.push(body.to_owned());
    }
    let media: usize = get("NumMedia")
        .unwrap_or("0")
        .parse()
        .map_err(|_| "NumMedia is not a number".to_owned())?;
    let mut refused = Vec::new();
    for i in 0..media.min(10) {
        let kind = get(&format!("MediaContentType{i}")).unwrap_or("application/octet-stream");
        let url = get(&format!("MediaUrl{i}")).unwrap_or_default();
        match check_media(kind, None) {
            None => lines.push(format!("[{kind}] {url}")),
            Some(why) => {
                lines.push(format!("[refused file: {why}; {MEDIA_RULE}]"));
                refused.push(why);
            }
        }
    }
    if lines.is_empty() {
        lines.push("[an empty message]".to_owned());
    }
    Ok(Received {
        inbound: Inbound {
            channel: channel.to_owned(),
            provider_id: sid.to_owned(),
            contact_id: number.clone(),
            name: get("ProfileName")
                .filter(|n| !n.trim().is_empty())
                .map_or_else(|| number.clone(), str::to_owned),
            email: None,
            phone: Some(number),
            text: lines.join("\n"),
        },
        refused,
    })
}

/// The TwiML answer to an inbound message: empty, or one message telling the client which
/// files were refused.
pub fn twiml(refused: &[String]) -> String {
    if refused.is_empty() {
        return "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>".to_owned();
    }
    let text = format!("Sorry, {}. {MEDIA_RULE}.", refused.join("; "));
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{escaped}</Message></Response>"
    )
}

fn base(spec: &ChatChannelSpec) -> String {
    spec.api_base_url
        .as_ref()
        .map_or(api_base::TWILIO, |u| u.as_str())
        .trim_end_matches('/')
        .to_owned()
}

#[derive(Deserialize)]
struct TwilioError {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

/// One delivery attempt through the Messages API.
pub(crate) async fn deliver(
    http: &reqwest::Client,
    channel: &ChannelSetup,
    item: &OutboxItem,
) -> Result<(), Failure> {
    let spec = &channel.spec;
    let (Some(sid), Some(number)) = (&spec.account_sid, &spec.phone_number) else {
        return Err(Failure {
            error: "the channel has no accountSid or phoneNumber".into(),
            retry: false,
            after: None,
        });
    };
    let token = channel.secret("/authToken").map_err(|e| Failure {
        error: format!("the auth token cannot be read: {e}"),
        retry: true,
        after: None,
    })?;
    let to = format!("whatsapp:{}", item.contact_external_id);
    let from = format!("whatsapp:{number}");
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("To", &to)
        .append_pair("From", &from)
        .append_pair("Body", &item.text)
        .finish();
    let response = http
        .post(format!(
            "{}/2010-04-01/Accounts/{sid}/Messages.json",
            base(spec)
        ))
        .timeout(CALL_TIMEOUT)
        .basic_auth(sid, Some(token.expose()))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form)
        .send()
        .await
        .map_err(|e| Failure {
            error: format!("the Messages API request failed: {}", e.without_url()),
            retry: true,
            after: None,
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let after = super::super::outbox::retry_after(&response);
    let detail = response
        .json::<TwilioError>()
        .await
        .ok()
        .map(|e| {
            format!(
                " (Twilio error {}: {})",
                e.code.unwrap_or_default(),
                e.message.unwrap_or_default()
            )
        })
        .unwrap_or_default();
    Err(Failure {
        error: format!("the Messages API answered {status}{detail}"),
        retry: status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS,
        after,
    })
}

#[derive(Deserialize)]
struct Account {
    status: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// A whatsapp channel's reconciler: verifies the Twilio account (WA-03).
pub struct Reconciler {
    spec: ChatChannelSpec,
    http: reqwest::Client,
}

/// Builds the reconciler of a whatsapp `ChatChannel`.
pub fn build(object: &Object, _set: &ConfigSet) -> Result<Reconciler, String> {
    let spec = ChatChannelSpec::from_spec(&object.spec)
        .ok_or_else(|| format!("{} is not a ChatChannel", object.id()))?
        .clone();
    let http = crate::net::http_client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    Ok(Reconciler { spec, http })
}

impl Reconciler {
    async fn verify(&self, token: &Secret) -> Result<SyncReport, ConnectorError> {
        let failed = ConnectorError::Failed;
        let sid = self
            .spec
            .account_sid
            .as_deref()
            .ok_or_else(|| failed("accountSid is not set".into()))?;
        let response = self
            .http
            .get(format!(
                "{}/2010-04-01/Accounts/{sid}.json",
                base(&self.spec)
            ))
            .timeout(CALL_TIMEOUT)
            .basic_auth(sid, Some(token.expose()))
            .send()
            .await
            .map_err(|e| failed(format!("cannot reach Twilio: {}", e.without_url())))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::NOT_FOUND {
            return Err(failed(format!(
                "Twilio refused Account SID {sid} with this authToken ({status}); check both in \
                 the Twilio console (WA-03)"
            )));
        }
        if !status.is_success() {
            return Err(failed(format!("the account check answered {status}")));
        }
        let account: Account = response.json().await.map_err(|e| {
            failed(format!(
                "the account check answered {status} with an unexpected body: {}",
                e.without_url()
            ))
        })?;
        if account.status != "active" {
            return Err(failed(format!(
                "Twilio account {sid} is {}, not active; the channel takes no messages until it is (WA-03)",
                account.status
            )));
        }
        let sandbox = self.spec.sandbox.unwrap_or(false);
        if !sandbox && account.kind.as_deref() == Some("Trial") {
            return Err(failed(format!(
                "Twilio account {sid} is a trial account, which can use WhatsApp only through the \
                 sandbox; set `sandbox: true` or upgrade the account (WA-01)"
            )));
        }
        Ok(SyncReport::default())
    }
}

impl crate::connector::Connector for Reconciler {
    fn sync<'a>(&'a self, ctx: SyncContext<'a>) -> SyncFuture<'a> {
        Box::pin(async move {
            let token = ctx
                .secrets
                .get("/authToken")
                .ok_or_else(|| ConnectorError::Failed("authToken is not set".into()))?;
            self.verify(token).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Case {
        name: String,
        auth_token: String,
        url: String,
        params: std::collections::BTreeMap<String, String>,
        signature: String,
    }

    #[test]
    fn signatures_equal_those_made_by_twilios_own_sdk() {
        // REQ: WA-05
        let cases: Vec<Case> =
            serde_json::from_str(include_str!("../../../tests/data/twilio_signatures.json"))
                .expect("reference signatures");
        assert!(cases.len() >= 5);
        for case in cases {
            let params: Vec<(String, String)> = case.params.into_iter().collect();
            assert_eq!(
                signature(&case.auth_token, &case.url, &params),
                case.signature,
                "{}",
                case.name
            );
            let mut tampered = params.clone();
            tampered[0].1.push('x');
            assert_ne!(
                signature(&case.auth_token, &case.url, &tampered),
                case.signature
            );
        }
    }

    #[test]
    fn media_outside_the_whatsapp_rules_are_refused_with_a_reason() {
        // REQ: WA-02
        assert_eq!(check_media("image/jpeg", Some(1024)), None);
        assert_eq!(check_media("audio/ogg; codecs=opus", None), None);
        assert_eq!(check_media("application/pdf", Some(MAX_MEDIA_BYTES)), None);
        assert!(
            check_media("video/quicktime", None).is_some_and(|r| r.contains("video/quicktime"))
        );
        assert!(
            check_media("image/png", Some(MAX_MEDIA_BYTES + 1))
                .is_some_and(|r| r.contains("16 MB"))
        );
        let xml = twiml(&["a video/quicktime file is not accepted".into()]);
        assert!(
            xml.contains("<Message>Sorry, a video/quicktime file is not accepted. Only"),
            "{xml}"
        );
        assert_eq!(
            twiml(&[]),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>"
        );
    }
}
