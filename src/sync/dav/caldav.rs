//! CalDAV (RFC 4791) on the WebDAV client: discovery (RFC 6764 `/.well-known/caldav`,
//! `current-user-principal`, `calendar-home-set`), calendars with their display name and
//! `supported-calendar-component-set`, `calendar-multiget`, and writes of iCalendar objects
//! with `Schedule-Reply: F` when the sync must not schedule (RFC 6638, BX-03).
//!
//! A child of `dav.rs` so it shares that client's private request plumbing; `sync-collection`
//! is the same report for calendars and address books.

use quick_xml::Reader;
use quick_xml::events::Event;
use url::Url;

use super::{DavClient, DavError, Item, Multistatus, Written, join, non_empty, parse_multistatus};

/// A calendar collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// Its absolute URL.
    pub url: Url,
    /// Its display name, when it has one.
    pub display_name: Option<String>,
    /// The components it accepts (`VEVENT`, `VTODO`); empty when the server did not say
    /// (RFC 4791: then it accepts any).
    pub components: Vec<String>,
}

impl Calendar {
    /// Whether it accepts `component`.
    pub fn accepts(&self, component: &str) -> bool {
        self.components.is_empty() || self.components.iter().any(|c| c == component)
    }
}

const NS: &str = "xmlns:d=\"DAV:\" xmlns:cal=\"urn:ietf:params:xml:ns:caldav\"";

/// The `comp name="..."` of each response's `supported-calendar-component-set`, by href
/// (the shared multistatus parser keeps element names, not attributes).
fn components_by_href(body: &str) -> Vec<(String, Vec<String>)> {
    let mut reader = Reader::from_str(body);
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_href = false;
    let mut depth_in_response = 0usize;
    let mut href = String::new();
    let mut comps = Vec::new();
    loop {
        let event = match reader.read_event() {
            Ok(Event::Eof) | Err(_) => break,
            Ok(e) => e,
        };
        match &event {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.local_name().as_ref().to_owned();
                let empty = matches!(event, Event::Empty(_));
                match name.as_str() {
                    "response" => {
                        href.clear();
                        comps.clear();
                        depth_in_response = 0;
                    }
                    "href" if depth_in_response == 0 && !empty => in_href = true,
                    "comp" => {
                        if let Some(Ok(a)) = e.attributes().find(|a| {
                            a.as_ref()
                                .is_ok_and(|a| a.key.local_name().as_ref() == "name")
                        }) {
                            comps.push(a.value.to_ascii_uppercase());
                        }
                    }
                    _ => {}
                }
                if !empty && name != "response" {
                    depth_in_response += 1;
                }
            }
            Event::Text(t) if in_href => href.push_str(&t.xml10_content()),
            Event::End(e) => {
                if e.local_name().as_ref() == "response" {
                    out.push((href.trim().to_owned(), std::mem::take(&mut comps)));
                } else {
                    depth_in_response = depth_in_response.saturating_sub(1);
                    if e.local_name().as_ref() == "href" {
                        in_href = false;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

impl DavClient {
    async fn caldav_propfind(
        &self,
        url: &Url,
        depth: &str,
        props: &str,
    ) -> Result<(Url, Multistatus, String), DavError> {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<d:propfind {NS}><d:prop>{props}</d:prop></d:propfind>"
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
        Ok((url, ms, text))
    }

    /// The calendars reachable from `url`: `url` itself when it is one; otherwise the
    /// principal (`current-user-principal` of `url`, else of `/.well-known/caldav`), its
    /// `calendar-home-set`, and the calendars in it.
    pub async fn discover_calendars(&self, url: &Url) -> Result<Vec<Calendar>, DavError> {
        let props = "<d:resourcetype/><d:displayname/><d:current-user-principal/><cal:calendar-home-set/><cal:supported-calendar-component-set/>";
        let mut principal = None;
        if let Ok((at, ms, text)) = self.caldav_propfind(url, "0", props).await
            && let Some(r) = ms.responses.first()
        {
            if r.prop("resourcetype")
                .is_some_and(|p| p.children.iter().any(|c| c == "calendar"))
            {
                return Ok(vec![Calendar {
                    url: at,
                    display_name: r.prop("displayname").and_then(|p| non_empty(&p.text)),
                    components: components_by_href(&text)
                        .into_iter()
                        .next()
                        .map(|(_, c)| c)
                        .unwrap_or_default(),
                }]);
            }
            if let Some(home) = r.prop("calendar-home-set").and_then(|p| p.hrefs.first()) {
                return self.calendars(&join(&at, home)?).await;
            }
            principal = r
                .prop("current-user-principal")
                .and_then(|p| p.hrefs.first())
                .map(|h| join(&at, h))
                .transpose()?;
        }
        if principal.is_none() {
            let well_known = join(url, "/.well-known/caldav")?;
            let (at, ms, _) = self
                .caldav_propfind(&well_known, "0", "<d:current-user-principal/>")
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
                "{url}: no current-user-principal (give the calendar's URL instead)"
            ))
        })?;
        let (at, ms, _) = self
            .caldav_propfind(&principal, "0", "<cal:calendar-home-set/>")
            .await?;
        let home = ms
            .responses
            .first()
            .and_then(|r| r.prop("calendar-home-set"))
            .and_then(|p| p.hrefs.first())
            .ok_or_else(|| DavError::Other(format!("{principal}: no calendar-home-set")))?;
        self.calendars(&join(&at, home)?).await
    }

    async fn calendars(&self, home: &Url) -> Result<Vec<Calendar>, DavError> {
        let (at, ms, text) = self
            .caldav_propfind(
                home,
                "1",
                "<d:resourcetype/><d:displayname/><cal:supported-calendar-component-set/>",
            )
            .await?;
        let comps = components_by_href(&text);
        let mut found = Vec::new();
        for r in &ms.responses {
            if r.prop("resourcetype")
                .is_some_and(|p| p.children.iter().any(|c| c == "calendar"))
            {
                found.push(Calendar {
                    url: join(&at, &r.href)?,
                    display_name: r.prop("displayname").and_then(|p| non_empty(&p.text)),
                    components: comps
                        .iter()
                        .find(|(h, _)| *h == r.href)
                        .map(|(_, c)| c.clone())
                        .unwrap_or_default(),
                });
            }
        }
        found.sort_by(|a, b| a.url.as_str().cmp(b.url.as_str()));
        Ok(found)
    }

    /// `calendar-multiget` of `hrefs` (one request; the caller batches).
    pub async fn calendar_multiget(
        &self,
        collection: &Url,
        hrefs: &[String],
    ) -> Result<Vec<Item>, DavError> {
        self.multiget_report(
            collection,
            hrefs,
            "cal:calendar-multiget",
            NS,
            "cal:calendar-data",
        )
        .await
    }

    /// PUTs an iCalendar object: a create (`If-None-Match: *`) when `if_match` is `None`,
    /// else an update of that version; `quiet` adds `Schedule-Reply: F` (no scheduling
    /// message to anyone for this write).
    pub async fn put_calendar_object(
        &self,
        url: &Url,
        data: &str,
        if_match: Option<&str>,
        quiet: bool,
    ) -> Result<Written, DavError> {
        let condition = match if_match {
            Some(etag) => ("if-match", etag),
            None => ("if-none-match", "*"),
        };
        let mut headers = vec![condition, ("content-type", "text/calendar; charset=utf-8")];
        if quiet {
            headers.push(("schedule-reply", "F"));
        }
        let (_, status, etag, _) = self.send("PUT", url, &headers, Some(data)).await?;
        match status.as_u16() {
            200 | 201 | 204 => Ok(Written::Ok(etag)),
            412 => Ok(Written::PreconditionFailed),
            _ => Err(DavError::Other(format!("PUT {url}: {status}"))),
        }
    }

    /// DELETEs a calendar object of version `etag`; `quiet` adds `Schedule-Reply: F`.
    pub async fn delete_calendar_object(
        &self,
        url: &Url,
        etag: Option<&str>,
        quiet: bool,
    ) -> Result<Written, DavError> {
        let mut headers: Vec<(&str, &str)> = etag.map(|e| ("if-match", e)).into_iter().collect();
        if quiet {
            headers.push(("schedule-reply", "F"));
        }
        let (_, status, _, _) = self.send("DELETE", url, &headers, None).await?;
        match status.as_u16() {
            200 | 204 | 404 | 410 => Ok(Written::Ok(None)),
            412 => Ok(Written::PreconditionFailed),
            _ => Err(DavError::Other(format!("DELETE {url}: {status}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_supported_components_of_each_calendar() {
        let body = r#"<?xml version="1.0"?><multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
<response><href>/u/</href><propstat><prop><resourcetype><collection/></resourcetype></prop></propstat></response>
<response><href>/u/cal/</href><propstat><prop><C:supported-calendar-component-set><C:comp name="VEVENT"/><C:comp name="vtodo"/></C:supported-calendar-component-set></prop></propstat></response>
</multistatus>"#;
        let found = components_by_href(body);
        assert_eq!(found[0], ("/u/".to_owned(), vec![]));
        assert_eq!(
            found[1],
            (
                "/u/cal/".to_owned(),
                vec!["VEVENT".to_owned(), "VTODO".to_owned()]
            )
        );
    }
}
