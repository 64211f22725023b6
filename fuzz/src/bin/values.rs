//! Fuzz target: the typed manifest values — durations, schedules, language tags, e-mail
//! addresses, URLs, patterns and secret references — each parsed as a YAML string would reach it.
use switchboard::config::types::{
    Duration, EmailAddress, HttpUrl, LanguageTag, Pattern, Schedule, SecretRef,
};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&which, rest)) = data.split_first() else {
            return;
        };
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        let value = serde_json::Value::String(text.to_owned());
        match which % 7 {
            0 => {
                if let Ok(d) = serde_json::from_value::<Duration>(value) {
                    let _ = d.get();
                }
            }
            1 => {
                if let Ok(s) = serde_json::from_value::<Schedule>(value) {
                    let _ = s.next_after(chrono::Utc::now());
                }
            }
            2 => {
                let _ = serde_json::from_value::<LanguageTag>(value);
            }
            3 => {
                if let Ok(e) = serde_json::from_value::<EmailAddress>(value) {
                    let _ = (e.local_part(), e.domain());
                }
            }
            4 => {
                let _ = serde_json::from_value::<HttpUrl>(value);
            }
            5 => {
                if let Ok(p) = serde_json::from_value::<Pattern>(value) {
                    // Accepted when read, compiled on first use (None: over the size limit).
                    if let Some(regex) = p.regex() {
                        let _ = regex.is_match("https://teams.microsoft.com/l/meetup-join/x");
                    }
                }
            }
            _ => {
                let object = serde_json::json!({ "file": text });
                let _ = serde_json::from_value::<SecretRef>(object);
            }
        }
    });
}
