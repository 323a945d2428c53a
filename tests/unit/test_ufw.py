"""The ufw role's rule planning (roles/ufw/filter_plugins/ufw.py): its input
checks, the normalised ports and rules it applies, the policies it reads, and
when it may skip a rule already in place. The host-free cases of
molecule/ufw/tests/test_validation.py are here too, so they run without a
container; that scenario keeps checking the filter against the rules ufw
really wrote."""

from __future__ import annotations

import pytest
import ufw

SERVICE = ["80/tcp", "443/tcp"]
DENIED = ["8000/tcp", "6379/tcp"]


def errors(rules=(), service=SERVICE, denied=DENIED, ssh_port=22, ipv6=True):
    return ufw.ufw_input_errors(list(rules), service, denied, ssh_port, ipv6)


def test_defaults_are_valid():
    assert errors() == []


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"port": 0, "proto": "tcp", "rule": "allow"}, "ufw_rules[0].port: 0 is not a port number"),
        ({"port": True, "proto": "tcp", "rule": "allow"}, "ufw_rules[0].port: True is not a port number"),
        ({"port": "http", "proto": "tcp", "rule": "allow"}, "ufw_rules[0].port: 'http' is not a port number"),
        ({"port": 9000, "proto": "sctp", "rule": "allow"}, "ufw_rules[0].proto: 'sctp' is not one of"),
        ({"port": 9000, "proto": "tcp", "rule": "drop"}, "ufw_rules[0].rule: 'drop' is not one of"),
        ({"port": 9000, "proto": "tcp", "rule": "allow", "from": "192.0.2.1/24"}, "ufw_rules[0].from:"),
        ({"port": 9000, "proto": "tcp", "rule": "allow", "from": "2001:db8::g"}, "ufw_rules[0].from:"),
        ({"port": 9000, "proto": "tcp", "rule": "allow", "from": " "}, "ufw_rules[0].from:"),
        ({"port": 9000, "proto": "tcp", "rule": "allow", "from": 10}, "ufw_rules[0].from:"),
        ({"port": 9000, "proto": "tcp", "rule": "allow", "state": "gone"}, "ufw_rules[0].state: 'gone'"),
        ({"port": 9000, "proto": "tcp", "rule": "allow", "comment": "it's"}, "ufw_rules[0].comment:"),
        ({"port": 9000, "proto": "tcp", "rule": "allow", "comment": "a\nb"}, "ufw_rules[0].comment:"),
        ({"port": 9000, "proto": "tcp", "rule": "allow", "comment": ""}, "ufw_rules[0].comment:"),
        ({"port": 9000, "proto": "tcp"}, "ufw_rules[0].rule: missing"),
        ({"port": 9000, "proto": "tcp", "rule": "allow", "to": "any"}, "ufw_rules[0].to: unknown field"),
        ("9000/tcp", "ufw_rules[0]: must be a mapping with port, proto and rule, not '9000/tcp'"),
        # Overlaps with the role's own rules, which come first.
        ({"port": 8000, "proto": "tcp", "rule": "allow", "from": "192.0.2.0/24"}, "ufw_rules[0].port: 8000/tcp is in ufw_denied_ports[0]"),
        ({"port": 443, "proto": "any", "rule": "deny"}, "ufw_rules[0].port: 443 is in ufw_service_ports[1]"),
        ({"port": 22, "proto": "tcp", "rule": "allow", "state": "absent"}, "ufw_rules[0].port: 22/tcp is the SSH port"),
        ({"port": 22, "proto": "udp", "rule": "allow"}, None),  # the SSH rule is tcp only
    ],
)
def test_bad_rule_is_named_by_index_and_field(rule, expected):
    found = errors([rule])
    if expected is None:
        assert found == []
    else:
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
    rules = [
        {"port": 9100, "proto": "tcp", "rule": "allow", "from": "192.0.2.10", "comment": "scrape"},
        {"port": 9100, "proto": "tcp", "rule": "allow", "from": "2001:db8::/32"},
        {"port": 53, "proto": "any", "rule": "reject", "from": "any"},
        {"port": "51820", "proto": "udp", "rule": "limit"},
        # Removing an old rule for one source on a served port is fine.
        {"port": 443, "proto": "tcp", "rule": "allow", "from": "198.51.100.0/24", "state": "absent"},
    ]
    assert errors(rules) == []


def test_duplicate_rules_are_refused():
    rule = {"port": 9100, "proto": "tcp", "rule": "allow", "from": "192.0.2.0/24"}
    assert errors([rule, {**rule, "rule": "deny"}]) == ["ufw_rules[1]: same port, proto and from as ufw_rules[0]; keep one of them"]
    # Another source is another rule.
    assert errors([rule, {**rule, "from": "192.0.3.0/24"}]) == []


def test_ipv6_source_needs_ipv6():
    found = errors([{"port": 9100, "proto": "tcp", "rule": "allow", "from": "2001:db8::/32"}], ipv6=False)
    assert found == ["ufw_rules[0].from: '2001:db8::/32' is IPv6, but ufw_ipv6 is false"]


@pytest.mark.parametrize(
    ("service", "denied", "ssh_port", "expected"),
    [
        (["80/tcp", "https"], DENIED, 22, "ufw_service_ports[1]: 'https' is not PORT or PORT/PROTO"),
        (["80/tcp", True], DENIED, 22, "ufw_service_ports[1]: True is not PORT or PORT/PROTO"),
        (["80/tcp", 0], DENIED, 22, "ufw_service_ports[1]: 0 is not PORT or PORT/PROTO"),
        (["80/tcp", "70000/tcp"], DENIED, 22, "ufw_service_ports[1]: '70000/tcp' is not PORT or PORT/PROTO"),
        ("80/tcp", DENIED, 22, "ufw_service_ports: must be a list of PORT or PORT/PROTO entries"),
        (SERVICE, ["8000/sctp"], 22, "ufw_denied_ports[0]: '8000/sctp' is not PORT or PORT/PROTO"),
        (SERVICE, ["443"], 22, "ufw_denied_ports[0]: 443 is in ufw_service_ports[1]"),
        (SERVICE, ["2222/tcp"], 2222, "ufw_denied_ports[0]: 2222/tcp is the SSH port"),
        (["22/tcp"], DENIED, 22, "ufw_service_ports[0]: 22/tcp is the SSH port"),
        (SERVICE, DENIED, 65536, "ufw_ssh_port: 65536 is not a port number"),
        (SERVICE, DENIED, "ssh", "ufw_ssh_port: 'ssh' is not a port number"),
    ],
)
def test_bad_port_lists(service, denied, ssh_port, expected):
    found = errors(service=service, denied=denied, ssh_port=ssh_port)
    assert any(message.startswith(expected) for message in found), found


def test_ssh_port_as_text_is_a_port():
    assert errors(ssh_port=" 2222 ") == []


def test_rules_not_a_list():
    assert errors(rules=()) == []
    assert ufw.ufw_input_errors({"port": 1}, SERVICE, DENIED, 22) == [
        "ufw_rules: must be a list of rules (mappings with port, proto and rule)"
    ]


def test_port_lists_normalise_like_ufw():
    assert ufw.ufw_ports(["80/tcp", 443, "53", "80/tcp", "53/UDP"]) == [
        {"port": 80, "proto": "tcp"},
        {"port": 443, "proto": "any"},
        {"port": 53, "proto": "any"},
        {"port": 53, "proto": "udp"},
    ]


def test_rules_normalise_with_every_field_filled():
    assert ufw.ufw_rules_normalize(
        [
            {"port": "9100", "proto": "tcp", "rule": "allow"},
            {"port": 53, "proto": "udp", "rule": "deny", "from": " 192.0.2.0/24 ", "comment": "dns"},
        ]
    ) == [
        {"port": 9100, "proto": "tcp", "rule": "allow", "from": "any", "comment": None, "state": "present"},
        {"port": 53, "proto": "udp", "rule": "deny", "from": "192.0.2.0/24", "comment": "dns", "state": "present"},
    ]
    with pytest.raises(ValueError, match=r"ufw_rules\[0\].proto"):
        ufw.ufw_rules_normalize([{"port": 1, "proto": "icmp", "rule": "allow"}])


def test_policies_are_read_from_etc_default_ufw():
    text = 'IPV6=yes\nDEFAULT_INPUT_POLICY="DROP"\nDEFAULT_OUTPUT_POLICY="ACCEPT"\n  DEFAULT_FORWARD_POLICY=\'REJECT\'\n# DEFAULT_INPUT_POLICY="ACCEPT"\n'
    assert ufw.ufw_policies(text) == {"incoming": "deny", "outgoing": "allow", "routed": "reject"}
    # A value ufw does not know is kept as written.
    assert ufw.ufw_policies("DEFAULT_INPUT_POLICY=odd") == {"incoming": "odd"}


COMMENT = "pipelit-edge service"
TUPLES_V4 = ["v4 allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in comment=" + COMMENT.encode().hex()]
TUPLES_V6 = ["v6 allow tcp 80 ::/0 any ::/0 in comment=" + COMMENT.encode().hex()]


def test_a_rule_is_in_place_only_with_both_families_and_its_comment():
    in_place = ufw.ufw_rule_in_place
    assert in_place(TUPLES_V4 + TUPLES_V6, "allow", 80, "tcp", COMMENT, True)
    assert in_place(TUPLES_V4, "allow", 80, "tcp", COMMENT, False)
    assert in_place([" " + TUPLES_V4[0] + " \n"], "allow", 80, "tcp", COMMENT, False)
    # IPv6 missing (added while IPV6=no), another comment, rule, port or proto: the module must run.
    assert not in_place(TUPLES_V4, "allow", 80, "tcp", COMMENT, True)
    assert not in_place(TUPLES_V4 + TUPLES_V6, "allow", 80, "tcp", "pipelit-edge web", True)
    assert not in_place(TUPLES_V4 + TUPLES_V6, "limit", 80, "tcp", COMMENT, True)
    assert not in_place(TUPLES_V4 + TUPLES_V6, "allow", 8080, "tcp", COMMENT, True)
    assert not in_place(TUPLES_V4 + TUPLES_V6, "allow", 80, "udp", COMMENT, True)
    # Without a comment, the tuple ends at "in".
    assert in_place(["v4 deny tcp 8000 0.0.0.0/0 any 0.0.0.0/0 in"], "deny", 8000, "tcp", None, False)
    assert not in_place(TUPLES_V4, "allow", 80, "tcp", None, False)


def test_the_filters_are_registered():
    assert set(ufw.FilterModule().filters()) >= {
        "ufw_input_errors",
        "ufw_ports",
        "ufw_rules_normalize",
        "ufw_policies",
        "ufw_rule_in_place",
    }
