#!/usr/bin/env bash
# Benchmark of the record store (issue 12): 100,000 contacts with 2 e-mail addresses and 1 phone
# each; the p99 of a lookup by e-mail and by phone through the API, and the chat ingest of
# benches/chat_api.sh with the unified contact lookup in the path (every message from a new
# chat identity whose e-mail belongs to one of those contacts, so each arrival finds the
# contact by address and links the identity to it). With BASELINE_BIN set, benches/chat_api.sh
# then runs against that binary and this one back to back (same machine, same minute), so the
# chat figure can be compared with the release before the record store.
#
# Usage: benches/records.sh   (CONTACTS=100000 DURATION=10s; SWITCHBOARD_BIN=path runs a
#        prebuilt binary; BASELINE_BIN=path also runs chat_api.sh on both)
# Needs: wrk (apt-get install wrk), python3.
# Figures and the command that made them: benches/README.md, "records.sh".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-10s}"
CONTACTS="${CONTACTS:-100000}"
command -v wrk >/dev/null || { echo "error: wrk is not installed (apt-get install wrk)" >&2; exit 2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-records-bench.XXXXXX")"
PID=""
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
ROOT_SHA="$(printf %s root-token | sha256sum | cut -d" " -f1)"
ANN_SHA="$(printf %s operator-token | sha256sum | cut -d" " -f1)"
mkdir -p "$WORK/config"
printf %s bench-inbound-token > "$WORK/config/inbound.txt"
cat > "$WORK/config/all.yaml" <<YAML
apiVersion: switchboard/v1
kind: Settings
metadata: {name: default}
spec: {siteUrl: 'http://127.0.0.1:$PORT', listen: '127.0.0.1:$PORT'}
---
apiVersion: switchboard/v1
kind: User
metadata: {name: root}
spec: {displayName: Root, email: root@example.com, operations: [CanManageAdministration], apiTokenSha256: [$ROOT_SHA]}
---
apiVersion: switchboard/v1
kind: User
metadata: {name: ann}
spec: {displayName: Ann, email: ann@example.com, apiTokenSha256: [$ANN_SHA]}
---
apiVersion: switchboard/v1
kind: ChatQueue
metadata: {name: support}
spec: {title: Support, routing: toAll, operators: [{user: ann}]}
---
apiVersion: switchboard/v1
kind: ChatChannel
metadata: {name: web}
spec: {provider: api, title: Web, queue: support, language: en, inboundToken: {file: inbound.txt}}
YAML

BIN="${SWITCHBOARD_BIN:-$ROOT/target/release/switchboard}"
[[ -n "${SWITCHBOARD_BIN:-}" ]] || (cd "$ROOT" && cargo build --release --quiet)
start() {
    "$BIN" --config "$WORK/config" --state "$WORK/state.db" run >> "$WORK/daemon.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && return; sleep 0.1; done
    echo "error: the daemon did not get ready; see its log:" >&2; cat "$WORK/daemon.log" >&2; exit 1
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }

# The schema comes from the daemon itself; the contacts are written straight into the file
# (one transaction), as the store writes them: 2 addresses and 1 phone each, journaled.
start; stop
python3 - "$WORK/state.db" "$CONTACTS" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1]); n = int(sys.argv[2])
now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
db.execute("BEGIN")
db.executemany("INSERT INTO contacts (id, name, sources, created_at, updated_at) VALUES (?, ?, '{\"name\":\"User/root\"}', ?, ?)",
               ((i, f"Person {i}", now, now) for i in range(1, n + 1)))
db.executemany("INSERT INTO contact_emails (email, contact_id, origin) VALUES (?, ?, 'User/root')",
               ((f"p{i}@{kind}{i % 977}.example", i) for i in range(1, n + 1) for kind in ("home", "work")))
db.executemany("INSERT INTO contact_phones (phone, contact_id, origin) VALUES (?, ?, 'User/root')",
               ((f"+1555{i:07d}", i) for i in range(1, n + 1)))
db.executemany("INSERT INTO record_changes (record_kind, record_id, op, origin, at) VALUES ('contact', ?, 'create', 'User/root', ?)",
               ((i, now) for i in range(1, n + 1)))
db.commit()
print(f"stored {n:,} contacts, {2 * n:,} addresses, {n:,} phones")
PY
start

cat > "$WORK/by_email.lua" <<EOF
wrk.headers["Authorization"] = "Bearer root-token"
function request()
  local i = math.random(1, $CONTACTS)
  local kind = (i % 2 == 0) and "home" or "work"
  return wrk.format("GET", string.format("/api/v1/contacts?email=p%d@%s%d.example", i, kind, i % 977))
end
EOF
cat > "$WORK/by_phone.lua" <<EOF
wrk.headers["Authorization"] = "Bearer root-token"
function request()
  return wrk.format("GET", string.format("/api/v1/contacts?phone=%%2B1555%07d", math.random(1, $CONTACTS)))
end
EOF
cat > "$WORK/ingest.lua" <<EOF
local counter = 0
function setup(thread) thread:set("id", math.random(1, 1000000000)) end
function init(args)
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer bench-inbound-token"
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  counter = counter + 1
  local i = math.random(1, $CONTACTS)
  local body = string.format('{"messageId":"%d-%d","from":{"id":"v%d-%d","name":"Visitor","email":"P%d@home%d.example"},"text":"hello"}', id, counter, id, counter, i, i % 977)
  return wrk.format(nil, "/webhooks/api/web", nil, body)
end
EOF
echo "== lookup by e-mail: GET /api/v1/contacts?email=… (one connection: the latency of one lookup)"
wrk -t1 -c1 -d"$DURATION" --latency -s "$WORK/by_email.lua" "http://127.0.0.1:$PORT" | tee "$WORK/email.txt"
echo "== lookup by phone: GET /api/v1/contacts?phone=… (one connection)"
wrk -t1 -c1 -d"$DURATION" --latency -s "$WORK/by_phone.lua" "http://127.0.0.1:$PORT" | tee "$WORK/phone.txt"
curl -sf -X PUT -H 'Authorization: Bearer operator-token' -H 'content-type: application/json' \
    -d '{"status":"active"}' "http://127.0.0.1:$PORT/api/v1/operators/me/status" >/dev/null
echo "== chat ingest, each message a new identity of a known contact (found by e-mail), -t2 -c64"
wrk -t2 -c64 -d"$DURATION" --latency -s "$WORK/ingest.lua" "http://127.0.0.1:$PORT" | tee "$WORK/ingest.txt"
stop
python3 - "$WORK" "$CONTACTS" <<'PY'
import re, sqlite3, sys
work, n = sys.argv[1], int(sys.argv[2])
def figures(name):
    text = open(f"{work}/{name}").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    return rps, pct(50), pct(99)
for label, name in (("lookup by e-mail", "email.txt"), ("lookup by phone", "phone.txt"),
                    ("chat ingest (new identity, known e-mail)", "ingest.txt")):
    rps, p50, p99 = figures(name)
    print(f"{label}: {rps:,.0f} req/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms")
db = sqlite3.connect(f"file:{work}/state.db?mode=ro", uri=True)
contacts = db.execute("SELECT count(*) FROM contacts").fetchone()[0]
identities, linked = db.execute("SELECT count(*), count(contact_id) FROM chat_identities").fetchone()
print(f"contacts {contacts:,} (created {n:,}); chat identities {identities:,}, linked {linked:,}")
if contacts != n or linked != identities:
    sys.exit("FAIL: an identity was not linked to its contact, or a known address made a new contact")
PY

if [[ -n "${BASELINE_BIN:-}" ]]; then
    for visitors in 1000 0; do
        for bin in "$BASELINE_BIN" "$BIN"; do
            echo "== benches/chat_api.sh VISITORS=$visitors SWITCHBOARD_BIN=$bin"
            SWITCHBOARD_BIN="$bin" VISITORS=$visitors DURATION="$DURATION" "$ROOT/benches/chat_api.sh" | tail -3
        done
    done
fi
