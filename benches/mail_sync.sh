#!/usr/bin/env bash
# Mail sync benchmark and crash test against a throwaway loopback Dovecot.
#
#   benches/mail_sync.sh                 everything: timings, idle RSS, crash test
#   N=2000 benches/mail_sync.sh          fewer messages (default 10000)
#   KILLS=5 benches/mail_sync.sh         fewer kill -9 rounds (default 20)
#   SKIP_CRASH=1 / SKIP_RSS=1            leave a part out
#   SKIP_TIMING=1                        skip (a), (b), (c): only the RSS and/or crash parts
#   RSS_AUTO=0                           idle RSS with load.auto: false only (default: both
#                                        false and true; true keeps one IMAP IDLE connection
#                                        per mailbox open against the local Dovecot)
#   KEEP=1                               keep the work directory (printed at the end)
#
# In one run, on the same mailbox of N messages (2-50 KB, ~15 % with an attachment) written
# straight into the Maildir, it times:
#   (a) `switchboard sync Mailbox/bench` (release build, in-process, fresh state file): the
#       first sync of the mailbox into the store;
#   (b) `mbsync bench` (isync) pulling the same INBOX into a fresh Maildir;
#   (c) one raw `UID FETCH 1:* BODY.PEEK[]` (benches/mail_bench.py: literals counted and
#       discarded) — the wire limit;
# and prints the ratios a/b and a/c. Then the idle RSS of `switchboard run` with 1,000
# configured mailboxes, read from /proc/PID/status once it settles: with load.auto: false
# (nothing runs until asked), then with load.auto: true against 1,000 Dovecot users (each
# mailbox syncs at start and keeps one IMAP connection idling on INBOX: settled means every
# IDLE connection is up and two readings a second apart agree). Then the crash test: `switchboard run` is killed with SIGKILL at KILLS random points
# (stored-message counts) of the N-message sync, restarted each time, and finally runs to the end; sqlite3 then shows
# each message stored exactly once.
#
# Needs root (Dovecot's master drops privileges), dovecot-imapd, isync, sqlite3, python3,
# openssl. Installs nothing: it stops with the apt-get line to run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-10000}
KILLS=${KILLS:-20}
PASS=bench-secret
USER_ADDR=bench@example.test

missing=()
for tool in dovecot mbsync sqlite3 python3 openssl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "missing: ${missing[*]}; apt-get install dovecot-imapd isync sqlite3 python3 openssl" >&2
  exit 1
fi

target=${CARGO_TARGET_DIR:-$repo/target}
(cd "$repo" && cargo build --release --quiet --bin switchboard)
sb="$target/release/switchboard"

work=$(mktemp -d /tmp/sb-mailbench-XXXXXX)
chmod 755 "$work"
dovecot_pid=""
daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill -9 "$daemon_pid" 2>/dev/null || true
  [ -n "$dovecot_pid" ] && kill "$dovecot_pid" 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- Dovecot: standalone config, plaintext IMAP on loopback ------------------------------------
dv="$work/dovecot"
mkdir -p "$dv/run" "$dv/state" "$dv/home"
chown nobody:nogroup "$dv/home"
chmod 755 "$dv"
printf '%s:{PLAIN}%s::::::\n' "$USER_ADDR" "$PASS" > "$dv/users"
# The idle mailboxes of the RSS part log in too when load.auto is true.
for i in $(seq 1 999); do printf 'idle%d@example.test:{PLAIN}%s::::::\n' "$i" "$PASS"; done >> "$dv/users"
port=$(free_port)
cat > "$dv/dovecot.conf" <<EOF
protocols = imap
listen = 127.0.0.1
base_dir = $dv/run
state_dir = $dv/state
log_path = $dv/dovecot.log
info_log_path = $dv/dovecot.log
instance_name = sbbench-$port
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
ssl = no
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dv/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $dv/users
  default_fields = uid=nobody gid=nogroup home=$dv/home/%u
}
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  separator = /
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
}
# 1,000 mailboxes with load.auto: true hold 1,000 IDLE connections (plus their syncs).
default_client_limit = 5000
service imap {
  process_limit = 2500
}
service imap-login {
  process_limit = 64
  client_limit = 500
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service stats {
  unix_listener stats-reader {
    mode = 0600
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
EOF
dovecot -F -c "$dv/dovecot.conf" </dev/null >/dev/null 2>&1 &
dovecot_pid=$!
maildir="$dv/home/$USER_ADDR/Maildir"
echo "== generating $N messages into $maildir"
python3 "$repo/benches/mail_bench.py" generate "$maildir" "$N"
chown -R nobody:nogroup "$dv/home"
for _ in $(seq 1 200); do
  python3 "$repo/benches/mail_bench.py" select "$port" "$USER_ADDR" "$PASS" 2>/dev/null && break
  sleep 0.1
done
# Warm-up: Dovecot indexes new/ on the first SELECT and the page cache fills on the first
# fetch; every timed client below then meets the same warm server.
python3 "$repo/benches/mail_bench.py" fetch "$port" "$USER_ADDR" "$PASS" >/dev/null

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }

if [ "${SKIP_TIMING:-0}" != 1 ]; then
# --- (c) raw fetch -----------------------------------------------------------------------------
read -r raw_s raw_n < <(python3 "$repo/benches/mail_bench.py" fetch "$port" "$USER_ADDR" "$PASS")
echo "(c) raw UID FETCH 1:* BODY.PEEK[]: ${raw_s}s ($raw_n messages)"

# --- (b) mbsync --------------------------------------------------------------------------------
mkdir -p "$work/mbsync/mail"
cat > "$work/mbsync/rc" <<EOF
IMAPAccount bench
Host 127.0.0.1
Port $port
User $USER_ADDR
Pass $PASS
SSLType None
AuthMechs LOGIN

IMAPStore bench-far
Account bench

MaildirStore bench-near
Path $work/mbsync/mail/
Inbox $work/mbsync/mail/INBOX

Channel bench
Far :bench-far:
Near :bench-near:
Patterns INBOX
Create Near
Sync Pull
SyncState *
EOF
t0=$(now)
mbsync -q -c "$work/mbsync/rc" bench 2>"$work/mbsync/stderr" || { cat "$work/mbsync/stderr" >&2; exit 1; }
t1=$(now)
mb_s=$(elapsed "$t0" "$t1")
mb_n=$(find "$work/mbsync/mail/INBOX" -type f -path '*/cur/*' -o -type f -path '*/new/*' | wc -l)
echo "(b) mbsync: ${mb_s}s ($mb_n messages)"

fi

# --- (a) switchboard ---------------------------------------------------------------------------
manifests() { # DIR MAILBOXES AUTO
  local dir=$1 count=$2 auto=$3 listen
  listen=$(free_port)
  mkdir -p "$dir"
  cat > "$dir/base.yaml" <<EOF
apiVersion: switchboard/v1
kind: Settings
metadata: {name: default}
spec: {siteUrl: 'http://127.0.0.1:$listen', listen: '127.0.0.1:$listen'}
---
apiVersion: switchboard/v1
kind: User
metadata: {name: owner}
spec: {displayName: Owner, email: owner@example.com}
---
apiVersion: switchboard/v1
kind: MailProvider
metadata: {name: dovecot}
spec:
  type: imap
  title: Bench Dovecot
  domains: [example.test]
  imap: {host: 127.0.0.1, port: $port, security: none}
  smtp: {host: 127.0.0.1, port: 25, security: none}
---
apiVersion: switchboard/v1
kind: Mailbox
metadata: {name: bench}
spec:
  address: $USER_ADDR
  owner: owner
  password: {env: SB_BENCH_PASSWORD}
  load: {period: 3650d, auto: $auto}
EOF
  if [ "$count" -gt 1 ]; then
    python3 - "$dir/mailboxes.yaml" "$count" <<'PY'
import sys
path, count = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    for i in range(1, count):
        f.write(
            f"apiVersion: switchboard/v1\nkind: Mailbox\nmetadata: {{name: idle{i}}}\nspec:\n"
            f"  address: idle{i}@example.test\n  owner: owner\n"
            f"  password: {{env: SB_BENCH_PASSWORD}}\n  load: {{auto: false}}\n---\n"
        )
PY
  fi
}
export SB_BENCH_PASSWORD=$PASS
if [ "${SKIP_TIMING:-0}" != 1 ]; then
# `sync` runs only applied objects: apply with a daemon first (load.auto false: it does not
# sync), stop it, then time the in-process sync alone.
manifests "$work/sb/config" 1 false
"$sb" --config "$work/sb/config" --state "$work/sb/state.db" run >/dev/null 2>"$work/sb/apply.err" &
daemon_pid=$!
for _ in $(seq 1 100); do
  sleep 0.1
  [ -f "$work/sb/state.db" ] && [ "$(sqlite3 "$work/sb/state.db" "SELECT count(*) FROM objects WHERE kind = 'Mailbox'" 2>/dev/null)" = 1 ] && break
done
kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true
daemon_pid=""
t0=$(now)
"$sb" --config "$work/sb/config" --state "$work/sb/state.db" sync Mailbox/bench >"$work/sb/out" 2>"$work/sb/err" \
  || { cat "$work/sb/out" "$work/sb/err" >&2; exit 1; }
t1=$(now)
sb_s=$(elapsed "$t0" "$t1")
sb_n=$(sqlite3 "$work/sb/state.db" "SELECT count(*) FROM emails WHERE mailbox = 'bench'")
echo "(a) switchboard sync: ${sb_s}s ($sb_n messages; $(cat "$work/sb/out"))"
python3 - "$sb_s" "$mb_s" "$raw_s" <<'PY'
import sys
a, b, c = map(float, sys.argv[1:])
print(f"ratios: a/b = {a / b:.2f} (target <= 0.5), a/c = {a / c:.2f} (target <= 3)")
PY
fi

# --- idle RSS with 1,000 mailboxes -------------------------------------------------------------
if [ "${SKIP_RSS:-0}" != 1 ]; then
  # Established TCP connections of the daemon to Dovecot's IMAP port.
  imap_conns() {
    local inodes
    inodes=$(find "/proc/$1/fd" -lname 'socket:*' -printf '%l\n' 2>/dev/null | tr -dc '0-9\n' | sort -u)
    awk -v port="$(printf '%04X' "$port")" 'NR > 1 && $4 == "01" && $3 ~ ":" port "$" {print $10}' /proc/net/tcp \
      | sort -u | comm -12 - <(echo "$inodes") | wc -l
  }
  rss_run() { # AUTO
    local auto=$1 dir="$work/rss-$1" want=0 rss prev=0 conns=0
    manifests "$dir/config" 1000 "$auto"
    if [ "$auto" = true ]; then
      want=1000
      # The idle mailboxes of `manifests` have load.auto: false; here every one loads.
      sed -i 's/load: {auto: false}/load: {auto: true}/' "$dir/config/mailboxes.yaml"
      # One socket per IDLE connection (and per sync while they start): above the usual 1,024.
      ulimit -n 8192
    fi
    synced() { sqlite3 "$dir/state.db" "SELECT count(*) FROM object_status WHERE kind = 'Mailbox' AND runs_ok > 0" 2>/dev/null || echo 0; }
    "$sb" --config "$dir/config" --state "$dir/state.db" run >/dev/null 2>"$dir/err" &
    daemon_pid=$!
    local t0 settled=no
    t0=$(date +%s)
    for _ in $(seq 1 300); do
      sleep 1
      rss=$(awk '/VmRSS/ {print $2}' "/proc/$daemon_pid/status")
      if [ "$auto" = true ]; then
        conns=$(imap_conns "$daemon_pid")
        # Settled: every mailbox synced once and only the IDLE connections remain.
        [ "$(synced)" -ge 1000 ] && [ "$conns" -eq "$want" ] && [ "$rss" = "$prev" ] && { settled=yes; break; }
      else
        [ "$rss" = "$prev" ] && { settled=yes; break; }
      fi
      prev=$rss
    done
    # Idle blocking-pool threads (store calls of the start) exit after 10 s: read after them.
    [ "$auto" = true ] && sleep 15 && rss=$(awk '/VmRSS/ {print $2}' "/proc/$daemon_pid/status")
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$daemon_pid/status")
    threads=$(awk '/Threads/ {print $2}' "/proc/$daemon_pid/status")
    mailboxes=$(sqlite3 "$dir/state.db" "SELECT count(*) FROM objects WHERE kind = 'Mailbox'")
    timeouts=$(grep -c "timed out" "$dir/err" || true)
    echo "idle RSS, $mailboxes mailboxes, load.auto $auto: VmRSS ${rss} KiB ($((rss / 1024)) MiB), peak ${hwm} KiB, $threads threads, $conns IMAP connections open, $(synced) synced, settled: $settled after $(($(date +%s) - t0)) s; $timeouts log lines with a time-out"
    kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true
    daemon_pid=""
  }
  rss_run false
  [ "${RSS_AUTO:-1}" = 1 ] && rss_run true
fi

# --- crash test ------------------------------------------------------------------------------------
if [ "${SKIP_CRASH:-0}" != 1 ]; then
  manifests "$work/crash/config" 1 true
  db="$work/crash/state.db"
  count() { [ -f "$db" ] && sqlite3 "$db" "SELECT count(*) FROM emails WHERE mailbox = 'bench'" 2>/dev/null || echo 0; }
  # KILLS random points of the sync: sorted random message counts in (0, N); each round
  # starts the daemon and kills it with SIGKILL as soon as the store holds at least its point.
  kills=0
  for target in $(python3 -c "import random; print(*sorted(random.sample(range(1, $N), $KILLS)))"); do
    c=$(count)
    # A batch commits up to 200 messages at once: a point already passed moves to the next message.
    [ "$c" -ge "$target" ] && target=$((c + 1))
    [ "$target" -ge "$N" ] && break
    "$sb" --config "$work/crash/config" --state "$db" run >/dev/null 2>>"$work/crash/err" &
    daemon_pid=$!
    while c=$(count); [ "$c" -lt "$target" ]; do
      kill -0 "$daemon_pid" 2>/dev/null || { echo "the daemon died on its own" >&2; exit 1; }
    done
    kill -9 "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true
    daemon_pid=""
    kills=$((kills + 1))
    echo "  kill -9 #$kills at point $target: $c stored when killed, $(count) after"
  done
  "$sb" --config "$work/crash/config" --state "$db" run >/dev/null 2>>"$work/crash/err" &
  daemon_pid=$!
  for _ in $(seq 1 600); do
    [ "$(count)" -ge "$N" ] && break
    sleep 0.1
  done
  sleep 1 # let a duplicate, if any could appear, appear
  kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true
  daemon_pid=""
  echo "crash test: $kills kill -9 rounds, then one run to the end"
  sqlite3 -header -column "$db" "
    SELECT count(*) AS stored,
           count(DISTINCT message_id) AS distinct_message_ids,
           count(DISTINCT uid) AS distinct_uids,
           sum(message_id NOT LIKE 'bench-%@example.test') AS foreign_ids,
           (SELECT messages FROM mail_folders WHERE mailbox = 'bench') AS folder_count
      FROM emails WHERE mailbox = 'bench'"
  read -r stored distinct < <(sqlite3 -separator ' ' "$db" "SELECT count(*), count(DISTINCT message_id) FROM emails WHERE mailbox = 'bench'")
  if [ "$stored" = "$N" ] && [ "$distinct" = "$N" ]; then
    echo "crash test: PASS — each of the $N messages stored exactly once"
  else
    echo "crash test: FAIL — $stored stored, $distinct distinct, expected $N" >&2
    exit 1
  fi
fi
