#!/usr/bin/env bash
# Installs what pias needs on Debian 12 (bookworm), as root: DPDK 22.11 from
# Debian, the toolchain pieces bindgen needs, and the tools the labs and tests
# drive. Installs a Rust toolchain with rustup only if cargo is missing or
# older than the workspace's rust-version. Safe to run again: it installs
# only what is missing.
set -euo pipefail

PKGS=(
  libdpdk-dev dpdk-dev dpdk          # DPDK 22.11 headers, libs, PMDs, testpmd
  pkg-config libclang-dev clang build-essential   # bindgen + the C shim
  iproute2 iputils-ping iputils-arping ethtool tcpdump   # labs
  python3 python3-scapy netcat-openbsd curl ca-certificates   # traffic and packet crafting
  valgrind                          # callgrind instruction counts (bench)
  bird2 nginx-light unbound iperf3 dnsutils python3-yaml   # the anycast lab (bench/lab/anycast.sh)
)
# The QEMU lab (bench/lab/qemu-virtio.sh) is opt-in: its tools only with
# PIAS_QEMU=1, so CI installs and runs nothing of it.
if [ "${PIAS_QEMU:-0}" = 1 ]; then
  PKGS+=(qemu-system-x86 debootstrap)
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}; run as root or: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The lab runs BIRD, nginx and unbound inside its namespaces only: keep
  # the packages' own services from starting on the host (policy-rc.d,
  # Debian's switch for maintainer scripts), unless one is already set.
  rcd=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    rcd=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' > "$rcd"; chmod +x "$rcd"
  fi
  rc=0; apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  [ -z "$rcd" ] || rm -f "$rcd"
  [ "$rc" = 0 ] || { echo "setup: apt-get install ${missing[*]} failed ($rc)" >&2; exit "$rc"; }
fi

need_rust=1.80
have_rust() {
  command -v cargo >/dev/null 2>&1 || return 1
  local v; v=$(rustc --version | awk '{print $2}')
  [ "$(printf '%s\n%s\n' "$need_rust" "$v" | sort -V | head -1)" = "$need_rust" ]
}
if ! have_rust; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
if ! have_rust; then
  echo "setup: installing a stable Rust toolchain with rustup (Debian 12's rustc is too old)"
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  . "$HOME/.cargo/env"
fi
pkg-config --modversion libdpdk | grep -q '^22\.11' || { echo "setup: DPDK 22.11 expected, found $(pkg-config --modversion libdpdk)" >&2; exit 1; }
echo "setup: ok (DPDK $(pkg-config --modversion libdpdk), $(rustc --version))"
