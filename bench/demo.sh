#!/usr/bin/env bash
# README command 1: the demo. Installs what is missing, builds piasd in
# release, runs the labs (bench/lab/foundation.sh: one proxy answering ARP,
# ping and TCP via its kernel tap; bench/lab/pias-path.sh: a client
# reaching a server through three proxies on the PIAS path;
# bench/lab/anycast-failover.sh: the anycast lab of configs/lab.yaml, curl
# and dig through the anycast address from two regions, then an IAP proxy
# killed and the failover time measured) and tears them down, also on
# failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release -q -p piasd
bash bench/lab/foundation.sh
bash bench/lab/pias-path.sh
FAILOVER_RUNS=${FAILOVER_RUNS:-1} exec bash bench/lab/anycast-failover.sh
