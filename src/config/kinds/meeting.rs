//! `MeetingService`: URL masks that recognise online-meeting links (OM-01).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::types::Pattern;

/// An online-meeting service and the mask that recognises its links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeetingServiceSpec {
    /// Human-readable title.
    pub title: String,
    /// What the service is.
    pub description: String,
    /// Regular expression (Rust `regex` syntax) that matches the service's links.
    pub mask: Pattern,
}

impl MeetingServiceSpec {
    /// The first link in `text` that this service's mask recognises: from where the mask
    /// matched to the end of that link (whitespace, a quote, an angle bracket or a closing
    /// parenthesis ends it).
    pub fn find_link(&self, text: &str) -> Option<String> {
        let found = self.mask.regex()?.find(text)?;
        let rest = &text[found.start()..];
        let end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')'))
            .unwrap_or(rest.len());
        Some(rest[..end].to_owned())
    }
}

/// OM-01 at run time: the meeting an activity links to — the first service (in the order
/// given) whose mask recognises a link in the first field (in the order given) that has one.
/// Callers pass the provider's online-meeting field first, then the location, then the
/// description. Returns the service's name and the link.
pub fn find_meeting<'a>(
    services: impl IntoIterator<Item = (&'a str, &'a MeetingServiceSpec)> + Clone,
    fields: &[Option<&str>],
) -> Option<(String, String)> {
    fields.iter().flatten().find_map(|text| {
        services
            .clone()
            .into_iter()
            .find_map(|(name, service)| service.find_link(text).map(|url| (name.to_owned(), url)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(mask: &str) -> MeetingServiceSpec {
        MeetingServiceSpec {
            title: "T".into(),
            description: "D".into(),
            mask: mask.parse().expect("a valid mask"),
        }
    }

    // REQ: OM-01
    #[test]
    fn a_meeting_is_found_in_the_first_field_with_a_recognised_link() {
        let zoom = service(r"(?i)https?://(?:[a-z0-9-]+\.)*zoom\.us/j/\d");
        let own = service(r"(?i)https?://meet\.example\.com/\w");
        let services = [("zoom", &zoom), ("own", &own)];
        let found = find_meeting(
            services,
            &[
                None,
                Some("Room 4"),
                Some("Join: <https://acme.zoom.us/j/123?pwd=x> or call"),
            ],
        );
        assert_eq!(
            found,
            Some(("zoom".into(), "https://acme.zoom.us/j/123?pwd=x".into()))
        );
        let found = find_meeting(
            services,
            &[
                Some("https://meet.example.com/standup"),
                Some("https://zoom.us/j/1"),
            ],
        );
        assert_eq!(found.map(|f| f.0), Some("own".into()));
        assert_eq!(find_meeting(services, &[Some("no link here"), None]), None);
    }
}
