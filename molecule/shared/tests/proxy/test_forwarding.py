"""What the backend sees: the edge's headers, never the client's, and the path untouched."""

import json
import os
import shlex
from pathlib import Path

import pytest
import yaml
from conftest import PIPELIT, VAULT

# The list both renderers drop (roles/proxy_sites/defaults/main.yml).
UNTRUSTED = yaml.safe_load((Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "roles/proxy_sites/defaults/main.yml").read_text())[
    "proxy_sites_untrusted_request_headers"
]
# Pipelit's profile keeps idle upstream connections 4 s (uvicorn: 5 s).
PIPELIT_KEEPALIVE_SECONDS = 4


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
    seen = fetch(f"https://{PIPELIT}/api/x", "-H", "X-Forwarded-For: 127.0.0.1", "-H", "X-Real-IP: 127.0.0.1").json()
    assert seen["headers"]["x-forwarded-for"] == probe_address
    assert seen["headers"]["x-real-ip"] == probe_address
    assert "127.0.0.1" not in seen["headers"]["x-forwarded-for"]


@pytest.mark.parametrize("domain,upstream", [(PIPELIT, "pipelit"), (VAULT, "aliasvault")])
# (An encoded '/' in the path is refused by both profiles' path guard:
# test_application_guards.py.)
@pytest.mark.parametrize("target", ["/api/x?y=1", "/admin/a%20b/c?q=%2F&r=1", "/"])
def test_paths_reach_the_backend_untouched(fetch, domain, upstream, target):
    seen = fetch(f"https://{domain}{target}").json()
    assert seen["name"] == upstream
    assert seen["target"] == target


def test_aliasvault_upstream_is_reached_over_https(fetch):
    assert fetch(f"https://{VAULT}/api").json()["tls"] is True


def test_upstream_connections_are_kept_alive(probe, ca_files):
    # Three requests, each on a new client connection: with upstream keepalive
    # the edge sends them over connections it already holds, so the backend
    # sees at most one source port per worker; without it, three. One probe
    # command sends all three, so the gaps stay far below the profile's
    # PIPELIT_KEEPALIVE_SECONDS (after which a new connection is right).
    result = probe.run(
        f"for name in one two three; do curl -sS --max-time 60 --cacert {ca_files['pipelit']} "
        f"https://{PIPELIT}/api/$name; echo '=== end of response'; done"
    )
    assert result.rc == 0, result.stderr
    bodies = [body for body in result.stdout.split("=== end of response") if body.strip()]
    assert len(bodies) == 3, result.stdout
    ports = {json.loads(body)["peer_port"] for body in bodies}
    # Workers keep their own pools, so allow one connection per worker (2 cores).
    assert len(ports) <= 2, f"a new upstream connection per request: {ports}"


@pytest.mark.parametrize("domain", [PIPELIT, VAULT])
def test_backend_sees_only_what_the_edge_asserts(fetch, probe_address, domain):
    forged = {name: "for=127.0.0.1" if name == "Forwarded" else "127.0.0.1" for name in UNTRUSTED}
    forged.update(
        {"X-Forwarded-Proto": "http", "X-Forwarded-Host": "evil.example", "X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1"}
    )
    options = [option for name, value in forged.items() for option in ("-H", f"{name}: {value}")]
    seen = fetch(f"https://{domain}/admin/x", *options).json()["headers"]
    # httpoxy's Proxy and the forwarding headers' misspellings among them.
    assert {"Forwarded", "X-Forwarded-Port", "True-Client-IP", "X-Original-URL", "Proxy", "X-Forwarded", "Forwarded-For"} <= set(UNTRUSTED)
    leaked = sorted(name for name in UNTRUSTED if name.lower() in seen)
    assert leaked == [], f"client headers that reached the backend: {leaked}"
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-host"] == domain
    assert seen["x-forwarded-for"] == probe_address
    assert seen["x-real-ip"] == probe_address


KEEPALIVE_CLIENT = """
import http.client, json, ssl, sys, time
connection = http.client.HTTPSConnection(sys.argv[1], context=ssl.create_default_context(cafile=sys.argv[2]))
ports = []
for pause in (0, 0, float(sys.argv[3])):
    time.sleep(pause)
    connection.request("GET", "/api/keepalive")
    ports.append(json.loads(connection.getresponse().read())["peer_port"])
print(json.dumps(ports))
"""


def test_upstream_connections_are_let_go_before_the_backends_idle_timeout(probe, ca_files):
    # Three requests on one client connection (so one nginx worker, one
    # upstream pool): the second reuses the first's upstream connection; the
    # third, sent once the profile's keep-alive timeout has passed, gets a new
    # one (the echo backend, unlike uvicorn, never closes idle connections:
    # only the edge can have let go of it).
    wait = PIPELIT_KEEPALIVE_SECONDS + 1.5
    result = probe.run(shlex.join(["python3", "-c", KEEPALIVE_CLIENT, PIPELIT, ca_files["pipelit"], str(wait)]))
    assert result.rc == 0, result.stderr
    first, second, third = json.loads(result.stdout)
    assert first == second, "the edge did not reuse its upstream connection"
    assert third != first, f"the edge kept an idle upstream connection past {PIPELIT_KEEPALIVE_SECONDS} s"
