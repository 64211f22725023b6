#!/usr/bin/env bash
# The test command: installs what the test suite needs and is missing, then runs the checks
# every commit passes (rustfmt, clippy, the whole suite).
#
#   tests/run.sh                 # everything
#   tests/run.sh --test mail_imap   # arguments go to `cargo test`
#
# The suite starts real peers on loopback ports: Dovecot (IMAP), aiosmtpd (SMTP) with a
# throwaway CA made by openssl, Radicale (CardDAV/CalDAV), promtool (metrics format, rules),
# systemd-analyze for the unit's exposure, curl for the contact-center demo, headless Chromium
# with chromedriver for the operator console, schemathesis (PyPI, in a cached venv) for the
# OpenAPI contract test. On Debian or Ubuntu the missing ones are installed
# with apt-get (through sudo when not root). Dovecot's test instances run as root; without root
# the mail tests fail with a message that says so. `.ci/run` calls this script.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v promtool >/dev/null 2>&1 || need_pkgs+=(prometheus)          # promtool: metrics, rules
command -v systemd-analyze >/dev/null 2>&1 || need_pkgs+=(systemd)      # unit exposure check
command -v dovecot >/dev/null 2>&1 || need_pkgs+=(dovecot-imapd)        # mail tests: real IMAP
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || need_pkgs+=(python3-aiosmtpd)  # SMTP
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)              # mail tests' own CA
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)                    # the contact-center demo
command -v radicale >/dev/null 2>&1 || need_pkgs+=(radicale)            # DAV tests: real CardDAV
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)                       # console tests: a real browser
[ -x /usr/bin/chromedriver ] || need_pkgs+=(chromium-driver)            # ... driven through WebDriver
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_pkgs+=(python3-venv)  # schemathesis' venv

if [ "${#need_pkgs[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/run.sh: missing ${need_pkgs[*]} (Debian package names); install them and run again" >&2
    exit 1
  fi
  sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "tests/run.sh: installing ${need_pkgs[*]} needs root or sudo" >&2; exit 1; }
    sudo=(sudo)
  fi
  echo "== installing ${need_pkgs[*]}"
  # Install without starting the packages' services (prometheus would start a server).
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod +x "$policy"
    created_policy=1
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  if [ "$created_policy" = 1 ]; then "${sudo[@]}" rm -f "$policy"; fi
fi

# schemathesis (the OpenAPI contract test, tests/openapi_contract.rs) from PyPI, in a venv kept
# across runs and checkouts; remade when tests/schemathesis-requirements.txt changes. When it
# cannot be installed the run goes on and that test fails saying so (it never skips).
st_venv="${SB_SCHEMATHESIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard/schemathesis-venv}"
st_want="$(cat tests/schemathesis-requirements.txt)"
if [ ! -x "$st_venv/bin/st" ] || [ "$(cat "$st_venv/requirements.txt" 2>/dev/null)" != "$st_want" ]; then
  echo "== installing schemathesis into $st_venv"
  rm -rf "$st_venv"
  if /usr/bin/python3 -m venv "$st_venv" \
    && "$st_venv/bin/pip" install --quiet --disable-pip-version-check \
      -r tests/schemathesis-requirements.txt; then
    cp tests/schemathesis-requirements.txt "$st_venv/requirements.txt"
  else
    echo "tests/run.sh: WARNING: schemathesis could not be installed; the openapi_contract test will fail" >&2
  fi
fi
export SB_SCHEMATHESIS="$st_venv/bin/st"

echo "== rustfmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== tests"
cargo test --locked "$@"
