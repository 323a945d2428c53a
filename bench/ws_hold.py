#!/usr/bin/env python3
"""Hold many idle WebSockets through a proxy, then time echoes at that load.

Runs in the bench's client container (Debian 12's python3-websockets 10.4, or
a newer one). bench/measure.py starts several of these at once, each with its
share of the connections, so that one process's file descriptors and one
core's handshakes are not the limit.

  1. opens COUNT connections to URL (at most --parallel handshakes at a time),
     with keep-alive pings off: the connections stay really idle;
  2. prints one line `OPEN <n> <failed>` and waits until the file --go exists
     (meanwhile measure.py reads the proxy's memory);
  3. sends one 32-byte text message on --samples connections, one after the
     other, timing each echo; checks how many connections are still open;
  4. prints one JSON line with the numbers and exits without closing
     handshakes (10,000 closes would only add time).

    ws_hold.py URL --count N [--parallel 100] [--samples 200] [--go FILE]
"""

import argparse
import asyncio
import json
import os
import ssl
import sys
import time

try:  # websockets >= 13
    from websockets.asyncio.client import connect
except ImportError:  # Debian 12's 10.4: the legacy API
    from websockets import connect


async def open_one(url, context, gate, connections, errors):
    async with gate:
        try:
            # open_timeout covers TCP, TLS and the upgrade (both APIs have it).
            conn = await connect(url, ssl=context, ping_interval=None, close_timeout=1, open_timeout=60, compression=None)
            connections.append(conn)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
            errors.append(f"{type(exc).__name__}: {exc}")


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--parallel", type=int, default=100)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--go", default="/tmp/ws-go")
    parser.add_argument("--go-timeout", type=float, default=600)
    args = parser.parse_args()

    context = None
    if args.url.startswith("wss:"):
        # The bench's certificates are self-signed or from Caddy's own CA.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

    gate = asyncio.Semaphore(args.parallel)
    connections, errors = [], []
    started = time.monotonic()
    await asyncio.gather(*(open_one(args.url, context, gate, connections, errors) for _ in range(args.count)))
    open_seconds = time.monotonic() - started
    print(f"OPEN {len(connections)} {len(errors)}", flush=True)

    deadline = time.monotonic() + args.go_timeout
    while not os.path.exists(args.go) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)

    rtts, echo_errors = [], 0
    step = max(1, len(connections) // max(1, args.samples))
    for conn in connections[::step][: args.samples]:
        message = "x" * 32
        sent = time.perf_counter()
        try:
            await conn.send(message)
            reply = await asyncio.wait_for(conn.recv(), timeout=10)
            if reply != message:
                raise ValueError("echo differs")
            rtts.append((time.perf_counter() - sent) * 1000)
        except Exception:  # noqa: BLE001 - counted
            echo_errors += 1
    # The legacy API says `open`, the new one has `state`; both agree on closed.
    still_open = sum(1 for c in connections if getattr(c, "open", None) or getattr(getattr(c, "state", None), "name", "") == "OPEN")
    rtts.sort()
    print(
        json.dumps(
            {
                "opened": len(connections),
                "failed": len(errors),
                "errors": sorted(set(errors))[:5],
                "open_seconds": round(open_seconds, 2),
                "still_open": still_open,
                "echo_ms": rtts,
                "echo_errors": echo_errors,
            }
        ),
        flush=True,
    )
    sys.stdout.flush()
    os._exit(0)  # no closing handshakes


if __name__ == "__main__":
    asyncio.run(main())
