#!/usr/bin/python3
"""One HTTP/1.1 keep-alive connection: a GET every INTERVAL seconds on the
same TCP connection until STOPFILE exists or DURATION passes. Prints one
line per answer as it comes:

    <epoch seconds> <local port> <first line of the body>

and exits 0; when the connection breaks (closed, reset, an answer not
back within 3 s, a status other than 200) it prints "error: ..." and
exits 1. Bounded: at most DURATION/INTERVAL requests.

    keepalive.py HOST PORT INTERVAL DURATION STOPFILE
"""

import os
import socket
import sys
import time


def answer(s, buf):
    """Reads one response; returns (body, rest of the buffer)."""
    while b"\r\n\r\n" not in buf:
        b = s.recv(4096)
        if not b:
            raise OSError("connection closed by the peer")
        buf += b
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 200"):
        raise OSError(f"status {lines[0][:40]!r}")
    n = None
    for l in lines[1:]:
        k, _, v = l.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v.strip())
    if n is None:
        raise OSError("no Content-Length: cannot keep the connection")
    while len(buf) < n:
        b = s.recv(4096)
        if not b:
            raise OSError("connection closed in the body")
        buf += b
    return buf[:n], buf[n:]


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    host, port, interval, duration, stop = sys.argv[1:]
    port, interval, duration = int(port), float(interval), float(duration)
    end = time.time() + duration
    try:
        s = socket.create_connection((host, port), timeout=3.0)
        s.settimeout(3.0)
        lport = s.getsockname()[1]
        buf = b""
        while time.time() < end and not os.path.exists(stop):
            s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            body, buf = answer(s, buf)
            first = body.decode(errors="replace").splitlines()[0] if body else ""
            print(f"{time.time():.6f} {lport} {first}", flush=True)
            time.sleep(interval)
    except (OSError, ValueError) as e:
        print(f"error: {time.time():.6f} {e}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
