"""Every run converges or changes nothing (issue 12, items 1-3), on the
deployed Pipelit edge: sabotage the host as operators and accidents do, then
ONE correct run of the real playbook converges and playbooks/verify.yml
passes; a change nginx refuses leaves /etc/nginx byte-identical; a port held
by another program fails the play naming it, and nothing is recorded as
loaded.

These tests run before the shared full-stack suite (their path sorts first:
".../tests/../../../pipelit-nginx" < ".../tests/test_"), and each ends with
the scenario's own model converged, so the shared suite sees the edge as the
converge step left it. They take about ten playbook runs: Debian 12 only
(see pytestmark below).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "tests"))
import edge_testing  # noqa: E402
from edge_testing import CONVERGE, INVENTORY, edge, probe  # noqa: E402,F401  (edge, probe: fixtures)

VERIFY = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "playbooks" / "verify.yml"
DISTRO = os.environ.get("PIPELIT_EDGE_DISTRO", "debian12")
# Ten playbook runs: measured 7 min 40 s on Debian 13 and about 25 min on
# Debian 12 while other scenarios shared the 2 cores. Run once, on the default
# distro; the code paths (python3, nginx, ss, systemd) are the same on Debian
# 13 (where the module passed once with the skip lifted), which the shared
# suite still covers.
pytestmark = pytest.mark.skipif(DISTRO != "debian12", reason="the recovery module runs on debian12 only (8 to 25 minutes of playbook runs)")

STATE = "/var/lib/pipelit-edge"
LOADED = f"{STATE}/nginx-loaded.sha256"
TOOL = "/usr/local/sbin/pipelit-edge-nginx"
TLS_DIR = "/etc/ssl/pipelit-edge/pipelit"
# The scenario's own site (inventories/demo/group_vars/pipelit_edge.yml).
PIPELIT = {"name": "pipelit", "profile": "pipelit", "domains": ["pipelit.test", "www.pipelit.test"], "tls": {"mode": "acme"}}


def tree_digest(host, path="/etc/nginx"):
    """Every entry under path: names, types, link targets, modes and file contents."""
    return host.check_output(
        f"cd {path} && find . -printf '%p %y %l %m\\n' | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum"
    )


def converge(extra_vars=None):
    # JSON results: messages are never wrapped, so they can be matched whole.
    return edge_testing.run_playbook(CONVERGE, extra_vars=extra_vars, result_format="json")


def assert_converges_and_verifies(edge, extra_vars=None):
    """One correct run converges; nginx runs what is on disk; verify.yml passes."""
    result = converge(extra_vars)
    assert result.returncode == 0, result.output[-4000:]
    assert edge.run("nginx -t -q").rc == 0
    assert edge.check_output(f"cat {LOADED}") == edge.check_output("/usr/local/sbin/pipelit-edge-nginx-digest")
    verify = edge_testing.run_playbook(VERIFY, extra_vars=extra_vars, result_format="json")
    assert verify.returncode == 0, verify.output[-4000:]
    assert "0 failed" in verify.output
    return result


def test_a_broken_live_tree_is_repaired_by_one_run(edge):
    # Three kinds of debris at once, each enough to fail the old per-file
    # check: a broken file dropped into sites-enabled by hand; the files of a
    # removed site left behind in sites-available and sites-enabled (a copy of
    # the live site: same upstream names, so nginx -t fails on duplicates);
    # certificate links into a lineage that no longer exists.
    edge.check_output(
        "printf 'server { this is not nginx }\\n' > /etc/nginx/sites-enabled/hand-made.conf"
        " && cp /etc/nginx/sites-available/pipelit-edge-pipelit.conf /etc/nginx/sites-available/pipelit-edge-old.conf"
        " && ln -s ../sites-available/pipelit-edge-old.conf /etc/nginx/sites-enabled/pipelit-edge-old.conf"
        f" && ln -sfn /etc/letsencrypt/live/gone/fullchain.pem {TLS_DIR}/fullchain.pem"
        f" && ln -sfn /etc/letsencrypt/live/gone/privkey.pem {TLS_DIR}/privkey.pem"
    )
    assert edge.run("nginx -t").rc != 0
    result = assert_converges_and_verifies(edge)
    assert not edge.file("/etc/nginx/sites-enabled/hand-made.conf").exists
    kept = edge.check_output(f"find {STATE}/quarantine -name hand-made.conf")
    assert kept, "the dropped file was deleted instead of kept"
    assert "this is not nginx" in edge.file(kept.splitlines()[-1]).content_string
    assert "moved /etc/nginx/sites-enabled/hand-made.conf to " in result.output
    assert not edge.file("/etc/nginx/sites-available/pipelit-edge-old.conf").exists
    assert not edge.file("/etc/nginx/sites-enabled/pipelit-edge-old.conf").exists
    assert edge.check_output(f"readlink {TLS_DIR}/fullchain.pem") == "/etc/letsencrypt/live/pipelit-edge-pipelit/fullchain.pem"


def test_a_port_held_by_another_program(edge):
    # 9443: the AliasVault stand-in already holds 127.0.0.1:8443 here.
    holder = "txn-port-holder"
    edge.check_output(
        f"systemd-run --unit={holder} python3 -c "
        + shlex.quote("import socket, time\ns = socket.socket()\ns.bind(('0.0.0.0', 9443))\ns.listen()\ntime.sleep(3600)")
    )
    on_9443 = {"proxy_sites": [{**PIPELIT, "https_port": 9443}]}
    try:
        for _ in range(50):
            if "python3" in edge.check_output("ss -Hltnp '( sport = :9443 )'"):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the stand-in listener never held port 9443")
        before, loaded = tree_digest(edge), edge.check_output(f"cat {LOADED}")
        # As a set of rules: a rule put back is appended (ufw keeps the order
        # rules were added in; the role's rules never overlap, so the order
        # decides nothing).
        firewall = sorted(edge.check_output("ufw status verbose").splitlines())
        assert any(line.startswith("443/tcp ") for line in firewall) and not any("9443" in line for line in firewall), firewall
        result = converge(on_9443)
        assert result.returncode != 0
        assert "port 9443 is in use by another program: python3 (pid" in result.output, result.output[-4000:]
        assert edge.check_output(f"cat {LOADED}") == loaded
        assert tree_digest(edge) == before
        # The run opened 9443 and closed 443 before nginx refused; the rescue
        # put both back: nothing is open that nginx does not serve, and the
        # site nginx still serves on 443 is still reachable.
        assert "the firewall's port rules are as this run found them" in result.output
        assert sorted(edge.check_output("ufw status verbose").splitlines()) == firewall
    finally:
        edge.run(f"systemctl stop {holder}; systemctl reset-failed {holder}")
    # The next run, once the port is free, converges (the scenario's own
    # model comes back with the next test's first run).
    result = converge(on_9443)
    assert result.returncode == 0, result.output[-4000:]
    assert "nginx" in edge.check_output("ss -Hltnp '( sport = :9443 )'")
    assert edge.check_output(f"cat {LOADED}") == edge.check_output("/usr/local/sbin/pipelit-edge-nginx-digest")


def test_a_change_nginx_refuses_leaves_etc_nginx_byte_identical(edge):
    extra = {"name": "extra", "profile": "pipelit", "domains": ["extra.pipelit.test"], "tls": {"mode": "self_signed"}}
    gone = {"name": "gone", "profile": "pipelit", "domains": ["gone.pipelit.test"], "tls": {"mode": "self_signed"}}
    result = converge({"proxy_sites": [PIPELIT, extra, gone]})
    assert result.returncode == 0, result.output[-4000:]
    before, loaded = tree_digest(edge), edge.check_output(f"cat {LOADED}")
    # One site changes validly, another gets an upstream that does not resolve
    # (the model accepts it, nginx -t does not), and a third leaves the model.
    # The role's host checks, which would refuse it first, are off: this is
    # the transaction behind them.
    broken = {**extra, "upstreams": {"app": {"servers": ["backend.invalid:8000"]}}}
    result = converge({"proxy_sites": [{**PIPELIT, "max_body_size": "62m"}, broken], "proxy_sites_host_checks": False})
    assert result.returncode != 0
    assert "host not found in upstream" in result.output
    assert "/etc/nginx/sites-enabled/pipelit-edge-extra.conf" in result.output  # the real file, not the scratch copy
    assert tree_digest(edge) == before
    assert edge.check_output(f"cat {LOADED}") == loaded
    assert_converges_and_verifies(edge)
    assert not edge.file("/etc/nginx/sites-available/pipelit-edge-gone.conf").exists


# The first task that changes /etc/nginx itself: the transaction (and, in the
# roles before it, the linking of the sites written one by one).
KILL_AT = ("TASK [nginx : Check the whole new configuration and put it in place", "TASK [nginx : Enable each site")


def test_a_killed_run_and_a_lost_etc_letsencrypt(edge):
    # A multi-file change (a second site, and a new limit for the first),
    # killed as /etc/nginx starts to change: whatever state that leaves
    # (nothing applied, or applied and never reloaded). Then the temporary
    # file of an interrupted write, and /etc/letsencrypt lost (the site's
    # certificate links dangle). One correct run converges.
    extra = {"name": "extra", "profile": "pipelit", "domains": ["extra.pipelit.test"], "tls": {"mode": "self_signed"}}
    handle = Path(f"/tmp/txn-kill-{os.getpid()}.json")
    handle.write_text(json.dumps({"proxy_sites": [{**PIPELIT, "max_body_size": "61m"}, extra]}))
    process = subprocess.Popen(
        ["ansible-playbook", "-i", str(Path(INVENTORY).parent), str(CONVERGE), "-e", f"@{handle}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
    )
    seen = []
    try:
        for line in process.stdout:
            seen.append(line)
            if line.startswith(KILL_AT):
                time.sleep(1)
                break
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        handle.unlink()
    # What was under way on the edge when the controller died (the commit
    # tool, started by a module the kill cannot reach) runs to its end first.
    # ([p]: the pattern must not match this shell's own command line.)
    edge.check_output("timeout 120 sh -c 'while pgrep -f \"[p]ipelit-edge-nginx\" >/dev/null; do sleep 0.5; done'")
    assert any(line.startswith(KILL_AT) for line in seen), "".join(seen)[-3000:]
    edge.check_output(
        "printf 'half written' > /etc/nginx/sites-available/.pipelit-edge-tmp-pipelit-edge-pipelit.conf && rm -rf /etc/letsencrypt"
    )
    assert edge.run("nginx -t").rc != 0
    assert_converges_and_verifies(edge)
    assert not edge.file("/etc/nginx/sites-enabled/pipelit-edge-extra.conf").exists
    assert not edge.file("/etc/nginx/sites-available/.pipelit-edge-tmp-pipelit-edge-pipelit.conf").exists
    assert "client_max_body_size 61m;" not in edge.file("/etc/nginx/sites-available/pipelit-edge-pipelit.conf").content_string
    assert edge.file(f"{TLS_DIR}/fullchain.pem").is_symlink
    assert edge.file("/etc/letsencrypt/renewal/pipelit-edge-pipelit.conf").exists


def test_a_reload_that_does_not_take_fails_and_is_not_recorded(edge):
    # A master that cannot act on the reload (stopped) starts no new workers:
    # systemctl reload still succeeds, the tool does not.
    master = edge.check_output("cat /run/nginx.pid")
    edge.check_output(f"kill -STOP {master}")
    try:
        result = edge.run(f"{TOOL} reload --timeout 3")
    finally:
        edge.check_output(f"kill -CONT {master}")
    assert result.rc != 0
    assert "nginx did not load the new configuration within 3" in result.stderr
    # Once the master runs again, a reload takes.
    assert edge.run(f"{TOOL} reload").rc == 0
