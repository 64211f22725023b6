#!/usr/bin/env bash
# Starts the quickstart daemon on 127.0.0.1:8080 with a throwaway state file.
# Needs nothing but a Rust toolchain; stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/../.."
export SWITCHBOARD_DEMO_INBOUND_TOKEN="${SWITCHBOARD_DEMO_INBOUND_TOKEN:-demo-inbound-token}"
state="${SWITCHBOARD_STATE:-${TMPDIR:-/tmp}/switchboard-quickstart.db}"
exec cargo run --release --quiet -- run -c examples/quickstart --state "$state" "$@"
