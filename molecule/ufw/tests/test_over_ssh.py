"""Re-runs of the role over SSH, from this machine, as an operator would.

In file order: bad input changes nothing; a changed rule applies over SSH and
SSH still takes new connections; state: absent removes the rule; check mode on
the converged host changes nothing and warns about Docker.
"""

from __future__ import annotations

import pytest
from conftest import CONVERGE_VARS, EDGE_OVER_SSH, UNLISTED_PORT, connect, converge, recap, snapshot, ssh


def test_bad_input_fails_before_any_change(edge):
    before = snapshot(edge)
    bad_rules = [
        *CONVERGE_VARS["ufw_rules"],
        {"port": 70000, "proto": "tcp", "rule": "allow"},
        {"port": 9091, "proto": "icmp", "rule": "allow"},
        {"port": 9092, "proto": "tcp", "rule": "allow", "from": "10.0.0.300/8"},
        {"port": 9093, "proto": "tcp", "rule": "permit"},
    ]
    first_bad = len(CONVERGE_VARS["ufw_rules"])

    run = converge(extra_vars={"ufw_rules": bad_rules})

    assert run.returncode != 0, run.stdout
    for offset, field in enumerate(("port", "proto", "from", "rule")):
        assert f"ufw_rules[{first_bad + offset}].{field}:" in run.stdout, run.stdout
    assert recap(run.stdout)["failed"] == 1
    assert snapshot(edge) == before


@pytest.fixture(scope="module")
def extra_rule(probe_address):
    return {
        "port": UNLISTED_PORT,
        "proto": "tcp",
        "rule": "allow",
        "from": probe_address,
        "comment": "the probe may reach the listener",
    }


@pytest.fixture(scope="module")
def rule_added(extra_rule):
    return converge(extra_vars={"ufw_rules": [*CONVERGE_VARS["ufw_rules"], extra_rule]})


@pytest.fixture(scope="module")
def rule_removed(rule_added, extra_rule):
    absent = {**extra_rule, "state": "absent"}
    return converge(extra_vars={"ufw_rules": [*CONVERGE_VARS["ufw_rules"], absent]})


def test_changed_rule_is_applied_over_ssh(rule_added):
    assert rule_added.returncode == 0, rule_added.stdout
    # Exactly the new rule changed; and it ran on the host reached over SSH.
    assert recap(rule_added.stdout)["changed"] == 1, rule_added.stdout


def test_ssh_takes_new_connections_after_the_change(rule_added, edge_address):
    result = ssh(edge_address, "sudo -n ufw status | grep -c ' ALLOW '")
    assert result.returncode == 0, result.stdout


def test_added_rule_lets_its_source_in(rule_added, probe, edge):
    assert "the probe may reach the listener" in edge.check_output("LC_ALL=C ufw status")
    succeeded, message = connect(probe, UNLISTED_PORT, timeout=30)
    assert succeeded, message


def test_absent_removes_the_rule(rule_removed, edge):
    assert rule_removed.returncode == 0, rule_removed.stdout
    assert recap(rule_removed.stdout)["changed"] == 1, rule_removed.stdout
    assert f"{UNLISTED_PORT}/tcp" not in edge.check_output("LC_ALL=C ufw status")


def test_removed_rule_shuts_its_source_out(rule_removed, probe, edge_address):
    succeeded, message = connect(probe, UNLISTED_PORT)
    assert not succeeded, message
    assert ssh(edge_address).returncode == 0


@pytest.fixture(scope="module")
def check_run_with_docker(rule_removed, edge):
    # A stand-in dockerd: the role only looks for it.
    edge.check_output("install -m 0755 /dev/null /usr/local/bin/dockerd")
    try:
        yield converge("--check", extra_vars={"ufw_rules": CONVERGE_VARS["ufw_rules"]})
    finally:
        edge.check_output("rm -f /usr/local/bin/dockerd")


def test_check_mode_on_the_converged_host_changes_nothing(check_run_with_docker):
    assert check_run_with_docker.returncode == 0, check_run_with_docker.stdout
    assert recap(check_run_with_docker.stdout)["changed"] == 0, check_run_with_docker.stdout


def test_docker_on_the_host_draws_a_warning(check_run_with_docker):
    output = " ".join(check_run_with_docker.stdout.split())
    assert "[WARNING]: Docker is installed on " + EDGE_OVER_SSH in output, check_run_with_docker.stdout
    assert "/usr/local/bin/dockerd" in output
    assert '"127.0.0.1:8443:443"' in output


def test_no_docker_no_warning(rule_added):
    assert rule_added.returncode == 0, rule_added.stdout
    assert "[WARNING]" not in rule_added.stdout, rule_added.stdout
