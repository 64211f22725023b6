//! Fuzz target: MIME parsing of a fetched letter (`mail::mime::parse`), which never fails.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = switchboard::mail::mime::parse(data);
    });
}
