# Shared helpers for pias lab scripts: prerequisites, namespaces, teardown.
# Sourced, not run. Every lab keeps its traffic inside namespaces it made,
# on documentation addresses only (192.0.2.0/24, 198.51.100.0/24,
# 203.0.113.0/24), and tears everything down on exit, failure or Ctrl-C.

set -u

LAB_PREFIX=${LAB_PREFIX:-pias}
LAB_NETNS=()
LAB_PIDS=()
LAB_FAILED=0

say()  { printf '\033[1m== %s\033[0m\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; LAB_FAILED=1; }
die()  { printf 'lab: %s\n' "$*" >&2; exit 1; }

# need CMD PACKAGE: say what is missing instead of failing obscurely.
need() {
  command -v "$1" >/dev/null 2>&1 || die "missing command '$1' (Debian package '$2'); install it with: apt-get install -y $2"
}

lab_require_root() {
  [ "$(id -u)" = 0 ] || die "the lab needs root (network namespaces, veth, taps)"
}

# ns NAME: create a namespace (removing a stale one from a killed run).
lab_ns() {
  local n="${LAB_PREFIX}-$1"
  ip netns del "$n" 2>/dev/null || true
  ip netns add "$n" || die "ip netns add $n failed"
  ip -n "$n" link set lo up
  LAB_NETNS+=("$n")
  echo "$n"
}

# in NAME CMD...: run in a lab namespace; a failure names host and command.
in_ns() {
  local n="${LAB_PREFIX}-$1"; shift
  ip netns exec "$n" "$@"
}

lab_bg() { "$@" & LAB_PIDS+=($!); }

lab_teardown() {
  local p n
  # stderr off for the whole block: bash reports each background job
  # that dies of a signal here ("Killed ... ip netns exec ..."), which is
  # the teardown doing its job, not news.
  {
    for p in "${LAB_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p"; done
    sleep 0.2
    for p in "${LAB_PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p"; done
    for n in "${LAB_NETNS[@]:-}"; do
      [ -n "$n" ] || continue
      # Kill anything still running inside (a daemon started by hand).
      for p in $(ip netns pids "$n"); do kill -9 "$p"; done
      ip netns del "$n"
    done
    sleep 0.1
  } 2>/dev/null
  LAB_NETNS=(); LAB_PIDS=()
}

# Removes namespaces left by a killed run with this prefix.
lab_clean_stale() {
  local n p
  for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${LAB_PREFIX}-" || true); do
    for p in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$n" 2>/dev/null
  done
}

# wait_for SECONDS DESCRIPTION CMD...: poll a condition, never sleep blind.
wait_for() {
  local t=$1 what=$2; shift 2
  local end=$((SECONDS + t))
  while [ $SECONDS -lt $end ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  fail "timed out after ${t}s waiting for: $what"
  return 1
}

# veth A_NS A_IF B_NS B_IF: a link between two lab namespaces.
lab_veth() {
  ip link add "$2" netns "${LAB_PREFIX}-$1" type veth peer name "$4" netns "${LAB_PREFIX}-$3" \
    || die "cannot create veth $2<->$4"
  ip -n "${LAB_PREFIX}-$1" link set "$2" up
  ip -n "${LAB_PREFIX}-$3" link set "$4" up
}

# Hands a veth end to DPDK's af_packet PMD: the kernel must not also answer
# on it (the proxy's address lives on the exception tap in the same
# namespace, and Linux answers for any local address on any interface).
# DPDK reads frames from its AF_PACKET socket before the IP stack sees them;
# then the stack is told to ignore the veth: no ARP replies (arp_ignore=8),
# strict reverse-path filtering (every route back points at the tap, so
# every IPv4 packet arriving on the veth fails it and is dropped), no IPv6.
lab_dpdk_port() {
  local ns="${LAB_PREFIX}-$1" ifc=$2
  ip netns exec "$ns" sh -c "
    sysctl -qw net.ipv6.conf.$ifc.disable_ipv6=1 &&
    sysctl -qw net.ipv4.conf.$ifc.arp_ignore=8 &&
    sysctl -qw net.ipv4.conf.$ifc.rp_filter=1 &&
    sysctl -qw net.ipv4.conf.all.rp_filter=1" || die "cannot silence the kernel on $ifc in $ns"
}

# veth peers of a DPDK port send with checksum offload: a TCP/UDP checksum
# left for the NIC would reach DPDK unfinished. Real NICs finish them.
lab_no_offload() {
  ip netns exec "${LAB_PREFIX}-$1" ethtool -K "$2" tx off >/dev/null 2>&1 || die "ethtool -K $2 tx off failed"
}

# lab_work: a work directory removed with the lab on exit, failure or
# Ctrl-C; clears what a killed run with this prefix left. Sets $work.
lab_work() {
  work=$(mktemp -d /tmp/${LAB_PREFIX}.XXXXXX)
  trap 'lab_teardown; rm -rf "$work"' EXIT
  trap 'exit 130' INT TERM
  lab_clean_stale
}

# lab_router: namespace rt routing between the proxies' LAN (bridge brpx,
# 192.0.2.1/24) and the clients' and targets' LAN (bridge brex,
# 203.0.113.1/24). Sets $RT.
lab_router() {
  lab_ns rt >/dev/null
  RT=${LAB_PREFIX}-rt
  ip netns exec $RT sysctl -qw net.ipv4.ip_forward=1
  ip -n $RT link add name brpx type bridge; ip -n $RT link set brpx up
  ip -n $RT link add name brex type bridge; ip -n $RT link set brex up
  ip -n $RT addr add 192.0.2.1/24 dev brpx
  ip -n $RT addr add 203.0.113.1/24 dev brex
}

# lab_proxy_host NAME: a proxy namespace whose px0 (a DPDK af_packet port)
# sits on brpx.
lab_proxy_host() {
  lab_ns "$1" >/dev/null
  lab_veth "$1" px0 rt "v$1"
  ip -n "${LAB_PREFIX}-rt" link set "v$1" master brpx
  lab_no_offload rt "v$1"
  lab_dpdk_port "$1" px0
}

# lab_edge_host NAME IFACE ADDR: a client or target namespace on brex.
lab_edge_host() {
  lab_ns "$1" >/dev/null
  lab_veth "$1" "$2" rt "v$1"; ip -n "${LAB_PREFIX}-rt" link set "v$1" master brex
  in_ns "$1" ip addr add "$3/24" dev "$2"; in_ns "$1" ip route add default via 203.0.113.1
  lab_no_offload "$1" "$2"
}
