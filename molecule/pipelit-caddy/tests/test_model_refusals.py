"""The site model refuses, before any change, what would fail later (issue 12,
item 4), on the full stack as operators run it (playbooks/pipelit.yml: ufw,
Caddy, certificates from Pebble).

One bad input per refusal path (the site model, the playbook's pre-task,
the proxy_sites role's ACME settings check, and its checks on the host of
what the model cannot know: a missing certificate file, a key that is not
the certificate's, an upstream name that does not resolve; issue 19) alone
runs the real converge playbook and must fail, naming the site (or the
variable) and the field, with the Caddy configuration, the certificate stores
and the firewall rules byte-identical before and after. Every other refusal
of the model is a unit test (tests/unit/test_model_refusals.py): a call of
the filter, no host.

Then a Pipelit site that adds a route keeps its profile's WebSocket route.

These tests run before the shared full-stack suite (their path sorts first:
".../fullstack/tests/../../../pipelit-caddy" < ".../fullstack/tests/test_"),
and leave the scenario's own sites converged again for it.
"""

from __future__ import annotations

import concurrent.futures
import copy
import json
import re
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
# The runs at once (one per case): each is mostly Ansible's own start-up.
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


def own_files(certificate, key):
    return {"mode": "files", "certificate": certificate, "certificate_key": key}


# The host checks' files on the edge, outside STATE_PATHS: the HTTPS
# stand-in's certificate (molecule/shared/prepare.yml) and a key of another
# pair, made by the refused_runs fixture.
HOST_CHECK_DIR = "/opt/pipelit-edge-fixture"
FIXTURE_CERTIFICATE = f"{HOST_CHECK_DIR}/upstream.crt"
OTHER_KEY = f"{HOST_CHECK_DIR}/host-check-other.key"


# (id, extra vars of one run, the words its failure must say): one input per
# refusal path, each stopped before the firewall or the proxy ran a task. All
# the model's refusals are unit tests (tests/unit/test_model_refusals.py),
# each a direct call of the filter; these prove over the wire that a refusal
# leaves the host as it was.
CASES = [
    # The site model (the proxy_sites role's first task, the filter).
    (
        "names-a-b-and-a_b",
        sites(pipelit(), other("a-b"), other("a_b", domains=["ab.pipelit.test"])),
        "site 'a_b': name: becomes the same identifier as site 'a-b'",
    ),  # old: nginx "duplicate upstream"
    # The playbook's pre-task (playbooks/edge.yml, "Check the proxy choice").
    (
        "edge-proxy-Caddy",
        {"edge_proxy": "Caddy"},
        "edge_proxy must be exactly 'nginx' or 'caddy'",
    ),  # old: both proxy roles skipped, run green
    # A Jinja assert of the proxy_sites role, after the model: no filter to unit-test.
    (
        "acme-email-not-an-address",
        {"proxy_sites_acme_email": "admin"},
        "proxy_sites_acme_email must be an address such as admin@example.com (it is 'admin')",
    ),
    # What only the host can tell (issue 19): the proxy_sites role's host
    # checks (library/proxy_sites_host_check.py), on the edge, after the model
    # and before the firewall. Unit-tested on real files in
    # tests/unit/test_proxy_sites_host_check.py; here over the wire.
    (
        "tls-files-missing",
        sites(pipelit(tls=own_files(f"{HOST_CHECK_DIR}/missing.crt", f"{HOST_CHECK_DIR}/missing.key"))),
        f"site 'pipelit': tls.certificate: '{HOST_CHECK_DIR}/missing.crt' does not exist on the host",
    ),  # old: caddy validate "loading certificates: open ...: no such file or directory", after ufw
    (
        "tls-files-key-of-another-certificate",
        sites(pipelit(tls=own_files(FIXTURE_CERTIFICATE, OTHER_KEY))),
        f"site 'pipelit': tls.certificate_key: '{OTHER_KEY}' is not the key of the certificate '{FIXTURE_CERTIFICATE}' "
        "(their public keys differ)",
    ),  # old: caddy validate "private key does not match public key", after ufw
    (
        "upstream-name-unresolvable",
        sites(pipelit(upstreams={"app": {"servers": ["backend.invalid:8000"]}})),
        "site 'pipelit': upstreams.app.servers[0]: 'backend.invalid:8000' names backend.invalid, which does not resolve on the host (",
    ),  # old: nginx -t "host not found in upstream" after ufw; Caddy: 502 on every request
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
    # A key that is not the stand-in certificate's (openssl: prepare.yml made that pair with it).
    host.check_output(f"openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {OTHER_KEY}")
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


HOST_CHECK_CASES = ["tls-files-missing", "tls-files-key-of-another-certificate", "upstream-name-unresolvable"]


@pytest.mark.parametrize("case_id", HOST_CHECK_CASES)
def test_what_only_the_host_knows_is_refused_on_the_host_before_the_firewall(refused_runs, case_id):
    result = refused_runs[1][case_id][0]
    assert "TASK [proxy_sites : Check the sites' certificate files and upstream names on the host]" in result.output
    assert "Nothing was changed." in result.output, result.output
    # The edge's recap: not a task changed anything.
    assert re.search(rf"^{re.escape(EDGE_CONTAINER)}\s*:\s*ok=\d+\s+changed=0\s", result.output, re.M), result.output


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
