#!/usr/bin/env bash
# The PIAS control plane end to end: two piasd proxies exchange real,
# authenticated control messages; a real target joins through the anycast
# address with pias-target; a real client reaches it.
#
#   client 203.0.113.100 ─┐            ┌─ proxy A 192.0.2.10 (cluster 1)
#   target 203.0.113.5  ──┴─ router ───┤
#     (HTTP :8080, pias-target)        └─ proxy B 192.0.2.11 (cluster 2)
#
# The router sends the client's anycast traffic (198.51.100.0/24) to A and
# the target's to B (policy routing: what the IGP's catchments would do),
# so the target's join reaches B, which becomes its JAP, and the client's
# packets enter at A, their IAP. Nothing is pinned: membership, RAPs, JAP
# reports, JAP lists and invalidations all travel on the wire.
#
# Checks:
#  1. A and B find each other (membership flooding over the seeds);
#  2. the target's signed join is accepted by B (JAP) and acknowledged;
#  3. a client's TCP connection to AA:80 is answered by the target, from the
#     anycast address; the first packet misses A's cache (iap.misses, a RAP
#     query or a local RAP choice), A's cache is then filled with B (a JAP
#     list) and later connections go A → B directly (iap_cached);
#  4. the target's HTTP server dies and comes back: B's TCP health probes
#     (SYN from the control port; RST = dead) mark it dead and alive again,
#     with the measured times;
#  5. a join signed with the wrong key and a forged proxy message are
#     rejected and counted by the gate;
#  6. SIGTERM to the target's agent: it leaves; B reports the count 0 to the
#     group's RAPs, which push A a list without B, so A's cache no longer
#     names B and a new connection is not sent there;
#  7. SIGTERM ends both piasd with exit 0 and a full mempool.
#
# Env: PIASD, PIASCTL, PIAS_TARGET, LAB_PREFIX (default pias-c).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
LAB_PREFIX=${LAB_PREFIX:-pias-c}
. "$here/common.sh"
. "$here/pias-common.sh"
pias_lab_begin

say "lab: router, client, target, proxies A and B (control plane on)"
lab_router
for p in a b; do lab_proxy_host $p; done
lab_edge_host cl cl0 203.0.113.100
lab_edge_host tg tg0 203.0.113.5
# Catchments: the client's anycast packets reach A, the target's reach B.
ip -n $RT route add 198.51.100.0/24 via 192.0.2.10
ip -n $RT rule add from 203.0.113.5 to 198.51.100.0/24 lookup 100
ip -n $RT route add 198.51.100.0/24 via 192.0.2.11 table 100

echo "hello from the target that joined by itself" > "$work/index.html"
web() {
  ip netns exec ${LAB_PREFIX}-tg python3 -m http.server --bind 203.0.113.5 8080 --directory "$work" >/dev/null 2>&1 &
  web_pid=$!; LAB_PIDS+=("$web_pid")
}
web

pias_keys
"$PIAS_TARGET" keygen --out "$work/wrong.key" >/dev/null || die "pias-target keygen failed"

start a 1 192.0.2.10 1 192.0.2.11
start b 2 192.0.2.11 2 192.0.2.10
for p in a b; do
  wait_for 30 "piasd $p up" ctl $p status || { cat "$work/$p.log"; exit 1; }
done

say "1. membership: A and B know each other as up"
for p in a b; do
  wait_for 15 "$p sees two live proxies" jget $p 'len([x for x in p["proxies"] if x["up"]]) == 2' || { show $p; tail -20 "$work/$p.log"; }
done

say "2. the target joins through the anycast address; B becomes its JAP"
ip netns exec ${LAB_PREFIX}-tg "$PIAS_TARGET" join --group 198.51.100.10:80/tcp --target 203.0.113.5:8080 \
  --key "$work/owner.key" --status-file "$work/target.json" >"$work/target.log" 2>&1 &
agent=$!; LAB_PIDS+=("$agent")
wait_for 15 "B accepted the join" jget b 'k.get("jap.joins", 0) >= 1 and "198.51.100.10:80/tcp" in p["targets"]' || { show b; cat "$work/target.log"; }
wait_for 10 "the agent saw the ack" grep -q "^joined 198.51.100.10:80/tcp target 203.0.113.5:8080 jap 2" "$work/target.log" || cat "$work/target.log"
show b

say "3. a client reaches the target through A (IAP) and B (JAP)"
wait_for 10 "A's tables list B as a JAP of the group (reports reached the RAPs)" \
  sh -c "'$PIASCTL' --socket '$work/piasd-a.sock' status --json >/dev/null" || true
ok=0
for i in $(seq 20); do
  out=$(fetch)
  if echo "$out" | grep -q "hello from the target that joined by itself"; then ok=1; break; fi
  sleep 0.5
done
[ $ok = 1 ] || { fail "no answer from the target through the anycast address"; echo "$out" | tail -3; show a; show b; }
echo "first fetch answered after $i attempt(s)"
wait_for 5 "A saw the miss" jget a 'k.get("iap.misses", 0) >= 1'
wait_for 5 "B NATed the flow and its replies" jget b 'w["jap_new_flows"] >= 1 and w["reverse"] >= 1'
wait_for 10 "A's cache was filled with a JAP list" jget a 'k.get("iap.lists", 0) >= 1'
for i in 1 2 3; do
  out=$(fetch); echo "$out" | grep -q "hello from the target" || fail "cached fetch $i failed"
done
wait_for 5 "later connections went A → B directly" jget a 'w["iap_cached"] >= 3'
show a

say "4. the target's service dies and comes back: B's TCP health probes see both"
t0=$(now)
kill $web_pid; wait $web_pid 2>/dev/null
wait_for 15 "B marked the target dead" jget b '"dead" in " ".join(p["targets"].get("198.51.100.10:80/tcp", []))'
t1=$(now)
web
wait_for 15 "B marked the target alive again" jget b 'p["targets"].get("198.51.100.10:80/tcp") == ["203.0.113.5:8080"]'
t2=$(now)
printf 'service down -> target dead at B: %s s; service up -> alive: %s s (probe interval 1 s, 3 failures)\n' \
  "$(secs $t0 $t1)" "$(secs $t1 $t2)"
jget b 'p["driver"]["probes_answered"] >= 3' || fail "B's probes were not answered"
out=$(fetch); echo "$out" | grep -q "hello from the target" || fail "no answer after the target came back"

say "5. a join with the wrong key and a forged proxy message are rejected"
before=$(ctl b status --json | python3 -c 'import json,sys; print(sum(json.load(sys.stdin)["control"]["plane"]["rejected"].values()))')
ip netns exec ${LAB_PREFIX}-tg timeout 5 "$PIAS_TARGET" join --once --group 198.51.100.10:80/tcp --target 203.0.113.5:8081 \
  --key "$work/wrong.key" >"$work/wrong.log" 2>&1 || true
in_ns cl python3 - <<'PY'
import socket, struct
# A well-formed proxy header (version 1, Hello, sender 1, key 1, epoch 1,
# sequence 1) with a body and an HMAC tag that no key made.
body = bytes(8)
n = 22 + len(body) + 16
msg = struct.pack(">BBHIBBIQ", 1, 0x01, n, 1, 1, 0, 1, 1) + body + bytes(16)
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(msg, ("192.0.2.11", 7450))
PY
wait_for 10 "B's gate refused the wrongly signed join" jget b "p['rejected'].get('bad_signature', 0) >= 1" || show b
wait_for 10 "B's gate refused the forged proxy message" jget b "p['rejected'].get('bad_mac', 0) >= 1" || show b
ctl b status | grep "rejected" || true
jget b '"198.51.100.10:80/tcp" in p["targets"] and not any("8081" in t for t in p["targets"]["198.51.100.10:80/tcp"])' \
  || fail "the wrongly signed join changed B's targets"

say "6. the agent leaves on SIGTERM: B invalidates A's cache"
lists_before=$(ctl a status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["control"]["plane"]["counters"]["iap.lists"])')
kill -TERM $agent; rc=0; wait $agent || rc=$?
[ $rc = 0 ] || fail "pias-target exited $rc on SIGTERM"
wait_for 10 "B took the leave" jget b 'k.get("jap.leaves", 0) >= 1 and "198.51.100.10:80/tcp" not in p["targets"]'
# The JAP reports the count 0 to the group's RAPs (A and B), which push the
# IAPs they answered a fresh list without B: A's cache drops B at once.
wait_for 10 "A's cache got the list without B (a RAP's push)" jget a "k.get('iap.lists', 0) >= $lists_before + 1"
cached_before=$(ctl a status --json | python3 -c 'import json,sys; print(sum(w["path"]["iap_cached"] for w in json.load(sys.stdin)["workers"]))')
out=$(fetch)
echo "$out" | grep -q "hello from the target" && fail "a fetch was answered with no target left"
jget a "w['iap_cached'] == $cached_before" || fail "A still sent a new connection from its cache to B"
show a
say "7. both proxies stop cleanly"
stop_piasd a; stop_piasd b

if [ "$LAB_FAILED" = 0 ]; then say "pias control lab: all checks passed"; else say "pias control lab: FAILED"; exit 1; fi
