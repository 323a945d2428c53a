"""Render the proxy roles' templates without a host: Jinja2 with Ansible's
core filters and tests, the roles' own filter plugins, and the variables as
the role sees them (proxy_sites' and the role's defaults, its vars/main.yml
and one per-distribution file), each "{{ ... }}" value resolved against the
others as Ansible resolves them lazily. Enough for what the templates use;
`nginx -t` and `caddy validate` (the Molecule tier) stay the judges of the
result."""

from __future__ import annotations

import jinja2
import jinja2.nativetypes
import path_guard
import proxy_sites
import redaction
import yaml
from ansible.plugins.filter.core import FilterModule as CoreFilters
from ansible.plugins.test.core import TestModule as CoreTests
from conftest import ROOT

FILTERS = {
    **CoreFilters().filters(),
    **proxy_sites.FilterModule().filters(),
    **path_guard.FilterModule().filters(),
    **redaction.FilterModule().filters(),
}
TESTS = CoreTests().tests()


def _environment(cls):
    environment = cls(trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    environment.filters.update(FILTERS)
    environment.tests.update(TESTS)
    return environment


NATIVE = _environment(jinja2.nativetypes.NativeEnvironment)
TEXT = _environment(jinja2.Environment)


def _load(relative):
    path = ROOT / relative
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def role_vars(role, distribution_file, sites, **overrides):
    """The variables of `role` for these sites (raw, as operators write them),
    every template value resolved."""
    published = _load("roles/proxy_sites/defaults/main.yml")
    normal, errors = proxy_sites.check_sites(
        sites,
        published["proxy_sites_profiles"],
        published["proxy_sites_security_headers"],
        published["proxy_sites_tls_dir"],
        published["proxy_sites_extra_profiles"],
        overrides.get("proxy_sites_http3", published["proxy_sites_http3"]),
        overrides.get("proxy_sites_http3_available", published["proxy_sites_http3_available"]),
    )
    assert errors == [], errors
    values = {
        **published,
        **_load(f"roles/{role}/defaults/main.yml"),
        **_load(f"roles/{role}/vars/main.yml"),
        **_load(f"roles/{role}/vars/{distribution_file}"),
        "proxy_sites_normalized": normal,
        **overrides,
    }
    pending = {name for name, value in values.items() if isinstance(value, str) and "{{" in value}
    # Values that depend on what a host reported (nginx_state...) stay unresolved.
    for _ in range(10):
        for name in sorted(pending):
            try:
                values[name] = NATIVE.from_string(values[name]).render(**values)
            except Exception:  # noqa: BLE001 - another pass, or a host's value the templates do not read
                continue
            pending.discard(name)
        if not pending:
            break
    return values


def render(role, template, values, **extra):
    """One of the role's templates rendered with `values` (role_vars) and `extra` (site=...)."""
    source = (ROOT / "roles" / role / "templates" / template).read_text(encoding="utf-8")
    return TEXT.from_string(source).render(**{"ansible_managed": "managed", **values, **extra})
