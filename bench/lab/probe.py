#!/usr/bin/python3
"""Failover probe: starts one attempt every INTERVAL seconds (each in its own
thread, so a lost SYN or query never delays the next attempt) until STOPFILE
exists or DURATION passes; prints one line per attempt when it ends:

    <start epoch seconds> ok|fail <ms> [<who>]

(http: <who> is the answering target and the address it saw, TARGET@ADDR,
from a body "hello from TARGET (ADDR:PORT -> ...)" as the lab's nginx
writes it: behind a JAP, ADDR is that JAP's; - if the body names none).

    probe.py http HOST PORT INTERVAL DURATION STOPFILE
    probe.py dns  HOST PORT INTERVAL DURATION STOPFILE   (A www.lab.)

Bounded: at most DURATION/INTERVAL attempts, each with a 1 s timeout.
"""

import os
import socket
import struct
import sys
import threading
import time

lock = threading.Lock()


def http(host, port):
    with socket.create_connection((host, port), timeout=1.0) as s:
        s.settimeout(1.0)
        s.sendall(b"GET / HTTP/1.0\r\nHost: anycast\r\n\r\n")
        data = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            data += b
        if not (data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200")):
            return False
        if b"hello from " not in data:
            return "-"
        words = data.split(b"hello from ", 1)[1].split()
        who = words[0] + (b"@" + words[1].strip(b"(").split(b":")[0] if len(words) > 1 else b"")
        return who.decode(errors="replace")


def dns(host, port):
    qid = os.getpid() & 0xFFFF ^ threading.get_ident() & 0xFFFF
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p for p in b"www.lab".split(b".")) + b"\x00" + struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        s.sendto(q, (host, port))
        r, _ = s.recvfrom(2048)
        return len(r) >= 12 and r[:2] == q[:2] and struct.unpack("!H", r[6:8])[0] >= 1


def attempt(fn, host, port):
    t0 = time.time()
    try:
        ok = fn(host, port)
    except OSError:
        ok = False
    ms = (time.time() - t0) * 1000
    who = f" {ok}" if isinstance(ok, str) else ""
    with lock:
        print(f"{t0:.6f} {'ok' if ok else 'fail'} {ms:.1f}{who}", flush=True)


def main():
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    mode, host, port, interval, duration, stop = sys.argv[1:]
    fn = {"http": http, "dns": dns}[mode]
    port, interval, duration = int(port), float(interval), float(duration)
    end = time.time() + duration
    threads = []
    while time.time() < end and not os.path.exists(stop):
        t = threading.Thread(target=attempt, args=(fn, host, port), daemon=True)
        t.start()
        threads.append(t)
        threads = [t for t in threads if t.is_alive()]
        time.sleep(interval)
    for t in threads:
        t.join(2.0)


if __name__ == "__main__":
    main()
