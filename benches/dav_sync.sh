#!/usr/bin/env bash
# DAV sync benchmark against a throwaway loopback Radicale 3.x from PyPI (issue: DAV sync).
#
#   benches/dav_sync.sh                  5,000 vCards, 200 changed for the delta
#   N=1000 CHANGES=50 benches/dav_sync.sh
#   VENV=DIR                             the virtualenv for Radicale and vdirsyncer (default
#                                        ~/.cache/switchboard-bench-venv; made when missing)
#   KEEP=1                               keep the work directory (printed at the end)
#   SB=PATH                              use this switchboard binary instead of building one
#   HALVES="contacts"                    only one half (default: "contacts events")
#
# Each *half* — contacts (N vCards, ContactSync, a vdirsyncer carddav pair) and events (N
# VEVENTs, CalendarSync, a caldav pair) — times, on one collection of N items both tools see:
#   (a) first sync  — `switchboard sync ContactSync/bench` (or CalendarSync) (release build, in-process, fresh
#                     state, import and export both enabled) and `vdirsyncer sync` into an
#                     empty filesystem storage;
#   (b) delta       — the same after CHANGES items changed on the server;
#   (c) no change   — the same once more;
# and the wire limit: one sync-collection REPORT of everything plus one multiget of all items
# (benches/dav_bench.py). It prints a table with the targets: (a) ≤ 3× the wire limit;
# (b) and (c) ≥ 10× faster than vdirsyncer. For (b) and (c) the "wire s" column is the floor
# instead: the server's own time for the one sync-collection REPORT from the stored token that
# a no-change run makes (Radicale computes its token over every item, so this grows with the
# collection); and the CPU time (user + system) of each tool's process, when GNU time is at
# /usr/bin/time.
#
# Needs python3 (with venv and pip reaching PyPI) and curl; builds switchboard in release.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-5000}
CHANGES=${CHANGES:-200}
VENV=${VENV:-$HOME/.cache/switchboard-bench-venv}
USER_NAME=bench
PASS=bench-dav-secret

for tool in python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing: $tool" >&2; exit 1; }
done
if [ ! -x "$VENV/bin/radicale" ] || [ ! -x "$VENV/bin/vdirsyncer" ]; then
  echo "== making $VENV (Radicale 3.x and vdirsyncer from PyPI)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'radicale>=3.2' vdirsyncer
fi
echo "== $("$VENV/bin/radicale" --version 2>/dev/null | tail -1 | sed 's/^/radicale /'), $("$VENV/bin/vdirsyncer" --version)"

if [ -n "${SB:-}" ]; then
  sb=$SB
else
  target=${CARGO_TARGET_DIR:-$repo/target}
  (cd "$repo" && cargo build --release --quiet --bin switchboard)
  sb="$target/release/switchboard"
fi

work=$(mktemp -d /tmp/sb-davbench-XXXXXX)
radicale_pid=""
cleanup() {
  [ -n "$radicale_pid" ] && kill "$radicale_pid" 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
since() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.2f", e - s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "-" }'; }

# ---- Radicale ----------------------------------------------------------------------------
port=$(free_port)
mkdir -p "$work/radicale/collections"
echo "$USER_NAME:$PASS" >"$work/radicale/users"
cat >"$work/radicale/config" <<EOF
[server]
hosts = 127.0.0.1:$port
[auth]
type = htpasswd
htpasswd_filename = $work/radicale/users
htpasswd_encryption = plain
delay = 0
[rights]
type = owner_only
[storage]
filesystem_folder = $work/radicale/collections
[logging]
level = warning
[web]
type = none
EOF
"$VENV/bin/radicale" --config "$work/radicale/config" >"$work/radicale/log" 2>&1 &
radicale_pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 100); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -u "$USER_NAME:$PASS" -X PROPFIND -H 'Depth: 0' "$base/$USER_NAME/" || true)
  [ "$code" = 207 ] && break
  sleep 0.1
done
[ "$code" = 207 ] || { echo "radicale did not start:"; cat "$work/radicale/log"; exit 1; }

# ---- switchboard's config ------------------------------------------------------------------
sb_port=$(free_port) # nothing listens there: `switchboard sync` runs in-process
mkdir -p "$work/sb/config"
printf '%s' "$PASS" >"$work/sb/config/dav-password.txt"
cat >"$work/sb/config/bench.yaml" <<EOF
apiVersion: switchboard/v1
kind: Settings
metadata: {name: default}
spec:
  siteUrl: http://127.0.0.1:$sb_port
  listen: 127.0.0.1:$sb_port
---
apiVersion: switchboard/v1
kind: User
metadata: {name: owner}
spec: {displayName: Owner, email: owner@example.com}
---
apiVersion: switchboard/v1
kind: DavAccount
metadata: {name: bench}
spec:
  user: owner
  url: $base/
  username: $USER_NAME
  password: {file: dav-password.txt}
---
apiVersion: switchboard/v1
kind: ContactSync
metadata: {name: bench}
spec:
  account: bench
  import: {enabled: true}
  export: {enabled: true}
---
apiVersion: switchboard/v1
kind: CalendarSync
metadata: {name: bench}
spec:
  account: bench
  since: 2000-01-01
  importMeetings: {enabled: true, calendars: all}
  importTasks: {enabled: false}
  export: {enabled: true}
EOF

# ---- vdirsyncer's config -------------------------------------------------------------------
mkdir -p "$work/vdir/status" "$work/vdir/contacts" "$work/vdir/events"
cat >"$work/vdir/config" <<EOF
[general]
status_path = "$work/vdir/status/"

[pair contacts]
a = "contacts_local"
b = "contacts_remote"
collections = null
conflict_resolution = "b wins"

[storage contacts_local]
type = "filesystem"
path = "$work/vdir/contacts/"
fileext = ".vcf"

[storage contacts_remote]
type = "carddav"
url = "$base/$USER_NAME/contacts/"
username = "$USER_NAME"
password = "$PASS"

[pair events]
a = "events_local"
b = "events_remote"
collections = null
conflict_resolution = "b wins"

[storage events_local]
type = "filesystem"
path = "$work/vdir/events/"
fileext = ".ics"

[storage events_remote]
type = "caldav"
url = "$base/$USER_NAME/calendar/"
username = "$USER_NAME"
password = "$PASS"
EOF

# cpu FILE COMMAND...: runs COMMAND, appending its user+system CPU seconds to FILE
cpu() {
  local out=$1; shift
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -a -o "$out" -f '%U %S' "$@"
  else
    "$@"; echo "0 0" >>"$out"
  fi
}
last_cpu() { tail -n 1 "$1" | awk '{ printf "%.2f", $1 + $2 }'; }
sb_sync() { cpu "$work/sb.cpu" "$sb" --config "$work/sb/config" --state "$work/sb/state.db" sync "$1" >>"$work/sb.log" 2>&1; }
vdir_sync() { VDIRSYNCER_CONFIG="$work/vdir/config" cpu "$work/vdir.cpu" "$VENV/bin/vdirsyncer" sync "$1" >>"$work/vdir.log" 2>&1; }
dav() { python3 "$repo/benches/dav_bench.py" "$@"; }

rows=()
# run_half KIND SB_OBJECT VDIR_PAIR COLLECTION_URL
run_half() {
  local kind=$1 object=$2 pair=$3 url=$4 s
  echo "== $kind: seeding $N items"
  s=$(now); dav seed "$url" "$USER_NAME" "$PASS" "$kind" "$N"
  echo "   seeded in $(since "$s") s; first listing (Radicale parses every item once):"
  s=$(now); read -r _ count < <(dav wire "$url" "$USER_NAME" "$PASS" "$kind")
  echo "   warmed in $(since "$s") s ($count items)"
  local wire_t; read -r wire_t count < <(dav wire "$url" "$USER_NAME" "$PASS" "$kind")
  # vdirsyncer wants its collections discovered once (not timed: switchboard's first sync
  # includes its discovery)
  VDIRSYNCER_CONFIG="$work/vdir/config" "$VENV/bin/vdirsyncer" discover "$pair" >>"$work/vdir.log" 2>&1
  echo "== $kind: (a) first sync"
  s=$(now); sb_sync "$object"; local sb_a; sb_a=$(since "$s"); local sc_a; sc_a=$(last_cpu "$work/sb.cpu")
  s=$(now); vdir_sync "$pair"; local vd_a; vd_a=$(since "$s"); local vc_a; vc_a=$(last_cpu "$work/vdir.cpu")
  echo "== $kind: (b) delta after $CHANGES changes on the server"
  dav change "$url" "$USER_NAME" "$PASS" "$kind" "$N" "$CHANGES"
  s=$(now); sb_sync "$object"; local sb_b; sb_b=$(since "$s"); local sc_b; sc_b=$(last_cpu "$work/sb.cpu")
  s=$(now); vdir_sync "$pair"; local vd_b; vd_b=$(since "$s"); local vc_b; vc_b=$(last_cpu "$work/vdir.cpu")
  echo "== $kind: (c) no change"
  s=$(now); sb_sync "$object"; local sb_c; sb_c=$(since "$s"); local sc_c; sc_c=$(last_cpu "$work/sb.cpu")
  s=$(now); vdir_sync "$pair"; local vd_c; vd_c=$(since "$s"); local vc_c; vc_c=$(last_cpu "$work/vdir.cpu")
  local floor_t; floor_t=$(dav floor "$url" "$USER_NAME" "$PASS" "$kind" "$work/sb/state.db")
  rows+=("$kind|(a) first sync of $N|$sb_a|$vd_a|$wire_t|$sc_a|$vc_a|$(ratio "$sb_a" "$wire_t")x wire (target <= 3)")
  rows+=("$kind|(b) delta, $CHANGES changed|$sb_b|$vd_b|$floor_t|$sc_b|$vc_b|$(ratio "$vd_b" "$sb_b")x faster than vdirsyncer (target >= 10)")
  rows+=("$kind|(c) no change|$sb_c|$vd_c|$floor_t|$sc_c|$vc_c|$(ratio "$vd_c" "$sb_c")x faster than vdirsyncer (target >= 10)")
}

case " ${HALVES:-contacts events} " in *" contacts "*) run_half contacts ContactSync/bench contacts "$base/$USER_NAME/contacts/" ;; esac
case " ${HALVES:-contacts events} " in *" events "*) run_half events CalendarSync/bench events "$base/$USER_NAME/calendar/" ;; esac

stored=$(tail -n 3 "$work/sb.log")
echo
echo "switchboard's runs:"
echo "$stored" | sed 's/^/  /'
echo "vdirsyncer's items: $(find "$work/vdir/contacts" -name '*.vcf' | wc -l) cards, $(find "$work/vdir/events" -name '*.ics' | wc -l) events"
echo
printf '%-9s %-24s %13s %12s %13s %8s %8s  %s\n' half phase "switchboard s" "vdirsyncer s" "wire/floor s" "sb cpu" "vd cpu" result
for r in "${rows[@]}"; do
  IFS='|' read -r h p a b w ca cb x <<<"$r"
  printf '%-9s %-24s %13s %12s %13s %8s %8s  %s\n' "$h" "$p" "$a" "$b" "$w" "$ca" "$cb" "$x"
done
