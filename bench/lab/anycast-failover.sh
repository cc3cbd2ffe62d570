#!/usr/bin/env bash
# The anycast lab's IAP failover set (bench/lab/anycast.sh on
# configs/lab.yaml): client c1's IAP dies (its piasd and BIRD are killed);
# BFD moves c1 to the other proxy of its cluster: by default (the
# topology's fast_reroute) r1's BFD-tracked static route drops the dead
# next hop on BFD's verdict; with LAB_FAST_REROUTE=0 OSPF does, on its next
# 1 s tick. The time from the kill to the first answered HTTP and DNS
# probe, and to r1's route change, is measured FAILOVER_RUNS times (the
# proxy rejoins between runs). Env as anycast.sh.
here=$(cd "$(dirname "$0")" && pwd)
exec bash "$here/anycast.sh" basic failover
