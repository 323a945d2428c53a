"""DNS-01 through RFC 2136 (issue 22): a wildcard certificate from Pebble,
validated through a real BIND 9 (molecule/certbot/dns.yml: the zone
pipelit.test on the probe, a TSIG key, Pebble resolving through it), with
the edge's port 80 closed to the probe and so to the CA. Then the pre-flight:
a wrong TSIG secret, a zone the server is not authoritative for, and the
server down each fail the run naming the site, the domain and the server's
answer, before Pebble sees an order.

Runs after test_certificates.py (file order) and ends with the scenario's own
sites converged again (HTTP-01), for the tests after it.
"""

from __future__ import annotations

import re
import shlex

import pytest
from conftest import SITES, certbot
from edge_testing import run_converge

KEY_FILE = "/etc/bind/pipelit-edge-test.key"
LINEAGE = "pipelit-edge-pipelit"
# The certbot plugin waits this long for the record to be visible; the
# probe's BIND answers at once.
# And the ACME pre-flight runs in this module's runs, as in playbooks/edge.yml.
DNS_RUN_VARS = {"certbot_dns_propagation_seconds": 1, "certbot_scenario_preflight": True}


@pytest.fixture(scope="module")
def probe_address(probe):
    return probe.check_output("hostname -i").split()[0]


@pytest.fixture(scope="module")
def pebble_root(probe):
    """Pebble's issuing root as it is now: a new one each time Pebble starts,
    and test_certificates.py restarted it (the session's fixture is older)."""
    path = "/tmp/pebble-root-dns01.pem"
    probe.check_output(f"curl -sSf --cacert /etc/pebble/ca.pem https://acme.test:15000/roots/0 -o {path}")
    return path


@pytest.fixture(scope="module")
def tsig_secret(probe):
    return re.search(r'secret "([^"]+)"', probe.file(KEY_FILE).content_string).group(1)


def dns_tls(server, secret, key_name="pipelit-edge-test"):
    return {
        "mode": "acme",
        "challenge": "dns-01",
        "dns": {"server": server, "port": 53, "key_name": key_name, "key_algorithm": "hmac-sha256", "key_secret": secret},
    }


@pytest.fixture(scope="module")
def wildcard_site(probe_address, tsig_secret):
    return {**SITES["pipelit"], "domains": ["pipelit.test", "*.pipelit.test"], "tls": dns_tls(probe_address, tsig_secret)}


def port80_rule(edge):
    address = edge.check_output("hostname -i").split()[0]
    return f"OUTPUT -d {address} -p tcp --dport 80 -j REJECT --reject-with tcp-reset"


@pytest.fixture(scope="module")
def port80_closed(probe, edge):
    """The edge's port 80, closed to the probe (Pebble's HTTP-01 validations
    included) until test_back_to_http01, or the module's end."""
    probe.check_output(f"iptables -I {port80_rule(edge)}")
    yield
    probe.run(f"iptables -D {port80_rule(edge)}")


def orders_since(probe, since):
    """New-order requests Pebble has answered since the given time."""
    log = probe.check_output(f"journalctl -u pebble --since '{since}' --no-pager -o cat")
    return log.count("/order-plz")


def names_served(probe, name, pebble_root, edge_address):
    """The names in the certificate served for a TLS name, verified against Pebble's root."""
    command = (
        f"openssl s_client -connect {edge_address}:443 -servername {shlex.quote(name)} -CAfile {pebble_root}"
        " -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial -ext subjectAltName"
    )
    return probe.check_output(command)


@pytest.fixture(scope="module")
def issued(probe, edge, wildcard_site, port80_closed, pebble_root):
    """The run that switches the pipelit site to DNS-01 with a wildcard, the
    only site (an HTTP-01 site still to be validated would fail the
    pre-flight, as port 80 is closed)."""
    assert probe.run(f"curl -s -o /dev/null --max-time 5 http://{edge.check_output('hostname -i').split()[0]}/").rc != 0, (
        "port 80 should be closed to the probe"
    )
    return run_converge({"proxy_sites": [wildcard_site], **DNS_RUN_VARS})


def test_a_wildcard_is_issued_over_dns01_with_port_80_closed(issued, probe, edge, pebble_root, tsig_secret):
    assert issued.returncode == 0, issued.output[-4000:]
    assert tsig_secret not in issued.output
    edge_address = edge.check_output("hostname -i").split()[0]
    for name in ("pipelit.test", "anything.pipelit.test"):
        names = names_served(probe, name, pebble_root, edge_address)
        assert "DNS:*.pipelit.test" in names and "DNS:pipelit.test" in names, names
    renewal = edge.file(f"/etc/letsencrypt/renewal/{LINEAGE}.conf").content_string
    assert "authenticator = dns-rfc2136" in renewal


def test_the_tsig_secret_is_stored_root_only(issued, edge, tsig_secret):
    conf = edge.file(f"/etc/letsencrypt/renewal/{LINEAGE}.conf").content_string
    credentials = re.search(r"(?m)^dns_rfc2136_credentials\s*=\s*(\S+)", conf).group(1)
    stored = edge.file(credentials)
    assert (stored.user, stored.group, stored.mode) == ("root", "root", 0o600)
    assert tsig_secret in stored.content_string
    assert tsig_secret not in conf


def test_a_second_run_changes_nothing(issued, wildcard_site):
    again = run_converge({"proxy_sites": [wildcard_site], **DNS_RUN_VARS})
    assert again.returncode == 0, again.output[-3000:]
    assert sum(int(n) for n in re.findall(r"\bchanged=(\d+)", again.output.split("PLAY RECAP")[-1])) == 0, again.output[-4000:]


def test_renewal_through_the_timers_command_works_over_dns01(issued, probe, edge, pebble_root):
    edge_address = edge.check_output("hostname -i").split()[0]
    before = names_served(probe, "pipelit.test", pebble_root, edge_address)
    # What certbot.timer runs, forced: the renewal conf's authenticator and
    # credentials, then the deploy hook's reload.
    renewed = certbot(edge, f"renew --force-renewal --no-random-sleep-on-renew --cert-name {LINEAGE}")
    assert renewed.rc == 0, renewed.stdout
    after = names_served(probe, "pipelit.test", pebble_root, edge_address)
    assert after != before and "DNS:*.pipelit.test" in after


BAD_CASES = {
    # (the bad site's domains, its key secret (None: the real one), what stops the server, what the message says)
    "wrong TSIG secret": (["wrongkey.pipelit.test"], "c2VjcmV0LXRoYXQtaXMtd3Jvbmc=", None, r"BADSIG|BADKEY"),
    "zone not served": (["*.other.test"], None, None, r"other\.test.*(not authoritative|NOTAUTH|REFUSED|NOTZONE|SERVFAIL|NXDOMAIN)"),
    # Nothing on the port: refused at once, not a silence as long as the timeout.
    "server down": (["down.pipelit.test"], None, "systemctl stop named", r"no answer from \S+ \(.*[Rr]efused"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_the_preflight_fails_before_the_ca_sees_an_order(issued, probe, wildcard_site, probe_address, tsig_secret, case):
    domains, secret, sabotage, answer = BAD_CASES[case]
    bad = {"name": "bad", "profile": "pipelit", "domains": domains, "tls": dns_tls(probe_address, secret or tsig_secret)}
    since = probe.check_output("date '+%Y-%m-%d %H:%M:%S'")
    if sabotage:
        probe.check_output(sabotage)
    try:
        run = run_converge({"proxy_sites": [wildcard_site, bad], **DNS_RUN_VARS})
    finally:
        probe.check_output("systemctl start named")
    assert run.returncode != 0
    assert orders_since(probe, since) == 0, "Pebble saw an order"
    failure = run.output[run.output.find("pre-flight") :]
    assert "site 'bad'" in failure and domains[0].lstrip("*.") in failure, run.output[-3000:]
    assert probe_address in failure, run.output[-3000:]
    assert re.search(answer, failure, re.S), run.output[-3000:]
    assert (secret or tsig_secret) not in run.output


def test_back_to_http01(issued, probe, edge):
    probe.check_output(f"iptables -D {port80_rule(edge)}")
    back = run_converge({"proxy_sites": list(SITES.values())})
    assert back.returncode == 0, back.output[-3000:]
    assert "authenticator = webroot" in edge.file(f"/etc/letsencrypt/renewal/{LINEAGE}.conf").content_string
