"""The ranges and formats of the roles' own variables (issue 19,
roles/proxy_sites/filter_plugins/ranges.py): every role's defaults pass, and
for every variable one value out of range is refused, naming the variable,
the value and what is allowed, while the value at the edge of the range
passes. One run of ansible-playbook shows the role's check refusing, before
anything else of the role runs."""

from __future__ import annotations

import re

import pytest
import ranges
import yaml
from conftest import ROOT, ansible_playbook

# Derived defaults ("{{ ... }}") as the roles resolve them with the edge's
# own defaults.
RESOLVED = {
    "certbot_cert_name_prefix": "pipelit-edge-",
    "certbot_dns_credentials_dir": "/etc/letsencrypt/pipelit-edge-dns",
    "certbot_dns_propagation_seconds": 60,
    "certbot_proxy_reload_command": "/usr/local/sbin/pipelit-edge-nginx reload --timeout 30",
    "acme_preflight_controller": "localhost",
    "acme_preflight_certbot_cert_name_prefix": "pipelit-edge-",
    "certificate_alerts_certbot": True,
    "certificate_alerts_caddy": False,
    "certificate_alerts_host_name": "edge.example.com",
    "certificate_alerts_certbot_cert_name_prefix": "pipelit-edge-",
    "edge_verify_address": "edge.example.com",
    "edge_verify_closed_ports": ["8000/tcp", "6379/tcp", "8080/tcp"],
}

CHECKS = {
    "nginx": ranges.nginx_range_errors,
    "caddy": ranges.caddy_range_errors,
    "certbot": ranges.certbot_range_errors,
    "acme_preflight": ranges.acme_preflight_range_errors,
    "certificate_alerts": ranges.certificate_alerts_range_errors,
    "edge_verify": ranges.edge_verify_range_errors,
}


def valid(role):
    """The role's defaults, with the derived ones resolved."""
    values = yaml.safe_load((ROOT / f"roles/{role}/defaults/main.yml").read_text(encoding="utf-8"))
    return {name: RESOLVED.get(name, value) for name, value in values.items()}


def role_of(name):
    return next(role for role in sorted(CHECKS, key=len, reverse=True) if name.startswith(role + "_"))


def errors_with(name, value, **others):
    role = role_of(name)
    return CHECKS[role]({**valid(role), **others, name: value})


@pytest.mark.parametrize("role", sorted(CHECKS))
def test_every_default_is_in_range(role):
    assert CHECKS[role](valid(role)) == []


# (variable, a value out of range, the value at the edge of the range, what is allowed)
CASES = [
    ("nginx_worker_processes", "lots", 1, "auto or a whole number from 1 up"),
    ("nginx_worker_processes", 0, "1", "auto or a whole number from 1 up"),
    ("nginx_worker_connections", -1, 1, "a whole number from 1 up"),
    ("nginx_worker_connections", "0", "1", "a whole number from 1 up"),
    ("nginx_worker_rlimit_nofile", 0, 1, "a whole number from 1 up"),
    ("nginx_worker_shutdown_timeout", "0s", "1ms", "an nginx time above 0"),
    ("nginx_worker_shutdown_timeout", "30m1h", "1h30m", "an nginx time above 0"),
    ("nginx_worker_shutdown_timeout", "5 m", "5", "an nginx time above 0"),
    ("nginx_worker_shutdown_timeout", "1y", "3w3d20h31m23s647ms", "an nginx time above 0"),
    ("nginx_worker_shutdown_timeout", "2147484s", "2147483s", "up to 24 days"),
    ("nginx_self_signed_days", 0, 366, "a whole number from 1 to 366"),
    ("nginx_self_signed_days", 367, 31, "a whole number from 1 to 366"),
    ("nginx_self_signed_renew_days", 365, 364, "a whole number from 1 to 364"),
    ("nginx_self_signed_renew_days", 0, 1, "a whole number from 1 to 364"),
    ("nginx_reload_timeout", 0, 1, "a whole number from 1 up"),
    ("nginx_user", "www data", "nginx", "a user name"),
    ("nginx_site_file_prefix", "", "e", "a non-empty prefix"),
    ("nginx_site_file_prefix", "../", "site.", "a non-empty prefix"),
    ("nginx_listen_ipv6", "maybe", "no", "a boolean"),
    ("caddy_read_header_timeout", "30", "1ns", "a Caddy duration above 0"),
    ("caddy_read_header_timeout", "0s", "1.5d", "a Caddy duration above 0"),
    ("caddy_read_header_timeout", "-5s", "1h30m", "a Caddy duration above 0"),
    ("caddy_certificate_wait_seconds", 0, 1, "a whole number from 1 up"),
    ("certbot_request_timeout", 0, 1, "a whole number from 1 up"),
    ("certbot_request_timeout", 2.5, 2.0, "a whole number from 1 up"),
    ("certbot_cert_name_prefix", "", "x", "a non-empty prefix"),
    ("certbot_proxy_reload_command", " ", "true", "a non-empty string"),
    ("certbot_dns_credentials_dir", "etc/dns", "/d", "an absolute path"),
    ("certbot_dns_propagation_seconds", -1, 0, "a whole number from 0 to 3600"),
    ("certbot_dns_propagation_seconds", 3601, 3600, "a whole number from 0 to 3600"),
    ("acme_preflight_enabled", "enabled", "off", "a boolean"),
    ("acme_preflight_timeout", 0, 0.1, "a number of seconds above 0"),
    ("acme_preflight_timeout", "-1", "0.5", "a number of seconds above 0"),
    ("acme_preflight_timeout", "nan", 10, "a number of seconds above 0"),
    ("acme_preflight_listener_seconds", 0, 1, "a whole number from 1 up"),
    ("acme_preflight_controller", "", "probe", "a non-empty string"),
    ("acme_preflight_certbot_cert_name_prefix", "-a", "a-", "a non-empty prefix"),
    ("certificate_alerts_command_timeout", 0, 1, "a whole number from 1 up"),
    ("certificate_alerts_min_days", -1, 0, "a whole number from 0 up"),
    ("certificate_alerts_min_days", True, "0", "a whole number from 0 up"),
    ("certificate_alerts_randomized_delay", "-1h", "0", "a systemd time span from 0 up"),
    ("certificate_alerts_randomized_delay", "1 fortnight", "1 hour 30min", "a systemd time span from 0 up"),
    ("certificate_alerts_randomized_delay", "soon", "infinity", "a systemd time span from 0 up"),
    ("certificate_alerts_certbot", "nginx", "true", "a boolean"),
    ("certificate_alerts_caddy", 2, 0, "a boolean"),
    ("certificate_alerts_host_name", "", "edge", "a non-empty string"),
    ("certificate_alerts_certbot_cert_name_prefix", "", "p", "a non-empty prefix"),
    ("certificate_alerts_min_days", "soon", None, "a whole number from 0 up"),
    ("certificate_alerts_min_lifetime_fraction", "1", "1/6", "a fraction above 0 and below 1"),
    ("certificate_alerts_min_lifetime_fraction", 0, 0.99, "a fraction above 0 and below 1"),
    ("certbot_renew_before_fraction", "a third", "1/3", "a fraction above 0 and below 1"),
    ("certbot_renew_before_fraction", "3/2", 0.5, "a fraction above 0 and below 1"),
    ("certbot_renew_before_expiry", "30", "30 days", "empty (a fraction of the lifetime) or N hours, N days or N weeks"),
    ("certbot_renew_before_expiry", "0 days", "1 hour", "empty (a fraction of the lifetime) or N hours, N days or N weeks"),
    ("certbot_acme_profile", "short lived", "shortlived", "empty (the CA's default) or a profile name"),
    ("edge_verify_timeout", 0, 1, "a whole number from 1 up"),
    ("edge_verify_min_days_valid", -1, 0, "a whole number from 0 up"),
    ("edge_verify_controller", "", "localhost", "a non-empty string"),
    ("edge_verify_address", " ", "192.0.2.1", "a non-empty string"),
    ("edge_verify_connect_to", "a b", "", "empty or an address"),
    ("edge_verify_http_path", "health", "/", "a path that starts with /"),
    ("edge_verify_token_param", "", "t", "a query parameter name"),
    ("edge_verify_token_param", "a&b", "api_key", "a query parameter name"),
    ("edge_verify_firewall", "sometimes", "yes", "a boolean"),
]


@pytest.mark.parametrize(("name", "bad", "edge", "allowed"), CASES, ids=[f"{case[0]}={case[1]!r}" for case in CASES])
def test_a_value_out_of_range_is_refused_and_the_edge_of_the_range_passes(name, bad, edge, allowed):
    errors = errors_with(name, bad)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{name}: {bad!r} is not "), errors
    assert allowed in errors[0]
    assert errors_with(name, edge) == []


def test_every_variable_of_every_check_has_a_case():
    # A variable the checks read (a key of the roles' validate.yml) without a
    # case here would go untested.
    checked = set()
    for role in CHECKS:
        for task in yaml.safe_load((ROOT / f"roles/{role}/tasks/validate.yml").read_text(encoding="utf-8")):
            for value in task.get("vars", {}).values():
                checked |= set(re.findall(r"'([a-z0-9_]+)': ", value))
    cased = {case[0] for case in CASES} | {
        "acme_preflight_addresses",
        "edge_verify_denied_ports",
        "edge_verify_closed_ports",
        "certbot_platform",
    }
    assert checked == cased


def test_renew_days_must_stay_under_the_lifetime():
    assert errors_with("nginx_self_signed_renew_days", 90, nginx_self_signed_days=90) == [
        "nginx_self_signed_renew_days: 90 is not a whole number from 1 to 89 "
        "(fewer than nginx_self_signed_days, or every run would sign again)"
    ]
    assert errors_with("nginx_self_signed_renew_days", 89, nginx_self_signed_days=90) == []


@pytest.mark.parametrize("platform", ["Debian 12", "Debian 13", ""])
def test_the_ca_default_profile_needs_no_certbot_support(platform):
    assert errors_with("certbot_acme_profile", "", certbot_platform=platform) == []


def test_an_acme_profile_is_refused_where_certbot_cannot_ask_for_one():
    # Debian 12's certbot 2.1 has no --preferred-profile; Debian 13's 4.0 has.
    assert errors_with("certbot_acme_profile", "shortlived", certbot_platform="Debian 12") == [
        "certbot_acme_profile: 'shortlived' cannot be asked for on Debian 12, whose certbot (2.1) has no "
        "--preferred-profile (certbot 4.0 and later, Debian 13); leave it empty for the CA's default profile"
    ]
    assert errors_with("certbot_acme_profile", "shortlived", certbot_platform="Debian 13") == []


def test_min_days_may_be_left_empty_for_the_lifetime_rule():
    for value in (None, "", 0, "14"):
        assert errors_with("certificate_alerts_min_days", value) == []


def test_extra_vars_strings_of_numbers_are_read_as_numbers():
    assert errors_with("nginx_worker_connections", "1024") == []
    assert errors_with("nginx_worker_processes", "auto") == []
    assert errors_with("acme_preflight_timeout", "2.5") == []


@pytest.mark.parametrize("value", [True, False, "true", "False", "yes", "no", "on", "off", "1", "0", 1, 0])
def test_every_boolean_ansible_reads_is_a_boolean(value):
    assert errors_with("nginx_listen_ipv6", value) == []


def test_acme_preflight_addresses_must_be_addresses():
    assert errors_with("acme_preflight_addresses", ["203.0.113.20", "2001:db8::1"]) == []
    assert errors_with("acme_preflight_addresses", ["203.0.113.20", "edge.example.com"]) == [
        "acme_preflight_addresses[1]: 'edge.example.com' is not an IPv4 or IPv6 address"
    ]


def test_ports_are_port_or_port_and_protocol():
    assert errors_with("edge_verify_denied_ports", ["1", "65535/udp"], edge_verify_closed_ports=[]) == []
    assert errors_with("edge_verify_denied_ports", ["0/tcp", "8000/sctp", 8000], edge_verify_closed_ports=[]) == [
        f"edge_verify_denied_ports[{index}]: {value!r} is not PORT or PORT/PROTO (PORT 1-65535, PROTO tcp or udp), such as 8000/tcp"
        for index, value in enumerate(["0/tcp", "8000/sctp", 8000])
    ]
    # A closed port that is a denied one is named once, as a denied port.
    assert errors_with("edge_verify_closed_ports", ["70000/tcp", "1/tcp"], edge_verify_denied_ports=["70000/tcp"]) == [
        "edge_verify_denied_ports[0]: '70000/tcp' is not PORT or PORT/PROTO (PORT 1-65535, PROTO tcp or udp), such as 8000/tcp"
    ]


def test_every_mistake_is_named_at_once():
    errors = ranges.nginx_range_errors({**valid("nginx"), "nginx_worker_connections": -1, "nginx_reload_timeout": 0})
    assert [error.split(":")[0] for error in errors] == ["nginx_worker_connections", "nginx_reload_timeout"]


def test_the_role_refuses_before_its_other_tasks(tmp_path):
    """The nginx role's validate.yml through ansible-playbook (localhost,
    connection local): the values come as extra vars, strings."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Ranges",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "tasks": [{"name": "Check", "ansible.builtin.import_role": {"name": "nginx", "tasks_from": "validate.yml"}}],
                }
            ]
        )
    )
    extra = {"proxy_sites_host_checks": False, "nginx_worker_connections": "-1", "nginx_reload_timeout": "0"}
    rc, output = ansible_playbook("localhost,", playbook, extra, ANSIBLE_ROLES_PATH=str(ROOT / "roles"))
    assert rc != 0, output
    assert (
        "The nginx role's variables are out of range:\n"
        "- nginx_worker_connections: '-1' is not a whole number from 1 up\n"
        "- nginx_reload_timeout: '0' is not a whole number from 1 up\n"
        "Nothing was changed."
    ) in output.replace("\n        ", "\n"), output[-3000:]
