//! Fuzz target: the manifest loader (YAML bytes → objects or positioned diagnostics).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data) {
            switchboard_fuzz::manifest(text);
        }
    });
}
