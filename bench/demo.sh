#!/usr/bin/env bash
# README command 1: the demo. Installs what is missing, builds piasd in
# release, runs the lab (bench/lab/foundation.sh) and tears it down, also
# on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release -q -p piasd
exec bash bench/lab/foundation.sh
