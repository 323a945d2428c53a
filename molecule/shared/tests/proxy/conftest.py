"""The proxy verification suite: one suite for every proxy flavour.

Checks travel over the scenario network from the probe container, with real
clients (curl, openssl, websockets), to the edge host the scenario converged.
PIPELIT_EDGE_PROXY names the flavour; FLAVOURS holds the few facts that
differ between them (where the access log is, what a broken change looks like).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from edge_testing import config_digest as digest_of  # noqa: E402
from edge_testing import curl, edge, probe, run_converge, tried_again_over_http3, valid_sites  # noqa: E402,F401  (fixtures, and helpers for the tests)

PROXY = os.environ.get("PIPELIT_EDGE_PROXY", "nginx")
DISTRO = os.environ.get("PIPELIT_EDGE_DISTRO", "debian12")

# HTTP/3: the sites inherit proxy_sites_http3: true (vars/sites.yml). Caddy
# serves it everywhere, nginx from Debian 13 (1.22 has no HTTP/3 module).
HTTP3_SERVED = PROXY == "caddy" or DISTRO != "debian12"
# The probe's Debian is the edge's, and Debian 13's curl speaks HTTP/3:
# where both hold, every check of the suite that takes a protocol runs over
# HTTP/3 as well.
HTTP3_CHECKED = HTTP3_SERVED and DISTRO != "debian12"
# curl over HTTP/3 only, as a browser that learned Alt-Svc tries it, 10 s a
# try; curl() and tried_again_over_http3 (edge_testing) try an unanswered
# request again in a new connection.
HTTP3_CURL = ["--http3-only", "--max-time", "10"]

# The sites of molecule/shared/vars/sites.yml, by the domains the edge
# container answers to on the scenario network.
PIPELIT = "pipelit.test"
VAULT = "vault.test"
SITE_OF = {PIPELIT: "pipelit", "www.pipelit.test": "pipelit", VAULT: "aliasvault"}

FLAVOURS = {
    "nginx": {
        "access_log": "/var/log/nginx/access.log",
        # Where each site's self-signed certificate is: the probe trusts it.
        "trust_anchor": "/etc/ssl/pipelit-edge/{site}/fullchain.pem",
        # Everything whose change would change what the edge serves.
        "config_paths": ["/etc/nginx", "/etc/ssl/pipelit-edge"],
        # A change to the pipelit site that the model accepts but the proxy's
        # own check rejects, and the proxy's message for it (with the role's
        # host checks off: they refuse it first).
        "broken_change": {"upstreams": {"app": {"servers": ["backend.invalid:8000"]}}},
        "broken_message": "host not found in upstream",
        # Every log the proxy writes: files under these, and its unit's journal.
        "log_dirs": ["/var/log/nginx"],
        "unit": "nginx",
        # What sslyze's Mozilla check may find, and only that: a certificate
        # that signs itself is trusted by nothing, not even when sslyze is
        # given it as a root (strict validators want an authority key
        # identifier in it), so its path validation fails.
        "sslyze_tolerated": {"certificate_path_validation"},
    },
    "caddy": {
        "access_log": "/var/log/caddy/access.log",
        # Caddy's own CA (tls internal) signs every self_signed site: its root.
        "trust_anchor": "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt",
        "config_paths": ["/etc/caddy", "/etc/systemd/system/caddy.service.d"],
        # The operator switches to their own certificate before the files are
        # on the host: the model accepts the paths, `caddy validate` cannot load them.
        "broken_change": {
            "tls": {"mode": "files", "certificate": "/etc/ssl/pipelit/fullchain.pem", "certificate_key": "/etc/ssl/pipelit/privkey.pem"}
        },
        "broken_message": "loading certificates: open /etc/ssl/pipelit/fullchain.pem: no such file or directory",
        "log_dirs": ["/var/log/caddy"],
        "unit": "caddy",
        # Caddy's own CA signs a chain that verifies against its root.
        "sslyze_tolerated": set(),
    },
}
FLAVOUR = FLAVOURS[PROXY]


@pytest.fixture(scope="session")
def probe_address(probe):
    """The probe's address on the scenario network: what the edge should report."""
    return probe.check_output("hostname -i").split()[0]


@pytest.fixture(scope="session")
def ca_files(edge, probe):
    """Each site's certificate, copied from the edge, as the probe's trust anchor."""
    paths = {}
    for site in sorted(set(SITE_OF.values())):
        pem = edge.file(FLAVOUR["trust_anchor"].format(site=site)).content_string
        assert "BEGIN CERTIFICATE" in pem
        path = f"/tmp/ca-{site}.pem"
        probe.run(f"cat > {path} <<'EOF'\n{pem}\nEOF")
        paths[site] = path
    return paths


@pytest.fixture(scope="session")
def fetch(probe, ca_files):
    """fetch(url, *curl options): over HTTPS, trusting the site's own certificate."""

    def _fetch(url, *options):
        host = url.split("/")[2].split(":")[0]
        return curl(probe, url, *options, ca=ca_files[SITE_OF[host]])

    return _fetch


def in_background(probe, name, command, within):
    """Starts `command` on the probe in the background, its standard output
    going to a report (JSON); returns a function that waits for the report,
    up to `within` seconds from now, and returns it (read once, kept). The
    name is what a failure calls it."""
    # A name of its own, so a job left over from an earlier session cannot
    # touch this session's report.
    report = f"/tmp/background-{uuid.uuid4().hex}.json"
    probe.run(f"({command} > {report}.part 2>&1; mv {report}.part {report}) >/dev/null 2>&1 &")
    deadline = time.monotonic() + within
    seen = {}

    def wait():
        # Looks at least once: on a loaded machine the first caller may come
        # after the deadline, with the report long written.
        while "report" not in seen:
            if probe.file(report).exists:
                seen["report"] = json.loads(probe.file(report).content_string)
            elif time.monotonic() < deadline:
                time.sleep(2)
            else:
                break
        if "report" not in seen:
            pytest.fail(f"no report from {name} within {within} s")
        return seen["report"]

    return wait


# nginx closes a silent proxied connection after 60 s unless told otherwise
# (proxy_read_timeout): the idle WebSocket stays silent a little longer.
IDLE_SECONDS = 65


@pytest.fixture(scope="session", autouse=True)
def idle_socket(probe, ca_files):
    """A WebSocket that goes quiet for IDLE_SECONDS, opened when the session
    starts so the other checks run while it waits; yields a function that
    waits for its report."""
    return in_background(
        probe,
        "the idle WebSocket",
        f"python3 /usr/local/bin/ws_check.py 'wss://{PIPELIT}/ws/?token=idle-secret' --cafile {ca_files['pipelit']} --idle {IDLE_SECONDS}",
        IDLE_SECONDS + 60,
    )


# The read timeout of Pipelit's routes but /ws/ (the model's default for
# routes[].read_timeout): a backend silent for longer gets a 504 from the edge.
READ_TIMEOUT_SECONDS = 60
# The hung request's token: test_upstream_failures looks for it in the logs.
HUNG_REQUEST_TOKEN = f"leak-timeout-{secrets.token_hex(6)}"


@pytest.fixture(scope="session", autouse=True)
def hung_request(edge, probe, ca_files):
    """A request the Pipelit stand-in never answers (X-Echo-Stall, as a hung
    process: echo_backend.py), sent when the session starts so that the edge's
    read timeout passes while the other checks run; yields a function that
    waits for its report: the status, the seconds it took, and when on the
    edge's clock it was sent (for the journal)."""
    sent_at = edge.check_output("date '+%Y-%m-%d %H:%M:%S'")
    command = shlex.join(
        [
            "curl",
            "-sS",
            "--max-time",
            str(READ_TIMEOUT_SECONDS + 30),
            "-o",
            "/dev/null",
            "-w",
            '{"status": %{http_code}, "seconds": %{time_total}}',
            "--cacert",
            ca_files["pipelit"],
            "-H",
            f"X-Echo-Stall: {READ_TIMEOUT_SECONDS + 30}",
            f"https://{PIPELIT}/api/slow?token={HUNG_REQUEST_TOKEN}",
        ]
    )
    wait = in_background(probe, "the hung request", command, READ_TIMEOUT_SECONDS + 90)
    return lambda: {**wait(), "sent_at": sent_at}


def ws_check(probe, url, ca, *options):
    """Runs the WebSocket checker on the probe; (exit code, its JSON report)."""
    result = probe.run(shlex.join(["python3", "/usr/local/bin/ws_check.py", url, "--cafile", ca, *options]))
    return result.rc, json.loads(result.stdout or "{}")


def config_digest(edge):
    """One digest of every file the edge serves from."""
    return digest_of(edge, FLAVOUR["config_paths"])


@pytest.fixture(scope="session")
def edge_address(probe):
    """The edge's address on the scenario network: what a client that has no
    name for it (a scanner) connects to."""
    return probe.check_output("getent hosts pipelit.test").split()[0]


@pytest.fixture(scope="session")
def after_background_checks(idle_socket, hung_request):
    """For checks that stop the backend or reload the proxy: they wait until
    the suite's idle WebSocket and hung request have made their reports,
    which they would break."""
    idle_socket()
    hung_request()


def pytest_collection_modifyitems(items):
    """Checks that wait for the background checks (after_background_checks)
    run last, in their own order: the other checks fill the idle minute
    instead of waiting for it. The others neither reload the proxy nor stop
    the backend: a check that does must ask for after_background_checks."""
    waiting = [item for item in items if "after_background_checks" in getattr(item, "fixturenames", ())]
    items[:] = [item for item in items if item not in waiting] + waiting
