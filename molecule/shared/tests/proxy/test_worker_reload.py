"""After a reload, old nginx workers are bounded: a WebSocket open across the
reload is closed by the edge once worker_shutdown_timeout has passed, and the
old worker exits. (Caddy 2.6 closes WebSockets at once on a reload: the caddy
scenario's own tests check that.)

The scenario sets the timeout short (molecule/nginx/converge.yml); this test
reads it from nginx.conf. It reloads nginx, so it waits for the suite's
background checks first (after_background_checks).
"""

import json
import re
import time
import uuid

import pytest
from conftest import PIPELIT, PROXY
from edge_testing import wait_for_file

pytestmark = pytest.mark.skipif(PROXY != "nginx", reason="nginx's old workers; Caddy has none")


def seconds(duration):
    value, unit = re.fullmatch(r"(\d+)(ms|s|m|h)?", duration).groups()
    return int(value) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[unit]


def workers(edge):
    """{pid: title} of nginx's worker processes."""
    lines = edge.check_output("ps -C nginx -o pid=,args=").splitlines()
    return {int(pid): title for pid, title in (line.strip().split(" ", 1) for line in lines) if "worker" in title}


def test_a_websocket_open_across_a_reload_is_closed_within_the_bound(edge, probe, ca_files, after_background_checks):
    setting = re.search(r"^worker_shutdown_timeout (\S+);", edge.file("/etc/nginx/nginx.conf").content_string, re.M)
    assert setting, "no worker_shutdown_timeout: an old worker lives as long as its WebSockets"
    bound = seconds(setting.group(1))
    report = f"/tmp/ws-reload-{uuid.uuid4().hex}.json"
    probe.run(
        f"(python3 /usr/local/bin/ws_check.py 'wss://{PIPELIT}/ws/?token=reload-secret' "
        f"--cafile {ca_files['pipelit']} --wait-close {bound + 60} --opened {report}.open > {report}.part 2>&1; "
        f"mv {report}.part {report}) >/dev/null 2>&1 &"
    )
    wait_for_file(probe, f"{report}.open", 60, "the WebSocket did not open and echo")
    old = workers(edge)
    # Both ends of the reload in one command: the edge's clock just before
    # and just after it, so a slow exec is not counted against the bound.
    reload_started, reload_ended = map(float, edge.check_output("date +%s.%N; systemctl reload nginx; date +%s.%N").split())

    wait_for_file(probe, report, bound + 60, "no report from the WebSocket open across the reload (still open?)")
    result = json.loads(probe.file(report).content_string)
    assert result["status"] == 101 and result["text_echo"], result
    assert result["closed_at"] is not None, result
    # Closed by the timeout: not before it (a graceful shutdown leaves
    # upgraded connections alone), and soon after (the old workers get the
    # timeout once the master has loaded the new configuration).
    closed_at = result["closed_at"]
    assert closed_at - reload_started >= bound - 1, (result, reload_started)
    assert closed_at - reload_ended <= bound + 15, (result, reload_ended)
    # No close frame: the worker drops the TCP connection (README).
    assert result["close_code"] == 1006, result
    for _ in range(30):
        left = set(old) & set(workers(edge))
        if not left:
            break
        time.sleep(1)
    assert not left, f"old workers still running: {left}"
