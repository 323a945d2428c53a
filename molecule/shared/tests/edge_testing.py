"""Helpers every verification suite of pipelit-edge shares.

Molecule's verifier runs the suites with the scenario's environment: which
scenario, its inventory, its converge playbook. Hosts are named ROLE-SCENARIO
(.config/molecule/config.yml): edge-nginx, probe-nginx and so on.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import testinfra

SCENARIO = os.environ["MOLECULE_SCENARIO_NAME"]
INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
CONVERGE = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "converge.yml"


def host_named(role):
    """The scenario's container of this role, entered as root through Docker,
    whatever connection the playbooks use (a scenario may reach its edge over
    SSH as a sudo user, with an address templated at run time that testinfra's
    Ansible backend would not render)."""
    return testinfra.get_host(f"docker://{role}-{SCENARIO}")


# The scenario's two hosts as fixtures; a suite's conftest imports them.
@pytest.fixture(scope="session")
def edge():
    return host_named("edge")


@pytest.fixture(scope="session")
def probe():
    return host_named("probe")


@dataclass
class Response:
    status: int
    http_version: str
    redirect: str
    headers: dict = field(default_factory=dict)
    body: str = ""

    def json(self):
        return json.loads(self.body)


# A request over HTTP/3 only that gets no answer is tried again, in a new
# curl (a new QUIC connection), twice more, as a browser that learned Alt-Svc
# falls back and tries again. Not curl's own --retry: it retries on the
# connection it keeps, and an unanswered connection stays unanswered (seen
# with curl 8.14 against nginx 1.26.3: README, HTTP/3). An answer, right or
# wrong, is never tried again: a status is not an error to curl.
HTTP3_TRIES = 3


def tried_again_over_http3(command):
    """The shell COMMAND (a curl with --http3-only) run up to HTTP3_TRIES
    times while it exits non-zero, in a subshell of its own: prints the last
    try's output, ends with its code."""
    # The x keeps the output's last newline, which $(...) would drop.
    return (
        f"(for _try in $(seq {HTTP3_TRIES}); do _out=$({command}; _rc=$?; echo x; exit $_rc); _rc=$?; [ $_rc = 0 ] && break; done; "
        'printf "%s" "${_out%x}"; exit $_rc)'
    )


def curl(probe, url, *options, ca=None):
    """One request from the probe with curl; the response, parsed. One
    `docker exec` for the request, its headers and its body: the line curl
    writes (-w), then the headers and the body, each base64 on a line."""
    cmd = [
        "curl",
        "-sS",
        "--max-time",
        "60",
        "-o",
        "/tmp/curl.body",
        "-D",
        "/tmp/curl.headers",
        "-w",
        "%{http_code} %{http_version} %{redirect_url}\\n",
    ]
    if ca:
        cmd += ["--cacert", ca]
    request = "rm -f /tmp/curl.body /tmp/curl.headers; " + shlex.join([*cmd, *options, url])
    if "--http3-only" in options:
        request = tried_again_over_http3(request)
    result = probe.run(
        "{ "
        + request
        + "; }; rc=$?; [ $rc = 0 ] || exit $rc; base64 -w0 /tmp/curl.headers; echo; base64 -w0 /tmp/curl.body 2>/dev/null; echo"
    )
    assert result.rc == 0, f"curl {url} failed: {result.stderr}"
    written, encoded_headers, encoded_body = result.stdout.split("\n")[:3]
    status, version, *redirect = written.split(" ", 2)
    headers = {}
    for line in base64.b64decode(encoded_headers).decode(errors="replace").splitlines()[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = base64.b64decode(encoded_body).decode(errors="replace")
    return Response(int(status), version, redirect[0] if redirect else "", headers, body)


@dataclass
class PlaybookRun:
    returncode: int
    output: str  # stdout and stderr together: ansible-core prints errors on stderr


def run_playbook(playbook, *options, extra_vars=None, result_format="yaml"):
    """Runs a playbook from the controller on the scenario's inventory (the
    whole directory: Molecule's hosts plus any linked hosts and group_vars).
    result_format "json" prints each string of a result on one line, never
    wrapped (but with JSON's escapes), for tests that match whole lines."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(extra_vars or {}, handle)
    try:
        result = subprocess.run(
            ["ansible-playbook", "-i", str(Path(INVENTORY).parent), str(playbook), "-e", f"@{handle.name}", *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
            check=False,
            env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_CALLBACK_RESULT_FORMAT": result_format},
        )
    finally:
        os.unlink(handle.name)
    return PlaybookRun(result.returncode, result.stdout)


def journal_mark(host):
    """Whole seconds since the epoch, later than every journal entry so far
    and no later than any entry to come. `journalctl --since @N` counts whole
    seconds: a mark taken in the second of an earlier entry (the previous
    test's) would include it."""
    return int(host.check_output("sleep 1; date +%s"))


# certificate_alerts: its journal tag and its daily check's unit.
ALERT_TAG = "pipelit-edge-certificate-alert"
CERTIFICATE_CHECK = "pipelit-edge-certificate-check.service"


def alerts_journaled_since(edge, since):
    """certificate_alerts' journal entries since SINCE (from journal_mark).
    --sync first: journald has stored what was sent before (logger's datagrams)."""
    return edge.check_output(f"journalctl --sync && journalctl --no-pager -o cat -t {ALERT_TAG} --since @{since}")


def run_certificate_check(edge, min_days=None):
    """Runs certificate_alerts' daily check now, through its own unit, its
    threshold overridden for this run if given (a drop-in under /run,
    removed afterwards): (the unit's exit code, the alerts it journaled)."""
    since = journal_mark(edge)
    dropin = f"/run/systemd/system/{CERTIFICATE_CHECK}.d"
    if min_days is not None:
        edge.check_output(
            f"mkdir -p {dropin} && printf '[Service]\\nEnvironment=PIPELIT_EDGE_ALERT_MIN_DAYS={min_days}\\n'"
            f" > {dropin}/zz-test.conf && systemctl daemon-reload"
        )
    try:
        run = edge.run(f"systemctl start {CERTIFICATE_CHECK}")
    finally:
        edge.run(f"rm -rf {dropin} && systemctl daemon-reload && systemctl reset-failed {CERTIFICATE_CHECK}")
    return run.rc, alerts_journaled_since(edge, since)


def wait_for_file(host, path, seconds, failure):
    """Waits until PATH exists on HOST (a background client's signal); fails
    with FAILURE after SECONDS. Polls instead of sleeping a guessed time,
    which a loaded machine outlasts."""
    deadline = time.monotonic() + seconds
    while not host.file(path).exists:
        assert time.monotonic() < deadline, f"{failure} within {seconds} s"
        time.sleep(0.5)


def run_converge(extra_vars):
    """Runs the scenario's converge playbook from the controller with extra vars."""
    return run_playbook(CONVERGE, extra_vars=extra_vars)


def config_digest(host, paths):
    """One digest of every file under the given paths on a host."""
    return host.check_output(f"find {' '.join(paths)} -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum")


def valid_sites():
    """The scenarios' own sites (molecule/shared/vars/sites.yml), as a fresh copy."""
    import yaml

    path = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "molecule/shared/vars/sites.yml"
    return yaml.safe_load(path.read_text())["proxy_sites"]
