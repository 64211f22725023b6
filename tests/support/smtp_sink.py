#!/usr/bin/python3
"""SMTP sink for Switchboard's tests, on Debian's python3-aiosmtpd (run with /usr/bin/python3:
a python3 from pyenv or a venv earlier on PATH does not see Debian's dist-packages).

  smtp_sink.py PORT TLS_PORT DIR CERT KEY [USER:PASSWORD ...]

127.0.0.1:PORT      plain SMTP, STARTTLS offered
127.0.0.1:TLS_PORT  implicit TLS (like port 465)
Every accepted message is stored in the Maildir DIR/new/ with X-Envelope-From, X-Envelope-To
and X-Auth-User headers prepended. With USER:PASSWORD pairs, AUTH PLAIN/LOGIN is offered and
required (also without TLS, so loopback tests need none); a wrong password gets 535.
A recipient whose local part is `tempfail` gets 451 (try again later); `reject` gets 550.
Prints "smtp sink up" when both ports listen; stops on SIGTERM/SIGINT.
"""
import mailbox
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, tls_port, d, cert, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
creds = dict(a.split(":", 1) for a in sys.argv[6:])
box = mailbox.Maildir(d, create=True)


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local == "tempfail":
            return "451 4.3.0 try again later"
        if local == "reject":
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        login = getattr(session, "auth_data", None)
        head = (
            f"X-Envelope-From: {envelope.mail_from}\r\n"
            f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
            f"X-Auth-User: {login.login.decode() if login else None}\r\n"
        ).encode()
        box.add(head + envelope.original_content)
        return "250 2.0.0 OK stored"


def authenticator(server, session, envelope, mechanism, auth_data):
    if isinstance(auth_data, LoginPassword):
        if creds.get(auth_data.login.decode()) == auth_data.password.decode():
            return AuthResult(success=True, auth_data=auth_data)
    return AuthResult(success=False, handled=False)


def context():
    c = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    c.load_cert_chain(cert, key)
    return c


auth = dict(authenticator=authenticator, auth_required=True, auth_require_tls=False) if creds else {}
plain = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=context(), **auth)
wrapped = Controller(Handler(), hostname="127.0.0.1", port=tls_port, ssl_context=context(), **auth)
plain.start()
wrapped.start()
print("smtp sink up", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
signal.signal(signal.SIGINT, lambda *_: stop.set())
stop.wait()
plain.stop()
wrapped.stop()
