#!/usr/bin/env bash
# README command 2, and what CI runs (.ci/run): every test of the project.
# Installs what is missing, then runs the workspace tests (unit, property,
# golden, EAL subprocess and namespace lab tests), clippy, and a short
# bounded run of every fuzz target.
#
# PIAS_REQUIRE_LAB=1 makes a lab test that cannot run (not root, no netns)
# fail instead of skip: CI must never pass by skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
bash bench/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
export PIAS_REQUIRE_LAB=1
export RUST_BACKTRACE=1

echo "== cargo test --workspace"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
read -r passed failed < <(awk '/^test result:/ { for (i = 2; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } } END { print p + 0, f + 0 }' "$log")
if [ "$rc" != 0 ]; then
  echo "summary: $passed passed, $failed failed"
  exit "$rc"
fi

echo "== cargo clippy"
cargo clippy --workspace --all-targets -q -- -D warnings

echo "== fuzz smoke (bounded)"
bash bench/fuzz-smoke.sh "${PIAS_FUZZ_SECONDS:-10}"

echo "== all tests passed in $((SECONDS - start))s"
echo "summary: $passed passed, $failed failed"
