"""Fixtures of the certbot scenario: the hosts, Pebble's roots, and the ACME settings."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "tests"))
from edge_testing import edge, probe  # noqa: E402,F401  (fixtures)

ACME_URL = "https://acme.test:14000/dir"
ACME_TLS_CA = "/usr/local/share/pebble-tls-ca.pem"  # on the edge (molecule/shared/acme.yml)
SITES = {
    "pipelit": {"name": "pipelit", "profile": "pipelit", "domains": ["pipelit.test"], "tls": {"mode": "acme"}},
    "aliasvault": {"name": "aliasvault", "profile": "aliasvault", "domains": ["vault.test"], "tls": {"mode": "acme"}},
}


@pytest.fixture(scope="session")
def pebble_root(probe):
    """Pebble's issuing root, from its management port: the only trust anchor the probe uses."""
    path = "/tmp/pebble-root.pem"
    probe.check_output(f"curl -sSf --cacert /etc/pebble/ca.pem https://acme.test:15000/roots/0 -o {path}")
    assert "BEGIN CERTIFICATE" in probe.file(path).content_string
    return path


def served_certificate(probe, domain):
    """Serial, issuer and names of the certificate the edge serves for a domain."""
    return probe.check_output(
        f"openssl s_client -connect {domain}:443 -servername {domain} </dev/null 2>/dev/null"
        " | openssl x509 -noout -serial -issuer -ext subjectAltName"
    )


def certbot(edge, arguments):
    """certbot on the edge, trusting Pebble's HTTPS as the role's renewals do."""
    return edge.run(f"REQUESTS_CA_BUNDLE={ACME_TLS_CA} certbot {arguments} 2>&1")
