"""The SSH port under become: converge.yml logs in as a non-root user with
ansible_become: true as a host variable (which outranks any task's
`become: false`, while sudo's env_reset drops SSH_CONNECTION), with sshd's
port given only as an SSH option. The role must still open that port, and
must stop, not guess 22, when no process of the session tells it."""

from __future__ import annotations

import pytest
from conftest import SSH_PORT, SSH_USER_WITHOUT_SESSION_ENV, converge, recap, snapshot


def rule_targets(edge):
    """The `To` column of every rule ufw has, e.g. {"2222/tcp", "2222/tcp (v6)", ...}."""
    targets = set()
    for line in edge.check_output("LC_ALL=C ufw status").splitlines():
        fields = line.split()
        if fields and fields[0][0].isdigit():
            targets.add(fields[0] + (" (v6)" if fields[1:2] == ["(v6)"] else ""))
    return targets


def test_ssh_rule_is_on_the_session_port_not_22(edge):
    targets = rule_targets(edge)
    assert f"{SSH_PORT}/tcp" in targets and f"{SSH_PORT}/tcp (v6)" in targets, targets
    # 22 would be the old guess under sudo; sshd does not listen there.
    assert not {"22/tcp", "22", "22/tcp (v6)"} & targets, targets


@pytest.fixture(scope="module")
def without_session_env(edge):
    """A run as the user whose sessions hide SSH_CONNECTION (a login shell of
    prepare.yml's), with become as always; and the rules before it."""
    before = snapshot(edge)
    return before, converge(extra_vars={"ansible_user": SSH_USER_WITHOUT_SESSION_ENV})


def test_unknown_port_stops_the_role_before_any_change(edge, without_session_env):
    before, run = without_session_env
    assert run.returncode != 0, run.stdout
    assert "Cannot tell which port sshd accepted" in run.stdout, run.stdout
    assert "Set ufw_ssh_port" in " ".join(run.stdout.split()), run.stdout
    assert recap(run.stdout)["failed"] == 1
    assert recap(run.stdout)["changed"] == 0
    assert snapshot(edge) == before


def test_an_explicit_port_needs_no_session_env(without_session_env):
    run = converge(extra_vars={"ansible_user": SSH_USER_WITHOUT_SESSION_ENV, "ufw_ssh_port": SSH_PORT})
    assert run.returncode == 0, run.stdout
    assert recap(run.stdout)["changed"] == 0, run.stdout
