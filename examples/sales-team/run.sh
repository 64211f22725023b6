#!/usr/bin/env bash
# The sales-team example's LinkedIn lead capture end to end, against a fake LinkedIn on
# loopback (the test suite's own fake, served by examples/provider-fakes.rs). Switchboard
# subscribes the lead notification webhook for the ad account; a member submits a lead form
# on LinkedIn, LinkedIn POSTs the signed notification, Switchboard fetches the form response
# from the Lead Sync API and makes it a lead with its contact; Jonas (marketing, the
# integration's notifyRole) sees `lead.created` and reads the lead, its contact and the
# integration's log through the operator API.
#
# Then Jonas's Google account (examples/sales-team/sync.yaml), against a fake Google (the
# People and Calendar APIs and the OAuth 2.0 token endpoint, seeded with his contacts and
# events): Kai asks for "sync now" on its ContactSync and CalendarSync; the contacts in
# Jonas's Google contact group come in with his tag, the events as activities, and a contact
# made here with his tag goes out into the group. Then Ava's Microsoft 365 mailbox
# (mail.yaml, sync.yaml), against a fake Microsoft Graph (contacts, calendars, To Do) and a fake
# Microsoft identity platform token endpoint: her Outlook contacts and meetings come in, and
# the customers here go out to her Outlook.
#
#   examples/sales-team/run.sh          # build, tell the story, stop
#   examples/sales-team/run.sh --stay   # ... then keep everything running until Ctrl-C
#
# Needs a Rust toolchain and curl. Optional environment:
#   SWITCHBOARD_DEMO_PORT                  the daemon's port [8080]
#   SWITCHBOARD_BIN, PROVIDER_FAKES_BIN    prebuilt binaries (then nothing is built)
#   DEMO_*                                 the demo's secrets (throwaway defaults below)
set -euo pipefail
cd "$(dirname "$0")/../.."

example=examples/sales-team
port="${SWITCHBOARD_DEMO_PORT:-8080}"
sb="http://127.0.0.1:$port"
stay=false
case "${1:-}" in
  --stay) stay=true ;;
  "") ;;
  *) echo "usage: $0 [--stay]" >&2; exit 2 ;;
esac

if [[ -t 1 ]]; then bold=$'\e[1m' off=$'\e[0m'; else bold='' off=''; fi
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
# The first lead's mapped columns, `"Column":value` pairs (the answers hold no braces inside).
columns() { grep -o '"columns":{[^}]*}' | head -n 1 | sed 's/^"columns":{//; s/}$//; s/","/", "/g; s/,"\([A-Z]\)/, "\1/g'; }

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
# a value, and the fake reads the same files (LinkedIn knows its app's secret and the tokens
# it granted).
step "Secrets from the environment, as systemd credentials"
export CREDENTIALS_DIRECTORY="$work/credentials"
(umask 077 && mkdir "$CREDENTIALS_DIRECTORY")
credential() { (umask 077 && printf %s "$2" >"$CREDENTIALS_DIRECTORY/$1"); }
credential linkedin-client-secret "${DEMO_LINKEDIN_CLIENT_SECRET:-demo-linkedin-client-secret}"
credential linkedin-refresh-token "${DEMO_LINKEDIN_REFRESH_TOKEN:-AQdemo-linkedin-refresh-token-ava}"
credential google-client-secret "${DEMO_GOOGLE_CLIENT_SECRET:-demo-google-client-secret}"
credential google-refresh-token-jonas-weber "${DEMO_GOOGLE_REFRESH_TOKEN:-1//demo-google-refresh-token-jonas}"
credential microsoft-client-secret "${DEMO_MICROSOFT_CLIENT_SECRET:-demo-microsoft-client-secret}"
credential m365-refresh-token-ava-lindqvist "${DEMO_M365_REFRESH_TOKEN:-0.demo-m365-refresh-token-ava}"
operator_token="${DEMO_OPERATOR_TOKEN:-demo-jonas-token}"
admin_token="${DEMO_ADMIN_TOKEN:-demo-kai-token}"
say secrets "the LinkedIn, Google and Entra ID apps' client secrets, Ava's and Jonas's refresh tokens in $CREDENTIALS_DIRECTORY; Jonas (marketing) signs in with \$DEMO_OPERATOR_TOKEN, Kai (administrator) with \$DEMO_ADMIN_TOKEN"

step "Starting the fake LinkedIn, the fake Google and the fake Microsoft Graph"
"$PROVIDER_FAKES_BIN" -c config.d -c "$example" --site "$sb" --out "$work/fakes.txt" >"$work/fakes.log" 2>&1 &
pids+=($!)
wait_for "the provider fakes" test -s "$work/fakes.txt"
sed 's/^/  /' "$work/fakes.log"
control="$(awk '$1 == "-" && $2 == "control" { print $3 }' "$work/fakes.txt")"

# The demo's config: the example's LinkedIn app, account and lead integrations, its Google app
# and Jonas's GoogleAccount, its Microsoft 365 provider and Ava's Mailbox, each account with its
# ContactSync and CalendarSync, and its people, changed only where a demo must differ. Mail and
# the other accounts' sync stay out: they would reach for servers that do not exist here.
step "The demo's config: the example's lead capture, Google and Microsoft 365 sync, pointed at the fakes"
demo="$work/config"
mkdir "$demo"
{
  cat <<EOF
# The example's Settings, on loopback: LinkedIn delivers lead notifications to siteUrl.
apiVersion: switchboard/v1
kind: Settings
metadata: {name: default}
spec:
  siteUrl: $sb
  listen: 127.0.0.1:$port
EOF
  # The example's LinkedIn and Google apps, as they stand (clientId and the clientSecret
  # credential); Google's token and consent endpoints are the fake's.
  for app in linkedin google; do
    awk -v app="$app" '$0 == "  " app ":" { on = 1; print; next } on && /^    / { print; next } { on = 0 }' "$example/settings.yaml"
    [[ $app == google ]] && awk '$1 == "-" && $2 == "googleTokenUrl" { print "    tokenUrl: " $3 }
      $1 == "-" && $2 == "googleAuthUrl" { print "    authUrl: " $3 }' "$work/fakes.txt"
  done
} >"$demo/settings.yaml"
grep -q '^    clientSecret: {credential: linkedin-client-secret}$' "$demo/settings.yaml" ||
  fail "$example/settings.yaml has no Settings.linkedin with the linkedin-client-secret credential"
grep -q '^    tokenUrl: http://127.0.0.1:' "$demo/settings.yaml" ||
  fail "$example/settings.yaml has no Settings.google, or the fakes serve no Google"
# Jonas Weber (marketing: the integration's notifyRole) and Kai Moreau (administrator) get
# API tokens.
sed -e "/^  email: jonas.weber@marketing.example.com\$/a\\
  apiTokenSha256: [$(sha256 "$operator_token")]" -e "/^  email: kai.moreau@example.com\$/a\\
  apiTokenSha256: [$(sha256 "$admin_token")]" "$example/people.yaml" >"$demo/leads-people.yaml"
# Each LeadIntegration gets the fake's apiBaseUrl (inserted after `spec:`); everything else
# is the example's, comments included.
awk -v fakes="$work/fakes.txt" '
  BEGIN { while ((getline line < fakes) > 0) { split(line, f, " "); url[f[1]] = f[3] } }
  /^---/ { lead = 0; name = "" }
  /^kind: LeadIntegration$/ { lead = 1 }
  lead && /^  name: / { name = $2 }
  { print }
  lead && /^spec:$/ && (name in url) { print "  apiBaseUrl: " url[name] }
' "$example/leads.yaml" >"$demo/leads.yaml"
# pick FILE NAME...: the example's documents of FILE named NAME..., comments included, pointed
# at the fakes: a GoogleAccount's or MailProvider's apiBaseUrl (after `spec:`), a MailProvider's
# oauth2 tokenUrl and authUrl; a Mailbox loads no mail (no mail server runs here).
pick() {
  local file=$1; shift
  awk -v fakes="$work/fakes.txt" -v keep="$*" '
    BEGIN {
      while ((getline line < fakes) > 0) { split(line, f, " "); url[f[1] " " f[2]] = f[3] }
      split(keep, k, " "); for (i in k) want[k[i]] = 1
    }
    function flush() {
      if (name in want) printf "%s%s", (printed++ ? "---\n" : ""), doc
      doc = ""; name = ""; kind = ""
    }
    /^---$/ { flush(); next }
    /^kind: / { kind = $2 }
    /^  name: / && name == "" { name = $2 }
    kind == "MailProvider" && /^    (tokenUrl|authUrl): / {
      key = name " " substr($1, 1, length($1) - 1)
      if (key in url) sub(/: .*/, ": " url[key])
    }
    { doc = doc $0 "\n" }
    /^spec:$/ && ((name " apiBaseUrl") in url) { doc = doc "  apiBaseUrl: " url[name " apiBaseUrl"] "\n" }
    /^spec:$/ && kind == "Mailbox" { doc = doc "  load: {enabled: false}\n" }
    END { flush() }
  ' "$file"
}
google_account=jonas-weber-google
pick "$example/sync.yaml" "$google_account" "$google_account-contacts" "$google_account-calendar" >"$demo/google-sync.yaml"
[[ "$(grep -c '^kind: ' "$demo/google-sync.yaml")" == 3 ]] && grep -q '^  apiBaseUrl: ' "$demo/google-sync.yaml" ||
  fail "$example/sync.yaml has no GoogleAccount/$google_account with a ContactSync and a CalendarSync"
m365_provider=bluefin-m365 mailbox=ava-lindqvist-m365 mailbox_sync=ava-lindqvist
{
  pick "$example/mail.yaml" "$m365_provider" "$mailbox"
  echo ---
  pick "$example/sync.yaml" "$mailbox_sync-contacts" "$mailbox_sync-calendar"
} >"$demo/m365-sync.yaml"
[[ "$(grep -c '^kind: ' "$demo/m365-sync.yaml")" == 4 && "$(grep -c ': http://127.0.0.1:' "$demo/m365-sync.yaml")" == 3 ]] ||
  fail "$example has no MailProvider/$m365_provider and Mailbox/$mailbox with ContactSync/$mailbox_sync-contacts and CalendarSync/$mailbox_sync-calendar"
say config "$demo: $(ls "$demo" | tr '\n' ' ')"
say config "$(grep -c '^  apiBaseUrl: ' "$demo/leads.yaml") lead integrations on the fake LinkedIn; GoogleAccount/$google_account, its ContactSync and CalendarSync on the fake Google; MailProvider/$m365_provider (for Mailbox/$mailbox, its ContactSync and CalendarSync) on the fake Graph"
say validate "$("$SWITCHBOARD_BIN" validate -c "$demo")"

step "Starting switchboard on $sb"
"$SWITCHBOARD_BIN" -c "$demo" --state "$work/state.db" run >"$work/switchboard.log" 2>&1 &
pids+=($!)
wait_for "switchboard to be ready" curl -fsS "$sb/readyz"
fake() { # METHOD PATH [FORM...]: asks the fake's control API
  local method=$1 path=$2; shift 2
  local args=(-sS -X "$method" -w '\n%{http_code}')
  for pair in "$@"; do args+=(--data-urlencode "$pair"); done
  local out code
  out="$(curl "${args[@]}" "$control$path")"
  code="${out##*$'\n'}" out="${out%$'\n'*}"
  ((code < 400)) || fail "the fake: $out"
  printf '%s' "$out"
}
# The integration's first run asks LinkedIn for a token with Ava's refresh token and
# subscribes the webhook for the ad account (the paused EMEA integration stays inactive).
wait_for "the lead notification subscription" fake GET /linkedin-ads/subscription
"$SWITCHBOARD_BIN" --state "$work/state.db" status | awk 'NR == 1 || /^(LeadIntegration|LinkedInAccount)\//' | cut -c1-110 | sed 's/^/  /'
say linkedin "lead notifications of ad account 508912345 go to $(fake GET /linkedin-ads/subscription)"

# Jonas's side: his event stream, and the operator API with his bearer token. (Each answer is
# taken into a variable first, so that a failed call stops the script.)
curl -sN -D "$work/events.headers" -H "Authorization: Bearer $operator_token" "$sb/api/v1/events" \
  >"$work/events.log" 2>/dev/null &
pids+=($!)
wait_for "Jonas's event stream" grep -q '^HTTP/1.1 200' "$work/events.headers"
seen_events=0
event_count() { grep -c "^event: *$1\$" "$work/events.log" || true; }
at_least() { (($(event_count "$1") >= $2)); }
events() { # EVENT N: waits for the N-th EVENT, then shows the events Jonas received since last time
  wait_for "event $1 #$2 on Jonas's stream" at_least "$1" "$2"
  local all
  all="$(awk '/^event:/ { sub(/^event: */, ""); print }' "$work/events.log")"
  say events "$(tail -n +$((seen_events + 1)) <<<"$all" | tr '\n' ' ')"
  seen_events=$(wc -l <<<"$all")
}
api() { # METHOD PATH [TOKEN]: the answer's body (as Jonas unless TOKEN); fails on an HTTP error
  local out code
  out="$(curl -sS -X "$1" -H "Authorization: Bearer ${3:-$operator_token}" -w '\n%{http_code}' "$sb$2")"
  code="${out##*$'\n'}" out="${out%$'\n'*}"
  ((code < 400)) || fail "$1 $2 answered $code: $out"
  printf '%s' "$out"
}

leads=0
submit() { # WHO FORM FIELD=VALUE...: a member submits a lead form; LinkedIn notifies
  local who=$1 form=$2 answer; shift 2
  say member "$who submits form $form on LinkedIn"
  answer="$(fake POST /linkedin-ads/leads "form=$form" "$@")"
  say linkedin "$answer"
  leads=$((leads + 1))
  events lead.created "$leads"
}
show_lead() { # shows the newest lead, its contact in the record store
  local list lead contact
  list="$(api GET '/api/v1/leads?integration=linkedin-ads')"
  lead="$(json id <<<"$list")"
  local total
  total="$(json total <<<"$list")"
  say jonas "GET  /api/v1/leads?integration=linkedin-ads → $total lead$( ((total == 1)) || echo s); the newest, lead $lead (form $(json form <<<"$list"), LinkedIn response $(json linkedinLeadId <<<"$list")):"
  say columns "$(columns <<<"$list")"
  contact="$(json contactId <<<"$list")"
  [[ -n "$contact" ]] || fail "lead $lead has no contact: $list"
  local person email
  # The contacts of leads are the administrators' to read (Jonas sees the leads).
  person="$(api GET "/api/v1/contacts/$contact" "$admin_token")"
  email="$(grep -o '"emails":\["[^"]*"' <<<"$person" | sed 's/.*\["//; s/"$//' || true)"
  say kai "GET  /api/v1/contacts/$contact → $(json name <<<"$person") <$email>: the lead's person in the record store"
}

step "\"Book a product demo\" (form 7123456, the default mapping): Maya asks for a demo"
submit "Maya Okafor" 7123456 FIRST_NAME=Maya LAST_NAME=Okafor EMAIL=maya.okafor@northwind.example \
  PHONE_NUMBER=+4915112345678 COMPANY_NAME="Northwind Traders" JOB_TITLE="Head of Analytics" COUNTRY=Germany
show_lead
response="$(json linkedinLeadId <<<"$(api GET '/api/v1/leads?integration=linkedin-ads')")"

step "LinkedIn delivers the same notification again: still one lead"
say linkedin "$(fake POST /linkedin-ads/notify "response=$response" form=7123456)"
total="$(api GET '/api/v1/leads?integration=linkedin-ads' | json total)"
[[ "$total" == 1 ]] || fail "$total leads after the second delivery, expected 1"
say jonas "GET  /api/v1/leads?integration=linkedin-ads → still $total lead (unique by LinkedIn's response id)"

step "\"Low-Code Days 2025 registration\" (form 7123457, its own mapping): Tomás registers"
submit "Tomás Herrera" 7123457 FIRST_NAME=Tomás LAST_NAME=Herrera WORK_EMAIL=tomas.herrera@contoso.example \
  COMPANY_NAME=Contoso JOB_TITLE="Data Engineer" product_interest="Embedded dashboards"
show_lead

step "The integration's log"
log="$(api GET /api/v1/lead-integrations/linkedin-ads/log)"
say jonas "GET  /api/v1/lead-integrations/linkedin-ads/log → $(grep -o '"event":"[^"]*"' <<<"$log" | sed 's/"event":"//; s/"$//' | tr '\n' ' ')(newest first)"

step "Jonas's Google account as he had it: contacts in his group, events in his calendar"
say google "contacts: $(fake GET "/$google_account/contacts")"
say google "events: $(fake GET "/$google_account/events")"

# Kai (administrator) makes a contact here with Jonas's tag: the ContactSync exports it.
tag="$(awk '/^  google:$/ { on = 1 } on && /^    tag: / { sub(/^    tag: /, ""); print; exit }' "$demo/google-sync.yaml")"
step "Kai adds Sofia Rossi here, with Jonas's tag \"$tag\""
sofia="$(curl -sS -X POST -H "Authorization: Bearer $admin_token" -H 'Content-Type: application/json' \
  -d "{\"name\":\"Sofia Rossi\",\"emails\":[\"sofia.rossi@adatum.example\"],\"tags\":[\"$tag\"]}" \
  -w '\n%{http_code}' "$sb/api/v1/contacts")"
[[ "${sofia##*$'\n'}" == 201 ]] || fail "POST /api/v1/contacts: $sofia"
say kai "POST /api/v1/contacts → contact $(json id <<<"${sofia%$'\n'*}"): Sofia Rossi <sofia.rossi@adatum.example>"

step "Sync now: ContactSync/$google_account-contacts and CalendarSync/$google_account-calendar"
for object in "ContactSync/$google_account-contacts" "CalendarSync/$google_account-calendar"; do
  api POST "/api/v1/objects/$object/sync" "$admin_token" >/dev/null
  say kai "POST /api/v1/objects/$object/sync → queued"
done
found() { # QUERY TEXT: the contacts matching QUERY include TEXT
  api GET "/api/v1/contacts?q=$1" "$admin_token" | grep -qF "$2"
}
exported() { fake GET "/$google_account/contacts" | grep -qF sofia.rossi@adatum.example; }
has_activity() { api GET '/api/v1/activities?limit=100' "$admin_token" | grep -qF "\"title\":\"$1\""; }
wait_for "Lena Fischer's import" found lena.fischer "\"$tag\""
wait_for "Omar Haddad's import" found omar.haddad "\"$tag\""
wait_for "Sofia Rossi's export" exported
wait_for "the events' import" has_activity "Webinar dry run"
wait_for "the events' import" has_activity "Low-Code Days booth briefing"
"$SWITCHBOARD_BIN" --state "$work/state.db" status | awk -v a="$google_account" 'NR == 1 || $1 ~ "^(ContactSync|CalendarSync|GoogleAccount)/" a' | cut -c1-110 | sed 's/^/  /'

step "What came in, through the operator API"
for who in lena.fischer omar.haddad oma.weber; do
  list="$(api GET "/api/v1/contacts?q=$who" "$admin_token")"
  if [[ "$(json total <<<"$list")" == 0 ]]; then
    say kai "GET  /api/v1/contacts?q=$who → none: not in Jonas's Google group, stays in Google"
  else
    say kai "GET  /api/v1/contacts?q=$who → $(json name <<<"$list"), tags $(grep -o '"tags":\[[^]]*\]' <<<"$list" | head -n 1 | sed 's/^"tags"://')"
  fi
done
activities="$(api GET '/api/v1/activities?limit=100' "$admin_token")"
say kai "GET  /api/v1/activities → $(grep -o '"title":"[^"]*"' <<<"$activities" | sed 's/"title"://' | sort | tr '\n' ' ')"

step "What went out, through the fake Google"
say google "contacts: $(fake GET "/$google_account/contacts")"

step "Ava's Microsoft 365 mailbox as she had it"
say graph "contacts: $(fake GET "/$mailbox/contacts")"

step "Sync now: ContactSync/$mailbox_sync-contacts and CalendarSync/$mailbox_sync-calendar"
for object in "ContactSync/$mailbox_sync-contacts" "CalendarSync/$mailbox_sync-calendar"; do
  api POST "/api/v1/objects/$object/sync" "$admin_token" >/dev/null
  say kai "POST /api/v1/objects/$object/sync → queued"
done
in_outlook() { fake GET "/$mailbox/contacts" | grep -qF sofia.rossi@adatum.example; }
wait_for "Henrik Dahl's import" found henrik.dahl Henrik
wait_for "Ingrid Berg's import" found ingrid.berg Ingrid
wait_for "Sofia Rossi's export to Outlook" in_outlook
wait_for "the meeting's import" has_activity "Renewal call with Fjord Analytics"
"$SWITCHBOARD_BIN" --state "$work/state.db" status | awk -v a="$mailbox_sync" 'NR == 1 || $1 ~ "^(ContactSync|CalendarSync)/" a' | cut -c1-110 | sed 's/^/  /'

step "What came in, through the operator API"
for who in henrik.dahl ingrid.berg; do
  list="$(api GET "/api/v1/contacts?q=$who" "$admin_token")"
  say kai "GET  /api/v1/contacts?q=$who → $(json name <<<"$list")"
done
activities="$(api GET '/api/v1/activities?limit=100' "$admin_token")"
say kai "GET  /api/v1/activities → $(grep -o '"title":"[^"]*"' <<<"$activities" | sed 's/"title"://' | sort | tr '\n' ' ')"

step "What went out, through the fake Graph (customers are exported)"
say graph "contacts: $(fake GET "/$mailbox/contacts")"

step "The story is complete: $leads leads from $leads LinkedIn lead forms, each notified, fetched, mapped and stored with its contact; Jonas's Google and Ava's Microsoft 365 contacts synced both ways, their calendars' events imported"

if $stay; then
  cat <<EOF

Everything keeps running until Ctrl-C. Try, for instance:
  curl -s -H 'Authorization: Bearer $operator_token' '$sb/api/v1/leads?integration=linkedin-ads'
  curl -s -X POST --data-urlencode form=7123456 --data-urlencode FIRST_NAME=Lea \\
       --data-urlencode EMAIL=lea@example.net $control/linkedin-ads/leads
  curl -N -H 'Authorization: Bearer $operator_token' $sb/api/v1/events
  curl -s $control/$google_account/contacts $control/$mailbox/contacts
  curl -s -X POST -H 'Authorization: Bearer $admin_token' $sb/api/v1/objects/ContactSync/$mailbox_sync-contacts/sync
Logs: $work/switchboard.log, $work/fakes.log
EOF
  wait "${pids[1]}"
fi
