#!/usr/bin/python
"""Outside checks of a pipelit-edge host, run where the clients are."""

from __future__ import annotations

DOCUMENTATION = r"""
module: edge_verify_probe
short_description: Check an edge site (or a host's closed ports) the way a client on the internet sees it.
description:
  - Runs on the machine it is delegated to (the controller, or a probe host), so every connection comes from there.
  - With I(site), checks for each domain that plain HTTP redirects to HTTPS with path and query kept and that the
    certificate verifies (unless I(verify_chain) is false) with more than I(min_days) days left; on the primary domain,
    that the expected response headers are present, and that each WebSocket path answers a real upgrade (101 with the
    right C(Sec-WebSocket-Accept)) and then an echo or a ping.
  - A wildcard domain (C(*.example.com)) is checked as C(pipelit-edge-verify.example.com), a name it covers; where that
    name does not resolve from here (and no I(connect_to) is given), its row is skipped, saying so.
  - With I(closed_ports), checks that a TCP connection to each port of I(address) is refused or unanswered.
  - Never fails on a failed check; returns one row per check in C(rows), each with C(status) pass, fail or skip.
    Standard library only, so it runs on any host with Python 3.
options:
  site:
    description:
      - The site as C(proxy_sites_normalized) describes it; read are name, domains, http_port, https_port and headers
        (a list of name/value pairs).
    type: dict
  verify_chain:
    description: Verify the certificate chain and host name (false for self_signed sites, whose chain is reported as skipped).
    type: bool
    default: true
  ca_bundle:
    description: PEM bundle that verifies the certificates; empty for the system trust store.
    type: str
    default: ""
  min_days:
    description: Fewest days a certificate may have left.
    type: int
    default: 14
  http3:
    description:
      - Whether the site serves HTTP/3 on this host (the model's C(http3)). True adds a real HTTP/3 request (status and
        protocol; C(curl --http3-only), skipped with the reason where the machine's curl has no HTTP/3) and expects
        C(Alt-Svc) to advertise C(h3) on the HTTPS port; false expects no C(h3) in C(Alt-Svc).
    type: bool
    default: false
  http_path:
    description: Path requested for the header check.
    type: str
    default: /
  websocket_paths:
    description: Paths that must accept a WebSocket upgrade.
    type: list
    elements: str
    default: []
  websocket_mode:
    description: C(echo) expects a text message back unchanged; C(ping) expects a pong (any RFC 6455 server answers one).
    type: str
    choices: [echo, ping]
    default: ping
  token:
    description: Sent as the I(token_param) query parameter of WebSocket requests; never returned or logged.
    type: str
    default: ""
  token_param:
    description: Name of the query parameter that carries I(token).
    type: str
    default: token
  connect_to:
    description: Address to connect to instead of resolving each domain (as curl --resolve); TLS still sends the domain.
    type: str
    default: ""
  closed_ports:
    description: Ports (C(8000/tcp)) that must not accept connections on I(address).
    type: list
    elements: str
  address:
    description: Host address for I(closed_ports).
    type: str
    default: ""
  timeout:
    description: Seconds to wait for each connection and answer.
    type: float
    default: 10
"""

import base64
import hashlib
import http.client
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule

# New QUIC connections per HTTP/3 check, while none answers (Prober.http3).
HTTP3_TRIES = 3
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
PROBE_PATH = "/pipelit-edge-verify?probe=1"
# A wildcard domain ('*.example.com', dns-01) has no name of its own to
# connect to: it is checked as this label under its base name.
WILDCARD_PROBE_LABEL = "pipelit-edge-verify"


def row(check, target, ok, detail):
    return {"check": check, "target": target, "status": "pass" if ok else "fail", "detail": detail}


def with_port(domain, port, default):
    return domain if port == default else "%s:%d" % (domain, port)


class Prober:
    def __init__(self, params):
        self.p = params
        self.timeout = params["timeout"]

    # ---- connections -------------------------------------------------------

    def tls_context(self, verify):
        if not verify:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if self.p["ca_bundle"]:
            return ssl.create_default_context(cafile=self.p["ca_bundle"])
        return ssl.create_default_context()

    def connect(self, domain, port, context=None):
        sock = socket.create_connection((self.p["connect_to"] or domain, port), timeout=self.timeout)
        if context is None:
            return sock
        try:
            return context.wrap_socket(sock, server_hostname=domain)
        except Exception:
            sock.close()
            raise

    def request(self, sock, host, path):
        sock.sendall(
            ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: pipelit-edge-verify\r\nConnection: close\r\n\r\n" % (path, host)).encode()
        )
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response

    # ---- site checks -------------------------------------------------------

    def redirect(self, domain):
        site = self.p["site"]
        target = "http://%s%s" % (with_port(domain, site["http_port"], 80), PROBE_PATH)
        want = "https://%s%s" % (with_port(domain, site["https_port"], 443), PROBE_PATH)
        try:
            with self.connect(domain, site["http_port"]) as sock:
                response = self.request(sock, with_port(domain, site["http_port"], 80), PROBE_PATH)
        except (OSError, http.client.HTTPException) as exc:
            return row("redirect", target, False, "no answer: %s" % exc)
        location = response.getheader("Location", "")
        ok = response.status in (301, 308) and location == want
        return row(
            "redirect",
            target,
            ok,
            "%d to %s%s" % (response.status, location or "(no Location)", "" if ok else " (expected 301/308 to %s)" % want),
        )

    def certificate(self, domain):
        site, verify = self.p["site"], self.p["verify_chain"]
        target = with_port(domain, site["https_port"], 443)
        try:
            with self.connect(domain, site["https_port"], self.tls_context(verify)) as sock:
                version = sock.version()
                not_after = (sock.getpeercert() if verify else decode(sock.getpeercert(binary_form=True)))["notAfter"]
        except (OSError, ssl.SSLError) as exc:
            return [row("certificate", target, False, "handshake failed: %s" % exc)]
        days = int((ssl.cert_time_to_seconds(not_after) - time.time()) // 86400)
        rows = [
            row(
                "certificate",
                target,
                days >= self.p["min_days"],
                "%s, %d days left (until %s; at least %d wanted)" % (version, days, not_after, self.p["min_days"]),
            )
        ]
        if verify:
            rows[0]["detail"] = "chain and name verify against %s; %s" % (
                self.p["ca_bundle"] or "the system trust store",
                rows[0]["detail"],
            )
        else:
            rows.append(
                {"check": "certificate chain", "target": target, "status": "skip", "detail": "self_signed site: no CA to verify against"}
            )
        return rows

    def headers(self, domain):
        """The security headers, and Alt-Svc's h3 as the site's http3 says: two rows from one request."""
        site = self.p["site"]
        target = "https://%s%s" % (with_port(domain, site["https_port"], 443), self.p["http_path"])
        try:
            with self.connect(domain, site["https_port"], self.tls_context(self.p["verify_chain"])) as sock:
                response = self.request(sock, with_port(domain, site["https_port"], 443), self.p["http_path"])
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            return [row("headers", target, False, "no answer: %s" % exc)]
        rows = [self.alt_svc(target, response.getheader("Alt-Svc"))]
        wanted = {h["name"]: h["value"] for h in site.get("headers") or [] if h.get("value")}
        wrong = ["%s: %r (expected %r)" % (k, response.getheader(k), v) for k, v in sorted(wanted.items()) if response.getheader(k) != v]
        if wrong:
            return [row("headers", target, False, "status %d; %s" % (response.status, "; ".join(wrong)))] + rows
        return [
            row(
                "headers",
                target,
                response.status < 500,
                "status %d; %s" % (response.status, ", ".join(sorted(wanted)) or "no headers expected"),
            )
        ] + rows

    def alt_svc(self, target, value):
        """HTTP/3 advertised on the site's own HTTPS port exactly when it serves it."""
        advertised = 'h3=":%d"' % self.p["site"]["https_port"] in (value or "").replace(" ", "")
        if self.p["http3"]:
            return row("alt-svc", target, advertised, "Alt-Svc: %s%s" % (value, "" if advertised else " (expected h3 on this port)"))
        return row(
            "alt-svc", target, not advertised, "no h3 advertised (HTTP/3 off)" if not advertised else "Alt-Svc: %s (HTTP/3 is off)" % value
        )

    def http3(self, domain):
        """A real HTTP/3 request (QUIC over UDP), by curl: the standard library has no QUIC."""
        site = self.p["site"]
        host = with_port(domain, site["https_port"], 443)
        target = "https://%s%s" % (host, self.p["http_path"])
        curl = shutil.which("curl")
        if not curl or "HTTP3" not in subprocess.run([curl, "-V"], capture_output=True, text=True).stdout:
            return {
                "check": "http3",
                "target": target,
                "status": "skip",
                "detail": "this machine's curl has no HTTP/3 (curl -V lists no HTTP3; Debian 13's has)",
            }
        command = [curl, "--http3-only", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{http_version}"]
        command += ["--max-time", str(self.timeout), "-A", "pipelit-edge-verify"]
        if self.p["connect_to"]:
            # --connect-to takes a host name as well as an address (--resolve only an address).
            command += ["--connect-to", "%s:%d:%s:%d" % (domain, site["https_port"], self.p["connect_to"], site["https_port"])]
        if not self.p["verify_chain"]:
            command.append("--insecure")
        elif self.p["ca_bundle"]:
            command += ["--cacert", self.p["ca_bundle"]]
        # Tried three times, each in a new curl (a new QUIC connection), as a
        # browser falls back to TCP and tries again later: curl's own --retry
        # stays on the connection it keeps, and nginx 1.26.3 leaves about one
        # fresh HTTP/3 connection from curl in 100 unanswered under load
        # (README, HTTP/3). An answer, right or wrong, is never tried again.
        for _ in range(HTTP3_TRIES):
            result = subprocess.run(command + [target], capture_output=True, text=True)
            if result.returncode == 0:
                break
        status, _, version = result.stdout.strip().partition(" ")
        if result.returncode != 0:
            return row(
                "http3",
                target,
                False,
                "no answer over QUIC in %d tries: %s" % (HTTP3_TRIES, result.stderr.strip() or "curl exit %d" % result.returncode),
            )
        ok = version == "3" and status.isdigit() and int(status) < 500
        return row("http3", target, ok, "status %s over HTTP/%s" % (status, version))

    def websocket(self, domain, path):
        site = self.p["site"]
        host = with_port(domain, site["https_port"], 443)
        target = "wss://%s%s" % (host, path)  # shown without the token
        request_path = path
        if self.p["token"]:
            request_path += ("&" if "?" in path else "?") + "%s=%s" % (self.p["token_param"], self.p["token"])
        key = base64.b64encode(os.urandom(16))
        try:
            with self.connect(domain, site["https_port"], self.tls_context(self.p["verify_chain"])) as sock:
                sock.sendall(
                    b"GET "
                    + request_path.encode()
                    + b" HTTP/1.1\r\nHost: "
                    + host.encode()
                    + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                    + key
                    + b"\r\nSec-WebSocket-Version: 13\r\nOrigin: https://"
                    + host.encode()
                    + b"\r\nUser-Agent: pipelit-edge-verify\r\n\r\n"
                )
                reader = sock.makefile("rb")
                status_line = reader.readline(8192).decode("latin-1").strip()
                head = {}
                for line in iter(lambda: reader.readline(8192), b""):
                    if line in (b"\r\n", b"\n"):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    head[name.strip().lower()] = value.strip()
                parts = status_line.split(" ", 2)
                if len(parts) < 2 or parts[1] != "101":
                    return row("websocket", target, False, "upgrade refused: %s" % (status_line or "no answer"))
                accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
                if head.get("sec-websocket-accept") != accept:
                    return row("websocket", target, False, "101 with a wrong Sec-WebSocket-Accept")
                return self.exchange(sock, reader, target)
        except (OSError, ssl.SSLError, ValueError) as exc:
            return row("websocket", target, False, "failed: %s" % exc)

    def exchange(self, sock, reader, target):
        """After the 101: one echo or ping round trip, then a clean close."""
        mode = self.p["websocket_mode"]
        payload = ("pipelit-edge-verify %s" % os.urandom(6).hex()).encode()
        want_opcode = 0x1 if mode == "echo" else 0xA
        started = time.monotonic()
        send_frame(sock, want_opcode if mode == "echo" else 0x9, payload)
        while True:
            opcode, data = read_frame(reader)
            if opcode == 0x9:  # the server's own ping: answer it and keep waiting
                send_frame(sock, 0xA, data)
                continue
            if opcode == 0x8:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                return row("websocket", target, False, "101, then closed by the server (code %s)" % code)
            if opcode == want_opcode and data == payload:
                break
            if mode == "ping" and opcode in (0x1, 0x2):
                continue  # application messages may arrive before the pong
            return row("websocket", target, False, "101, then an unexpected frame (opcode %d)" % opcode)
        elapsed = (time.monotonic() - started) * 1000
        send_frame(sock, 0x8, struct.pack("!H", 1000))
        return row("websocket", target, True, "101, %s answered in %.1f ms" % ("echo" if mode == "echo" else "ping", elapsed))

    def probe_name(self, domain):
        """The name to connect to for a domain: itself, or for a wildcard
        '*.example.com' the name pipelit-edge-verify.example.com, which the
        wildcard covers; None when that name does not resolve from here (and
        no connect_to address is given)."""
        if not domain.startswith("*."):
            return domain
        name = "%s.%s" % (WILDCARD_PROBE_LABEL, domain[2:])
        if self.p["connect_to"]:
            return name
        try:
            socket.getaddrinfo(name, None)
        except (socket.gaierror, UnicodeError):
            return None
        return name

    def site_rows(self):
        # Every check at once, the rows in the table's order: a site that
        # answers nothing makes each check wait out its timeout, and in turn
        # they would add up (a port 443 that never completes a handshake:
        # certificate, headers and WebSocket, 30 s instead of 10).
        site = self.p["site"]
        checks, names = [], []  # each check returns a list of rows
        for domain in site["domains"]:
            name = self.probe_name(domain)
            if name is None:
                skipped = {
                    "check": "wildcard",
                    "target": domain,
                    "status": "skip",
                    "detail": "checked as %s.%s, which does not resolve from here" % (WILDCARD_PROBE_LABEL, domain[2:]),
                }
                checks.append(lambda skipped=skipped: [skipped])
                continue
            names.append(name)
            checks.append(lambda name=name: [self.redirect(name)])
            checks.append(lambda name=name: list(self.certificate(name)))
        primary = names[0] if names else None
        if primary:
            checks.append(lambda: list(self.headers(primary)))
            if self.p["http3"]:
                checks.append(lambda: [self.http3(primary)])
            checks.extend(lambda path=path: [self.websocket(primary, path)] for path in self.p["websocket_paths"])
        with ThreadPoolExecutor(max_workers=max(1, len(checks))) as pool:
            rows = [checked for part in pool.map(lambda check: check(), checks) for checked in part]
        for checked in rows:
            checked["site"] = site["name"]
        return rows

    # ---- host checks -------------------------------------------------------

    def closed_port_rows(self):
        # All ports at once: a filtered port answers nothing, so each probe
        # waits out its timeout, and in turn they would add up.
        specs = self.p["closed_ports"] or []
        if not specs:
            return []
        with ThreadPoolExecutor(max_workers=len(specs)) as pool:
            return list(pool.map(self.closed_port_row, specs))

    def closed_port_row(self, spec):
        port, _, proto = spec.partition("/")
        target = "%s:%s" % (self.p["address"], spec)
        if proto not in ("", "tcp"):
            return {"check": "closed port", "target": target, "status": "skip", "detail": "only TCP ports can be probed"}
        try:
            with socket.create_connection((self.p["address"], int(port)), timeout=min(self.timeout, 5)):
                return row("closed port", target, False, "accepted a connection from here")
        except ConnectionRefusedError:
            return row("closed port", target, True, "refused")
        except TimeoutError:
            return row("closed port", target, True, "no answer (filtered)")
        except OSError as exc:
            return row("closed port", target, True, "unreachable: %s" % exc)


def decode(der):
    """notAfter of a certificate that was not verified (ssl offers no public parser)."""
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as handle:
        handle.write(ssl.DER_cert_to_PEM_cert(der))
    try:
        return ssl._ssl._test_decode_cert(handle.name)  # pylint: disable=protected-access
    finally:
        os.unlink(handle.name)


def send_frame(sock, opcode, payload):
    """A client frame: FIN set, masked as RFC 6455 requires (payloads < 126 bytes here)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + masked)


def read_frame(reader):
    head = reader.read(2)
    if len(head) < 2:
        raise ValueError("connection closed before an answer")
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", reader.read(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", reader.read(8))[0]
    if length > 1 << 20:
        raise ValueError("frame of %d bytes, larger than any answer expected" % length)
    mask = reader.read(4) if head[1] & 0x80 else b""
    data = reader.read(length)
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return opcode, data


def main():
    module = AnsibleModule(
        argument_spec=dict(
            site=dict(type="dict"),
            verify_chain=dict(type="bool", default=True),
            ca_bundle=dict(type="str", default=""),
            min_days=dict(type="int", default=14),
            http3=dict(type="bool", default=False),
            http_path=dict(type="str", default="/"),
            websocket_paths=dict(type="list", elements="str", default=[]),
            websocket_mode=dict(type="str", choices=["echo", "ping"], default="ping"),
            token=dict(type="str", default="", no_log=True),
            token_param=dict(type="str", default="token", no_log=False),
            connect_to=dict(type="str", default=""),
            closed_ports=dict(type="list", elements="str"),
            address=dict(type="str", default=""),
            timeout=dict(type="float", default=10),
        ),
        required_one_of=[["site", "closed_ports"]],
        required_by={"closed_ports": ["address"]},
        supports_check_mode=True,
    )
    prober = Prober(module.params)
    rows = prober.site_rows() if module.params["site"] else []
    rows += prober.closed_port_rows()
    module.exit_json(changed=False, rows=rows)


if __name__ == "__main__":
    main()
