"""proxy_sites_model (roles/proxy_sites/filter_plugins/proxy_sites.py): the
one validation pass the proxy_sites role makes per play, returning the
model's mistakes as data (with the messages operators read) together with
the normalised sites."""

from __future__ import annotations

import copy

import proxy_sites as model
import pytest
from proxy_sites import proxy_sites_errors, proxy_sites_model, proxy_sites_normalize


@pytest.fixture(scope="module")
def args(proxy_sites_defaults):
    d = proxy_sites_defaults
    return (d["proxy_sites_profiles"], d["proxy_sites_security_headers"], d["proxy_sites_tls_dir"], d["proxy_sites_extra_profiles"])


def pipelit(name="pipelit", **fields):
    site = {"name": name, "profile": "pipelit", "domains": [f"{name}.example.com"], "tls": {"mode": "acme"}}
    site.update(copy.deepcopy(fields))
    return site


def plain(name="plain", **fields):
    site = {
        "name": name,
        "domains": [f"{name}.example.com"],
        "tls": {"mode": "self_signed"},
        "upstreams": {"app": {"servers": ["127.0.0.1:8000"]}},
        "routes": [{"path": "/", "upstream": "app"}],
    }
    site.update(copy.deepcopy(fields))
    return site


def count_calls(monkeypatch, name):
    """Wrap model.NAME so that its calls are counted; returns the counter."""
    calls = []
    original = getattr(model, name)

    def counted(*arguments, **keywords):
        calls.append(arguments)
        return original(*arguments, **keywords)

    monkeypatch.setattr(model, name, counted)
    return calls


def test_errors_and_sites_come_from_one_pass(monkeypatch, args):
    passes = count_calls(monkeypatch, "check_model")
    per_site = count_calls(monkeypatch, "check_site")
    sites = [pipelit(), plain(http_port="eighty")]
    result = proxy_sites_model(sites, *args)
    assert sorted(result) == ["dns_secrets", "errors", "sites"]
    assert len(passes) == 1
    # Each site once, and each profile once (its stand-in site); nothing again for the errors.
    profiles = {**args[0], **args[3]}
    assert len(per_site) == len(sites) + len(profiles)


def test_a_site_error_is_data_and_its_message(args):
    result = proxy_sites_model([plain(http_port="eighty")], *args)
    assert result["errors"] == [
        {
            "site": "plain",
            "profile": None,
            "field": "http_port",
            "problem": "'eighty' is not a port from 1 to 65535",
            "message": "site 'plain': http_port: 'eighty' is not a port from 1 to 65535",
        }
    ]


def test_a_profile_error_carries_the_profile_name(args):
    profiles, headers, tls_dir, _ = args
    extra = {"routes-only": {"routes": [{"path": "/", "upstream": "missing"}]}, "own": {"max_body_size": "huge"}}
    errors = proxy_sites_model([], profiles, headers, tls_dir, extra)["errors"]
    by_profile = {error["profile"]: error for error in errors}
    assert sorted(by_profile) == ["own", "routes-only"]
    routes = by_profile["routes-only"]
    assert routes["site"] is None
    # The profile's own route numbers, not the stand-in site's "profile.routes[0]".
    assert routes["field"] == "routes[0].upstream"
    assert routes["problem"].startswith("'missing' is not an upstream of this site")
    assert routes["message"] == f"profile 'routes-only': routes[0].upstream: {routes['problem']}"
    assert by_profile["own"]["field"] == "max_body_size"
    assert by_profile["own"]["message"].startswith("profile 'own': max_body_size: 'huge' is not a size")


def test_the_messages_are_those_of_proxy_sites_errors(args):
    profiles, headers, tls_dir, _ = args
    extra = {"Bad": {}, "own": {"domains": ["a.example.com"]}}
    sites = [pipelit(), pipelit(), plain(routes="x"), "not a site", {"domains": []}]
    errors = proxy_sites_model(sites, profiles, headers, tls_dir, extra)["errors"]
    assert [error["message"] for error in errors] == proxy_sites_errors(sites, profiles, headers, tls_dir, extra)
    assert len(errors) >= 6
    for error in errors:
        owner = f"site '{error['site']}'" if error["profile"] is None else f"profile '{error['profile']}'"
        assert (error["site"] is None) != (error["profile"] is None)
        assert error["message"] == f"{owner}: {error['field']}: {error['problem']}"


def test_not_a_list_of_sites_is_one_error(args):
    result = proxy_sites_model({"name": "x"}, *args)
    assert result == {
        "errors": [
            {
                "site": "*",
                "profile": None,
                "field": "proxy_sites",
                "problem": "must be a list of sites, not a mapping",
                "message": "site '*': proxy_sites: must be a list of sites, not a mapping",
            }
        ],
        "sites": [],
        "dns_secrets": {},
    }


def test_the_sites_are_those_of_proxy_sites_normalize(args):
    sites = [pipelit(), pipelit("chat", routes=[{"path": "/ws/", "read_timeout": "1h"}]), plain(max_body_size="5m")]
    before = copy.deepcopy(sites)
    result = proxy_sites_model(sites, *args)
    assert result["errors"] == []
    assert result["sites"] == proxy_sites_normalize(sites, *args)
    assert sites == before


def test_the_filter_is_registered():
    assert model.FilterModule().filters()["proxy_sites_model"] is proxy_sites_model
