#!/usr/bin/env bash
# README command 1: the demo. Installs what is missing, builds piasd in
# release, runs the labs (bench/lab/foundation.sh: one proxy answering ARP,
# ping and TCP via its kernel tap; bench/lab/pias-path.sh: a client
# reaching a server through three proxies on the PIAS path) and tears
# them down, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release -q -p piasd
bash bench/lab/foundation.sh
exec bash bench/lab/pias-path.sh
