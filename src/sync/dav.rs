//! A WebDAV client for CardDAV (RFC 6352) on the shared reqwest client (`crate::net`):
//! discovery (RFC 6764 `/.well-known/carddav`, `current-user-principal`,
//! `addressbook-home-set`), collections by display name or path, `sync-collection`
//! (RFC 6578), `addressbook-multiget`, and conditional `PUT` / `DELETE`.
//!
//! Basic auth on every request; the password is only ever put in that header, never in an
//! error or a log line (errors name the URL and the status). Redirects are followed by hand
//! (up to 5), because reqwest turns a redirected `PROPFIND` into a `GET`.

use std::path::Path;

use quick_xml::Reader;
use quick_xml::events::Event;
use reqwest::{Method, StatusCode};
use url::Url;

use crate::config::types::Secret;

pub mod caldav;
pub mod calendar_remote;
pub mod contact_remote;

/// How many items one `addressbook-multiget` asks for.
pub const MULTIGET_BATCH: usize = 100;

/// Why a DAV request failed. Never holds the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DavError {
    /// The server refused the stored sync token (`valid-sync-token`, 403/409): list again.
    #[error("the server refused the sync token")]
    InvalidSyncToken,
    /// The server does not do `sync-collection` (the REPORT answered 403, 405 or 501 without
    /// a `valid-sync-token` precondition): list with PROPFIND and compare ETags instead.
    #[error("the server does not support sync-collection")]
    SyncUnsupported,
    /// A precondition (`If-Match` / `If-None-Match`) failed: 412.
    #[error("precondition failed (412) on {0}")]
    PreconditionFailed(String),
    /// The server answered 429 Too Many Requests: the run ends and the scheduler retries after
    /// its `Retry-After` (a minute when it gives none).
    #[error("{what}: 429 Too Many Requests")]
    Throttled {
        /// The request, without credentials.
        what: String,
        /// How long the server asked to wait.
        retry_after: std::time::Duration,
    },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl From<DavError> for crate::sync::remote::RemoteError {
    fn from(e: DavError) -> Self {
        use crate::sync::remote::RemoteError;
        match e {
            DavError::InvalidSyncToken => RemoteError::TokenExpired,
            DavError::Throttled { what, retry_after } => RemoteError::Throttled {
                message: format!("{what}: 429 Too Many Requests"),
                retry_after,
            },
            other => RemoteError::Failed(other.to_string()),
        }
    }
}

/// An address book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    /// Its absolute URL.
    pub url: Url,
    /// Its display name, when it has one.
    pub display_name: Option<String>,
    /// `Some(false)` when its `supported-report-set` lists reports but not `sync-collection`
    /// (list it with PROPFIND from the start); `None` when the server did not say.
    pub sync_collection: Option<bool>,
}

/// What a `sync-collection` report said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncDelta {
    /// The token to send next time.
    pub token: Option<String>,
    /// Items added or changed: `(href, etag)`.
    pub changed: Vec<(String, Option<String>)>,
    /// Items removed (404 entries).
    pub removed: Vec<String>,
}

/// An item read with multiget or GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Its href (a path).
    pub href: String,
    /// Its ETag.
    pub etag: Option<String>,
    /// The vCard.
    pub data: String,
}

/// One `<response>` of a multistatus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Response {
    href: String,
    /// The response-level status (sync-collection's 404 for a removed item).
    status: Option<u16>,
    /// Properties found (status 200), by local name.
    props: Vec<Prop>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Prop {
    name: String,
    text: String,
    hrefs: Vec<String>,
    children: Vec<String>,
}

impl Response {
    fn prop(&self, name: &str) -> Option<&Prop> {
        self.props.iter().find(|p| p.name == name)
    }
}

#[derive(Debug, Default)]
struct Multistatus {
    responses: Vec<Response>,
    sync_token: Option<String>,
}

fn status_code(text: &str) -> Option<u16> {
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok())
}

/// Parses a `207 Multi-Status` body as a sync does and answers how many responses it holds;
/// the parser's entry point for the fuzz targets (a server's answer is outside input).
pub fn multistatus_responses(body: &str) -> Result<usize, String> {
    parse_multistatus(body).map(|m| m.responses.len())
}

/// Parses a `207 Multi-Status` body, namespace-agnostically (DAV element names are distinct).
fn parse_multistatus(body: &str) -> Result<Multistatus, String> {
    let mut reader = Reader::from_str(body);
    let mut out = Multistatus::default();
    let mut stack: Vec<String> = Vec::new();
    let mut response: Option<Response> = None;
    let mut propstat: Option<(Option<u16>, Vec<Prop>)> = None;
    // depth of the <prop> element inside the current propstat
    let mut prop_depth: Option<usize> = None;
    let mut current: Option<Prop> = None;
    let mut text = String::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("invalid XML in a DAV answer: {e}"))?;
        let (start, end) = match &event {
            Event::Start(e) => (Some(e.local_name().as_ref().to_owned()), false),
            Event::Empty(e) => (Some(e.local_name().as_ref().to_owned()), true),
            Event::End(_) => (None, true),
            Event::Text(t) => {
                text.push_str(&t.xml10_content());
                (None, false)
            }
            Event::CData(t) => {
                text.push_str(t.as_ref());
                (None, false)
            }
            Event::GeneralRef(r) => {
                if let Ok(Some(ch)) = r.resolve_char_ref() {
                    text.push(ch);
                } else {
                    let name = r.xml10_content();
                    text.push_str(match name.as_ref() {
                        "amp" => "&",
                        "lt" => "<",
                        "gt" => ">",
                        "quot" => "\"",
                        "apos" => "'",
                        _ => "",
                    });
                }
                (None, false)
            }
            Event::Eof => break,
            _ => (None, false),
        };
        if let Some(name) = start {
            text.clear();
            let depth = stack.len();
            match name.as_str() {
                "response" => response = Some(Response::default()),
                "propstat" => propstat = Some((None, Vec::new())),
                "prop" if propstat.is_some() && prop_depth.is_none() => prop_depth = Some(depth),
                _ => {
                    if let Some(pd) = prop_depth {
                        if depth == pd + 1 {
                            current = Some(Prop {
                                name: name.clone(),
                                ..Prop::default()
                            });
                        } else if let Some(p) = current.as_mut()
                            && name != "href"
                        {
                            p.children.push(name.clone());
                        }
                    }
                }
            }
            stack.push(name);
            if !end {
                continue;
            }
        }
        if end {
            let Some(name) = stack.pop() else { continue };
            let depth = stack.len();
            let value = std::mem::take(&mut text);
            let parent = stack.last().map(String::as_str);
            match (name.as_str(), parent) {
                ("href", Some("response")) => {
                    if let Some(r) = response.as_mut() {
                        r.href = value.trim().to_owned();
                    }
                }
                ("status", Some("response")) => {
                    if let Some(r) = response.as_mut() {
                        r.status = status_code(&value);
                    }
                }
                ("status", Some("propstat")) => {
                    if let Some(p) = propstat.as_mut() {
                        p.0 = status_code(&value);
                    }
                }
                ("sync-token", Some("multistatus")) => {
                    out.sync_token = Some(value.trim().to_owned()).filter(|t| !t.is_empty());
                }
                ("href", _) if prop_depth.is_some() => {
                    if let Some(p) = current.as_mut() {
                        p.hrefs.push(value.trim().to_owned());
                    }
                }
                ("prop", _) if prop_depth == Some(depth) => prop_depth = None,
                ("propstat", _) => {
                    if let (Some((status, props)), Some(r)) = (propstat.take(), response.as_mut())
                        && status.is_none_or(|s| s == 200)
                    {
                        r.props.extend(props);
                    }
                }
                ("response", _) => {
                    if let Some(r) = response.take() {
                        out.responses.push(r);
                    }
                }
                _ => {
                    if prop_depth.is_some_and(|pd| depth == pd + 1)
                        && let Some(mut p) = current.take()
                    {
                        p.text.push_str(&value);
                        if let Some(ps) = propstat.as_mut() {
                            ps.1.push(p);
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Escapes text for an XML body.
fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A CardDAV account's client.
pub struct DavClient {
    http: reqwest::Client,
    username: String,
    password: Secret,
    /// Requests sent, for the tests' request counts and the logs.
    requests: std::sync::atomic::AtomicU64,
}

/// The outcome of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Done; the new ETag when the server gave one.
    Ok(Option<String>),
    /// 412: the item changed (or, for a create, exists).
    PreconditionFailed,
}

impl DavClient {
    /// A client logging in as `username`, trusting `ca_file` besides the Web PKI roots.
    pub fn new(
        username: &str,
        password: Secret,
        ca_file: Option<&Path>,
    ) -> Result<DavClient, String> {
        let mut builder = crate::net::http_client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(60))
            .connect_timeout(std::time::Duration::from_secs(15));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read caFile {}: {e}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("caFile {} holds no PEM certificate: {e}", path.display()))?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(DavClient {
            http,
            username: username.to_owned(),
            password,
            requests: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How many requests this client sent.
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sends one request, following redirects by hand; returns the final URL, status, ETag
    /// and body.
    async fn send(
        &self,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<(Url, StatusCode, Option<String>, String), DavError> {
        let method = Method::from_bytes(method.as_bytes()).expect("a valid method");
        let mut url = url.clone();
        for _ in 0..6 {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .basic_auth(&self.username, Some(self.password.expose()));
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(body) = body {
                request = request.body(body.to_owned());
            }
            self.requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let response = request
                .send()
                .await
                .map_err(|e| DavError::Other(format!("{method} {url}: {}", e.without_url())))?;
            let status = response.status();
            if status.is_redirection()
                && let Some(location) = response
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
            {
                url = url
                    .join(location)
                    .map_err(|e| DavError::Other(format!("{method} {url}: bad redirect: {e}")))?;
                continue;
            }
            let retry_after = crate::net::retry_after(&response);
            let etag = response
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let text = response
                .text()
                .await
                .map_err(|e| DavError::Other(format!("{method} {url}: {}", e.without_url())))?;
            if status == StatusCode::UNAUTHORIZED {
                return Err(DavError::Other(format!(
                    "{method} {url}: 401 Unauthorized (check username and password)"
                )));
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                return Err(DavError::Throttled {
                    what: format!("{method} {url}"),
                    retry_after: retry_after.unwrap_or(std::time::Duration::from_secs(60)),
                });
            }
            return Ok((url, status, etag, text));
        }
        Err(DavError::Other(format!(
            "{method} {url}: too many redirects"
        )))
    }

    async fn propfind(
        &self,
        url: &Url,
        depth: &str,
        props: &str,
    ) -> Result<(Url, Multistatus), DavError> {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<d:propfind xmlns:d=\"DAV:\" xmlns:card=\"urn:ietf:params:xml:ns:carddav\"><d:prop>{props}</d:prop></d:propfind>"
        );
        let (url, status, _, text) = self
            .send(
                "PROPFIND",
                url,
                &[
                    ("depth", depth),
                    ("content-type", "application/xml; charset=utf-8"),
                ],
                Some(&body),
            )
            .await?;
        if status.as_u16() != 207 {
            return Err(DavError::Other(format!("PROPFIND {url}: {status}")));
        }
        let ms = parse_multistatus(&text).map_err(DavError::Other)?;
        Ok((url, ms))
    }

    /// The address books reachable from `url`: `url` itself when it is one; otherwise the
    /// principal (`current-user-principal` of `url`, else of `/.well-known/carddav`), its
    /// `addressbook-home-set`, and the address books in it.
    pub async fn discover(&self, url: &Url) -> Result<Vec<Collection>, DavError> {
        let props = "<d:resourcetype/><d:displayname/><d:supported-report-set/><d:current-user-principal/><card:addressbook-home-set/>";
        let mut principal = None;
        if let Ok((at, ms)) = self.propfind(url, "0", props).await
            && let Some(r) = ms.responses.first()
        {
            if r.prop("resourcetype")
                .is_some_and(|p| p.children.iter().any(|c| c == "addressbook"))
            {
                return Ok(vec![Collection {
                    url: at,
                    display_name: r.prop("displayname").and_then(|p| non_empty(&p.text)),
                    sync_collection: supports_sync_collection(r),
                }]);
            }
            if let Some(home) = r.prop("addressbook-home-set").and_then(|p| p.hrefs.first()) {
                return self.addressbooks(&join(&at, home)?).await;
            }
            principal = r
                .prop("current-user-principal")
                .and_then(|p| p.hrefs.first())
                .map(|h| join(&at, h))
                .transpose()?;
        }
        if principal.is_none() {
            let well_known = join(url, "/.well-known/carddav")?;
            let (at, ms) = self
                .propfind(&well_known, "0", "<d:current-user-principal/>")
                .await?;
            principal = ms
                .responses
                .first()
                .and_then(|r| r.prop("current-user-principal"))
                .and_then(|p| p.hrefs.first())
                .map(|h| join(&at, h))
                .transpose()?;
        }
        let principal = principal.ok_or_else(|| {
            DavError::Other(format!(
                "{url}: no current-user-principal (give the address book's URL instead)"
            ))
        })?;
        let (at, ms) = self
            .propfind(&principal, "0", "<card:addressbook-home-set/>")
            .await?;
        let home = ms
            .responses
            .first()
            .and_then(|r| r.prop("addressbook-home-set"))
            .and_then(|p| p.hrefs.first())
            .ok_or_else(|| DavError::Other(format!("{principal}: no addressbook-home-set")))?;
        self.addressbooks(&join(&at, home)?).await
    }

    async fn addressbooks(&self, home: &Url) -> Result<Vec<Collection>, DavError> {
        let (at, ms) = self
            .propfind(
                home,
                "1",
                "<d:resourcetype/><d:displayname/><d:supported-report-set/>",
            )
            .await?;
        let mut found = Vec::new();
        for r in &ms.responses {
            if r.prop("resourcetype")
                .is_some_and(|p| p.children.iter().any(|c| c == "addressbook"))
            {
                found.push(Collection {
                    url: join(&at, &r.href)?,
                    display_name: r.prop("displayname").and_then(|p| non_empty(&p.text)),
                    sync_collection: supports_sync_collection(r),
                });
            }
        }
        found.sort_by(|a, b| a.url.as_str().cmp(b.url.as_str()));
        Ok(found)
    }

    /// RFC 6578 `sync-collection` from `token` (`None`: an initial listing).
    pub async fn sync_collection(
        &self,
        collection: &Url,
        token: Option<&str>,
    ) -> Result<SyncDelta, DavError> {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<d:sync-collection xmlns:d=\"DAV:\"><d:sync-token>{}</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>",
            xml_escape(token.unwrap_or_default())
        );
        let (_, status, _, text) = self
            .send(
                "REPORT",
                collection,
                &[
                    ("depth", "1"),
                    ("content-type", "application/xml; charset=utf-8"),
                ],
                Some(&body),
            )
            .await?;
        match status.as_u16() {
            207 => {}
            403 | 409 if text.contains("valid-sync-token") => {
                return Err(DavError::InvalidSyncToken);
            }
            // a server that forgot the token without saying which precondition failed
            403 | 409 | 410 if token.is_some() => return Err(DavError::InvalidSyncToken),
            // no sync-collection at all (RFC 6578 §3.2 lets a server refuse the REPORT)
            403 | 405 | 501 => return Err(DavError::SyncUnsupported),
            _ => {
                return Err(DavError::Other(format!(
                    "REPORT sync-collection {collection}: {status}"
                )));
            }
        }
        let ms = parse_multistatus(&text).map_err(DavError::Other)?;
        let mut delta = SyncDelta {
            token: ms.sync_token,
            ..SyncDelta::default()
        };
        let own = collection.path().trim_end_matches('/').to_owned();
        for r in ms.responses {
            if r.href.trim_end_matches('/') == own {
                continue;
            }
            if r.status == Some(404) {
                delta.removed.push(r.href);
            } else if r.status.is_none_or(|s| s == 200) {
                let etag = r.prop("getetag").and_then(|p| non_empty(&p.text));
                delta.changed.push((r.href, etag));
            }
        }
        Ok(delta)
    }

    /// The items of a collection with their ETags, by a `PROPFIND Depth: 1` (for servers
    /// without `sync-collection`); sub-collections and the collection itself left out.
    pub async fn list_etags(
        &self,
        collection: &Url,
    ) -> Result<Vec<(String, Option<String>)>, DavError> {
        let (_, ms) = self
            .propfind(collection, "1", "<d:resourcetype/><d:getetag/>")
            .await?;
        let own = collection.path().trim_end_matches('/').to_owned();
        Ok(ms
            .responses
            .into_iter()
            .filter(|r| r.href.trim_end_matches('/') != own)
            .filter(|r| {
                !r.prop("resourcetype")
                    .is_some_and(|p| p.children.iter().any(|c| c == "collection"))
            })
            .map(|r| {
                let etag = r.prop("getetag").and_then(|p| non_empty(&p.text));
                (r.href, etag)
            })
            .collect())
    }

    /// `addressbook-multiget` of `hrefs` (one request; the caller batches).
    pub async fn multiget(
        &self,
        collection: &Url,
        hrefs: &[String],
    ) -> Result<Vec<Item>, DavError> {
        self.multiget_report(
            collection,
            hrefs,
            "card:addressbook-multiget",
            "xmlns:d=\"DAV:\" xmlns:card=\"urn:ietf:params:xml:ns:carddav\"",
            "card:address-data",
        )
        .await
    }

    /// A multiget REPORT of `hrefs`: `report` is the root element (prefixed, its namespaces
    /// declared by `namespaces`), `data` the property holding each item's text. Items answered
    /// without that property (gone, or not readable) are left out.
    pub(super) async fn multiget_report<'a>(
        &self,
        collection: &Url,
        hrefs: &[String],
        report: &'a str,
        namespaces: &str,
        data: &'a str,
    ) -> Result<Vec<Item>, DavError> {
        let mut body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<{report} {namespaces}><d:prop><d:getetag/><{data}/></d:prop>"
        );
        for href in hrefs {
            body.push_str(&format!("<d:href>{}</d:href>", xml_escape(href)));
        }
        body.push_str(&format!("</{report}>"));
        let (_, status, _, text) = self
            .send(
                "REPORT",
                collection,
                &[
                    ("depth", "1"),
                    ("content-type", "application/xml; charset=utf-8"),
                ],
                Some(&body),
            )
            .await?;
        // Names without their prefix: the error message's, and the parser's (it keeps local names).
        let local = |qualified: &'a str| qualified.rsplit(':').next().unwrap_or(qualified);
        if status.as_u16() != 207 {
            return Err(DavError::Other(format!(
                "REPORT {} {collection}: {status}",
                local(report)
            )));
        }
        let data = local(data);
        let ms = parse_multistatus(&text).map_err(DavError::Other)?;
        Ok(ms
            .responses
            .into_iter()
            .filter_map(|r| {
                let text = r.prop(data)?.text.clone();
                let etag = r.prop("getetag").and_then(|p| non_empty(&p.text));
                Some(Item {
                    href: r.href,
                    etag,
                    data: text,
                })
            })
            .collect())
    }

    /// GETs one item; `None` when it is gone.
    pub async fn get(&self, url: &Url) -> Result<Option<Item>, DavError> {
        let (_, status, etag, text) = self.send("GET", url, &[], None).await?;
        match status.as_u16() {
            200 => Ok(Some(Item {
                href: url.path().to_owned(),
                etag,
                data: text,
            })),
            404 | 410 => Ok(None),
            _ => Err(DavError::Other(format!("GET {url}: {status}"))),
        }
    }

    /// PUTs a vCard: a create (`If-None-Match: *`) when `if_match` is `None`, else an update
    /// of that version.
    pub async fn put(
        &self,
        url: &Url,
        data: &str,
        if_match: Option<&str>,
    ) -> Result<Written, DavError> {
        let condition = match if_match {
            Some(etag) => ("if-match", etag),
            None => ("if-none-match", "*"),
        };
        let (_, status, etag, _) = self
            .send(
                "PUT",
                url,
                &[condition, ("content-type", "text/vcard; charset=utf-8")],
                Some(data),
            )
            .await?;
        match status.as_u16() {
            200 | 201 | 204 => Ok(Written::Ok(etag)),
            412 => Ok(Written::PreconditionFailed),
            _ => Err(DavError::Other(format!("PUT {url}: {status}"))),
        }
    }

    /// DELETEs an item of version `etag`; a gone item counts as deleted.
    pub async fn delete(&self, url: &Url, etag: Option<&str>) -> Result<Written, DavError> {
        let headers: Vec<(&str, &str)> = etag.map(|e| ("if-match", e)).into_iter().collect();
        let (_, status, _, _) = self.send("DELETE", url, &headers, None).await?;
        match status.as_u16() {
            200 | 204 | 404 | 410 => Ok(Written::Ok(None)),
            412 => Ok(Written::PreconditionFailed),
            _ => Err(DavError::Other(format!("DELETE {url}: {status}"))),
        }
    }
}

/// Whether a collection's `supported-report-set` lists `sync-collection`; `None` when the
/// server did not answer the property.
fn supports_sync_collection(r: &Response) -> Option<bool> {
    let set = r.prop("supported-report-set")?;
    if set.children.is_empty() {
        return None; // an empty set says nothing useful
    }
    Some(set.children.iter().any(|c| c == "sync-collection"))
}

fn non_empty(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// `href` (a path or an absolute URL) against `base`.
pub fn join(base: &Url, href: &str) -> Result<Url, DavError> {
    base.join(href)
        .map_err(|e| DavError::Other(format!("bad href {href:?} from {base}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_sync_collection_answer_with_a_removed_item() {
        let body = r#"<?xml version='1.0' encoding='utf-8'?>
<multistatus xmlns="DAV:"><sync-token>http://radicale.org/ns/sync/abc</sync-token>
<response><href>/a/c/1.vcf</href><propstat><prop><getetag>"e1"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat></response>
<response><href>/a/c/2.vcf</href><status>HTTP/1.1 404 Not Found</status></response></multistatus>"#;
        let ms = parse_multistatus(body).expect("parse");
        assert_eq!(
            ms.sync_token.as_deref(),
            Some("http://radicale.org/ns/sync/abc")
        );
        assert_eq!(ms.responses.len(), 2);
        assert_eq!(
            ms.responses[0].prop("getetag").expect("etag").text,
            "\"e1\""
        );
        assert_eq!(ms.responses[1].status, Some(404));
    }

    #[test]
    fn a_supported_report_set_without_sync_collection_says_so() {
        let body = r#"<?xml version="1.0"?>
<d:multistatus xmlns:d="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">
<d:response><d:href>/u/a/</d:href><d:propstat><d:prop><d:supported-report-set>
<d:supported-report><d:report><C:addressbook-multiget/></d:report></d:supported-report>
</d:supported-report-set></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
<d:response><d:href>/u/b/</d:href><d:propstat><d:prop><d:supported-report-set>
<d:supported-report><d:report><d:sync-collection/></d:report></d:supported-report>
</d:supported-report-set></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
<d:response><d:href>/u/c/</d:href><d:propstat><d:prop><d:displayname>c</d:displayname></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
</d:multistatus>"#;
        let ms = parse_multistatus(body).expect("parse");
        let support: Vec<Option<bool>> =
            ms.responses.iter().map(supports_sync_collection).collect();
        assert_eq!(support, [Some(false), Some(true), None]);
    }

    #[test]
    fn parses_hrefs_resource_types_and_escaped_address_data() {
        let body = r#"<?xml version="1.0"?>
<d:multistatus xmlns:d="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">
<d:response><d:href>/alice/</d:href><d:propstat><d:prop>
<d:current-user-principal><d:href>/alice/</d:href></d:current-user-principal>
<d:resourcetype><d:principal /><d:collection /></d:resourcetype>
</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>
<d:propstat><d:prop><d:displayname /></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat></d:response>
<d:response><d:href>/alice/c/1.vcf</d:href><d:propstat><d:prop><CR:address-data>BEGIN:VCARD&#13;
FN:A &amp; B
END:VCARD</CR:address-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
</d:multistatus>"#;
        let ms = parse_multistatus(body).expect("parse");
        let r = &ms.responses[0];
        assert_eq!(
            r.prop("current-user-principal").expect("cup").hrefs,
            ["/alice/"]
        );
        assert_eq!(
            r.prop("resourcetype").expect("rt").children,
            ["principal", "collection"]
        );
        assert!(
            r.prop("displayname").is_none(),
            "a 404 propstat is not a property"
        );
        assert_eq!(
            ms.responses[1].prop("address-data").expect("data").text,
            "BEGIN:VCARD\r\nFN:A & B\nEND:VCARD"
        );
    }
}
