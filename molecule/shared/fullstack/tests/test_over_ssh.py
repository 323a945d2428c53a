"""The scenarios that reach the edge over SSH as inventories/prod does (user
admin with sudo, ansible_become: true in the inventory, sshd's port only in the
SSH options): after the playbook enabled the firewall, the operator can still
log in, on that port, and it is the only SSH port the firewall opened."""

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import EDGE_HOST, OVER_SSH, edge_network_address

pytestmark = pytest.mark.skipif(not OVER_SSH, reason="the edge is entered through Docker in this scenario")


@pytest.fixture(scope="module")
def ssh_settings():
    """edge_ssh_port, edge_ssh_user (the scenario's host_vars) and the key prepare made."""
    host_vars = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "host_vars" / f"{EDGE_HOST}.yml"
    settings = yaml.safe_load(host_vars.read_text())
    return settings["edge_ssh_port"], settings["edge_ssh_user"], Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "edge_ssh_key"


def fresh_ssh(ssh_settings, command, port=None):
    """A new ssh process with no shared master connection: the operator's next login."""
    ssh_port, user, key = ssh_settings
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(key),
            "-p",
            str(port or ssh_port),
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
            f"{user}@{edge_network_address()}",
            command,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_fresh_ssh_login_works_after_the_firewall_is_on(ssh_settings, edge):
    assert "Status: active" in edge.check_output("LC_ALL=C ufw status")
    result = fresh_ssh(ssh_settings, "sudo -n true && echo logged-in-with-sudo")
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip() == "logged-in-with-sudo"


def test_the_firewall_allows_the_session_port_and_not_22(ssh_settings, edge):
    ssh_port = ssh_settings[0]
    rules = [line.split() for line in edge.check_output("LC_ALL=C ufw status").splitlines()]
    targets = {fields[0] for fields in rules if fields and fields[0][0].isdigit()}
    assert f"{ssh_port}/tcp" in targets, targets
    assert not {"22", "22/tcp"} & targets, targets
