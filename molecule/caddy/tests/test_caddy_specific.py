"""What is Caddy's own, beside the shared proxy suite: what Caddy 2.6 cannot do
fails before any change, a reload closes open WebSockets (Caddy 2.6 does),
and the parts of the model the shared sites leave out (trusted proxies, allow
lists, a route's own body limit, tls mode files on the site's own ports, a
verified HTTPS upstream, no route for a path), on a variant of the sites that
is converged for this module and replaced by the scenario's own afterwards.

These tests run before the shared suite (molecule.yml says why), so the
reload they cause never meets the suite's own idle WebSocket.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "tests"))
from edge_testing import config_digest, curl, edge, probe, run_certificate_check, run_converge, wait_for_file  # noqa: E402,F401  (edge, probe: fixtures)
from edge_testing import valid_sites as scenario_sites  # noqa: E402

CONFIG_PATHS = ["/etc/caddy", "/etc/systemd/system/caddy.service.d"]
CADDY_ROOT = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"
# tls mode files: a certificate the test makes on the edge for www.pipelit.test.
OWN_TLS_DIR = "/etc/ssl/pipelit-edge-caddy-test"
# How long a WebSocket open during a reload waits for Caddy to close it.
RELOAD_WAIT_SECONDS = 120


@pytest.fixture(scope="module")
def probe_address(probe):
    return probe.check_output("hostname -i").split()[0]


def test_what_caddy_cannot_do_fails_before_any_change(edge):
    sites = scenario_sites()
    sites[0]["routes"] = [
        {"path": "/", "upstream": "app"},
        {"path": "/ws/", "upstream": "app", "websocket": True, "rate_limit": {"rate": "10r/s", "burst": 20}},
    ]
    sites[1]["trusted_proxies"] = ["192.0.2.1"]
    sites[1]["routes"] = [{"path": "/", "upstream": "aliasvault", "allow": ["10.0.0.0/8"]}]
    before = config_digest(edge, CONFIG_PATHS)
    result = run_converge({"proxy_sites": sites})
    assert result.returncode != 0
    assert "proxy_sites asks for what the caddy role cannot do" in result.output
    assert "site 'pipelit': routes[1].rate_limit: Caddy from the distribution has no rate limiting" in result.output
    assert "site 'aliasvault': routes[0].allow: with trusted_proxies, Caddy 2.6 can only match" in result.output
    # Stopped at the first task of the role: nothing installed, written or reloaded.
    assert "caddy : Install Caddy" not in result.output
    assert config_digest(edge, CONFIG_PATHS) == before


def test_a_port_in_use_fails_the_check_before_any_change(edge, probe):
    # Port 8443 is the AliasVault stand-in's on the edge: `caddy validate`
    # does not bind, the role's check sees the port taken.
    sites = scenario_sites()
    sites[1]["https_port"] = 8443
    before = config_digest(edge, CONFIG_PATHS)
    result = run_converge({"proxy_sites": sites})
    assert result.returncode != 0
    assert "Caddy could not listen where this configuration asks" in result.output
    assert 'port 8443 is in use by another program: "python3"' in result.output
    assert config_digest(edge, CONFIG_PATHS) == before
    assert curl(probe, "https://vault.test/api", ca=caddy_root(edge, probe)).status == 200


def test_after_a_refused_load_the_next_run_restarts_caddy(edge, probe):
    # A configuration Caddy refuses to load, put in place by hand (the role's
    # check would have stopped it): Caddy keeps its configuration, systemd is
    # not left waiting (caddyserver/caddy#7385), and the role's next run
    # restarts Caddy, which closes the sockets the refused load left open
    # (caddyserver/caddy#7175).
    root = caddy_root(edge, probe)
    edge.check_output("sed -i 's#^https://vault.test:443 {#https://vault.test:8443 {#' /etc/caddy/Caddyfile")
    reload = edge.run("timeout 60 systemctl reload caddy")
    assert reload.rc not in (0, 124), "the refused reload must fail, and at once"
    assert edge.run("systemctl is-active caddy").stdout.strip() == "active"
    assert edge.file("/run/caddy/load-failed").exists
    pid = edge.check_output("systemctl show -p MainPID --value caddy")

    result = run_converge({"proxy_sites": scenario_sites()})
    assert result.returncode == 0, result.output
    assert "RUNNING HANDLER [caddy : Restart Caddy]" in result.output
    assert edge.check_output("systemctl show -p MainPID --value caddy") != pid
    assert not edge.file("/run/caddy/load-failed").exists
    for port in (80, 443):
        assert len(edge.check_output(f"ss -Hltn '( sport = :{port} )'").splitlines()) == 1
    for _ in range(10):
        assert curl(probe, "https://vault.test/api", ca=root).status == 200


def caddy_root(edge, probe):
    path = "/tmp/caddy-test-root.pem"
    probe.run(f"cat > {path} <<'EOF'\n{edge.file(CADDY_ROOT).content_string}\nEOF")
    return path


def test_a_reload_closes_open_websockets(edge, probe):
    # Caddy 2.6 closes upgraded connections when it loads a configuration
    # (2.7 added stream_close_delay); clients must reconnect (README, Known
    # limits). `systemctl reload caddy` runs the role's reload command, as
    # the role's handler does.
    root = caddy_root(edge, probe)
    report = f"/tmp/ws-reload-{uuid.uuid4().hex}.json"
    probe.run(
        f"(python3 /usr/local/bin/ws_check.py 'wss://pipelit.test/ws/?token=reload-secret' "
        f"--cafile {root} --wait-close {RELOAD_WAIT_SECONDS} --opened {report}.open > {report}.part 2>&1; "
        f"mv {report}.part {report}) >/dev/null 2>&1 &"
    )
    wait_for_file(probe, f"{report}.open", 60, "the WebSocket did not open and echo")
    reload_started = float(edge.check_output("date +%s.%N; timeout 60 systemctl reload caddy >&2").split()[0])
    wait_for_file(probe, report, RELOAD_WAIT_SECONDS + 30, "no report from the WebSocket open during the reload")
    result = json.loads(probe.file(report).content_string)
    assert result["status"] == 101 and result["text_echo"] and result["binary_echo"]
    # Closed by the server once the reload began, however long it took.
    # Caddy 2.6 closes both halves with 1001 ("going away"); clients have also
    # been seen to get 1002 ("protocol error"), likely the backend's answer to
    # the unmasked close frame 2.6.2 sends it (caddyserver/caddy#5199).
    assert result["error"] is None and result["closed_at"] >= reload_started - 1, (result, reload_started)
    assert result["close_code"] in (1001, 1002), result
    # New WebSockets work at once.
    again = probe.run(shlex.join(["python3", "/usr/local/bin/ws_check.py", "wss://pipelit.test/ws/?token=again", "--cafile", root]))
    assert again.rc == 0, again.stdout


@pytest.fixture(scope="module")
def variant(edge, probe, probe_address):
    """Converges the variant sites; restores the scenario's sites afterwards."""
    edge.check_output(
        f"mkdir -p {OWN_TLS_DIR} && cd {OWN_TLS_DIR} && "
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
        "-subj /CN=www.pipelit.test -addext subjectAltName=DNS:www.pipelit.test "
        "-keyout privkey.pem -out fullchain.pem 2>/dev/null && chgrp caddy privkey.pem && chmod 0640 privkey.pem"
    )
    cas = {}
    for name, path in {"caddy": CADDY_ROOT, "own": f"{OWN_TLS_DIR}/fullchain.pem"}.items():
        cas[name] = f"/tmp/caddy-test-{name}.pem"
        probe.run(f"cat > {cas[name]} <<'EOF'\n{edge.file(path).content_string}\nEOF")

    sites = scenario_sites()
    pipelit, vault = sites
    pipelit["domains"] = ["pipelit.test"]
    pipelit["trusted_proxies"] = [probe_address]
    vault["upstreams"] = {
        "aliasvault": {"servers": ["127.0.0.1:8443"], "scheme": "https", "verify": False},
        # The stand-in's certificate names no host (CN only): verification must refuse it.
        "strict": {
            "servers": ["127.0.0.1:8443"],
            "scheme": "https",
            "verify": True,
            "sni": "aliasvault-internal",
            "ca_file": "/opt/pipelit-edge-fixture/upstream.crt",
            "keepalive": 0,
        },
    }
    vault["routes"] = [
        {"path": "/", "upstream": "aliasvault", "websocket": True},
        # AliasVault's admin is a Blazor app: its route keeps WebSocket
        # upgrades (the profile's verify_websocket_paths, /admin/_blazor,
        # must stay checkable, or the model refuses the site).
        {"path": "/admin/", "upstream": "aliasvault", "allow": ["192.0.2.0/24"], "websocket": True},
        {"path": "/api/", "upstream": "aliasvault", "max_body_size": "1k"},
        {"path": "/strict/", "upstream": "strict"},
    ]
    own = {
        "name": "www",
        "domains": ["www.pipelit.test"],
        "http_port": 8081,
        "https_port": 8444,
        "tls": {"mode": "files", "certificate": f"{OWN_TLS_DIR}/fullchain.pem", "certificate_key": f"{OWN_TLS_DIR}/privkey.pem"},
        "upstreams": {"app": {"servers": ["127.0.0.1:8000"]}},
        "routes": [{"path": "/app/", "upstream": "app"}],
    }
    result = run_converge({"proxy_sites": [pipelit, vault, own]})
    assert result.returncode == 0, result.output

    yield {"cas": cas}

    restored = run_converge({"proxy_sites": scenario_sites()})
    edge.run(f"rm -rf {OWN_TLS_DIR}")
    assert restored.returncode == 0, restored.output


def test_a_trusted_proxy_names_the_client(variant, probe):
    # The probe is the site's trusted proxy: the last address it forwards is the client's.
    seen = curl(probe, "https://pipelit.test/api/x", "-H", "X-Forwarded-For: 198.51.100.7, 203.0.113.9", ca=variant["cas"]["caddy"]).json()
    assert seen["headers"]["x-forwarded-for"] == "203.0.113.9"
    assert seen["headers"]["x-real-ip"] == "203.0.113.9"


def test_without_forwarded_for_a_trusted_proxy_is_the_client(variant, probe, probe_address):
    seen = curl(probe, "https://pipelit.test/api/x", ca=variant["cas"]["caddy"]).json()
    assert seen["headers"]["x-forwarded-for"] == probe_address
    assert seen["headers"]["x-real-ip"] == probe_address


def test_an_allow_list_refuses_everyone_else(variant, probe):
    response = curl(probe, "https://vault.test/admin/x", ca=variant["cas"]["caddy"])
    assert response.status == 403
    assert response.headers["strict-transport-security"] == "max-age=63072000"
    assert curl(probe, "https://vault.test/other", ca=variant["cas"]["caddy"]).status == 200


def test_a_route_has_its_own_body_limit(variant, probe):
    probe.run("head -c 2048 /dev/zero > /tmp/body-2k")
    small_route = curl(probe, "https://vault.test/api/up", "--data-binary", "@/tmp/body-2k", ca=variant["cas"]["caddy"])
    assert small_route.status == 413
    site_limit = curl(probe, "https://vault.test/up", "--data-binary", "@/tmp/body-2k", ca=variant["cas"]["caddy"])
    assert site_limit.status == 200
    assert site_limit.json()["body_bytes"] == 2048


def test_tls_files_on_the_sites_own_ports(variant, probe):
    redirect = curl(probe, "http://www.pipelit.test:8081/app/x?y=1")
    assert redirect.status == 308
    assert redirect.redirect == "https://www.pipelit.test:8444/app/x?y=1"
    response = curl(probe, "https://www.pipelit.test:8444/app/x?y=1", ca=variant["cas"]["own"])
    assert response.status == 200
    assert response.json()["target"] == "/app/x?y=1"
    # The catch-all covers the site's own HTTP port too: a name no site has
    # gets the connection closed (curl: empty reply), no redirect.
    unknown = probe.run("curl -sS -o /dev/null -w '%{http_code}' -H 'Host: evil.example' http://www.pipelit.test:8081/")
    assert (unknown.rc, unknown.stdout) == (52, "000")


def test_a_path_without_a_route_is_not_found(variant, probe):
    assert curl(probe, "https://www.pipelit.test:8444/other", ca=variant["cas"]["own"]).status == 404


def test_a_verified_upstream_must_present_a_valid_certificate(variant, probe):
    assert curl(probe, "https://vault.test/strict/x", ca=variant["cas"]["caddy"]).status == 502


# Renewals that cannot fail silently (the certificate_alerts role, no alert
# command here: the journal is the alert). The scenario's own sites are
# self_signed, which the daily check leaves out; www is tls mode files with a
# certificate made above that expires in two days.
def test_the_daily_check_alerts_for_a_certificate_near_expiry(variant, edge):
    rc, journal = run_certificate_check(edge, 3)
    assert rc != 0
    assert "certificate of site 'www' needs attention (fewer than 3 days left" in journal
    assert re.search(r"www\.pipelit\.test: expires in [12]\.\d days", journal), journal
    assert "site 'pipelit'" not in journal and "site 'aliasvault'" not in journal  # self_signed: not checked
    # The default is a sixth of the certificate's own lifetime (8 hours of
    # these 2 days): this fresh one is healthy by it.
    rc, journal = run_certificate_check(edge)
    assert rc == 0, journal
    assert "every checked certificate has at least 1/6 of its lifetime left" in journal


def test_the_daily_check_is_quiet_above_the_threshold(variant, edge):
    rc, journal = run_certificate_check(edge, 1)
    assert rc == 0, journal
    assert "needs attention" not in journal
    assert "every checked certificate has at least 1 days left" in journal


def test_a_failed_caddy_obtain_is_reported_by_the_daily_check(variant, edge):
    # A real failure: an acme site whose ACME server does not answer (no
    # Pebble in this scenario; acme.test is the probe). The converge fails
    # waiting for the certificate; Caddy keeps trying and logs each failure.
    sites = scenario_sites()
    sites[0]["domains"] = ["pipelit.test"]
    down = {
        "name": "acmedown",
        "domains": ["acme-down.pipelit.test"],
        "tls": {"mode": "acme"},
        "upstreams": {"app": {"servers": ["127.0.0.1:8000"]}},
        "routes": [{"path": "/", "upstream": "app"}],
    }
    result = run_converge(
        {
            "proxy_sites": [sites[0], sites[1], down],
            "proxy_sites_acme_email": "edge-tests@pipelit.test",
            "proxy_sites_acme_directory_url": "https://acme.test:14000/dir",
            "caddy_certificate_wait_seconds": 6,
        }
    )
    assert result.returncode != 0
    assert "site 'acmedown' domain acme-down.pipelit.test" in result.output
    # Caddy's first failed attempt is in its journal (it may come after the
    # role stopped waiting, on a loaded machine), then the daily check runs.
    edge.check_output(
        "timeout 120 sh -c 'until journalctl -u caddy -o cat --no-pager | grep tls.obtain "
        "| grep acme-down.pipelit.test | grep -q error; do sleep 1; done'"
    )
    rc, journal = run_certificate_check(edge)
    assert rc != 0
    # The run failed in the caddy role, before the alerts' role could learn
    # the new site: the domain is named, without its site.
    assert "Caddy certificate obtain FAILED for domain acme-down.pipelit.test" in journal, journal
    assert "acme.test" in journal  # Caddy's own reason
