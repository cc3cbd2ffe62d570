#!/usr/bin/env bash
# The anycast lab (issue 6, first stage): the topology of configs/lab.yaml
# built in network namespaces: two client regions behind BIRD 2 routers
# (OSPF with ECMP, BFD), two proxy clusters of two piasd each (DPDK
# af_packet ports on the LAN veths; BIRD over each piasd's exception tap
# announces the anycast prefix, so OSPF picks the IAP), and three targets
# (nginx, unbound, iperf3). With the topology's `control: dynamic` (the
# default) every piasd runs the PIAS control plane and the targets join
# their groups with pias-target through the anycast address; with
# `control: static` (or LAB_CONTROL=static) the proxies' `pias:` tables are
# written from the topology's groups.
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
#   control   (control: dynamic) the web target's nginx dies: time until
#             new connections from both regions reach web2 (goal <= 3 s);
#             web2's agent leaves during a loop of connections (none may
#             fail); a join signed with another key and a forged proxy
#             message are refused and counted (bad_signature, bad_mac).
# Always, at the end: every surviving piasd gets SIGTERM and must exit 0
# with every mbuf back in its pool.
#
# Env: PIASD, PIASCTL, PIAS_TARGET; LAB_CONTROL (static|dynamic); LAB_PREFIX (default pias-any; namespaces are
# LAB_PREFIX-<host>); LAB_TOPO (default configs/lab.yaml); LOAD_SECONDS
# (default 20); LAB_VIRTIO_PROXY=<proxy>: that proxy's port is a
# net_virtio_user device attached to a vhost-user socket served by
# dpdk-testpmd (net_vhost <-> net_af_packet on the LAN veth, io forwarding);
# FAILOVER_RUNS (default 3: kill, measure, bring the proxy back);
# LAB_FAST_REROUTE=0|1 overrides the topology's `fast_reroute` (default
# true in configs/lab.yaml): each cluster's router also holds a static
# route to the anycast prefix via its proxies, next hops tracked by BFD and
# preferred over OSPF, so a dead IAP is dropped on BFD's verdict without
# waiting for BIRD's OSPF tick (the proxies still announce the prefix into
# OSPF for every other router); FAILOVER_GOAL_MS (default 1000, the
# issue's goal: a run above it is reported "over goal"); FAILOVER_LIMIT_MS
# (above it the scenario fails; default 1000 with fast reroute, the goal;
# 1600 without = BFD detection 300 ms + BIRD's OSPF tick of 1 s, its
# minimum, + margin); LAB_RELAY_LATENCY_MS (default
# 5; "off" for none): where the kernel has no netem, links of at least that
# latency (the wan) run through bench/lab/delay.py, a userspace wire.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
LAB_PREFIX=${LAB_PREFIX:-pias-any}
. "$here/common.sh"
PIASD=${PIASD:-$top/target/release/piasd}
PIASCTL=${PIASCTL:-$top/target/release/piasctl}
PIAS_TARGET=${PIAS_TARGET:-$top/target/release/pias-target}
LAB_TOPO=${LAB_TOPO:-$top/configs/lab.yaml}
LOAD_SECONDS=${LOAD_SECONDS:-20}
FAILOVER_GOAL_MS=${FAILOVER_GOAL_MS:-1000}
FAILOVER_RUNS=${FAILOVER_RUNS:-3}
LAB_VIRTIO_PROXY=${LAB_VIRTIO_PROXY:-}
LAB_RELAY_LATENCY_MS=${LAB_RELAY_LATENCY_MS:-5}
PY=/usr/bin/python3
scenarios=("$@"); [ ${#scenarios[@]} -gt 0 ] || scenarios=(basic load failover)
for s in "${scenarios[@]}"; do
  case $s in basic|load|failover|control) ;; *) die "unknown scenario '$s' (basic, load, failover, control)";; esac
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
declare -A NGINX        # nginx pid per target
RESULTS=()              # "name|value|goal|verdict" rows of the final table
row() { RESULTS+=("$1|$2|$3|$4"); }
cleanup() {
  local rc=$?
  lab_teardown
  rm -rf /var/run/dpdk/${LAB_PREFIX}-* 2>/dev/null
  if [ "$rc" != 0 ] && [ -z "${LAB_KEEP_WORK:-}" ]; then
    echo "lab: failed; its logs in $work are removed (LAB_KEEP_WORK=1 keeps them)"
  fi
  [ -n "${LAB_KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A run killed before its teardown left namespaces (and the daemons in
# them), DPDK runtime directories and a work directory: clear them.
lab_clean_stale
for d in /var/run/dpdk/${LAB_PREFIX}-* /tmp/${LAB_PREFIX}.*; do
  [ -e "$d" ] && [ "$d" != "$work" ] && { echo "lab: removing $d left by an earlier run"; rm -rf "$d"; }
done

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
  echo "note: this kernel has no netem qdisc (sch_netem)"
fi
ip netns del ${LAB_PREFIX}-probe
opts=(); [ $netem = 1 ] || opts+=(--no-netem)
if [ $netem = 0 ] && [ "$LAB_RELAY_LATENCY_MS" != off ]; then
  echo "note: links with >= ${LAB_RELAY_LATENCY_MS} ms latency run through bench/lab/delay.py; shorter ones get none"
  opts+=(--relay-latency "$LAB_RELAY_LATENCY_MS")
elif [ $netem = 0 ]; then
  echo "note: link latencies are not applied; OSPF costs alone make clusters near or far"
fi
[ -z "$LAB_VIRTIO_PROXY" ] || opts+=(--virtio "$LAB_VIRTIO_PROXY")
# The control plane's keys (used when the topology, or LAB_CONTROL, says
# `control: dynamic`): the proxy group's secret and the group owner's key.
if [ -x "$PIAS_TARGET" ]; then
  $PY -c 'import os; print(os.urandom(32).hex())' > "$work/group.key"
  "$PIAS_TARGET" keygen --out "$work/owner.key" > "$work/owner.pub" || die "pias-target keygen failed"
fi
$PY "$here/labtopo.py" "$LAB_TOPO" "$work" "$LAB_PREFIX" "${opts[@]}" || die "cannot render $LAB_TOPO"
. "$work/lab.env"
if [ "$LAB_FAST_REROUTE" = 1 ]; then
  FAILOVER_LIMIT_MS=${FAILOVER_LIMIT_MS:-1000}
  echo "fast reroute: BFD-tracked static routes to the proxies on each cluster's router (LAB_FAST_REROUTE=0: OSPF + BFD only)"
else
  FAILOVER_LIMIT_MS=${FAILOVER_LIMIT_MS:-1600}
  echo "no fast reroute: OSPF + BFD only (failover waits for BIRD's 1 s OSPF tick)"
fi
for h in $LAB_ROUTERS $LAB_CLIENTS $LAB_PROXIES $LAB_TARGETS; do LAB_NETNS+=("${LAB_PREFIX}-$h"); done
for d in $LAB_RELAYS; do LAB_NETNS+=("${LAB_PREFIX}-${d%%:*}"); done
bash "$work/setup.sh" || die "building the topology failed (see the host and command above)"
for d in $LAB_RELAYS; do
  ip netns exec "${LAB_PREFIX}-${d%%:*}" $PY "$here/delay.py" rla rlb "${d#*:}" </dev/null >"$work/${d%%:*}.log" 2>&1 &
  LAB_PIDS+=($!)
done

say "targets: nginx, unbound, iperf3"
for t in $LAB_TARGETS; do
  eval "svc=\$SERVICE_$t; ip=\$IP_$t"
  case $svc in
    nginx)
      mkdir -p "$work/$t.nginx-tmp"; head -c 4000000 /dev/urandom > "$work/blob"
      ip netns exec "${LAB_PREFIX}-$t" nginx -c "$work/$t.nginx.conf" -p "$work" </dev/null >"$work/$t.out" 2>&1 &
      LAB_PIDS+=($!); NGINX[$t]=$!
      wait_for 10 "nginx on $t" in_ns "$t" bash -c "exec 3<>/dev/tcp/$ip/80" || exit 1 ;;
    unbound)
      ip netns exec "${LAB_PREFIX}-$t" unbound -d -c "$work/$t.unbound.conf" </dev/null >"$work/$t.out" 2>&1 &
      LAB_PIDS+=($!)
      wait_for 10 "unbound on $t" in_ns "$t" dig +tries=1 +timeout=1 @"$ip" www.lab A || { cat "$work/$t.unbound.log"; exit 1; } ;;
    iperf3)
      # Two servers (one test at a time each): 5201 for TCP, 5202 for UDP.
      ip netns exec "${LAB_PREFIX}-$t" iperf3 -s -B "$ip" -p 5201 --logfile "$work/$t.iperf3.log" </dev/null &
      LAB_PIDS+=($!)
      ip netns exec "${LAB_PREFIX}-$t" iperf3 -s -B "$ip" -p 5202 --logfile "$work/$t.iperf3-udp.log" </dev/null &
      LAB_PIDS+=($!) ;;
  esac
done

# Routers give their control plane priority over forwarding and everything
# else; so does the lab: BIRD runs SCHED_FIFO where allowed, or BFD's
# 100 ms timers would flap on a loaded two-core CI machine.
RT=(); if chrt -f 20 true 2>/dev/null; then RT=(chrt -f 20); else echo "note: no SCHED_FIFO here (chrt): BIRD runs unprioritised; BFD may flap under load"; fi
say "routers: BIRD 2, OSPF + BFD"
for r in $LAB_ROUTERS; do
  step "$r" "${RT[@]}" bird -c "$work/$r.bird.conf" -s "$work/$r.ctl" -P "$work/$r.bird.pid" || exit 1
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
      -- --forward-mode=io --nb-cores=1 --total-num-mbufs=16384 --auto-start --stats-period 10 --no-mlockall </dev/null >"$work/$p.testpmd.log" 2>&1 &
    LAB_PIDS+=($!); eval "VHOST_$p=$!"
    wait_for 20 "vhost-user socket of $p" test -S "$work/$p.vhost.sock" || { tail "$work/$p.testpmd.log"; exit 1; }
  fi
  # ip netns exec execs: $! is piasd itself (SIGTERM and exit code).
  ip netns exec "${LAB_PREFIX}-$p" "$PIASD" --config "$work/$p.piasd.yaml" </dev/null >"$work/$p.log" 2>&1 &
  PID[$p]=$!; LAB_PIDS+=($!)
}
t_start=$SECONDS
for p in $LAB_PROXIES; do start_proxy "$p"; done
for p in $LAB_PROXIES; do
  wait_for 40 "piasd on $p answers piasctl" ctl "$p" status || { tail -20 "$work/$p.log"; exit 1; }
  step "$p" "${RT[@]}" bird -c "$work/$p.bird.conf" -s "$work/$p.ctl" -P "$work/$p.bird.pid" || exit 1
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
# stable LIMIT HOLD: converged() held HOLD seconds in a row, within LIMIT.
stable() {
  local end=$((SECONDS + $1)) since=$SECONDS
  while [ $SECONDS -lt $end ]; do
    if converged; then [ $((SECONDS - since)) -ge $2 ] && return 0; else since=$SECONDS; fi
    sleep 0.5
  done
  return 1
}
t_conv=$SECONDS
wait_for 90 "OSPF: both proxies of each cluster announce $LAB_ANYCAST (ECMP), BFD up" converged || {
  for r in $LAB_ROUTERS; do echo "-- $r"; birdc -s "$work/$r.ctl" show ospf neighbors; in_ns $r ip route; done; exit 1; }
row "routing converged after BIRD start (ECMP, BFD up)" "$((SECONDS - t_conv)) s" "-" ok
for r in $LAB_ROUTERS; do echo "$r: $(in_ns $r ip route show "$LAB_ANYCAST" | tr -s ' \n' ' ')"; done
# Client-to-client reachability through the routers (plain IP, no PIAS).
wait_for 20 "c1 reaches c2 through r1-r2" in_ns c1 ping -c1 -W1 "$IP_c2" || exit 1

# How many BFD sessions on the routers changed state after epoch T
# (birdc's "Since" column, same day).
bfd_changes_since() {
  local r n=0 k
  for r in $LAB_ROUTERS; do
    k=$(birdc -s "$work/$r.ctl" show bfd sessions | $PY -c '
import sys, datetime, time
t = float(sys.argv[1]); day = datetime.date.today().isoformat(); n = 0
for l in sys.stdin:
    p = l.split()
    if len(p) >= 4 and p[2] in ("Up", "Down", "Init", "AdminDown") and ":" in p[3]:
        s = datetime.datetime.strptime(day + " " + p[3], "%Y-%m-%d %H:%M:%S.%f").timestamp()
        n += s >= t or p[2] != "Up"
print(n)' "$1")
    n=$((n + k))
  done
  echo $n
}

# Targets join their groups. With `control: static` (today) the JAPs'
# tables already hold them (labtopo.py wrote them from the groups). With
# `control: dynamic` (the control-plane stage) this is where each target
# runs `pias-target join` for its groups through the anycast address,
# signed with the group's key, and the lab waits for the JAPs to list it.
declare -A AGENT        # pias-target pid per "host group"
targets_join() {
  [ "$LAB_CONTROL" = dynamic ] || return 0
  [ -x "$PIAS_TARGET" ] || die "pias-target not built at $PIAS_TARGET (cargo build --release -p pias-control)"
  say "targets join their groups with pias-target, through the anycast address"
  local i g tg h port ip
  for ((i = 0; i < LAB_GROUPS; i++)); do
    eval "g=\$GROUP_$i; tg=\$GROUP_${i}_TARGETS"
    for h in $tg; do
      port=${h#*:}; h=${h%%:*}; eval "ip=\$IP_$h"
      local target=$ip; [ "$port" = 0 ] || target=$ip:$port
      ip netns exec "${LAB_PREFIX}-$h" "$PIAS_TARGET" join --group "$g" --target "$target" --key "$work/owner.key" \
        --refresh 5 </dev/null >"$work/$h-agent-$i.log" 2>&1 &
      AGENT["$h $g"]=$!; LAB_PIDS+=($!)
    done
  done
  # Every group listed with a target at some proxy (its JAP: where native
  # anycast delivered the join).
  for ((i = 0; i < LAB_GROUPS; i++)); do
    eval "g=\$GROUP_$i"
    wait_for 30 "a JAP of $g lists its target" jap_of "$g" || { for h in $LAB_TARGETS; do tail -3 "$work/$h"-agent-*.log; done; exit 1; }
    echo "$g: JAP $(jap_of "$g")"
  done
}
# target_alive GROUP ADDR: some JAP lists ADDR as a live target of GROUP.
target_alive() {
  local p
  for p in $LAB_PROXIES; do
    [ -n "${KILLED[$p]:-}" ] && continue
    ctl "$p" status --json 2>/dev/null | $PY -c '
import json, sys
p = (json.load(sys.stdin)["control"].get("plane") or {})
sys.exit(0 if sys.argv[2] in p.get("targets", {}).get(sys.argv[1], []) else 1)' "$1" "$2" && return 0
  done
  return 1
}
# raps_of GROUP: the proxies that are RAPs of GROUP.
raps_of() {
  local p out=""
  for p in $LAB_PROXIES; do
    [ -n "${KILLED[$p]:-}" ] && continue
    ctl "$p" status --json 2>/dev/null | $PY -c '
import json, sys
p = (json.load(sys.stdin)["control"].get("plane") or {})
sys.exit(0 if sys.argv[1] in p.get("rap_of", []) else 1)' "$1" && out="$out $p"
  done
  echo $out
}
# jap_of GROUP: the proxies whose control plane serves targets of GROUP.
jap_of() {
  local p out=""
  for p in $LAB_PROXIES; do
    [ -n "${KILLED[$p]:-}" ] && continue
    ctl "$p" status --json 2>/dev/null | $PY -c '
import json, sys
p = (json.load(sys.stdin)["control"].get("plane") or {})
sys.exit(0 if p.get("targets", {}).get(sys.argv[1]) else 1)' "$1" && out="$out $p"
  done
  [ -n "$out" ] && echo $out
}
targets_join

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
  # Proximity: plain IP between the regions crosses the wan; the anycast
  # path of each client, timed by curl.
  local rtt t1 t2
  rtt=$(in_ns c1 ping -c 5 -i 0.2 -q "$IP_c2" | sed -n 's|.*= [0-9.]*/\([0-9.]*\)/.*|\1|p')
  t1=$(in_ns c1 curl -s -o /dev/null -m 5 -w '%{time_total}' "http://$AA_HTTP/")
  t2=$(in_ns c2 curl -s -o /dev/null -m 5 -w '%{time_total}' "http://$AA_HTTP/")
  echo "ping c1 -> c2 (across the wan): avg ${rtt} ms; curl http://$AA_HTTP/ took ${t1}s from c1 (west), ${t2}s from c2 (east, near the JAP)"
  row "basic: ping c1->c2 avg RTT (wan)" "${rtt:-?} ms" "-" "-"
  row "basic: curl time_total c1 (west) / c2 (east)" "${t1}s / ${t2}s" "-" "-"
  # Which proxy played which role (static tables: the DNS group goes
  # IAP -> RAP -> JAP, the HTTP and whole-IP groups IAP -> JAP, cache pinned).
  role_table
  if [ "$LAB_CONTROL" = dynamic ]; then
    # Learned on the wire: each IAP's first packets of a group went to a
    # RAP (iap->rap), the RAP's JAP list filled the IAP's cache, and later
    # packets went straight to the JAP (iap-cache).
    local p to_rap=0 cached=0 rapf=0 jap
    for p in $LAB_PROXIES; do
      to_rap=$((to_rap + $(counter $p iap_to_rap))); cached=$((cached + $(counter $p iap_cached)))
      rapf=$((rapf + $(counter $p rap_forwarded)))
    done
    echo "first packets via a RAP: $to_rap (RAPs forwarded $rapf); later packets IAP -> JAP from the cache: $cached"
    [ $to_rap -ge 1 ] && [ $rapf -ge 1 ] || fail "no first packet went via a RAP"
    [ $cached -ge 1 ] || fail "no later packet went IAP -> JAP from a cache the control plane filled"
    for ((i = 0; i < LAB_GROUPS; i++)); do
      eval "g=\$GROUP_$i"; jap=$(jap_of "$g")
      echo "$g: JAP $jap; RAPs: $(raps_of "$g")"
    done
    jap=$(jap_of "$GROUP_1"); jap=${jap%% *}
    [ "$(counter $jap jap_new_flows)" -ge 2 ] || fail "host $jap: the DNS group's JAP NATed no flow"
    row "basic: first packets IAP->RAP, later IAP->JAP (counters)" "$to_rap / $cached" ">= 1 each" "$([ $to_rap -ge 1 ] && [ $cached -ge 1 ] && echo ok || echo FAIL)"
  else
    local rap=${GROUP_1_RAPS%% *} jap=${GROUP_1_JAPS%% *}
    [ "$(counter $rap rap_forwarded)" -ge 2 ] || fail "host $rap: the DNS group's RAP forwarded nothing"
    [ "$(counter $jap jap_new_flows)" -ge 2 ] || fail "host $jap: the DNS group's JAP NATed no flow"
  fi
  row "basic: curl+dig+4MB+iperf3 from $(echo $LAB_CLIENTS | wc -w) clients" "answered" "all" "$([ $LAB_FAILED = 0 ] && echo ok || echo FAIL)"
}

scenario_load() {
  say "load: curl, dig and iperf3 loops from every client for ${LOAD_SECONDS}s (counts capped)"
  local c n=$((LOAD_SECONDS * 10)) pids=() f0=$LAB_FAILED t_load; t_load=$(date +%s.%N)
  for c in $LAB_CLIENTS; do
    # One line per request as it ends, so a loop stopped by its time bound
    # still reports; a lost packet is never answered, so the generous
    # per-request timeouts (this machine's load spikes starve processes
    # for seconds) hide no loss. At most n requests, LOAD_SECONDS (+15 s).
    in_ns $c timeout $((LOAD_SECONDS + 15)) bash -c '
      end=$((SECONDS + '"$LOAD_SECONDS"'))
      for ((i = 0; i < '"$n"' && SECONDS < end; i++)); do
        if curl -s -m 8 "http://'"$AA_HTTP"'/" | grep -q "hello from web"; then echo ok; else echo bad; fi
        sleep 0.05
      done' </dev/null >"$work/load-curl-$c" 2>&1 &
    pids+=($!)
    in_ns $c timeout $((LOAD_SECONDS + 15)) bash -c '
      end=$((SECONDS + '"$LOAD_SECONDS"'))
      for ((i = 0; i < '"$n"' && SECONDS < end; i++)); do
        if [ "$(dig +tries=1 +timeout=5 +short @'"$AA_HTTP"' www.lab A)" = '"$IP_web"' ]; then echo ok; else echo bad; fi
        sleep 0.05
      done' </dev/null >"$work/load-dig-$c" 2>&1 &
    pids+=($!)
  done
  # iperf3 at the same time: TCP from the far client (across the wan) to
  # port 5201, UDP from the near one to port 5202.
  local first=${LAB_CLIENTS%% *} last=${LAB_CLIENTS##* }
  in_ns $first timeout $((LOAD_SECONDS + 15)) iperf3 -c "$AA_IP" -p 5201 -t $LOAD_SECONDS -b 20M -J </dev/null >"$work/load-iperf-tcp" 2>&1 &
  local tcp_pid=$!
  in_ns $last timeout $((LOAD_SECONDS + 15)) iperf3 -c "$AA_IP" -p 5202 -u -b 4M -l 1200 -t $LOAD_SECONDS -J </dev/null >"$work/load-iperf-udp" 2>&1
  local udp_rc=$? tcp_rc=0
  wait $tcp_pid || tcp_rc=$?
  wait "${pids[@]}"
  local tot_ok=0 tot_bad=0 k ok bad
  for c in $LAB_CLIENTS; do
    for k in curl dig; do
      ok=$(grep -c '^ok$' "$work/load-$k-$c"); bad=$(grep -c '^bad$' "$work/load-$k-$c")
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
  # Routing stayed put under load: no BFD session (re)started since.
  local flaps; flaps=$(bfd_changes_since "$t_load")
  row "load: BFD session changes during the load" "$flaps" "0" "$([ "$flaps" = 0 ] && echo ok || echo FAIL)"
  [ "$flaps" = 0 ] || fail "BFD sessions changed state during the load ($flaps): routing flapped"
  role_table
  [ $LAB_FAILED = "$f0" ]
}

# When service came back after T in a probe log: the earliest completion
# of an answered attempt that started after T (an attempt started during
# the outage may still succeed late, by a SYN retransmitted after 1 s, so
# start times alone would flatter). Prints "ms fails".
first_ok_after() {
  $PY - "$1" "$2" <<'EOF'
import sys
t = float(sys.argv[2]); rows = []
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) == 3: rows.append((float(p[0]), p[1], float(p[2]) / 1000))
# The outage starts with the first failed attempt after T (attempts sent
# in the few ms the dying process still forwards are answered).
f = [s for s, r, d in rows if r == "fail" and s >= t]
fails = len(f)
if not f:
    print("0 0"); sys.exit()
ok = [s + d for s, r, d in rows if r == "ok" and s >= min(f)]
print("%d %d" % ((min(ok) - t) * 1000, fails) if ok else "none %d" % fails)
EOF
}

# The proxy that is client C's IAP for the HTTP group: the nexthop r1's
# kernel picks for C's packets (ECMP hashes source and destination), then
# checked against the proxies' counters once traffic flowed.
find_iap() {
  local c=$1 ip nh p
  eval "ip=\$IP_$c"
  nh=$(in_ns r1 ip route get "$AA_HTTP" from "$ip" iif "$(eval echo \$LAN_$c)" | sed -n 's/.* via \([0-9.]*\) .*/\1/p')
  for p in $LAB_PROXIES; do [ "$(eval echo \$IP_$p)" = "$nh" ] && echo "$p"; done
}

# verdict MS: ok within the goal, "over goal" within the CI limit, else FAIL.
verdict() {
  if [ "$1" = none ]; then echo FAIL
  elif [ "$1" -le "$FAILOVER_GOAL_MS" ]; then echo ok
  elif [ "$1" -le "$FAILOVER_LIMIT_MS" ]; then echo "over goal"
  else echo FAIL; fi
}

scenario_failover() {
  say "failover: c1's IAP dies; OSPF+BFD moves c1 to the other proxy of its cluster (${FAILOVER_RUNS} runs)"
  # c1 (west) enters cluster 1, the near one.
  local c=c1 cl=1 run iap i all=()
  for ((run = 1; run <= FAILOVER_RUNS; run++)); do
    iap=$(find_iap $c)
    [ -n "$iap" ] || { fail "host r1: ip route get $AA_HTTP from $c names no proxy"; role_table; return 1; }
    [ "$(eval echo \$CLUSTER_$iap)" = $cl ] || fail "host r1: $c's IAP $iap is not in the near cluster $cl"
    local n0; n0=$(counter $iap iap_cached)
    echo "run $run: c1's IAP for $AA_HTTP is $iap (cluster $cl); killing it (piasd and BIRD: the host dies)"
    local stop="$work/probe.stop"; rm -f "$stop"
    in_ns $c $PY "$here/probe.py" http "$AA_HTTP" 80 0.02 20 "$stop" </dev/null >"$work/probe-http-$run" 2>&1 &
    local ph=$!
    in_ns $c $PY "$here/probe.py" dns "$AA_HTTP" 53 0.02 20 "$stop" </dev/null >"$work/probe-dns-$run" 2>&1 &
    local pd=$!
    # The router's kernel route changes, timestamped.
    ip -n "${LAB_PREFIX}-r1" -ts monitor route </dev/null >"$work/r1-routes-$run" 2>&1 &
    local pm=$!
    LAB_PIDS+=($ph $pd $pm)
    sleep 2
    # The probes' packets did enter at that proxy (counters publish lazily).
    wait_for 5 "$iap counts c1's probes as IAP" sh -c "[ \$('$PIASCTL' --socket '$work/$iap.sock' status --json | $PY -c 'import json,sys; print(sum(w[\"path\"][\"iap_cached\"] for w in json.load(sys.stdin)[\"workers\"]))') -ge $((n0 + 20)) ]"
    local t_kill; t_kill=$(date +%s.%N)
    for i in $(ip netns pids "${LAB_PREFIX}-$iap"); do kill -9 "$i" 2>/dev/null; done
    KILLED[$iap]=1
    wait "${PID[$iap]}" 2>/dev/null
    sleep 4; touch "$stop"; wait $ph $pd 2>/dev/null; kill $pm 2>/dev/null; wait $pm 2>/dev/null
    echo "r1 after the kill: $(in_ns r1 ip route show "$LAB_ANYCAST" | tr -s ' \n' ' ')"
    local hms hf dms df rms
    read -r hms hf < <(first_ok_after "$work/probe-http-$run" "$t_kill")
    read -r dms df < <(first_ok_after "$work/probe-dns-$run" "$t_kill")
    rms=$($PY -c '
import sys, datetime
t = float(sys.argv[2])
for l in open(sys.argv[1]):
    if l.startswith("[") and "198.51.100.0/24" in l or l.startswith("[") and "nexthop" in l:
        s = datetime.datetime.strptime(l[1:27], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
        if s >= t: print(int((s - t) * 1000)); break
else: print("none")' "$work/r1-routes-$run" "$t_kill" 2>/dev/null)
    echo "run $run: r1's route changed ${rms} ms after the kill; http answered again after ${hms} ms ($hf attempts failed), dns after ${dms} ms ($df failed)"
    row "failover run $run: IAP $iap killed, r1 route changed" "${rms} ms" "-" "-"
    row "failover run $run: http probe from $c answered again" "${hms} ms" "<= ${FAILOVER_GOAL_MS} ms" "$(verdict $hms)"
    row "failover run $run: dns probe from $c answered again" "${dms} ms" "<= ${FAILOVER_GOAL_MS} ms" "$(verdict $dms)"
    for v in $hms $dms; do
      [ "$(verdict $v)" != FAIL ] || fail "host $c: failover run $run: service back after $v ms (CI limit ${FAILOVER_LIMIT_MS} ms)"
    done
    all+=($hms $dms)
    local out; out=$(http_get $c "$AA_HTTP")
    echo "$out" | grep -q "hello from web" || fail "host $c: curl after failover not answered"
    out=$(dns_a $c "$AA_HTTP"); [ "$out" = "$IP_web" ] || fail "host $c: dig after failover not answered"
    if [ $run -lt $FAILOVER_RUNS ]; then
      # The proxy host comes back: piasd, then BIRD; wait for ECMP again.
      start_proxy "$iap"; unset "KILLED[$iap]"
      wait_for 40 "piasd on $iap back" ctl "$iap" status || return 1
      step "$iap" "${RT[@]}" bird -c "$work/$iap.bird.conf" -s "$work/$iap.ctl" -P "$work/$iap.bird.pid" || return 1
      # A rejoining neighbour flaps once while its adjacency settles, and
      # OSPF's MinLSInterval (5 s) holds back LSAs re-originated sooner:
      # wait until ECMP has held for 8 s, or the next run would measure
      # the rejoin, not the kill.
      stable 90 8 || { fail "host r1: no stable ECMP after $iap came back"; return 1; }
    fi
  done
  role_table
}

# The control plane's failures, with the targets joined by pias-target.
scenario_control() {
  say "control: a target dies, a target leaves, a forged join and a forged proxy message"
  [ "$LAB_CONTROL" = dynamic ] || { fail "the control scenarios need control: dynamic"; return; }
  local c t0 t1 ok out bad n i
  # 1. The web target's nginx dies: new connections from both regions
  #    reach web2 (the JAPs' TCP health probes; goal <= 3 s).
  t0=$(date +%s.%N)
  kill "${NGINX[web]}"; wait "${NGINX[web]}" 2>/dev/null
  for c in $LAB_CLIENTS; do
    ok=0
    while $PY -c "import sys; sys.exit(0 if $(date +%s.%N) - $t0 < 10 else 1)"; do
      in_ns $c curl -s -m 1 "http://$AA_HTTP/" 2>/dev/null | grep -q "hello from web2" && { ok=1; break; }
      sleep 0.1
    done
    t1=$(date +%s.%N)
    local ms; ms=$($PY -c "print(int(($t1 - $t0) * 1000))")
    echo "$c: web killed -> new connections answered by web2 after $ms ms"
    [ $ok = 1 ] || fail "host $c: no connection reached web2 within 10 s of web's death"
    row "control: target web dies, $c reaches web2" "$ms ms" "<= 3000 ms" "$([ $ok = 1 ] && [ $ms -le 3000 ] && echo ok || echo FAIL)"
    [ $ok = 1 ] && [ $ms -le 3000 ] || fail "host $c: failover to a live target took $ms ms (goal 3000)"
  done
  bad=0
  for c in $LAB_CLIENTS; do for i in $(seq 10); do
    in_ns $c curl -s -m 3 "http://$AA_HTTP/" | grep -q "hello from web2" || bad=$((bad + 1))
  done; done
  [ $bad = 0 ] || fail "$bad of 20 connections failed after the failover"
  ip netns exec "${LAB_PREFIX}-web" nginx -c "$work/web.nginx.conf" -p "$work" </dev/null >>"$work/web.out" 2>&1 &
  LAB_PIDS+=($!); NGINX[web]=$!
  # 2. web2 leaves gracefully (its agent gets SIGTERM) during a loop of
  #    connections: none fails.
  wait_for 20 "web alive again at its JAP" target_alive "$GROUP_0" "$IP_web:80"
  ( n=0; bad=0
    for i in $(seq 30); do
      n=$((n + 1)); in_ns c1 curl -s -m 3 "http://$AA_HTTP/" | grep -q "hello from web" || bad=$((bad + 1)); sleep 0.1
    done; echo "$n $bad" > "$work/leave.out" ) </dev/null &
  local loop=$! agent=${AGENT["web2 $GROUP_0"]}
  sleep 1
  kill -TERM "$agent"; wait "$agent" || fail "host web2: pias-target exited non-zero on SIGTERM"
  wait $loop
  read -r n bad < "$work/leave.out"
  echo "web2 left during $n connections from c1: $bad failed"
  row "control: target web2 leaves during $n connections" "$bad failed" "0 failed" "$([ "$bad" = 0 ] && echo ok || echo FAIL)"
  [ "$bad" = 0 ] || fail "$bad of $n connections failed while web2 left"
  # 3. A join signed with another key, and a proxy message with a made-up
  #    MAC: both refused and counted (bad_signature, bad_mac).
  "$PIAS_TARGET" keygen --out "$work/wrong.key" >/dev/null
  ip netns exec "${LAB_PREFIX}-web2" timeout 10 "$PIAS_TARGET" join --once --group "$GROUP_0" --target "$IP_web2:80" \
    --key "$work/wrong.key" </dev/null >"$work/wrong.log" 2>&1
  local p1; p1=${CLUSTER_1%% *}
  eval "local a1=\$IP_$p1"
  in_ns c1 $PY -c "
import socket, struct
body = bytes(8); n = 22 + len(body) + 16
m = struct.pack('>BBHIBBIQ', 1, 0x01, n, 1, 1, 0, 1, 1) + body + bytes(16)
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(m, ('$a1', 7450))"
  rejected() { # rejected REASON: summed over the live proxies
    local p s=0 v
    for p in $LAB_PROXIES; do
      [ -n "${KILLED[$p]:-}" ] && continue
      v=$(ctl $p status --json | $PY -c "import json,sys; print((json.load(sys.stdin)['control'].get('plane') or {}).get('rejected', {}).get('$1', 0))")
      s=$((s + v))
    done
    echo $s
  }
  rejected_some() { [ "$(rejected "$1")" -ge 1 ]; }
  wait_for 10 "a proxy refused the wrongly signed join" rejected_some bad_signature
  wait_for 10 "$p1 refused the forged proxy message" rejected_some bad_mac
  row "control: wrong-key join / forged proxy message" "bad_signature $(rejected bad_signature), bad_mac $(rejected bad_mac)" "refused, counted" "$([ "$(rejected bad_signature)" -ge 1 ] && [ "$(rejected bad_mac)" -ge 1 ] && echo ok || echo FAIL)"
}

for s in "${scenarios[@]}"; do "scenario_$s"; done
if [ -n "${LAB_HOLD:-}" ]; then
  # Debugging: keep the lab up (bounded) until $work/release exists.
  echo "lab held for up to ${LAB_HOLD}s: namespaces ${LAB_PREFIX}-*, files in $work; touch $work/release to go on"
  for ((i = 0; i < LAB_HOLD * 5; i++)); do [ -e "$work/release" ] && break; sleep 0.2; done
fi

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

if [ -n "$LAB_VIRTIO_PROXY" ]; then
  # The virtio path carried the traffic: piasd drove net_virtio_user, and
  # testpmd's vhost port (port 0) forwarded it; SIGINT makes testpmd print
  # its totals and exit.
  p=$LAB_VIRTIO_PROXY; eval "vp=\$VHOST_$p"
  grep -q "net_virtio_user0 (net_virtio_user)" "$work/$p.log" || fail "host $p: piasd did not run its port on net_virtio_user"
  kill -INT "$vp" 2>/dev/null; wait "$vp" 2>/dev/null
  vstats=$($PY - "$work/$p.testpmd.log" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
i = t.rfind("Forward statistics for port 0")
m = re.search(r"RX-packets: (\d+).*?TX-packets: (\d+)", t[i:], re.S) if i >= 0 else None
print("%s %s" % m.groups() if m else "none none")
EOF
)
  read -r vrx vtx <<<"$vstats"
  echo "$p: vhost-user port (testpmd port 0): RX $vrx packets from piasd's virtio_user, TX $vtx to it"
  if [ "$vrx" != none ] && [ "$vrx" -gt 100 ] && [ "$vtx" -gt 100 ]; then v=ok; else v=FAIL; fail "host $p: the vhost-user port forwarded too little (RX $vrx, TX $vtx)"; fi
  row "virtio: $p's net_virtio_user <-> vhost-user (testpmd)" "RX $vrx / TX $vtx pkts" "> 100 each" "$v"
fi

say "results"
printf '%-52s %-32s %-14s %s\n' measurement value goal verdict
for r in "${RESULTS[@]}"; do
  IFS='|' read -r a b c d <<<"$r"; printf '%-52s %-32s %-14s %s\n' "$a" "$b" "$c" "$d"
done
if [ "$LAB_FAILED" = 0 ]; then say "anycast lab (${scenarios[*]}${LAB_VIRTIO_PROXY:+, $LAB_VIRTIO_PROXY on virtio}): all checks passed"; else say "anycast lab: FAILED"; exit 1; fi
