#!/usr/bin/env bash
# README command 1: the demo. Installs what is missing, builds piasd,
# piasctl and pias-target in release, then runs, and tears down even on
# failure or Ctrl-C:
#  1. the anycast lab of configs/lab.yaml (bench/lab/anycast.sh): BIRD OSPF
#     and BFD routers, two clusters of two piasd proxies running the PIAS
#     control plane, nginx, unbound and iperf3 targets that join their
#     groups with pias-target; curl and dig through the anycast address
#     from two regions, which proxy was IAP, RAP and JAP (piasctl); a
#     target dies (time until new connections reach the other), a target
#     leaves under load, forged join and proxy message refused; a client's
#     route moved to the other cluster and back mid-connection (the
#     keep-alive connection survives on its target); the JAP serving that
#     client killed (kill -> declared down, declared down -> answered via
#     the other JAP, connections lost); then an IAP proxy killed and the
#     failover time measured (fast reroute: BFD-tracked static routes on
#     the cluster routers, the topology's default); one results table;
#  2. bench/lab/pias-failover.sh: connection affinity across a route change,
#     a target dying, a target leaving, a JAP proxy dying, each measured;
#  3. bench/lab/pias-control.sh: a target's join, a wrong-key join and a
#     forged proxy message rejected, the cache invalidated after a leave.
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release -q -p piasd -p pias-control --bin piasd --bin piasctl --bin pias-target
start=$SECONDS
FAILOVER_RUNS=${FAILOVER_RUNS:-1} bash bench/lab/anycast.sh basic control move jap failover
bash bench/lab/pias-failover.sh
bash bench/lab/pias-control.sh
echo "demo: every lab passed in $((SECONDS - start)) s after the build"
