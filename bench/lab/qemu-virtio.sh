#!/usr/bin/env bash
# The QEMU lab (issue 6, item 5, second variant; opt-in): piasd inside a QEMU
# guest whose virtio-net NIC is bound to DPDK (uio_pci_generic, or vfio-pci
# behind a virtual IOMMU) and driven by DPDK's virtio PMD, the path a VM's NIC
# takes. A client in a host namespace, on the same bridge as the guest's tap,
# pings and arpings piasd's unicast and anycast addresses and opens a TCP
# connection to a listener on the guest kernel through piasd's exception tap;
# then piasd gets SIGTERM and must exit 0 with every mbuf back in the pool.
#
# Two ways to hand the NIC to DPDK (PIAS_QEMU_DRIVER), both seen working:
# - uio_pci_generic (default): no IOMMU in the guest (machine pc, a
#   transitional virtio-net). The device DMAs to guest-physical addresses,
#   so EAL runs with hugepages (hugepages=256 on the guest's command line)
#   and IOVA as PA. With --no-huge EAL finds no physical addresses, picks
#   IOVA as VA, and the PCI bus refuses the device ("Expecting 'PA' IOVA
#   mode but current mode is 'VA', not initializing").
# - vfio-pci: the guest gets a virtual IOMMU (machine q35, intel-iommu,
#   intel_iommu=on, a modern virtio-net with iommu_platform=on); EAL picks
#   IOVA as VA and runs with --no-huge, as on a cloud VM with a vIOMMU.
#   vfio-pci without an IOMMU (enable_unsafe_noiommu_mode) is not an
#   option: Debian 12's kernel is built without CONFIG_VFIO_NOIOMMU.
#
# The guest is Debian 12 from debootstrap (its own kernel and initramfs,
# DPDK's runtime libraries from Debian), cached under $PIAS_QEMU_CACHE keyed
# by a hash of its inputs. Its root file system is that directory, shared
# read-only over virtio-9p; a second, writable 9p share carries piasd, its
# config, the guest's init script and, back, the logs.
#
# Runs only with PIAS_QEMU=1 (it needs qemu-system-x86 and debootstrap, a
# network mirror on the first run, and minutes of software emulation where
# KVM is missing); otherwise it says why and exits 0.
#
# Env: PIAS_QEMU=1 (run), PIASD, PIASCTL (binaries; default target/release),
# LAB_PREFIX (default pqemu), PIAS_QEMU_CACHE (default /var/cache/pias-qemu),
# PIAS_QEMU_MIRROR (default http://deb.debian.org/debian), PIAS_QEMU_DRIVER
# (uio_pci_generic, the default, or vfio-pci behind a virtual IOMMU), PIAS_QEMU_ACCEL (tcg, the
# default; kvm, or kvm:tcg to fall back when KVM cannot start; on hosts
# whose /dev/kvm opens without VMX the guest hangs at boot under kvm),
# PIAS_QEMU_BOOT_S (how
# long the guest may take to boot and start piasd; default 300),
# PIAS_QEMU_IMAGE (a guest root built earlier, instead of the cached one).
# Exit status 0 only if every check held (or the lab was skipped).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

if [ "${PIAS_QEMU:-0}" != 1 ]; then
  echo "qemu-virtio lab: skipped (opt-in: set PIAS_QEMU=1; it boots a Debian guest under QEMU, builds the guest image with debootstrap on its first run, and takes minutes under software emulation)"
  exit 0
fi

LAB_PREFIX=${LAB_PREFIX:-pqemu}
. "$here/common.sh"

PIASD=${PIASD:-$top/target/release/piasd}
PIASCTL=${PIASCTL:-$top/target/release/piasctl}
CACHE=${PIAS_QEMU_CACHE:-/var/cache/pias-qemu}
MIRROR=${PIAS_QEMU_MIRROR:-http://deb.debian.org/debian}
DRIVER=${PIAS_QEMU_DRIVER:-uio_pci_generic}
ACCEL=${PIAS_QEMU_ACCEL:-tcg}
BOOT_S=${PIAS_QEMU_BOOT_S:-300}

lab_require_root
for c in "ip iproute2" "python3 python3" "ping iputils-ping" "arping iputils-arping" "ethtool ethtool" \
         "qemu-system-x86_64 qemu-system-x86" "debootstrap debootstrap" "flock util-linux" "timeout coreutils"; do
  need $c
done
[ -x "$PIASD" ] || die "piasd not built at $PIASD (cargo build --release -p piasd)"
[ -x "$PIASCTL" ] || die "piasctl not built at $PIASCTL (cargo build --release -p piasd)"
case "$DRIVER" in vfio-pci|uio_pci_generic) ;; *) die "PIAS_QEMU_DRIVER must be vfio-pci or uio_pci_generic, not '$DRIVER'";; esac
[ -e /dev/net/tun ] || die "/dev/net/tun missing (modprobe tun)"
t0=$SECONDS

# ---------------------------------------------------------------- guest image
# What the guest needs, as Debian names it: its kernel and an initramfs that
# can mount a 9p root, kmod (modprobe vfio-pci), iproute2 (piasd configures
# its exception tap with `ip`), pciutils (lspci in the log), netcat (the TCP
# listener), and DPDK 22.11's runtime libraries: the ones piasd links plus
# the plugins it loads (PCI bus, virtio PMD, ring mempool, tap PMD, vdev bus).
SUITE=bookworm
PKGS=linux-image-amd64,initramfs-tools,kmod,iproute2,pciutils,netcat-openbsd,procps
PKGS=$PKGS,librte-eal23,librte-ethdev23,librte-kvargs23,librte-mbuf23,librte-mempool23,librte-meter23
PKGS=$PKGS,librte-net23,librte-ring23,librte-telemetry23,librte-pci23,librte-bus-pci23,librte-bus-vdev23
PKGS=$PKGS,librte-net-virtio23,librte-mempool-ring23,librte-net-tap23
INITRD_MODULES="9p 9pnet 9pnet_virtio virtio_pci"
# PID 1 of the guest: mounts the writable share and hands over to the init
# script in it, so the script can change without rebuilding the image.
STUB='#!/bin/sh
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 pias /mnt/pias || { echo "stub: cannot mount the pias share"; echo o > /proc/sysrq-trigger; }
exec /bin/sh /mnt/pias/guest-init.sh'
key=$(printf '%s\n' "v1" "$SUITE" "$MIRROR" "$PKGS" "$INITRD_MODULES" "$STUB" | sha256sum | cut -c1-16)
img=$CACHE/$SUITE-$key

# A half-built image from a killed run may still have proc or sys mounted
# inside (debootstrap mounts them): unmount before removing it.
build_pid=
drop_build() {
  local m
  [ -n "$build_pid" ] && kill -TERM -- -"$build_pid" 2>/dev/null && sleep 1
  for m in $(awk -v d="$1/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do umount -l "$m" 2>/dev/null; done
  rm -rf "$1" "$1.log"
}
build_image() {
  local old; tmp=$CACHE/.build-$key-$$
  for old in "$CACHE"/.build-*; do [ -d "$old" ] && drop_build "$old"; done
  mkdir -p "$tmp"
  trap 'drop_build "$tmp"' EXIT
  say "guest image: debootstrap $SUITE into $img (first run only; a few minutes)"
  # In its own process group, waited for in the background: debootstrap
  # sits through SIGINT, and Ctrl-C must stop the build now.
  setsid timeout 1800 debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$tmp" "$MIRROR" >"$tmp.log" 2>&1 9>&- &
  build_pid=$!
  if ! wait $build_pid; then
    tail -20 "$tmp.log" >&2; die "debootstrap $SUITE from $MIRROR failed or ran past 30 min (log above)"
  fi
  build_pid=
  printf '%s\n' $INITRD_MODULES >> "$tmp/etc/initramfs-tools/modules"
  setsid timeout 600 chroot "$tmp" update-initramfs -u -k all >>"$tmp.log" 2>&1 9>&- &
  build_pid=$!
  wait $build_pid || { tail -20 "$tmp.log" >&2; die "update-initramfs in the guest image failed"; }
  build_pid=
  printf '%s\n' "$STUB" > "$tmp/sbin/pias-init"; chmod 755 "$tmp/sbin/pias-init"
  mkdir -p "$tmp/mnt/pias"
  rm -rf "$tmp/var/cache/apt/archives/"*.deb
  mv "$tmp.log" "$tmp/debootstrap-build.log"
  mv "$tmp" "$img"
  trap - EXIT
}
mkdir -p "$CACHE" || die "cannot create $CACHE"
trap 'exit 130' INT TERM
exec 9>"$CACHE/.lock"
flock -w 900 9 || die "another run has held $CACHE/.lock for 15 minutes"
if [ -n "${PIAS_QEMU_IMAGE:-}" ]; then
  img=$PIAS_QEMU_IMAGE
  [ -e "$img/sbin/pias-init" ] || die "PIAS_QEMU_IMAGE=$img is not a guest image built by this script"
  say "guest image: $img (PIAS_QEMU_IMAGE)"
elif [ ! -e "$img/sbin/pias-init" ]; then
  rm -rf "$img"; build_image
  say "guest image built in $((SECONDS - t0)) s"
else
  say "guest image: cached at $img"
fi
flock -u 9; exec 9>&-
kernel=$(ls "$img"/boot/vmlinuz-* 2>/dev/null | sort -V | tail -1)
initrd=$(ls "$img"/boot/initrd.img-* 2>/dev/null | sort -V | tail -1)
[ -n "$kernel" ] && [ -n "$initrd" ] || die "no kernel or initrd in $img/boot (remove $img to rebuild)"

# ---------------------------------------------------------------- lab network
work=$(mktemp -d /tmp/${LAB_PREFIX}.XXXXXX)
chmod 755 "$work"
cleanup() { lab_teardown; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
lab_clean_stale

CL=192.0.2.2 GW=192.0.2.1 PX=192.0.2.10 AA=198.51.100.10
MAC=52:54:00:12:34:56 BDF=0000:00:04.0
say "lab: ${LAB_PREFIX}-br (bridge pqbr0: the guest's tap pqt0, veth pqv0) and ${LAB_PREFIX}-cl (client $CL on pqc0)"
lab_ns br >/dev/null; lab_ns cl >/dev/null
lab_veth br pqv0 cl pqc0
in_ns br ip link add pqbr0 type bridge || die "bridge pqbr0 in ${LAB_PREFIX}-br"
in_ns br sysctl -qw net.ipv6.conf.all.disable_ipv6=1
in_ns br ip link set pqv0 master pqbr0
in_ns br ip link set pqbr0 up
in_ns cl sysctl -qw net.ipv6.conf.all.disable_ipv6=1
in_ns cl ip addr add $CL/24 dev pqc0
in_ns cl ip addr add $GW/24 dev pqc0          # the proxy's gateway lives here too
in_ns cl ip route add 198.51.100.0/24 via $PX
lab_no_offload cl pqc0

# ---------------------------------------------------------------- guest files
cp "$PIASD" "$PIASCTL" "$work/"
if [ "$DRIVER" = vfio-pci ]; then
  eal_mem="  no_huge: true
  extra: [\"--iova-mode=va\"]"
else
  eal_mem="  extra: [\"--iova-mode=pa\"]"
fi
cat > "$work/piasd.yaml" <<EOF
# piasd in the QEMU guest: its port is the virtio-net NIC at $BDF, bound to
# $DRIVER and driven by DPDK's virtio PMD (uio_pci_generic: no IOMMU,
# hugepages and IOVA as PA; vfio-pci: a virtual IOMMU, --no-huge, IOVA as VA).
eal:
  lcores: "0@0,1@1"
  memory_mb: 256
  file_prefix: ${LAB_PREFIX}
  allow: ["$BDF"]
$eal_mem
workers: 1
idle_sleep_us: 50
ports:
  - device: "$BDF"
    address: $PX/24
    gateway: $GW
    exception: { tap: pias0 }
anycast:
  prefixes: [198.51.100.0/24]
metrics: { listen: "127.0.0.1:9464" }
control_socket: /run/pias/piasd.sock
EOF
cat > "$work/guest-init.sh" <<EOF
# PID 1 in the guest (run by /sbin/pias-init from the image). Talks to the
# host through files in /mnt/pias: writes ready (piasd answers piasctl),
# then status.json twice a second until the host writes stop; then stops
# piasd with SIGTERM, writes its exit status to piasd.rc and powers off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
S=/mnt/pias BDF=$BDF DRIVER=$DRIVER
log() { echo "guest: \$*" > /dev/console; echo "guest: \$*" >> \$S/guest.log; }
off() { sync; echo o > /proc/sysrq-trigger; sleep 5; }
# The initramfs hands over /proc, /sys and /dev mounted; /run is ours.
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sys /sys
mount -t tmpfs tmpfs /run; mount -t tmpfs tmpfs /tmp
mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages
log "kernel \$(uname -r), \$(nproc) cpus, \$(grep MemTotal /proc/meminfo | tr -s ' ')"
log "hugepages: \$(cat /proc/sys/vm/nr_hugepages) x 2 MiB"
ip link set lo up
modprobe tun || log "modprobe tun failed"
case \$DRIVER in
  vfio-pci) modprobe vfio-pci || { log "modprobe vfio-pci failed"; off; } ;;
  uio_pci_generic) modprobe uio_pci_generic || { log "modprobe uio_pci_generic failed"; off; } ;;
esac
d=/sys/bus/pci/devices/\$BDF
[ -e \$d ] || { log "no PCI device \$BDF"; lspci >> \$S/guest.log; off; }
echo \$DRIVER > \$d/driver_override
[ -e \$d/driver ] && echo \$BDF > \$d/driver/unbind
echo \$BDF > /sys/bus/pci/drivers_probe
log "\$BDF (\$(lspci -s \$BDF | cut -d' ' -f2-)) bound to \$(basename \$(readlink \$d/driver))"
mkdir -p /run/pias
\$S/piasd --config \$S/piasd.yaml > \$S/piasd.log 2>&1 &
pid=\$!
i=0
until \$S/piasctl --socket /run/pias/piasd.sock status > /dev/null 2>&1; do
  i=\$((i + 1))
  if [ \$i -gt 600 ] || ! kill -0 \$pid 2>/dev/null; then log "piasd did not come up"; wait \$pid; echo \$? > \$S/piasd.rc; off; fi
  sleep 0.2
done
log "piasd is up"
( echo "hello from the guest kernel" | nc -N -l $PX 8080 > /dev/null 2>&1 & )
touch \$S/ready
i=0
# Publish piasctl's status for the host twice a second until it says stop.
until [ -e \$S/stop ]; do
  i=\$((i + 1)); [ \$i -gt 1200 ] && { log "no stop from the host in 600 s"; break; }
  \$S/piasctl --socket /run/pias/piasd.sock status --json > \$S/status.tmp 2>&1 && mv \$S/status.tmp \$S/status.json
  sleep 0.5
done
kill -TERM \$pid
wait \$pid; rc=\$?
echo \$rc > \$S/piasd.rc
log "piasd exited \$rc"
off
EOF

# ---------------------------------------------------------------- boot
accel_args=()
IFS=: read -ra accs <<< "$ACCEL"
for a in "${accs[@]}"; do accel_args+=(-accel "$a"); done
cpu=max
if [ "$DRIVER" = vfio-pci ]; then
  machine=(-machine q35 -device intel-iommu,caching-mode=on)
  nic=virtio-net-pci,netdev=n0,mac=$MAC,addr=0x4,disable-legacy=on,iommu_platform=on
  iommu=intel_iommu=on
else
  machine=(-machine pc)
  nic=virtio-net-pci,netdev=n0,mac=$MAC,bus=pci.0,addr=0x4
  iommu=
fi
say "boot the guest (qemu -accel ${ACCEL//:/ then }, NIC virtio-net-pci at $BDF, $MAC)"
tboot=$SECONDS
ip netns exec "${LAB_PREFIX}-br" qemu-system-x86_64 \
  "${accel_args[@]}" -cpu $cpu -smp 2 -m 1024 "${machine[@]}" \
  -display none -nodefaults -no-reboot -serial "file:$work/console.log" \
  -kernel "$kernel" -initrd "$initrd" \
  -append "root=rootfs rootfstype=9p rootflags=trans=virtio,version=9p2000.L,msize=262144 ro init=/sbin/pias-init console=ttyS0 $iommu hugepages=256 panic=-1 quiet loglevel=4" \
  -fsdev local,id=rootfs,path="$img",security_model=none,readonly=on \
  -device virtio-9p-pci,fsdev=rootfs,mount_tag=rootfs \
  -fsdev local,id=pias,path="$work",security_model=none \
  -device virtio-9p-pci,fsdev=pias,mount_tag=pias \
  -netdev tap,id=n0,ifname=pqt0,script=no,downscript=no \
  -device "$nic" \
  >"$work/qemu.log" 2>&1 &
qemu_pid=$!
LAB_PIDS+=("$qemu_pid")
wait_for 20 "qemu's tap pqt0" ip -n "${LAB_PREFIX}-br" link show pqt0 || { cat "$work/qemu.log"; exit 1; }
in_ns br ip link set pqt0 master pqbr0
in_ns br ip link set pqt0 up

guest_up() { [ -e "$work/ready" ] || [ -e "$work/piasd.rc" ] || ! kill -0 "$qemu_pid"; }
if ! wait_for "$BOOT_S" "the guest to boot and start piasd" guest_up || [ ! -e "$work/ready" ]; then
  fail "guest did not start piasd"
  echo "--- qemu"; cat "$work/qemu.log"; echo "--- console (tail)"; tail -40 "$work/console.log"
  echo "--- guest"; cat "$work/guest.log" 2>/dev/null; echo "--- piasd"; cat "$work/piasd.log" 2>/dev/null
  exit 1
fi
say "guest up, piasd running: $((SECONDS - tboot)) s after qemu started"
cat "$work/guest.log"
grep -E "IOVA|Probe PCI" "$work/piasd.log"

# ---------------------------------------------------------------- traffic
check_ping() {
  local out; out=$(in_ns cl ping -c 3 -i 0.2 -W 5 "$1" 2>&1)
  echo "$out" | tail -2
  echo "$out" | grep -q " 3 received" || fail "ping $1: not all 3 answered"
}
# The first packet may wait for piasd to resolve the gateway: give ARP a try.
wait_for 30 "a first echo reply from $PX" in_ns cl ping -c 1 -W 1 $PX
say "ping the unicast address $PX and the anycast address $AA"
check_ping $PX
check_ping $AA

check_arping() {
  local out; out=$(in_ns cl arping -c 2 -w 5 -I pqc0 "$1" 2>&1)
  echo "$out" | grep -i "reply\|from" | head -2
  echo "$out" | grep -qi "$MAC" || fail "arping $1: no reply from the guest NIC's MAC $MAC"
}
say "arping $PX and $AA (answers must come from the virtio NIC's MAC $MAC)"
check_arping $PX
check_arping $AA

say "TCP to $PX:8080: a listener on the guest's kernel, through piasd's exception tap"
line=$(in_ns cl timeout 20 bash -c "exec 3<>/dev/tcp/$PX/8080; head -1 <&3" 2>&1)
echo "$line"
[ "$line" = "hello from the guest kernel" ] || fail "TCP through the exception path: got '$line'"

# ---------------------------------------------------------------- stop
say "piasctl status in the guest (published on the share; counters are published once a second)"
jget() { python3 -c "import json,sys; d=json.load(open('$work/status.json')); sys.exit(0 if ($1) else 1)"; }
wait_for 20 "6 echo replies counted" jget 'sum(w["echo_replied"] for w in d["workers"]) >= 6'
wait_for 10 "4 ARP replies counted" jget 'd["control"]["arp_replied"] >= 4'
wait_for 10 "packets written to the kernel tap" jget 'd["control"]["to_kernel"] > 0'
wait_for 10 "packets from the kernel tap sent out" jget 'd["control"]["from_kernel"] > 0'
python3 - "$work/status.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
w = d["workers"]; c = d["control"]; p = d["ports"][0]
print(f"  port {p['device']} ({p['driver']}) mac {p['mac']} link_up {p['link_up']}; "
      f"echo replies {sum(x['echo_replied'] for x in w)}, ARP replies {c['arp_replied']}, "
      f"to kernel {c['to_kernel']}, from kernel {c['from_kernel']}")
PY
jget 'd["ports"][0]["driver"] == "net_virtio"' || fail "the guest's port is not driven by net_virtio"

say "SIGTERM: piasd in the guest must exit 0 with every mbuf back in the pool"
touch "$work/stop"
wait_for 120 "the guest to power off" sh -c "! kill -0 $qemu_pid"
tail -4 "$work/piasd.log"
rc=$(cat "$work/piasd.rc" 2>/dev/null || echo none)
[ "$rc" = 0 ] || fail "piasd in the guest exited $rc"
grep -q "mempool: 0 of" "$work/piasd.log" || fail "mempool not full at exit"

if [ "$LAB_FAILED" = 0 ]; then
  say "qemu-virtio lab: all checks passed in $((SECONDS - t0)) s"
else
  say "qemu-virtio lab: FAILED"
  echo "--- guest"; cat "$work/guest.log" 2>/dev/null; echo "--- piasd"; cat "$work/piasd.log"
  exit 1
fi
