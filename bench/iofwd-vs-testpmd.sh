#!/usr/bin/env bash
# io forwarding through the pias-dpdk safe layer (bench/src/bin/iofwd.rs)
# against DPDK's own `dpdk-testpmd --forward-mode=io`, on the same virtual
# devices, the same lcores, the same pool and descriptor sizes, for the same
# time, alternating ROUNDS times (the machine is noisy: compare medians).
#
#   rx: net_pcap0 replaying a 60-byte UDP pcap forever (infinite_rx=1)
#   tx: net_null0 (no-rx=1, so testpmd's reverse stream stays idle)
#
# Both sides are measured the same way: the tx port's packet rate sampled
# once a second (testpmd: --stats-period 1 "Tx-pps" of port 1; iofwd: its
# own sampler over rte_eth_stats), first sample dropped, median of the rest.
#
# Usage: bench/iofwd-vs-testpmd.sh            (SECS=10 ROUNDS=3 LCORES=0,1)
set -euo pipefail

SECS=${SECS:-10}
ROUNDS=${ROUNDS:-3}
LCORES=${LCORES:-0,1}      # main lcore + one forwarding lcore
MBUFS=${MBUFS:-16384}
PY=/usr/bin/python3

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
target=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d /tmp/pias-iofwd.XXXXXX)
prefixes=()

cleanup() {
    local p
    for p in "${prefixes[@]}"; do
        rm -rf "/var/run/dpdk/$p" "${XDG_RUNTIME_DIR:-/tmp}/dpdk/$p" "/tmp/dpdk/$p"
    done
    rm -rf "$work"
}
trap cleanup EXIT

command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd not found (apt-get install dpdk-dev)" >&2; exit 1; }
[ -x "$PY" ] || { echo "$PY not found" >&2; exit 1; }

# 64 different 60-byte Ethernet/IPv4/UDP frames (documentation addresses).
pcap=$work/udp60.pcap
"$PY" - "$pcap" <<'PYEOF'
import struct, sys

def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF

with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i in range(64):
        payload = bytes(60 - 14 - 20 - 8)
        udp = struct.pack("!HHHH", 1024 + i, 5001, 8 + len(payload), 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0,
                         bytes([198, 51, 100, 1]), bytes([203, 0, 113, 7]))
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        frame = bytes.fromhex("020000000002020000000001") + b"\x08\x00" + ip + udp
        assert len(frame) == 60
        f.write(struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame)
PYEOF

echo "== building iofwd (release)"
(cd "$root" && cargo build --release -p pias-bench --bin iofwd)
iofwd=$target/release/iofwd

eal=(-l "$LCORES" --no-huge -m 512 --no-pci
     --vdev "net_pcap0,rx_pcap=$pcap,infinite_rx=1" --vdev "net_null0,no-rx=1")

# Median of the per-second Tx-pps samples of port 1 in a testpmd log, in Mpps.
testpmd_mpps() {
    "$PY" - "$1" <<'PYEOF'
import re, statistics, sys
port, vals = None, []
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"NIC statistics for port (\d+)", line)
    if m:
        port = int(m.group(1))
    m = re.search(r"Tx-pps:\s+(\d+)", line)
    if m and port == 1:
        vals.append(int(m.group(1)))
vals = [v for v in vals if v > 0][1:]   # first show has no rate; next includes ramp-up
print("%.3f" % (statistics.median(vals) / 1e6) if vals else "nan")
PYEOF
}

tp=()
us=()
for r in $(seq 1 "$ROUNDS"); do
    p=pias-bench-tp-$$-$r
    prefixes+=("$p")
    # testpmd forwards until SIGINT, then prints its accumulated statistics.
    # 2 s extra for its start-up, so both sides get SECS of samples.
    timeout -k 5 $((SECS + 60)) timeout -s INT $((SECS + 2)) \
        dpdk-testpmd "${eal[@]}" --file-prefix="$p" -- \
        --forward-mode=io --burst=32 --rxd=1024 --txd=1024 --mbcache=256 \
        --total-num-mbufs="$MBUFS" --stats-period 1 \
        </dev/null >"$work/testpmd-$r.log" 2>&1 || true
    t=$(testpmd_mpps "$work/testpmd-$r.log")
    acc=$(grep -a -A2 "Accumulated forward statistics" "$work/testpmd-$r.log" | grep -ao "TX-packets: *[0-9]*" | head -1 || true)
    if [ "$t" = nan ]; then
        echo "testpmd round $r produced no samples; log:" >&2
        tail -40 "$work/testpmd-$r.log" >&2
        exit 1
    fi

    p=pias-bench-io-$$-$r
    prefixes+=("$p")
    timeout -k 5 $((SECS + 60)) "$iofwd" --seconds "$SECS" --mbufs $((MBUFS - 1)) --desc 1024 -- \
        "${eal[@]}" --file-prefix="$p" >"$work/iofwd-$r.log" 2>&1 || {
        echo "iofwd round $r failed; log:" >&2
        tail -40 "$work/iofwd-$r.log" >&2
        exit 1
    }
    u=$(sed -n 's/.*median_sample_tx_mpps=\([0-9.]*\).*/\1/p' "$work/iofwd-$r.log")
    loop=$(grep -a "^loop:" "$work/iofwd-$r.log" || true)
    [ -n "$u" ] || { echo "iofwd round $r printed no result" >&2; cat "$work/iofwd-$r.log" >&2; exit 1; }

    echo "round $r: testpmd io ${t} Mpps (${acc:-?})   iofwd ${u} Mpps (${loop})"
    tp+=("$t")
    us+=("$u")
done

"$PY" - "${tp[*]}" "${us[*]}" <<'PYEOF'
import statistics, sys
tp = [float(x) for x in sys.argv[1].split()]
us = [float(x) for x in sys.argv[2].split()]
mt, mu = statistics.median(tp), statistics.median(us)
print("median over %d rounds: testpmd io %.2f Mpps, iofwd (pias-dpdk) %.2f Mpps, ratio ours/testpmd %.3f"
      % (len(tp), mt, mu, mu / mt))
PYEOF
