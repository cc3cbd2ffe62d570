#!/usr/bin/env bash
# Instructions per packet of the PIAS packet path, counted by callgrind:
# repeatable to the instruction on a noisy shared machine, where timings
# are not. Issue 4, "Benchmarks".
#
# For each mode, bench/src/bin/path-callgrind.rs runs N1 and then N2
# packets of the mode's traffic (pias_bench::scenario: the same proxies and
# frames as pathfwd and the criterion bench) through Path::process on a
# VecBuf, under `valgrind --tool=callgrind --toggle-collect=*run_packets*`
# (only the packet loop is counted). Instructions per packet =
# (Ir(N2) - Ir(N1)) / (N2 - N1): set-up and warm-up cancel. The same with
# --no-path (frame generation and buffer reset alone) is subtracted to give
# the path's own instructions per packet.
#
# Then, for TOP_MODES, the functions and source files that cost the most
# instructions per packet (the N2 - N1 difference of callgrind_annotate's
# per-function self costs; with inlining, "file:function" names the source
# file of the inlined code and the function it was inlined into).
#
# Usage: bench/callgrind.sh   (N1=100000 N2=200000 FLOWS=1024
#        MODES="iap-miss iap-cached rap jap jap-new reverse" TOP_MODES="iap-cached jap"
#        EXTRA="--groups 2 --targets-per-group 256")
set -euo pipefail

N1=${N1:-100000}
N2=${N2:-200000}
FLOWS=${FLOWS:-1024}
MODES=${MODES:-"iap-miss iap-cached rap jap jap-new reverse"}
TOP_MODES=${TOP_MODES:-"iap-cached jap"}
TOP=${TOP:-25}
EXTRA=${EXTRA:-}            # more driver arguments, e.g. "--groups 2 --targets-per-group 256"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
target=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d /tmp/pias-callgrind.XXXXXX)
trap 'rm -rf "$work"' EXIT

command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 1; }

echo "== building path-callgrind (release)"
(cd "$root" && cargo build --release -p pias-bench --bin path-callgrind)
bin=$target/release/path-callgrind
echo "== $(date -u +%FT%TZ) $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo no-git) $(valgrind --version) N1=$N1 N2=$N2 FLOWS=$FLOWS ${EXTRA:+EXTRA=\"$EXTRA\"}"

# cg OUT ARGS...: runs the driver under callgrind, prints the instructions counted.
cg() {
    local out=$1; shift
    timeout 900 valgrind --tool=callgrind --toggle-collect='*run_packets*' --callgrind-out-file="$out" \
        "$bin" --flows "$FLOWS" $EXTRA "$@" >"$out.log" 2>&1 || { echo "callgrind failed:" >&2; tail -20 "$out.log" >&2; exit 1; }
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

printf '%-11s %14s %14s %12s %12s %12s\n' mode "Ir(N1)" "Ir(N2)" instr/pkt "gen instr" "path instr"
for mode in $MODES; do
    a=$(cg "$work/$mode.$N1" --mode "$mode" --packets "$N1")
    b=$(cg "$work/$mode.$N2" --mode "$mode" --packets "$N2")
    ga=$(cg "$work/$mode.gen.$N1" --mode "$mode" --packets "$N1" --no-path)
    gb=$(cg "$work/$mode.gen.$N2" --mode "$mode" --packets "$N2" --no-path)
    "$PY" - "$mode" "$a" "$b" "$ga" "$gb" "$N1" "$N2" <<'PYEOF'
import sys
mode, a, b, ga, gb, n1, n2 = sys.argv[1], *map(int, sys.argv[2:])
per = (b - a) / (n2 - n1)
gen = (gb - ga) / (n2 - n1)
print("%-11s %14d %14d %12.1f %12.1f %12.1f" % (mode, a, b, per, gen, per - gen))
PYEOF
done

for mode in $TOP_MODES; do
    [ -f "$work/$mode.$N2" ] || continue
    echo
    echo "== $mode: top functions, self instructions per packet ((N2 - N1) / (N2 - N1 packets))"
    "$PY" - "$work/$mode.$N1" "$work/$mode.$N2" "$N1" "$N2" "$TOP" <<'PYEOF'
import collections, re, subprocess, sys
def load(f):
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", "--auto=no", f],
                         capture_output=True, text=True, check=True).stdout
    d = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([\s\d.]+%\)\s+(.*?):(.*?)(\s+\[.*\])?$", line)
        if m and "PROGRAM TOTALS" not in line:
            d[(m.group(2), m.group(3))] += int(m.group(1).replace(",", ""))
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
n = int(sys.argv[4]) - int(sys.argv[3])
top = int(sys.argv[5])
def label(f):
    p = f.split("/")
    if "library" in p:          # the standard library: core/ptr/mod.rs
        i = p.index("library")
        return "/".join([p[i + 1]] + p[i + 3:])
    if "registry" in p:         # a dependency: hashbrown-0.15.5/raw/mod.rs
        i = p.index("src", p.index("registry") + 2)
        return "/".join([p[i - 1]] + p[i + 1:])
    if "sysdeps" in p:
        return "libc " + p[-1]
    for top in ("dataplane", "bench", "bindings"):
        if top in p:
            return "/".join(p[p.index(top):])
    return f
byfn, byfile = collections.Counter(), collections.Counter()
for k in set(a) | set(b):
    v = (b[k] - a[k]) / n
    byfn[k] += v
    byfile[label(k[0])] += v
total = sum(byfn.values())
print("%8s  %s" % ("instr", "source file:function it is inlined into"))
for (f, fn), v in byfn.most_common(top):
    print("%8.1f  %s:%s" % (v, label(f), fn))
print("%8.1f  total" % total)
print()
print("%8s  %s" % ("instr", "by source file"))
for f, v in byfile.most_common(top):
    if v >= 1:
        print("%8.1f  %s" % (v, f))
PYEOF
done
