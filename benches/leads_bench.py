#!/usr/bin/env python3
"""Drives benches/leads.sh: a fake LinkedIn (token endpoint, leadNotifications, Lead Sync API: leadForms,
leadFormResponses by id and the owner finder with paging) and the load.

  leads_bench.py fake PORT BACKFILL_N          serve the fake (until killed)
  leads_bench.py notify BASE N CONNECTIONS     N signed notifications; figures on stdout
  leads_bench.py backfill BASE FAKE N          one backfill over 90 days; figures on stdout

Written from LinkedIn's documented wire format, like tests/support/linkedin_fake.rs.
"""
import hashlib, hmac, http.client, json, sys, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLIENT_SECRET = "bench-li-client-secret"
REFRESH = "bench-li-refresh-token"
AD = "508912345"
FORM = "7123456"
ROOT = "root-token"
DAY_MS = 86_400_000


def response(rid, submitted_ms):
    i = rid.split("-")[-1]
    return {
        "id": rid,
        "owner": {"sponsoredAccount": f"urn:li:sponsoredAccount:{AD}"},
        "leadType": "SPONSORED",
        "versionedLeadGenFormUrn": f"urn:li:versionedLeadGenForm:(urn:li:leadGenForm:{FORM},1)",
        "submittedAt": submitted_ms,
        "testLead": False,
        "formResponse": {
            "answers": [
                {"questionId": 1, "answerDetails": {"textQuestionAnswer": {"answer": f"Lead{i}"}}},
                {"questionId": 3, "answerDetails": {"textQuestionAnswer": {"answer": f"{rid}@example.com"}}},
            ],
            "consentResponses": [],
        },
    }


FORM_JSON = {
    "id": int(FORM), "name": "Bench form", "state": "PUBLISHED",
    "content": {"questions": [
        {"questionId": 1, "name": "firstName", "predefinedField": "FIRST_NAME", "questionDetails": {"textQuestionDetails": {}}},
        {"questionId": 3, "name": "email", "predefinedField": "EMAIL", "questionDetails": {"textQuestionDetails": {}}},
    ], "consents": [], "hiddenFields": []},
}


def serve_fake(port, backfill_n):
    now = int(time.time() * 1000)
    span = 89 * DAY_MS
    # Backfill responses: spread over the last 89 days, oldest first.
    backfill = [("bf-%06d" % i, now - span + (span * i) // max(backfill_n, 1)) for i in range(backfill_n)]
    counts = {"token": 0, "byId": 0, "form": 0, "finder": 0, "subscribe": 0}
    lock = threading.Lock()

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # one response, not headers and body 40 ms apart

        def log_message(self, *a):
            pass

        def send(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            n = int(self.headers.get("content-length", 0))
            form = urllib.parse.parse_qs(self.rfile.read(n).decode())
            if self.path == "/rest/leadNotifications":
                with lock:
                    counts["subscribe"] += 1
                self.send_response(201)
                self.send_header("x-restli-id", "1")
                self.send_header("content-length", "0")
                self.end_headers()
                return
            if self.path == "/oauth/v2/accessToken" and form.get("refresh_token") == [REFRESH]:
                with lock:
                    counts["token"] += 1
                return self.send(200, {"access_token": "bench-access", "expires_in": 5183999})
            self.send(400, {"error": "invalid_grant"})

        def do_GET(self):
            u = urllib.parse.urlparse(self.path)
            if self.path == "/counts":
                with lock:
                    return self.send(200, dict(counts))
            if self.headers.get("authorization") != "Bearer bench-access":
                return self.send(401, {"status": 401, "code": "EXPIRED_ACCESS_TOKEN"})
            if u.path == "/rest/leadNotifications":
                return self.send(200, {"paging": {"start": 0, "count": 10, "links": []}, "elements": []})
            if u.path.startswith("/rest/leadForms/"):
                with lock:
                    counts["form"] += 1
                return self.send(200, FORM_JSON)
            if u.path.startswith("/rest/leadFormResponses/"):
                rid = urllib.parse.unquote(u.path.rsplit("/", 1)[1])
                with lock:
                    counts["byId"] += 1
                return self.send(200, response(rid, now))
            if u.path == "/rest/leadFormResponses":
                q = dict(urllib.parse.parse_qsl(u.query))
                rng = q.get("submittedAtTimeRange", "(start:0,end:0)").strip("()").split(",")
                lo, hi = int(rng[0].split(":")[1]), int(rng[1].split(":")[1])
                start, count = int(q.get("start", 0)), min(int(q.get("count", 10)), 100)
                found = [b for b in backfill if lo <= b[1] < hi]
                with lock:
                    counts["finder"] += 1
                page = [response(r, at) for r, at in found[start:start + count]]
                return self.send(200, {"paging": {"start": start, "count": count, "total": len(found), "links": []}, "elements": page})
            self.send(404, {"status": 404})

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()


def api(base, method, path, body=None):
    u = urllib.parse.urlparse(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    headers = {"authorization": f"Bearer {ROOT}"}
    if body is not None:
        headers["content-type"] = "application/json"
        body = json.dumps(body)
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = json.loads(r.read() or b"null")
    c.close()
    return r.status, data


def total(base):
    return api(base, "GET", "/api/v1/leads?integration=ads&limit=1")[1]["total"]


def notify(base, n, connections):
    u = urllib.parse.urlparse(base)
    sent = {}
    acked = [0]
    lock = threading.Lock()
    bodies = []
    for i in range(n):
        rid = "wh-%06d" % i
        body = json.dumps({
            "type": "LEAD_ACTION",
            "leadGenFormResponse": f"urn:li:leadGenFormResponse:{rid}",
            "leadGenForm": f"urn:li:versionedLeadGenForm:(urn:li:leadGenForm:{FORM},1)",
            "owner": {"sponsoredAccount": f"urn:li:sponsoredAccount:{AD}"},
            "leadAction": "CREATED", "occuredAt": int(time.time() * 1000), "leadType": "SPONSORED",
        })
        sig = hmac.new(CLIENT_SECRET.encode(), b"hmacsha256=" + body.encode(), hashlib.sha256).hexdigest()
        bodies.append((rid, body, sig))
    before = total(base)

    def worker(k):
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        for rid, body, sig in bodies[k::connections]:
            t = time.time()
            c.request("POST", "/webhooks/linkedin", body=body,
                      headers={"content-type": "application/json", "x-li-signature": sig})
            r = c.getresponse()
            r.read()
            with lock:
                sent[rid] = t
                if r.status == 200:
                    acked[0] += 1

    t0 = time.time()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(connections)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    t_ack = time.time() - t0
    while total(base) - before < n:
        if time.time() - t0 > 900:
            print("timeout: leads not all created", file=sys.stderr)
            break
        time.sleep(0.2)
    t_leads = time.time() - t0
    lat = []
    cursor = None
    while True:
        path = "/api/v1/leads?integration=ads&limit=1000" + (f"&cursor={cursor}" if cursor else "")
        page = api(base, "GET", path)[1]
        for lead in page["items"]:
            rid = lead["linkedinLeadId"]
            if rid in sent:
                created = time.mktime(time.strptime(lead["createdAt"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
                created += float("0." + lead["createdAt"][20:23]) if len(lead["createdAt"]) > 20 else 0
                lat.append(created - sent[rid])
        cursor = page.get("nextCursor")
        if not cursor:
            break
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")
    print(f"notifications: {n} over {connections} connections, {acked[0]} acknowledged 200")
    print(f"  acknowledged: {n / t_ack:,.0f} notifications/s ({t_ack:.2f} s)")
    print(f"  leads created: {len(lat)} in {t_leads:.2f} s from the first send = {len(lat) / t_leads:,.0f} leads/s")
    print(f"  notification -> lead: p50 {p(0.50):,.0f} ms, p99 {p(0.99):,.0f} ms, max {p(1.0):,.0f} ms")


def backfill(base, fake, n):
    before = total(base)
    since = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 89 * 86400))
    t0 = time.time()
    status, b = api(base, "POST", "/api/v1/lead-integrations/ads/backfill", {"since": since})
    assert status == 202, (status, b)
    while b["state"] == "queued":
        time.sleep(0.2)
        b = api(base, "GET", f"/api/v1/lead-integrations/ads/backfills/{b['id']}")[1]
    took = time.time() - t0
    u = urllib.parse.urlparse(fake)
    c = http.client.HTTPConnection(u.hostname, u.port)
    c.request("GET", "/counts")
    counts = json.loads(c.getresponse().read())
    print(f"backfill of {n} responses over 89 days: {b['state']} in {took:.2f} s "
          f"({b['created']} created, {b['known']} known, {b['fetched']} read; {total(base) - before} new leads)")
    print(f"  requests to LinkedIn: {counts['finder']} finder pages, {counts['form']} form reads, "
          f"{counts['token']} token refreshes in the whole run")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "fake":
        serve_fake(int(sys.argv[2]), int(sys.argv[3]))
    elif cmd == "notify":
        notify(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "backfill":
        backfill(sys.argv[2], sys.argv[3], int(sys.argv[4]))
