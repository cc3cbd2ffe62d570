#!/usr/bin/env bash
# The PIAS packet path on one forwarding lcore (bench/src/bin/pathfwd.rs)
# against DPDK's own forwarders, in one invocation, alternating the sides
# round by round (the machine is noisy: compare medians, read ratios only).
# Issue 4, "Benchmarks". Three parts:
#
#  1. stages (MODES): per mode, ROUNDS × [testpmd --forward-mode=io, pathfwd]
#     on the same devices, lcores, pool and descriptors:
#       rx net_pcap0 replaying the mode's traffic (FLOWS flows, one packet
#          each; written by `pathfwd --write-pcap`) with infinite_rx=1,
#       tx net_null0.
#     Targets (of testpmd io): iap-cached >= 0.70, rap >= 0.60,
#     jap (existing flows) >= 0.60, reverse >= 0.65. Each round also runs
#     testpmd in the REFS forward modes (default csum: DPDK's engine that
#     parses the headers and recomputes the checksums in software, as a
#     forwarder that touches the packet) on the same devices, reported as
#     a ratio of io: what a minimal header-touching stage costs here.
#  2. new flows (jap-new): net_pcap cannot replay unbounded new flows, so
#     pathfwd generates its frames in the lcore (--source gen: alloc_bulk of
#     32 mbufs + a frame write per packet, as net_pcap's infinite rx does)
#     into net_null0; ROUNDS × [pathfwd --io --source gen (the generator
#     alone), pathfwd jap-new with NAT timeouts of 1 s (creations and
#     expiries balance: the steady state), pathfwd jap-new with 1 h
#     timeouts (an empty 8 Mi-flow table filling)]. Target: >= 3 M new
#     flows/s on the core.
#  3. flows (SWEEP_FLOWS, SWEEP_MODE, default jap with existing flows): the
#     same generator at 1 k, 100 k, 1 M and 10 M flows (net_pcap would need
#     an mbuf per flow), each round [testpmd txonly (DPDK's own generator, a
#     reference for ours), pathfwd --io --source gen, pathfwd at each size].
#     Targets: 10 M >= 0.7 x 1 k, and NAT memory at 10 M <= 1 GiB.
#     With SWEEP_THP=1 (default) each size also runs with --thp: the NAT
#     table on transparent huge pages (this machine's THP policy is
#     madvise, so a plain Vec gets 4 KiB pages), to show the TLB's share.
#
# Every side's figure is the tx port's packet rate sampled once a second
# (testpmd: --stats-period 1 "Tx-pps"; pathfwd: its own sampler), first
# sample dropped, median of the rest; then the median over rounds.
#
# Usage: bench/path-vs-testpmd.sh   (SECS=5 ROUNDS=3 LCORES=0,1; PARTS="stages newflows flows")
set -euo pipefail

SECS=${SECS:-5}
ROUNDS=${ROUNDS:-3}
LCORES=${LCORES:-0,1}      # main lcore + one forwarding lcore
MBUFS=${MBUFS:-16384}
FLOWS=${FLOWS:-1024}
MODES=${MODES:-"iap-cached rap jap reverse"}
REFS=${REFS:-csum}         # testpmd forward modes also run per stage round, as references
PARTS=${PARTS:-"stages newflows flows"}
SWEEP_MODE=${SWEEP_MODE:-jap}
SWEEP_FLOWS=${SWEEP_FLOWS:-"1000 100000 1000000 10000000"}
SWEEP_THP=${SWEEP_THP:-1}  # also run each size with --thp (NAT table on 2 MiB pages)
PY=/usr/bin/python3

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
target=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d /tmp/pias-pathfwd.XXXXXX)
prefixes=()
summary=()

cleanup() {
    local p
    for p in "${prefixes[@]}"; do
        rm -rf "/var/run/dpdk/$p" "${XDG_RUNTIME_DIR:-/tmp}/dpdk/$p" "/tmp/dpdk/$p"
    done
    rm -rf "$work"
}
trap cleanup EXIT

command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd not found (apt-get install dpdk-dev)" >&2; exit 1; }
[ -x "$PY" ] || PY=python3

echo "== building pathfwd (release)"
(cd "$root" && cargo build --release -p pias-bench --bin pathfwd)
pathfwd=$target/release/pathfwd
echo "== $(date -u +%FT%TZ) $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo no-git) SECS=$SECS ROUNDS=$ROUNDS LCORES=$LCORES"

# Median of the per-second Tx-pps samples of port $2 in a testpmd log, in Mpps.
testpmd_mpps() {
    "$PY" - "$1" "$2" <<'PYEOF'
import re, statistics, sys
want, port, vals = int(sys.argv[2]), None, []
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"NIC statistics for port (\d+)", line)
    if m:
        port = int(m.group(1))
    m = re.search(r"Tx-pps:\s+(\d+)", line)
    if m and port == want:
        vals.append(int(m.group(1)))
vals = [v for v in vals if v > 0][1:]   # first show has no rate; next includes ramp-up
print("%.3f" % (statistics.median(vals) / 1e6) if vals else "nan")
PYEOF
}

med() { "$PY" -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:] if x!="nan"]; print("%.3f" % statistics.median(v) if v else "nan")' "$@"; }
ratio() { "$PY" -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print("%.3f" % (a/b) if b>0 else "nan")' "$1" "$2"; }
verdict() { "$PY" -c 'import sys; print("met" if float(sys.argv[1]) >= float(sys.argv[2]) else "MISSED by %.0f%%" % ((1 - float(sys.argv[1]) / float(sys.argv[2])) * 100))' "$1" "$2"; }

run_n=0
# testpmd LOG PORT -- EAL... -- testpmd args: runs SECS (+2 s start-up), prints Mpps.
run_testpmd() {
    local log=$1 port=$2; shift 2
    run_n=$((run_n + 1))
    local p=pias-pathfwd-tp-$$-$run_n
    prefixes+=("$p")
    timeout -k 5 $((SECS + 60)) timeout -s INT $((SECS + 2)) \
        dpdk-testpmd --file-prefix="$p" "$@" </dev/null >"$log" 2>&1 || true
    local t
    t=$(testpmd_mpps "$log" "$port")
    if [ "$t" = nan ]; then
        echo "testpmd produced no samples ($log):" >&2
        tail -30 "$log" >&2
        exit 1
    fi
    echo "$t"
}
# run_pathfwd LOG pathfwd-args... -- EAL...: prints the pathfwd-result line.
run_pathfwd() {
    local log=$1; shift
    run_n=$((run_n + 1))
    local p=pias-pathfwd-pf-$$-$run_n
    prefixes+=("$p")
    timeout -k 5 $((SECS + 120)) "$pathfwd" --seconds "$SECS" --mbufs $((MBUFS - 1)) --desc 1024 "$@" --file-prefix="$p" \
        >"$log" 2>&1 || { echo "pathfwd failed ($log):" >&2; tail -30 "$log" >&2; exit 1; }
    grep -a "^pathfwd-result:" "$log" || { echo "pathfwd printed no result ($log)" >&2; tail -30 "$log" >&2; exit 1; }
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

tp_args=(--burst=32 --rxd=1024 --txd=1024 --mbcache=256 --total-num-mbufs="$MBUFS" --stats-period 1)

# ---- 1. stages against testpmd io ------------------------------------------
if [[ " $PARTS " == *" stages "* ]]; then
    for mode in $MODES; do
        case $mode in
            iap-cached) goal=0.70 ;;
            rap) goal=0.60 ;;
            jap) goal=0.60 ;;
            reverse) goal=0.65 ;;
            *) goal=0 ;;
        esac
        pcap=$work/$mode.pcap
        "$pathfwd" --mode "$mode" --flows "$FLOWS" --write-pcap "$pcap" 2>/dev/null
        eal=(-l "$LCORES" --no-huge -m 512 --no-pci
             --vdev "net_pcap0,rx_pcap=$pcap,infinite_rx=1" --vdev "net_null0,no-rx=1")
        echo "== stage $mode: $FLOWS flows, $(wc -c <"$pcap") byte pcap; testpmd io vs pathfwd, $ROUNDS x $SECS s"
        tps=(); pfs=(); declare -A refs=()
        for r in $(seq 1 "$ROUNDS"); do
            t=$(run_testpmd "$work/tp-$mode-$r.log" 1 "${eal[@]}" -- --forward-mode=io "${tp_args[@]}")
            res=$(run_pathfwd "$work/pf-$mode-$r.log" --mode "$mode" --flows "$FLOWS" -- "${eal[@]}")
            u=$(field median_sample_tx_mpps "$res")
            drops=$(grep -a "^drops:" "$work/pf-$mode-$r.log")
            line="round $r: testpmd io $t Mpps   pathfwd $mode $u Mpps"
            for ref in $REFS; do
                x=$(run_testpmd "$work/tp-$mode-$ref-$r.log" 1 "${eal[@]}" -- --forward-mode="$ref" "${tp_args[@]}")
                refs[$ref]="${refs[$ref]:-} $x"
                line+="   testpmd $ref $x Mpps"
            done
            echo "$line   ($drops)"
            tps+=("$t"); pfs+=("$u")
        done
        mt=$(med "${tps[@]}"); mu=$(med "${pfs[@]}"); ra=$(ratio "$mu" "$mt")
        v=$(verdict "$ra" "$goal")
        echo "median: testpmd io $mt Mpps, pathfwd $mode $mu Mpps, ratio $ra (goal >= $goal: $v)"
        refsum=""
        for ref in $REFS; do
            # shellcheck disable=SC2086 # the list of samples
            mx=$(med ${refs[$ref]})
            echo "median: testpmd $ref $mx Mpps, ratio $(ratio "$mx" "$mt") of io (a reference: DPDK's own engine that touches the headers)"
            refsum+=" | testpmd $ref $(ratio "$mx" "$mt") of io"
        done
        unset refs
        summary+=("stage $mode | testpmd io $mt | pathfwd $mu | ratio $ra | goal >= $goal | $v$refsum")
    done
fi

# ---- 2. new flows per second -------------------------------------------------
gen_eal=(-l "$LCORES" --no-huge -m 512 --no-pci --vdev "net_null0,no-rx=1")
if [[ " $PARTS " == *" newflows "* ]]; then
    echo "== jap-new: every packet a new flow (generator source, NAT timeouts 1 s), $ROUNDS x $SECS s"
    ios=(); nfs=(); txs=()
    for r in $(seq 1 "$ROUNDS"); do
        res=$(run_pathfwd "$work/io-new-$r.log" --mode jap-new --source gen --io --tx-port 0 -- "${gen_eal[@]}")
        io=$(field median_sample_tx_mpps "$res")
        res=$(run_pathfwd "$work/new-$r.log" --mode jap-new --source gen --tx-port 0 -- "${gen_eal[@]}")
        nf=$(field median_sample_new_flows_mps "$res")
        nat=$(grep -a "^nat:" "$work/new-$r.log" | sed 's/ (.*flow at capacity)//')
        res=$(run_pathfwd "$work/fill-$r.log" --mode jap-new --nat-idle-ms 3600000 --source gen --tx-port 0 -- "${gen_eal[@]}")
        ff=$(field median_sample_new_flows_mps "$res")
        fnat=$(grep -a "^nat:" "$work/fill-$r.log" | sed 's/ (.*flow at capacity)//')
        echo "round $r: generator io $io Mpps   jap-new steady $nf M new flows/s [$nat]   jap-new fill $ff M/s [$fnat]"
        ios+=("$io"); nfs+=("$nf"); txs+=("$ff")
    done
    mi=$(med "${ios[@]}"); mn=$(med "${nfs[@]}"); mf=$(med "${txs[@]}"); ra=$(ratio "$mn" "$mi")
    v=$(verdict "$mn" 3); vf=$(verdict "$mf" 3)
    echo "median: generator io $mi Mpps, jap-new steady state (1 s timeouts) $mn M new flows/s (goal >= 3 M/s: $v), filling an empty table $mf M/s ($vf)"
    summary+=("new flows, steady state | generator io $mi | jap-new $mn M/s | ratio $ra | goal >= 3 M/s | $v")
    summary+=("new flows, empty table filling | generator io $mi | jap-new $mf M/s | ratio $(ratio "$mf" "$mi") | goal >= 3 M/s | $vf")
fi

# ---- 3. throughput against the number of flows -------------------------------
if [[ " $PARTS " == *" flows "* ]]; then
    echo "== $SWEEP_MODE at ${SWEEP_FLOWS// /, } flows (generator source), $ROUNDS x $SECS s each"
    declare -A got=() gotthp=() mem=()
    txo=(); gio=()
    for r in $(seq 1 "$ROUNDS"); do
        t=$(run_testpmd "$work/txonly-$r.log" 0 "${gen_eal[@]}" -- --forward-mode=txonly --port-topology=loop --txpkts=80 "${tp_args[@]}")
        res=$(run_pathfwd "$work/gio-$r.log" --mode "$SWEEP_MODE" --source gen --io --tx-port 0 -- "${gen_eal[@]}")
        g=$(field median_sample_tx_mpps "$res")
        line="round $r: testpmd txonly $t   generator io $g"
        txo+=("$t"); gio+=("$g")
        for n in $SWEEP_FLOWS; do
            res=$(run_pathfwd "$work/sweep-$n-$r.log" --mode "$SWEEP_MODE" --source gen --flows "$n" --tx-port 0 -- "${gen_eal[@]}")
            u=$(field median_sample_tx_mpps "$res")
            mem[$n]=$(field nat_memory_bytes "$res")
            got[$n]="${got[$n]:-} $u"
            line+="   ${n}: $u"
            d=$(grep -a "^drops:" "$work/sweep-$n-$r.log")
            [ "$d" = "drops: total=0 none" ] || line+=" ($d)"
            if [ "$SWEEP_THP" = 1 ]; then
                res=$(run_pathfwd "$work/sweep-thp-$n-$r.log" --mode "$SWEEP_MODE" --source gen --flows "$n" --thp --tx-port 0 -- "${gen_eal[@]}")
                u=$(field median_sample_tx_mpps "$res")
                gotthp[$n]="${gotthp[$n]:-} $u"
                line+=" (thp $u)"
            fi
        done
        echo "$line (Mpps)"
    done
    mt=$(med "${txo[@]}"); mg=$(med "${gio[@]}")
    echo "median: testpmd txonly $mt Mpps, generator io $mg Mpps (ratio $(ratio "$mg" "$mt"))"
    first=${SWEEP_FLOWS%% *}
    last=${SWEEP_FLOWS##* }
    # shellcheck disable=SC2086
    m1=$(med ${got[$first]})
    for n in $SWEEP_FLOWS; do
        # shellcheck disable=SC2086
        m=$(med ${got[$n]})
        mib=$("$PY" -c "print('%.1f' % (${mem[$n]} / 2**20))")
        echo "median: $SWEEP_MODE at $n flows $m Mpps, x$(ratio "$m" "$m1") of $first, x$(ratio "$m" "$mg") of generator io, NAT memory $mib MiB"
        summary+=("$SWEEP_MODE $n flows | generator io $mg | pathfwd $m | x$(ratio "$m" "$m1") of $first | NAT $mib MiB")
        if [ "$SWEEP_THP" = 1 ]; then
            # shellcheck disable=SC2086
            mh=$(med ${gotthp[$n]}); mh1=$(med ${gotthp[$first]})
            echo "median: $SWEEP_MODE at $n flows with --thp $mh Mpps, x$(ratio "$mh" "$mh1") of $first with --thp, x$(ratio "$mh" "$m") of 4 KiB pages"
            summary+=("$SWEEP_MODE $n flows --thp | pathfwd $mh | x$(ratio "$mh" "$mh1") of $first --thp | x$(ratio "$mh" "$m") of 4 KiB pages")
        fi
    done
    # shellcheck disable=SC2086
    ml=$(med ${got[$last]})
    ra=$(ratio "$ml" "$m1")
    v=$(verdict "$ra" 0.7)
    mv=$("$PY" -c "print('met' if ${mem[$last]} <= 2**30 else 'MISSED')")
    echo "flows: $last flows at x$ra of $first (goal >= 0.7: $v); NAT memory ${mem[$last]} bytes (goal <= 1 GiB: $mv)"
    summary+=("flows $last vs $first | ratio $ra | goal >= 0.7 | $v ; memory ${mem[$last]} B <= 1 GiB: $mv")
fi

echo "== summary"
for s in "${summary[@]}"; do echo "$s"; done
