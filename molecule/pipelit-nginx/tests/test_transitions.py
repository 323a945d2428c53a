"""Every change of mind converges (issue 19, items 1 and 4).

On the deployed Pipelit edge (nginx, certbot, certificates from Pebble), one
host goes through the changes operators make, each by one run of the real
playbook with the inventory of that step:

1. a second site (acme), then a domain added (its certificate expands);
2. the domain removed again, its tls mode acme -> files;
3. files -> self_signed, on https_port 9443, with HTTP/3 (that site alone);
4. self_signed -> acme, back on 443, and its profile changed (pipelit ->
   aliasvault: another upstream, other guarded paths, another backend port),
   HTTP/3 for every site (the global default);
5. the site renamed, then removed, and HTTP/3 off;
6. nginx -> Caddy (with HTTP/3) -> nginx (without): the handover of ports
   80 and 443, TCP and UDP.

After each step: the run converged; a second run changes nothing; no run
warns that a file task's skip compares the wrong thing (edge_file);
verify.yml passes; `ufw status` allows exactly the ports the sites serve and
denies the ports their profiles declare, and HTTP/3 answers from the probe on
exactly the UDP ports it opens; `systemctl --failed` is empty;
/etc/ssl/pipelit-edge and /etc/letsencrypt/live hold exactly the
certificates of the step's sites. A client on the probe requests the first
site ten times a second throughout: no request may fail in a step that only
reloads the proxy, and the proxy switch keeps its gap within 5 s, with no
failure once the run has ended. The loop's numbers are printed and written
to .cache/test-logs/transitions-DISTRO.json.

Debian 13 only: the Debian 12 run already carries the recovery module's
playbook runs; the code paths are the same on both.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "tests"))
import edge_testing  # noqa: E402
from edge_testing import CONVERGE, edge, probe  # noqa: E402,F401  (edge, probe: fixtures)

VERIFY = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "playbooks" / "verify.yml"
DISTRO = os.environ.get("PIPELIT_EDGE_DISTRO", "debian12")
pytestmark = pytest.mark.skipif(DISTRO != "debian13", reason="the transitions run on debian13 (debian12 carries the recovery module)")

PEBBLE_ROOT = "/usr/local/share/pebble-roots.pem"
LOOP_REPORT = "/tmp/transitions-loop.jsonl"
LOOP_STOP = "/tmp/transitions-loop.stop"
TLS_DIR = "/etc/ssl/pipelit-edge"
OPERATOR_DIR = "/etc/ssl/operator-files"
PREFIX = "pipelit-edge-"
# The longest the proxy switch may keep the site from answering.
SWITCH_GAP_GOAL_S = 5.0
# One request every 0.1 s, each on a new connection (a new TLS handshake: a
# proxy that is not serving yet fails it), for as long as the steps run.
LOOP = f"""
import json, os, ssl, sys, time, urllib.request
context = ssl.create_default_context(cafile={PEBBLE_ROOT!r})
with open({LOOP_REPORT!r}, "w") as report:
    while not os.path.exists({LOOP_STOP!r}):
        started = time.time()
        try:
            with urllib.request.urlopen("https://pipelit.test/api/transitions-loop", timeout=2, context=context) as answer:
                status = answer.status
        except Exception as error:  # every failure counts, whatever it is
            status = type(error).__name__
        report.write(json.dumps({{"t": started, "status": status}}) + "\\n")
        report.flush()
        time.sleep(max(0, 0.1 - (time.time() - started)))
"""

# The scenario's own site (inventories/demo/group_vars/pipelit_edge.yml),
# which the loop requests and every step keeps.
PIPELIT = {"name": "pipelit", "profile": "pipelit", "domains": ["pipelit.test", "www.pipelit.test"], "tls": {"mode": "acme"}}
# The second site: vault.test and extra.test are the edge's network aliases
# (.config/molecule/config.yml), so Pebble validates them on this host.
EXTRA = {"name": "extra", "profile": "pipelit", "domains": ["vault.test"], "tls": {"mode": "acme"}}
FILES_TLS = {"mode": "files", "certificate": f"{OPERATOR_DIR}/extra.crt", "certificate_key": f"{OPERATOR_DIR}/extra.key"}
# The ports each profile's application listens on (roles/proxy_sites, profiles).
PIPELIT_BACKEND = {"8000/tcp", "6379/tcp", "6399/tcp", "8080/tcp", "4000/tcp"}
ALIASVAULT_BACKEND = {"8443/tcp"}


def copy_extra_certificate(edge):
    """The operator's files for the files step: the certificate Pebble issued
    to the extra site in the steps before, copied out of certbot's lineage."""
    edge.check_output(
        f"install -d -m 0700 {OPERATOR_DIR}"
        f" && install -m 0644 /etc/letsencrypt/live/{PREFIX}extra/fullchain.pem {OPERATOR_DIR}/extra.crt"
        f" && install -m 0600 /etc/letsencrypt/live/{PREFIX}extra/privkey.pem {OPERATOR_DIR}/extra.key"
    )


# (step, what the inventory says, what to do on the host first, the ports the
# firewall must allow, the ports it must deny, whether only reloads happen).
STEPS = [
    ("add a site", {"proxy_sites": [PIPELIT, EXTRA]}, None, {"80/tcp", "443/tcp"}, PIPELIT_BACKEND, True),
    (
        "add a domain",
        {"proxy_sites": [PIPELIT, {**EXTRA, "domains": ["vault.test", "extra.test"]}]},
        None,
        {"80/tcp", "443/tcp"},
        PIPELIT_BACKEND,
        True,
    ),
    (
        "remove the domain, acme to files",
        {"proxy_sites": [PIPELIT, {**EXTRA, "tls": FILES_TLS}]},
        copy_extra_certificate,
        {"80/tcp", "443/tcp"},
        PIPELIT_BACKEND,
        True,
    ),
    (
        "files to self_signed, on port 9443 with HTTP/3",
        {"proxy_sites": [PIPELIT, {**EXTRA, "tls": {"mode": "self_signed"}, "https_port": 9443, "http3": True}]},
        None,
        {"80/tcp", "443/tcp", "9443/tcp", "9443/udp"},
        PIPELIT_BACKEND,
        True,
    ),
    (
        "self_signed to acme, back on 443, profile aliasvault, HTTP/3 for all",
        {"proxy_sites_http3": True, "proxy_sites": [PIPELIT, {**EXTRA, "profile": "aliasvault"}]},
        None,
        {"80/tcp", "443/tcp", "443/udp"},
        PIPELIT_BACKEND | ALIASVAULT_BACKEND,
        True,
    ),
    (
        "rename the site",
        {"proxy_sites_http3": True, "proxy_sites": [PIPELIT, {**EXTRA, "name": "vault", "profile": "aliasvault"}]},
        None,
        {"80/tcp", "443/tcp", "443/udp"},
        PIPELIT_BACKEND | ALIASVAULT_BACKEND,
        True,
    ),
    ("remove the site, HTTP/3 off", {"proxy_sites": [PIPELIT]}, None, {"80/tcp", "443/tcp"}, PIPELIT_BACKEND, True),
    (
        "nginx to caddy, HTTP/3 on",
        {"edge_proxy": "caddy", "proxy_sites_http3": True},
        None,
        {"80/tcp", "443/tcp", "443/udp"},
        PIPELIT_BACKEND,
        False,
    ),
    ("caddy to nginx", {}, None, {"80/tcp", "443/tcp"}, PIPELIT_BACKEND, False),
]
# The name each HTTPS port is asked for over HTTP/3 in every step (the site
# on 9443 exists only in its step; elsewhere nothing answers there).
HTTP3_TARGETS = {443: "pipelit.test", 9443: "vault.test"}
NAMES = [step[0] for step in STEPS]


def converge(extra_vars):
    return edge_testing.run_playbook(CONVERGE, extra_vars=extra_vars, result_format="json")


def changed_count(output):
    return sum(int(n) for n in re.findall(r"changed=(\d+)", output.split("PLAY RECAP")[-1]))


def unit(edge, name):
    """(enabled, active) of a unit, as systemctl says them."""
    return (edge.run(f"systemctl is-enabled {name}").stdout.strip(), edge.run(f"systemctl is-active {name}").stdout.strip())


def firewall(edge):
    """The role's own rules in `ufw status`: {'allow': {...}, 'deny': {...}},
    ports as "PORT/PROTO", IPv4 and IPv6 alike."""
    rules = {"allow": set(), "deny": set()}
    for line in edge.check_output("ufw status").splitlines():
        match = re.match(r"^(\d+/(?:tcp|udp))(?: \(v6\))?\s+(ALLOW|DENY)\s+.*# pipelit-edge (service|denied)$", line.strip())
        if match:
            rules[match.group(2).lower()].add(match.group(1))
    return rules


def http3_answers(probe):
    """The HTTPS ports that answer a request over HTTP/3 from the probe (its
    curl, Debian 13's, speaks it): "PORT/udp" strings, as the firewall's."""
    # Only the protocol is at stake here (verify.yml checks the chains). An
    # unanswered connection is tried again, as everywhere in the tests, so a
    # port nobody serves takes every try's timeout: the ports are asked at
    # once, each in a subshell of its own, its answer on a line ("$( (" with its
    # space: "$((" would be arithmetic).
    probes = []
    for port, domain in HTTP3_TARGETS.items():
        command = f"curl --http3-only -sk -o /dev/null -w '%{{http_version}}' --max-time 4 https://{domain}:{port}/"
        probes.append(f"echo {port} $( {edge_testing.tried_again_over_http3(command)} ) &")
    lines = probe.run(" ".join([*probes, "wait"])).stdout.splitlines()
    return {f"{port}/udp" for port, version in (line.split(" ", 1) for line in lines if " " in line) if version == "3"}


def snapshot(edge, probe):
    """What the host holds after a step, for the tests to compare with the
    step's inventory."""
    return {
        "http3": http3_answers(probe),
        "firewall": firewall(edge),
        "failed units": edge.check_output("systemctl list-units --state=failed --no-legend --plain | awk '{print $1}'").split(),
        "tls dirs": set(edge.check_output(f"find {TLS_DIR} -mindepth 1 -maxdepth 1 -printf '%f\\n' 2>/dev/null || true").split()),
        "lineages": set(edge.check_output("ls /etc/letsencrypt/live 2>/dev/null | grep '^pipelit-edge-' || true").split()),
        "units": {name: unit(edge, name) for name in ("nginx", "caddy", "certbot.timer")},
    }


@pytest.fixture(scope="module")
def transitions(edge, probe):
    """Runs every step with the request loop going; returns, per step, its
    runs, the host's state after it, and its time window; and the loop's
    samples. A step whose run fails ends the sequence: the steps after it
    are reported as not reached."""
    probe.run(f"rm -f {LOOP_REPORT} {LOOP_STOP}")
    probe.run(f"nohup python3 -c {shlex.quote(LOOP)} >/tmp/transitions-loop.log 2>&1 &")
    edge_testing.wait_for_file(probe, LOOP_REPORT, 30, "the request loop did not start")
    time.sleep(2)
    steps = {}
    try:
        for name, extra_vars, before, *_ in STEPS:
            if before:
                before(edge)
            started = time.time()
            record = {"run": converge(extra_vars)}
            record["window"] = (started, time.time())
            steps[name] = record
            if record["run"].returncode != 0:
                break
            record["again"] = converge(extra_vars)
            again_ended = time.time()
            # verify.yml and the snapshot only look, from outside and on the
            # host: they run side by side (the snapshot mostly waits for
            # HTTP/3 answers, the playbook mostly computes).
            with ThreadPoolExecutor(max_workers=1) as pool:
                verifying = pool.submit(edge_testing.run_playbook, VERIFY, extra_vars=extra_vars, result_format="json")
                record["state"] = snapshot(edge, probe)
                record["verify"] = verifying.result()
            record["seconds"] = {
                "run": round(record["window"][1] - started),
                "second run": round(again_ended - record["window"][1]),
                "verify and snapshot": round(time.time() - again_ended),
            }
            record["steady"] = (record["window"][1], time.time())
        time.sleep(3)  # a few answers after the last run
    finally:
        probe.run(f"touch {LOOP_STOP}")
        time.sleep(1)
        lines = probe.file(LOOP_REPORT).content_string.splitlines()
        edge.run(f"rm -rf {OPERATOR_DIR}")
    samples = [json.loads(line) for line in lines if line.strip()]
    return steps, samples


def step(transitions, name):
    steps, _ = transitions
    if name not in steps:
        pytest.fail(f"step '{name}' was not reached: an earlier step's run failed")
    return steps[name]


def spec(name):
    return STEPS[NAMES.index(name)]


@pytest.mark.parametrize("name", NAMES)
def test_the_step_converges_in_one_run(transitions, name):
    run = step(transitions, name)["run"]
    assert run.returncode == 0, run.output[-6000:]


@pytest.mark.parametrize("name", NAMES)
def test_a_second_run_changes_nothing(transitions, name):
    record = step(transitions, name)
    assert "again" in record, "the step's run failed"
    assert record["again"].returncode == 0, record["again"].output[-4000:]
    assert changed_count(record["again"].output) == 0, record["again"].output[-6000:]


@pytest.mark.parametrize("name", NAMES)
def test_every_skip_compares_what_its_task_writes(transitions, name):
    # proxy_sites' edge_file warns when the roles' host-state read said a
    # file differs and the module then changed nothing: its skip compared
    # something else and would never skip again. Every role's file tasks,
    # nginx's and Caddy's included, run through it somewhere in the steps.
    record = step(transitions, name)
    for run in ("run", "again"):
        if run in record:
            assert "edge_file: the host-state read had" not in " ".join(record[run].output.split()), record[run].output[-6000:]


@pytest.mark.parametrize("name", NAMES)
def test_verify_passes(transitions, name):
    record = step(transitions, name)
    assert "verify" in record, "the step's run failed"
    assert record["verify"].returncode == 0, record["verify"].output[-6000:]
    assert "0 failed" in record["verify"].output


@pytest.mark.parametrize("name", NAMES)
def test_the_firewall_holds_what_the_inventory_implies(transitions, name):
    record = step(transitions, name)
    assert "state" in record, "the step's run failed"
    _, _, _, allowed, denied, _ = spec(name)
    assert record["state"]["firewall"] == {"allow": allowed, "deny": denied}


@pytest.mark.parametrize("name", NAMES)
def test_http3_answers_exactly_where_the_firewall_opens_udp(transitions, name):
    record = step(transitions, name)
    assert "state" in record, "the step's run failed"
    _, _, _, allowed, _, _ = spec(name)
    assert record["state"]["http3"] == {port for port in allowed if port.endswith("/udp")}


@pytest.mark.parametrize("name", NAMES)
def test_verify_makes_an_http3_request_exactly_where_it_is_served(transitions, name):
    record = step(transitions, name)
    assert "verify" in record, "the step's run failed"
    _, _, _, allowed, _, _ = spec(name)
    served = any(port.endswith("/udp") for port in allowed)
    rows = re.findall(r"(PASS|FAIL|SKIP)\s+\S+\s+http3\s", record["verify"].output)
    assert (rows and set(rows) == {"PASS"}) if served else rows == [], record["verify"].output[-4000:]


@pytest.mark.parametrize("name", NAMES)
def test_no_unit_is_failed(transitions, name):
    record = step(transitions, name)
    assert "state" in record, "the step's run failed"
    assert record["state"]["failed units"] == []


@pytest.mark.parametrize("name", NAMES)
def test_the_certificates_are_those_of_the_sites(transitions, name):
    record = step(transitions, name)
    assert "state" in record, "the step's run failed"
    _, extra_vars, *_ = spec(name)
    sites = extra_vars.get("proxy_sites", [PIPELIT])
    acme = {PREFIX + site["name"] for site in sites if site["tls"]["mode"] == "acme"}
    if extra_vars.get("edge_proxy") == "caddy":
        # Caddy keeps its own certificates (its storage); certbot's lineages
        # stay for the switch back, their timer off.
        assert record["state"]["lineages"] == acme
        assert record["state"]["units"]["certbot.timer"] == ("disabled", "inactive")
    else:
        assert record["state"]["lineages"] == acme
        # The edge's own directory: the placeholder and link of each acme
        # site, the key and certificate of each self_signed one; nothing of a
        # site renamed, removed or moved to the operator's files.
        made = {site["name"] for site in sites if site["tls"]["mode"] in ("acme", "self_signed")}
        assert record["state"]["tls dirs"] == made


def test_the_proxy_switch_stops_and_disables_the_other_proxy(transitions):
    to_caddy, back = step(transitions, "nginx to caddy, HTTP/3 on"), step(transitions, "caddy to nginx")
    assert "Stopped and disabled nginx.service, certbot.timer" in to_caddy["run"].output
    assert to_caddy["state"]["units"] == {
        "caddy": ("enabled", "active"),
        "nginx": ("disabled", "inactive"),
        "certbot.timer": ("disabled", "inactive"),
    }
    assert "Stopped and disabled caddy.service" in back["run"].output
    # certbot's role turned its timer on again, for the lineages it kept.
    assert back["state"]["units"] == {
        "caddy": ("disabled", "inactive"),
        "nginx": ("enabled", "active"),
        "certbot.timer": ("enabled", "active"),
    }


def test_the_request_loop(transitions):
    """No request fails in a step that only reloads; the proxy switch keeps
    its longest gap within the goal, and nothing fails once its run ended."""
    steps, samples = transitions
    assert len(samples) > 300, "the request loop hardly ran"
    ok_times = [s["t"] for s in samples if s["status"] == 200]
    report = {"requests": len(samples), "failed": sum(s["status"] != 200 for s in samples), "steps": {}}
    problems = []
    for name, *_, reload_only in STEPS:
        if name not in steps:
            continue
        start, end = steps[name]["window"][0], steps[name].get("steady", steps[name]["window"])[1]
        inside = [s for s in samples if start <= s["t"] < end]
        failed = [s for s in inside if s["status"] != 200]
        times = [t for t in ok_times if start - 1 <= t <= end]
        gap = max((later - earlier for earlier, later in zip(times, times[1:], strict=False)), default=0)
        report["steps"][name] = {
            "requests": len(inside),
            "failed": len(failed),
            "failures": sorted({str(s["status"]) for s in failed}),
            "longest_gap_s": round(gap, 1),
            "playbook_seconds": steps[name].get("seconds", {}),
        }
        if reload_only and failed:
            problems.append(f"{name}: {len(failed)} failed request(s) where only a reload was needed")
        if not reload_only:
            run_end = steps[name]["window"][1]
            late = [s for s in failed if s["t"] >= run_end + 2]  # a request in flight aside (2 s timeout)
            if late:
                problems.append(f"{name}: {len(late)} request(s) failed after the run had ended")
            if gap > SWITCH_GAP_GOAL_S:
                problems.append(f"{name}: the site did not answer for {gap:.1f} s (goal {SWITCH_GAP_GOAL_S} s)")
    print(f"request loop: {json.dumps(report)}")
    # Kept beside the scenario's log (bin/test's .cache/test-logs).
    path = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".cache" / "test-logs" / f"transitions-{DISTRO}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    assert problems == [], problems
