"""The roles' contracts (issue 20): a role reads the proxy_sites role's
published variables and its own, never another role's; what one role
produces and another consumes is wired by the playbooks, and each consumer's
plain default is the producer's default, so a role run alone (the Molecule
role scenarios) converges as playbooks/edge.yml does."""

from __future__ import annotations

import re

import jinja2
import pytest
import yaml
from conftest import ROOT

ROLES = sorted(path.name for path in (ROOT / "roles").iterdir() if (path / "defaults" / "main.yml").exists())


def load(relative):
    with open(ROOT / relative, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def defaults(role):
    return load(f"roles/{role}/defaults/main.yml")


def variables(role):
    """Every variable a role defines: its defaults and vars."""
    names = set(defaults(role))
    for path in (ROOT / "roles" / role / "vars").glob("*.yml"):
        names |= set(load(path.relative_to(ROOT)))
    return names


def code(role):
    """(file, text without comments) of what a role runs: its defaults, vars, tasks, handlers and templates."""
    for folder, pattern in (("defaults", "*.yml"), ("vars", "*.yml"), ("tasks", "*.yml"), ("handlers", "*.yml"), ("templates", "*.j2")):
        for path in sorted((ROOT / "roles" / role / folder).glob(pattern)):
            text = re.sub(r"\{#.*?#\}", "", path.read_text(encoding="utf-8"), flags=re.S)
            lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
            yield path.relative_to(ROOT), "\n".join(lines)


@pytest.mark.parametrize("role", ROLES)
def test_a_role_reads_no_other_roles_variables(role):
    foreign = {name: other for other in ROLES if other not in (role, "proxy_sites") for name in variables(other)}
    found = [
        f"{path}: {name} (the {foreign[name]} role's)"
        for path, text in code(role)
        for name in sorted(foreign)
        # A name read, not a key of the same spelling (a module's option, a
        # JSON field): not followed by a colon.
        if not name.startswith("__") and re.search(rf"(?<![\w.]){re.escape(name)}(?!\w|\"?\s*:)", text)
    ]
    assert found == []


def render(value, **context):
    return jinja2.Template(value).render(**context)


def test_each_consumers_default_is_the_producers_default():
    nginx, certbot, caddy, ufw = defaults("nginx"), defaults("certbot"), defaults("caddy"), defaults("ufw")
    published = defaults("proxy_sites")
    nginx_context = {**nginx, "proxy_sites_state_dir": published["proxy_sites_state_dir"]}
    nginx_context["nginx_state_dir"] = render(nginx["nginx_state_dir"], **nginx_context)
    assert certbot["certbot_webroot"] == nginx["nginx_acme_webroot"]
    assert certbot["certbot_proxy_reload_command"] == render(nginx["nginx_reload_command"], **nginx_context)
    assert defaults("acme_preflight")["acme_preflight_caddy_storage_dir"] == caddy["caddy_storage_dir"]
    assert defaults("edge_verify")["edge_verify_denied_ports"] == ufw["ufw_denied_ports"]
    assert defaults("acme_preflight")["acme_preflight_default_controller"] == defaults("edge_verify")["edge_verify_controller"]


def test_verify_yml_falls_back_to_the_ufw_roles_denied_ports():
    (play,) = [play for play in load("playbooks/verify.yml") if "roles" in play]
    wired = play["roles"][0]["vars"]["edge_verify_denied_ports"]
    assert render(wired) == str(defaults("ufw")["ufw_denied_ports"])
