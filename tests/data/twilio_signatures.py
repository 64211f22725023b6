#!/usr/bin/env python3
"""Writes tests/data/twilio_signatures.json: X-Twilio-Signature values made by Twilio's own SDK
(PyPI `twilio`, 9.13.0 when generated), so the daemon's check is verified against the vendor's
code and not against a second copy of our own. Regenerate with:

    python3 -m venv /tmp/tw && /tmp/tw/bin/pip install twilio==9.13.0
    /tmp/tw/bin/python tests/data/twilio_signatures.py > tests/data/twilio_signatures.json

tests/chat_whatsapp.rs sends exactly these params to a daemon whose siteUrl is
https://sb.example.test; src/chat/channels/twilio.rs checks every case in a unit test.
"""
import json

from twilio.request_validator import RequestValidator

TOKEN = "wa-auth-token-3f7a"
SID = "AC" + "0" * 31 + "1"
SITE = "https://sb.example.test"


def wa(sid, body, **extra):
    params = {"From": "whatsapp:+15551234567", "To": "whatsapp:+15557654321", "Body": body,
              "MessageSid": sid, "AccountSid": SID, "NumMedia": "0", "ProfileName": "Tom",
              "SmsMessageSid": sid, "NumSegments": "1", "ApiVersion": "2010-04-01"}
    params.update(extra)
    return params


cases = [
    # Twilio's documented example (their docs and the SDK's tests).
    {"name": "twilio-docs", "authToken": "12345", "url": "https://mycompany.com/myapp.php?foo=1&bar=2",
     "params": {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
                "From": "+12349013030", "To": "+18005551212"}},
    {"name": "text", "url": SITE + "/webhooks/twilio/wa-sales",
     "params": wa("SM00000000000000000000000000000001", "Привет & hello = 1+1")},
    {"name": "image", "url": SITE + "/webhooks/twilio/wa-sales",
     "params": wa("SM00000000000000000000000000000002", "", NumMedia="1",
                  MediaContentType0="image/jpeg",
                  MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/" + SID + "/Messages/MM2/Media/ME2")},
    {"name": "refused-media", "url": SITE + "/webhooks/twilio/wa-sales",
     "params": wa("SM00000000000000000000000000000003", "my video", NumMedia="1",
                  MediaContentType0="video/quicktime",
                  MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/" + SID + "/Messages/MM3/Media/ME3")},
    {"name": "unverified-account", "url": SITE + "/webhooks/twilio/wa-closed",
     "params": wa("SM00000000000000000000000000000004", "hello?")},
]
for case in cases:
    token = case.setdefault("authToken", TOKEN)
    case["signature"] = RequestValidator(token).compute_signature(case["url"], case["params"])
print(json.dumps(cases, ensure_ascii=False, indent=1))
