#!/usr/bin/env bash
# Benchmark of `switchboard validate` on a large, valid configuration.
#
# Generates 10,000 objects in 200 files (50 documents each; a realistic mix of Users, Roles,
# ChatQueues with operators, `api` ChatChannels, MailProviders with domains, Mailboxes that use
# them -- half named explicitly, half detected from their domain -- and MeetingServices; every
# reference valid) plus one Settings file, builds the release binary and measures one validate
# run with GNU time (wall time, peak RSS), and with hyperfine when it is installed.
#
# Usage: benches/validate.sh            (from anywhere; KEEP=1 keeps the generated directory)
# Needs: GNU time at /usr/bin/time (Debian/Ubuntu: apt-get install time); hyperfine optional.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FILES="${FILES:-200}"  # override to see how it scales: FILES=400 benches/validate.sh
DOCS_PER_FILE=50

if [[ ! -x /usr/bin/time ]]; then
    echo "error: GNU time is not installed at /usr/bin/time (it reports peak RSS)." >&2
    echo "       Install it (Debian/Ubuntu: sudo apt-get install time) and run again." >&2
    exit 2
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-bench.XXXXXX")"
if [[ "${KEEP:-0}" == 1 ]]; then
    echo "keeping $WORK"
else
    trap 'rm -rf "$WORK"' EXIT
fi
CFG="$WORK/config"
mkdir -p "$CFG"

# --- generate --------------------------------------------------------------------------------
# Per file i: 2 Roles, 20 Users, 4 ChatQueues, 6 ChatChannels, 2 MailProviders, 14 Mailboxes,
# 2 MeetingServices = 50 documents. Names carry the file number, so all are unique.
gen_file() {
    local i=$1 k
    printf '# yaml-language-server: $schema=../schemas/manifest.schema.json\n'
    for k in 0 1; do
        printf -- '---\napiVersion: switchboard/v1\nkind: Role\nmetadata:\n  name: role-%d-%d\n  labels: {team: t%d}\nspec:\n  title: Role %d.%d\n  operations: [CanManageChats, CanConnectSharedMailbox, CanManageSharedMailboxSync]\n' \
            "$i" "$k" "$i" "$i" "$k"
    done
    for k in $(seq 0 19); do
        printf -- '---\napiVersion: switchboard/v1\nkind: User\nmetadata:\n  name: user-%d-%d\nspec:\n  displayName: User %d.%d\n  email: user-%d-%d@d-%d-%d.example\n  roles: [role-%d-%d]\n' \
            "$i" "$k" "$i" "$k" "$i" "$k" "$i" $((k % 2)) "$i" $((k % 2))
    done
    for k in 0 1 2 3; do
        printf -- '---\napiVersion: switchboard/v1\nkind: ChatQueue\nmetadata:\n  name: queue-%d-%d\nspec:\n  title: Queue %d.%d\n  routing: %s\n  completionTimeout: 30m\n  operators:\n    - user: user-%d-%d\n    - user: user-%d-%d\n    - user: user-%d-%d\n    - role: role-%d-%d\n' \
            "$i" "$k" "$i" "$k" "$([[ $((k % 2)) == 0 ]] && echo leastBusy || echo toAll)" \
            "$i" $((k * 5)) "$i" $((k * 5 + 1)) "$i" $((k * 5 + 2)) "$i" $((k % 2))
    done
    for k in $(seq 0 5); do
        printf -- '---\napiVersion: switchboard/v1\nkind: ChatChannel\nmetadata:\n  name: channel-%d-%d\nspec:\n  provider: api\n  title: Channel %d.%d\n  queue: queue-%d-%d\n  language: en-US\n  inboundToken: {env: CHANNEL_%d_%d_TOKEN}\n  callbackUrl: https://hooks.example.com/chat/%d/%d\n  callbackSecret: {credential: channel-%d-%d-callback}\n' \
            "$i" "$k" "$i" "$k" "$i" $((k % 4)) "$i" "$k" "$i" "$k" "$i" "$k"
    done
    for k in 0 1; do
        printf -- '---\napiVersion: switchboard/v1\nkind: MailProvider\nmetadata:\n  name: provider-%d-%d\nspec:\n  type: imap\n  title: Provider %d.%d\n  domains: [d-%d-%d.example, mail-%d-%d.example]\n  imap: {host: imap.d-%d-%d.example, port: 993, security: tls}\n  smtp: {host: smtp.d-%d-%d.example, port: 587, security: starttls}\n  loginFormat: email\n  auth: basic\n' \
            "$i" "$k" "$i" "$k" "$i" "$k" "$i" "$k" "$i" "$k" "$i" "$k"
    done
    for k in $(seq 0 13); do
        local provider=""
        if ((k % 2 == 0)); then provider="  provider: provider-$i-$((k % 2))"$'\n'; fi
        printf -- '---\napiVersion: switchboard/v1\nkind: Mailbox\nmetadata:\n  name: mailbox-%d-%d\nspec:\n  address: user-%d-%d@d-%d-%d.example\n  owner: user-%d-%d\n%s  password: {credential: mailbox-%d-%d}\n  load: {period: 2w, folders: [INBOX, Sent]}\n  send: {defaultSender: %s, alias: User %d.%d}\n  access:\n    - role: role-%d-0\n      readEmails: true\n' \
            "$i" "$k" "$i" "$k" "$i" $((k % 2)) "$i" "$k" "$provider" "$i" "$k" \
            "$([[ $k -lt 2 ]] && echo true || echo false)" "$i" "$k" "$i"
    done
    for k in 0 1; do
        printf -- "---\napiVersion: switchboard/v1\nkind: MeetingService\nmetadata:\n  name: meeting-%d-%d\nspec:\n  title: Meetings %d.%d\n  description: Company %d video rooms.\n  mask: '(?i)https?://(?:[a-z0-9-]+\\\\.)*meet-%d-%d\\\\.example(?::\\\\d+)?/(?:j|room)/[\\\\w-]+'\n" \
            "$i" "$k" "$i" "$k" "$i" "$i" "$k"
    done
}

echo "generating $((FILES * DOCS_PER_FILE)) objects in $FILES files (+ 1 Settings) into $CFG ..."
cat >"$CFG/000-settings.yaml" <<'EOF'
apiVersion: switchboard/v1
kind: Settings
metadata:
  name: default
spec:
  siteUrl: https://switchboard.example.com
  listen: 127.0.0.1:8080
EOF
for ((i = 0; i < FILES; i++)); do
    gen_file "$i" >"$(printf '%s/objects-%03d.yaml' "$CFG" "$i")"
done
docs=$(grep -c '^kind:' "$CFG"/*.yaml | awk -F: '{s += $2} END {print s}')
files=$(find "$CFG" -name '*.yaml' | wc -l)
bytes=$(du -sb "$CFG" | cut -f1)
echo "generated: $docs objects in $files files ($((bytes / 1024)) KiB)"

# --- build -----------------------------------------------------------------------------------
echo "building the release binary ..."
(cd "$ROOT" && cargo build --release --quiet)
BIN="$ROOT/target/release/switchboard"

# --- measure ---------------------------------------------------------------------------------
# Warm the page cache once, and make sure the generated set is valid (a benchmark of the error
# path would measure something else).
if ! out=$("$BIN" validate -c "$CFG" 2>&1); then
    echo "error: the generated configuration does not validate:" >&2
    echo "$out" | head -40 >&2
    exit 1
fi
echo "$out"

"$BIN" --version
echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
echo
echo "\$ /usr/bin/time -v $BIN validate -c $CFG"
/usr/bin/time -v "$BIN" validate -c "$CFG" >/dev/null 2>"$WORK/time.txt"
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time.txt")
user=$(awk -F': ' '/User time/ {print $2}' "$WORK/time.txt")
sys=$(awk -F': ' '/System time/ {print $2}' "$WORK/time.txt")
rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
echo "objects:                    $docs"
echo "files:                      $files"
echo "wall time (m:ss):           $wall"
echo "user / system (s):          $user / $sys"
echo "Maximum resident set size:  $rss KiB ($((rss / 1024)) MiB)"

if command -v hyperfine >/dev/null 2>&1; then
    echo
    hyperfine --warmup 2 --runs 10 "$BIN validate -c $CFG"
else
    echo
    echo "(hyperfine is not installed: best of 5 runs with bash's time instead)"
    best=""
    for _ in 1 2 3 4 5; do
        start=$(date +%s%N)
        "$BIN" validate -c "$CFG" >/dev/null
        end=$(date +%s%N)
        ms=$(((end - start) / 1000000))
        if [[ -z "$best" || $ms -lt $best ]]; then best=$ms; fi
    done
    echo "best of 5 wall time:        ${best} ms"
fi
