"""The site model refuses, before any change, what would fail later (issue 12,
item 4): every refusal case, each a direct call of the filter the proxy_sites
role runs first (roles/proxy_sites/filter_plugins/proxy_sites.py), with the
role's own defaults (profiles, security headers, certificate directory).

These cases used to run one ansible-playbook each inside the pipelit-caddy
Molecule scenario; that scenario keeps one input per refusal path over the
wire (molecule/pipelit-caddy/tests/test_model_refusals.py) to prove the host
stays unchanged. "old:" in a comment says what the input did before the model
refused it.
"""

from __future__ import annotations

import copy

import pytest
from caddy import caddy_unsupported
from proxy_sites import proxy_sites_errors, proxy_sites_normalize


def pipelit(**fields):
    """The scenario's own site (inventories/demo), with these fields set."""
    site = {"name": "pipelit", "profile": "pipelit", "domains": ["pipelit.test", "www.pipelit.test"], "tls": {"mode": "acme"}}
    site.update(copy.deepcopy(fields))
    return site


def other(name="other", **fields):
    """A second, valid site beside it."""
    site = {
        "name": name,
        "profile": "pipelit",
        "domains": [f"{name.replace('_', '-')}.pipelit.test"],
        "http_port": 8080,
        "https_port": 8443,
        "tls": {"mode": "self_signed"},
    }
    site.update(copy.deepcopy(fields))
    return site


def sites(*items):
    return list(items)


def route(path="/", **fields):
    return {"path": path, "upstream": "app", **fields}


# Upstreams written out whole, so that each case holds one mistake whether
# or not the profile's upstream merges under it.
APP = {"servers": ["127.0.0.1:8000"]}
HTTPS_APP = {**APP, "scheme": "https"}

# (id, proxy_sites, the words one of the model's messages must say). "old:" in a
# comment says what today's main does with the input instead.
CASES = [
    # Identifiers the renderers derive, across sites and within one.
    (
        "names-a-b-and-a_b",
        sites(pipelit(), other("a-b"), other("a_b", domains=["ab.pipelit.test"])),
        "site 'a_b': name: becomes the same identifier as site 'a-b'",
    ),  # old: nginx "duplicate upstream"
    (
        "upstream-id-across-sites",
        sites(
            pipelit(),
            other("a", upstreams={"b-app": {"servers": ["127.0.0.1:8000"]}}, routes=[route("/b/", upstream="b-app")]),
            other("a-b", http_port=8081, https_port=8444),
        ),
        "site 'a-b': upstreams.app: its identifier 'a_b_app' is already that of site 'a' upstreams.b-app",
    ),
    (
        "upstream-names-in-one-site",
        sites(pipelit(upstreams={"app": APP, "x-y": APP, "x_y": APP})),
        "site 'pipelit': upstreams.x_y: becomes the same identifier as upstreams.x-y",
    ),
    # Ports a renderer would put on plain HTTP and HTTPS at once.
    (
        "http-port-is-another-sites-https-port",
        sites(pipelit(), other(http_port=443)),
        "site 'other': http_port: port 443 is already site 'pipelit''s https_port",
    ),
    (
        "https-port-is-another-sites-http-port",
        sites(pipelit(), other(https_port=80)),
        "site 'other': https_port: port 80 is already site 'pipelit''s http_port",
    ),
    # HTTP-01 only ever comes to port 80.
    (
        "acme-on-http-port-8080",
        sites(pipelit(http_port=8080)),
        "site 'pipelit': http_port: tls mode acme validates over HTTP-01",
    ),  # old: 5 changes, then the ACME CA fails
    # Types Python lets through (bool is an int) or Ansible would convert.
    (
        "keepalive-true",
        sites(pipelit(upstreams={"app": {**APP, "keepalive": True}})),  # old: caddy validate
        "site 'pipelit': upstreams.app.keepalive: must be a whole number of idle connections from 0 to 65535, not the boolean true",
    ),
    (
        "burst-true",
        sites(pipelit(routes=[route(rate_limit={"rate": "10r/s", "burst": True})])),
        "site 'pipelit': routes[0].rate_limit.burst: must be a whole number from 0 to 1000000, not the boolean true",
    ),
    ("http-port-true", sites(pipelit(), other(http_port=True)), "site 'other': http_port: the boolean true is not a port from 1 to 65535"),
    ("https-port-string", sites(pipelit(), other(https_port="8443")), "site 'other': https_port: '8443' is not a port from 1 to 65535"),
    (
        "websocket-string",
        sites(pipelit(routes=[route("/ws/", websocket="yes")])),
        "site 'pipelit': routes[0].websocket: must be true or false, not 'yes'",
    ),
    (
        "verify-string",
        sites(pipelit(upstreams={"app": {**HTTPS_APP, "verify": "false"}})),
        "site 'pipelit': upstreams.app.verify: must be true or false, not 'false'",
    ),
    ("max-body-size-true", sites(pipelit(max_body_size=True)), "site 'pipelit': max_body_size: the boolean true is not a size"),
    (
        "timeout-number",
        sites(pipelit(routes=[route("/ws/", read_timeout=3600)])),
        "site 'pipelit': routes[0].read_timeout: the number 3600 is not a duration",
    ),
    (
        "route-upstream-list",
        sites(pipelit(routes=[route(upstream=["app"])])),
        "site 'pipelit': routes[0].upstream: a list is not an upstream of this site",
    ),  # old: TypeError in the filter
    (
        "profile-list",
        sites(pipelit(profile=["pipelit"])),
        "site 'pipelit': profile: a list is not a known profile",
    ),  # old: TypeError in the filter
    (
        "trusted-proxies-string",
        sites(pipelit(trusted_proxies="10.0.0.0/8")),
        "site 'pipelit': trusted_proxies: must be a list of addresses or networks, not '10.0.0.0/8'",
    ),
    # Profiles merge by path and by name; absent must name something to remove.
    (
        "absent-route-not-in-profile",
        sites(pipelit(routes=[{"path": "/nope/", "state": "absent"}])),
        "site 'pipelit': routes[0].state: 'absent' removes a route of profile 'pipelit', which has no route with path '/nope/'",
    ),
    (
        "absent-upstream-not-in-profile",
        sites(pipelit(upstreams={"api": {"state": "absent"}})),
        "site 'pipelit': upstreams.api.state: 'absent' removes an upstream of profile 'pipelit', which has no upstream 'api'",
    ),
    (
        "absent-without-profile",
        sites(
            pipelit(),
            other(profile=None, upstreams={"app": {"servers": ["127.0.0.1:8000"]}}, routes=[route(), {"path": "/ws/", "state": "absent"}]),
        ),
        "site 'other': routes[1].state: 'absent' removes a route of the site's profile, and this site has no profile",
    ),
    # Headers: names ignore case, values are the same bytes to both proxies.
    (
        "header-names-differ-by-case",
        sites(pipelit(headers={"x-frame-options": "DENY", "X-Frame-Options": "SAMEORIGIN"})),
        "site 'pipelit': headers.X-Frame-Options: is header 'x-frame-options' again",
    ),
    (
        "header-value-braces",
        sites(pipelit(headers={"X-Test": "{path}"})),
        "site 'pipelit': headers.X-Test: a value may not hold",
    ),  # old: the caddy role's own check, after ufw
    (
        "header-value-dollar",
        sites(pipelit(headers={"X-Test": "$host"})),
        "site 'pipelit': headers.X-Test: a value may not hold",
    ),  # old: an nginx variable
    (
        "header-value-boolean",
        sites(pipelit(headers={"X-Flag": True})),
        "site 'pipelit': headers.X-Flag: must be a text value, not the boolean true",
    ),  # old: sent as "True"
    (
        "header-content-length",
        sites(pipelit(headers={"Content-Length": "0"})),
        "site 'pipelit': headers.Content-Length: frames the message or the connection",
    ),
    # Domains.
    (
        "domain-null",
        sites(pipelit(domains=["pipelit.test", None])),
        "site 'pipelit': domains[1]: null is not a valid lower-case domain name",
    ),
    ("domain-number", sites(pipelit(), other(domains=[5])), "site 'other': domains[0]: the number 5 is not a valid lower-case domain name"),
    (
        "domain-twice-in-a-site",
        sites(pipelit(domains=["pipelit.test", "pipelit.test"])),
        "site 'pipelit': domains[1]: 'pipelit.test' is already domains[0]",
    ),  # old: Caddy "ambiguous site definition"
    (
        "acme-101-domains",
        sites(pipelit(domains=["pipelit.test"] + [f"d{i}.pipelit.test" for i in range(100)])),
        "site 'pipelit': domains: 101 names; an ACME certificate holds at most 100",
    ),  # old: the CA refuses
    (
        "acme-ip-address",
        sites(pipelit(domains=["pipelit.test", "192.0.2.10"])),
        "site 'pipelit': domains[1]: '192.0.2.10' is an IP address",
    ),  # old: the CA refuses
    (
        "acme-single-label",
        sites(pipelit(domains=["pipelit.test", "pipelit"])),
        "site 'pipelit': domains[1]: 'pipelit' is not a fully qualified name",
    ),
    # Paths nginx and Caddy read differently, or as syntax.
    (
        "path-hash",
        sites(pipelit(routes=[route("/a#b")])),
        "site 'pipelit': routes[0].path: '/a#b' must start with '/'",
    ),  # old: nginx reads a comment
    (
        "path-star",
        sites(pipelit(routes=[route("/api/*")])),
        "site 'pipelit': routes[0].path: '/api/*' must start with '/'",
    ),  # old: the caddy role's own check, after ufw
    ("path-query", sites(pipelit(routes=[route("/a?b=1")])), "site 'pipelit': routes[0].path: '/a?b=1' must start with '/'"),
    # Upstream TLS settings.
    (
        "ca-file-relative",
        sites(pipelit(upstreams={"app": {**HTTPS_APP, "ca_file": "certs/ca.pem"}})),
        "site 'pipelit': upstreams.app.ca_file: 'certs/ca.pem' is not an absolute path",
    ),
    (
        "ca-file-without-verify",
        sites(pipelit(upstreams={"app": {**HTTPS_APP, "verify": False, "ca_file": "/etc/ssl/ca.pem"}})),
        "site 'pipelit': upstreams.app.ca_file: only an upstream with scheme https and verify true",
    ),
    (
        "sni-ip-address",
        sites(pipelit(upstreams={"app": {**HTTPS_APP, "sni": "127.0.0.1"}})),
        "site 'pipelit': upstreams.app.sni: '127.0.0.1' is not a host name",
    ),
    (
        "sni-on-http",
        sites(pipelit(upstreams={"app": {**APP, "sni": "app.internal"}})),  # old: silently ignored
        "site 'pipelit': upstreams.app.sni: only an upstream with scheme https sends a name",
    ),
    (
        "server-not-an-address",
        sites(pipelit(upstreams={"app": {"servers": ["999.1.1.1:8000"]}})),
        "site 'pipelit': upstreams.app.servers[0]: '999.1.1.1:8000' is not host:port",
    ),  # old: nginx "host not found"
    # TLS files and sizes.
    (
        "tls-file-with-space",
        sites(pipelit(), other(tls={"mode": "files", "certificate": "/etc/ssl/my cert.pem", "certificate_key": "/etc/ssl/key.pem"})),
        "site 'other': tls.certificate: mode 'files' needs an absolute path",
    ),
    (
        "tls-certificate-with-acme",
        sites(pipelit(tls={"mode": "acme", "certificate": "/etc/ssl/c.pem"})),
        "site 'pipelit': tls.certificate: only mode 'files' takes the operator's own files",
    ),
    ("max-body-size-overflow", sites(pipelit(max_body_size="10000000000g")), "site 'pipelit': max_body_size: '10000000000g' is not a size"),
    (
        "timeout-over-a-year",
        sites(pipelit(routes=[route("/ws/", read_timeout="100000h")])),
        "site 'pipelit': routes[0].read_timeout: '100000h' is not a duration",
    ),
    (
        "allow-ipv6-zone",
        sites(pipelit(routes=[route("/admin/", allow=["fe80::1%eth0"])])),
        "site 'pipelit': routes[0].allow: 'fe80::1%eth0' is not an IP address or network",
    ),
    (
        "rate-limit-unknown-field",
        sites(pipelit(routes=[route(rate_limit={"rate": "10r/s", "brust": 5})])),
        "site 'pipelit': routes[0].rate_limit: unknown field(s) brust",
    ),  # old: silently ignored
]

# What the model accepts but Caddy from the distribution cannot do: the caddy
# role's check (roles/caddy/tasks/capabilities.yml, which playbooks/edge.yml
# imports before the firewall) runs caddy_unsupported on the normalised model
# the proxy_sites role publishes once it has no error.
CADDY_CASES = [
    (
        "rate-limit-with-caddy",
        sites(pipelit(routes=[route(rate_limit={"rate": "10r/s", "burst": 5})])),
        "site 'pipelit': routes[0].rate_limit: Caddy from the distribution has no rate limiting",
    ),  # old: after ufw
]


@pytest.fixture(scope="module")
def model_args(proxy_sites_defaults):
    """The filter's arguments after the sites, as the role passes them."""
    d = proxy_sites_defaults
    return (d["proxy_sites_profiles"], d["proxy_sites_security_headers"], d["proxy_sites_tls_dir"], d["proxy_sites_extra_profiles"])


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 30
    ids = [case[0] for case in CASES + CADDY_CASES]
    assert len(set(ids)) == len(ids)


def test_the_scenarios_own_site_is_valid(model_args):
    """Each case holds one mistake: without it, the sites pass."""
    assert proxy_sites_errors(sites(pipelit(), other()), *model_args) == []


@pytest.mark.parametrize("case_id,proxy_sites,message", CASES, ids=[case[0] for case in CASES])
def test_bad_input_is_refused_naming_the_site_and_field(model_args, case_id, proxy_sites, message):
    errors = proxy_sites_errors(proxy_sites, *model_args)
    assert any(message in error for error in errors), errors
    # Every message names a site (or a profile) and a field.
    assert all(error.startswith(("site '", "profile '")) for error in errors), errors
    # The role normalises only a model without errors, but the filter must not
    # crash on any input (old: TypeErrors on lists where names belong).
    proxy_sites_normalize(copy.deepcopy(proxy_sites), *model_args)


@pytest.mark.parametrize("case_id,proxy_sites,message", CADDY_CASES, ids=[case[0] for case in CADDY_CASES])
def test_what_caddy_cannot_do_is_refused_by_the_pre_task(model_args, case_id, proxy_sites, message):
    # The model itself accepts it (nginx can render it) ...
    assert proxy_sites_errors(proxy_sites, *model_args) == []
    # ... and the caddy role's check refuses it, naming site and field.
    problems = caddy_unsupported(proxy_sites_normalize(proxy_sites, *model_args))
    assert any(message in problem for problem in problems), problems
