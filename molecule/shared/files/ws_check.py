#!/usr/bin/env python3
"""WebSocket check: a test fixture for pipelit-edge's Molecule scenarios.

Run from the probe container against the reverse proxy under test (with
echo_backend.py behind it), it proves that WebSocket upgrades get through:
the handshake answers 101, a text and a 70000-byte binary message come back
unchanged, and, with --idle, that an idle connection survives that long.
It is never part of a role and is never installed on a real host.

It needs the `websockets` library: Debian 12's python3-websockets (10.4, the
legacy API) is what the probe has; newer releases (13+, the new asyncio API)
work as well.

Prints one JSON object on stdout; exits 0 only if every requested check passed.

    ws_check.py URL [--cafile PATH | --insecure] [--server-hostname NAME]
                [--idle SECONDS] [--wait-close SECONDS] [--origin ORIGIN]
                [--header 'Name: value' ...] [--opened PATH]

--opened creates PATH once the connection is open and both echoes came
back, so a test can act on the open connection (reload the proxy) without
guessing how long the client takes to get there on a loaded machine.

--wait-close waits, after the echoes, for the server to end the connection
(a proxy reloading, say) and reports when ("closed_at", seconds since the
epoch) and how ("close_code": 1006 when no close frame came); it passes only
if the server ended it within SECONDS.
"""

import argparse
import asyncio
import inspect
import json
import os
import socket
import ssl
import sys
import time
from urllib.parse import urlsplit

import websockets

try:  # websockets >= 13: the new asyncio implementation
    from websockets.asyncio.client import connect

    HEADERS_KWARG = "additional_headers"
except ImportError:  # websockets <= 12, e.g. Debian 12's 10.4: legacy API
    from websockets import connect

    HEADERS_KWARG = "extra_headers"

TIMEOUT = 30  # seconds for the handshake and for each echo to come back (a loaded machine)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--cafile", help="verify the server against this CA bundle")
    tls.add_argument("--insecure", action="store_true", help="skip TLS verification")
    parser.add_argument("--server-hostname", help="TLS name (SNI and check) to use")
    parser.add_argument("--idle", type=float, default=0.0, help="seconds to stay idle")
    parser.add_argument("--wait-close", type=float, default=0.0, help="seconds to wait for the server to end the connection")
    parser.add_argument("--origin")
    parser.add_argument("--opened", help="file to create once the connection is open and has echoed")
    parser.add_argument("--header", action="append", default=[], help="extra request header, 'Name: value' (repeatable)")
    args = parser.parse_args()
    args.headers = []
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            parser.error("--header wants 'Name: value', got %r" % item)
        args.headers.append((name.strip(), value.strip()))
    return args


def tls_context(args):
    if urlsplit(args.url).scheme != "wss":
        return None  # passing any ssl argument with ws:// is an error upstream
    context = ssl.create_default_context(cafile=args.cafile)
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def raw_status(args, context):
    """Ask for the upgrade again by hand and return the status code, or None.

    websockets refuses to parse a response that is not HTTP/1.1 (e.g. the
    HTTP/1.0 of `python3 -m http.server`) and then says nothing about its
    status, so this second, library-free attempt reads the status line.
    """
    url = urlsplit(args.url)
    port = url.port or (443 if context else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=TIMEOUT) as sock:
            if context:
                sock = context.wrap_socket(sock, server_hostname=args.server_hostname or url.hostname)
            target = (url.path or "/") + ("?" + url.query if url.query else "")
            request = [
                "GET %s HTTP/1.1" % target,
                "Host: %s" % url.netloc,
                "Upgrade: websocket",
                "Connection: Upgrade",
                "Sec-WebSocket-Version: 13",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            ] + ["%s: %s" % h for h in args.headers]
            if args.origin:
                request.append("Origin: " + args.origin)
            sock.sendall(("\r\n".join(request) + "\r\n\r\n").encode())
            line = sock.makefile("rb").readline(1024).split()
            return int(line[1]) if len(line) > 1 and line[1].isdigit() else None
    except (OSError, ValueError):
        return None


async def echo(ws, message):
    await ws.send(message)
    return await asyncio.wait_for(ws.recv(), TIMEOUT) == message


async def check(args, result):
    context = tls_context(args)
    kwargs = {
        "origin": args.origin,
        HEADERS_KWARG: args.headers or None,
        "ping_interval": None,  # no keepalive pings: --idle must be truly idle
        "close_timeout": 2,
        "open_timeout": TIMEOUT,
        "compression": None,  # the echo backend negotiates no extensions
    }
    if "proxy" in inspect.signature(connect).parameters:
        kwargs["proxy"] = None  # websockets >= 15 would honour $https_proxy
    if context:
        kwargs["ssl"] = context
        if args.server_hostname:
            kwargs["server_hostname"] = args.server_hostname
    try:
        ws = await connect(args.url, **kwargs)
    except websockets.exceptions.InvalidHandshake as exc:
        # 10.4 raises InvalidStatusCode(.status_code); >= 14 raises
        # InvalidStatus(.response.status_code); InvalidMessage carries neither.
        status = getattr(exc, "status_code", None)
        status = status or getattr(getattr(exc, "response", None), "status_code", None)
        result["status"] = status or raw_status(args, context)
        cause = " (%s)" % exc.__cause__ if exc.__cause__ else ""
        result["error"] = "handshake failed: %s%s" % (exc, cause)
        return
    # The new API keeps the handshake response; the legacy one only its
    # headers (connect() returning at all means the status was 101).
    response = getattr(ws, "response", None)
    result["status"] = response.status_code if response else 101
    headers = response.headers if response else ws.response_headers
    result["response_headers"] = {k.lower(): v for k, v in headers.raw_items()}

    stage = "text echo"
    try:
        result["text_echo"] = await echo(ws, "hello-" + os.urandom(8).hex())
        stage = "binary echo"
        result["binary_echo"] = await echo(ws, os.urandom(70000))
        if args.opened:
            with open(args.opened, "w", encoding="ascii") as handle:
                handle.write("open\n")
        if args.idle:
            stage = "echo after %g s idle" % args.idle
            await asyncio.sleep(args.idle)
            result["after_idle_echo"] = False
            result["after_idle_echo"] = await echo(ws, "after-idle-" + os.urandom(8).hex())
        if args.wait_close:
            stage = "wait for the server to close"
            try:
                await asyncio.wait_for(ws.wait_closed(), args.wait_close)
            except TimeoutError:
                result["error"] = "the server kept the connection for %g s" % args.wait_close
            else:
                result["closed_at"] = time.time()
                result["close_code"] = ws.close_code
            return
        stage = "close"
        await ws.close()
    except Exception as exc:  # closed connection, timeout, protocol error
        result["error"] = "%s failed: %s: %s" % (stage, type(exc).__name__, exc)
    finally:
        await ws.close()  # no-op when already closed


def main():
    args = parse_args()
    idle = int(args.idle) if args.idle.is_integer() else args.idle
    result = {"status": None, "text_echo": False, "binary_echo": False, "idle_seconds": idle, "after_idle_echo": None, "error": None}
    if args.wait_close:
        result.update(closed_at=None, close_code=None)
    try:
        asyncio.run(check(args, result))
    except Exception as exc:  # refused connection, TLS failure, bad URL ...
        result["error"] = "%s: %s" % (type(exc).__name__, exc)
    ok = bool(
        result["error"] is None
        and result["status"] == 101
        and result["text_echo"]
        and result["binary_echo"]
        and (not args.idle or result["after_idle_echo"])
    )
    if not ok and result["error"] is None:
        result["error"] = "an echo came back different"
    print(json.dumps(result))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
