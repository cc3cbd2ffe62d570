#!/usr/bin/env bash
# PIAS failures with the control plane on: three piasd proxies, two
# targets that join by themselves, one client, and what PIAS promises
# (seed §3.4-3.6) measured:
#
#   client 203.0.113.100 ─┐            ┌─ proxy A 192.0.2.10 (cluster 1): the client's IAP
#   target 1 203.0.113.5 ─┼─ router ───┼─ proxy B 192.0.2.11 (cluster 2): target 1's JAP
#   target 2 203.0.113.6 ─┘            └─ proxy C 192.0.2.12 (cluster 3): target 2's JAP
#
# Catchments (policy routes on the router, what the IGP would do): the
# client's anycast traffic enters at A, target 1's joins reach B, target
# 2's reach C. The group 198.51.100.10:80/tcp has connection affinity (the
# group-anchor design, control/PROTOCOL.md §13): every RAP hands out the
# same JAP list, so one JAP (the anchor) serves every IAP.
#
#  1. a client's connections work; the first packet goes via a RAP, the
#     later ones IAP → JAP directly;
#  2. the client's route moves from A to C in the middle of a TCP
#     connection (HTTP/1.1 keep-alive): the connection survives (affinity);
#  3. the anchor's target (its HTTP server) dies: the JAP's TCP health
#     probes mark it dead and new connections reach the other target
#     (measured; goal ≤ 3 s), none fails after that;
#  4. the anchor's target leaves gracefully during a loop of connections:
#     none fails (the JAP sends what it cannot serve back to a RAP, the
#     RAPs push lists without it);
#  5. a JAP proxy dies (SIGKILL): the overlay declares it down and the
#     IAP's cache drops it; measured: kill → declared down at the IAP, and
#     declared down → first connection answered through the other JAP
#     (goal ≤ 1 s);
#  6. the survivors stop with exit 0 and a full mempool.
#
# Env: PIASD, PIASCTL, PIAS_TARGET, LAB_PREFIX (default pias-f).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
LAB_PREFIX=${LAB_PREFIX:-pias-f}
. "$here/common.sh"
. "$here/pias-common.sh"
pias_lab_begin

say "lab: router, client, two targets, proxies A B C (control plane on)"
lab_router
for p in a b c; do lab_proxy_host $p; done
declare -A TADDR=([t1]=203.0.113.5 [t2]=203.0.113.6)
lab_edge_host cl cl0 203.0.113.100
for t in t1 t2; do lab_edge_host $t eth0 ${TADDR[$t]}; done
ip -n $RT route add 198.51.100.0/24 via 192.0.2.10
ip -n $RT rule add from 203.0.113.5 to 198.51.100.0/24 lookup 101
ip -n $RT route add 198.51.100.0/24 via 192.0.2.11 table 101
ip -n $RT rule add from 203.0.113.6 to 198.51.100.0/24 lookup 102
ip -n $RT route add 198.51.100.0/24 via 192.0.2.12 table 102

# Each target serves HTTP/1.1 (keep-alive) and says who it is.
cat > "$work/web.py" <<'PY'
import http.server, socketserver, sys
name = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = ("hello from %s\n" % name).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
S((sys.argv[1], 8080), H).serve_forever()
PY
declare -A WEB
web() { # web TARGET: (re)start its HTTP server
  ip netns exec ${LAB_PREFIX}-$1 python3 "$work/web.py" ${TADDR[$1]} $1 >/dev/null 2>&1 &
  WEB[$1]=$!; LAB_PIDS+=("$!")
}
web t1; web t2

pias_keys
GROUP_OPTS="affinity: true"
start a 1 192.0.2.10 1 "192.0.2.11, 192.0.2.12"
start b 2 192.0.2.11 2 "192.0.2.10, 192.0.2.12"
start c 3 192.0.2.12 3 "192.0.2.10, 192.0.2.11"
for p in a b c; do
  wait_for 30 "piasd $p up" ctl $p status || { cat "$work/$p.log"; exit 1; }
done
for p in a b c; do
  wait_for 20 "$p sees three live proxies" jget $p 'len([x for x in p["proxies"] if x["up"]]) == 3' || show $p
done

declare -A AGENT
join() { # join TARGET
  ip netns exec ${LAB_PREFIX}-$1 "$PIAS_TARGET" join --group 198.51.100.10:80/tcp --target ${TADDR[$1]}:8080 \
    --key "$work/owner.key" >"$work/$1-agent.log" 2>&1 &
  AGENT[$1]=$!; LAB_PIDS+=("$!")
}
join t1; join t2
wait_for 15 "B took target 1's join" jget b '"198.51.100.10:80/tcp" in p["targets"]'
wait_for 15 "C took target 2's join" jget c '"198.51.100.10:80/tcp" in p["targets"]'

say "1. connections through A: first via a RAP, later IAP → JAP"
ok=0
for i in $(seq 20); do
  out=$(fetch); echo "$out" | grep -q "^hello from t" && { ok=1; break; }
  sleep 0.5
done
[ $ok = 1 ] || fail "no answer through the anycast address"
first=$(echo "$out" | grep -o "hello from t[12]")
echo "first connection answered by: $first"
wait_for 10 "A's cache was filled" jget a 'k.get("iap.lists", 0) >= 1'
for i in 1 2 3; do
  out=$(fetch); echo "$out" | grep -q "^$first" || fail "connection $i answered by another target: $out"
done
wait_for 5 "later connections went straight to the JAP" jget a 'w["iap_cached"] >= 3'
# The anchor: the JAP of the target that answers.
if [ "$first" = "hello from t1" ]; then anchor=b; other=c; else anchor=c; other=b; fi
wait_for 5 "the anchor $anchor NATed the connections" jget $anchor 'w["jap_new_flows"] >= 3'
echo "anchor JAP: $anchor"

say "2. the client's route moves from A to C mid-connection: the connection survives"
cat > "$work/keepalive.py" <<'PY'
import socket, sys, time
s = socket.create_connection(("198.51.100.10", 80), timeout=5)
def get():
    s.sendall(b"GET / HTTP/1.1\r\nHost: anycast\r\n\r\n")
    data = b""
    while b"\n" not in data.split(b"\r\n\r\n", 1)[-1] or b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("connection closed")
        data += chunk
    return data.split(b"\r\n\r\n", 1)[1].decode().strip()
print("before:", get(), flush=True)
open(sys.argv[1], "w").close()           # tell the lab to move the route
deadline = time.time() + 10
import os
while os.path.exists(sys.argv[1]) and time.time() < deadline:
    time.sleep(0.05)
print("after:", get(), flush=True)
PY
flag="$work/moved"
in_ns cl python3 "$work/keepalive.py" "$flag" >"$work/keepalive.out" 2>&1 &
kp=$!
wait_for 10 "the connection is open" test -e "$flag"
c_before=$(jval c 'w["iap_cached"] + w["iap_to_rap"] + w.get("rap_forwarded", 0)')
ip -n $RT route replace 198.51.100.0/24 via 192.0.2.12
rm -f "$flag"
rc=0; wait $kp || rc=$?
cat "$work/keepalive.out"
[ $rc = 0 ] && grep -q "^after: hello from" "$work/keepalive.out" || fail "the connection did not survive the route change"
[ "$(grep -c "hello from" "$work/keepalive.out")" = 2 ] && \
  [ "$(sed -n 's/^before: //p' "$work/keepalive.out")" = "$(sed -n 's/^after: //p' "$work/keepalive.out")" ] \
  || fail "the connection changed targets"
wait_for 3 "the packets after the move entered at C" jget c "w['iap_cached'] + w['iap_to_rap'] + w.get('rap_forwarded', 0) > $c_before"
ip -n $RT route replace 198.51.100.0/24 via 192.0.2.10

say "3. the anchor's target dies: new connections reach the other target within 3 s"
dead=t1; live=t2; [ $anchor = c ] && { dead=t2; live=t1; }
t0=$(now)
kill ${WEB[$dead]}; wait ${WEB[$dead]} 2>/dev/null
ok=0
while python3 -c "import sys; sys.exit(0 if $(now) - $t0 < 10 else 1)"; do
  out=$(in_ns cl timeout 1 bash -c 'exec 3<>/dev/tcp/198.51.100.10/80; printf "GET / HTTP/1.0\r\n\r\n" >&3; cat <&3' 2>/dev/null)
  echo "$out" | grep -q "^hello from $live" && { ok=1; break; }
  sleep 0.1
done
t1=$(now)
[ $ok = 1 ] || fail "no connection reached $live within 10 s of $dead's death"
bad=0
for i in $(seq 10); do out=$(fetch); echo "$out" | grep -q "^hello from $live" || bad=$((bad+1)); done
[ $bad = 0 ] || fail "$bad of 10 connections failed after the failover"
printf '| target %s killed → new connections answered by %s | %s s (goal ≤ 3 s; probes 1 s, retry 300 ms, dead after 3) |\n' "$dead" "$live" "$(secs $t0 $t1)"
python3 -c "import sys; sys.exit(0 if $t1 - $t0 <= 3.0 else 1)" || fail "failover to a live target took more than 3 s"
web $dead
wait_for 15 "$anchor saw $dead alive again" jget $anchor '"dead" not in " ".join(p["targets"].get("198.51.100.10:80/tcp", ["dead"]))'

say "4. the anchor's target leaves gracefully during a loop of connections: none fails"
leaver=t1; [ $anchor = c ] && leaver=t2
( n=0; bad=0
  for i in $(seq 40); do
    out=$(fetch); n=$((n+1)); echo "$out" | grep -q "^hello from t" || bad=$((bad+1)); sleep 0.1
  done
  echo "$n $bad" > "$work/loop.out" ) &
loop=$!
sleep 1
kill -TERM ${AGENT[$leaver]}; wait ${AGENT[$leaver]} || fail "agent of $leaver exited non-zero"
wait $loop
read -r n bad < "$work/loop.out"
echo "$n connections during the leave, $bad failed"
[ "$bad" = 0 ] || fail "$bad of $n connections failed while $leaver left"
wait_for 10 "$anchor took the leave" jget $anchor 'k.get("jap.leaves", 0) >= 1'
out=$(fetch); echo "$out" | grep -q "^hello from t" || fail "no answer after the leave"
echo "after the leave: $(echo "$out" | grep -o 'hello from t[12]')"
join $leaver
wait_for 15 "$leaver joined again" jget $anchor '"198.51.100.10:80/tcp" in p["targets"]'

say "5. a JAP proxy dies: the IAP's cache drops it and traffic flows via the other JAP"
# The JAP whose target answers now is the one to kill.
out=$(fetch); echo "$out" | grep -q "^hello from t" || fail "no answer before the kill"
if echo "$out" | grep -q "hello from t1"; then victim=b; survivor=c; else victim=c; survivor=b; fi
eval "vpid=\$pid_$victim"
id=$( [ $victim = b ] && echo 2 || echo 3 )
downs=$(grep -c "proxy $id declared down" "$work/a.log")
t0=$(now)
kill -KILL $vpid; wait $vpid 2>/dev/null
ok=0
for i in $(seq 100); do
  out=$(in_ns cl timeout 1 bash -c 'exec 3<>/dev/tcp/198.51.100.10/80; printf "GET / HTTP/1.0\r\n\r\n" >&3; cat <&3' 2>/dev/null)
  echo "$out" | grep -q "^hello from t" && { ok=1; break; }
done
t2=$(now)
[ $ok = 1 ] || fail "no connection answered after $victim died"
echo "answered via $survivor: $(echo "$out" | grep -o 'hello from t[12]')"
wait_for 5 "A logged $victim down" test "$(grep -c "proxy $id declared down" "$work/a.log")" -gt "$downs"
# When A's overlay noticed: its log line's millisecond timestamp.
t1=$(date -d "$(grep "proxy $id declared down" "$work/a.log" | tail -1 | sed -E 's/^\[([^ ]+) .*/\1/')" +%s.%N)
printf '| event | measured |\n|---|---|\n| JAP %s killed → declared down by the IAP A | %s s (heartbeat 200 ms, dead after 5) |\n| declared down → first connection answered via %s | %s s (goal ≤ 1 s) |\n| kill → first connection answered | %s s |\n' \
  "$victim" "$(secs $t0 $t1)" "$survivor" "$(secs $t1 $t2)" "$(secs $t0 $t2)"
python3 -c "import sys; sys.exit(0 if $t2 - $t1 <= 1.0 else 1)" || fail "failover after the overlay noticed took more than 1 s"

say "6. the survivors stop cleanly"
for p in a $survivor; do stop_piasd $p; done

if [ "$LAB_FAILED" = 0 ]; then say "pias failover lab: all checks passed"; else say "pias failover lab: FAILED"; exit 1; fi
