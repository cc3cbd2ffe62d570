#!/usr/bin/env bash
# The PIAS packet path end to end with real hosts: three piasd proxies
# (A = IAP 192.0.2.10, B = RAP 192.0.2.11, C = JAP 192.0.2.12) on a LAN
# behind a Linux router (192.0.2.1 / 203.0.113.1) that routes the anycast
# prefix 198.51.100.0/24 to A (what the IGP would do); a client
# 203.0.113.100 and an HTTP server (the target, 203.0.113.5:8080) on the
# router's other side. The group 198.51.100.10:80/tcp has RAP B and JAP C,
# given statically (the control plane fills the same tables at run time).
#
# Checks: a client's TCP connection to AA:80 is answered by the target with
# the anycast address as source (curl-like fetch with bash /dev/tcp);
# counters prove the first path IAP→RAP→JAP (segments 2, 3, 4, 6) and,
# with A's cache pinned to C, IAP→JAP direct (segment 7); SIGTERM ends
# every piasd with exit 0 and a full mempool.
#
# Env: PIASD, PIASCTL, LAB_PREFIX (default pias-p), WORKERS (default 1;
# with 2, each af_packet port has two queue pairs spread by the kernel's
# flow hash, so flows land on workers that do not own them and are handed
# over; the check then also wants handoffs counted at the JAP).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
LAB_PREFIX=${LAB_PREFIX:-pias-p}
. "$here/common.sh"
PIASD=${PIASD:-$top/target/release/piasd}
PIASCTL=${PIASCTL:-$top/target/release/piasctl}

lab_require_root
for c in "ip iproute2" "ethtool ethtool" "python3 python3"; do need $c; done
[ -x "$PIASD" ] || die "piasd not built at $PIASD"

lab_work

say "lab: router, client, target, proxies A (IAP) B (RAP) C (JAP)"
lab_router
# The router hands finished checksums to the DPDK ports (lab_proxy_host).
for p in a b c; do lab_proxy_host $p; done
lab_edge_host cl cl0 203.0.113.100
lab_edge_host tg tg0 203.0.113.5
# The IGP's choice of IAP for this client: A.
ip -n $RT route add 198.51.100.0/24 via 192.0.2.10

echo "hello from the target behind the anycast group" > "$work/index.html"
ip netns exec ${LAB_PREFIX}-tg python3 -m http.server --bind 203.0.113.5 8080 --directory "$work" >/dev/null 2>&1 &
LAB_PIDS+=("$!")

WORKERS=${WORKERS:-1}
conf() { # conf NAME ID ADDR EXTRA-GROUP-LINES
  local peers; peers=$(printf '%s\n' 192.0.2.10 192.0.2.11 192.0.2.12 | grep -vx "$3" | paste -sd, -)
  local lcores="0@0" w
  for ((w = 1; w <= WORKERS; w++)); do lcores="$lcores,$w@$(( ($2 + w) % $(nproc) ))"; done
  cat <<YAML
eal: { lcores: "$lcores", memory_mb: 256, no_huge: true, file_prefix: ${LAB_PREFIX}-$1-$$, vdevs: ["net_af_packet0,iface=px0,qpairs=$WORKERS"] }
workers: $WORKERS
idle_sleep_us: 50
ports: [ { device: net_af_packet0, address: $3/24, gateway: 192.0.2.1, neighbours: [$peers] } ]
anycast: { prefixes: [198.51.100.0/24] }
control_socket: $work/piasd-$1.sock
pias:
  me: $2
  proxies:
    - { id: 1, address: 192.0.2.10, cluster: 1 }
    - { id: 2, address: 192.0.2.11, cluster: 1 }
    - { id: 3, address: 192.0.2.12, cluster: 2 }
  rtt: [ { a: 1, b: 2, rtt_us: 5000 } ]
  groups:
    - group: "198.51.100.10:80/tcp"
      raps: [2]
$4
YAML
}
start() { # start NAME ID ADDR EXTRA
  conf "$1" "$2" "$3" "$4" > "$work/$1.yaml"
  ip netns exec ${LAB_PREFIX}-$1 "$PIASD" --config "$work/$1.yaml" >"$work/$1.log" 2>&1 &
  eval "pid_$1=$!"; LAB_PIDS+=("$!")
}
ctl() { "$PIASCTL" --socket "$work/piasd-$1.sock" "${@:2}"; }
# Counters summed over the workers: w["path"][k] and w["handoff_out"].
jget() { ctl "$1" status --json | python3 -c "
import json, sys
d = json.load(sys.stdin)
w = {'path': {}, 'handoff_out': 0, 'handoff_in': 0}
for x in d['workers']:
    for k, v in x['path'].items(): w['path'][k] = w['path'].get(k, 0) + v
    w['handoff_out'] += x['handoff_out']; w['handoff_in'] += x['handoff_in']
sys.exit(0 if ($2) else 1)"; }

start_all() { # A's extra group lines decide the cache pin
  start a 1 192.0.2.10 "$1"
  start b 2 192.0.2.11 "      japs: [ { proxy: 3, targets: 1 } ]"
  start c 3 192.0.2.12 "      targets: [ { address: \"203.0.113.5:8080\" } ]"
  for p in a b c; do
    wait_for 30 "piasd $p up" ctl $p status || { cat "$work/$p.log"; exit 1; }
  done
  # Everyone resolved the router and its peers (or the first packets
  # would be dropped as no_neighbour).
  for p in a b c; do
    wait_for 15 "piasd $p resolved its neighbours" sh -c "'$PIASCTL' --socket '$work/piasd-$p.sock' status --json | python3 -c 'import json,sys; sys.exit(0 if len(json.load(sys.stdin)[\"neighbours\"]) >= 3 else 1)'"
  done
}
fetch() {
  in_ns cl timeout 10 bash -c 'exec 3<>/dev/tcp/198.51.100.10/80; printf "GET /index.html HTTP/1.0\r\nHost: anycast\r\n\r\n" >&3; cat <&3' 2>&1
}
stop_all() {
  for p in a b c; do
    eval "pid=\$pid_$p"
    kill -TERM "$pid"; rc=0; wait "$pid" || rc=$?
    [ "$rc" = 0 ] || { fail "piasd $p exited $rc"; tail -5 "$work/$p.log"; }
    grep -q "mempool: 0 of" "$work/$p.log" || fail "piasd $p: mempool not full at exit"
  done
}

say "1. no cache at the IAP: every packet goes client → A → B → C → target (segments 1-4) and back C → client (5-6)"
start_all ""
out=$(fetch); echo "$out" | head -1; echo "$out" | tail -1
echo "$out" | grep -q "^HTTP/1.0 200" || fail "fetch through the RAP: no HTTP 200"
echo "$out" | grep -q "hello from the target" || fail "fetch through the RAP: wrong body"
wait_for 5 "A tunnelled to the RAP" jget a 'w["path"]["iap_to_rap"] >= 3'
wait_for 5 "B forwarded to the JAP" jget b 'w["path"]["rap_forwarded"] >= 3'
wait_for 5 "C NATed a new flow" jget c 'w["path"]["jap_new_flows"] >= 1 and w["path"]["jap_forwarded"] >= 3'
wait_for 5 "C reverse-NATed the answers" jget c 'w["path"]["reverse"] >= 3'
wait_for 5 "A reported the misses" sh -c "'$PIASCTL' --socket '$work/piasd-a.sock' status --json | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)[\"control\"][\"iap_misses\"] >= 1 else 1)'"
ctl c status | sed -n '/iap-cache/,/^$/p'
stop_all

say "2. A's cache names C: later connections go A → C directly (segment 7)"
start_all "      cache: [3]"
n=3; [ "$WORKERS" -gt 1 ] && n=12
for i in $(seq $n); do
  out=$(fetch); echo "$out" | grep -q "hello from the target" || fail "cached fetch $i failed"
done
echo "$n fetches answered"
wait_for 5 "A sent straight to the JAP" jget a "w['path']['iap_cached'] >= 3 * $n and w['path']['iap_to_rap'] == 0"
wait_for 5 "B saw nothing" jget b 'w["path"]["rap_forwarded"] == 0'
wait_for 5 "C NATed $n flows" jget c "w['path']['jap_new_flows'] >= $n"
if [ "$WORKERS" -gt 1 ]; then
  # With several flows over two queues, some land on the worker that does
  # not own them: they must be handed over, and still all be answered.
  wait_for 5 "C handed flows to their owning worker" jget c 'w["handoff_out"] >= 1 and w["handoff_in"] == w["handoff_out"]'
  ctl c status --json | python3 -c "import json,sys; d=json.load(sys.stdin); print('C per worker: ' + ', '.join('w%d rx %d handoff-out %d nat-flows %d' % (w['index'], sum(w['rx']), w['handoff_out'], w['nat_flows']) for w in d['workers']))"
fi
ctl a status | sed -n '/iap-cache/,/^$/p'
stop_all

if [ "$LAB_FAILED" = 0 ]; then say "pias path lab: all checks passed"; else say "pias path lab: FAILED"; exit 1; fi
