"""The site model refuses, before any change, what would fail later (issue 12,
item 4), on the full stack as operators run it (playbooks/pipelit.yml: ufw,
Caddy, certificates from Pebble).

Each bad input alone runs the real converge playbook and must fail, naming
the site (or the variable) and the field, with the Caddy configuration, the
certificate stores and the firewall rules byte-identical before and after.
Many of these inputs used to pass the model and reach ufw, Caddy's own
`caddy validate` (or nginx -t, certbot) or crash the filter.

Then a Pipelit site that adds a route keeps its profile's WebSocket route.

These tests run before the shared full-stack suite (their path sorts first:
".../fullstack/tests/../../../pipelit-caddy" < ".../fullstack/tests/test_"),
and leave the scenario's own sites converged again for it.
"""

from __future__ import annotations

import concurrent.futures
import copy
import json
import shlex
import sys
import time
from pathlib import Path

import pytest
import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "tests"))
import edge_testing  # noqa: E402
from edge_testing import curl, edge, probe  # noqa: E402,F401  (edge, probe: fixtures)

# Pebble's issuing root on the probe (molecule/shared/acme.yml).
PEBBLE_ROOT = "/usr/local/share/pebble-roots.pem"
# Everything a refused run must leave as it was: Caddy's configuration, every
# certificate store (Caddy's, the edge's own, certbot's if any), the firewall.
STATE_PATHS = [
    "/etc/caddy",
    "/etc/systemd/system/caddy.service.d",
    "/etc/ssl/pipelit-edge",
    "/var/lib/caddy/.local/share/caddy/certificates",
    "/var/lib/caddy/.local/share/caddy/acme",
    "/var/lib/caddy/.local/share/caddy/pki",
    "/etc/letsencrypt",
    "/etc/ufw",
]
# A few runs at a time: each is mostly Ansible's own start-up and fact gathering.
PARALLEL_RUNS = 3
# The digests go through `docker exec` rather than the suite's Ansible
# connection: a second each instead of several, twice per case.
EDGE_CONTAINER = f"edge-{edge_testing.SCENARIO}"


def pipelit(**fields):
    """The scenario's own site (inventories/demo), with these fields set."""
    site = {"name": "pipelit", "profile": "pipelit", "domains": ["pipelit.test", "www.pipelit.test"], "tls": {"mode": "acme"}}
    site.update(copy.deepcopy(fields))
    return site


def other(name="other", **fields):
    """A second, valid site beside it."""
    site = {
        "name": name,
        "profile": "pipelit",
        "domains": [f"{name.replace('_', '-')}.pipelit.test"],
        "http_port": 8080,
        "https_port": 8443,
        "tls": {"mode": "self_signed"},
    }
    site.update(copy.deepcopy(fields))
    return site


def sites(*items):
    return {"proxy_sites": list(items)}


def route(path="/", **fields):
    return {"path": path, "upstream": "app", **fields}


# Upstreams written out whole, so that each case holds one mistake whether
# or not the profile's upstream merges under it.
APP = {"servers": ["127.0.0.1:8000"]}
HTTPS_APP = {**APP, "scheme": "https"}

# (id, extra vars of one run, the words its failure must say). "old:" in a
# comment says what today's main does with the input instead.
CASES = [
    # Identifiers the renderers derive, across sites and within one.
    (
        "names-a-b-and-a_b",
        sites(pipelit(), other("a-b"), other("a_b", domains=["ab.pipelit.test"])),
        "site 'a_b': name: becomes the same identifier as site 'a-b'",
    ),  # old: nginx "duplicate upstream"
    (
        "upstream-id-across-sites",
        sites(
            pipelit(),
            other("a", upstreams={"b-app": {"servers": ["127.0.0.1:8000"]}}, routes=[route("/b/", upstream="b-app")]),
            other("a-b", http_port=8081, https_port=8444),
        ),
        "site 'a-b': upstreams.app: its identifier 'a_b_app' is already that of site 'a' upstreams.b-app",
    ),
    (
        "upstream-names-in-one-site",
        sites(pipelit(upstreams={"app": APP, "x-y": APP, "x_y": APP})),
        "site 'pipelit': upstreams.x_y: becomes the same identifier as upstreams.x-y",
    ),
    # Ports a renderer would put on plain HTTP and HTTPS at once.
    (
        "http-port-is-another-sites-https-port",
        sites(pipelit(), other(http_port=443)),
        "site 'other': http_port: port 443 is already site 'pipelit''s https_port",
    ),
    (
        "https-port-is-another-sites-http-port",
        sites(pipelit(), other(https_port=80)),
        "site 'other': https_port: port 80 is already site 'pipelit''s http_port",
    ),
    # HTTP-01 only ever comes to port 80.
    (
        "acme-on-http-port-8080",
        sites(pipelit(http_port=8080)),
        "site 'pipelit': http_port: tls mode acme validates over HTTP-01",
    ),  # old: 5 changes, then the ACME CA fails
    # Types Python lets through (bool is an int) or Ansible would convert.
    (
        "keepalive-true",
        sites(pipelit(upstreams={"app": {**APP, "keepalive": True}})),  # old: caddy validate
        "site 'pipelit': upstreams.app.keepalive: must be a whole number of idle connections from 0 to 65535, not the boolean true",
    ),
    (
        "burst-true",
        sites(pipelit(routes=[route(rate_limit={"rate": "10r/s", "burst": True})])),
        "site 'pipelit': routes[0].rate_limit.burst: must be a whole number from 0 to 1000000, not the boolean true",
    ),
    ("http-port-true", sites(pipelit(), other(http_port=True)), "site 'other': http_port: the boolean true is not a port from 1 to 65535"),
    ("https-port-string", sites(pipelit(), other(https_port="8443")), "site 'other': https_port: '8443' is not a port from 1 to 65535"),
    (
        "websocket-string",
        sites(pipelit(routes=[route("/ws/", websocket="yes")])),
        "site 'pipelit': routes[0].websocket: must be true or false, not 'yes'",
    ),
    (
        "verify-string",
        sites(pipelit(upstreams={"app": {**HTTPS_APP, "verify": "false"}})),
        "site 'pipelit': upstreams.app.verify: must be true or false, not 'false'",
    ),
    ("max-body-size-true", sites(pipelit(max_body_size=True)), "site 'pipelit': max_body_size: the boolean true is not a size"),
    (
        "timeout-number",
        sites(pipelit(routes=[route("/ws/", read_timeout=3600)])),
        "site 'pipelit': routes[0].read_timeout: the number 3600 is not a duration",
    ),
    (
        "route-upstream-list",
        sites(pipelit(routes=[route(upstream=["app"])])),
        "site 'pipelit': routes[0].upstream: a list is not an upstream of this site",
    ),  # old: TypeError in the filter
    (
        "profile-list",
        sites(pipelit(profile=["pipelit"])),
        "site 'pipelit': profile: a list is not a known profile",
    ),  # old: TypeError in the filter
    (
        "trusted-proxies-string",
        sites(pipelit(trusted_proxies="10.0.0.0/8")),
        "site 'pipelit': trusted_proxies: must be a list of addresses or networks, not '10.0.0.0/8'",
    ),
    # The proxy's choice, checked where the play starts.
    (
        "edge-proxy-Caddy",
        {"edge_proxy": "Caddy"},
        "edge_proxy must be exactly 'nginx' or 'caddy'",
    ),  # old: both proxy roles skipped, run green
    # Profiles merge by path and by name; absent must name something to remove.
    (
        "absent-route-not-in-profile",
        sites(pipelit(routes=[{"path": "/nope/", "state": "absent"}])),
        "site 'pipelit': routes[0].state: 'absent' removes a route of profile 'pipelit', which has no route with path '/nope/'",
    ),
    (
        "absent-upstream-not-in-profile",
        sites(pipelit(upstreams={"api": {"state": "absent"}})),
        "site 'pipelit': upstreams.api.state: 'absent' removes an upstream of profile 'pipelit', which has no upstream 'api'",
    ),
    (
        "absent-without-profile",
        sites(
            pipelit(),
            other(profile=None, upstreams={"app": {"servers": ["127.0.0.1:8000"]}}, routes=[route(), {"path": "/ws/", "state": "absent"}]),
        ),
        "site 'other': routes[1].state: 'absent' removes a route of the site's profile, and this site has no profile",
    ),
    # Headers: names ignore case, values are the same bytes to both proxies.
    (
        "header-names-differ-by-case",
        sites(pipelit(headers={"x-frame-options": "DENY", "X-Frame-Options": "SAMEORIGIN"})),
        "site 'pipelit': headers.X-Frame-Options: is header 'x-frame-options' again",
    ),
    (
        "header-value-braces",
        sites(pipelit(headers={"X-Test": "{path}"})),
        "site 'pipelit': headers.X-Test: a value may not hold",
    ),  # old: the caddy role's own check, after ufw
    (
        "header-value-dollar",
        sites(pipelit(headers={"X-Test": "$host"})),
        "site 'pipelit': headers.X-Test: a value may not hold",
    ),  # old: an nginx variable
    (
        "header-value-boolean",
        sites(pipelit(headers={"X-Flag": True})),
        "site 'pipelit': headers.X-Flag: must be a text value, not the boolean true",
    ),  # old: sent as "True"
    (
        "header-content-length",
        sites(pipelit(headers={"Content-Length": "0"})),
        "site 'pipelit': headers.Content-Length: frames the message or the connection",
    ),
    # Domains.
    (
        "domain-null",
        sites(pipelit(domains=["pipelit.test", None])),
        "site 'pipelit': domains[1]: null is not a valid lower-case domain name",
    ),
    ("domain-number", sites(pipelit(), other(domains=[5])), "site 'other': domains[0]: the number 5 is not a valid lower-case domain name"),
    (
        "domain-twice-in-a-site",
        sites(pipelit(domains=["pipelit.test", "pipelit.test"])),
        "site 'pipelit': domains[1]: 'pipelit.test' is already domains[0]",
    ),  # old: Caddy "ambiguous site definition"
    (
        "acme-101-domains",
        sites(pipelit(domains=["pipelit.test"] + [f"d{i}.pipelit.test" for i in range(100)])),
        "site 'pipelit': domains: 101 names; an ACME certificate holds at most 100",
    ),  # old: the CA refuses
    (
        "acme-ip-address",
        sites(pipelit(domains=["pipelit.test", "192.0.2.10"])),
        "site 'pipelit': domains[1]: '192.0.2.10' is an IP address",
    ),  # old: the CA refuses
    (
        "acme-single-label",
        sites(pipelit(domains=["pipelit.test", "pipelit"])),
        "site 'pipelit': domains[1]: 'pipelit' is not a fully qualified name",
    ),
    # Paths nginx and Caddy read differently, or as syntax.
    (
        "path-hash",
        sites(pipelit(routes=[route("/a#b")])),
        "site 'pipelit': routes[0].path: '/a#b' must start with '/'",
    ),  # old: nginx reads a comment
    (
        "path-star",
        sites(pipelit(routes=[route("/api/*")])),
        "site 'pipelit': routes[0].path: '/api/*' must start with '/'",
    ),  # old: the caddy role's own check, after ufw
    ("path-query", sites(pipelit(routes=[route("/a?b=1")])), "site 'pipelit': routes[0].path: '/a?b=1' must start with '/'"),
    # Upstream TLS settings.
    (
        "ca-file-relative",
        sites(pipelit(upstreams={"app": {**HTTPS_APP, "ca_file": "certs/ca.pem"}})),
        "site 'pipelit': upstreams.app.ca_file: 'certs/ca.pem' is not an absolute path",
    ),
    (
        "ca-file-without-verify",
        sites(pipelit(upstreams={"app": {**HTTPS_APP, "verify": False, "ca_file": "/etc/ssl/ca.pem"}})),
        "site 'pipelit': upstreams.app.ca_file: only an upstream with scheme https and verify true",
    ),
    (
        "sni-ip-address",
        sites(pipelit(upstreams={"app": {**HTTPS_APP, "sni": "127.0.0.1"}})),
        "site 'pipelit': upstreams.app.sni: '127.0.0.1' is not a host name",
    ),
    (
        "sni-on-http",
        sites(pipelit(upstreams={"app": {**APP, "sni": "app.internal"}})),  # old: silently ignored
        "site 'pipelit': upstreams.app.sni: only an upstream with scheme https sends a name",
    ),
    (
        "server-not-an-address",
        sites(pipelit(upstreams={"app": {"servers": ["999.1.1.1:8000"]}})),
        "site 'pipelit': upstreams.app.servers[0]: '999.1.1.1:8000' is not host:port",
    ),  # old: nginx "host not found"
    # TLS files and sizes.
    (
        "tls-file-with-space",
        sites(pipelit(), other(tls={"mode": "files", "certificate": "/etc/ssl/my cert.pem", "certificate_key": "/etc/ssl/key.pem"})),
        "site 'other': tls.certificate: mode 'files' needs an absolute path",
    ),
    (
        "tls-certificate-with-acme",
        sites(pipelit(tls={"mode": "acme", "certificate": "/etc/ssl/c.pem"})),
        "site 'pipelit': tls.certificate: only mode 'files' takes the operator's own files",
    ),
    ("max-body-size-overflow", sites(pipelit(max_body_size="10000000000g")), "site 'pipelit': max_body_size: '10000000000g' is not a size"),
    (
        "timeout-over-a-year",
        sites(pipelit(routes=[route("/ws/", read_timeout="100000h")])),
        "site 'pipelit': routes[0].read_timeout: '100000h' is not a duration",
    ),
    (
        "allow-ipv6-zone",
        sites(pipelit(routes=[route("/admin/", allow=["fe80::1%eth0"])])),
        "site 'pipelit': routes[0].allow: 'fe80::1%eth0' is not an IP address or network",
    ),
    (
        "rate-limit-unknown-field",
        sites(pipelit(routes=[route(rate_limit={"rate": "10r/s", "brust": 5})])),
        "site 'pipelit': routes[0].rate_limit: unknown field(s) brust",
    ),  # old: silently ignored
    # What the model allows but Caddy cannot do: refused where the play starts.
    (
        "rate-limit-with-caddy",
        sites(pipelit(routes=[route(rate_limit={"rate": "10r/s", "burst": 5})])),
        "site 'pipelit': routes[0].rate_limit: Caddy from the distribution has no rate limiting",
    ),  # old: after ufw
    (
        "acme-email-not-an-address",
        {"proxy_sites_acme_email": "admin"},
        "proxy_sites_acme_email must be an address such as admin@example.com (it is 'admin')",
    ),
]


def state_digest(edge):
    """One digest of the files (and links) under STATE_PATHS that exist, plus
    ufw's view of its rules."""
    paths = " ".join(STATE_PATHS)
    return edge.check_output(
        f'{{ for path in {paths}; do [ -e "$path" ] || continue; '
        'find "$path" -type f -print0 | sort -z | xargs -0 -r sha256sum; '
        "find \"$path\" -type l -printf '%p -> %l\\n' | sort; done; "
        "ufw status numbered; } | sha256sum"
    )


@pytest.fixture(scope="module")
def refused_runs():
    """Every case, a few at a time; per case: (its run, digest before, digest after)."""
    host = testinfra.get_host(f"docker://{EDGE_CONTAINER}")
    baseline = state_digest(host)

    def one(case):
        _, extra_vars, _ = case
        before = state_digest(host)
        result = edge_testing.run_playbook(edge_testing.CONVERGE, extra_vars=extra_vars, result_format="json")
        return result, before, state_digest(host)

    started = time.monotonic()
    # No fact gathering: it is two thirds of a refused run's time, and the
    # checks under test (the play's first task, the first role) read no facts.
    # A run that a check failed to stop would still fail this test: its
    # message would be missing.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANSIBLE_GATHERING", "explicit")
        with concurrent.futures.ThreadPoolExecutor(PARALLEL_RUNS) as pool:
            results = dict(zip([case[0] for case in CASES], pool.map(one, CASES), strict=True))
    print(f"{len(CASES)} refused runs, {PARALLEL_RUNS} at a time: {time.monotonic() - started:.0f} s")
    return baseline, results


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 30
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case_id,extra_vars,message", CASES, ids=[case[0] for case in CASES])
def test_bad_input_fails_before_any_change_naming_the_field(refused_runs, case_id, extra_vars, message):
    baseline, results = refused_runs
    result, before, after = results[case_id]
    assert result.returncode != 0, result.output
    # JSON results escape what a message quotes; the [ERROR] line does not.
    assert message in result.output or json.dumps(message)[1:-1] in result.output, result.output
    assert before == baseline == after, "the edge changed although the input was refused"
    # Stopped before the firewall or the proxy ran a single task.
    assert "TASK [ufw :" not in result.output and "TASK [caddy :" not in result.output


@pytest.fixture(scope="module")
def extra_route(edge):
    """The scenario's site plus one route of its own, converged; the
    scenario's sites converged again afterwards."""
    result = edge_testing.run_converge(sites(pipelit(routes=[route("/extra/", max_body_size="1k")])))
    try:
        yield result
    finally:
        restored = edge_testing.run_converge({})
        assert restored.returncode == 0, restored.output


def test_a_site_that_adds_a_route_keeps_the_profiles_routes(extra_route, edge):
    assert extra_route.returncode == 0, extra_route.output
    caddyfile = edge.file("/etc/caddy/Caddyfile").content_string
    for path in ("/extra/", "/ws/", "/"):
        assert f"handle {path}* {{" in caddyfile


def test_the_profiles_websocket_route_still_upgrades(extra_route, probe):
    result = probe.run(
        shlex.join(["python3", "/usr/local/bin/ws_check.py", "wss://pipelit.test/ws/?token=model-test", "--cafile", PEBBLE_ROOT])
    )
    report = json.loads(result.stdout or "{}")
    assert result.rc == 0, report
    assert report["status"] == 101 and report["text_echo"] and report["binary_echo"]


def test_the_new_route_serves_with_its_own_limit(extra_route, probe):
    served = curl(probe, "https://pipelit.test/extra/item?x=1", ca=PEBBLE_ROOT)
    assert served.status == 200
    assert served.json()["target"] == "/extra/item?x=1"
    # Its own 1k limit proves the route is there (the profile's / allows 50m).
    body = ["-X", "POST", "--data-binary", "x" * 4096]
    assert curl(probe, "https://pipelit.test/extra/item", *body, ca=PEBBLE_ROOT).status == 413
    assert curl(probe, "https://pipelit.test/other", *body, ca=PEBBLE_ROOT).status == 200
