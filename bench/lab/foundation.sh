#!/usr/bin/env bash
# The foundation lab (README demo, and a lab test): piasd on an af_packet
# port in one namespace, a client in another. Pings and arpings the proxy's
# unicast and anycast addresses, opens a TCP connection to a listener on the
# proxy host's kernel (exception path), shows piasctl's status, then stops
# piasd with SIGTERM and checks it exits 0 with every mbuf back in the pool.
#
# Env: PIASD, PIASCTL (binaries; default target/release), LAB_PREFIX
# (namespace prefix; default pias-f), WORKERS (default 1: with more, the
# af_packet port gets one queue pair per worker, spread by the kernel's
# flow hash, and pings from 16 client addresses must reach every worker).
# Exit status 0 only if every check held.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
LAB_PREFIX=${LAB_PREFIX:-pias-f}
. "$here/common.sh"

PIASD=${PIASD:-$top/target/release/piasd}
PIASCTL=${PIASCTL:-$top/target/release/piasctl}

lab_require_root
for c in "ip iproute2" "ping iputils-ping" "arping iputils-arping" "ethtool ethtool" "python3 python3"; do
  need $c
done
[ -x "$PIASD" ] || die "piasd not built at $PIASD"
[ -x "$PIASCTL" ] || die "piasctl not built at $PIASCTL"

work=$(mktemp -d /tmp/${LAB_PREFIX}.XXXXXX)
cleanup() { lab_teardown; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
lab_clean_stale

CL=192.0.2.2 GW=192.0.2.1 PX=192.0.2.10 AA=198.51.100.10
sock=$work/piasd.sock
say "lab: namespaces ${LAB_PREFIX}-cl (client $CL) and ${LAB_PREFIX}-px (piasd $PX, anycast 198.51.100.0/24)"
lab_ns cl >/dev/null; lab_ns px >/dev/null
lab_veth cl cl0 px px0
in_ns cl ip addr add $CL/24 dev cl0
in_ns cl ip addr add $GW/24 dev cl0          # the proxy's gateway lives here too
in_ns cl ip route add 198.51.100.0/24 via $PX
lab_no_offload cl cl0
lab_dpdk_port px px0

WORKERS=${WORKERS:-1}
lcores="0@0"; for ((w = 1; w <= WORKERS; w++)); do lcores="$lcores,$w@$((w % $(nproc)))"; done
sed -e "s|file_prefix: .*|file_prefix: ${LAB_PREFIX}-$$|" \
    -e "s|lcores: .*|lcores: \"$lcores\"|" \
    -e "s|workers: .*|workers: $WORKERS|" \
    -e "s|iface=px0\"|iface=px0,qpairs=$WORKERS\"|" \
    -e "s|control_socket: .*|control_socket: $sock|" \
    "$top/configs/demo.yaml" > "$work/piasd.yaml"

say "start piasd"
ip netns exec "${LAB_PREFIX}-px" "$PIASD" --config "$work/piasd.yaml" >"$work/piasd.log" 2>&1 &
piasd_pid=$!
LAB_PIDS+=("$piasd_pid")
ctl() { "$PIASCTL" --socket "$sock" "$@"; }
if ! wait_for 30 "piasd control socket" ctl status; then
  cat "$work/piasd.log"; exit 1
fi
wait_for 10 "gateway $GW resolved by ARP" sh -c "'$PIASCTL' --socket '$sock' status --json | grep -q '\"ip\": \"$GW\"'"

check_ping() {
  local out; out=$(in_ns cl ping -c 3 -i 0.2 -W 2 "$1" 2>&1)
  echo "$out" | tail -2
  echo "$out" | grep -q " 3 received" || fail "ping $1: not all 3 answered"
}
say "ping the unicast address $PX and the anycast address $AA"
check_ping $PX
check_ping $AA

mac=$(ctl status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["ports"][0]["mac"])')
check_arping() {
  local out; out=$(in_ns cl arping -c 2 -w 5 -I cl0 "$1" 2>&1)
  echo "$out" | grep -i "reply\|from" | head -2
  echo "$out" | grep -qi "$mac" || fail "arping $1: no reply from piasd's MAC $mac"
}
say "arping $PX and $AA (answers must come from the port's MAC $mac)"
check_arping $PX
check_arping $AA

say "TCP to $PX:8080: a listener on the proxy host's kernel, through the exception tap"
ip netns exec "${LAB_PREFIX}-px" python3 -m http.server --bind $PX 8080 --directory "$work" >/dev/null 2>&1 &
LAB_PIDS+=("$!")
wait_for 10 "listener on $PX:8080" ip netns exec "${LAB_PREFIX}-px" python3 -c "import socket; socket.create_connection(('$PX', 8080), 1)"
line=$(in_ns cl timeout 10 bash -c "exec 3<>/dev/tcp/$PX/8080; printf 'GET /piasd.yaml HTTP/1.0\r\n\r\n' >&3; head -1 <&3" 2>&1)
echo "$line"
echo "$line" | grep -q "200" || fail "TCP through the exception path: got '$line'"

if [ "$WORKERS" -gt 1 ]; then
  say "$WORKERS workers: pings from 16 client addresses spread over the queues"
  for i in $(seq 100 115); do in_ns cl ip addr add 192.0.2.$i/24 dev cl0; done
  for i in $(seq 100 115); do in_ns cl ping -c 1 -W 2 -I 192.0.2.$i $PX >/dev/null || fail "ping from 192.0.2.$i"; done
  wait_for 5 "every worker received packets" sh -c "'$PIASCTL' --socket '$sock' status --json | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if all(sum(w[\"rx\"]) > 0 and w[\"echo_replied\"] > 0 for w in d[\"workers\"]) else 1)'"
fi

say "piasctl stats --watch (2 lines)"
ctl stats --watch --count 2 || fail "piasctl stats --watch"

say "piasctl status"
ctl status
# Counters are published once a second: wait for them rather than race.
jget() { ctl status --json | python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if ($1) else 1)"; }
wait_for 5 "6 echo replies counted" jget 'sum(w["echo_replied"] for w in d["workers"]) >= 6'
wait_for 5 "4 ARP replies counted" jget 'd["control"]["arp_replied"] >= 4'
wait_for 5 "packets written to the kernel tap" jget 'd["control"]["to_kernel"] > 0'
wait_for 5 "packets from the kernel tap sent out" jget 'd["control"]["from_kernel"] > 0'

say "Prometheus metrics on 127.0.0.1:9464 in the proxy's namespace"
metrics=$(ip netns exec "${LAB_PREFIX}-px" python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9464/metrics', timeout=5).read().decode())" 2>&1)
echo "$metrics" | grep -E '^pias_(worker_echo_replied_total|drops_total|port_rx_packets_total)' | head -5
echo "$metrics" | grep -q '^pias_worker_echo_replied_total{worker="0"} [1-9]' || fail "metrics: no echo replies exported"
echo "$metrics" | grep -q '^pias_port_rx_packets_total{port="net_af_packet0"} [1-9]' || fail "metrics: no port counters exported"

say "SIGTERM: piasd must exit 0 with every mbuf back in the pool"
kill -TERM "$piasd_pid"
rc=0; wait "$piasd_pid" || rc=$?
tail -4 "$work/piasd.log"
[ "$rc" = 0 ] || fail "piasd exited $rc"
grep -q "mempool: 0 of" "$work/piasd.log" || fail "mempool not full at exit"

if [ "$LAB_FAILED" = 0 ]; then say "foundation lab: all checks passed"; else say "foundation lab: FAILED"; exit 1; fi
