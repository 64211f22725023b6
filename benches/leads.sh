#!/usr/bin/env bash
# Benchmark of LinkedIn lead generation (issue 16): NOTIFICATIONS signed lead notifications
# posted to /webhooks/linkedin over CONNECTIONS keep-alive connections, with a fake LinkedIn
# (benches/leads_bench.py) answering the token endpoint and the Lead Sync API: notifications/s
# acknowledged, leads/s created, and the p50/p99 from a notification's send to its lead's
# createdAt. Then one backfill of BACKFILL responses spread over 89 days: time taken and the
# requests made to LinkedIn.
#
# Usage: benches/leads.sh   (NOTIFICATIONS=10000 CONNECTIONS=64 BACKFILL=50000;
#        SWITCHBOARD_BIN=path runs a prebuilt binary instead of building --release)
# Needs: python3. Figures and the command that made them: benches/README.md, "leads.sh".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NOTIFICATIONS="${NOTIFICATIONS:-10000}"
CONNECTIONS="${CONNECTIONS:-64}"
BACKFILL="${BACKFILL:-50000}"
BIN="${SWITCHBOARD_BIN:-$ROOT/target/release/switchboard}"
[[ -n "${SWITCHBOARD_BIN:-}" ]] || (cd "$ROOT" && cargo build --release --quiet)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-leads-bench.XXXXXX")"
PID=""
FAKE_PID=""
cleanup() {
    [[ -n "$PID" ]] && kill "$PID" 2>/dev/null
    [[ -n "$FAKE_PID" ]] && kill "$FAKE_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"
FAKE_PORT="$(free_port)"
ROOT_SHA="$(printf %s root-token | sha256sum | cut -d" " -f1)"
mkdir -p "$WORK/config"
cat > "$WORK/config/all.yaml" <<YAML
apiVersion: switchboard/v1
kind: Settings
metadata: {name: default}
spec:
  siteUrl: 'http://127.0.0.1:$PORT'
  listen: '127.0.0.1:$PORT'
  linkedin: {clientId: bench-li-client, clientSecret: {env: LI_CLIENT_SECRET}}
---
apiVersion: switchboard/v1
kind: User
metadata: {name: root}
spec: {displayName: Root, email: root@example.com, operations: [CanManageAdministration], apiTokenSha256: [$ROOT_SHA]}
---
apiVersion: switchboard/v1
kind: LinkedInAccount
metadata: {name: root-linkedin}
spec: {user: root, refreshToken: {env: LI_REFRESH_TOKEN}}
---
apiVersion: switchboard/v1
kind: LeadIntegration
metadata: {name: ads}
spec:
  title: LinkedIn ads
  adAccountId: "508912345"
  accounts: [root-linkedin]
  apiBaseUrl: 'http://127.0.0.1:$FAKE_PORT'
  defaultMapping:
    - {column: GivenName, field: FIRST_NAME}
    - {column: Email, field: EMAIL}
    - {column: LeadSource, constant: LinkedIn}
YAML

python3 "$ROOT/benches/leads_bench.py" fake "$FAKE_PORT" "$BACKFILL" &
FAKE_PID=$!
LI_CLIENT_SECRET=bench-li-client-secret LI_REFRESH_TOKEN=bench-li-refresh-token RUST_LOG=warn \
    "$BIN" --config "$WORK/config" --state "$WORK/state.db" run >> "$WORK/daemon.log" 2>&1 &
PID=$!
for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.05
done
curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null || { cat "$WORK/daemon.log"; exit 1; }

echo "switchboard: $BIN ($(nproc) CPUs)"
python3 "$ROOT/benches/leads_bench.py" notify "http://127.0.0.1:$PORT" "$NOTIFICATIONS" "$CONNECTIONS"
python3 "$ROOT/benches/leads_bench.py" backfill "http://127.0.0.1:$PORT" "http://127.0.0.1:$FAKE_PORT" "$BACKFILL"
