#!/usr/bin/env bash
# Fuzzes every parser that takes outside input with AFL++ on the stable toolchain (cargo-afl
# instruments through LLVM's sanitizer-coverage passes, which stable rustc has; cargo-fuzz
# needs nightly, which cannot be installed here). Each target runs for SECONDS (default 60).
#
#   fuzz/run.sh                 # every target, 60 s each
#   fuzz/run.sh 600 manifest    # one target, 10 minutes
#
# Prints per target: executions, crashes and hangs (an input running over 1 s). Findings are
# kept under fuzz/out/TARGET/default/{crashes,hangs}; each one becomes a regression test in the
# normal suite. Needs a C compiler and make (AFL++ is built from the cargo-afl crate once).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"; shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(manifest mime webhooks values dav)

command -v cargo-afl >/dev/null 2>&1 || cargo install cargo-afl --locked
cargo afl config --build >/dev/null 2>&1 || true   # "already built" is fine
cargo afl build --release --locked

# Seeds: the committed ones, plus every manifest the repository ships or tests with.
mkdir -p seeds/manifest
find ../examples ../config.d -name '*.yaml' -exec cp {} seeds/manifest/ \;

export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
mkdir -p out
total=0
for t in "${targets[@]}"; do
  rm -rf "out/$t"
  cargo afl fuzz -i "seeds/$t" -o "out/$t" -t 1000 -V "$seconds" "target/release/$t" >"out-$t.log" 2>&1 || {
    echo "$t: afl-fuzz failed; see fuzz/out-$t.log" >&2; tail -n 20 "out-$t.log" >&2; exit 1; }
  stats="out/$t/default/fuzzer_stats"
  execs=$(awk -F' *: *' '$1 == "execs_done" { print $2 }' "$stats")
  crashes=$(awk -F' *: *' '$1 == "saved_crashes" { print $2 }' "$stats")
  hangs=$(awk -F' *: *' '$1 == "saved_hangs" { print $2 }' "$stats")
  printf '%-10s %12s executions  %s crashes  %s hangs  (%s s)\n' "$t" "$execs" "$crashes" "$hangs" "$seconds"
  total=$((total + execs))
done
echo "all targets: $total executions"
