# Shared by the control-plane labs (pias-control.sh, pias-failover.sh):
# keys, piasd configs with the control plane on, status queries. Sourced
# after common.sh; pias_lab_begin sets $work, $PIASD, $PIASCTL, $PIAS_TARGET.
# Proxies live on 192.0.2.0/24 behind the router 192.0.2.1; one group
# 198.51.100.10:80/tcp (GROUP_OPTS adds options such as "affinity: true").

# pias_lab_begin: the binaries (PIASD, PIASCTL, PIAS_TARGET; release builds
# of this tree by default), the prerequisites, root, and the work directory.
pias_lab_begin() {
  PIASD=${PIASD:-$top/target/release/piasd}
  PIASCTL=${PIASCTL:-$top/target/release/piasctl}
  PIAS_TARGET=${PIAS_TARGET:-$top/target/release/pias-target}
  lab_require_root
  local c; for c in "ip iproute2" "ethtool ethtool" "python3 python3"; do need $c; done
  [ -x "$PIASD" ] || die "piasd not built at $PIASD"
  [ -x "$PIAS_TARGET" ] || die "pias-target not built at $PIAS_TARGET"
  lab_work
}

# Keys: the proxy group's secret, the group owner's signing key.
pias_keys() {
  python3 -c 'import os; print(os.urandom(32).hex())' > "$work/group.key"
  "$PIAS_TARGET" keygen --out "$work/owner.key" > "$work/owner.pub" || die "pias-target keygen failed"
  OWNER_PUB=$(grep -oE '[0-9a-f]{64}' "$work/owner.pub" | head -1)
  [ -n "$OWNER_PUB" ] || die "pias-target keygen printed no public key: $(cat "$work/owner.pub")"
}

conf() { # conf NAME ID ADDR CLUSTER SEEDS
  cat <<YAML
eal: { lcores: "0@0,1@$(( $2 % $(nproc) ))", memory_mb: 256, no_huge: true, file_prefix: ${LAB_PREFIX}-$1-$$, vdevs: ["net_af_packet0,iface=px0"] }
workers: 1
idle_sleep_us: 50
ports: [ { device: net_af_packet0, address: $3/24, gateway: 192.0.2.1, exception: { tap: pxt$2 } } ]
anycast: { prefixes: [198.51.100.0/24] }
control_socket: $work/piasd-$1.sock
pias:
  me: $2
  proxies: [ { id: $2, address: $3, cluster: $4 } ]
  control:
    key_file: $work/group.key
    boot_file: $work/$1.boot
    seeds: [$5]
    heartbeat_ms: 200
    dead_multiplier: 5
    probe_interval_s: 1
    probe_retry_ms: 300
  groups:
    - group: "198.51.100.10:80/tcp"
      owner_key: "$OWNER_PUB"
      ${GROUP_OPTS:-affinity: false}
YAML
}
start() { # start NAME ID ADDR CLUSTER SEEDS
  conf "$@" > "$work/$1.yaml"
  ip netns exec ${LAB_PREFIX}-$1 "$PIASD" --config "$work/$1.yaml" >"$work/$1.log" 2>&1 &
  eval "pid_$1=$!"; LAB_PIDS+=("$!")
}
ctl() { "$PIASCTL" --socket "$work/piasd-$1.sock" "${@:2}"; }
# jget NAME EXPR: EXPR over w (path counters summed over workers), c (the
# control section), p (the control plane's status), k (its counters);
# jval NAME EXPR prints EXPR.
_jprelude='import json, sys
d = json.load(sys.stdin)
w = {}
for x in d["workers"]:
    for n, v in x["path"].items(): w[n] = w.get(n, 0) + v
c = d["control"]; p = c.get("plane") or {}; k = p.get("counters", {})'
jget() { ctl "$1" status --json | python3 -c "$_jprelude
sys.exit(0 if ($2) else 1)"; }
jval() { ctl "$1" status --json | python3 -c "$_jprelude
print($2)"; }
show() { ctl "$1" status | sed -n '/^control plane/,/driver:/p'; }
# stop_piasd NAME: SIGTERM, exit 0, full mempool.
stop_piasd() {
  local pid rc=0
  eval "pid=\$pid_$1"
  kill -TERM "$pid"; wait "$pid" || rc=$?
  [ "$rc" = 0 ] || { fail "piasd $1 exited $rc"; tail -5 "$work/$1.log"; }
  grep -q "mempool: 0 of" "$work/$1.log" || fail "piasd $1: mempool not full at exit"
}
now() { date +%s.%N; }
secs() { python3 -c "print('%.2f' % ($2 - $1))"; }
# fetch [HOST]: an HTTP/1.0 GET of AA:80 from the client namespace (default cl).
fetch() {
  in_ns "${1:-cl}" timeout 10 bash -c 'exec 3<>/dev/tcp/198.51.100.10/80; printf "GET /index.html HTTP/1.0\r\nHost: anycast\r\n\r\n" >&3; cat <&3' 2>&1
}
