#!/usr/bin/env python3
"""Count full TLS handshakes per second against HOST:PORT.

Runs in the bench's client container. `openssl s_time -new` would do, but
OpenSSL 3.0's s_time sends no SNI, and Caddy picks its certificate by SNI;
this does the same with Python's ssl module (OpenSSL underneath): connect,
full handshake with SNI (a fresh handshake every time: no session is ever
offered back, so no resumption), close. --processes clients run in parallel
for --seconds; prints one JSON line: handshakes, seconds, per second, and the
TLS version and cipher of the first handshake.

    tls_handshakes.py HOST PORT [--processes 4] [--seconds 10]
"""

import argparse
import json
import multiprocessing
import socket
import ssl
import time


def client(host, port, seconds, results):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # self-signed bench certificates
    done = errors = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname=host) as tls:
                    if done == 0:
                        results.put(("info", tls.version(), tls.cipher()[0]))
                    done += 1
        except OSError:
            errors += 1
    results.put(("count", done, errors))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    results = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=client, args=(args.host, args.port, args.seconds, results)) for _ in range(args.processes)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    handshakes = errors = 0
    info = None
    for _ in range(args.processes):
        item = results.get()
        while item[0] == "info":
            info = item[1:]
            item = results.get()
        handshakes, errors = handshakes + item[1], errors + item[2]
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    print(
        json.dumps(
            {
                "handshakes": handshakes,
                "errors": errors,
                "seconds": round(elapsed, 2),
                "per_second": round(handshakes / elapsed, 1),
                "version": info[0] if info else None,
                "cipher": info[1] if info else None,
            }
        )
    )


if __name__ == "__main__":
    main()
