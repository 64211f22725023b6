#!/usr/bin/env bash
# Makes tests/data/state-v8.db: a state file written by the release before the record store
# (schema version 8, main at 236f572), for tests/records_migration.rs.
#
# Usage: SWITCHBOARD_BIN=/path/to/that/release/switchboard tests/data/make_state_v8.sh
# Everything in it was written by that binary through its own API: five chat contacts on two
# `api` channels (e-mails and phones that overlap each other and the mail contacts, in other
# letter cases and phone formats) and two sent letters whose recipients became mail contacts
# (the mailbox's server is unreachable, so the letters stay queued; the links are stored).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${SWITCHBOARD_BIN:?set SWITCHBOARD_BIN to the binary of the previous release}"
WORK="$(mktemp -d)"; PID=""
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null; [[ -n "${KEEP:-}" ]] || rm -rf "$WORK"; }
trap cleanup EXIT
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
mkdir -p "$WORK/config"
TOKEN_SHA="$(printf %s ann-token | sha256sum | cut -d" " -f1)"
printf %s inbound > "$WORK/config/inbound.txt"
printf %s secret > "$WORK/config/password.txt"
cat > "$WORK/config/all.yaml" <<YAML
apiVersion: switchboard/v1
kind: Settings
metadata: {name: default}
spec: {siteUrl: 'http://127.0.0.1:$PORT', listen: '127.0.0.1:$PORT'}
---
apiVersion: switchboard/v1
kind: User
metadata: {name: ann}
spec: {displayName: Ann, email: ann@corp.test, operations: [CanManageChats], apiTokenSha256: [$TOKEN_SHA]}
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
---
apiVersion: switchboard/v1
kind: ChatChannel
metadata: {name: app}
spec: {provider: api, title: App, queue: support, language: en, inboundToken: {file: inbound.txt}}
---
apiVersion: switchboard/v1
kind: MailProvider
metadata: {name: corp}
spec:
  type: imap
  title: Corp
  domains: [corp.test]
  imap: {host: 127.0.0.1, port: 9, security: none}
  smtp: {host: 127.0.0.1, port: 9, security: none}
---
apiVersion: switchboard/v1
kind: Mailbox
metadata: {name: ann}
spec: {address: ann@corp.test, owner: ann, password: {file: password.txt}}
YAML
"$BIN" --config "$WORK/config" --state "$WORK/state.db" run > "$WORK/daemon.log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
chat() { curl -sf -H 'Authorization: Bearer inbound' -H 'content-type: application/json' \
    -d "$2" "http://127.0.0.1:$PORT/webhooks/api/$1" >/dev/null; }
mail() { curl -sf -H 'Authorization: Bearer ann-token' -H 'content-type: application/json' \
    -d "$1" "http://127.0.0.1:$PORT/api/v1/emails" >/dev/null; }
mail '{"mailbox":"ann","to":["bob@example.org","erin@example.net"],"subject":"Offer","text":"hi"}'
chat web '{"messageId":"1","from":{"id":"w1","name":"Bob Web","email":"BOB@example.org"},"text":"hi"}'
chat app '{"messageId":"2","from":{"id":"a1","name":"Bobby","email":"bob@example.org"},"text":"hi"}'
chat web '{"messageId":"3","from":{"id":"w2","name":"Carol","phone":"+1 (415) 555-0100"},"text":"hi"}'
chat app '{"messageId":"4","from":{"id":"a2","name":"Carol C","phone":"+14155550100"},"text":"hi"}'
chat web '{"messageId":"5","from":{"id":"w3","name":"Dave"},"text":"hi"}'
mail '{"mailbox":"ann","to":["carol@example.com"],"cc":["bob@example.org"],"subject":"Follow-up","text":"hi"}'
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
sqlite3 "$WORK/state.db" 'PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;' >/dev/null
cp "$WORK/state.db" "$ROOT/tests/data/state-v8.db"
sqlite3 "$ROOT/tests/data/state-v8.db" 'PRAGMA user_version; SELECT * FROM contacts; SELECT * FROM chat_contacts; SELECT * FROM email_contacts; SELECT id, contact_id FROM chats;'
