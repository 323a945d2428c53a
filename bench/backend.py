#!/usr/bin/env python3
"""Bench backend: the stand-in for Pipelit behind the proxies under benchmark.

A benchmark fixture, never part of a role and never installed on a real host.
molecule/shared/files/echo_backend.py (one thread per connection, a JSON
description of every request) is right for tests but would itself be the
bottleneck here, and 10,000 idle WebSockets would be 10,000 threads. This one
is a single asyncio process, standard library only (Debian 12's Python 3.11):

  GET /health             -> 200 {"status":"ok"}, keep-alive (the small request)
  GET /delay/MS           -> the same after MS milliseconds of waiting, as an
                             app waits on its database (no CPU spent)
  GET /ws/... + Upgrade   -> WebSocket echo of text and binary messages
  anything else           -> 404

It speaks just enough HTTP/1.1 for wrk, nginx and Caddy: keep-alive unless
the request says `Connection: close` or is HTTP/1.0 (the guide's nginx config
talks HTTP/1.0 upstream, so there the backend closes after each answer, as
uvicorn does), and bodies announced with Content-Length are skipped.

    backend.py [--listen 0.0.0.0] [--port 8000]
"""

import argparse
import asyncio
import base64
import hashlib
import signal
import socket
import struct

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
BODY = b'{"status":"ok"}\n'
MAX_HEADER = 64 * 1024
MAX_WS_MESSAGE = 1024 * 1024


def response(status, body, close):
    return (
        b"HTTP/1.1 %s\r\nServer: bench-backend\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n%s\r\n" % (status, len(body), b"Connection: close\r\n" if close else b"")
    ) + body


OK_KEEP = response(b"200 OK", BODY, False)
OK_CLOSE = response(b"200 OK", BODY, True)


async def websocket(reader, writer, key):
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    await writer.drain()
    while True:  # no timeout: idle connections stay open as long as the peer wants
        head = await reader.readexactly(2)
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", await reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", await reader.readexactly(8))[0]
        if length > MAX_WS_MESSAGE:
            return
        mask = await reader.readexactly(4) if head[1] & 0x80 else b"\0\0\0\0"
        data = await reader.readexactly(length)
        key_stream = (mask * (length // 4 + 1))[:length]
        data = (int.from_bytes(data, "big") ^ int.from_bytes(key_stream, "big")).to_bytes(length, "big")
        if opcode == 8:  # close: answer with the same code, then hang up
            writer.write(b"\x88" + bytes([len(data[:2])]) + data[:2])
            await writer.drain()
            return
        if opcode == 9:  # ping -> pong
            opcode = 10
        elif opcode == 10:
            continue
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, length)
        elif length < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
        writer.write(header + data)
        await writer.drain()


async def serve(reader, writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:  # answers are one write each, but never wait on Nagle
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > MAX_HEADER:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = (lines[0].split(" ") + ["", "", ""])[:3]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name:
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            if length:
                await reader.readexactly(length)
            connection = headers.get("connection", "").lower()
            if target.startswith("/ws/") and "websocket" in headers.get("upgrade", "").lower() and "sec-websocket-key" in headers:
                await websocket(reader, writer, headers["sec-websocket-key"].encode())
                return
            close = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
            path = target.split("?", 1)[0]
            if path == "/health" or path == "/":
                answer = OK_CLOSE if close else OK_KEEP
            elif path.startswith("/delay/") and path[7:].isdigit():
                await asyncio.sleep(int(path[7:]) / 1000)
                answer = OK_CLOSE if close else OK_KEEP
            else:
                answer = response(b"404 Not Found", b'{"detail":"Not Found"}\n', close)
            writer.write(answer if method != "HEAD" else answer[: answer.index(b"\r\n\r\n") + 4])
            await writer.drain()
            if close:
                return
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    server = await asyncio.start_server(serve, args.listen, args.port, backlog=4096, limit=MAX_HEADER)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
