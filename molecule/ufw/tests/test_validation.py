"""The role's filters against what ufw really wrote on the converged host
(roles/ufw/filter_plugins/ufw.py). The host-free cases (input checks,
normalisation, policies, rule planning) are unit tests, tests/unit/test_ufw.py
and test_ufw_reconcile.py; test_over_ssh.py shows a bad entry failing a real
run before any rule changes."""

from __future__ import annotations

import importlib.util

from conftest import SCENARIO_DIR, SSH_PORT

_spec = importlib.util.spec_from_file_location("ufw_filters", SCENARIO_DIR.parent.parent / "roles/ufw/filter_plugins/ufw.py")
ufw_filters = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ufw_filters)


def test_the_rules_ufw_wrote_are_recognised_as_in_place(edge):
    """tasks/state.yml skips a rule's module call when this filter finds it in
    the rules ufw wrote on the converged host: each of the role's rules must
    be found there, in the format ufw really writes, or the skip never
    happens."""
    tuples = []
    for family, path in (("v4", "/etc/ufw/user.rules"), ("v6", "/etc/ufw/user6.rules")):
        tuples += [
            f"{family} {line[len('### tuple ### ') :]}"
            for line in edge.file(path).content_string.splitlines()
            if line.startswith("### tuple ### ")
        ]
    in_place = ufw_filters.ufw_rule_in_place
    for port in (80, 443):
        assert in_place(tuples, "allow", port, "tcp", "pipelit-edge service", True), tuples
    for port in (8000, 6379):
        assert in_place(tuples, "deny", port, "tcp", "pipelit-edge denied", True), tuples
    assert in_place(tuples, "limit", SSH_PORT, "tcp", "pipelit-edge ssh", True), tuples
