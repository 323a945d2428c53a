"""playbooks/verify.yml against the deployed edge: it passes, and it fails when it should."""

import re

import pytest
from conftest import EDGE_ADDRESS, EDGE_HOST, PEBBLE_ROOT, SITE, VERIFY, rows, run_playbook


def test_every_check_passes(verify_run):
    assert verify_run.returncode == 0, verify_run.output
    passed = rows(verify_run.output, "PASS")
    site = SITE["site"]
    for domain in SITE["domains"]:
        assert (site, "redirect", f"http://{domain}/pipelit-edge-verify?probe=1") in passed
        assert (site, "certificate", domain) in passed
    assert (site, "headers", f"https://{SITE['domains'][0]}/") in passed
    assert (site, "websocket", f"wss://{SITE['domains'][0]}{SITE['websocket']}") in passed
    for port in SITE["backend_ports"]:
        assert ("-", "closed port", f"{EDGE_ADDRESS}:{port}") in passed
    for target in ("ufw", "policy", "80/tcp", "443/tcp", *SITE["backend_ports"]):
        assert ("-", "firewall", target) in passed
    assert not rows(verify_run.output, "FAIL")
    assert "0 failed" in verify_run.output


def test_the_certificate_chain_was_checked_against_pebble(verify_run):
    assert f"chain and name verify against {PEBBLE_ROOT}" in verify_run.output


def test_the_token_stays_out_of_the_output(verify_run):
    assert "demo-token-not-a-secret" not in verify_run.output


def test_the_backend_ports_answer_on_the_host_but_not_from_outside(edge, verify_run):
    # The stand-ins listen on every interface (molecule/shared/fullstack/prepare.yml),
    # so the closed-port checks pass because of the firewall, not by accident.
    listening = edge.check_output("ss -ltnH")
    for port in SITE["backend_ports"]:
        assert f"0.0.0.0:{port.split('/')[0]}" in listening
    assert edge.run("python3 -c \"import socket; socket.create_connection(('127.0.0.1', 6379), 3)\"").rc == 0


def test_ufw_denies_every_port_the_profile_declares(edge):
    # Explicit rules, so `ufw status` names each one (the default policy
    # would drop them silently), for IPv4 and IPv6.
    status = edge.check_output("ufw status")
    for port in SITE["backend_ports"]:
        assert len(re.findall(rf"^{re.escape(port)}(?: \(v6\))?\s+DENY\s+Anywhere", status, re.M)) == 2, status


def test_the_probe_reaches_no_backend_port_that_listens_on_every_interface(edge, probe):
    # From the probe (the internet), a listener on 0.0.0.0 of each declared
    # port stays unreachable; from the edge itself, on its network address,
    # the same listener answers (so the port is closed by the firewall).
    address = probe.check_output(f"getent hosts {SITE['domains'][0]}").split()[0]
    for port in SITE["backend_ports"]:
        number = port.split("/")[0]
        connect = f"python3 -c \"import socket; socket.create_connection(('{address}', {number}), 3)\""
        assert edge.run(connect).rc == 0, f"nothing listens on {address}:{number} on the edge"
        assert probe.run(connect).rc != 0, f"the probe reached {address}:{number}"


def test_fails_naming_the_port_when_the_firewall_lets_redis_in(edge):
    # An operator's slip: Redis's deny rule swapped for an allow (put back as
    # the ufw role wrote it, comment included, so later runs stay unchanged).
    edge.check_output("ufw delete deny 6379/tcp && ufw allow 6379/tcp")
    try:
        result = run_playbook(VERIFY)
    finally:
        edge.check_output("ufw delete allow 6379/tcp && ufw deny 6379/tcp comment 'pipelit-edge denied'")
    assert result.returncode != 0
    assert f"host '{EDGE_HOST}': closed port {EDGE_ADDRESS}:6379/tcp: accepted a connection from here" in result.output
    assert f"host '{EDGE_HOST}': firewall 6379/tcp: not denied from anywhere for IPv4 and IPv6" in result.output
    assert ("-", "closed port", f"{EDGE_ADDRESS}:8000/tcp") in rows(result.output, "PASS")


def test_fails_naming_the_site_when_the_backend_is_down(edge):
    unit = {"pipelit": "stand-in-pipelit", "aliasvault": "stand-in-aliasvault"}[SITE["site"]]
    edge.check_output(f"systemctl stop {unit}")
    try:
        result = run_playbook(VERIFY)
    finally:
        edge.check_output(f"systemctl start {unit}")
    assert result.returncode != 0
    assert f"site '{SITE['site']}': websocket wss://{SITE['domains'][0]}{SITE['websocket']}: upgrade refused" in result.output


@pytest.mark.parametrize(
    "extra_vars,expected",
    [
        # A certificate with too few days left (every real one has fewer than 100,000).
        ({"edge_verify_min_days_valid": 100000}, "days left"),
        # Pebble's certificates against the system trust store: the chain must not verify.
        ({"edge_verify_ca_bundle": ""}, "handshake failed"),
    ],
)
def test_fails_naming_the_certificate(extra_vars, expected):
    result = run_playbook(VERIFY, extra_vars=extra_vars)
    assert result.returncode != 0
    domain = SITE["domains"][0]
    assert f"site '{SITE['site']}': certificate {domain}: " in result.output
    line = next(line for line in result.output.splitlines() if f"site '{SITE['site']}': certificate {domain}: " in line)
    assert expected in line
