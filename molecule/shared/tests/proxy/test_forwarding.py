"""What the backend sees: the edge's headers, never the client's, and the path untouched."""

import pytest
from conftest import PIPELIT, VAULT


def test_backend_sees_host_scheme_and_client_address(fetch, probe_address):
    seen = fetch(f"https://{PIPELIT}/api/x").json()
    assert seen["name"] == "pipelit"
    assert seen["headers"]["host"] == PIPELIT
    assert seen["headers"]["x-forwarded-proto"] == "https"
    assert seen["headers"]["x-real-ip"] == probe_address
    assert seen["headers"]["x-forwarded-for"] == probe_address


def test_client_cannot_spoof_its_address(fetch, probe_address):
    # Pipelit trusts X-Forwarded-For from 127.0.0.1 and has loopback-only
    # endpoints: a client's own claim must never reach it.
    seen = fetch(f"https://{PIPELIT}/api/x", "-H", "X-Forwarded-For: 127.0.0.1",
                 "-H", "X-Real-IP: 127.0.0.1").json()
    assert seen["headers"]["x-forwarded-for"] == probe_address
    assert seen["headers"]["x-real-ip"] == probe_address
    assert "127.0.0.1" not in seen["headers"]["x-forwarded-for"]


@pytest.mark.parametrize("domain,upstream", [(PIPELIT, "pipelit"), (VAULT, "aliasvault")])
@pytest.mark.parametrize("target", ["/api/x?y=1", "/admin/a%2Fb/c?q=%20&r=1", "/"])
def test_paths_reach_the_backend_untouched(fetch, domain, upstream, target):
    seen = fetch(f"https://{domain}{target}").json()
    assert seen["name"] == upstream
    assert seen["target"] == target


def test_aliasvault_upstream_is_reached_over_https(fetch):
    assert fetch(f"https://{VAULT}/api").json()["tls"] is True


def test_upstream_connections_are_kept_alive(fetch):
    # Three requests, each on a new client connection: with upstream keepalive
    # the edge sends them over connections it already holds, so the backend
    # sees at most one source port per worker; without it, three.
    first = fetch(f"https://{PIPELIT}/api/one").json()
    second = fetch(f"https://{PIPELIT}/api/two").json()
    third = fetch(f"https://{PIPELIT}/api/three").json()
    ports = {first["peer_port"], second["peer_port"], third["peer_port"]}
    # Workers keep their own pools, so allow one connection per worker (2 cores).
    assert len(ports) <= 2, f"a new upstream connection per request: {ports}"
