#!/usr/bin/python
"""The DNS-01 pre-flight, on the edge host: the zone's server answers, and the
site's TSIG key may add and delete a TXT record where the CA will look."""

from __future__ import annotations

DOCUMENTATION = r"""
module: acme_preflight_dns
short_description: Check that each pending dns-01 domain's zone server answers and takes the site's TSIG-signed update.
description:
  - Runs on the edge host, where certbot's dns-rfc2136 plugin speaks to the DNS server from.
  - For each check (a pending dns-01 domain, from C(acme_preflight_state)'s C(pending_dns)), finds the zone of its
    challenge name (C(_acme-challenge.) and the domain, a wildcard's base name) by SOA queries to the site's server,
    walking up the labels; the zone's SOA must come with an authoritative answer, as certbot's plugin requires.
  - Then sends an RFC 2136 UPDATE signed with the site's TSIG key (RFC 8945) that adds a TXT record with a random
    token under the challenge name, and one that deletes it, and verifies the TSIG of each answer. The updates go
    over TCP, as certbot's plugin sends them; the SOA queries over UDP (TCP when truncated).
  - A failure names the site, the domain, the server and its answer (the RCODE, such as REFUSED or NOTAUTH, with
    the TSIG error, such as BADKEY or BADSIG), or that nothing answered in time.
  - In check mode only the SOA queries are sent (nothing is added to the zone).
  - Standard library only.
options:
  checks:
    description: The pending dns-01 domains, each with C(site), C(domain), C(name) (the challenge name), C(server),
      C(port), C(key_name) and C(key_algorithm).
    type: list
    elements: dict
    required: true
  secrets:
    description: Site name to its TSIG secret (base64).
    type: dict
    required: true
  timeout:
    description: Seconds to wait for each answer.
    type: float
    default: 10
"""

RETURN = r"""
failures:
  description: One message per domain that failed, naming the site, the domain, the server and its answer.
  type: list
  elements: str
  returned: always
results:
  description: Per check, the zone found (or null) and what the server answered.
  type: list
  elements: dict
  returned: always
"""

import base64
import hashlib
import hmac
import ipaddress
import os
import secrets as random_tokens
import socket
import struct
import time

from ansible.module_utils.basic import AnsibleModule

# DNS constants (RFC 1035, 2136, 8945).
TYPE_SOA, TYPE_TXT, TYPE_TSIG = 6, 16, 250
CLASS_IN, CLASS_NONE, CLASS_ANY = 1, 254, 255
OPCODE_QUERY, OPCODE_UPDATE = 0, 5
FLAG_QR, FLAG_AA, FLAG_TC, FLAG_RD = 0x8000, 0x0400, 0x0200, 0x0100
RCODES = {
    0: "NOERROR",
    1: "FORMERR",
    2: "SERVFAIL",
    3: "NXDOMAIN",
    4: "NOTIMP",
    5: "REFUSED",
    6: "YXDOMAIN",
    7: "YXRRSET",
    8: "NXRRSET",
    9: "NOTAUTH",
    10: "NOTZONE",
}
TSIG_ERRORS = {0: "NOERROR", 16: "BADSIG", 17: "BADKEY", 18: "BADTIME", 22: "BADTRUNC"}
# The algorithm names of RFC 8945 (hmac-md5's is the old one), and their hashes.
TSIG_ALGORITHMS = {
    "hmac-md5": ("hmac-md5.sig-alg.reg.int", hashlib.md5),
    "hmac-sha1": ("hmac-sha1", hashlib.sha1),
    "hmac-sha224": ("hmac-sha224", hashlib.sha224),
    "hmac-sha256": ("hmac-sha256", hashlib.sha256),
    "hmac-sha384": ("hmac-sha384", hashlib.sha384),
    "hmac-sha512": ("hmac-sha512", hashlib.sha512),
}
FUDGE = 300
TXT_TTL = 60


class DNSError(Exception):
    """A message that cannot be parsed, or an answer that does not belong to the question."""


# --- wire format ----------------------------------------------------------------


def encode_name(name, canonical=False):
    """'example.com' or 'example.com.' -> its wire form, uncompressed;
    canonical: in lower case (TSIG's key and algorithm names)."""
    name = name.rstrip(".")
    if canonical:
        name = name.lower()
    wire = b""
    for label in name.split(".") if name else []:
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise DNSError(f"bad label in {name!r}")
        wire += bytes([len(raw)]) + raw
    return wire + b"\x00"


def header(qid, flags, qd=0, an=0, ns=0, ar=0):
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def txt_rdata(text):
    raw = text.encode("ascii")
    return bytes([len(raw)]) + raw


def rr(name, rtype, rclass, ttl, rdata):
    return encode_name(name) + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def build_query(qid, qname, qtype=TYPE_SOA):
    """A query (no recursion asked: the server must answer from its own zones)."""
    return header(qid, OPCODE_QUERY << 11, qd=1) + encode_name(qname) + struct.pack("!HH", qtype, CLASS_IN)


def build_update(qid, zone, name, token, delete=False):
    """An RFC 2136 UPDATE of `zone`: add the TXT record `token` at `name`
    (TTL 60), or delete exactly that record (class NONE, RFC 2136 2.5.4)."""
    zone_section = encode_name(zone) + struct.pack("!HH", TYPE_SOA, CLASS_IN)
    record = rr(name, TYPE_TXT, CLASS_NONE, 0, txt_rdata(token)) if delete else rr(name, TYPE_TXT, CLASS_IN, TXT_TTL, txt_rdata(token))
    return header(qid, OPCODE_UPDATE << 11, qd=1, ns=1) + zone_section + record


def tsig_variables(key_name, algorithm, time_signed, fudge, error=0, other=b""):
    """RFC 8945 4.3.3: the TSIG variables the MAC covers."""
    return (
        encode_name(key_name, canonical=True)
        + struct.pack("!HI", CLASS_ANY, 0)
        + encode_name(TSIG_ALGORITHMS[algorithm][0], canonical=True)
        + struct.pack("!HIH", time_signed >> 32, time_signed & 0xFFFFFFFF, fudge)
        + struct.pack("!HH", error, len(other))
        + other
    )


def tsig_mac(secret, algorithm, data):
    return hmac.new(secret, data, TSIG_ALGORITHMS[algorithm][1]).digest()


def tsig_sign(message, key_name, algorithm, secret, time_signed, fudge=FUDGE):
    """The message with its TSIG record appended (ARCOUNT + 1), and the MAC
    (which the answer's MAC covers in turn)."""
    qid = struct.unpack("!H", message[:2])[0]
    mac = tsig_mac(secret, algorithm, message + tsig_variables(key_name, algorithm, time_signed, fudge))
    rdata = (
        encode_name(TSIG_ALGORITHMS[algorithm][0], canonical=True)
        + struct.pack("!HIH", time_signed >> 32, time_signed & 0xFFFFFFFF, fudge)
        + struct.pack("!H", len(mac))
        + mac
        + struct.pack("!HHH", qid, 0, 0)
    )
    arcount = struct.unpack("!H", message[10:12])[0]
    signed = message[:10] + struct.pack("!H", arcount + 1) + message[12:] + rr(key_name, TYPE_TSIG, CLASS_ANY, 0, rdata)
    return signed, mac


def read_name(data, offset):
    """(name, offset after it), following compression pointers."""
    labels, jumps, end = [], 0, None
    while True:
        if offset >= len(data):
            raise DNSError("name runs past the message")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise DNSError("truncated pointer")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            jumps += 1
            if jumps > 64:
                raise DNSError("compression loop")
            continue
        if length & 0xC0:
            raise DNSError("bad label type")
        offset += 1
        if length == 0:
            break
        labels.append(data[offset : offset + length].decode("ascii", "replace"))
        offset += length
    return ".".join(labels), end if end is not None else offset


def parse_message(data):
    """A message's header fields and its records (name, type, class, ttl,
    rdata offset and bytes); the TSIG record (the last additional one)
    parsed, with `tsig_offset` where it starts."""
    if len(data) < 12:
        raise DNSError("message shorter than a header")
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", data[:12])
    offset = 12
    questions = []
    for _ in range(qd):
        name, offset = read_name(data, offset)
        qtype, qclass = struct.unpack("!HH", data[offset : offset + 4])
        offset += 4
        questions.append((name, qtype, qclass))
    sections = {"answer": [], "authority": [], "additional": []}
    tsig, tsig_offset = None, None
    for section, count in (("answer", an), ("authority", ns), ("additional", ar)):
        for _ in range(count):
            start = offset
            name, offset = read_name(data, offset)
            if offset + 10 > len(data):
                raise DNSError("record runs past the message")
            rtype, rclass, ttl, length = struct.unpack("!HHIH", data[offset : offset + 10])
            offset += 10
            rdata = data[offset : offset + length]
            if len(rdata) != length:
                raise DNSError("record data runs past the message")
            record = {"name": name, "type": rtype, "class": rclass, "ttl": ttl, "rdata": rdata, "rdata_offset": offset}
            offset += length
            if rtype == TYPE_TSIG and section == "additional":
                tsig, tsig_offset = parse_tsig(data, record), start
            else:
                sections[section].append(record)
    return {
        "id": qid,
        "flags": flags,
        "opcode": (flags >> 11) & 0xF,
        "rcode": flags & 0xF,
        "aa": bool(flags & FLAG_AA),
        "tc": bool(flags & FLAG_TC),
        "questions": questions,
        **sections,
        "tsig": tsig,
        "tsig_offset": tsig_offset,
    }


def parse_tsig(data, record):
    algorithm, offset = read_name(data, record["rdata_offset"])
    high, low, fudge, mac_size = struct.unpack("!HIHH", data[offset : offset + 10])
    offset += 10
    mac = data[offset : offset + mac_size]
    offset += mac_size
    original_id, error, other_len = struct.unpack("!HHH", data[offset : offset + 6])
    other = data[offset + 6 : offset + 6 + other_len]
    return {
        "key_name": record["name"],
        "algorithm": algorithm.lower(),
        "time_signed": (high << 32) | low,
        "fudge": fudge,
        "mac": mac,
        "original_id": original_id,
        "error": error,
        "other": other,
    }


def tsig_verify(data, parsed, key_name, algorithm, secret, request_mac):
    """Whether an answer's TSIG is the key's over this answer to the request
    whose MAC was `request_mac` (RFC 8945 5.3)."""
    tsig = parsed["tsig"]
    if tsig is None or not tsig["mac"]:
        return False
    if (
        tsig["key_name"].lower().rstrip(".") != key_name.lower().rstrip(".")
        or tsig["algorithm"].rstrip(".") != TSIG_ALGORITHMS[algorithm][0]
    ):
        return False
    body = data[: parsed["tsig_offset"]]
    arcount = struct.unpack("!H", body[10:12])[0] - 1
    body = struct.pack("!H", tsig["original_id"]) + body[2:10] + struct.pack("!H", arcount) + body[12:]
    covered = (
        struct.pack("!H", len(request_mac))
        + request_mac
        + body
        + tsig_variables(key_name, algorithm, tsig["time_signed"], tsig["fudge"], tsig["error"], tsig["other"])
    )
    return hmac.compare_digest(tsig_mac(secret, algorithm, covered), tsig["mac"])


def answer_words(parsed):
    """The server's answer in its own words: 'NOTAUTH (TSIG BADSIG)'."""
    words = RCODES.get(parsed["rcode"], "RCODE %d" % parsed["rcode"])
    tsig = parsed.get("tsig")
    if tsig and tsig["error"]:
        words += " (TSIG %s)" % TSIG_ERRORS.get(tsig["error"], "error %d" % tsig["error"])
    return words


def soa_owner(records, name=None):
    for record in records:
        if record["type"] == TYPE_SOA and (name is None or record["name"].lower().rstrip(".") == name.lower().rstrip(".")):
            return record["name"].rstrip(".")
    return None


def parent_names(name):
    """'_acme-challenge.a.example.com' -> it, 'a.example.com', 'example.com', 'com'."""
    labels = name.rstrip(".").split(".")
    return [".".join(labels[index:]) for index in range(len(labels))]


# --- transport --------------------------------------------------------------------


class NoAnswer(Exception):
    pass


def exchange(server, port, message, timeout):
    """Send over UDP, and again over TCP when the answer is truncated; the
    answer's bytes. NoAnswer when nothing (or nothing of this id) came."""
    family = socket.AF_INET6 if ipaddress.ip_address(server).version == 6 else socket.AF_INET
    qid = message[:2]
    deadline = time.monotonic() + timeout
    with socket.socket(family, socket.SOCK_DGRAM) as udp:
        udp.settimeout(timeout)
        try:
            # Connected: only the server's datagrams come in, and a server
            # that is down (port unreachable) is "connection refused" at once
            # instead of a silence as long as the timeout.
            udp.connect((server, port))
            udp.send(message)
            while True:
                udp.settimeout(max(0.01, deadline - time.monotonic()))
                data = udp.recv(65535)
                if data[:2] == qid:
                    break
        except OSError as error:
            raise NoAnswer(str(error) or "timed out") from error
    if len(data) >= 4 and data[2] & (FLAG_TC >> 8):
        return exchange_tcp(server, port, message, family, timeout)
    return data


def exchange_tcp(server, port, message, family, timeout):
    try:
        with socket.socket(family, socket.SOCK_STREAM) as tcp:
            tcp.settimeout(timeout)
            tcp.connect((server, port))
            tcp.sendall(struct.pack("!H", len(message)) + message)
            length = struct.unpack("!H", receive(tcp, 2))[0]
            return receive(tcp, length)
    except OSError as error:
        raise NoAnswer(str(error) or "timed out") from error


def receive(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data


# --- the check ----------------------------------------------------------------------


def new_id():
    return struct.unpack("!H", os.urandom(2))[0]


def find_zone(ask, name):
    """The zone holding `name` on the server, as certbot's plugin would find
    it: (zone, None), or (None, what the server answered). `ask(message)`
    sends a message and returns the parsed answer (NoAnswer propagates)."""
    last = None
    for candidate in parent_names(name):
        answer = ask(build_query(new_id(), candidate))
        if answer["rcode"] == 0 and answer["aa"] and soa_owner(answer["answer"], candidate):
            return candidate, None
        owner = soa_owner(answer["authority"]) if answer["aa"] and answer["rcode"] in (0, 3) else None
        if owner:
            # NXDOMAIN or no SOA at the name: the authority section names the
            # zone. certbot's plugin wants the zone's SOA as an authoritative
            # answer, so ask for it.
            confirm = ask(build_query(new_id(), owner))
            if confirm["rcode"] == 0 and confirm["aa"] and soa_owner(confirm["answer"], owner):
                return owner, None
            return None, "SOA query for %s answered %s%s" % (owner, answer_words(confirm), "" if confirm["aa"] else ", not authoritative")
        if last is None:  # the name's own answer says most
            last = "SOA query for %s answered %s%s" % (candidate, answer_words(answer), "" if answer["aa"] else ", not authoritative")
    return None, last or "no SOA found for %s" % name


def check_one(check, secret, timeout, check_mode, clock=time.time):
    """One challenge name on one server: None when the zone is found and
    (outside check mode) the key can add and delete a TXT record there,
    else what failed, in the server's words."""
    server, port = check["server"], int(check["port"])
    where = "%s:%d" % (server if ":" not in server else "[%s]" % server, port)

    def ask(message, tcp=False):
        if tcp:
            family = socket.AF_INET6 if ipaddress.ip_address(server).version == 6 else socket.AF_INET
            data = exchange_tcp(server, port, message, family, timeout)
        else:
            data = exchange(server, port, message, timeout)
        parsed = parse_message(data)
        if parsed["id"] != struct.unpack("!H", message[:2])[0]:
            raise DNSError("an answer to another message")
        return parsed, data

    def ask_parsed(message):
        return ask(message)[0]

    def silence(error):
        """'within 10 s' for a timeout, else what the system said (connection refused...)."""
        text = str(error)
        return "within %g s" % timeout if "timed out" in text else "(%s)" % text

    try:
        zone, problem = find_zone(ask_parsed, check["name"])
    except NoAnswer as error:
        return "no answer from %s %s" % (where, silence(error)), None
    except DNSError as error:
        return "the answer from %s cannot be read (%s)" % (where, error), None
    if check_mode:
        return (None if zone else "%s: %s" % (where, problem)), zone
    key = base64.b64decode(secret)
    token = random_tokens.token_urlsafe(24)
    # No zone found: still ask for an update of the domain's own zone, so
    # that the message says what the server answers to it (NOTAUTH...).
    update_zone = zone or check["name"].split(".", 1)[1]
    for delete in (False, True):
        message, mac = tsig_sign(
            build_update(new_id(), update_zone, check["name"], token, delete),
            check["key_name"],
            check["key_algorithm"],
            key,
            int(clock()),
        )
        action = "deleting" if delete else "adding"
        try:
            # Over TCP, as certbot's plugin sends its updates.
            parsed, data = ask(message, tcp=True)
        except NoAnswer as error:
            return "%s: no answer over TCP to the update %s a TXT record at %s %s" % (where, action, check["name"], silence(error)), zone
        except DNSError as error:
            return "%s: the answer to the update cannot be read (%s)" % (where, error), zone
        prefix = "" if zone else "%s; " % problem
        if parsed["rcode"] != 0 or (parsed["tsig"] and parsed["tsig"]["error"]):
            return (
                "%s: %sthe update %s a TXT record at %s in zone %s with key %s answered %s"
                % (where, prefix, action, check["name"], update_zone, check["key_name"], answer_words(parsed)),
                zone,
            )
        if not tsig_verify(data, parsed, check["key_name"], check["key_algorithm"], key, mac):
            return "%s: the answer to the update %s a TXT record is not signed with key %s" % (where, action, check["key_name"]), zone
        if not zone:
            return "%s: %s" % (where, problem), zone
    return None, zone


def failure_message(check, problem):
    """One line of the play's failure: the site, the domain, the server's answer."""
    return "site '%s': %s (%s): %s" % (check["site"], check["domain"], check["name"], problem)


def run_checks(checks, secrets, timeout, check_mode, one=check_one):
    """Every check, each challenge name of a server and key once (a wildcard
    and its base name share one); (failures, results)."""
    done, failures, results = {}, [], []
    for check in checks:
        key = (check["site"], check["name"], check["server"], int(check["port"]), check["key_name"])
        if key not in done:
            secret = secrets.get(check["site"])
            done[key] = (
                ("no TSIG secret for this site (proxy_sites_dns_secrets)", None) if not secret else one(check, secret, timeout, check_mode)
            )
        problem, zone = done[key]
        results.append({"site": check["site"], "domain": check["domain"], "name": check["name"], "zone": zone, "problem": problem})
        if problem:
            failures.append(failure_message(check, problem))
    return failures, results


def main():
    module = AnsibleModule(
        argument_spec=dict(
            checks=dict(type="list", elements="dict", required=True),
            secrets=dict(type="dict", required=True, no_log=True),
            timeout=dict(type="float", default=10),
        ),
        supports_check_mode=True,
    )
    failures, results = run_checks(module.params["checks"], module.params["secrets"], module.params["timeout"], module.check_mode)
    module.exit_json(changed=False, failures=failures, results=results)


if __name__ == "__main__":
    main()
