#!/usr/bin/python3
"""A two-port wire with one-way latency, for kernels without netem.

    delay.py IFACE_A IFACE_B DELAY_MS

Runs in a lab namespace that holds both interfaces (veth ends whose peers
are the two hosts of a link): every frame received on one is sent out the
other DELAY_MS later, in order. Frames are read and written with AF_PACKET
sockets, so the peers must not hand it GSO frames larger than the MTU
(labtopo.py turns TSO/GSO off on them). Ends on SIGTERM.
"""

import collections
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    a, b, ms = sys.argv[1], sys.argv[2], float(sys.argv[3])
    delay = ms / 1000.0
    socks = {}
    for name in (a, b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((name, 0))
        s.setblocking(False)
        socks[name] = s
    peer = {socks[a]: socks[b], socks[b]: socks[a]}
    queue = collections.deque()  # (due, out socket, frame), due ascending
    while True:
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, out, frame = queue.popleft()
            try:
                out.send(frame)
            except OSError:
                pass  # a frame the peer cannot take is lost, as on a wire
        timeout = max(0.0, queue[0][0] - now) if queue else 1.0
        ready, _, _ = select.select(list(peer), [], [], timeout)
        now = time.monotonic()
        for s in ready:
            for _ in range(64):
                try:
                    frame, addr = s.recvfrom(65535)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue  # our own sends, seen again
                queue.append((now + delay, peer[s], frame))


if __name__ == "__main__":
    main()
