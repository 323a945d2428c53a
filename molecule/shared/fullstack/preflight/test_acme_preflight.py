"""The ACME pre-flight (issue 14, item 2; roles/acme_preflight) on the full
stack as operators run it: the scenario's real converge playbook, its proxy
(PIPELIT_EDGE_PROXY) and Pebble on the probe, which also runs the checks
(acme_preflight_controller, as in inventories/demo).

The scenario network gives the edge four names (pipelit.test,
www.pipelit.test, vault.test, extra.test) and the probe one (acme.test). A site asking for
acme.test must fail before the CA is asked, naming the address it resolved
to (and a --check preview must fail the same way); a name of the edge whose
port 80 answers with something else must fail naming what answered; with
acme_preflight_enabled false the same bad domain gets past the pre-flight to
the proxy.

Pebble's log names no identifier when it adds an order ("POST /order-plz",
"Added order ..."); it names the domain when it validates it ('Value:"NAME"').
Nothing else asks Pebble for anything while these runs go, so "no order" is:
no order-plz line and no line naming the domain since the run started.

Each case leaves the scenario's own sites converged, as the suite found them.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
import edge_testing  # noqa: E402
from edge_testing import SCENARIO, edge, probe  # noqa: E402,F401  (edge, probe: fixtures)

PROXY = os.environ["PIPELIT_EDGE_PROXY"]
APP = os.environ["PIPELIT_EDGE_APP"]
# The application's site in inventories/demo, and a name of the edge it does not use.
SITES = {
    "pipelit": (
        {"name": "pipelit", "profile": "pipelit", "domains": ["pipelit.test", "www.pipelit.test"], "tls": {"mode": "acme"}},
        "vault.test",
    ),
    "aliasvault": ({"name": "aliasvault", "profile": "aliasvault", "domains": ["vault.test"], "tls": {"mode": "acme"}}, "pipelit.test"),
}
SITE, UNUSED_EDGE_NAME = SITES[APP]
# The probe's own name on the scenario network (where Pebble runs).
ELSEWHERE = "acme.test"
# Where the proxies serve the token from (nginx_preflight_webroot, caddy_preflight_webroot).
PREFLIGHT_DIR = "/var/lib/pipelit-edge/acme-preflight/.well-known/pipelit-edge-preflight"
# What a refused run must leave as it was: the proxy's configuration and every certificate store.
STATE_PATHS = {
    "nginx": ["/etc/nginx", "/etc/letsencrypt", "/etc/ssl/pipelit-edge"],
    "caddy": ["/etc/caddy", "/var/lib/caddy/.local/share/caddy/certificates", "/etc/ssl/pipelit-edge"],
}[PROXY]
PROXY_TASKS = {"nginx": ["TASK [nginx :", "TASK [certbot :"], "caddy": ["TASK [caddy :"]}[PROXY]
PREFLIGHT_CHECK_TASK = "TASK [acme_preflight : Resolve each pending domain and fetch the token from the controller]"


def address_of(role):
    """A container's address on the scenario network."""
    import docker

    container = docker.from_env().containers.get(f"{role}-{SCENARIO}")
    return container.attrs["NetworkSettings"]["Networks"][f"pipelit-edge-{SCENARIO}"]["IPAddress"]


EDGE_IP = address_of("edge")
PROBE_IP = address_of("probe")


def site(name, domains):
    """A site of the application's profile, in tls mode acme."""
    return {**SITE, "name": name, "domains": domains}


def state_digest(edge):
    paths = " ".join(STATE_PATHS)
    return edge.check_output(
        f'{{ for path in {paths}; do [ -e "$path" ] || continue; '
        'find "$path" -type f -print0 | sort -z | xargs -0 -r sha256sum; '
        "find \"$path\" -type l -printf '%p -> %l\\n' | sort; done; } | sha256sum"
    )


def certbot_runs(edge):
    """certbot's log files with their sizes and times: every certbot run writes one."""
    return edge.run("ls -l --time-style=full-iso /var/log/letsencrypt 2>/dev/null").stdout


def pebble_log(probe, since=None):
    """Pebble's journal, since a time (seconds since the epoch) or all of it."""
    window = f" --since @{int(since)}" if since else ""
    return probe.check_output(f"journalctl -u pebble -o cat --no-pager{window}")


def run(extra_vars, *options):
    """The converge playbook with these extra vars, and when it started. The
    firewall is left out (--skip-tags firewall, as operators may run it): the
    scenario's converge opened port 80 already, and ufw's tasks are half of a
    run's time. Its start is a whole second after the previous run's last
    entries in Pebble's journal (pebble_log reads whole seconds)."""
    time.sleep(1)
    started = time.time()
    result = edge_testing.run_playbook(
        edge_testing.CONVERGE, "--skip-tags", "firewall", *options, extra_vars=extra_vars, result_format="json"
    )
    return result, started


def curl_status(probe, host, path):
    """(curl's exit code, status, body) of a plain-HTTP GET to the edge's address with this Host."""
    result = probe.run(
        shlex.join(["curl", "-sS", "--max-time", "20", "-H", f"Host: {host}", "-w", "\n%{http_code}", f"http://{EDGE_IP}{path}"])
    )
    body, _, status = result.stdout.rpartition("\n")
    return result.rc, int(status or 0), body


def test_pebble_logs_the_orders_and_domains_it_is_asked_for(probe):
    # The scenario's own converge asked for the site's domains: the lines the
    # "no order" checks below look for do appear when a client orders.
    log = pebble_log(probe)
    assert "POST /order-plz" in log
    for domain in SITE["domains"]:
        assert f'Value:"{domain}"' in log


def test_the_proxy_serves_a_preflight_token_for_any_host_and_nothing_else_there(edge, probe):
    token = uuid.uuid4().hex
    edge.check_output(f"install -d -m 0755 {PREFLIGHT_DIR} && printf %s {token} > {PREFLIGHT_DIR}/{token}")
    try:
        for host in (SITE["domains"][0], UNUSED_EDGE_NAME, "evil.example"):
            assert curl_status(probe, host, f"/.well-known/pipelit-edge-preflight/{token}") == (0, 200, token), host
        # A file that is not there: a site's name still redirects, any other
        # name is still closed without an answer (curl's "empty reply", 52).
        rc, status, _ = curl_status(probe, SITE["domains"][0], "/.well-known/pipelit-edge-preflight/nope")
        assert (rc, status) == (0, 308)
        rc, status, _ = curl_status(probe, "evil.example", "/.well-known/pipelit-edge-preflight/nope")
        assert (rc, status) == (52, 0)
    finally:
        edge.run(f"rm -f {PREFLIGHT_DIR}/{token}")


@pytest.fixture(scope="module")
def elsewhere_run(edge, probe):
    """A site whose domain is the probe's name, beside the scenario's own."""
    before, certbot_before = state_digest(edge), certbot_runs(edge)
    result, started = run({"proxy_sites": [SITE, site("elsewhere", [ELSEWHERE])]})
    time.sleep(1)
    return result, before, state_digest(edge), certbot_before, certbot_runs(edge), pebble_log(probe, started)


def test_a_domain_that_resolves_elsewhere_fails_naming_what_it_resolved_to(elsewhere_run):
    result = elsewhere_run[0]
    assert result.returncode != 0, result.output
    assert PREFLIGHT_CHECK_TASK in result.output
    message = f"site 'elsewhere': domain {ELSEWHERE} resolves to [{PROBE_IP}], not this host ("
    assert message in result.output, result.output
    line = next(line for line in result.output.splitlines() if message in line)
    assert EDGE_IP in line.split(message, 1)[1]
    # The scenario's own domains have their certificates: not checked, not named.
    assert f"domain {SITE['domains'][0]}" not in result.output


def test_a_domain_that_resolves_elsewhere_never_reaches_the_proxy_or_the_ca(edge, elsewhere_run):
    result, before, after, certbot_before, certbot_after, pebble_since = elsewhere_run
    assert not any(task in result.output for task in PROXY_TASKS), result.output
    assert before == after, "the proxy's configuration or certificates changed"
    assert certbot_before == certbot_after, "certbot ran"
    assert "POST /order-plz" not in pebble_since, pebble_since
    assert f'Value:"{ELSEWHERE}"' not in pebble_since, pebble_since
    # Nothing was left behind on the host.
    assert edge.run(f"ls -A {PREFLIGHT_DIR}").stdout.strip() == ""
    assert edge.run("systemctl is-active pipelit-edge-acme-preflight-80.service").stdout.strip() != "active"


@pytest.fixture(scope="module")
def foreign_listener_run(edge, probe):
    """The proxy stopped and another web server on port 80 (an operator's old
    one, say), then a new site on a name of the edge."""
    edge.check_output(
        f"systemctl stop {PROXY} && install -d /srv/foreign-web && "
        "systemd-run --unit=foreign-web --collect python3 -m http.server 80 --directory /srv/foreign-web && "
        "timeout 60 sh -c \"until ss -ltnH 'sport = :80' | grep -q LISTEN; do sleep 0.2; done\""
    )
    before = state_digest(edge)
    try:
        result, started = run({"proxy_sites": [SITE, site("newsite", [UNUSED_EDGE_NAME])]})
        time.sleep(1)
        return result, before, state_digest(edge), pebble_log(probe, started)
    finally:
        edge.check_output(f"systemctl stop foreign-web; systemctl start {PROXY}")


def test_a_port_80_that_answers_something_else_fails_naming_what_answered(foreign_listener_run):
    result, before, after, pebble_since = foreign_listener_run
    assert result.returncode != 0, result.output
    message = (
        f"site 'newsite': domain {UNUSED_EDGE_NAME} resolves to this host, but "
        f"http://{UNUSED_EDGE_NAME}/.well-known/pipelit-edge-preflight/"
    )
    assert message in result.output, result.output
    line = next(line for line in result.output.splitlines() if message in line)
    assert "answered 404 (Server: SimpleHTTP/" in line and f"from {EDGE_IP}, not the token" in line, line
    assert not any(task in result.output for task in PROXY_TASKS)
    assert before == after
    assert "POST /order-plz" not in pebble_since and f'Value:"{UNUSED_EDGE_NAME}"' not in pebble_since


def test_check_mode_resolves_the_new_domains_too(edge):
    # --check places no token, but a DNS record that a real run would stop at
    # already fails the preview, before the proxy's tasks.
    before = state_digest(edge)
    result, _ = run({"proxy_sites": [SITE, site("elsewhere", [ELSEWHERE])]}, "--check")
    assert result.returncode != 0, result.output
    assert f"site 'elsewhere': domain {ELSEWHERE} resolves to [{PROBE_IP}], not this host (" in result.output
    assert "TASK [acme_preflight : Place this run's token]" not in result.output
    assert not any(task in result.output for task in PROXY_TASKS)
    assert state_digest(edge) == before


def test_with_the_preflight_disabled_the_same_domain_gets_past_it(edge):
    # Split-horizon DNS: the operator turns the pre-flight off. Previewed with
    # --check (a real run would then ask the CA, and fail its validation): no
    # pre-flight task runs, and the play goes on to the proxy, which would
    # write the new site.
    before = state_digest(edge)
    result, _ = run({"proxy_sites": [SITE, site("elsewhere", [ELSEWHERE])], "acme_preflight_enabled": False}, "--check", "--diff")
    # Skipped tasks are not shown (display_skipped_hosts: false): not even
    # the pre-flight's read of the host ran (only the role's argument check).
    assert "TASK [acme_preflight : Read which acme domains" not in result.output, result.output
    assert PREFLIGHT_CHECK_TASK not in result.output
    assert PROXY_TASKS[0] in result.output, result.output
    assert state_digest(edge) == before
    if PROXY == "nginx":
        # The nginx role's own preview of a new acme site stops at its
        # placeholder certificate (whose directory --check does not create):
        # past the pre-flight, inside the proxy role.
        assert "(item=elsewhere)" in result.output.split("TASK [nginx :", 1)[1], result.output
    else:
        assert result.returncode == 0, result.output
        assert f"http://{ELSEWHERE}:80" in result.output, result.output


# Last in this module: Caddy keeps the certificate it obtains here in its
# storage, so the name would no longer be pending for the cases above.
@pytest.fixture(scope="module")
def older_proxy_run(edge, probe):
    """The running proxy as a version of these roles from before the
    pre-flight left it (its live configuration does not serve the pre-flight
    path), then a new site on a name of the edge. Afterwards the scenario's
    own sites again."""
    live = {"nginx": "/etc/nginx/nginx.conf /etc/nginx/sites-available/pipelit-edge-*.conf", "caddy": "/etc/caddy/Caddyfile"}[PROXY]
    edge.check_output(f"sed -i 's#/.well-known/pipelit-edge-preflight/#/.well-known/older-version/#' {live} && systemctl reload {PROXY}")
    # The control: a token in the pre-flight directory is no longer served
    # (once the reload took: nginx's old workers serve until the master has
    # started new ones).
    token = uuid.uuid4().hex
    edge.check_output(f"install -d -m 0755 {PREFLIGHT_DIR} && printf %s {token} > {PREFLIGHT_DIR}/{token}")
    try:
        deadline = time.monotonic() + 30
        while curl_status(probe, UNUSED_EDGE_NAME, f"/.well-known/pipelit-edge-preflight/{token}")[1] == 200:
            assert time.monotonic() < deadline, "the older configuration still serves the pre-flight path"
            time.sleep(0.5)
    finally:
        edge.run(f"rm -f {PREFLIGHT_DIR}/{token}")
    try:
        result, started = run({"proxy_sites": [SITE, site("upgraded", [UNUSED_EDGE_NAME])]})
        time.sleep(1)
        return result, pebble_log(probe, started), edge.run(f"grep -c pipelit-edge-preflight {live}").stdout
    finally:
        restored, _ = run({"proxy_sites": [SITE]})
        assert restored.returncode == 0, restored.output


def test_a_proxy_from_before_the_preflight_gets_the_dns_check_only_once(older_proxy_run):
    # Upgrading: the proxy holding port 80 cannot serve the token yet (this
    # run's proxy role adds the path), so the pre-flight checks DNS only,
    # says so, and the run goes on to a real certificate.
    result, pebble_since, live_markers = older_proxy_run
    assert result.returncode == 0, result.output
    words = " ".join(result.output.split())
    assert (
        f"ACME pre-flight: {PROXY} on port 80 does not serve /.well-known/pipelit-edge-preflight/ yet" in words
        and f"for {UNUSED_EDGE_NAME} only DNS is checked this run" in words
    ), result.output
    assert PREFLIGHT_CHECK_TASK in result.output
    assert f'Value:"{UNUSED_EDGE_NAME}"' in pebble_since, pebble_since
    # The run put the path back into the live configuration.
    assert sum(int(count.rsplit(":", 1)[-1]) for count in live_markers.split()) > 0, live_markers
