#!/usr/bin/env bash
# The contact-center example end to end, against fake providers on loopback (the test suite's
# own fakes, examples/provider-fakes.rs). On each channel the example configures — Telegram,
# WhatsApp through Twilio, Facebook Messenger, the web-site widget (api) and the German
# Messenger page an FAQ bot answers first (Handover Protocol) — a customer writes, the provider
# delivers the signed webhook to switchboard, and operator Lina sees the chat offered, accepts
# it, answers (the answer is shown arriving at the provider) and completes it.
#
#   examples/contact-center/run.sh          # build, tell the story, stop
#   examples/contact-center/run.sh --stay   # ... then keep everything running until Ctrl-C
#
# Needs a Rust toolchain and curl. Optional environment:
#   SWITCHBOARD_DEMO_PORT                  the daemon's port [8080]
#   SWITCHBOARD_BIN, PROVIDER_FAKES_BIN    prebuilt binaries (then nothing is built)
#   DEMO_*                                 the demo's secrets (throwaway defaults below)
set -euo pipefail
cd "$(dirname "$0")/../.."

example=examples/contact-center
port="${SWITCHBOARD_DEMO_PORT:-8080}"
sb="http://127.0.0.1:$port"
stay=false
case "${1:-}" in
  --stay) stay=true ;;
  "") ;;
  *) echo "usage: $0 [--stay]" >&2; exit 2 ;;
esac

if [[ -t 1 ]]; then bold=$'\e[1m' dim=$'\e[2m' off=$'\e[0m'; else bold='' dim='' off=''; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$off"; }
say() { printf '  %-12s %s\n' "$1" "$2"; }
fail() { echo "run.sh: $*" >&2; exit 1; }

# Everything lives in one temporary directory, removed on exit with the processes we started.
work="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-demo.XXXXXX")"
pids=()
stopped=false
finish() {
  local status=$?
  if ((status != 0)) && ! $stopped && [[ -d "$work" ]]; then
    for log in fakes switchboard; do
      [[ -s "$work/$log.log" ]] && { echo "--- last lines of $log.log" >&2; tail -n 15 "$work/$log.log" >&2; }
    done
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap finish EXIT
trap 'stopped=true; exit 130' INT TERM

wait_for() { # WHAT COMMAND...: polls COMMAND for up to 20 s, while what we started runs
  local what=$1; shift
  for _ in $(seq 200); do
    "$@" >/dev/null 2>&1 && return 0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || fail "a process stopped while waiting for $what$(first_error)"; done
    sleep 0.1
  done
  fail "timed out waiting for $what"
}

# The first error a process we started logged, as ": <line>" (the cause, shown before the log tails).
first_error() {
  local line
  line="$(cat "$work/switchboard.log" "$work/fakes.log" 2>/dev/null | grep -m1 -E 'ERROR|^error|Error:' || true)"
  [[ -n "$line" ]] && printf ': %s' "$line"
  return 0
}

sha256() { if command -v sha256sum >/dev/null; then printf %s "$1" | sha256sum; else printf %s "$1" | shasum -a 256; fi | cut -d' ' -f1; }

# The first "KEY":"value" (or "KEY":number) of a JSON text on stdin; enough for these answers.
json() {
  awk -v key="\"$1\":" '{
    i = index($0, key); if (!i) next
    s = substr($0, i + length(key))
    if (substr(s, 1, 1) == "\"") { s = substr(s, 2); print substr(s, 1, index(s, "\"") - 1) }
    else { match(s, /^[^,}\]]*/); print substr(s, 1, RLENGTH) }
    exit
  }'
}

# Another daemon on the port (the quickstart, an earlier demo) is the usual reason a demo fails:
# say so first, before building or starting anything.
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  fail "127.0.0.1:$port is already in use — is the quickstart or another demo still running? Stop it (Ctrl-C in its terminal), or set SWITCHBOARD_DEMO_PORT."
fi

step "Building switchboard and the provider fakes"
if [[ -n "${SWITCHBOARD_BIN:-}" && -n "${PROVIDER_FAKES_BIN:-}" ]]; then
  say build "using $SWITCHBOARD_BIN and $PROVIDER_FAKES_BIN"
else
  say build "release build; the first one takes about 5 minutes"
  cargo build --release --locked --bin switchboard --example provider-fakes
  target="${CARGO_TARGET_DIR:-target}/release"
  SWITCHBOARD_BIN="$target/switchboard" PROVIDER_FAKES_BIN="$target/examples/provider-fakes"
  say build "$SWITCHBOARD_BIN, $PROVIDER_FAKES_BIN"
fi

# The secrets. The example's manifests name them as systemd credentials ({credential: NAME});
# here their values come from the environment (throwaway defaults) and are handed over the way
# the unit's LoadCredential= does: one file each in $CREDENTIALS_DIRECTORY. No manifest holds
# a value, and the fakes read the same files (a provider knows its own tokens).
step "Secrets from the environment, as systemd credentials"
export CREDENTIALS_DIRECTORY="$work/credentials"
(umask 077 && mkdir "$CREDENTIALS_DIRECTORY")
credential() { (umask 077 && printf %s "$2" >"$CREDENTIALS_DIRECTORY/$1"); }
credential telegram-bot-token "${DEMO_TELEGRAM_BOT_TOKEN:-7000000001:AAdemo-telegram-bot-token}"
credential facebook-page-token-larkspur "${DEMO_FACEBOOK_PAGE_TOKEN:-EAAdemoPageTokenLarkspur}"
credential facebook-page-token-larkspur-de "${DEMO_FACEBOOK_PAGE_TOKEN_DE:-EAAdemoPageTokenLarkspurDe}"
credential facebook-app-secret "${DEMO_FACEBOOK_APP_SECRET:-demo-facebook-app-secret}"
credential facebook-verify-token "${DEMO_FACEBOOK_VERIFY_TOKEN:-demo-facebook-verify-token}"
credential twilio-auth-token "${DEMO_TWILIO_AUTH_TOKEN:-demo-twilio-auth-token}"
credential web-widget-inbound-token "${DEMO_WEB_WIDGET_INBOUND_TOKEN:-demo-web-widget-inbound-token}"
credential web-widget-callback-secret "${DEMO_WEB_WIDGET_CALLBACK_SECRET:-demo-web-widget-callback-secret}"
credential refund-webhook-secret "${DEMO_REFUND_WEBHOOK_SECRET:-demo-refund-webhook-secret}"
operator_token="${DEMO_OPERATOR_TOKEN:-demo-lina-token}"
say secrets "$(ls "$CREDENTIALS_DIRECTORY" | wc -l | tr -d ' ') credentials in $CREDENTIALS_DIRECTORY; operator lina-park signs in with \$DEMO_OPERATOR_TOKEN"

step "Starting the provider fakes"
"$PROVIDER_FAKES_BIN" -c config.d -c "$example" --site "$sb" --out "$work/fakes.txt" >"$work/fakes.log" 2>&1 &
pids+=($!)
wait_for "the provider fakes" test -s "$work/fakes.txt"
sed 's/^/  /' "$work/fakes.log"
control="$(awk '$1 == "-" && $2 == "control" { print $3 }' "$work/fakes.txt")"

# The demo's config: the example's people, chat and quick replies, changed only where a demo
# must differ. Its mail and sync objects stay out: they would reach for servers that do not
# exist here.
step "The demo's config: the example, pointed at the fakes"
demo="$work/config"
mkdir "$demo"
cat >"$demo/settings.yaml" <<EOF
# The example's Settings, on loopback: providers deliver webhooks to siteUrl.
apiVersion: switchboard/v1
kind: Settings
metadata: {name: default}
spec:
  siteUrl: $sb
  listen: 127.0.0.1:$port
  chat: {simultaneousChats: 3, acceptTimeout: 2m}
EOF
cp "$example/quick-replies.yaml" "$demo/"
# Operators sign in through the company's identity server in the example; here Lina (support
# agent in the general, billing and dach queues) gets an API token.
sed "/^  email: lina.park@example.org\$/a\\
  apiTokenSha256: [$(sha256 "$operator_token")]" "$example/people.yaml" >"$demo/people.yaml"
# Each channel gets its fake's apiBaseUrl (inserted after `spec:`), the web widget its fake
# site's callbackUrl; everything else is the example's, comments included.
awk -v fakes="$work/fakes.txt" '
  BEGIN { while ((getline line < fakes) > 0) { split(line, f, " "); field[f[1]] = f[2]; url[f[1]] = f[3] } }
  /^---/ { channel = 0; name = "" }
  /^kind: ChatChannel$/ { channel = 1 }
  channel && /^  name: / { name = $2 }
  channel && field[name] == "callbackUrl" && /^  callbackUrl: / { print "  callbackUrl: " url[name]; next }
  { print }
  channel && field[name] == "apiBaseUrl" && /^spec:$/ { print "  apiBaseUrl: " url[name] }
' "$example/chat.yaml" >"$demo/chat.yaml"
say config "$demo: $(grep -c '^  apiBaseUrl: ' "$demo/chat.yaml") channels on fakes, the web widget's callback on the fake site"
say validate "$("$SWITCHBOARD_BIN" validate -c "$demo")"

step "Starting switchboard on $sb"
"$SWITCHBOARD_BIN" -c "$demo" --state "$work/state.db" run >"$work/switchboard.log" 2>&1 &
pids+=($!)
wait_for "switchboard to be ready" curl -fsS "$sb/readyz"
channels_ready() {
  "$SWITCHBOARD_BIN" --state "$work/state.db" status | awk '
    $1 ~ /^ChatChannel\/(telegram|whatsapp|messenger|messenger-de|web-widget)$/ && $2 == "ready" { n++ }
    END { exit n == 5 ? 0 : 1 }'
}
wait_for "the channels to be reconciled (status: ready)" channels_ready
"$SWITCHBOARD_BIN" --state "$work/state.db" status | awk 'NR == 1 || /^ChatChannel/' | cut -c1-100 | sed 's/^/  /'

# Lina's side: her event stream, and the operator API with her bearer token. (Each answer is
# taken into a variable first, so that a failed call stops the script.)
curl -sN -D "$work/events.headers" -H "Authorization: Bearer $operator_token" "$sb/api/v1/events" \
  >"$work/events.log" 2>/dev/null &
pids+=($!)
# The stream is subscribed once its headers came back; only then do Lina's events start.
wait_for "Lina's event stream" grep -q '^HTTP/1.1 200' "$work/events.headers"
seen_events=0
event_count() { grep -c "^event: *$1\$" "$work/events.log" || true; }
at_least() { (($(event_count "$1") >= $2)); }
events() { # EVENT N: waits for the N-th EVENT, then shows the events Lina received since last time
  wait_for "event $1 #$2 on Lina's stream" at_least "$1" "$2"
  local all
  all="$(awk '/^event:/ { sub(/^event: */, ""); print }' "$work/events.log")"
  say events "$(tail -n +$((seen_events + 1)) <<<"$all" | tr '\n' ' ')"
  seen_events=$(wc -l <<<"$all")
}
api() { # METHOD PATH [JSON]: the answer's body; fails on an HTTP error
  local args=(-sS -X "$1" -H "Authorization: Bearer $operator_token" -w '\n%{http_code}')
  [[ -n "${3:-}" ]] && args+=(-H 'content-type: application/json' -d "$3")
  local out code
  out="$(curl "${args[@]}" "$sb$2")"
  code="${out##*$'\n'}" out="${out%$'\n'*}"
  ((code < 400)) || fail "$1 $2 answered $code: $out"
  printf '%s' "$out"
}
fake() { # METHOD PATH [FORM...]: asks the fakes' control API
  local method=$1 path=$2; shift 2
  local args=(-sS -X "$method" -w '\n%{http_code}')
  for pair in "$@"; do args+=(--data-urlencode "$pair"); done
  local out code
  out="$(curl "${args[@]}" "$control$path")"
  code="${out##*$'\n'}" out="${out%$'\n'*}"
  ((code < 400)) || fail "the fakes: $out"
  printf '%s' "$out"
}
customer() { # CHANNEL FROM NAME TEXT: the customer writes; the provider delivers the webhook
  local said
  say customer "$3 ($2) on $1: \"$4\""
  said="$(fake POST "/$1/messages" "from=$2" "name=$3" "text=$4")"
  say "$1" "$said"
}

step "Lina starts taking chats"
answer="$(api PUT /api/v1/operators/me/status '{"status":"active"}' | json status)"
say lina "PUT  /api/v1/operators/me/status {\"status\":\"active\"} → $answer"
events operator.status 1

chats=0
handle() { # CHANNEL REPLY: accept the offered chat, answer, see the answer at the provider, complete
  local channel=$1 reply=$2 list chat answer
  list="$(api GET '/api/v1/chats?state=offered')"
  chat="$(json id <<<"$list")"
  [[ -n "$chat" ]] || fail "no chat is offered to Lina: $list"
  say lina "GET  /api/v1/chats?state=offered → chat $chat from $(json name <<<"$list") (channel $(json channel <<<"$list"), queue $(json queue <<<"$list"))"
  answer="$(api POST "/api/v1/chats/$chat/accept" | json state)"
  say lina "POST /api/v1/chats/$chat/accept → $answer"
  api POST "/api/v1/chats/$chat/messages" "{\"text\":\"$reply\"}" >/dev/null
  say lina "POST /api/v1/chats/$chat/messages \"$reply\" → queued"
  answer="$(fake GET "/$channel/sent?n=1")"
  say "$channel" "$answer"
  answer="$(api POST "/api/v1/chats/$chat/complete" | json state)"
  say lina "POST /api/v1/chats/$chat/complete → $answer"
  chats=$((chats + 1))
  events chat.completed "$chats"
}
nothing_offered() {
  local total
  total="$(api GET '/api/v1/chats?state=offered' | json total)"
  [[ "$total" == 0 ]] || fail "$total chats are offered, expected none"
  say lina "GET  /api/v1/chats?state=offered → none: the bot's thread, stored as its history"
}

step "Telegram: Ann writes to the support bot"
customer telegram 5551001 Ann "My dishwasher shows error E24"
handle telegram "Hi Ann, E24 means the drain is blocked. Please clean the filter."

step "WhatsApp (Twilio): Bruno writes to the support number"
customer whatsapp +351910000002 Bruno "Where is my order LH-4711?"
handle whatsapp "Hi Bruno, LH-4711 left our warehouse today."

step "Facebook Messenger: Chloe writes to the Larkspur page"
customer messenger PSID-CHLOE Chloe "Do you sell spare fridge shelves?"
handle messenger "Hi Chloe, yes: see www.example.org/parts."

step "Web site widget (api channel): Dev writes on www.example.org"
customer web-widget visitor-17 Dev "Can I change my delivery date?"
handle web-widget "Hi Dev, sure: which date suits you?"

step "Messenger, German page: the FAQ bot answers first (Handover Protocol)"
customer messenger-de PSID-EMMA Emma "Hallo, mein Ofen heizt nicht"
nothing_offered
say bot "the FAQ bot cannot help: it passes the thread to Switchboard"
answer="$(fake POST /messenger-de/pass from=PSID-EMMA 'metadata=asks for a person')"
say messenger-de "$answer"
handle messenger-de "Hallo Emma, gern. Welches Modell haben Sie?"
answer="$(fake GET '/messenger-de/handbacks?n=1')"
say messenger-de "Switchboard gave the thread back: $answer"
customer messenger-de PSID-EMMA Emma "Danke!"
nothing_offered

step "The story is complete: $chats chats on $chats channels, each offered, accepted, answered at the provider and completed"

if $stay; then
  cat <<EOF

Everything keeps running until Ctrl-C. Try, for instance:
  curl -s -H 'Authorization: Bearer $operator_token' '$sb/api/v1/chats?state=completed'
  curl -s -X POST --data-urlencode from=5551002 --data-urlencode name=Finn \\
       --data-urlencode 'text=Hello again' $control/telegram/messages
  curl -N -H 'Authorization: Bearer $operator_token' $sb/api/v1/events
Logs: $work/switchboard.log, $work/fakes.log
EOF
  wait "${pids[1]}"
fi
