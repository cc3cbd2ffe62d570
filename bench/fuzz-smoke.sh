#!/usr/bin/env bash
# Runs every cargo-fuzz target of the project for a bounded time (default
# 10 s each), seeded from its corpus directory when one exists. Any crash
# fails the run; the crashing input stays under */fuzz/artifacts/ so it can
# become a regression test. Needs cargo-fuzz (installed here if missing) and
# RUSTC_BOOTSTRAP=1 for the sanitizer flags on a stable toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked -q
export RUSTC_BOOTSTRAP=1
n=0
for dir in dataplane control; do
  [ -d "$dir/fuzz" ] || continue
  # Seeds: the literal packets/messages of the unit tests, where a crate has them.
  [ -f "$dir/fuzz/seed.sh" ] && sh "$dir/fuzz/seed.sh" >/dev/null 2>&1
  ( cd "$dir" && cargo fuzz build -O -a -s address >/dev/null 2>&1 ) || { echo "fuzz: build of $dir/fuzz failed"; ( cd "$dir" && cargo fuzz build -O -a ); exit 1; }
  for t in $(cd "$dir" && cargo fuzz list); do
    mkdir -p "$dir/fuzz/corpus/$t"
    echo "fuzz $dir/$t for ${secs}s"
    ( cd "$dir" && cargo fuzz run -O -a "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 2>&1 | grep -E "^(Done|#[0-9]+.*DONE)|ERROR|panicked|SUMMARY" || true
      test "${PIPESTATUS[0]}" = 0 ) || { echo "fuzz: $dir/$t FAILED"; exit 1; }
    n=$((n + 1))
  done
done
echo "fuzz: $n target(s) ran ${secs}s each without a crash"
