#!/usr/bin/env bash
# Starts the quickstart daemon on http://127.0.0.1:8080 with a fresh state file, removed when
# the daemon stops, so every run starts empty and the README's walkthrough stays true (chat 1
# is the first chat). Stop it with Ctrl-C.
#
#   examples/quickstart/run.sh
#
# Needs nothing but a Rust toolchain. The first run builds a release binary: about 5 minutes on
# two cores, with cargo's progress shown; later runs start at once. Optional environment:
#   SWITCHBOARD_STATE            keep state in this file instead (it is not removed)
#   SWITCHBOARD_QUICKSTART_PORT  listen on this port instead of 8080
#   SWITCHBOARD_BIN              a prebuilt switchboard binary (then nothing is built)
set -euo pipefail
cd "$(dirname "$0")/../.."

port="${SWITCHBOARD_QUICKSTART_PORT:-8080}"
export SWITCHBOARD_DEMO_INBOUND_TOKEN="${SWITCHBOARD_DEMO_INBOUND_TOKEN:-demo-inbound-token}"

# Another daemon (an earlier quickstart, the contact-center demo) on the port is the usual
# reason a start fails: say so before building anything.
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "run.sh: 127.0.0.1:$port is already in use — is a quickstart or demo still running? Stop it (Ctrl-C in its terminal), or set SWITCHBOARD_QUICKSTART_PORT." >&2
  exit 1
fi

if [[ -z "${SWITCHBOARD_BIN:-}" ]]; then
  echo "run.sh: building switchboard (release; the first build takes about 5 minutes)" >&2
  cargo build --release --locked --bin switchboard
  SWITCHBOARD_BIN="${CARGO_TARGET_DIR:-target}/release/switchboard"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-quickstart.XXXXXX")"
daemon=
finish() {
  [[ -n "$daemon" ]] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$work"
}
trap finish EXIT
trap 'exit 130' INT TERM

config=examples/quickstart
if [[ "$port" != 8080 ]]; then
  # The example's files as they are, with the port changed where it is written.
  config="$work/config"
  cp -r examples/quickstart "$config"
  sed -i "s/127\.0\.0\.1:8080/127.0.0.1:$port/g" "$config/settings.yaml"
fi
state="${SWITCHBOARD_STATE:-$work/state.db}"
echo "run.sh: state in $state; serving http://127.0.0.1:$port (Ctrl-C stops)" >&2

"$SWITCHBOARD_BIN" run -c "$config" --state "$state" "$@" &
daemon=$!
wait "$daemon"
