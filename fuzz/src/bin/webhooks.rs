//! Fuzz target: every webhook body parser (chat channels, LinkedIn notifications and the lead
//! form responses fetched for them). The first byte picks the parser, the rest is the
//! body as a provider (or an attacker) would send it after the signature check.
use std::sync::LazyLock;

use switchboard::chat::channels::{api, messenger, telegram, twilio};
use switchboard::config::kinds::ChatChannelSpec;
use switchboard::leads;

/// A WhatsApp channel's spec, for the Twilio form parser's account and number checks.
static TWILIO: LazyLock<ChatChannelSpec> = LazyLock::new(|| {
    serde_json::from_value(serde_json::json!({
        "provider": "whatsapp", "title": "W", "queue": "q", "language": "en-US",
        "phoneNumber": "+14155550100", "verificationPhoneNumber": "+14155550101",
        "accountSid": "AC0123456789abcdef0123456789abcdef",
        "authToken": {"env": "FUZZ_UNUSED"}
    }))
    .expect("the WhatsApp spec deserializes")
});

fn main() {
    LazyLock::force(&TWILIO);
    afl::fuzz!(|data: &[u8]| {
        let Some((&which, body)) = data.split_first() else {
            return;
        };
        match which % 6 {
            0 => {
                let _ = api::parse_inbound("site", body);
            }
            1 => {
                let _ = telegram::parse_update("tg", body);
            }
            2 => {
                let _ = messenger::parse(body);
            }
            4 => {
                if let Ok(n) = serde_json::from_slice::<leads::api::Notification>(body) {
                    let _ = (n.ad_account(), n.form_id());
                }
            }
            5 => {
                // A lead form response and its form, as the Lead Sync API answers them.
                if let Ok(serde_json::Value::Array(pair)) = serde_json::from_slice(body)
                    && let [response, form] = pair.as_slice()
                {
                    let values = leads::mapping::values(response, form);
                    let _ = leads::mapping::person(&values);
                }
            }
            _ => {
                let params: Vec<(String, String)> = url::form_urlencoded::parse(body)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let _ = twilio::parse_inbound("wa", &TWILIO, &params);
            }
        }
    });
}
