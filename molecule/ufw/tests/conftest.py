"""Hosts, addresses and helpers shared by the ufw scenario's tests.

Checks of what the firewall lets in run on the probe (another host on the
scenario network). Re-runs of the role go over SSH from this machine, like an
operator's: ansible-playbook with the scenario's converge.yml.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import docker
import pytest
import testinfra
import yaml

SCENARIO_DIR = Path(__file__).resolve().parent.parent
INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
EDGE = "edge-ufw"
PROBE = "probe-ufw"
NETWORK = "pipelit-edge-ufw"
# converge.yml adds the edge host under this name, reached over SSH.
EDGE_OVER_SSH = "edge-ufw-ssh"
# The ports prepare.yml runs listeners on, bound to 0.0.0.0.
SERVED_PORTS = (80, 443)
DENIED_PORTS = (8000, 6379)
UNLISTED_PORT = 9090


def _load(name):
    return yaml.safe_load((SCENARIO_DIR / "vars" / name).read_text())


SSH_VARS = _load("ssh.yml")
SSH_PORT = SSH_VARS["edge_ssh_port"]
# The operator's login user (sudo, no password), and the one whose sessions
# hide SSH_CONNECTION.
SSH_USER = SSH_VARS["edge_ssh_user"]
SSH_USER_WITHOUT_SESSION_ENV = SSH_VARS["edge_ssh_user_without_session_env"]
# vars/ssh.yml: edge_ssh_key, in the ephemeral directory.
SSH_KEY = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "edge_ssh_key"
CONVERGE_VARS = _load("ufw.yml")


@pytest.fixture(scope="session")
def edge():
    return testinfra.get_host(f"ansible://{EDGE}", ansible_inventory=INVENTORY)


@pytest.fixture(scope="session")
def probe():
    return testinfra.get_host(f"ansible://{PROBE}", ansible_inventory=INVENTORY)


@pytest.fixture(scope="session")
def edge_address():
    """The edge host's address on the scenario network (routable from here)."""
    container = docker.from_env().containers.get(EDGE)
    return container.attrs["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]


@pytest.fixture(scope="session")
def probe_address():
    container = docker.from_env().containers.get(PROBE)
    return container.attrs["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]


def connect(probe, port, timeout=2):
    """Try a TCP connection from the probe to the edge: (succeeded, nc's message)."""
    result = probe.run(f"nc -zv -w {timeout} {EDGE} {port}")
    return result.rc == 0, (result.stdout + result.stderr).strip()


def converge(*options, extra_vars=None):
    """Run converge.yml (the role over SSH) again; return the finished process.

    Output is merged so failures show the whole run in pytest's report.
    """
    command = ["ansible-playbook", "-i", os.path.dirname(INVENTORY), str(SCENARIO_DIR / "converge.yml"), *options]
    if extra_vars is not None:
        command += ["-e", json.dumps(extra_vars)]
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    return subprocess.run(
        command, cwd=SCENARIO_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, check=False
    )


def recap(output, host=EDGE_OVER_SSH):
    """The PLAY RECAP counters of one host, as {ok: 3, changed: 1, ...}."""
    for line in output.splitlines():
        if line.startswith(f"{host} ") and "ok=" in line:
            return {key: int(value) for key, value in (item.split("=") for item in line.split(":", 1)[1].split())}
    raise AssertionError(f"no PLAY RECAP line for {host} in:\n{output}")


RULES_FILES = "/etc/ufw/user.rules /etc/ufw/user6.rules"


def snapshot(edge):
    """The rules as ufw numbers them and the files it keeps them in."""
    return edge.check_output("LC_ALL=C ufw status numbered"), edge.check_output(f"sha256sum {RULES_FILES}")


def ssh(address, command="true"):
    """A new SSH connection to the edge host as the operator's user (no shared
    master connection): what the operator's next login does."""
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(SSH_KEY),
            "-p",
            str(SSH_PORT),
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=30",
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=none",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            f"{SSH_USER}@{address}",
            command,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        check=False,
    )
