"""Switching proxies converges in one run, both ways (issue 19, item 1).

On the deployed Pipelit edge (nginx, certbot, certificates from Pebble): one
run with `edge_proxy: caddy` hands the ports over to Caddy, which gets its own
certificates; `verify.yml` passes; a second run changes nothing; one run with
the inventory's nginx hands them back. A client on the probe requests the
site ten times a second throughout: what it saw is printed (failed requests,
the longest gap between two answers) and no request may fail once a run has
ended. After each switch the replaced units are stopped and disabled (so no
reboot brings them back on the ports) and no unit is failed.

Debian 13 only: the Debian 12 run already carries the recovery module's ten
playbook runs; the handover's code paths are the same on both.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "tests"))
import edge_testing  # noqa: E402
from edge_testing import CONVERGE, edge, probe  # noqa: E402,F401  (edge, probe: fixtures)

VERIFY = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "playbooks" / "verify.yml"
DISTRO = os.environ.get("PIPELIT_EDGE_DISTRO", "debian12")
pytestmark = pytest.mark.skipif(DISTRO != "debian13", reason="the proxy switch runs on debian13 (debian12 carries the recovery module)")

PEBBLE_ROOT = "/usr/local/share/pebble-roots.pem"
LOOP_REPORT = "/tmp/switch-loop.jsonl"
LOOP_STOP = "/tmp/switch-loop.stop"
# One request every 0.1 s, each on a new connection (a new TLS handshake: a
# proxy that is not serving yet fails it), for as long as the test runs.
LOOP = f"""
import json, os, ssl, sys, time, urllib.request
context = ssl.create_default_context(cafile={PEBBLE_ROOT!r})
with open({LOOP_REPORT!r}, "w") as report:
    while not os.path.exists({LOOP_STOP!r}):
        started = time.time()
        try:
            with urllib.request.urlopen("https://pipelit.test/api/switch-loop", timeout=2, context=context) as answer:
                status = answer.status
        except Exception as error:  # every failure counts, whatever it is
            status = type(error).__name__
        report.write(json.dumps({{"t": started, "status": status}}) + "\\n")
        report.flush()
        time.sleep(max(0, 0.1 - (time.time() - started)))
"""


def converge(extra_vars=None):
    return edge_testing.run_playbook(CONVERGE, extra_vars=extra_vars, result_format="json")


def unit(edge, name):
    """(enabled, active) of a unit, as systemctl says them."""
    return (edge.run(f"systemctl is-enabled {name}").stdout.strip(), edge.run(f"systemctl is-active {name}").stdout.strip())


def failed_units(edge):
    return edge.check_output("systemctl list-units --state=failed --no-legend --plain | awk '{print $1}'").split()


def changed_count(output):
    return sum(int(n) for n in re.findall(r"changed=(\d+)", output.split("PLAY RECAP")[-1]))


@pytest.fixture(scope="module")
def switches(edge, probe):
    """Runs the round trip with the request loop going; returns the runs,
    the times each ended, and what the loop saw."""
    probe.run(f"rm -f {LOOP_REPORT} {LOOP_STOP}")
    probe.run(f"nohup python3 -c {shlex.quote(LOOP)} >/tmp/switch-loop.log 2>&1 &")
    edge_testing.wait_for_file(probe, LOOP_REPORT, 30, "the request loop did not start")
    time.sleep(2)
    runs, ended = {}, {}
    try:
        runs["to caddy"] = converge({"edge_proxy": "caddy"})
        ended["to caddy"] = time.time()
        runs["verify with caddy"] = edge_testing.run_playbook(VERIFY, result_format="json")
        runs["caddy again"] = converge({"edge_proxy": "caddy"})
        ended["caddy again"] = time.time()
        runs["caddy state"] = {
            "caddy": unit(edge, "caddy"),
            "nginx": unit(edge, "nginx"),
            "certbot.timer": unit(edge, "certbot.timer"),
            "failed": failed_units(edge),
        }
        runs["back to nginx"] = converge()
        ended["back to nginx"] = time.time()
        time.sleep(3)  # a few answers after the last run
    finally:
        probe.run(f"touch {LOOP_STOP}")
        time.sleep(1)
        lines = probe.file(LOOP_REPORT).content_string.splitlines()
    samples = [json.loads(line) for line in lines if line.strip()]
    return runs, ended, samples


def test_switching_to_caddy_converges_in_one_run(switches):
    runs, _, _ = switches
    assert runs["to caddy"].returncode == 0, runs["to caddy"].output
    assert "Stopped and disabled nginx.service, certbot.timer" in runs["to caddy"].output


def test_verify_passes_with_caddy(switches):
    runs, _, _ = switches
    assert runs["verify with caddy"].returncode == 0, runs["verify with caddy"].output


def test_a_second_caddy_run_changes_nothing(switches):
    runs, _, _ = switches
    assert runs["caddy again"].returncode == 0, runs["caddy again"].output
    assert changed_count(runs["caddy again"].output) == 0, runs["caddy again"].output


def test_nginx_and_certbots_timer_stay_off_under_caddy(switches):
    state = switches[0]["caddy state"]
    assert state["caddy"] == ("enabled", "active")
    assert state["nginx"] == ("disabled", "inactive")
    assert state["certbot.timer"] == ("disabled", "inactive")
    assert state["failed"] == []


def test_switching_back_to_nginx_converges_in_one_run(switches, edge):
    runs, _, _ = switches
    assert runs["back to nginx"].returncode == 0, runs["back to nginx"].output
    assert "Stopped and disabled caddy.service" in runs["back to nginx"].output
    assert unit(edge, "nginx") == ("enabled", "active")
    assert unit(edge, "caddy") == ("disabled", "inactive")
    # certbot's role turned its timer on again, for the lineages it kept.
    assert unit(edge, "certbot.timer") == ("enabled", "active")
    assert failed_units(edge) == []


def test_no_request_fails_once_a_run_has_ended(switches):
    _, ended, samples = switches
    assert len(samples) > 100, "the request loop hardly ran"
    failures = [s for s in samples if s["status"] != 200]
    # Everything answers from the end of a switch (a request already in
    # flight aside: the loop's timeout is 2 s) through the verify run and the
    # unchanged second run, and after the switch back.
    quiet = [(ended["to caddy"] + 2, ended["caddy again"]), (ended["back to nginx"] + 2, float("inf"))]
    late = [s for s in failures if any(start <= s["t"] < end for start, end in quiet)]
    ok_times = [s["t"] for s in samples if s["status"] == 200]
    gaps = [later - earlier for earlier, later in zip(ok_times, ok_times[1:], strict=False)]
    summary = {
        "requests": len(samples),
        "failed": len(failures),
        "failures": sorted({str(s["status"]) for s in failures}),
        "longest_gap_s": round(max(gaps, default=0), 1),
        # Each switch's gap: the longest between two answers while it ran.
        "gap_during_s": {
            name: round(max((g for t, g in zip(ok_times, gaps, strict=False) if start <= t <= end), default=0), 1)
            for name, (start, end) in _run_windows(ended, samples).items()
        },
    }
    print(f"request loop: {summary}")
    # Kept beside the scenario's log (bin/test's .cache/test-logs), for the
    # numbers the handover is measured by.
    report = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".cache" / "test-logs" / f"proxy-switch-{DISTRO}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(summary, indent=1) + "\n")
    assert late == [], f"requests failed after a run had ended: {late[:5]}"


def _run_windows(ended, samples):
    """Each switch's time span: from the previous run's end (or the loop's
    start) to its own end."""
    start = samples[0]["t"] if samples else 0
    windows = {"to caddy": (start, ended["to caddy"]), "back to nginx": (ended["caddy again"], ended["back to nginx"])}
    return windows
