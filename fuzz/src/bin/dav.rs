//! Fuzz target: what a CardDAV server answers — `207 Multi-Status` bodies and vCards (parsed,
//! then patched back as an export would). The first byte picks the parser.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&which, rest)) = data.split_first() else {
            return;
        };
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        if which % 2 == 0 {
            let _ = switchboard::sync::dav::multistatus_responses(text);
        } else {
            let fields = switchboard::sync::vcard::parse(text);
            let patched = switchboard::sync::vcard::patch(Some(text), &fields, "fuzz-uid");
            let _ = switchboard::sync::vcard::parse(&patched);
        }
    });
}
