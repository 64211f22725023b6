#!/usr/bin/env python3
"""The DAV benchmark's helper (benches/dav_sync.sh): fills a collection, changes part of it,
and measures the wire limit, against a Radicale on loopback. Standard library only.

    dav_bench.py seed   URL USER PASSWORD KIND N       one PUT of the whole collection
    dav_bench.py change URL USER PASSWORD KIND N COUNT change COUNT items (8 in parallel)
    dav_bench.py wire   URL USER PASSWORD KIND         one sync-collection REPORT of
                                                       everything, then one multiget of all
                                                       items; prints seconds and item count
    dav_bench.py floor  URL USER PASSWORD KIND STATE   the server's time for the one request
                                                       a no-change run makes: a sync-collection
                                                       REPORT from the token in switchboard's
                                                       STATE file; prints seconds (best of 3)

KIND is `contacts` (vCards, addressbook-multiget) or `events` (VEVENTs, calendar-multiget). URL is the collection's (`http://127.0.0.1:PORT/USER/contacts/`).
"""

import base64
import concurrent.futures
import http.client
import re
import sys
import time
import urllib.parse


def item(kind, i, rev=0):
    if kind == "contacts":
        fn = f"Person {i}" if rev == 0 else f"Person {i} changed {rev}"
        return (
            f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bench-{i:06}\r\nFN:{fn}\r\n"
            f"N:{i};Person;;;\r\nEMAIL:person{i}@example.org\r\n"
            f"TEL:+1415555{i % 10000:04}\r\nORG:Company {i % 97}\r\nTITLE:Role {i % 13}\r\n"
            f"CATEGORIES:bench,group{i % 7}\r\nEND:VCARD\r\n"
        )
    if kind == "events":
        summary = f"Meeting {i}" if rev == 0 else f"Meeting {i} moved {rev}"
        day = 1 + i % 28
        return (
            "BEGIN:VEVENT\r\n"
            f"UID:bench-{i:06}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:{summary}\r\n"
            f"DTSTART:202603{day:02}T{9 + i % 8:02}0000Z\r\nDTEND:202603{day:02}T{10 + i % 8:02}0000Z\r\n"
            f"LOCATION:Room {i % 31}\r\nORGANIZER:mailto:owner@example.com\r\n"
            f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:person{i}@example.org\r\nEND:VEVENT\r\n"
        )
    raise SystemExit(f"unknown kind {kind}")


def wrap(kind, body):
    """One iCalendar object around VEVENTs (a vCard needs no wrapper)."""
    if kind == "events":
        return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//switchboard//bench//EN\r\n{body}END:VCALENDAR\r\n"
    return body


def extension(kind):
    return {"contacts": "vcf", "events": "ics"}[kind]


def content_type(kind):
    return {"contacts": "text/vcard; charset=utf-8", "events": "text/calendar; charset=utf-8"}[kind]


def multiget_body(kind, hrefs):
    if kind == "contacts":
        head = (
            '<?xml version="1.0" encoding="utf-8"?>\n<C:addressbook-multiget xmlns:D="DAV:" '
            'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/><C:address-data/>'
            "</D:prop>"
        )
        tail = "</C:addressbook-multiget>"
    elif kind == "events":
        head = (
            '<?xml version="1.0" encoding="utf-8"?>\n<C:calendar-multiget xmlns:D="DAV:" '
            'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/>'
            "</D:prop>"
        )
        tail = "</C:calendar-multiget>"
    else:
        raise SystemExit(f"unknown kind {kind}")
    return head + "".join(f"<D:href>{h}</D:href>" for h in hrefs) + tail


class Dav:
    def __init__(self, url, user, password):
        self.url = urllib.parse.urlsplit(url)
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def request(self, method, path, body, headers):
        conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=600)
        headers = dict(headers, Authorization=self.auth)
        conn.request(method, path, body.encode() if body is not None else None, headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, data


def seed(dav, kind, n):
    body = wrap(kind, "".join(item(kind, i) for i in range(n)))
    status, data = dav.request("PUT", dav.url.path, body, {"Content-Type": content_type(kind)})
    if status not in (201, 204):
        raise SystemExit(f"seeding failed: {status} {data[:300]!r}")


def change(dav, kind, n, count):
    step = max(1, n // count)
    picks = [i * step for i in range(count)]
    rev = int(time.time())

    def put(i):
        path = f"{dav.url.path}bench-{i:06}.{extension(kind)}"
        status, data = dav.request("PUT", path, wrap(kind, item(kind, i, rev)), {"Content-Type": content_type(kind)})
        if status not in (201, 204):
            raise SystemExit(f"PUT {path}: {status} {data[:200]!r}")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(put, picks))


def wire(dav, kind):
    started = time.monotonic()
    body = (
        '<?xml version="1.0" encoding="utf-8"?>\n<D:sync-collection xmlns:D="DAV:">'
        "<D:sync-token/><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop>"
        "</D:sync-collection>"
    )
    status, data = dav.request("REPORT", dav.url.path, body, {"Depth": "1", "Content-Type": "application/xml"})
    if status != 207:
        raise SystemExit(f"sync-collection: {status}")
    text = data.decode()
    hrefs = [
        h
        for h, rest in re.findall(r"<(?:\w+:)?href>([^<]*)</(?:\w+:)?href>(.*?)</(?:\w+:)?response>", text, re.S)
        if " 404 " not in rest and h.rstrip("/") != dav.url.path.rstrip("/")
    ]
    status, data = dav.request("REPORT", dav.url.path, multiget_body(kind, hrefs), {"Depth": "1", "Content-Type": "application/xml"})
    if status != 207:
        raise SystemExit(f"multiget: {status}")
    got = data.decode().count("END:VCARD" if kind == "contacts" else "END:VEVENT")
    print(f"{time.monotonic() - started:.3f} {got}")


def floor(dav, state):
    import sqlite3

    url = dav.url.geturl()
    row = sqlite3.connect(state).execute(
        "SELECT value FROM sync_checkpoints WHERE scope = ?", (f"token {url}",)
    ).fetchone()
    if row is None:
        raise SystemExit(f"no token for {url} in {state}")
    body = (
        '<?xml version="1.0" encoding="utf-8"?>\n<D:sync-collection xmlns:D="DAV:">'
        f"<D:sync-token>{row[0]}</D:sync-token><D:sync-level>1</D:sync-level>"
        "<D:prop><D:getetag/></D:prop></D:sync-collection>"
    )
    best = None
    for _ in range(3):
        started = time.monotonic()
        status, _ = dav.request("REPORT", dav.url.path, body, {"Depth": "1", "Content-Type": "application/xml"})
        took = time.monotonic() - started
        if status != 207:
            raise SystemExit(f"sync-collection from the token: {status}")
        best = took if best is None else min(best, took)
    print(f"{best:.3f}")


def main():
    command, url, user, password, kind = sys.argv[1:6]
    dav = Dav(url, user, password)
    if command == "seed":
        seed(dav, kind, int(sys.argv[6]))
    elif command == "change":
        change(dav, kind, int(sys.argv[6]), int(sys.argv[7]))
    elif command == "wire":
        wire(dav, kind)
    elif command == "floor":
        floor(dav, sys.argv[6])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
