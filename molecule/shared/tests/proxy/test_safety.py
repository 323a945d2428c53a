"""Mistakes never reach the running edge: bad input fails before any change,
and a config the proxy rejects never replaces the working one."""

import pytest
from conftest import FLAVOUR, PIPELIT, config_digest, run_converge, valid_sites

# One mistake per site, each site otherwise valid; (site, the mistake, the
# words the failure must say). The model reports them all in one run.
BAD_SITES = [
    (
        "bad-upstream",
        {"routes": [{"path": "/", "upstream": "nowhere"}]},
        "site 'bad-upstream': routes[0].upstream: 'nowhere' is not an upstream",
    ),
    (
        "bad-duplicate",
        {"routes": [{"path": "/a/", "upstream": "app"}, {"path": "/a/", "upstream": "app"}]},
        "site 'bad-duplicate': routes[1].path: '/a/' is already the path of routes[0]",
    ),
    ("bad-path", {"routes": [{"path": "ws/", "upstream": "app"}]}, "site 'bad-path': routes[0].path: 'ws/' must start with '/'"),
    (
        "bad-server",
        {"upstreams": {"app": {"servers": ["127.0.0.1"]}}},
        "site 'bad-server': upstreams.app.servers[0]: '127.0.0.1' is not host:port",
    ),
    ("bad-domain", {"domains": ["exa mple.test"]}, "site 'bad-domain': domains[0]: 'exa mple.test' is not a valid lower-case domain name"),
    ("bad-negative-size", {"max_body_size": "-5m"}, "site 'bad-negative-size': max_body_size: '-5m' is not a size"),
    ("bad-malformed-size", {"max_body_size": "50 MB"}, "site 'bad-malformed-size': max_body_size: '50 MB' is not a size"),
    (
        "bad-tls-mode",
        {"tls": {"mode": "letsencrypt"}},
        "site 'bad-tls-mode': tls.mode: 'letsencrypt' is not one of acme, files, self_signed",
    ),
]


def bad_site(name, mistake):
    site = {"name": name, "profile": "pipelit", "domains": [f"{name}.test"], "tls": {"mode": "self_signed"}}
    site.update(mistake)
    return site


@pytest.fixture(scope="module")
def bad_input_run(edge):
    before = config_digest(edge)
    result = run_converge({"proxy_sites": valid_sites() + [bad_site(name, mistake) for name, mistake, _ in BAD_SITES]})
    return result, before, config_digest(edge)


def test_bad_input_fails_the_play_before_any_change(bad_input_run):
    result, before, after = bad_input_run
    assert result.returncode != 0
    assert "proxy_sites is invalid" in result.output
    assert before == after, "the edge's configuration changed although the input was invalid"


@pytest.mark.parametrize("name,mistake,message", BAD_SITES, ids=[case[0] for case in BAD_SITES])
def test_bad_input_names_the_site_and_the_field(bad_input_run, name, mistake, message):
    assert message in bad_input_run[0].output


def test_broken_change_fails_and_the_site_keeps_answering(edge, fetch):
    sites = valid_sites()
    sites[0].update(FLAVOUR["broken_change"])
    before = config_digest(edge)
    # The proxy's own check, behind the role's host checks, which would
    # refuse this change first (tests/unit/test_proxy_sites_host_check.py).
    result = run_converge({"proxy_sites": sites, "proxy_sites_host_checks": False})
    assert result.returncode != 0
    assert FLAVOUR["broken_message"] in result.output
    assert config_digest(edge) == before
    response = fetch(f"https://{PIPELIT}/api/still-here")
    assert response.status == 200
    assert response.json()["name"] == "pipelit"
