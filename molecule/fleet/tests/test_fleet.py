"""A third application from the inventory alone, and a fleet in one run
(issue 14, items 3 and 4), through the real playbooks from the controller.

After converge, edge-fleet-2 serves `live` (a profile and a site in
inventory/group_vars/live_edge.yml and nowhere else), edge-fleet-1 is broken
(a foreign program holds its port 443, molecule/fleet/prepare.yml) and
edge-fleet-3 (AliasVault with Caddy) has never been deployed. The tests run in
file order: each leaves the state the next one starts from. Each playbook run
costs a minute or more on a loaded machine, so there are few: a refused run,
the failing serial run, the parallel run, and verify.yml over all three.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import testinfra
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "tests"))
import edge_testing  # noqa: E402

PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
EDGE_PLAYBOOK = PROJECT / "playbooks" / "edge.yml"
VERIFY = PROJECT / "playbooks" / "verify.yml"
BROKEN, LIVE, FRESH = "edge-fleet-1", "edge-fleet-2", "edge-fleet-3"
# What a run changes on an edge: proxies, certificates, the firewall.
STATE_PATHS = "/etc/nginx /etc/letsencrypt /etc/ssl/pipelit-edge /etc/caddy /etc/ufw"


def host(name):
    return testinfra.get_host(f"docker://{name}")


def run(playbook, *options, **extra_vars):
    """The playbook on the scenario's inventory, results as unwrapped JSON."""
    return edge_testing.run_playbook(playbook, *options, extra_vars=extra_vars, result_format="json")


def digest(name):
    return host(name).check_output(f"find {STATE_PATHS} -type f -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum | sha256sum")


def recap(output):
    """Host name -> its PLAY RECAP counters."""
    part = output.split("PLAY RECAP", 1)[1]
    return {
        m.group(1): dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2)))
        for m in re.finditer(r"^(\S+)\s+:\s+(.*)$", part, re.M)
    }


def summary(output):
    """Host name -> its state in the pipelit_edge_summary lines after the recap."""
    part = output.split("pipelit-edge: what happened to each host", 1)[1]
    return dict(re.findall(r"^  (edge-fleet-\d)\s+(OK|CHANGED|FAILED|UNREACHABLE|NOT RUN)\b", part, re.M))


def passed_rows(output):
    return set(re.findall(r'^\s*"PASS\s+(\S+)\s+(\S+)\s+(\S+)', output, re.M))


def has_package(name, package):
    return host(name).run(f"dpkg-query -W -f '${{Status}}' {package}").stdout.startswith("install ok installed")


def test_the_third_application_needs_nothing_outside_the_inventory():
    # No role, playbook or built-in profile knows `live`: the converge that
    # deployed it read it from the scenario's inventory only.
    # (READMEs may quote the scenario as an example; code and data may not.)
    found = subprocess.run(
        [
            "grep",
            "-rlw",
            "--include=*.yml",
            "--include=*.py",
            "--include=*.j2",
            "--include=*.cfg",
            "-e",
            "live_edge",
            "-e",
            "live.test",
            "roles",
            "playbooks",
            "inventories",
            "ansible.cfg",
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.stdout == "", found.stdout
    defaults = yaml.safe_load((PROJECT / "roles/proxy_sites/defaults/main.yml").read_text())
    assert set(defaults["proxy_sites_profiles"]) == {"pipelit", "aliasvault"}
    assert defaults["proxy_sites_extra_profiles"] == {}


def test_the_live_sites_plain_route_refuses_websocket_upgrades():
    # Only /live/ passes upgrades: a handshake under / reaches the app as a
    # plain request (200, not 101). So verify.yml's WebSocket check (in the
    # last test) passes because it opens the profile's path, /live/updates.
    def upgrade(path):
        return (
            host("probe-fleet")
            .run(
                "curl -sS --http1.1 --max-time 5 -o /dev/null -w '%{http_code}' --cacert /usr/local/share/pebble-roots.pem "
                "-H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' "
                f"-H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' https://live.test{path}"
            )
            .stdout
        )

    assert upgrade("/plain") == "200"
    assert upgrade("/live/updates") == "101"


def test_a_bad_extra_profile_is_refused_before_any_change():
    before = digest(LIVE)
    bad = {
        "live": {
            "upstreams": {"app": {"servers": ["127.0.0.1:9000"]}},
            "routes": [{"path": "/", "upstream": "app"}],
            "verify_websocket_paths": ["live/updates"],
        }
    }
    result = run(EDGE_PLAYBOOK, "--limit", LIVE, proxy_sites_extra_profiles=bad)
    assert result.returncode != 0
    assert "profile 'live': verify_websocket_paths[0]: 'live/updates' must be an absolute path" in result.output, result.output[-3000:]
    assert recap(result.output)[LIVE]["changed"] == 0
    assert digest(LIVE) == before


def test_a_failed_batch_stops_the_later_batches():
    assert not has_package(FRESH, "caddy") and not has_package(FRESH, "nginx")
    live_before = digest(LIVE)
    result = run(EDGE_PLAYBOOK, edge_serial=1, edge_max_fail_percentage=0)
    assert result.returncode != 0
    # The broken host fails, named with the reason ...
    assert "port 443 is in use by another program: python3" in result.output, result.output[-4000:]
    counters = recap(result.output)
    assert counters[BROKEN]["failed"] == 1
    # ... and the later batches never start: no task ran on their hosts.
    assert LIVE not in counters and FRESH not in counters
    assert f"[{LIVE}]" not in result.output and f"[{FRESH}]" not in result.output
    assert summary(result.output) == {BROKEN: "FAILED", LIVE: "NOT RUN", FRESH: "NOT RUN"}
    assert re.search(rf"^  {BROKEN}\s+FAILED\s+failed at task '.+': .*443", result.output, re.M)
    # Untouched indeed: the fresh host has no proxy and no firewall yet, the
    # deployed one is byte-identical.
    assert not has_package(FRESH, "caddy") and not has_package(FRESH, "nginx")
    assert not host(FRESH).file("/etc/caddy/Caddyfile").exists
    assert not has_package(FRESH, "ufw")
    assert digest(LIVE) == live_before


def test_the_healthy_hosts_deploy_in_one_parallel_run():
    result = run(EDGE_PLAYBOOK, "--limit", f"!{BROKEN}")
    assert result.returncode == 0, result.output[-4000:]
    # One batch (one play header) for both hosts, mixed proxies.
    assert result.output.count("PLAY [Edge of edge_hosts]") == 1
    assert summary(result.output) == {LIVE: "OK", FRESH: "CHANGED"}
    assert has_package(FRESH, "caddy") and not has_package(FRESH, "nginx")


def test_verify_reports_each_host():
    result = run(VERIFY)
    assert result.returncode != 0
    # Each healthy host has its own table, all passed ...
    for name in (LIVE, FRESH):
        assert re.search(rf'"{name}: \d+ passed, 0 failed, 0 skipped"', result.output), result.output[-4000:]
    rows = passed_rows(result.output)
    # The third application, from its inventory file alone: every check, and
    # the WebSocket at its profile's verify_websocket_paths (not /ws/, not
    # the route's /live/ itself).
    assert ("live", "redirect", "http://live.test/pipelit-edge-verify?probe=1") in rows
    assert ("live", "certificate", "live.test") in rows
    assert ("live", "headers", "https://live.test/") in rows
    assert [target for site, check, target in rows if site == "live" and check == "websocket"] == ["wss://live.test/live/updates"]
    # The aliasvault profile's own path; the inventory lists none.
    assert ("aliasvault", "websocket", "wss://vault.test/admin/_blazor") in rows
    # ... the broken host's failures name it, and so does the summary.
    assert f"check(s) failed on {BROKEN}" in result.output
    assert f"{BROKEN}: site 'pipelit': " in result.output
    assert summary(result.output) == {BROKEN: "FAILED", LIVE: "OK", FRESH: "OK"}
