#!/usr/bin/env bash
# The anycast lab's control-plane set (bench/lab/anycast.sh on
# configs/lab.yaml, control: dynamic): the web target dies (time until new
# connections from both regions reach web2, goal <= 3 s), web2 leaves under
# a loop of connections (none fails), a wrong-key join and a forged proxy
# message are refused and counted. Env as anycast.sh.
here=$(cd "$(dirname "$0")" && pwd)
exec bash "$here/anycast.sh" control
