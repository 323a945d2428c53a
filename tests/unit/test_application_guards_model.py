"""The application's guards in the site model (issue 18): path_guard,
denied_paths and exposed_paths, backend_ports, secret_query_params, and the
path guard's pattern itself. Pure function calls: no host, no proxy."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "roles/proxy_sites/filter_plugins"))
import path_guard  # noqa: E402
import proxy_sites  # noqa: E402
import redaction  # noqa: E402

DEFAULTS = yaml.safe_load((ROOT / "roles/proxy_sites/defaults/main.yml").read_text())
PROFILES = DEFAULTS["proxy_sites_profiles"]
HEADERS = DEFAULTS["proxy_sites_security_headers"]


def check(*sites, extra_profiles=None):
    """(normalised sites, messages) for these sites with the built-in profiles."""
    return proxy_sites.check_sites(list(sites), PROFILES, HEADERS, "/etc/ssl/pipelit-edge", extra_profiles)


def pipelit(**fields):
    site = {"name": "pipelit", "profile": "pipelit", "domains": ["pipelit.example.com"], "tls": {"mode": "self_signed"}}
    site.update(fields)
    return site


def plain(**fields):
    site = {
        "name": "plain",
        "domains": ["plain.example.com"],
        "tls": {"mode": "self_signed"},
        "upstreams": {"app": {"servers": ["127.0.0.1:9000"]}},
        "routes": [{"path": "/", "upstream": "app"}],
    }
    site.update(fields)
    return site


GUARD = re.compile(path_guard.PATH_GUARD_PATTERN, re.IGNORECASE)

REFUSED = [
    "//etc/passwd",
    "///etc/passwd",
    "/a//b",
    "/%2Fetc/passwd",
    "/%2fetc/passwd",
    "/%252fetc",
    "/%25252Fetc",
    "/%25%32%66etc",
    "/..%2f..%2fetc",
    "/%2e%2e/%2E%2E/etc",
    "/.%2e/etc",
    "/./x",
    "/a/../b",
    "/x/.",
    "/x/..",
    "/x/..?q=1",
    "/..;/etc",
    "/.;x/etc",
    "/a\\b",
    "/..%5c..%5cetc",
    "/%5C",
    "/%00",
    "/%c0%af",
    "/%C1%9C",
    "/%e0%80%af",
    "/%f0%80%80%af",
    "https://host//etc/x",
    "http://host:8080/%2fetc",
    "https://host/a/../b?x=1",
]
KEPT = [
    "/",
    "/assets/app.js",
    "/api/v1/workflows/?q=a%2Fb",
    "/api/v1/x?next=../../etc&p=%2F%2E%2E",
    "/a%20b",
    "/caf%C3%A9",
    "/%e2%82%ac",
    "/.well-known/acme-challenge/abc",
    "/.hidden",
    "/a..b/",
    "/a.b.c",
    "/ws/?token=x//y",
    "https://host",
    "https://host/ok?a=//b",
    "*",
    "/100%25",
]


@pytest.mark.parametrize("target", REFUSED)
def test_the_guard_refuses_ambiguous_paths(target):
    assert GUARD.search(target), target


@pytest.mark.parametrize("target", KEPT)
def test_the_guard_keeps_ordinary_paths_and_every_query(target):
    assert not GUARD.search(target), target


def test_the_pattern_holds_nothing_either_config_would_misread():
    # nginx takes it in a double-quoted string (backslashes doubled by the
    # template), Caddy in one too: no quote, no brace (a Caddy placeholder).
    assert not set('"{}') & set(path_guard.PATH_GUARD_PATTERN)


def test_the_profiles_turn_the_guard_on_and_plain_sites_do_not():
    normal, errors = check(pipelit(), plain())
    assert errors == []
    assert [site["path_guard"] for site in normal] == [True, False]
    normal, errors = check(pipelit(path_guard=False))
    assert errors == [] and normal[0]["path_guard"] is False


def test_path_guard_must_be_a_boolean():
    _, errors = check(plain(path_guard="yes"))
    assert "site 'plain': path_guard: must be true or false, not 'yes'" in errors


def test_pipelits_private_endpoints_are_denied_by_default():
    normal, errors = check(pipelit())
    assert errors == []
    assert [entry["path"] for entry in normal[0]["denied_paths"]] == [
        "/docs",
        "/redoc",
        "/openapi.json",
        "/ws/executions/",
        "/api/v1/inbound",
    ]
    assert normal[0]["denied_paths"][3]["base"] == "/ws/executions"


def test_exposed_paths_serves_one_denied_path_again():
    normal, errors = check(pipelit(exposed_paths=["/docs"]))
    assert errors == []
    assert "/docs" not in [entry["path"] for entry in normal[0]["denied_paths"]]
    assert len(normal[0]["denied_paths"]) == 4


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"exposed_paths": ["/metrics"]}, "site 'pipelit': exposed_paths[0]: '/metrics' is not one of the site's denied_paths"),
        ({"exposed_paths": "/docs"}, "site 'pipelit': exposed_paths: must be a list of paths from denied_paths, not '/docs'"),
        ({"denied_paths": "/docs"}, "site 'pipelit': denied_paths: must be a list of absolute paths, not '/docs'"),
        ({"denied_paths": ["docs"]}, "site 'pipelit': denied_paths[0]: 'docs' must be an absolute path"),
        ({"denied_paths": ["/a b"]}, "site 'pipelit': denied_paths[0]: '/a b' must be an absolute path"),
        ({"denied_paths": ["/"]}, "site 'pipelit': denied_paths[0]: '/' would deny every path"),
        ({"denied_paths": ["/docs", "/docs/"]}, "site 'pipelit': denied_paths[1]: '/docs/' denies what denied_paths[0] denies already"),
        ({"denied_paths": ["/ws/"]}, "site 'pipelit': denied_paths[0]: '/ws/' would deny route '/ws/'"),
        ({"denied_paths": ["/ws"]}, "site 'pipelit': denied_paths[0]: '/ws' would deny route '/ws/'"),
        ({"path_guard": 1}, "site 'pipelit': path_guard: must be true or false, not the number 1"),
    ],
)
def test_bad_guards_name_the_site_and_the_field(fields, message):
    _, errors = check(pipelit(**fields))
    assert any(error.startswith(message) for error in errors), errors


def test_a_denied_path_under_a_route_is_fine_but_a_route_under_it_is_not():
    _, errors = check(plain(denied_paths=["/api/internal"]))
    assert errors == []
    _, errors = check(plain(denied_paths=["/api"], routes=[{"path": "/", "upstream": "app"}, {"path": "/api/v2/", "upstream": "app"}]))
    assert errors == [
        "site 'plain': denied_paths[0]: '/api' would deny route '/api/v2/'; a path is either routed or denied (drop one, or expose it)"
    ]


def test_backend_ports_are_denied_except_those_a_site_serves():
    normal, errors = check(pipelit(), plain(http_port=8080, https_port=8443))
    assert errors == []
    # 8080 is the gateway's in Pipelit's profile, but the proxy holds it here.
    assert proxy_sites.proxy_sites_backend_ports(normal) == ["4000/tcp", "6379/tcp", "6399/tcp", "8000/tcp"]
    normal, errors = check(pipelit(), {**plain(), "name": "vault", "profile": "aliasvault", "domains": ["vault.example.com"]})
    assert errors == []
    assert proxy_sites.proxy_sites_backend_ports(normal) == ["4000/tcp", "6379/tcp", "6399/tcp", "8000/tcp", "8080/tcp", "8443/tcp"]
    assert proxy_sites.proxy_sites_backend_ports([]) == []


@pytest.mark.parametrize(
    "ports,message",
    [
        ("8000", "site 'plain': backend_ports: must be a list of ports, not '8000'"),
        ([0], "site 'plain': backend_ports[0]: the number 0 is not a port from 1 to 65535"),
        (["8000"], "site 'plain': backend_ports[0]: '8000' is not a port from 1 to 65535"),
        ([True], "site 'plain': backend_ports[0]: the boolean true is not a port from 1 to 65535"),
    ],
)
def test_bad_backend_ports(ports, message):
    _, errors = check(plain(backend_ports=ports))
    assert errors == [message]


def test_secret_query_params_come_from_the_profiles_once_each():
    normal, errors = check(pipelit(), plain())
    assert errors == []
    assert normal[0]["secret_query_params"] == ["token", "api_key"]
    assert normal[1]["secret_query_params"] == ["token"]
    assert proxy_sites.proxy_sites_secret_query_params(normal) == ["api_key", "token"]
    assert proxy_sites.proxy_sites_secret_query_params([]) == ["token"]


@pytest.mark.parametrize(
    "params,message",
    [
        ("token", "site 'plain': secret_query_params: must be a list of query parameter names, not 'token'"),
        (["a b"], "site 'plain': secret_query_params[0]: 'a b' is not a query parameter name"),
        (['x"y'], "site 'plain': secret_query_params[0]: 'x\"y' is not a query parameter name"),
        ([""], "site 'plain': secret_query_params[0]: '' is not a query parameter name"),
    ],
)
def test_bad_secret_query_params(params, message):
    _, errors = check(plain(secret_query_params=params))
    assert any(error.startswith(message) for error in errors), errors


@pytest.mark.parametrize(
    "query,redacted",
    [
        ("?api_key=s3cret", True),
        ("?api%5Fkey=s3cret", True),
        ("?API_KEY=s3cret", True),
        ("?a=1&api_key=s3cret&b=2", True),
        ("?token=s3cret", True),
        ("?api_keys=s3cret", False),
        ("?apikey=s3cret", False),
    ],
)
def test_the_union_of_secret_params_redacts_each_spelling(query, redacted):
    names = proxy_sites.proxy_sites_secret_query_params(check(pipelit())[0])
    # The Caddy filter's pattern (roles/caddy/defaults/main.yml), in Python's re.
    pattern = re.compile(r"([?&;]" + redaction.proxy_sites_param_name_regex(names) + r"=)[^&;#]*", re.IGNORECASE)
    assert bool(pattern.search(query)) is redacted
    if redacted:
        assert "s3cret" not in pattern.sub(r"\1REDACTED", query)


def test_profile_fields_of_the_guards_are_checked_as_a_profiles():
    extra = {
        "live": {
            "upstreams": {"app": {"servers": ["127.0.0.1:9000"]}},
            "routes": [{"path": "/", "upstream": "app"}],
            "backend_ports": [70000],
        }
    }
    _, errors = check(extra_profiles=extra)
    assert "profile 'live': backend_ports[0]: the number 70000 is not a port from 1 to 65535" in errors
