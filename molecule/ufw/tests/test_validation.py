"""The role's input checks (roles/ufw/filter_plugins/ufw.py), without a host:
the cases the scenario's runs do not reach. test_over_ssh.py shows a bad
entry failing a real run before any rule changes."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import SCENARIO_DIR, SSH_PORT

_spec = importlib.util.spec_from_file_location("ufw_filters", SCENARIO_DIR.parent.parent / "roles/ufw/filter_plugins/ufw.py")
ufw_filters = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ufw_filters)

SERVICE = ["80/tcp", "443/tcp"]
DENIED = ["8000/tcp", "6379/tcp"]


def errors(rules=(), service=SERVICE, denied=DENIED, ssh_port=22, ipv6=True):
    return ufw_filters.ufw_input_errors(list(rules), service, denied, ssh_port, ipv6)


def test_defaults_are_valid():
    assert errors() == []


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"port": 0, "proto": "tcp", "rule": "allow"}, "ufw_rules[0].port: 0 is not a port number"),
        ({"port": "http", "proto": "tcp", "rule": "allow"}, "ufw_rules[0].port: 'http' is not a port number"),
        ({"port": 9000, "proto": "sctp", "rule": "allow"}, "ufw_rules[0].proto: 'sctp' is not one of"),
        ({"port": 9000, "proto": "tcp", "rule": "drop"}, "ufw_rules[0].rule: 'drop' is not one of"),
        ({"port": 9000, "proto": "tcp", "rule": "allow", "from": "192.0.2.1/24"}, "ufw_rules[0].from:"),
        ({"port": 9000, "proto": "tcp", "rule": "allow", "from": "2001:db8::g"}, "ufw_rules[0].from:"),
        ({"port": 9000, "proto": "tcp", "rule": "allow", "state": "gone"}, "ufw_rules[0].state: 'gone'"),
        ({"port": 9000, "proto": "tcp", "rule": "allow", "comment": "it's"}, "ufw_rules[0].comment:"),
        ({"port": 9000, "proto": "tcp"}, "ufw_rules[0].rule: missing"),
        ({"port": 9000, "proto": "tcp", "rule": "allow", "to": "any"}, "ufw_rules[0].to: unknown field"),
        # Overlaps with the role's own rules, which come first.
        ({"port": 8000, "proto": "tcp", "rule": "allow", "from": "192.0.2.0/24"}, "ufw_rules[0].port: 8000/tcp is in ufw_denied_ports[0]"),
        ({"port": 443, "proto": "any", "rule": "deny"}, "ufw_rules[0].port: 443 is in ufw_service_ports[1]"),
        ({"port": 22, "proto": "tcp", "rule": "allow", "state": "absent"}, "ufw_rules[0].port: 22/tcp is the SSH port"),
    ],
)
def test_bad_rule_is_named_by_index_and_field(rule, expected):
    found = errors([rule])
    assert any(message.startswith(expected) for message in found), found


def test_every_mistake_is_reported_at_once():
    found = errors([{"port": 70000, "proto": "icmp", "rule": "permit", "from": "10.0.0.300"}])
    assert [message.split(":")[0] for message in found] == [
        "ufw_rules[0].port",
        "ufw_rules[0].proto",
        "ufw_rules[0].rule",
        "ufw_rules[0].from",
    ]


def test_valid_rules_pass():
    assert (
        errors(
            [
                {"port": 9100, "proto": "tcp", "rule": "allow", "from": "192.0.2.10", "comment": "scrape"},
                {"port": 9100, "proto": "tcp", "rule": "allow", "from": "2001:db8::/32"},
                {"port": 53, "proto": "any", "rule": "reject", "from": "any"},
                {"port": "51820", "proto": "udp", "rule": "limit"},
                # Removing an old rule for one source on a served port is fine.
                {"port": 443, "proto": "tcp", "rule": "allow", "from": "198.51.100.0/24", "state": "absent"},
            ]
        )
        == []
    )


def test_duplicate_rules_are_refused():
    rule = {"port": 9100, "proto": "tcp", "rule": "allow", "from": "192.0.2.0/24"}
    assert errors([rule, {**rule, "rule": "deny"}]) == ["ufw_rules[1]: same port, proto and from as ufw_rules[0]; keep one of them"]


def test_ipv6_source_needs_ipv6():
    found = errors([{"port": 9100, "proto": "tcp", "rule": "allow", "from": "2001:db8::/32"}], ipv6=False)
    assert found == ["ufw_rules[0].from: '2001:db8::/32' is IPv6, but ufw_ipv6 is false"]


@pytest.mark.parametrize(
    ("service", "denied", "ssh_port", "expected"),
    [
        (["80/tcp", "https"], DENIED, 22, "ufw_service_ports[1]: 'https' is not PORT or PORT/PROTO"),
        (SERVICE, ["8000/sctp"], 22, "ufw_denied_ports[0]: '8000/sctp' is not PORT or PORT/PROTO"),
        (SERVICE, ["443"], 22, "ufw_denied_ports[0]: 443 is in ufw_service_ports[1]"),
        (SERVICE, ["2222/tcp"], 2222, "ufw_denied_ports[0]: 2222/tcp is the SSH port"),
        (["22/tcp"], DENIED, 22, "ufw_service_ports[0]: 22/tcp is the SSH port"),
        (SERVICE, DENIED, 65536, "ufw_ssh_port: 65536 is not a port number"),
    ],
)
def test_bad_port_lists(service, denied, ssh_port, expected):
    found = errors(service=service, denied=denied, ssh_port=ssh_port)
    assert any(message.startswith(expected) for message in found), found


def test_port_lists_normalise_like_ufw():
    assert ufw_filters.ufw_ports(["80/tcp", 443, "53", "80/tcp"]) == [
        {"port": 80, "proto": "tcp"},
        {"port": 443, "proto": "any"},
        {"port": 53, "proto": "any"},
    ]


def test_policies_are_read_from_etc_default_ufw():
    text = 'IPV6=yes\nDEFAULT_INPUT_POLICY="DROP"\nDEFAULT_OUTPUT_POLICY="ACCEPT"\nDEFAULT_FORWARD_POLICY="REJECT"\n'
    assert ufw_filters.ufw_policies(text) == {"incoming": "deny", "outgoing": "allow", "routed": "reject"}


TUPLES_V4 = [
    "v4 allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in comment=706970656c69742d656467652073657276696365",
]
TUPLES_V6 = [
    "v6 allow tcp 80 ::/0 any ::/0 in comment=706970656c69742d656467652073657276696365",
]


def test_a_rule_is_in_place_only_with_both_families_and_its_comment():
    in_place = ufw_filters.ufw_rule_in_place
    assert in_place(TUPLES_V4 + TUPLES_V6, "allow", 80, "tcp", "pipelit-edge service", True)
    assert in_place(TUPLES_V4, "allow", 80, "tcp", "pipelit-edge service", False)
    # IPv6 missing (added while IPV6=no), another comment, rule, port or proto:
    # the module must run.
    assert not in_place(TUPLES_V4, "allow", 80, "tcp", "pipelit-edge service", True)
    assert not in_place(TUPLES_V4 + TUPLES_V6, "allow", 80, "tcp", "pipelit-edge web", True)
    assert not in_place(TUPLES_V4 + TUPLES_V6, "limit", 80, "tcp", "pipelit-edge service", True)
    assert not in_place(TUPLES_V4 + TUPLES_V6, "allow", 8080, "tcp", "pipelit-edge service", True)
    assert not in_place(TUPLES_V4 + TUPLES_V6, "allow", 80, "udp", "pipelit-edge service", True)


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
