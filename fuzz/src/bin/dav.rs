//! Fuzz target: what a CardDAV / CalDAV server answers — `207 Multi-Status` bodies, vCards
//! and iCalendar objects (parsed, then patched back as an export would, with a changed field
//! so the rewrite runs). The first byte picks the parser.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&which, rest)) = data.split_first() else {
            return;
        };
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        match which % 3 {
            0 => {
                let _ = switchboard::sync::dav::multistatus_responses(text);
            }
            1 => {
                let fields = switchboard::sync::vcard::parse(text);
                let patched = switchboard::sync::vcard::patch(Some(text), &fields, "fuzz-uid");
                let _ = switchboard::sync::vcard::parse(&patched);
            }
            _ => {
                use switchboard::sync::ical;
                let mut fields = ical::parse(text).unwrap_or_default();
                fields.summary = Some("fuzz".into());
                fields.attendees.push(("fuzz@example.com".into(), "accepted".into()));
                let now = chrono::DateTime::UNIX_EPOCH;
                let patched = ical::patch(Some(text), &fields, "fuzz-uid", now, &|a: &str| {
                    a.len() % 2 == 0
                });
                let _ = ical::parse(&patched);
            }
        }
    });
}
