#!/usr/bin/env bash
# The anycast lab's traffic set (bench/lab/anycast.sh on configs/lab.yaml):
# curl, dig, a 4 MB download and iperf3 through the anycast address from
# both regions, answered by the targets; then a bounded mixed load (curl,
# dig, iperf3 TCP and UDP loops): nothing lost, no BFD session flaps, and
# every piasd exits 0 with a full mempool. Env as anycast.sh.
here=$(cd "$(dirname "$0")" && pwd)
exec bash "$here/anycast.sh" basic load
