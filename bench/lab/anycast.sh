#!/usr/bin/env bash
# The anycast lab (issue 6, first stage): the topology of configs/lab.yaml
# built in network namespaces: two client regions behind BIRD 2 routers
# (OSPF with ECMP, BFD), two proxy clusters of two piasd each (DPDK
# af_packet ports on the LAN veths; BIRD over each piasd's exception tap
# announces the anycast prefix, so OSPF picks the IAP), and three targets
# (nginx, unbound, iperf3). The proxies' `pias:` tables are static,
# written from the topology's groups (the control-plane stage swaps them
# for joins by pias-target).
#
#   bench/lab/anycast.sh [SCENARIO...]     (default: basic load failover)
#
# Scenarios:
#   basic     curl and dig through the anycast address from both regions,
#             answered by the targets; iperf3 through the whole-IP group;
#             counters show which proxy was IAP, RAP and JAP.
#   load      a bounded mixed load (curl, dig and iperf3 TCP+UDP loops
#             from both clients, LOAD_SECONDS each, counts capped): every
#             request answered, no UDP datagram lost.
#   failover  the IAP of client c1 dies (piasd and BIRD killed): OSPF with
#             BFD moves c1 to the cluster's other proxy; the time from the
#             kill to the first answered probe is measured (goal <= 1 s).
# Always, at the end: every surviving piasd gets SIGTERM and must exit 0
# with every mbuf back in its pool.
#
# Env: PIASD, PIASCTL; LAB_PREFIX (default pias-a; namespaces are
# LAB_PREFIX-<host>); LAB_TOPO (default configs/lab.yaml); LOAD_SECONDS
# (default 20); LAB_VIRTIO_PROXY=<proxy>: that proxy's port is a
# net_virtio_user device attached to a vhost-user socket served by
# dpdk-testpmd (net_vhost <-> net_af_packet on the LAN veth, io forwarding);
# FAILOVER_GOAL_MS (default 1000; above it the scenario fails).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
LAB_PREFIX=${LAB_PREFIX:-pias-a}
. "$here/common.sh"
PIASD=${PIASD:-$top/target/release/piasd}
PIASCTL=${PIASCTL:-$top/target/release/piasctl}
LAB_TOPO=${LAB_TOPO:-$top/configs/lab.yaml}
LOAD_SECONDS=${LOAD_SECONDS:-20}
FAILOVER_GOAL_MS=${FAILOVER_GOAL_MS:-1000}
LAB_VIRTIO_PROXY=${LAB_VIRTIO_PROXY:-}
PY=/usr/bin/python3
scenarios=("$@"); [ ${#scenarios[@]} -gt 0 ] || scenarios=(basic load failover)
for s in "${scenarios[@]}"; do
  case $s in basic|load|failover) ;; *) die "unknown scenario '$s' (basic, load, failover)";; esac
done

# ---- prerequisites -------------------------------------------------------
lab_require_root
for c in "ip iproute2" "ethtool ethtool" "tc iproute2" "bird bird2" "birdc bird2" "nginx nginx-light" \
         "unbound unbound" "iperf3 iperf3" "dig dnsutils" "curl curl"; do need $c; done
[ -x $PY ] || die "missing $PY (Debian package 'python3')"
$PY -c 'import yaml' 2>/dev/null || die "missing python3-yaml for $PY; install it with: apt-get install -y python3-yaml"
[ -x "$PIASD" ] || die "piasd not built at $PIASD (cargo build --release -p piasd)"
[ -x "$PIASCTL" ] || die "piasctl not built at $PIASCTL (cargo build --release -p piasd)"
[ -z "$LAB_VIRTIO_PROXY" ] || need dpdk-testpmd dpdk-dev

# ---- lifecycle -------------------------------------------------------------
work=$(mktemp -d /tmp/${LAB_PREFIX}.XXXXXX)
declare -A PID          # piasd pid per proxy
declare -A KILLED       # proxies killed on purpose
RESULTS=()              # "name|value|goal|verdict" rows of the final table
row() { RESULTS+=("$1|$2|$3|$4"); }
cleanup() {
  local rc=$?
  lab_teardown
  rm -rf /var/run/dpdk/${LAB_PREFIX}-* 2>/dev/null
  if [ "$rc" != 0 ] && [ -z "${LAB_KEEP_WORK:-}" ]; then
    echo "lab: logs were in $work (set LAB_KEEP_WORK=1 to keep them)"
  fi
  [ -n "${LAB_KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
lab_clean_stale

# step HOST CMD...: run a command in a lab host; a failure names both.
step() {
  local h=$1; shift
  in_ns "$h" "$@" || { fail "host $h: command failed: $*"; return 1; }
}
ctl() { "$PIASCTL" --socket "$work/$1.sock" "${@:2}"; }
# path counters of one proxy, summed over workers, as "k=v k=v".
counters() {
  ctl "$1" status --json 2>/dev/null | $PY -c '
import json, sys
d = json.load(sys.stdin); w = {}
for x in d["workers"]:
    for k, v in x["path"].items(): w[k] = w.get(k, 0) + v
print(" ".join("%s=%d" % (k, w.get(k, 0)) for k in ("iap_cached", "iap_to_rap", "rap_forwarded", "jap_new_flows", "jap_forwarded", "reverse")))'
}
counter() { counters "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# ---- build -----------------------------------------------------------------
say "topology $(basename "$LAB_TOPO") -> namespaces ${LAB_PREFIX}-*"
netem=1
ip netns add ${LAB_PREFIX}-probe 2>/dev/null; LAB_NETNS+=(${LAB_PREFIX}-probe)
ip -n ${LAB_PREFIX}-probe link add nq0 type veth peer name nq1
if ! ip netns exec ${LAB_PREFIX}-probe tc qdisc add dev nq0 root netem delay 1ms 2>/dev/null; then
  netem=0
  echo "note: this kernel has no netem qdisc (sch_netem): link latencies are not applied; OSPF costs alone make clusters near/far"
fi
ip netns del ${LAB_PREFIX}-probe
opts=(); [ $netem = 1 ] || opts+=(--no-netem)
[ -z "$LAB_VIRTIO_PROXY" ] || opts+=(--virtio "$LAB_VIRTIO_PROXY")
$PY "$here/labtopo.py" "$LAB_TOPO" "$work" "$LAB_PREFIX" "${opts[@]}" || die "cannot render $LAB_TOPO"
. "$work/lab.env"
for h in $LAB_ROUTERS $LAB_CLIENTS $LAB_PROXIES $LAB_TARGETS; do LAB_NETNS+=("${LAB_PREFIX}-$h"); done
bash "$work/setup.sh" || die "building the topology failed (see the host and command above)"

say "targets: nginx, unbound, iperf3"
for t in $LAB_TARGETS; do
  eval "svc=\$SERVICE_$t; ip=\$IP_$t"
  case $svc in
    nginx)
      mkdir -p "$work/$t.nginx-tmp"; head -c 4000000 /dev/urandom > "$work/blob"
      ip netns exec "${LAB_PREFIX}-$t" nginx -c "$work/$t.nginx.conf" -p "$work" >"$work/$t.out" 2>&1 &
      LAB_PIDS+=($!)
      wait_for 10 "nginx on $t" in_ns "$t" bash -c "exec 3<>/dev/tcp/$ip/80" || exit 1 ;;
    unbound)
      ip netns exec "${LAB_PREFIX}-$t" unbound -d -c "$work/$t.unbound.conf" >"$work/$t.out" 2>&1 &
      LAB_PIDS+=($!)
      wait_for 10 "unbound on $t" in_ns "$t" dig +tries=1 +timeout=1 @"$ip" www.lab A || { cat "$work/$t.unbound.log"; exit 1; } ;;
    iperf3)
      ip netns exec "${LAB_PREFIX}-$t" iperf3 -s -B "$ip" --logfile "$work/$t.iperf3.log" &
      LAB_PIDS+=($!) ;;
  esac
done

say "routers: BIRD 2, OSPF + BFD"
for r in $LAB_ROUTERS; do
  step "$r" bird -c "$work/$r.bird.conf" -s "$work/$r.ctl" -P "$work/$r.bird.pid" || exit 1
done

say "proxies: piasd (DPDK $( [ -n "$LAB_VIRTIO_PROXY" ] && echo "af_packet; $LAB_VIRTIO_PROXY on net_virtio_user" || echo af_packet)) + BIRD over the exception tap"
start_proxy() {
  local p=$1
  eval "local lan=\$LAN_$p"
  if [ "$p" = "$LAB_VIRTIO_PROXY" ]; then
    # The vhost-user side: testpmd forwards between the vhost socket (the
    # virtio "VM" NIC) and the LAN veth. --no-huge memory is memfd-backed,
    # which vhost-user can map (DPDK >= 19.02).
    rm -f "$work/$p.vhost.sock"
    ip netns exec "${LAB_PREFIX}-$p" dpdk-testpmd --no-huge -m 256 --file-prefix "${LAB_PREFIX}-vh-$p-$$" --lcores 0@0,1@1 --no-pci \
      --vdev "net_vhost0,iface=$work/$p.vhost.sock,queues=1" --vdev "net_af_packet0,iface=$lan" \
      -- --forward-mode=io --nb-cores=1 --auto-start --stats-period 10 --no-mlockall >"$work/$p.testpmd.log" 2>&1 &
    LAB_PIDS+=($!); eval "VHOST_$p=$!"
    wait_for 20 "vhost-user socket of $p" test -S "$work/$p.vhost.sock" || { tail "$work/$p.testpmd.log"; exit 1; }
  fi
  # ip netns exec execs: $! is piasd itself (SIGTERM and exit code).
  ip netns exec "${LAB_PREFIX}-$p" "$PIASD" --config "$work/$p.piasd.yaml" >"$work/$p.log" 2>&1 &
  PID[$p]=$!; LAB_PIDS+=($!)
}
t_start=$SECONDS
for p in $LAB_PROXIES; do start_proxy "$p"; done
for p in $LAB_PROXIES; do
  wait_for 40 "piasd on $p answers piasctl" ctl "$p" status || { tail -20 "$work/$p.log"; exit 1; }
  step "$p" bird -c "$work/$p.bird.conf" -s "$work/$p.ctl" -P "$work/$p.bird.pid" || exit 1
done

# Convergence: every router sees the anycast prefix over both proxies of
# its cluster (ECMP) and BFD is up with them.
ecmp_count() { in_ns "$1" ip route show "$LAB_ANYCAST" | grep -c "nexthop via"; }
converged() {
  local r; for r in $LAB_ROUTERS; do [ "$(ecmp_count $r)" -ge 2 ] || return 1; done
  for p in $LAB_PROXIES; do
    [ "$(birdc -s "$work/$p.ctl" show bfd sessions 2>/dev/null | grep -c ' Up ')" -ge 1 ] || return 1
  done
}
t_conv=$SECONDS
wait_for 90 "OSPF: both proxies of each cluster announce $LAB_ANYCAST (ECMP), BFD up" converged || {
  for r in $LAB_ROUTERS; do echo "-- $r"; birdc -s "$work/$r.ctl" show ospf neighbors; in_ns $r ip route; done; exit 1; }
row "OSPF+BFD convergence after BIRD start" "$((SECONDS - t_conv)) s" "-" ok
for r in $LAB_ROUTERS; do echo "$r: $(in_ns $r ip route show "$LAB_ANYCAST" | tr -s ' \n' ' ')"; done
# Client-to-client reachability through the routers (plain IP, no PIAS).
wait_for 20 "c1 reaches c2 through r1-r2" in_ns c1 ping -c1 -W1 "$IP_c2" || exit 1

# ---- scenarios ---------------------------------------------------------------
http_get() { in_ns "$1" curl -s -m 5 "http://$2/"; }
dns_a()    { in_ns "$1" dig +tries=1 +timeout=2 +short @"$2" www.lab A; }
AA_HTTP=${GROUP_0%%:*}; AA_IP=${GROUP_2%%/*}

role_table() {
  printf '%-5s %-8s %s\n' proxy cluster "path counters"
  for p in $LAB_PROXIES; do
    [ -n "${KILLED[$p]:-}" ] && { printf '%-5s %-8s %s\n' "$p" "$(eval echo \$CLUSTER_$p)" "(killed)"; continue; }
    printf '%-5s %-8s %s\n' "$p" "$(eval echo \$CLUSTER_$p)" "$(counters $p)"
  done
}

scenario_basic() {
  say "basic: curl and dig through the anycast address, answered by the targets"
  local c out
  for c in $LAB_CLIENTS; do
    out=$(http_get $c "$AA_HTTP")
    echo "$c: curl http://$AA_HTTP/ -> $out"
    echo "$out" | grep -q "hello from web" || fail "host $c: curl http://$AA_HTTP/ not answered by the web target (got '$out')"
    out=$(dns_a $c "$AA_HTTP")
    echo "$c: dig @$AA_HTTP www.lab A -> $out"
    [ "$out" = "$IP_web" ] || fail "host $c: dig @$AA_HTTP www.lab not answered by unbound (got '$out')"
    out=$(in_ns $c curl -s -m 10 -o /dev/null -w '%{size_download}' "http://$AA_HTTP/blob")
    [ "$out" = 4000000 ] || fail "host $c: 4 MB download through the anycast address got $out bytes"
    out=$(in_ns $c timeout 20 iperf3 -c "$AA_IP" -t 2 -b 20M -J 2>&1 | $PY -c 'import json,sys; d=json.load(sys.stdin); print("%.1f" % (d["end"]["sum_received"]["bits_per_second"]/1e6))' 2>/dev/null)
    echo "$c: iperf3 -c $AA_IP (whole-IP group) -> ${out:-failed} Mbit/s"
    [ -n "$out" ] || fail "host $c: iperf3 -c $AA_IP failed"
  done
  # Which proxy played which role (static tables: the DNS group goes
  # IAP -> RAP -> JAP, the HTTP and whole-IP groups IAP -> JAP, cache pinned).
  role_table
  local rap=${GROUP_1_RAPS%% *} jap=${GROUP_1_JAPS%% *}
  [ "$(counter $rap rap_forwarded)" -ge 2 ] || fail "host $rap: the DNS group's RAP forwarded nothing"
  [ "$(counter $jap jap_new_flows)" -ge 2 ] || fail "host $jap: the DNS group's JAP NATed no flow"
  row "basic: curl+dig+4MB+iperf3 from $(echo $LAB_CLIENTS | wc -w) clients" "answered" "all" "$([ $LAB_FAILED = 0 ] && echo ok || echo FAIL)"
}

scenario_load() {
  say "load: curl, dig and iperf3 loops from every client for ${LOAD_SECONDS}s (counts capped)"
  local c n=$((LOAD_SECONDS * 10)) pids=() f0=$LAB_FAILED
  for c in $LAB_CLIENTS; do
    # curl loop: at most n requests, at most LOAD_SECONDS (+10 s grace).
    in_ns $c timeout $((LOAD_SECONDS + 10)) bash -c '
      ok=0; bad=0; end=$((SECONDS + '"$LOAD_SECONDS"'))
      for ((i = 0; i < '"$n"' && SECONDS < end; i++)); do
        if curl -s -m 5 "http://'"$AA_HTTP"'/" | grep -q "hello from web"; then ok=$((ok+1)); else bad=$((bad+1)); fi
        sleep 0.05
      done; echo "$ok $bad"' >"$work/load-curl-$c" 2>&1 &
    pids+=($!)
    in_ns $c timeout $((LOAD_SECONDS + 10)) bash -c '
      ok=0; bad=0; end=$((SECONDS + '"$LOAD_SECONDS"'))
      for ((i = 0; i < '"$n"' && SECONDS < end; i++)); do
        if [ "$(dig +tries=1 +timeout=2 +short @'"$AA_HTTP"' www.lab A)" = '"$IP_web"' ]; then ok=$((ok+1)); else bad=$((bad+1)); fi
        sleep 0.05
      done; echo "$ok $bad"' >"$work/load-dig-$c" 2>&1 &
    pids+=($!)
  done
  # iperf3 runs one test at a time per server: TCP from c1, then UDP from c2.
  local first=${LAB_CLIENTS%% *} last=${LAB_CLIENTS##* } half=$(( (LOAD_SECONDS + 1) / 2 ))
  in_ns $first timeout $((half + 15)) iperf3 -c "$AA_IP" -t $half -b 20M -J >"$work/load-iperf-tcp" 2>&1
  local tcp_rc=$?
  in_ns $last timeout $((half + 15)) iperf3 -c "$AA_IP" -u -b 4M -l 1200 -t $half -J >"$work/load-iperf-udp" 2>&1
  local udp_rc=$?
  wait "${pids[@]}"
  local tot_ok=0 tot_bad=0 k ok bad
  for c in $LAB_CLIENTS; do
    for k in curl dig; do
      read -r ok bad < "$work/load-$k-$c" || { ok=0; bad=1; }
      echo "$c: $k $ok answered, $bad failed"
      tot_ok=$((tot_ok + ok)); tot_bad=$((tot_bad + bad))
      [ "$bad" = 0 ] && [ "$ok" -gt 0 ] || fail "host $c: $k loop: $bad of $((ok + bad)) failed"
    done
  done
  local tcp udp
  tcp=$($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); s=d["end"]; print("%.1f Mbit/s, %d B sent, %d B received" % (s["sum_received"]["bits_per_second"]/1e6, s["sum_sent"]["bytes"], s["sum_received"]["bytes"]))' "$work/load-iperf-tcp" 2>/dev/null)
  [ $tcp_rc = 0 ] && [ -n "$tcp" ] || { fail "host $first: iperf3 -c $AA_IP (TCP) failed (rc $tcp_rc)"; tail -5 "$work/load-iperf-tcp"; }
  udp=$($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); s=d["end"]["sum"]; print("%d/%d" % (s["lost_packets"], s["packets"]))' "$work/load-iperf-udp" 2>/dev/null)
  [ $udp_rc = 0 ] && [ -n "$udp" ] || { fail "host $last: iperf3 -u -c $AA_IP failed (rc $udp_rc)"; tail -5 "$work/load-iperf-udp"; }
  echo "$first: iperf3 TCP: $tcp"; echo "$last: iperf3 UDP lost/sent: $udp"
  [ "${udp%%/*}" = 0 ] || fail "host $last: iperf3 UDP lost ${udp%%/*} datagrams"
  row "load: curl+dig requests (${LOAD_SECONDS}s)" "$tot_ok ok / $tot_bad failed" "0 failed" "$([ $tot_bad = 0 ] && echo ok || echo FAIL)"
  row "load: iperf3 TCP $first" "${tcp%%,*}" "completes" "$([ -n "$tcp" ] && echo ok || echo FAIL)"
  row "load: iperf3 UDP 4M lost/sent $last" "${udp:-none}" "0 lost" "$([ "${udp%%/*}" = 0 ] && echo ok || echo FAIL)"
  role_table
  [ $LAB_FAILED = "$f0" ]
}

# first success at or after T in a probe log: prints "ms fails".
first_ok_after() {
  $PY - "$1" "$2" <<'EOF'
import sys
t = float(sys.argv[2]); rows = []
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) == 3: rows.append((float(p[0]), p[1]))
rows.sort()
ok = [s for s, r in rows if r == "ok" and s >= t]
fails = sum(1 for s, r in rows if r == "fail")
print("%d %d" % ((ok[0] - t) * 1000, fails) if ok else "none %d" % fails)
EOF
}

scenario_failover() {
  say "failover: c1's IAP dies; OSPF+BFD moves c1 to the other proxy of its cluster"
  # c1 (west) enters cluster 1, the near one.
  local c=c1 cl=1 p before=() iap="" i
  local cands; eval "cands=\$CLUSTER_$cl"
  for p in $cands; do before+=("$(counter $p iap_cached)"); done
  for i in 1 2 3 4 5; do http_get $c "$AA_HTTP" >/dev/null; done
  i=0
  for p in $cands; do
    [ "$(counter $p iap_cached)" -ge $((before[i] + 5)) ] && iap=$p
    i=$((i + 1))
  done
  [ -n "$iap" ] || { fail "host $c: no proxy of cluster $cl counted c1's 5 fetches as IAP"; role_table; return 1; }
  echo "c1's IAP for $AA_HTTP: $iap (cluster $cl); killing it (piasd and BIRD: the host dies)"
  local stop="$work/probe.stop"; rm -f "$stop"
  in_ns $c $PY "$here/probe.py" http "$AA_HTTP" 80 0.02 20 "$stop" >"$work/probe-http" 2>&1 &
  local ph=$!
  in_ns $c $PY "$here/probe.py" dns "$AA_HTTP" 53 0.02 20 "$stop" >"$work/probe-dns" 2>&1 &
  local pd=$!
  LAB_PIDS+=($ph $pd)
  sleep 2
  local t_kill; t_kill=$(date +%s.%N)
  for i in $(ip netns pids "${LAB_PREFIX}-$iap"); do kill -9 "$i" 2>/dev/null; done
  KILLED[$iap]=1
  wait "${PID[$iap]}" 2>/dev/null
  # BFD's view from the router, for the log.
  sleep 4; touch "$stop"; wait $ph $pd 2>/dev/null
  local r; r=$(in_ns r1 ip route show "$LAB_ANYCAST" | tr -s ' \n' ' ')
  echo "r1 after the kill: $r"
  local hms hf dms df
  read -r hms hf < <(first_ok_after "$work/probe-http" "$t_kill")
  read -r dms df < <(first_ok_after "$work/probe-dns" "$t_kill")
  echo "http probe: first answer ${hms} ms after the kill ($hf attempts failed of $(wc -l < "$work/probe-http"))"
  echo "dns probe:  first answer ${dms} ms after the kill ($df attempts failed of $(wc -l < "$work/probe-dns"))"
  grep -h -E "BFD session .* (down|Down)|changed state from Full|Neighbor .* down" "$work/r1.bird.log" | tail -3
  local v
  for x in "http:$hms" "dns:$dms"; do
    v=${x#*:}
    if [ "$v" = none ]; then fail "host $c: no ${x%%:*} probe answered after $iap died"; row "failover: IAP $iap dies, ${x%%:*} probe from $c" "never" "<= ${FAILOVER_GOAL_MS} ms" FAIL
    elif [ "$v" -le "$FAILOVER_GOAL_MS" ]; then row "failover: IAP $iap dies, ${x%%:*} probe from $c" "$v ms" "<= ${FAILOVER_GOAL_MS} ms" ok
    else fail "host $c: ${x%%:*} failover took $v ms (goal ${FAILOVER_GOAL_MS} ms)"; row "failover: IAP $iap dies, ${x%%:*} probe from $c" "$v ms" "<= ${FAILOVER_GOAL_MS} ms" FAIL; fi
  done
  local out; out=$(http_get $c "$AA_HTTP")
  echo "$out" | grep -q "hello from web" || fail "host $c: curl after failover not answered"
  out=$(dns_a $c "$AA_HTTP"); [ "$out" = "$IP_web" ] || fail "host $c: dig after failover not answered"
  role_table
}

for s in "${scenarios[@]}"; do "scenario_$s"; done

# ---- shutdown: exit 0, full mempool -----------------------------------------
say "shutdown: SIGTERM to every surviving piasd: exit 0, every mbuf back"
for p in $LAB_PROXIES; do
  [ -n "${KILLED[$p]:-}" ] && continue
  kill -TERM "${PID[$p]}"; rc=0; wait "${PID[$p]}" || rc=$?
  m=$(grep -o "mempool: [0-9]* of [0-9]* mbufs in use at exit" "$work/$p.log")
  echo "$p: exit $rc, $m"
  [ "$rc" = 0 ] || { fail "host $p: piasd exited $rc"; tail -5 "$work/$p.log"; }
  echo "$m" | grep -q "mempool: 0 of" || fail "host $p: mempool not full at exit"
  row "exit of piasd $p" "rc $rc, ${m#mempool: }" "rc 0, 0 in use" "$([ "$rc" = 0 ] && echo "$m" | grep -q 'mempool: 0 of' && echo ok || echo FAIL)"
done

say "results"
printf '%-52s %-32s %-14s %s\n' measurement value goal verdict
for r in "${RESULTS[@]}"; do
  IFS='|' read -r a b c d <<<"$r"; printf '%-52s %-32s %-14s %s\n' "$a" "$b" "$c" "$d"
done
if [ "$LAB_FAILED" = 0 ]; then say "anycast lab (${scenarios[*]}${LAB_VIRTIO_PROXY:+, $LAB_VIRTIO_PROXY on virtio}): all checks passed"; else say "anycast lab: FAILED"; exit 1; fi
