"""The ufw role's reconciliation plan (roles/ufw/filter_plugins/ufw.py,
ufw_stale_rules): ufw's rule tuples in, the role's own rules to delete out.
A rule is the role's by its comment alone; everything else is left alone."""

from __future__ import annotations

import pytest
import ufw

SERVICE = ["80/tcp", "443/tcp"]
DENIED = ["8000/tcp", "6379/tcp"]


def hexed(comment):
    return comment.encode("utf-8").hex()


def tuples(rule, port, proto, comment, families=("v4", "v6")):
    """The tuple lines tasks/state.yml reads for a rule from anywhere, as ufw writes them."""
    suffix = f" in comment={hexed(comment)}" if comment else " in"
    lines = []
    if "v4" in families:
        lines.append(f"v4 {rule} {proto} {port} 0.0.0.0/0 any 0.0.0.0/0{suffix}")
    if "v6" in families:
        lines.append(f"v6 {rule} {proto} {port} ::/0 any ::/0{suffix}")
    return lines


def in_place(service=SERVICE, denied=DENIED, ssh_port=2222):
    """What a converged host holds for these variables: SSH, service, denied."""
    lines = tuples("limit", ssh_port, "tcp", "pipelit-edge ssh")
    for entry in ufw.ufw_ports(service):
        lines += tuples("allow", entry["port"], entry["proto"], "pipelit-edge service")
    for entry in ufw.ufw_ports(denied):
        lines += tuples("deny", entry["port"], entry["proto"], "pipelit-edge denied")
    return lines


def plan(lines, service=SERVICE, denied=DENIED, ipv6=True):
    return ufw.ufw_stale_rules(lines, service, denied, ipv6)


def test_the_real_tuple_format_is_read():
    # As molecule/ufw/tests/test_validation.py has them from a real host.
    lines = [
        "v4 allow tcp 8081 0.0.0.0/0 any 0.0.0.0/0 in comment=706970656c69742d656467652073657276696365",
        "v6 allow tcp 8081 ::/0 any ::/0 in comment=706970656c69742d656467652073657276696365",
    ]
    assert plan(lines) == [{"rule": "allow", "port": 8081, "proto": "tcp", "comment": "pipelit-edge service", "families": ["v4", "v6"]}]


def test_nothing_to_delete_when_everything_is_in_place():
    assert plan(in_place()) == []
    assert (
        plan(
            in_place(service=["80/tcp", "443/tcp", "8443"], denied=["8000/tcp", "53/udp"]),
            ["80/tcp", "443/tcp", "8443"],
            ["8000/tcp", "53/udp"],
        )
        == []
    )
    assert plan([]) == []


def test_the_plan_is_empty_after_applying_it():
    lines = in_place(service=[*SERVICE, "8080/tcp", "8443/tcp"])
    stale = plan(lines)
    assert [(entry["rule"], entry["port"], entry["proto"]) for entry in stale] == [("allow", 8080, "tcp"), ("allow", 8443, "tcp")]
    remaining = [line for line in lines if not any(f" {entry['rule']} {entry['proto']} {entry['port']} " in line for entry in stale)]
    assert remaining == in_place()
    assert plan(remaining) == []


def test_a_removed_site_port_is_deleted_for_both_families_once():
    stale = plan(in_place(service=[*SERVICE, "8081/tcp"]))
    assert stale == [{"rule": "allow", "port": 8081, "proto": "tcp", "comment": "pipelit-edge service", "families": ["v4", "v6"]}]


def test_a_removed_denied_port_is_deleted():
    stale = plan(in_place(denied=[*DENIED, "6399/tcp"]))
    assert stale == [{"rule": "deny", "port": 6399, "proto": "tcp", "comment": "pipelit-edge denied", "families": ["v4", "v6"]}]


def test_a_port_moved_from_allowed_to_denied_loses_its_allow_rule():
    # 8080 was served; now it is a backend port, denied.
    lines = in_place(service=[*SERVICE, "8080/tcp"])
    stale = plan(lines, denied=[*DENIED, "8080/tcp"])
    assert [(entry["rule"], entry["port"], entry["proto"]) for entry in stale] == [("allow", 8080, "tcp")]


def test_a_port_moved_from_denied_to_allowed_loses_its_deny_rule():
    lines = in_place(denied=[*DENIED, "8080/tcp"])
    stale = plan(lines, service=[*SERVICE, "8080/tcp"])
    assert [(entry["rule"], entry["port"], entry["proto"]) for entry in stale] == [("deny", 8080, "tcp")]


@pytest.mark.parametrize(
    ("held", "wanted", "stale"),
    [
        # Another proto is another rule: the old one goes.
        ("443/udp", "443/tcp", [("allow", 443, "udp")]),
        ("443/tcp", "443/udp", [("allow", 443, "tcp")]),
        # A bare port is proto any in ufw, not tcp and udp.
        ("443", "443/tcp", [("allow", 443, "any")]),
        ("443/tcp", "443", [("allow", 443, "tcp")]),
        ("443", "443", []),
        ("53/udp", "53/udp", []),
    ],
)
def test_protos_are_told_apart(held, wanted, stale):
    lines = in_place(service=["80/tcp", held])
    assert [(entry["rule"], entry["port"], entry["proto"]) for entry in plan(lines, service=["80/tcp", wanted])] == stale


def test_udp_denied_port_removed():
    lines = in_place(denied=["8000/tcp", "53/udp"])
    assert [(entry["rule"], entry["port"], entry["proto"]) for entry in plan(lines, denied=["8000/tcp"])] == [("deny", 53, "udp")]


def test_a_v6_only_leftover_is_deleted():
    lines = in_place() + tuples("allow", 8443, "tcp", "pipelit-edge service", families=("v6",))
    assert plan(lines) == [{"rule": "allow", "port": 8443, "proto": "tcp", "comment": "pipelit-edge service", "families": ["v6"]}]


def test_a_v4_only_leftover_is_deleted():
    lines = in_place() + tuples("deny", 4000, "tcp", "pipelit-edge denied", families=("v4",))
    assert plan(lines) == [{"rule": "deny", "port": 4000, "proto": "tcp", "comment": "pipelit-edge denied", "families": ["v4"]}]


def test_without_ipv6_the_v6_rules_are_not_planned():
    # ufw ignores user6.rules with IPV6=no, and cannot delete from it.
    lines = in_place() + tuples("allow", 8443, "tcp", "pipelit-edge service")
    assert plan(lines, ipv6=False) == [
        {"rule": "allow", "port": 8443, "proto": "tcp", "comment": "pipelit-edge service", "families": ["v4"]}
    ]
    assert plan(tuples("allow", 8443, "tcp", "pipelit-edge service", families=("v6",)), ipv6=False) == []


@pytest.mark.parametrize(
    "foreign",
    [
        # The operator's own, with another comment or none.
        tuples("allow", 9999, "tcp", "operator"),
        tuples("allow", 9999, "tcp", None),
        tuples("deny", 8081, "tcp", "pipelit-edge"),
        tuples("allow", 8081, "tcp", "pipelit-edge service (by hand)"),
        # SSH's rule, even on a port no variable names any more.
        tuples("limit", 22, "tcp", "pipelit-edge ssh"),
        tuples("allow", 2200, "tcp", "pipelit-edge ssh"),
        # ufw_rules' rules, with a source.
        ["v4 allow tcp 9100 0.0.0.0/0 any 192.0.2.0/24 in comment=" + hexed("metrics from the monitoring network")],
        ["v6 allow tcp 9100 ::/0 any 2001:db8:100::/48 in comment=" + hexed("metrics over IPv6")],
        ["v4 reject any 53 0.0.0.0/0 any 198.51.100.0/24 in"],
    ],
)
def test_rules_without_the_roles_comments_are_never_touched(foreign):
    assert plan(in_place() + foreign) == []


@pytest.mark.parametrize(
    "line",
    [
        # The role's comment on shapes it never adds: a delete by port could
        # not name them, so they are left alone.
        "v4 allow tcp 8081 0.0.0.0/0 any 192.0.2.0/24 in comment=" + hexed("pipelit-edge service"),
        "v4 allow tcp 8081 0.0.0.0/0 any 0.0.0.0/0 in_eth0 comment=" + hexed("pipelit-edge service"),
        "v4 allow tcp 8081 0.0.0.0/0 any 0.0.0.0/0 out comment=" + hexed("pipelit-edge service"),
        "v4 allow tcp 8000:8010 0.0.0.0/0 any 0.0.0.0/0 in comment=" + hexed("pipelit-edge service"),
        "v4 allow tcp 8081 0.0.0.0/0 1024 0.0.0.0/0 in comment=" + hexed("pipelit-edge service"),
        "v4 allow_log tcp 8081 0.0.0.0/0 any 0.0.0.0/0 in comment=" + hexed("pipelit-edge service"),
        "v4 route:allow tcp 8081 0.0.0.0/0 any 0.0.0.0/0 in comment=" + hexed("pipelit-edge service"),
        "v4 allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 Apache - in comment=" + hexed("pipelit-edge service"),
        # Not ufw's format: a comment that is not hex, a truncated line.
        "v4 allow tcp 8081 0.0.0.0/0 any 0.0.0.0/0 in comment=zz",
        "v4 allow tcp 8081 comment=" + hexed("pipelit-edge service"),
        "",
    ],
)
def test_shapes_the_role_never_adds_are_left_alone(line):
    assert plan([*in_place(), line]) == []


def test_the_role_comment_on_the_wrong_action_is_stale():
    # "pipelit-edge service" is only ever an allow rule; a deny with it is left over.
    lines = in_place() + tuples("deny", 80, "udp", "pipelit-edge service")
    assert [(entry["rule"], entry["port"], entry["proto"]) for entry in plan(lines)] == [("deny", 80, "udp")]


def test_the_order_is_ufws_and_each_rule_comes_once():
    lines = (
        tuples("allow", 8443, "tcp", "pipelit-edge service", families=("v4",))
        + in_place()
        + tuples("deny", 6399, "tcp", "pipelit-edge denied")
        + tuples("allow", 8443, "tcp", "pipelit-edge service", families=("v6",))
    )
    assert plan(lines) == [
        {"rule": "allow", "port": 8443, "proto": "tcp", "comment": "pipelit-edge service", "families": ["v4", "v6"]},
        {"rule": "deny", "port": 6399, "proto": "tcp", "comment": "pipelit-edge denied", "families": ["v4", "v6"]},
    ]


def test_surrounding_whitespace_is_ignored():
    lines = [f"  {line}  \n" for line in in_place(service=[*SERVICE, "8081/tcp"])]
    assert [entry["port"] for entry in plan(lines)] == [8081]


def test_an_empty_service_list_deletes_every_service_rule():
    assert [(entry["rule"], entry["port"]) for entry in plan(in_place(), service=[])] == [("allow", 80), ("allow", 443)]


@pytest.mark.parametrize("comment", ["pipelit-edge service", "pipelit-edge denied", "pipelit-edge ssh", " pipelit-edge ssh "])
def test_extra_rules_may_not_take_the_roles_comments(comment):
    found = ufw.ufw_input_errors([{"port": 9100, "proto": "tcp", "rule": "allow", "comment": comment}], SERVICE, DENIED, 22, True)
    assert len(found) == 1 and found[0].startswith("ufw_rules[0].comment: ") and "the role's own rules" in found[0], found


def test_the_filter_is_registered():
    assert ufw.FilterModule().filters()["ufw_stale_rules"] is ufw.ufw_stale_rules


# ufw_own_ports: what tasks/restore.yml puts back when a later role fails.


def test_the_ports_held_before_are_read_back_in_ufws_order():
    lines = in_place(service=["80/tcp", "443/tcp", "8443"], denied=["8000/tcp", "53/udp"])
    assert ufw.ufw_own_ports(lines, "pipelit-edge service") == ["80/tcp", "443/tcp", "8443"]
    assert ufw.ufw_own_ports(lines, "pipelit-edge denied") == ["8000/tcp", "53/udp"]


def test_restoring_the_ports_read_before_plans_away_what_the_run_added():
    before = in_place()
    after = in_place(service=[*SERVICE, "8080/tcp", "8443/tcp"], denied=[*DENIED, "6399/tcp"])
    stale = plan(after, ufw.ufw_own_ports(before, "pipelit-edge service"), ufw.ufw_own_ports(before, "pipelit-edge denied"))
    assert [(entry["rule"], entry["port"]) for entry in stale] == [("allow", 8080), ("allow", 8443), ("deny", 6399)]


def test_a_first_run_had_no_ports_to_put_back():
    assert ufw.ufw_own_ports([], "pipelit-edge service") == []
    assert ufw.ufw_own_ports(in_place(), "pipelit-edge ssh") == []


@pytest.mark.parametrize(
    "line",
    [
        "v4 deny tcp 443 0.0.0.0/0 any 0.0.0.0/0 in comment=" + hexed("pipelit-edge service"),
        "v4 allow tcp 443 0.0.0.0/0 any 10.0.0.0/8 in comment=" + hexed("pipelit-edge service"),
        "v4 allow tcp 443 0.0.0.0/0 any 0.0.0.0/0 in comment=" + hexed("operator"),
        "v4 allow tcp 443 0.0.0.0/0 any 0.0.0.0/0 in",
    ],
)
def test_rules_of_other_shapes_or_owners_are_not_the_roles_ports(line):
    assert ufw.ufw_own_ports([line], "pipelit-edge service") == []


def test_v6_only_rules_count_only_with_ipv6():
    lines = tuples("allow", 8443, "tcp", "pipelit-edge service", families=("v6",))
    assert ufw.ufw_own_ports(lines, "pipelit-edge service") == ["8443/tcp"]
    assert ufw.ufw_own_ports(lines, "pipelit-edge service", False) == []
