#!/usr/bin/env bash
# Benchmark of the `api` chat channel: inbound messages over 64 connections, each stored durably
# (answered after its group commit) and routed, against the daemon's own no-op handler
# (`GET /healthz`, same server, router and middleware) as the ceiling.
#
# Usage: benches/chat_api.sh   (from anywhere; DURATION=10s CONNECTIONS=64 VISITORS=1000;
#        VISITORS=0 gives every message its own visitor, so each one opens and routes a chat)
# Needs: wrk (Debian/Ubuntu: apt-get install wrk), python3 (reads the state file at the end).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
VISITORS="${VISITORS:-1000}"
command -v wrk >/dev/null || { echo "error: wrk is not installed (apt-get install wrk)" >&2; exit 2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-chat-bench.XXXXXX")"
PID=""
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
TOKEN_SHA="$(printf %s operator-token | sha256sum | cut -d' ' -f1)"
mkdir -p "$WORK/config"
printf %s bench-inbound-token > "$WORK/config/inbound.txt"
cat > "$WORK/config/chat.yaml" <<EOF
apiVersion: switchboard/v1
kind: Settings
metadata: {name: default}
spec: {siteUrl: 'http://127.0.0.1:$PORT', listen: '127.0.0.1:$PORT'}
---
apiVersion: switchboard/v1
kind: Role
metadata: {name: agents}
spec: {title: Agents}
---
apiVersion: switchboard/v1
kind: User
metadata: {name: ann}
spec: {displayName: Ann, email: ann@example.com, roles: [agents], apiTokenSha256: [$TOKEN_SHA]}
---
apiVersion: switchboard/v1
kind: ChatQueue
metadata: {name: support}
spec: {title: Support, routing: toAll, operators: [{role: agents}]}
---
apiVersion: switchboard/v1
kind: ChatChannel
metadata: {name: web}
spec: {provider: api, title: Web, queue: support, language: en, inboundToken: {file: inbound.txt}}
EOF
cat > "$WORK/post.lua" <<EOF
local counter = 0
function setup(thread) thread:set("id", math.random(1, 1000000000)) end
function init(args)
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer bench-inbound-token"
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  counter = counter + 1
  local visitor = $VISITORS > 0 and (counter % $VISITORS) or (id .. "-" .. counter)
  local body = string.format('{"messageId":"%d-%d","from":{"id":"v%s","name":"Visitor"},"text":"hello %d"}', id, counter, visitor, counter)
  return wrk.format(nil, "/webhooks/api/web", nil, body)
end
EOF

# SWITCHBOARD_BIN=path runs a prebuilt binary instead (to compare two builds back to back).
BIN="${SWITCHBOARD_BIN:-$ROOT/target/release/switchboard}"
[[ -n "${SWITCHBOARD_BIN:-}" ]] || (cd "$ROOT" && cargo build --release --quiet)
"$BIN" --config "$WORK/config" --state "$WORK/state.db" run \
    > "$WORK/daemon.log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
[[ "${ACTIVE:-1}" == 1 ]] && curl -sf -X PUT -H 'Authorization: Bearer operator-token' -H 'content-type: application/json' \
    -d '{"status":"active"}' "http://127.0.0.1:$PORT/api/v1/operators/me/status" >/dev/null

echo "== ceiling: GET /healthz (no-op handler, same server), -t2 -c$CONNECTIONS -d$DURATION"
wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$PORT/healthz" | tee "$WORK/ceiling.txt"
echo "== api channel: POST /webhooks/api/web, -t2 -c$CONNECTIONS -d$DURATION, visitors=$VISITORS"
wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/post.lua" "http://127.0.0.1:$PORT" | tee "$WORK/load.txt"

curl -sf "http://127.0.0.1:$PORT/metrics" > "$WORK/metrics.txt"
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
python3 - "$WORK" <<'PY'
import re, sqlite3, sys
work = sys.argv[1]
def rps(name):
    return float(re.search(r"Requests/sec:\s+([\d.]+)", open(f"{work}/{name}").read()).group(1))
ceiling, load = rps("ceiling.txt"), rps("load.txt")
metrics = open(f"{work}/metrics.txt").read()
accepted = int(re.search(r'webhook_requests_total\{outcome="accepted",provider="api"\} (\d+)', metrics).group(1))
db = sqlite3.connect(f"file:{work}/state.db?mode=ro", uri=True)
stored = db.execute("SELECT count(*) FROM chat_messages WHERE direction = 'in'").fetchone()[0]
chats = db.execute("SELECT count(*) FROM chats").fetchone()[0]
undistributed = db.execute("SELECT count(*) FROM chats WHERE distributed_at IS NULL").fetchone()[0]
lag = db.execute("""SELECT max((julianday(distributed_at) - julianday(created_at)) * 86400000)
                    FROM chats""").fetchone()[0]
print(f"\nmsg/s {load:,.0f}; ceiling {ceiling:,.0f} req/s; {100 * load / ceiling:.0f}% of the ceiling")
print(f"accepted (2xx) {accepted:,}; stored inbound messages {stored:,}; chats {chats:,} "
      f"(not distributed: {undistributed}); max arrival->distribution {lag or 0:.0f} ms "
      "(routing commits in the arrival's transaction)")
if stored < accepted:
    sys.exit("FAIL: fewer messages stored than acknowledged")
PY
