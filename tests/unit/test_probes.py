"""The decisions of the modules that probe from outside, with their network
calls replaced: the ACME pre-flight's verdict per domain
(roles/acme_preflight/library/acme_preflight_probe.py), the SSH session's
port (roles/ufw/library/ufw_ssh_session.py), and edge_verify's WebSocket
frames (roles/edge_verify/library/edge_verify_probe.py). The connections
themselves are left to the Molecule scenarios."""

from __future__ import annotations

import io
import socket
import struct
import sys
import time

import pytest
from conftest import ROOT

for folder in ("roles/ufw/library", "roles/edge_verify/library"):
    if str(ROOT / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / folder))

import acme_preflight_probe as preflight
import edge_verify_probe as verify_probe
import ufw_ssh_session as ssh_session

PARAMS = {"http": True, "path": "/.well-known/pipelit-edge-preflight/", "token": "tok123", "timeout": 1.0}
ITEM = {"site": "pipelit", "domain": "pipelit.test", "port": 80}


def test_addresses_have_one_spelling():
    assert preflight.normalized("::ffff:192.0.2.1") == "192.0.2.1"
    assert preflight.normalized("fe80::1%eth0") == "fe80::1"
    assert preflight.normalized("2001:DB8::1") == "2001:db8::1"
    assert preflight.normalized("pipelit.test") is None


def test_resolve_keeps_getaddrinfos_order_once_each(monkeypatch):
    answers = [(0, 0, 0, "", ("::ffff:192.0.2.1", 80)), (0, 0, 0, "", ("192.0.2.1", 80)), (0, 0, 0, "", ("2001:db8::1", 80, 0, 0))]
    monkeypatch.setattr(preflight.socket, "getaddrinfo", lambda domain, port, type: answers)
    assert preflight.resolve("pipelit.test", 80) == ["192.0.2.1", "2001:db8::1"]


def check(monkeypatch, resolved, answers, addresses=("192.0.2.1",), item=ITEM, params=PARAMS):
    def resolve(domain, port):
        if isinstance(resolved, Exception):
            raise resolved
        return resolved

    monkeypatch.setattr(preflight, "resolve", resolve)
    monkeypatch.setattr(preflight, "fetch", lambda address, port, domain, path, timeout: answers[address])
    return preflight.check(item, set(addresses), params)


def test_a_domain_that_resolves_here_and_serves_the_token_passes(monkeypatch):
    result = check(monkeypatch, ["192.0.2.1"], {"192.0.2.1": (200, b"tok123\n", "nginx", "")})
    assert result["ok"] is True and "failure" not in result
    assert result["answers"] == [{"address": "192.0.2.1", "status": 200, "token": True}]


def test_a_domain_that_does_not_resolve(monkeypatch):
    result = check(monkeypatch, socket.gaierror("Name or service not known"), {})
    assert result["ok"] is False
    assert result["failure"].startswith("site 'pipelit': domain pipelit.test does not resolve from ")


def test_a_domain_that_resolves_elsewhere_in_whole_or_in_part(monkeypatch):
    result = check(monkeypatch, ["198.51.100.7"], {})
    assert result["failure"] == "site 'pipelit': domain pipelit.test resolves to [198.51.100.7], not this host (192.0.2.1)"
    result = check(monkeypatch, ["192.0.2.1", "2001:db8::99"], {})
    assert result["failure"] == (
        "site 'pipelit': domain pipelit.test resolves to [192.0.2.1, 2001:db8::99], and 2001:db8::99 is not this host (192.0.2.1)"
    )
    result = check(monkeypatch, [], {}, addresses=())
    assert result["failure"] == "site 'pipelit': domain pipelit.test resolves to [], not this host (no address known)"


def test_without_http_only_dns_is_checked(monkeypatch):
    assert check(monkeypatch, ["192.0.2.1"], {}, params={**PARAMS, "http": False})["ok"] is True
    assert check(monkeypatch, ["192.0.2.1"], {}, item={**ITEM, "http": False})["ok"] is True


def test_what_answered_instead_of_the_token_is_named(monkeypatch):
    answers = {
        "192.0.2.1": (301, b"", "cloudflare", "https://pipelit.test/"),
        "2001:db8::1": (None, "no answer (connection refused)", "", ""),
    }
    result = check(monkeypatch, ["192.0.2.1", "2001:db8::1"], answers, addresses=("192.0.2.1", "2001:db8::1"), item={**ITEM, "port": 8080})
    assert result["ok"] is False
    assert result["failure"] == (
        "site 'pipelit': domain pipelit.test resolves to this host, but http://pipelit.test:8080/.well-known/pipelit-edge-preflight/tok123: "
        "answered 301 (Server: cloudflare) to https://pipelit.test/, empty body from 192.0.2.1; "
        "no answer (connection refused) from 2001:db8::1, not the token"
    )
    result = check(monkeypatch, ["192.0.2.1"], {"192.0.2.1": (200, b"<html>" + b"x" * 200, "", "")})
    assert "answered 200, body '<html>" in result["failure"] and len(result["answers"][0]["answer"]) < 120


def test_fetch_names_what_went_wrong(monkeypatch):
    class Connection:
        def __init__(self, host, port, timeout):
            self.host = host

        def request(self, method, path, headers):
            raise self.error

        def close(self):
            pass

    for error, answer in (
        (ConnectionRefusedError(), "no answer (connection refused)"),
        (TimeoutError(), "no answer within 1 s"),
        (preflight.http.client.RemoteDisconnected(), "no answer (the connection was closed)"),
        (OSError("Network is unreachable"), "no answer (Network is unreachable)"),
    ):
        Connection.error = error
        monkeypatch.setattr(preflight.http.client, "HTTPConnection", Connection)
        assert preflight.fetch("2001:db8::1", 80, "pipelit.test", "/x", 1.0) == (None, answer, "", ""), error


# --- ufw_ssh_session ----------------------------------------------------------


def test_ssh_connection_is_parsed_strictly():
    assert ssh_session.parse_ssh_connection("192.0.2.9 50022 192.0.2.1 2222") == ("192.0.2.9 50022 192.0.2.1 2222", 2222)
    for bad in ("", "192.0.2.9 50022 192.0.2.1", "a b c d", "192.0.2.9 50022 192.0.2.1 70000", "192.0.2.9 x 192.0.2.1 22"):
        assert ssh_session.parse_ssh_connection(bad) is None, bad


def test_the_session_is_found_in_the_first_ancestor_that_holds_it(monkeypatch):
    parents = {100: 90, 90: 80, 80: 1, 1: 0}
    environs = {90: OSError("denied"), 80: {"SSH_CONNECTION": "192.0.2.9 50022 192.0.2.1 2222"}}

    def read_environ(pid):
        value = environs.get(pid, {})
        if isinstance(value, Exception):
            raise value
        return value

    monkeypatch.setattr(ssh_session, "read_environ", read_environ)
    monkeypatch.setattr(ssh_session, "parent_of", parents.__getitem__)
    result = ssh_session.find_session(100, {"PATH": "/usr/bin"})
    assert result == {"found": True, "server_port": 2222, "ssh_connection": "192.0.2.9 50022 192.0.2.1 2222", "pid": 80, "unreadable": [90]}
    environs.pop(80)
    result = ssh_session.find_session(100, {})
    assert result["found"] is False and result["server_port"] is None and result["unreadable"] == [90]
    # A loop in the parents (a reused pid) ends the walk.
    monkeypatch.setattr(ssh_session, "parent_of", lambda pid: 100)
    assert ssh_session.find_session(100, {})["found"] is False


def test_the_own_process_is_read_from_proc():
    import os

    assert ssh_session.parent_of(os.getpid()) == os.getppid()
    assert ssh_session.read_environ(os.getpid()).get("PATH") is not None


# --- edge_verify_probe --------------------------------------------------------


class Sink:
    def __init__(self):
        self.sent = b""

    def sendall(self, data):
        self.sent += data


def test_a_client_frame_is_masked_and_reads_back():
    sink = Sink()
    verify_probe.send_frame(sink, 0x1, b"hello")
    assert sink.sent[0] == 0x81 and sink.sent[1] == 0x80 | 5
    assert verify_probe.read_frame(io.BytesIO(sink.sent)) == (0x1, b"hello")


def test_server_frames_of_every_length_encoding():
    assert verify_probe.read_frame(io.BytesIO(b"\x82\x03abc")) == (0x2, b"abc")
    assert verify_probe.read_frame(io.BytesIO(b"\x81\x7e" + struct.pack("!H", 300) + b"x" * 300)) == (0x1, b"x" * 300)
    assert verify_probe.read_frame(io.BytesIO(b"\x81\x7f" + struct.pack("!Q", 70000) + b"y" * 70000))[1] == b"y" * 70000
    with pytest.raises(ValueError, match="larger than any answer"):
        verify_probe.read_frame(io.BytesIO(b"\x81\x7f" + struct.pack("!Q", 1 << 21)))
    with pytest.raises(ValueError, match="closed before an answer"):
        verify_probe.read_frame(io.BytesIO(b"\x81"))


def test_rows_and_ports():
    assert verify_probe.row("tls", "a.test", True, "ok") == {"check": "tls", "target": "a.test", "status": "pass", "detail": "ok"}
    assert verify_probe.row("tls", "a.test", False, "x")["status"] == "fail"
    assert verify_probe.with_port("a.test", 443, 443) == "a.test"
    assert verify_probe.with_port("a.test", 8443, 443) == "a.test:8443"


def test_a_wildcard_is_checked_under_a_name_it_covers_or_skipped(monkeypatch):
    calls = []

    class Recorder(verify_probe.Prober):
        def redirect(self, domain):
            calls.append(("redirect", domain))
            return verify_probe.row("redirect", domain, True, "")

        def certificate(self, domain):
            calls.append(("certificate", domain))
            return []

        def headers(self, domain):
            calls.append(("headers", domain))
            return []

    site = {"name": "wild", "domains": ["*.pipelit.test", "pipelit.test"]}
    params = {"site": site, "timeout": 1.0, "connect_to": "", "http3": False, "websocket_paths": []}

    def no_such_name(*_args):
        raise socket.gaierror("Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    rows = Recorder(params).site_rows()
    assert rows[0] == {
        "check": "wildcard",
        "target": "*.pipelit.test",
        "status": "skip",
        "detail": "checked as pipelit-edge-verify.pipelit.test, which does not resolve from here",
        "site": "wild",
    }
    # The checks run at once: their order is the rows', not the calls'.
    assert sorted(calls) == [("certificate", "pipelit.test"), ("headers", "pipelit.test"), ("redirect", "pipelit.test")]
    calls.clear()
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_args: [("resolved",)])
    Recorder(params).site_rows()
    assert ("redirect", "pipelit-edge-verify.pipelit.test") in calls and ("headers", "pipelit-edge-verify.pipelit.test") in calls
    # With connect_to, the name need not resolve.
    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    assert Recorder({**params, "connect_to": "192.0.2.1"}).probe_name("*.pipelit.test") == "pipelit-edge-verify.pipelit.test"


def test_closed_ports_keep_their_order_and_say_what_answered():
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: refused
    try:
        open_port, closed_port = listening.getsockname()[1], closed.getsockname()[1]
        params = {"address": "127.0.0.1", "closed_ports": [f"{open_port}/tcp", f"{closed_port}", "6379/udp"], "timeout": 1.0}
        rows = verify_probe.Prober(params).closed_port_rows()
    finally:
        listening.close()
        closed.close()
    assert [(r["target"], r["status"]) for r in rows] == [
        (f"127.0.0.1:{open_port}/tcp", "fail"),
        (f"127.0.0.1:{closed_port}", "pass"),
        ("127.0.0.1:6379/udp", "skip"),
    ]
    assert rows[0]["detail"] == "accepted a connection from here" and rows[1]["detail"] == "refused"


def test_filtered_ports_are_waited_for_together(monkeypatch):
    # A filtered port answers nothing: each probe waits its whole timeout.
    # Four of them must cost about one timeout, not four.
    def unanswered(address, timeout):
        time.sleep(0.5)
        raise TimeoutError

    monkeypatch.setattr(verify_probe.socket, "create_connection", unanswered)
    params = {"address": "192.0.2.1", "closed_ports": ["8000/tcp", "6379/tcp", "5432/tcp", "9000/tcp"], "timeout": 0.5}
    started = time.monotonic()
    rows = verify_probe.Prober(params).closed_port_rows()
    assert time.monotonic() - started < 1.5
    assert [r["detail"] for r in rows] == ["no answer (filtered)"] * 4


def test_a_sites_checks_are_waited_for_together_and_keep_their_order():
    # A site that answers nothing: each check waits its whole timeout. Two
    # domains' redirects and certificates, the headers, HTTP/3 and two
    # WebSockets must cost about one timeout, not eight, and the table keeps
    # the order of the checks.
    class Unanswered(verify_probe.Prober):
        def probe_name(self, domain):
            return domain

        def unanswered(self, check, target):
            time.sleep(0.5)
            return verify_probe.row(check, target, False, "no answer")

        def redirect(self, domain):
            return self.unanswered("redirect", domain)

        def certificate(self, domain):
            return [self.unanswered("certificate", domain)]

        def headers(self, domain):
            return [self.unanswered("headers", domain)]

        def http3(self, domain):
            return self.unanswered("http3", domain)

        def websocket(self, domain, path):
            return self.unanswered("websocket", domain + path)

    site = {"name": "down", "domains": ["a.test", "b.test"]}
    params = {"site": site, "timeout": 0.5, "connect_to": "", "http3": True, "websocket_paths": ["/ws/", "/admin"]}
    started = time.monotonic()
    rows = Unanswered(params).site_rows()
    assert time.monotonic() - started < 2
    assert [(r["check"], r["target"], r["site"]) for r in rows] == [
        ("redirect", "a.test", "down"),
        ("certificate", "a.test", "down"),
        ("redirect", "b.test", "down"),
        ("certificate", "b.test", "down"),
        ("headers", "a.test", "down"),
        ("http3", "a.test", "down"),
        ("websocket", "a.test/ws/", "down"),
        ("websocket", "a.test/admin", "down"),
    ]


FAKE_CURL = """#!/bin/sh
# curl -V says HTTP3; a request counts itself in $COUNT and answers from the try $ANSWER_AT on.
[ "$1" = -V ] && { echo "Features: HTTP2 HTTP3"; exit 0; }
n=$(($(cat "$COUNT") + 1)); echo $n > "$COUNT"
if [ "$n" -ge "$ANSWER_AT" ]; then printf '200 3'; exit 0; fi
printf '000'; echo "curl: (28) Operation timed out" >&2; exit 28
"""


@pytest.mark.parametrize(("answer_at", "tries", "status"), [(1, 1, "pass"), (3, 3, "pass"), (99, 3, "fail")])
def test_an_unanswered_http3_request_is_tried_again_in_a_new_curl(tmp_path, monkeypatch, answer_at, tries, status):
    # curl's own --retry would stay on the connection that went unanswered:
    # each try must be a curl of its own.
    (tmp_path / "curl").write_text(FAKE_CURL)
    (tmp_path / "curl").chmod(0o755)
    count = tmp_path / "count"
    count.write_text("0")
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setenv("COUNT", str(count))
    monkeypatch.setenv("ANSWER_AT", str(answer_at))
    site = {"name": "pipelit", "https_port": 443}
    params = {"site": site, "timeout": 1.0, "connect_to": "", "http_path": "/", "verify_chain": False, "ca_bundle": ""}
    checked = verify_probe.Prober(params).http3("pipelit.test")
    assert (checked["status"], int(count.read_text())) == (status, tries)
    if status == "fail":
        assert checked["detail"] == "no answer over QUIC in 3 tries: curl: (28) Operation timed out"
