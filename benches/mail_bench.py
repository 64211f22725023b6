#!/usr/bin/env python3
"""Helpers for benches/mail_sync.sh (standard library only).

  mail_bench.py generate MAILDIR N      write N messages (2-50 KB, some with attachments) into
                                        MAILDIR/new, the way a delivery agent would
  mail_bench.py fetch PORT USER PASS    LOGIN, SELECT INBOX, one `UID FETCH 1:* BODY.PEEK[]`;
                                        prints "<seconds> <messages> <bytes>" (the wire limit:
                                        literals are counted and discarded, nothing parsed)
  mail_bench.py select PORT USER PASS   LOGIN + SELECT INBOX (Dovecot indexes new/ on it)
"""

import base64
import os
import random
import socket
import sys
import time

WORDS = (
    "invoice order shipment meeting quarterly report contract renewal customer support ticket "
    "delivery schedule update please find attached regards thanks confirm budget review team "
    "project milestone deadline agenda minutes proposal pricing discount warehouse account"
).split()


def paragraph(rng, size):
    out, n = [], 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + "."
        out.append(line)
        n += len(line) + 2
    return "\r\n".join(out)


def message(rng, i, to):
    """A message whose total size falls in 2-50 KB: ~60 % short plain text, ~25 % text + HTML,
    ~15 % with a PDF or PNG attachment (base64)."""
    kind = rng.random()
    head = (
        f"From: Sender {i % 500} <sender{i % 500}@example.org>\r\n"
        f"To: {to}\r\n"
        f"Subject: Bench message {i}: {rng.choice(WORDS)} {rng.choice(WORDS)}\r\n"
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
        f"Message-ID: <bench-{i}@example.test>\r\n"
        "MIME-Version: 1.0\r\n"
    )
    if kind < 0.60:
        body = paragraph(rng, rng.randint(1_800, 8_000))
        return head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n"
    if kind < 0.85:
        text = paragraph(rng, rng.randint(3_000, 10_000))
        html = "<html><body><p>" + text.replace("\r\n", "</p>\r\n<p>") + "</p></body></html>"
        return (
            head
            + 'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n'
            + "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n"
            + "--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n"
            + "--alt--\r\n"
        )
    text = paragraph(rng, rng.randint(500, 3_000))
    raw = rng.randbytes(rng.randint(15_000, 33_000))
    b64 = base64.encodebytes(raw).decode().replace("\n", "\r\n")
    name, ctype = rng.choice([("report.pdf", "application/pdf"), ("photo.png", "image/png")])
    return (
        head
        + 'Content-Type: multipart/mixed; boundary="mix"\r\n\r\n'
        + "--mix\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n"
        + f'--mix\r\nContent-Type: {ctype}; name="{name}"\r\n'
        + f'Content-Disposition: attachment; filename="{name}"\r\n'
        + "Content-Transfer-Encoding: base64\r\n\r\n" + b64
        + "--mix--\r\n"
    )


def generate(maildir, n):
    rng = random.Random(20251125)
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
    stamp = int(time.time())
    total = 0
    for i in range(1, n + 1):
        data = message(rng, i, "bench@example.test").encode()
        total += len(data)
        # Names sort in delivery order, so Dovecot assigns UIDs 1..N in order.
        name = f"{stamp}.M{i:08d}P{os.getpid()}.bench"
        with open(os.path.join(maildir, "tmp", name), "wb") as f:
            f.write(data)
        os.rename(os.path.join(maildir, "tmp", name), os.path.join(maildir, "new", name))
    print(f"{n} messages, {total} bytes ({total / n / 1024:.1f} KiB on average)")


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.line()  # greeting

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise SystemExit("connection closed")
            self.buf += chunk
        i = self.buf.index(b"\r\n") + 2
        line, self.buf = bytes(self.buf[:i]), self.buf[i:]
        return line

    def skip(self, size):
        """Discards a literal of `size` bytes."""
        while len(self.buf) < size:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise SystemExit("connection closed")
            self.buf += chunk
        del self.buf[:size]

    def command(self, tag, text):
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        messages = 0
        while True:
            line = self.line()
            if line.startswith(tag.encode() + b" "):
                if not line.startswith(tag.encode() + b" OK"):
                    raise SystemExit(f"{text.split()[0]} failed: {line!r}")
                return messages
            while line.endswith(b"}\r\n"):
                size = int(line[line.rindex(b"{") + 1 : -3])
                self.skip(size)
                messages += 1
                line = self.line()


def login_select(port, user, password):
    conn = Conn(port)
    conn.command("a1", f'LOGIN "{user}" "{password}"')
    conn.command("a2", "SELECT INBOX")
    return conn


def fetch(port, user, password):
    start = time.monotonic()
    conn = login_select(port, user, password)
    n = conn.command("a3", "UID FETCH 1:* BODY.PEEK[]")
    conn.command("a4", "LOGOUT")
    print(f"{time.monotonic() - start:.3f} {n}")


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "generate":
        generate(sys.argv[2], int(sys.argv[3]))
    elif cmd == "fetch":
        fetch(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif cmd == "select":
        login_select(int(sys.argv[2]), sys.argv[3], sys.argv[4]).command("a9", "LOGOUT")
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
