"""What Caddy from the distribution cannot do (roles/caddy/filter_plugins/caddy.py),
on normalised sites as roles/caddy/tasks/capabilities.yml passes them."""

from __future__ import annotations

from caddy import FilterModule, caddy_unsupported


def site(**fields):
    base = {"name": "s", "routes": [{"path": "/", "allow": [], "rate_limit": None}], "headers": [], "trusted_proxies": []}
    base.update(fields)
    return base


def test_what_caddy_can_do_passes():
    assert caddy_unsupported([site()]) == []
    assert caddy_unsupported(None) == []
    assert caddy_unsupported([site(routes=[{"path": "/", "allow": ["10.0.0.0/8"]}])]) == []


def test_a_rate_limit_is_refused_naming_site_and_route():
    (problem,) = caddy_unsupported([site(routes=[{"path": "/"}, {"path": "/api/", "rate_limit": {"rate": "1r/s"}}])])
    assert problem.startswith("site 's': routes[1].rate_limit: Caddy from the distribution has no rate limiting")


def test_an_allow_list_behind_trusted_proxies_is_refused():
    (problem,) = caddy_unsupported([site(trusted_proxies=["10.0.0.1"], routes=[{"path": "/", "allow": ["192.0.2.0/24"]}])])
    assert problem.startswith("site 's': routes[0].allow: with trusted_proxies")


def test_what_the_model_refuses_already_is_not_checked_again():
    # '*' in a path and braces in a header value never pass the site model
    # (PATH_RE, HEADER_VALUE_FORBIDDEN): the filter has no rule of its own.
    assert caddy_unsupported([site(routes=[{"path": "/a*"}], headers=[{"name": "X-A", "value": "{x}"}])]) == []


def test_every_problem_of_every_site_at_once():
    problems = caddy_unsupported(
        [
            site(name="a", routes=[{"path": "/", "rate_limit": {"rate": "1r/s"}}]),
            site(name="b", trusted_proxies=["10.0.0.1"], routes=[{"path": "/", "allow": ["192.0.2.0/24"]}]),
        ]
    )
    assert [p.split(": ")[:2] for p in problems] == [["site 'a'", "routes[0].rate_limit"], ["site 'b'", "routes[0].allow"]]


def test_the_filter_is_registered():
    assert FilterModule().filters()["caddy_unsupported"] is caddy_unsupported


def test_a_dns01_site_is_refused_with_the_reason():
    (problem,) = caddy_unsupported([site(tls={"mode": "acme", "challenge": "dns-01"})])
    assert problem == (
        "site 's': tls.challenge dns-01 needs a DNS provider module, which Debian's Caddy package does not include; "
        "use edge_proxy: nginx (certbot), or tls mode files"
    )
    assert caddy_unsupported([site(tls={"mode": "acme", "challenge": "http-01"})]) == []
