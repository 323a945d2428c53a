"""The pre-flight's reading of the host (roles/acme_preflight/library/
acme_preflight_state.py): which sites certbot (by the certificate-coverage
rule, tested in test_certbot_coverage.py) or Caddy is about to ask the CA
for, on certificates made here with openssl and a fixture tree, and the parsing of /proc and `ip -j address`. Which process
holds a socket (/proc/PID/fd) is left to the Molecule scenarios."""

from __future__ import annotations

import json

import acme_preflight_state as state
import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible_module import FakeModule, run_module
from certificates import DIRECTORY, SITE, make_letsencrypt, needs_openssl, openssl

pytestmark = needs_openssl


@pytest.fixture
def letsencrypt(tmp_path):
    return make_letsencrypt(tmp_path / "letsencrypt")


def params(letsencrypt, **more):
    p = {
        "certbot_cert_name_prefix": "pipelit-edge-",
        "certbot_config_dir": str(letsencrypt),
        "key_type": "ecdsa",
        "directory_url": DIRECTORY,
    }
    p.update(more)
    return p


# The rule itself is tested once, in test_certbot_coverage.py: here, that the
# pre-flight applies it with its own parameters.
def test_certbot_is_about_to_ask_for_every_domain_of_a_site_the_rule_does_not_cover(letsencrypt):
    assert state.certbot_pending(FakeModule(params(letsencrypt), openssl), SITE) == ([], "covered")
    assert state.certbot_pending(FakeModule(params(letsencrypt, key_type="rsa"), openssl), SITE) == (
        SITE["domains"],
        "its certificate has another key type",
    )
    other_prefix = params(letsencrypt, certbot_cert_name_prefix="other-")
    assert state.certbot_pending(FakeModule(other_prefix, openssl), SITE) == (SITE["domains"], "no certificate yet")


def test_caddy_asks_for_each_domain_without_a_certificate_under_any_issuer(tmp_path):
    storage = tmp_path / "caddy"
    cert = storage / "certificates" / "acme.example-directory" / "pipelit.test" / "pipelit.test.crt"
    cert.parent.mkdir(parents=True)
    cert.write_text("x")
    module = FakeModule({"caddy_storage_dir": str(storage)})
    assert state.caddy_pending(module, SITE) == (["www.pipelit.test"], "no certificate in Caddy's storage")
    # Glob characters in a name are taken literally.
    assert state.caddy_pending(module, {"domains": ["*.test"]})[0] == ["*.test"]


IP_JSON = json.dumps(
    [
        {"ifname": "lo", "addr_info": [{"local": "127.0.0.1"}, {"local": "::1"}]},
        {"ifname": "eth0", "addr_info": [{"local": "192.0.2.10"}, {"local": "fe80::1"}, {"local": "2001:db8::10"}, {"local": "bogus"}]},
        {"ifname": "dummy0"},
    ]
)


def test_host_addresses_are_the_global_ones():
    module = FakeModule({}, lambda argv: (0, IP_JSON, "") if argv[:2] == ["ip", "-j"] else (1, "", ""))
    assert state.host_addresses(module) == ["192.0.2.10", "2001:db8::10"]
    assert state.host_addresses(FakeModule({}, lambda argv: (1, "", "no ip"))) == []


PROC_TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F40 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 1002 1 0000000000000000 20 4 30 10 -1
"""
PROC_TCP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   998        0 2001 1 0000000000000000 100 0 0 10 0
"""


def fake_proc(monkeypatch, tmp_path, files):
    """open() of the module reads these texts in place of /proc paths."""
    real_open = open

    def fake_open(path, *args, **kwargs):
        if path in files:
            if files[path] is None:
                raise FileNotFoundError(path)
            fixture = tmp_path / path.strip("/").replace("/", "_")
            fixture.write_text(files[path])
            return real_open(fixture, *args, **kwargs)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(state, "open", fake_open, raising=False)


def test_listening_ports_from_proc(monkeypatch, tmp_path):
    fake_proc(monkeypatch, tmp_path, {"/proc/net/tcp": PROC_TCP, "/proc/net/tcp6": PROC_TCP6})
    assert state.listening_ports() == {80: {("1001", 0)}, 443: {("2001", 998)}}
    fake_proc(monkeypatch, tmp_path, {"/proc/net/tcp": PROC_TCP, "/proc/net/tcp6": None})
    assert state.listening_ports() == {80: {("1001", 0)}}


def test_ipv6_enabled(monkeypatch, tmp_path):
    path = "/proc/sys/net/ipv6/conf/all/disable_ipv6"
    fake_proc(monkeypatch, tmp_path, {path: "0\n"})
    assert state.ipv6_enabled() is True
    fake_proc(monkeypatch, tmp_path, {path: "1\n"})
    assert state.ipv6_enabled() is False
    fake_proc(monkeypatch, tmp_path, {path: None})
    assert state.ipv6_enabled() is False


def test_the_proxy_holds_a_socket_by_its_name_or_else_by_its_user(monkeypatch):
    monkeypatch.setattr(state, "socket_programs", lambda sockets: {"caddy"})
    assert state.proxy_holds("caddy", {("1", 998)}) is True
    monkeypatch.setattr(state, "socket_programs", lambda sockets: {"caddy", "apache2"})
    assert state.proxy_holds("caddy", {("1", 998)}) is False
    # No holder can be named (a container without CAP_SYS_PTRACE): the owner decides.
    monkeypatch.setattr(state, "socket_programs", lambda sockets: set())
    assert state.proxy_holds("root", {("1", 0), ("2", 0)}) is True
    assert state.proxy_holds("root", {("1", 0), ("2", 1000)}) is False
    assert state.proxy_holds("no-such-user-pipelit-edge", {("1", 0)}) is False


def test_the_module_reports_pending_domains_and_an_older_proxy(monkeypatch, tmp_path, capsys, letsencrypt):
    conf = tmp_path / "nginx.conf"
    conf.write_text("server { }\n")
    monkeypatch.setattr(state, "listening_ports", lambda: {80: {("1001", 0)}, 22: {("5", 0)}})
    monkeypatch.setattr(state, "proxy_holds", lambda proxy, sockets: proxy == "nginx")
    monkeypatch.setattr(state, "ipv6_enabled", lambda: True)
    warned = []
    # Recorded here: where Ansible counts the process as the controller (any
    # controller plugin imported), AnsibleModule.warn prints instead of returning.
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, message: warned.append(message))
    monkeypatch.setattr(AnsibleModule, "run_command", lambda self, argv, **kw: openssl(argv) if argv[0] == "openssl" else (0, IP_JSON, ""))
    new_site = {"name": "new", "domains": ["new.test"], "http_port": 80}
    rc, result = run_module(
        state.main,
        capsys,
        sites=[SITE, new_site],
        proxy="nginx",
        directory_url=DIRECTORY,
        certbot_config_dir=str(letsencrypt),
        proxy_config=str(conf),
        marker="/.well-known/pipelit-edge-preflight/",
    )
    assert rc == 0 and result["changed"] is False
    assert result["pending"] == [{"site": "new", "domain": "new.test", "port": 80, "reason": "no certificate yet"}]
    assert result["held_ports"] == [80] and result["older_proxy_ports"] == [80]
    assert result["proxy_serves_preflight"] is False and result["ipv6"] is True
    assert result["addresses"] == ["192.0.2.10", "2001:db8::10"]
    assert len(result["token"]) == 32
    (warning,) = warned
    assert "nginx on port 80 does not serve /.well-known/pipelit-edge-preflight/ yet" in warning and "for new.test only DNS" in warning
    # Once the live configuration serves the path, the port is not an older proxy's.
    conf.write_text("location /.well-known/pipelit-edge-preflight/ { }\n")
    rc, result = run_module(
        state.main,
        capsys,
        sites=[new_site],
        proxy="caddy",
        directory_url=DIRECTORY,
        caddy_storage_dir=str(tmp_path / "caddy"),
        proxy_config=str(conf),
        marker="/.well-known/pipelit-edge-preflight/",
    )
    assert result["proxy_serves_preflight"] is True and result["older_proxy_ports"] == [] and len(warned) == 1
    assert result["pending"][0]["reason"] == "no certificate in Caddy's storage"


def test_dns01_domains_are_pending_apart_without_an_http_check(monkeypatch, tmp_path, capsys, letsencrypt):
    conf = tmp_path / "nginx.conf"
    conf.write_text("server { }\n")
    monkeypatch.setattr(state, "listening_ports", lambda: {})
    monkeypatch.setattr(state, "ipv6_enabled", lambda: False)
    monkeypatch.setattr(AnsibleModule, "run_command", lambda self, argv, **kw: openssl(argv) if argv[0] == "openssl" else (0, "[]", ""))
    dns = {"server": "192.0.2.53", "port": 5353, "key_name": "k", "key_algorithm": "hmac-sha512", "key_id": "abc"}
    wild = {"name": "wild", "domains": ["*.pipelit.test", "pipelit.test"], "http_port": 8080, "tls": {"challenge": "dns-01", "dns": dns}}
    rc, result = run_module(
        state.main,
        capsys,
        sites=[wild],
        proxy="nginx",
        directory_url=DIRECTORY,
        certbot_config_dir=str(letsencrypt),
        proxy_config=str(conf),
        marker="/.well-known/pipelit-edge-preflight/",
    )
    assert rc == 0 and result["pending"] == [] and result["held_ports"] == []
    common = {"site": "wild", "name": "_acme-challenge.pipelit.test", "reason": "no certificate yet", "server": "192.0.2.53", "port": 5353}
    common.update({"key_name": "k", "key_algorithm": "hmac-sha512"})
    assert result["pending_dns"] == [{**common, "domain": "*.pipelit.test"}, {**common, "domain": "pipelit.test"}]
