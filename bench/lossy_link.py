#!/usr/bin/env python3
"""A lossy, slow link from the bench's client to some peers: netem's job in user space.

Runs in the bench's client container (bench/measure.py starts it as a
transient systemd unit and stops it). `tc qdisc ... netem` is what one would
use, but this machine's kernel has no netem (CONFIG_NET_SCH_NETEM is not
set: "Specified qdisc kind is unknown"), and no other qdisc delays packets.
So: a TUN device takes the client's packets to each PEER (a /32 route
through it, with the client's own address as the source); this process
drops each packet with probability --loss, holds the others --delay-ms, then
sends them on through the real interface (a raw socket whose packets carry
a firewall mark that a routing rule sends around the TUN device). The
replies come back directly. Like netem on the client's egress: the delay is
the whole round trip's, the loss hits the client's packets only (TCP's SYNs
and ACKs, QUIC's Initials and ACKs alike), the same for TCP and UDP.

Everything it sets up goes with it: the TUN device (and its routes) when the
process exits, the routing rule and table on SIGTERM/SIGINT.

    lossy_link.py PEER_IP [PEER_IP ...] [--delay-ms 50] [--loss 0.02] [--seed 1]
"""

import argparse
import fcntl
import heapq
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import time

TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
DEVICE, MARK, TABLE = "benchlossy", 0x6C, "107"


def ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True).stdout


def open_tun():
    if not os.path.exists("/dev/net/tun"):
        os.makedirs("/dev/net", exist_ok=True)
        os.mknod("/dev/net/tun", 0o600 | 0o020000, os.makedev(10, 200))
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", DEVICE.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def teardown():
    ip("rule", "del", "fwmark", hex(MARK), "lookup", TABLE, check=False)
    ip("route", "flush", "table", TABLE, check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peers", nargs="+")
    parser.add_argument("--delay-ms", type=float, default=50)
    parser.add_argument("--loss", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    teardown()
    tun = open_tun()
    ip("link", "set", DEVICE, "up")
    # Around the TUN device: marked packets (ours, from the raw socket) take
    # the real route, looked up before the main table's /32 through the TUN.
    ip("rule", "add", "fwmark", hex(MARK), "lookup", TABLE, "pref", "107")
    for peer in args.peers:
        route = ip("-o", "route", "get", peer).split()
        dev, src = route[route.index("dev") + 1], route[route.index("src") + 1]
        ip("route", "replace", f"{peer}/32", "dev", dev, "table", TABLE)
        ip("route", "replace", f"{peer}/32", "dev", DEVICE, "src", src)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, MARK)

    counts = {"passed": 0, "dropped": 0}

    def stop(*_):
        teardown()
        print(f"STOPPED passed {counts['passed']} dropped {counts['dropped']}", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"READY {DEVICE} delay {args.delay_ms} ms loss {args.loss}", flush=True)
    held, seq, delay = [], 0, args.delay_ms / 1000
    while True:
        timeout = max(0, held[0][0] - time.monotonic()) if held else None
        if select.select([tun], [], [], timeout)[0]:
            packet = os.read(tun, 65535)
            if packet and packet[0] >> 4 == 4:
                if rng.random() < args.loss:
                    counts["dropped"] += 1
                else:
                    seq += 1
                    heapq.heappush(held, (time.monotonic() + delay, seq, packet))
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, _, packet = heapq.heappop(held)
            try:
                raw.sendto(packet, (socket.inet_ntoa(packet[16:20]), 0))
                counts["passed"] += 1
            except OSError:
                counts["dropped"] += 1


if __name__ == "__main__":
    main()
