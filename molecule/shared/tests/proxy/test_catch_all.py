"""Names no site has get nothing: no certificate, no redirect, no backend.

The internet sends any Host and any TLS name (SNI), and scanners connect to
the bare address. Only the sites' own names are served; ACME challenges of
those names still are.
"""

import re
import shlex
import uuid

import pytest
from conftest import PIPELIT, PROXY, VAULT, curl


def handshake(probe, address, servername):
    """openssl s_client to port 443 with this SNI (None: none at all)."""
    name = ["-servername", servername] if servername else ["-noservername"]
    return probe.run(shlex.join(["openssl", "s_client", "-connect", f"{address}:443", *name]) + " </dev/null 2>&1")


def plain_http(probe, address, host, path="/x?y=1"):
    """(curl's exit code, status, redirect) of a plain-HTTP GET with this Host."""
    result = probe.run(
        shlex.join(
            [
                "curl",
                "-sS",
                "--max-time",
                "20",
                "-o",
                "/dev/null",
                "-H",
                f"Host: {host}",
                "-w",
                "%{http_code} %{redirect_url}",
                f"http://{address}{path}",
            ]
        )
    )
    status, _, redirect = result.stdout.partition(" ")
    return result.rc, int(status or 0), redirect.strip()


def test_a_sites_name_gets_its_certificate(probe, edge_address):
    # The same handshake as below, with a name the edge has: it succeeds.
    result = handshake(probe, edge_address, PIPELIT)
    assert "BEGIN CERTIFICATE" in result.stdout
    assert re.search(r"New, TLSv1\.[23], Cipher is", result.stdout)


@pytest.mark.parametrize("servername", ["unknown.test", None], ids=["unknown-sni", "no-sni"])
def test_an_unknown_or_missing_tls_name_gets_no_certificate(probe, edge_address, servername):
    result = handshake(probe, edge_address, servername)
    assert "BEGIN CERTIFICATE" not in result.stdout, result.stdout
    assert "New, (NONE), Cipher is (NONE)" in result.stdout, result.stdout


@pytest.mark.parametrize("host", ["evil.example", "address"])
def test_plain_http_for_an_unknown_name_gets_no_answer_and_no_redirect(probe, edge_address, host):
    rc, status, redirect = plain_http(probe, edge_address, edge_address if host == "address" else host)
    # Closed without a response (nginx 444, Caddy's abort: curl's "empty
    # reply", 52), or a refusal; never a redirect, never the backend.
    assert (rc, status) == (52, 0) or status in (400, 421), (rc, status, redirect)
    assert redirect == ""


def test_plain_http_for_a_sites_name_still_redirects(probe, edge_address):
    rc, status, redirect = plain_http(probe, edge_address, PIPELIT)
    assert (rc, status, redirect) == (0, 308, f"https://{PIPELIT}/x?y=1")


@pytest.mark.skipif(
    PROXY != "nginx",
    reason="Caddy answers HTTP-01 challenges itself, with no webroot "
    "(the pipelit-caddy scenario gets its certificate from Pebble that way)",
)
def test_acme_challenges_of_the_sites_names_are_still_served(edge, probe, edge_address):
    token = uuid.uuid4().hex
    path = f"/var/www/pipelit-edge-acme/.well-known/acme-challenge/{token}"
    edge.check_output(f"echo {token}.key > {path}")
    try:
        for domain in (PIPELIT, VAULT):
            response = curl(probe, f"http://{domain}/.well-known/acme-challenge/{token}")
            assert (response.status, response.body.strip()) == (200, f"{token}.key")
        # Not for a name no site has.
        rc, status, _ = plain_http(probe, edge_address, "evil.example", f"/.well-known/acme-challenge/{token}")
        assert (rc, status) == (52, 0) or status in (400, 421), (rc, status)
    finally:
        edge.run(f"rm -f {path}")


@pytest.mark.parametrize("host", [VAULT, "evil.example"])
@pytest.mark.parametrize("http", ["--http1.1", "--http2"])
def test_a_host_that_is_not_the_tls_names_site_is_misdirected(fetch, host, http):
    # The connection is made for pipelit.test (SNI); the request asks for
    # another site, or for a name no site has.
    response = fetch(f"https://{PIPELIT}/api/x", http, "-H", f"Host: {host}")
    assert response.status == 421, response.body
    assert '"name"' not in response.body  # nothing from a backend
