#!/usr/bin/env python3
"""Echo backend: a test fixture for pipelit-edge's Molecule scenarios.

It stands in for the real upstream behind the reverse proxy under test, so a
scenario can see exactly what the proxy forwarded: every plain HTTP request is
answered with a JSON description of itself (method, raw target, headers, body
size, peer address, TLS or not), and WebSocket connections are echoed back.
It is never part of a role and is never installed on a real host.

Standard library only: it must run unchanged on Debian 12 (Python 3.11) and
Debian 13 (Python 3.13) containers with no extra packages.

    echo_backend.py --listen 127.0.0.1 --port 8000 [--tls-cert C --tls-key K]
                    [--name NAME] [--aliasvault-routes] [--serve-files DIR] [--quiet]

--serve-files DIR gives it Pipelit's flaw on purpose: like Pipelit's UI
route (`frontend_dist / full_path` when that is a file), a GET whose decoded
path names a file under DIR, or anywhere the join leads (an absolute or `..`
path escapes DIR: nothing is normalised), is answered with that file, the raw
target in X-Echo-Target. The edge's path guard must keep such requests away.

--aliasvault-routes makes it stand in for AliasVault's internal reverse proxy,
which routes by path: /api to the API (GET /api answers "OK", as AliasVault's
health check does), /admin to the Blazor admin (the only WebSocket route), and
everything else to the web client. Each JSON answer then names its "route".

A request with the header `X-Echo-Stall: SECONDS` (at most 600) gets no
answer: the backend reads it, stays silent for that long, as a hung process
does, then closes the connection. The proxy's read timeout ends it first; the
rest of the backend (its other connections, an idle WebSocket) goes on.
"""

import argparse
import base64
import hashlib
import http.server
import json
import os
import signal
import socket
import ssl
import struct
import sys
import time
from urllib.parse import unquote, urlsplit

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
CHUNK = 64 * 1024  # bodies are streamed in pieces of this size
MAX_WS_MESSAGE = 64 * 2**20  # a runaway frame length must not eat the RAM
MAX_STALL_SECONDS = 600  # X-Echo-Stall: a typo must not hold a thread for days


class EchoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer has Content-Length
    # Headers and body go out in separate send() calls: without TCP_NODELAY a
    # keep-alive client can stall ~40 ms per request on delayed ACKs.
    disable_nagle_algorithm = True
    server_name = "echo"
    quiet = False
    aliasvault_routes = False
    serve_files = None

    def handle(self):
        # The listening socket is wrapped with do_handshake_on_connect=False so
        # that a slow or broken TLS client stalls only its own thread, not the
        # accept loop; the handshake is therefore done here.
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                self.log_message("TLS handshake failed: %s", exc)
                return
        super().handle()

    def __getattr__(self, name):
        # BaseHTTPRequestHandler dispatches to do_<METHOD>; answering every
        # method (even unusual ones) shows what the proxy lets through.
        if name.startswith("do_"):
            return self.handle_any
        raise AttributeError(name)

    def route(self, path):
        """AliasVault's routing by path prefix (see --aliasvault-routes)."""
        for prefix, name in (("/api", "api"), ("/admin", "admin")):
            if path == prefix or path.startswith(prefix + "/"):
                return name
        return "client"

    def handle_any(self):
        # self.path may already be rewritten (3.11+ collapses a leading "//"),
        # so the target is taken from the request line exactly as received.
        target = self.requestline.split()[1]
        parts = urlsplit(target)
        route = self.route(parts.path) if self.aliasvault_routes else None
        upgrade = self.headers.get("Upgrade", "")
        if "websocket" in [t.strip().lower() for t in upgrade.split(",")] and self.headers.get("Sec-WebSocket-Key"):
            if route in (None, "admin"):
                self.websocket()
            else:  # AliasVault upgrades only its admin's connections
                self.send_error(404, "no WebSocket on the %s route" % route)
                self.close_connection = True
            return
        # The path as uvicorn takes it: the target up to '?' (urlsplit would
        # read the "//etc" of "//etc/x" as a host name).
        raw_path = target.split("?", 1)[0] if target.startswith("/") else parts.path
        if self.serve_files and self.command == "GET" and self.serve_file(target, raw_path):
            return
        if route == "api" and self.command == "GET" and parts.path == "/api":
            self.drain_body()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")
            return
        try:
            body_bytes = self.drain_body()
        except ValueError as exc:
            self.send_error(400, str(exc))
            self.close_connection = True
            return
        if self.headers.get("X-Echo-Stall"):
            # A hung backend, for this request only: no answer, then closed.
            time.sleep(min(float(self.headers["X-Echo-Stall"]), MAX_STALL_SECONDS))
            self.close_connection = True
            return
        headers = {}
        for key, value in self.headers.items():
            key = key.lower()
            headers[key] = headers[key] + ", " + value if key in headers else value
        payload = (
            json.dumps(
                {
                    "name": self.server_name,
                    "method": self.command,
                    "target": target,
                    "path": parts.path,
                    "query": parts.query,
                    "headers": headers,
                    "body_bytes": body_bytes,
                    "peer": self.client_address[0],
                    "peer_port": self.client_address[1],
                    "tls": isinstance(self.connection, ssl.SSLSocket),
                    "route": route,
                },
                indent=1,
            ).encode()
            + b"\n"
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def serve_file(self, target, raw_path):
        """Pipelit's UI route, flaw included: uvicorn percent-decodes the path
        (urllib's unquote), Starlette's {full_path:path} drops the first '/',
        and the join with the directory is never normalised. True when a
        file was sent."""
        full_path = unquote(raw_path)[1:]
        candidate = os.path.join(self.serve_files, full_path)
        try:
            if not full_path or not os.path.isfile(candidate):
                return False
            with open(candidate, "rb") as handle:
                content = handle.read()
        except (ValueError, OSError):  # a NUL in the path, an unreadable file
            return False
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(content)))
        self.send_header("X-Echo-Target", target)
        self.end_headers()
        self.wfile.write(content)
        return True

    def drain_body(self):
        """Read the request body and return its size, keeping none of it."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            total = 0
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    break
                total += self.skip(size)
                self.rfile.readline(1024)  # CRLF after the chunk data
            while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                pass  # trailer fields, ignored
            return total
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return self.skip(length)

    def skip(self, count):
        done = 0
        while done < count:
            data = self.rfile.read(min(CHUNK, count - done))
            if not data:
                raise ValueError("body shorter than announced")
            done += len(data)
        return done

    # ---- WebSocket (RFC 6455) ------------------------------------------

    def websocket(self):
        key = self.headers["Sec-WebSocket-Key"].strip().encode()
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.close_connection = True  # no HTTP after the WebSocket ends
        message_opcode, parts, size = None, [], 0
        # No socket timeout anywhere: idle connections may last for hours.
        while True:
            frame = self.read_frame()
            if frame is None:
                return  # peer went away without a close frame
            if frame is False:
                return self.send_close(1002)
            fin, rsv, opcode, payload = frame
            if rsv:  # no extension was negotiated, so no RSV bit may be set
                return self.send_close(1002)
            if opcode >= 8:  # control frames: never fragmented, <= 125 bytes
                if not fin or len(payload) > 125 or (opcode == 8 and len(payload) == 1):
                    return self.send_close(1002)
                if opcode == 8:
                    return self.send_frame(8, payload[:2])  # echo the code
                if opcode == 9:
                    self.send_frame(10, payload)
                elif opcode != 10:  # unsolicited pongs are ignored
                    return self.send_close(1002)
                continue
            if opcode in (1, 2):
                if message_opcode is not None:
                    return self.send_close(1002)  # new message mid-fragments
                message_opcode = opcode
            elif opcode != 0 or message_opcode is None:
                return self.send_close(1002)  # unknown opcode / stray continuation
            parts.append(payload)
            size += len(payload)
            if size > MAX_WS_MESSAGE:
                return self.send_close(1009)
            if fin:
                message = b"".join(parts)
                if message_opcode == 1:
                    try:
                        message.decode("utf-8")
                    except UnicodeDecodeError:
                        return self.send_close(1007)
                self.send_frame(message_opcode, message)
                message_opcode, parts, size = None, [], 0

    def read_exact(self, count):
        data = self.rfile.read(count)
        if len(data) != count:
            raise EOFError
        return data

    def read_frame(self):
        """Return (fin, rsv, opcode, payload), None on EOF, False if invalid."""
        try:
            b0, b1 = self.read_exact(2)
            length = b1 & 0x7F
            if length == 126:
                length = struct.unpack("!H", self.read_exact(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self.read_exact(8))[0]
            if not b1 & 0x80 or length > MAX_WS_MESSAGE:
                return False  # clients must mask; refuse absurd lengths
            mask = self.read_exact(4)
            payload = self.read_exact(length)
        except (EOFError, OSError):
            return None
        # XOR the whole payload as one big integer: fast enough in pure Python
        # for multi-megabyte frames, unlike a per-byte loop.
        key = (mask * (length // 4 + 1))[:length]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
        return bool(b0 & 0x80), b0 & 0x70, b0 & 0x0F, payload

    def send_frame(self, opcode, payload):
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, length)
        elif length < 2**16:
            header = struct.pack("!BBH", 0x80 | opcode, 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
        try:
            self.wfile.write(header + payload)
        except OSError:
            pass  # peer gone; the read loop notices on its next read

    def send_close(self, code):
        self.send_frame(8, struct.pack("!H", code))

    def log_message(self, format, *args):
        if not self.quiet:
            sys.stderr.write("%s %s - %s\n" % (self.server_name, self.address_string(), format % args))


class EchoServer(http.server.ThreadingHTTPServer):
    daemon_threads = True  # open WebSockets must not block the exit
    request_queue_size = 1024  # the default backlog of 5 drops bursts of connects

    def handle_error(self, request, client_address):
        # Clients vanishing mid-request is routine in these tests; no tracebacks.
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError, TimeoutError)):
            super().handle_error(request, client_address)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--name", default="echo")
    parser.add_argument("--aliasvault-routes", action="store_true")
    parser.add_argument("--serve-files", metavar="DIR")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")

    EchoHandler.server_name, EchoHandler.quiet = args.name, args.quiet
    EchoHandler.aliasvault_routes = args.aliasvault_routes
    EchoHandler.serve_files = args.serve_files
    if ":" in args.listen:
        EchoServer.address_family = socket.AF_INET6
    server = EchoServer((args.listen, args.port), EchoHandler)
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)

    # SIGTERM (docker stop, systemd) leaves serve_forever() like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
