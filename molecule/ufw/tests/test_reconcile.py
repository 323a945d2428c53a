"""The role deletes its own rules that no variable asks for any more, and no
one else's (tasks/rules.yml, filter_plugins/ufw.py ufw_stale_rules).

In order, over SSH like every re-run here: a site's port 8081/tcp is served
(allowed for IPv4 and IPv6) while the operator adds a rule of their own by
hand; a check run without 8081 would delete it and changes nothing; 8081
moves to the denied ports (its allow rule goes, a deny rule comes, in one
run); the scenario's own variables again delete the deny rule and keep the
operator's rule; a second run changes nothing. The operator's rule is
deleted at the end, so the later tests find the scenario as converged.
"""

from __future__ import annotations

import pytest
from conftest import CONVERGE_VARS, DENIED_PORTS, SERVED_PORTS, converge, recap, snapshot

EXTRA_PORT = 8081
OPERATOR_PORT = 9999
OPERATOR_RULE = f"allow {OPERATOR_PORT}/tcp"
SERVICE = [f"{port}/tcp" for port in SERVED_PORTS]
DENIED = [f"{port}/tcp" for port in DENIED_PORTS]


def actions(edge, port):
    """`ufw status`'s action and comment for PORT/tcp, IPv4 and IPv6:
    {"8081/tcp": ("ALLOW", "pipelit-edge service"), "8081/tcp (v6)": ...}."""
    found = {}
    for line in edge.check_output("LC_ALL=C ufw status").splitlines():
        rule, _, comment = line.partition("#")
        fields = rule.split()
        if fields and fields[0] == f"{port}/tcp":
            v6 = fields[1:2] == ["(v6)"]
            target = fields[0] + (" (v6)" if v6 else "")
            found[target] = (fields[2 if v6 else 1], comment.strip())
    return found


@pytest.fixture(scope="module")
def operator_rule(edge):
    """A rule the operator added by hand, with a comment of their own; deleted again at the end."""
    edge.check_output(f"ufw {OPERATOR_RULE} comment 'operator'")
    try:
        yield
    finally:
        edge.run(f"ufw delete {OPERATOR_RULE}")


@pytest.fixture(scope="module")
def served(operator_rule):
    return converge(extra_vars={"ufw_service_ports": [*SERVICE, f"{EXTRA_PORT}/tcp"]})


@pytest.fixture(scope="module")
def checked(served, edge):
    before = snapshot(edge)
    return before, converge("--check")


@pytest.fixture(scope="module")
def denied(checked):
    return converge(extra_vars={"ufw_denied_ports": [*DENIED, f"{EXTRA_PORT}/tcp"]})


@pytest.fixture(scope="module")
def removed(denied):
    return converge()


@pytest.fixture(scope="module")
def again(removed):
    return converge()


def test_an_extra_service_port_is_allowed(served, edge):
    assert served.returncode == 0, served.stdout
    assert recap(served.stdout)["changed"] == 1, served.stdout
    assert actions(edge, EXTRA_PORT) == {
        f"{EXTRA_PORT}/tcp": ("ALLOW", "pipelit-edge service"),
        f"{EXTRA_PORT}/tcp (v6)": ("ALLOW", "pipelit-edge service"),
    }
    assert actions(edge, OPERATOR_PORT) == {
        f"{OPERATOR_PORT}/tcp": ("ALLOW", "operator"),
        f"{OPERATOR_PORT}/tcp (v6)": ("ALLOW", "operator"),
    }


def test_check_mode_shows_the_deletion_and_changes_nothing(checked, edge):
    before, run = checked
    assert run.returncode == 0, run.stdout
    assert recap(run.stdout)["changed"] == 1, run.stdout
    assert f"allow {EXTRA_PORT}/tcp (pipelit-edge service; v4, v6)" in run.stdout, run.stdout
    assert snapshot(edge) == before


def test_a_served_port_moved_to_the_denied_ones_is_denied_in_one_run(denied, edge):
    assert denied.returncode == 0, denied.stdout
    # The allow rule deleted, the deny rule added.
    assert recap(denied.stdout)["changed"] == 2, denied.stdout
    assert f"allow {EXTRA_PORT}/tcp (pipelit-edge service; v4, v6)" in denied.stdout, denied.stdout
    assert actions(edge, EXTRA_PORT) == {
        f"{EXTRA_PORT}/tcp": ("DENY", "pipelit-edge denied"),
        f"{EXTRA_PORT}/tcp (v6)": ("DENY", "pipelit-edge denied"),
    }


def test_a_port_no_variable_names_is_gone(removed, edge):
    assert removed.returncode == 0, removed.stdout
    assert recap(removed.stdout)["changed"] == 1, removed.stdout
    assert f"deny {EXTRA_PORT}/tcp (pipelit-edge denied; v4, v6)" in removed.stdout, removed.stdout
    assert actions(edge, EXTRA_PORT) == {}
    assert str(EXTRA_PORT) not in edge.check_output("LC_ALL=C ufw status")


def test_the_operators_own_rule_is_kept(removed, edge):
    assert actions(edge, OPERATOR_PORT) == {
        f"{OPERATOR_PORT}/tcp": ("ALLOW", "operator"),
        f"{OPERATOR_PORT}/tcp (v6)": ("ALLOW", "operator"),
    }


def test_the_scenarios_own_rules_are_all_kept(removed, edge):
    status = edge.check_output("LC_ALL=C ufw status")
    for port in SERVED_PORTS:
        assert actions(edge, port) == {
            f"{port}/tcp": ("ALLOW", "pipelit-edge service"),
            f"{port}/tcp (v6)": ("ALLOW", "pipelit-edge service"),
        }
    for port in DENIED_PORTS:
        assert actions(edge, port) == {f"{port}/tcp": ("DENY", "pipelit-edge denied"), f"{port}/tcp (v6)": ("DENY", "pipelit-edge denied")}
    for rule in CONVERGE_VARS["ufw_rules"]:
        if rule.get("comment"):
            assert f"# {rule['comment']}" in status, status


def test_a_second_run_changes_nothing(again):
    assert again.returncode == 0, again.stdout
    assert recap(again.stdout)["changed"] == 0, again.stdout
