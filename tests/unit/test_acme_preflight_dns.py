"""The DNS-01 pre-flight (roles/acme_preflight/library/acme_preflight_dns.py):
its DNS wire format and TSIG (RFC 8945) cross-checked with dnspython (a
test-only dependency), and the whole check against a small RFC 2136 server
run here (dnspython answering on a loopback UDP port) that is authoritative
for pipelit.test and takes updates signed with one key."""

from __future__ import annotations

import base64
import socket
import struct
import threading
import time

import acme_preflight_dns as pf
import pytest

dns = pytest.importorskip("dns")
import dns.message  # noqa: E402
import dns.name  # noqa: E402
import dns.opcode  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdatatype  # noqa: E402
import dns.rrset  # noqa: E402
import dns.tsig  # noqa: E402
import dns.tsigkeyring  # noqa: E402
import dns.update  # noqa: E402

SECRET = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
KEY = "pipelit-edge-test"


def keyring(secret=SECRET, algorithm="hmac-sha256"):
    return {dns.name.from_text(KEY): dns.tsig.Key(KEY, secret, pf.TSIG_ALGORITHMS[algorithm][0])}


@pytest.mark.parametrize("algorithm", sorted(pf.TSIG_ALGORITHMS))
def test_a_signed_update_verifies_with_dnspython(algorithm):
    message = pf.build_update(4242, "pipelit.test", "_acme-challenge.pipelit.test", "tok-en", delete=False)
    signed, mac = pf.tsig_sign(message, KEY, algorithm, base64.b64decode(SECRET), int(time.time()))
    # from_wire checks the TSIG MAC (BadSignature otherwise).
    parsed = dns.message.from_wire(signed, keyring=keyring(algorithm=algorithm))
    assert parsed.opcode() == dns.opcode.UPDATE and parsed.id == 4242
    assert parsed.had_tsig and parsed.mac == mac
    (zone,) = parsed.zone
    assert zone.name == dns.name.from_text("pipelit.test") and zone.rdtype == dns.rdatatype.SOA
    (update,) = parsed.update
    assert update.name == dns.name.from_text("_acme-challenge.pipelit.test") and update.ttl == 60
    assert [rd.strings for rd in update] == [(b"tok-en",)]


def test_a_signed_delete_is_class_none_and_verifies():
    message = pf.build_update(7, "pipelit.test", "_acme-challenge.pipelit.test", "tok", delete=True)
    signed, _ = pf.tsig_sign(message, KEY, "hmac-sha256", base64.b64decode(SECRET), int(time.time()))
    parsed = dns.message.from_wire(signed, keyring=keyring())
    (update,) = parsed.update
    assert update.deleting == dns.rdataclass.NONE and update.ttl == 0


def test_another_secret_fails_dnspythons_check():
    message = pf.build_update(7, "pipelit.test", "_acme-challenge.pipelit.test", "tok")
    signed, _ = pf.tsig_sign(message, KEY, "hmac-sha256", b"another secret", int(time.time()))
    with pytest.raises(dns.tsig.BadSignature):
        dns.message.from_wire(signed, keyring=keyring())


def test_the_mac_is_dnspythons_for_the_same_key_time_and_id(monkeypatch):
    # dnspython signs its own rendering of the message; signing exactly
    # those bytes (without its TSIG) gives the same MAC.
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000)
    update = dns.update.UpdateMessage("pipelit.test", id=99, keyring=keyring(), keyname=KEY, keyalgorithm="hmac-sha256")
    update.add("_acme-challenge", 60, "TXT", "tok")
    theirs = update.to_wire()
    parsed = pf.parse_message(theirs)
    unsigned = theirs[: parsed["tsig_offset"]]
    unsigned = unsigned[:10] + struct.pack("!H", struct.unpack("!H", unsigned[10:12])[0] - 1) + unsigned[12:]
    ours, mac = pf.tsig_sign(unsigned, KEY, "hmac-sha256", base64.b64decode(SECRET), 1_800_000_000)
    assert mac == parsed["tsig"]["mac"]
    assert ours == theirs


def test_an_answer_signed_by_dnspython_verifies_and_a_tampered_one_does_not():
    message = pf.build_update(11, "pipelit.test", "_acme-challenge.pipelit.test", "tok")
    signed, mac = pf.tsig_sign(message, KEY, "hmac-sha256", base64.b64decode(SECRET), int(time.time()))
    request = dns.message.from_wire(signed, keyring=keyring())
    answer = dns.message.make_response(request).to_wire()
    parsed = pf.parse_message(answer)
    assert parsed["rcode"] == 0 and parsed["tsig"]["error"] == 0
    assert pf.tsig_verify(answer, parsed, KEY, "hmac-sha256", base64.b64decode(SECRET), mac)
    assert not pf.tsig_verify(answer, parsed, KEY, "hmac-sha256", b"other", mac)
    assert not pf.tsig_verify(answer, parsed, KEY, "hmac-sha256", base64.b64decode(SECRET), b"\x00" * 32)


def test_names_are_read_through_compression_pointers():
    query = dns.message.make_query("_acme-challenge.pipelit.test", "SOA")
    answer = dns.message.make_response(query)
    answer.set_rcode(dns.rcode.NXDOMAIN)
    answer.flags |= dns.flags.AA
    answer.authority.append(
        dns.rrset.from_text("pipelit.test.", 300, "IN", "SOA", "ns.pipelit.test. admin.pipelit.test. 1 2 3 4 5"),
    )
    parsed = pf.parse_message(answer.to_wire())
    assert parsed["questions"] == [("_acme-challenge.pipelit.test", 6, 1)]
    assert pf.soa_owner(parsed["authority"]) == "pipelit.test" and parsed["aa"] and parsed["rcode"] == 3


def test_the_answer_in_the_servers_words():
    assert pf.answer_words({"rcode": 9, "tsig": {"error": 16}}) == "NOTAUTH (TSIG BADSIG)"
    assert pf.answer_words({"rcode": 9, "tsig": {"error": 17}}) == "NOTAUTH (TSIG BADKEY)"
    assert pf.answer_words({"rcode": 5, "tsig": None}) == "REFUSED"
    assert pf.answer_words({"rcode": 15, "tsig": None}) == "RCODE 15"


def test_a_wildcard_and_its_base_share_one_check_and_each_domain_is_named():
    calls = []

    def one(check, secret, timeout, check_mode):
        calls.append(check["name"])
        return "192.0.2.53:53: SOA query for _acme-challenge.pipelit.test answered REFUSED", None

    base = {"site": "wild", "name": "_acme-challenge.pipelit.test", "server": "192.0.2.53", "port": 53, "key_name": KEY}
    failures, results = pf.run_checks(
        [{**base, "domain": "*.pipelit.test"}, {**base, "domain": "pipelit.test"}], {"wild": SECRET}, 1, False, one=one
    )
    assert calls == ["_acme-challenge.pipelit.test"]
    assert failures == [
        "site 'wild': *.pipelit.test (_acme-challenge.pipelit.test): 192.0.2.53:53: SOA query for _acme-challenge.pipelit.test answered REFUSED",
        "site 'wild': pipelit.test (_acme-challenge.pipelit.test): 192.0.2.53:53: SOA query for _acme-challenge.pipelit.test answered REFUSED",
    ]
    assert [r["domain"] for r in results] == ["*.pipelit.test", "pipelit.test"]
    # No secret for the site: said so, and the secret is never in a message.
    failures, _ = pf.run_checks([{**base, "domain": "pipelit.test"}], {}, 1, False, one=one)
    assert failures == ["site 'wild': pipelit.test (_acme-challenge.pipelit.test): no TSIG secret for this site (proxy_sites_dns_secrets)"]


# --- against a server -----------------------------------------------------------------


class Server:
    """Authoritative for pipelit.test (REFUSED for anything else), taking
    updates of it signed with KEY; the TXT records it holds."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        # Updates come over TCP (as certbot sends them), on the same port.
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen(4)
        self.records = set()
        self.updates = []
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()
        self.tcp_thread = threading.Thread(target=self.serve_tcp, daemon=True)
        self.tcp_thread.start()

    def serve_tcp(self):
        self.tcp.settimeout(0.1)
        while not self.stop:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                length = struct.unpack("!H", pf.receive(conn, 2))[0]
                answer = self.answer(pf.receive(conn, length))
                conn.sendall(struct.pack("!H", len(answer)) + answer)

    def serve(self):
        self.sock.settimeout(0.1)
        while not self.stop:
            try:
                data, peer = self.sock.recvfrom(65535)
            except OSError:
                continue
            self.sock.sendto(self.answer(data), peer)

    def answer(self, data):
        try:
            request = dns.message.from_wire(data, keyring=keyring())
        except (dns.tsig.BadSignature, dns.message.UnknownTSIGKey) as error:
            # NOTAUTH, with the TSIG error and no MAC, as BIND answers.
            code = 16 if isinstance(error, dns.tsig.BadSignature) else 17
            parsed = pf.parse_message(data)
            tsig = parsed["tsig"]
            rdata = (
                pf.encode_name(tsig["algorithm"])
                + struct.pack("!HIH", tsig["time_signed"] >> 32, tsig["time_signed"] & 0xFFFFFFFF, tsig["fudge"])
                + struct.pack("!HHHH", 0, parsed["id"], code, 0)
            )
            zone = pf.encode_name(parsed["questions"][0][0]) + struct.pack("!HH", pf.TYPE_SOA, pf.CLASS_IN)
            return (
                pf.header(parsed["id"], 0x8000 | (pf.OPCODE_UPDATE << 11) | 9, qd=1, ar=1)
                + zone
                + pf.rr(tsig["key_name"], pf.TYPE_TSIG, pf.CLASS_ANY, 0, rdata)
            )
        response = dns.message.make_response(request)
        zone = dns.name.from_text("pipelit.test")
        if request.opcode() == dns.opcode.UPDATE:
            if request.zone[0].name != zone:
                response.set_rcode(dns.rcode.NOTAUTH)
                return response.to_wire()
            self.updates.append(request)
            for rrset in request.update:
                for rd in rrset:
                    entry = (rrset.name.to_text(), rd.strings)
                    if rrset.deleting == dns.rdataclass.NONE:
                        self.records.discard(entry)
                    else:
                        self.records.add(entry)
            return response.to_wire()
        qname = request.question[0].name
        if not qname.is_subdomain(zone):
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire()
        soa = dns.rrset.from_text("pipelit.test.", 300, "IN", "SOA", "ns.pipelit.test. admin.pipelit.test. 1 2 3 4 5")
        response.flags |= dns.flags.AA
        if qname == zone:
            response.answer.append(soa)
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(soa)
        return response.to_wire()


@pytest.fixture
def server():
    running = Server()
    yield running
    running.stop = True
    running.thread.join()
    running.tcp_thread.join()
    running.sock.close()
    running.tcp.close()


def check(server, name="_acme-challenge.pipelit.test", **fields):
    return {
        "site": "wild",
        "domain": "*.pipelit.test",
        "name": name,
        "server": "127.0.0.1",
        "port": server.port,
        "key_name": KEY,
        "key_algorithm": "hmac-sha256",
        **fields,
    }


def test_the_key_adds_and_deletes_a_txt_record(server):
    problem, zone = pf.check_one(check(server), SECRET, 2, False)
    assert (problem, zone) == (None, "pipelit.test")
    assert len(server.updates) == 2 and server.records == set()


def test_check_mode_only_finds_the_zone(server):
    assert pf.check_one(check(server), SECRET, 2, True) == (None, "pipelit.test")
    assert server.updates == []


def test_a_wrong_secret_is_badsig(server):
    wrong = base64.b64encode(b"not the key").decode()
    problem, zone = pf.check_one(check(server), wrong, 2, False)
    assert zone == "pipelit.test"
    assert problem == (
        f"127.0.0.1:{server.port}: the update adding a TXT record at _acme-challenge.pipelit.test in zone pipelit.test "
        f"with key {KEY} answered NOTAUTH (TSIG BADSIG)"
    )
    assert wrong not in problem


def test_an_unknown_key_is_badkey(server):
    problem, _ = pf.check_one(check(server, key_name="other-key"), SECRET, 2, False)
    assert problem.endswith("answered NOTAUTH (TSIG BADKEY)")


def test_a_zone_the_server_does_not_serve(server):
    problem, zone = pf.check_one(check(server, name="_acme-challenge.other.test"), SECRET, 2, False)
    assert zone is None
    assert problem == (
        f"127.0.0.1:{server.port}: SOA query for _acme-challenge.other.test answered REFUSED, not authoritative; "
        "the update adding a TXT record at _acme-challenge.other.test in zone other.test "
        f"with key {KEY} answered NOTAUTH"
    )
    problem, _ = pf.check_one(check(server, name="_acme-challenge.other.test"), SECRET, 2, True)
    assert problem == f"127.0.0.1:{server.port}: SOA query for _acme-challenge.other.test answered REFUSED, not authoritative"


def test_a_server_that_does_not_answer():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        problem, zone = pf.check_one(
            {"name": "_acme-challenge.pipelit.test", "server": "127.0.0.1", "port": port, "key_name": KEY, "key_algorithm": "hmac-sha256"},
            SECRET,
            0.3,
            False,
        )
    assert (problem, zone) == (f"no answer from 127.0.0.1:{port} within 0.3 s", None)


def test_a_server_that_is_down_is_refused_at_once():
    # Nothing listens on the port: the ICMP port unreachable ends the wait.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gone:
        gone.bind(("127.0.0.1", 0))
        port = gone.getsockname()[1]
    started = time.monotonic()
    problem, zone = pf.check_one(
        {"name": "_acme-challenge.pipelit.test", "server": "127.0.0.1", "port": port, "key_name": KEY, "key_algorithm": "hmac-sha256"},
        SECRET,
        5,
        False,
    )
    assert time.monotonic() - started < 2
    assert zone is None and problem.startswith(f"no answer from 127.0.0.1:{port} (") and "refused" in problem.lower(), problem


def test_updates_go_over_tcp_as_certbot_sends_them(server):
    server.stop = True
    server.tcp_thread.join()
    server.tcp.close()
    server.stop = False
    server.thread = threading.Thread(target=server.serve, daemon=True)
    server.thread.start()
    problem, zone = pf.check_one(check(server), SECRET, 1, False)
    assert zone == "pipelit.test"
    assert problem.startswith(
        f"127.0.0.1:{server.port}: no answer over TCP to the update adding a TXT record at _acme-challenge.pipelit.test ("
    )
    assert "refused" in problem.lower()
