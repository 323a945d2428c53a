"""Inputs that used to be misread silently (issue 19, item 3): refused by the
model, or read as what they say. Pure: the model's filter, the role
defaults' expression with Ansible's own bool filter, the playbooks' checks
through ansible-playbook on a local inventory (nothing is changed: the
checks stop the run, and the hosts are never reached)."""

from __future__ import annotations

import sys

import jinja2
import pytest
import yaml
from ansible.plugins.filter.core import to_bool
from conftest import ROOT, ansible_playbook

sys.path.insert(0, str(ROOT / "roles/proxy_sites/filter_plugins"))
import proxy_sites  # noqa: E402

DEFAULTS = yaml.safe_load((ROOT / "roles/proxy_sites/defaults/main.yml").read_text())


def errors_of(*sites):
    return proxy_sites.proxy_sites_errors(list(sites), DEFAULTS["proxy_sites_profiles"], DEFAULTS["proxy_sites_security_headers"])


def pipelit(**fields):
    site = {"name": "pipelit", "profile": "pipelit", "domains": ["pipelit.example.com"], "tls": {"mode": "self_signed"}}
    site.update(fields)
    return site


@pytest.mark.parametrize("value", ["0s", "0h", "500ms", "1500ms"])
def test_timeouts_under_a_second_or_not_whole_seconds_are_refused(value):
    # They used to become nginx's 1s: WebSockets died after a second.
    errors = errors_of(pipelit(routes=[{"path": "/ws/", "read_timeout": value}]))
    assert (
        f"site 'pipelit': routes[0].read_timeout: '{value}' is not a duration such as 60s, 5m or 24h (whole seconds, from 1s to a year)"
        in errors
    )


def test_a_whole_number_of_seconds_in_milliseconds_is_read_as_written():
    normal = proxy_sites.proxy_sites_normalize(
        [pipelit(routes=[{"path": "/ws/", "read_timeout": "2000ms"}])], DEFAULTS["proxy_sites_profiles"]
    )
    assert next(route for route in normal[0]["routes"] if route["path"] == "/ws/")["read_timeout_seconds"] == 2


@pytest.mark.parametrize("name", [None, ""])
def test_a_site_without_a_name_is_named_by_its_place(name):
    site = pipelit()
    site["name"] = name
    errors = errors_of(pipelit(name="first"), site)
    assert any(error.startswith("site '#1': name: every site needs a name") for error in errors), errors
    assert not any("'None'" in error for error in errors), errors


def test_a_site_whose_name_key_is_missing_is_named_by_its_place():
    site = pipelit()
    del site["name"]
    assert errors_of(site) == ["site '#0': name: every site needs a name (lower-case letters, digits, '-' and '_'), not null"]


def directory_url(staging):
    """proxy_sites_acme_directory_url as the role's defaults compute it, with
    Ansible's bool filter, for a value given as an extra var (a string)."""
    expression = DEFAULTS["proxy_sites_acme_directory_url"]
    environment = jinja2.Environment()
    environment.filters["bool"] = to_bool
    return environment.from_string(expression).render(proxy_sites_acme_staging=staging)


@pytest.mark.parametrize("staging", ["false", "no", "0", "off", "False", False])
def test_staging_given_as_a_false_string_selects_production(staging):
    assert directory_url(staging) == "https://acme-v02.api.letsencrypt.org/directory"


@pytest.mark.parametrize("staging", ["true", "yes", "1", True])
def test_staging_given_as_a_true_string_selects_staging(staging):
    assert directory_url(staging) == "https://acme-staging-v02.api.letsencrypt.org/directory"


def playbook_run(tmp_path, playbook, extra_vars):
    """ansible-playbook on a one-host inventory that is never reached: the
    checks under test come before any task touches a host."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"edge_hosts": {"children": {"pipelit_edge": {"hosts": {"edge.invalid": {}}}}}}))
    return ansible_playbook(inventory, ROOT / "playbooks" / playbook, extra_vars, ANSIBLE_GATHERING="explicit")


@pytest.mark.parametrize("playbook", ["edge.yml", "verify.yml"])
def test_a_group_that_names_no_host_fails_the_run(tmp_path, playbook):
    rc, output = playbook_run(tmp_path, playbook, {"edge_group": "pipelit_egde", "edge_proxy": "nginx"})
    assert rc != 0
    assert "'pipelit_egde' names no host of the inventory" in output
    assert "its groups are: edge_hosts, pipelit_edge" in output


@pytest.mark.parametrize("serial", [-1, 0.5, "101%", "0%", [1, -2]])
def test_a_batch_size_that_means_nothing_is_refused(tmp_path, serial):
    rc, output = playbook_run(tmp_path, "edge.yml", {"edge_serial": serial, "edge_proxy": "nginx", "ansible_connection": "local"})
    assert rc != 0
    assert "edge_serial must be a whole number of hosts" in output, output[-2000:]
    assert "TASK [proxy_sites" not in output  # stopped before the first role


def test_a_failure_percentage_over_100_is_refused(tmp_path):
    rc, output = playbook_run(tmp_path, "edge.yml", {"edge_max_fail_percentage": 150, "edge_proxy": "nginx", "ansible_connection": "local"})
    assert rc != 0
    assert "edge_max_fail_percentage a whole number from 0 to 100" in output


@pytest.mark.parametrize("tls_dir", ["ssl/pipelit-edge", "", "/etc/ssl/my edge"])
def test_a_tls_dir_that_is_not_an_absolute_path_is_refused(tls_dir):
    # Relative, nginx would read the certificates under its prefix and the
    # roles would write them under their working directory.
    errors = proxy_sites.proxy_sites_errors(
        [pipelit()], DEFAULTS["proxy_sites_profiles"], DEFAULTS["proxy_sites_security_headers"], tls_dir
    )
    assert errors == [f"site '*': proxy_sites_tls_dir: '{tls_dir}' is not an absolute path on the host (no spaces or quotes)"]


def test_a_dns01_site_with_caddy_is_refused_before_any_change(tmp_path):
    site = {
        "name": "wild",
        "profile": "pipelit",
        "domains": ["*.pipelit.test", "pipelit.test"],
        "tls": {
            "mode": "acme",
            "challenge": "dns-01",
            "dns": {"server": "192.0.2.53", "key_name": "pipelit-edge-test", "key_secret": "c2VjcmV0LW9mLXRoZS10c2lnLWtleQ=="},
        },
    }
    extra = {"edge_proxy": "caddy", "proxy_sites": [site], "proxy_sites_acme_email": "ops@example.com", "proxy_sites_host_checks": False}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"edge_hosts": {"children": {"pipelit_edge": {"hosts": {"edge.invalid": {}}}}}}))
    # With -vv: every set_fact's result is printed, except those with no_log.
    rc, output = ansible_playbook(inventory, ROOT / "playbooks" / "edge.yml", extra, ANSIBLE_GATHERING="explicit", ANSIBLE_VERBOSITY="2")
    assert rc != 0
    assert "site 'wild': tls.challenge dns-01 needs a DNS provider module, which Debian's Caddy package does not include" in output
    # Before the firewall, and the secret is printed nowhere.
    assert "TASK [ufw" not in output and "c2VjcmV0LW9mLXRoZS10c2lnLWtleQ==" not in output
