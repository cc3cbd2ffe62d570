#!/usr/bin/env bash
# The anycast lab's overlay set (bench/lab/anycast.sh on configs/lab.yaml,
# control: dynamic): c1's route moves to cluster 2 and back in the middle of
# an HTTP/1.1 keep-alive connection to the affinity group (the connection
# survives, same target); then the JAP serving c1 dies (piasd and BIRD
# killed): its router routes around it (BFD), kill -> declared down at each
# client's IAP and declared down -> first connection answered via the
# other JAP (goal <= 1 s) are measured, lost connections counted. `move`
# runs first: a killed JAP that comes back with targets outranks the old
# anchor for IAPs asking afterwards (control/PROTOCOL.md §13, limits).
# Env as anycast.sh.
here=$(cd "$(dirname "$0")" && pwd)
exec bash "$here/anycast.sh" move jap
