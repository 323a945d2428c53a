"""The site model (roles/proxy_sites/filter_plugins/proxy_sites.py) beyond the
refusal cases of test_model_refusals.py: the rest of its refusals, what it
makes of a valid model (profiles merged, defaults filled, sizes in bytes,
durations in seconds), and its parsers."""

from __future__ import annotations

import copy

import proxy_sites as model
import pytest
from proxy_sites import proxy_sites_errors, proxy_sites_normalize

APP = {"servers": ["127.0.0.1:8000"]}


@pytest.fixture(scope="module")
def args(proxy_sites_defaults):
    d = proxy_sites_defaults
    return (d["proxy_sites_profiles"], d["proxy_sites_security_headers"], d["proxy_sites_tls_dir"], d["proxy_sites_extra_profiles"])


def plain(name="plain", **fields):
    """A valid site without a profile: every field its own."""
    site = {
        "name": name,
        "domains": [f"{name}.example.com"],
        "tls": {"mode": "self_signed"},
        "upstreams": {"app": copy.deepcopy(APP)},
        "routes": [{"path": "/", "upstream": "app"}],
    }
    site.update(copy.deepcopy(fields))
    return site


def pipelit(**fields):
    site = {"name": "pipelit", "profile": "pipelit", "domains": ["pipelit.example.com"], "tls": {"mode": "acme"}}
    site.update(copy.deepcopy(fields))
    return site


def one(site, args):
    errors = proxy_sites_errors([site], *args)
    assert errors == [], errors
    (normal,) = proxy_sites_normalize([site], *args)
    return normal


# --- more refusals ------------------------------------------------------------

REFUSALS = [
    ("not-a-list", {"name": "x"}, "site '*': proxy_sites: must be a list of sites, not a mapping"),
    ("site-not-a-mapping", ["x"], "site '#0': site: must be a mapping with name, domains, tls, upstreams and routes, not 'x'"),
    ("name-upper-case", [plain("Bad")], "site 'Bad': name: must be lower-case letters"),
    (
        "name-missing",
        [{k: v for k, v in plain().items() if k != "name"}],
        "site '#0': name: every site needs a name (lower-case letters, digits, '-' and '_'), not null",
    ),
    (
        "domains-missing",
        [plain(domains=[])],
        "site 'plain': domains: needs a list of at least one domain (the first is the primary), not a list",
    ),
    (
        "domain-upper-case",
        [plain(domains=["Plain.example.com"])],
        "site 'plain': domains[0]: 'Plain.example.com' is not a valid lower-case",
    ),
    ("domain-label-dash", [plain(domains=["-a.example.com"])], "site 'plain': domains[0]: '-a.example.com' is not a valid"),
    ("same-ports", [plain(http_port=8080, https_port=8080)], "site 'plain': https_port: must differ from http_port"),
    (
        "trusted-proxy-bad",
        [plain(trusted_proxies=["10.0.0.300"])],
        "site 'plain': trusted_proxies: '10.0.0.300' is not an IP address or network",
    ),
    ("upstreams-a-list", [plain(upstreams=[APP])], "site 'plain': upstreams: must be a mapping of upstream name to upstream, not a list"),
    ("upstreams-empty", [plain(upstreams={})], "site 'plain': upstreams: needs at least one upstream"),
    ("routes-a-mapping", [plain(routes={"/": "app"})], "site 'plain': routes: must be a list of routes, not a mapping"),
    ("routes-empty", [plain(routes=[])], "site 'plain': routes: needs at least one route"),
    (
        "route-path-twice",
        [plain(routes=[{"path": "/a/", "upstream": "app"}, {"path": "/a/", "upstream": "app"}])],
        "site 'plain': routes[1].path: '/a/' is already the path of routes[0]",
    ),
    ("site-unknown-field", [plain(colour="blue")], "site 'plain': site: unknown field(s) colour"),
    ("tls-a-string", [plain(tls="acme")], "site 'plain': tls: must be a mapping with 'mode', not 'acme'"),
    (
        "tls-mode-unknown",
        [plain(tls={"mode": "letsencrypt"})],
        "site 'plain': tls.mode: 'letsencrypt' is not one of acme, files, self_signed",
    ),
    ("tls-unknown-field", [plain(tls={"mode": "self_signed", "key": "/k"})], "site 'plain': tls: unknown field(s) key"),
    ("tls-files-no-key", [plain(tls={"mode": "files", "certificate": "/c.pem"})], "site 'plain': tls.certificate_key: mode 'files' needs"),
    (
        "domain-of-two-sites",
        [plain("a"), plain("b", domains=["a.example.com"], http_port=81, https_port=444)],
        "site 'b': domains: 'a.example.com' is already a domain of site 'a'",
    ),
    ("same-name-twice", [plain("a"), plain("a", domains=["x.example.com"])], "site 'a': name: another site has the same name"),
    (
        "upstream-a-string",
        [plain(upstreams={"app": "127.0.0.1:8000"})],
        "site 'plain': upstreams.app: must be a mapping with 'servers', not '127.0.0.1:8000'",
    ),
    (
        "upstream-name-upper",
        [plain(upstreams={"App": APP}, routes=[{"path": "/", "upstream": "App"}])],
        "site 'plain': upstreams.App: upstream names are lower-case",
    ),
    ("upstream-unknown-field", [plain(upstreams={"app": {**APP, "weight": 2}})], "site 'plain': upstreams.app: unknown field(s) weight"),
    (
        "servers-empty",
        [plain(upstreams={"app": {"servers": []}})],
        "site 'plain': upstreams.app.servers: needs a list of at least one 'host:port'",
    ),
    (
        "server-no-port",
        [plain(upstreams={"app": {"servers": ["127.0.0.1"]}})],
        "site 'plain': upstreams.app.servers[0]: '127.0.0.1' is not host:port",
    ),
    ("server-port-0", [plain(upstreams={"app": {"servers": ["127.0.0.1:0"]}})], "upstreams.app.servers[0]: '127.0.0.1:0' is not host:port"),
    (
        "server-bad-ipv6",
        [plain(upstreams={"app": {"servers": ["[1::2::3]:80"]}})],
        "upstreams.app.servers[0]: '[1::2::3]:80' is not host:port",
    ),
    ("server-bad-name", [plain(upstreams={"app": {"servers": ["-app:80"]}})], "upstreams.app.servers[0]: '-app:80' is not host:port"),
    ("server-a-number", [plain(upstreams={"app": {"servers": [8000]}})], "upstreams.app.servers[0]: the number 8000 is not host:port"),
    (
        "scheme-ftp",
        [plain(upstreams={"app": {**APP, "scheme": "ftp"}})],
        "site 'plain': upstreams.app.scheme: 'ftp' is not one of http, https",
    ),
    (
        "keepalive-70000",
        [plain(upstreams={"app": {**APP, "keepalive": 70000}})],
        "upstreams.app.keepalive: must be a whole number of idle connections from 0 to 65535, not the number 70000",
    ),
    (
        "keepalive-timeout-bare",
        [plain(upstreams={"app": {**APP, "keepalive_timeout": "4"}})],
        "upstreams.app.keepalive_timeout: '4' is not a duration",
    ),
    (
        "sni-numeric-name",
        [plain(upstreams={"app": {**APP, "scheme": "https", "sni": "1.2.3"}})],
        "upstreams.app.sni: '1.2.3' is not a host name",
    ),
    (
        "upstream-state-unknown",
        [plain(upstreams={"app": APP, "b": {**APP, "state": "gone"}})],
        "site 'plain': upstreams.b.state: 'gone' is not one of present, absent",
    ),
    (
        "upstream-absent-no-profile",
        [plain(upstreams={"app": APP, "b": {"state": "absent"}})],
        "site 'plain': upstreams.b.state: 'absent' removes an upstream of the site's profile, and this site has no profile",
    ),
    (
        "route-state-unknown",
        [pipelit(routes=[{"path": "/ws/", "state": "off"}])],
        "site 'pipelit': routes[0].state: 'off' is not one of present, absent",
    ),
    ("route-a-string", [plain(routes=["/"])], "site 'plain': routes[0]: must be a mapping with 'path' and 'upstream', not '/'"),
    (
        "route-unknown-field",
        [plain(routes=[{"path": "/", "upstream": "app", "methods": ["GET"]}])],
        "site 'plain': routes[0]: unknown field(s) methods",
    ),
    (
        "route-upstream-unknown",
        [plain(routes=[{"path": "/", "upstream": "api"}])],
        "site 'plain': routes[0].upstream: 'api' is not an upstream of this site (known: app)",
    ),
    (
        "route-size",
        [plain(routes=[{"path": "/", "upstream": "app", "max_body_size": "big"}])],
        "site 'plain': routes[0].max_body_size: 'big' is not a size",
    ),
    (
        "route-allow-string",
        [plain(routes=[{"path": "/", "upstream": "app", "allow": "10.0.0.1"}])],
        "site 'plain': routes[0].allow: must be a list of addresses or networks, not '10.0.0.1'",
    ),
    (
        "rate-limit-a-string",
        [plain(routes=[{"path": "/", "upstream": "app", "rate_limit": "10r/s"}])],
        "site 'plain': routes[0].rate_limit: must be a mapping with 'rate' and 'burst', not '10r/s'",
    ),
    (
        "rate-no-unit",
        [plain(routes=[{"path": "/", "upstream": "app", "rate_limit": {"rate": "10/s"}}])],
        "site 'plain': routes[0].rate_limit.rate: '10/s' is not a rate such as 10r/s or 600r/m",
    ),
    (
        "verify-paths-string",
        [plain(verify_websocket_paths="/ws/")],
        "site 'plain': verify_websocket_paths: must be a list of absolute paths, not '/ws/'",
    ),
    (
        "verify-path-relative",
        [plain(verify_websocket_paths=["ws"])],
        "site 'plain': verify_websocket_paths[0]: 'ws' must be an absolute path",
    ),
    (
        "verify-path-no-route",
        [plain(routes=[{"path": "/a/", "upstream": "app"}], verify_websocket_paths=["/b/"])],
        "verify_websocket_paths[0]: '/b/' is under none of the site's routes",
    ),
    (
        "verify-path-no-websocket",
        [plain(verify_websocket_paths=["/ws/"])],
        "verify_websocket_paths[0]: '/ws/' goes to route '/', which does not pass WebSocket upgrades",
    ),
    ("header-name-space", [plain(headers={"X Bad": "1"})], "site 'plain': headers.X Bad: is not a valid header name"),
    ("headers-a-list", [plain(headers=["X-A: 1"])], "site 'plain': headers: must be a mapping of header name to value, not a list"),
    ("header-line-break", [plain(headers={"X-A": "a\nb"})], "site 'plain': headers.X-A: a value may not hold"),
    (
        "acme-numeric-tld",
        [pipelit(domains=["pipelit.example.123"])],
        "site 'pipelit': domains[0]: 'pipelit.example.123' is not a fully qualified name",
    ),
    (
        "profile-unknown",
        [plain(profile="wordpress")],
        "site 'plain': profile: 'wordpress' is not a known profile (known: aliasvault, pipelit)",
    ),
]


@pytest.mark.parametrize("case_id,sites,message", REFUSALS, ids=[case[0] for case in REFUSALS])
def test_refusal(args, case_id, sites, message):
    errors = proxy_sites_errors(sites, *args)
    assert any(message in error for error in errors), errors


def test_every_mistake_of_a_site_is_reported_at_once(args):
    site = plain(http_port="80", max_body_size="lots", tls={"mode": "nope"})
    fields = [error.split(": ")[1] for error in proxy_sites_errors([site], *args)]
    assert fields == ["http_port", "max_body_size", "tls.mode"]


def test_a_valid_model_has_no_errors(args):
    assert proxy_sites_errors([], *args) == []
    assert proxy_sites_errors([plain(), pipelit(), plain("v6", upstreams={"app": {"servers": ["[::1]:8000"]}})], *args) == []


# --- profiles -----------------------------------------------------------------


def test_profiles_are_checked_each_naming_the_profile(args):
    profiles, headers, tls_dir, _ = args
    extra = {
        "Bad": {},
        "scalar": "x",
        "own": {"domains": ["a.example.com"], "max_body_size": "huge"},
        "routes-only": {"routes": [{"path": "/", "upstream": "missing"}]},
    }
    errors = proxy_sites_errors([], profiles, headers, tls_dir, extra)
    assert "profile 'Bad': name: profile names are lower-case letters, digits, '-' and '_'" in errors
    assert "profile 'scalar': profile: must be a mapping of site fields, not 'x'" in errors
    assert "profile 'own': domains: belongs to each site, not to a profile" in errors
    assert any(e.startswith("profile 'own': max_body_size: 'huge' is not a size") for e in errors), errors
    # A profile's route numbers are its own (no "profile." prefix).
    assert any(e.startswith("profile 'routes-only': routes[0].upstream: 'missing'") for e in errors), errors
    # What sites may add (upstreams, routes) is not a profile's mistake.
    assert not any("needs at least one" in e for e in errors), errors


def test_extra_profiles_must_be_a_mapping(args):
    profiles, headers, tls_dir, _ = args
    errors = proxy_sites_errors([], profiles, headers, tls_dir, ["x"])
    assert errors == ["site '*': proxy_sites_extra_profiles: must be a mapping of profile name to site fields, not a list"]


def test_a_site_whose_profile_is_not_a_mapping(args):
    _, headers, tls_dir, _ = args
    errors = proxy_sites_errors([plain(profile="odd")], {"odd": ["x"]}, headers, tls_dir, {})
    assert "site 'plain': profile: proxy_sites_profiles.odd must be a mapping of site fields" in errors


def test_an_extra_profile_of_a_builtin_name_replaces_it_whole(args):
    profiles, headers, tls_dir, _ = args
    extra = {"pipelit": {"upstreams": {"app": {"servers": ["127.0.0.1:9000"]}}, "routes": [{"path": "/", "upstream": "app"}]}}
    (site,) = proxy_sites_normalize([pipelit()], profiles, headers, tls_dir, extra)
    assert [route["path"] for route in site["routes"]] == ["/"]
    assert site["upstreams"][0]["servers"] == ["127.0.0.1:9000"]
    assert site["max_body_size"] == 1024**2  # the model's default, not the built-in's 50m


def test_a_new_extra_profile_is_known(args):
    profiles, headers, tls_dir, _ = args
    extra = {"live": {"upstreams": {"web": APP}, "routes": [{"path": "/", "upstream": "web"}]}}
    site = {"name": "live", "profile": "live", "domains": ["live.example.com"], "tls": {"mode": "self_signed"}}
    assert proxy_sites_errors([site], profiles, headers, tls_dir, extra) == []


# --- normalisation --------------------------------------------------------------


def test_the_pipelit_profile_fills_a_site(args):
    site = one(pipelit(), args)
    assert site["name"] == "pipelit"
    assert (site["http_port"], site["https_port"]) == (80, 443)
    assert site["max_body_size"] == 50 * 1024**2
    assert site["tls"] == {
        "mode": "acme",
        "certificate": "/etc/ssl/pipelit-edge/pipelit/fullchain.pem",
        "certificate_key": "/etc/ssl/pipelit-edge/pipelit/privkey.pem",
        "challenge": "http-01",
        "dns": None,
    }
    (upstream,) = site["upstreams"]
    assert upstream["id"] == "pipelit_app" and upstream["keepalive_timeout_seconds"] == 4 and upstream["keepalive"] == 32
    routes = {route["path"]: route for route in site["routes"]}
    assert set(routes) == {"/", "/ws/"}
    assert routes["/ws/"]["websocket"] is True and routes["/ws/"]["read_timeout_seconds"] == 86400
    assert routes["/"]["websocket"] is False and routes["/"]["read_timeout_seconds"] == 60
    assert routes["/"]["upstream_id"] == "pipelit_app"
    assert site["verify_websocket_paths"] == ["/ws/"]
    assert {h["name"]: h["value"] for h in site["headers"]} == {
        "Strict-Transport-Security": "max-age=63072000",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "SAMEORIGIN",
        "Referrer-Policy": "strict-origin-when-cross-origin",
    }


def test_a_route_merges_with_the_profiles_route_of_its_path_field_by_field(args):
    site = one(pipelit(routes=[{"path": "/ws/", "read_timeout": "1h"}, {"path": "/extra/", "upstream": "app"}]), args)
    routes = {route["path"]: route for route in site["routes"]}
    assert set(routes) == {"/", "/ws/", "/extra/"}
    assert routes["/ws/"]["read_timeout_seconds"] == 3600
    assert routes["/ws/"]["websocket"] is True and routes["/ws/"]["upstream"] == "app"
    assert routes["/ws/"]["send_timeout_seconds"] == 86400


def test_absent_removes_the_profiles_route_and_upstream(args):
    site = one(
        pipelit(
            upstreams={"api": APP},
            routes=[{"path": "/ws/", "state": "absent"}, {"path": "/", "upstream": "api"}],
        ),
        args,
    )
    assert [route["path"] for route in site["routes"]] == ["/"]
    assert site["verify_websocket_paths"] == []
    site = one(
        {
            "name": "av",
            "profile": "aliasvault",
            "domains": ["av.example.com"],
            "tls": {"mode": "self_signed"},
            "upstreams": {"aliasvault": {"state": "absent"}, "web": APP},
            "routes": [{"path": "/", "upstream": "web"}],
        },
        args,
    )
    assert [upstream["name"] for upstream in site["upstreams"]] == ["web"]


def test_an_upstream_merges_with_the_profiles_field_by_field(args):
    site = one(pipelit(upstreams={"app": {"keepalive": 8}}), args)
    (upstream,) = site["upstreams"]
    assert upstream["servers"] == ["127.0.0.1:8000"] and upstream["keepalive"] == 8 and upstream["keepalive_timeout"] == "4s"


def test_headers_merge_by_name_whatever_the_case_and_empty_removes(args):
    site = one(plain(headers={"x-frame-options": "DENY", "Referrer-Policy": "", "X-Robots-Tag": "none", "X-Num": 5}), args)
    headers = {h["name"]: h["value"] for h in site["headers"]}
    assert headers["x-frame-options"] == "DENY" and "X-Frame-Options" not in headers
    assert "Referrer-Policy" not in headers
    assert headers["X-Robots-Tag"] == "none" and headers["X-Num"] == "5"


def test_https_upstreams_send_the_first_servers_name_never_an_address(args):
    named = one(plain(upstreams={"app": {"servers": ["App.Internal:8443"], "scheme": "https"}}), args)
    assert named["upstreams"][0]["sni"] == "App.Internal"
    by_address = one(plain(upstreams={"app": {"servers": ["[::1]:8443"], "scheme": "https"}}), args)
    assert by_address["upstreams"][0]["sni"] is None
    explicit = one(
        plain(upstreams={"app": {"servers": ["127.0.0.1:8443"], "scheme": "https", "sni": "app.internal", "ca_file": "/etc/ssl/ca.pem"}}),
        args,
    )
    assert explicit["upstreams"][0]["sni"] == "app.internal" and explicit["upstreams"][0]["ca_file"] == "/etc/ssl/ca.pem"


def test_files_mode_keeps_the_operators_paths(args):
    site = one(plain(tls={"mode": "files", "certificate": "/etc/ssl/c.pem", "certificate_key": "/etc/ssl/k.pem"}), args)
    assert site["tls"] == {
        "mode": "files",
        "certificate": "/etc/ssl/c.pem",
        "certificate_key": "/etc/ssl/k.pem",
        "challenge": None,
        "dns": None,
    }


def test_a_rate_limit_gets_its_zone_and_sizes_become_bytes(args):
    site = one(
        plain(
            "my-site",
            routes=[{"path": "/", "upstream": "app", "rate_limit": {"rate": "10r/s"}, "max_body_size": "2k", "allow": ["10.0.0.0/8"]}],
        ),
        args,
    )
    (route,) = site["routes"]
    assert route["rate_limit"] == {"rate": "10r/s", "burst": 0, "zone": "my_site_route0"}
    assert route["max_body_size"] == 2048 and route["allow"] == ["10.0.0.0/8"]
    assert site["upstreams"][0]["id"] == "my_site_app"


def test_the_aliasvault_profiles_websocket_path(args):
    site = one({"name": "av", "profile": "aliasvault", "domains": ["av.example.com"], "tls": {"mode": "self_signed"}}, args)
    assert site["verify_websocket_paths"] == ["/admin/_blazor"]
    assert site["upstreams"][0]["verify"] is False and site["upstreams"][0]["sni"] is None


def test_normalize_does_not_change_its_input(args):
    site = pipelit(routes=[{"path": "/ws/", "read_timeout": "1h"}])
    before = copy.deepcopy(site)
    proxy_sites_normalize([site], *args)
    assert site == before


def test_the_filters_are_registered():
    filters = model.FilterModule().filters()
    assert filters["proxy_sites_errors"] is proxy_sites_errors and filters["proxy_sites_normalize"] is proxy_sites_normalize


# --- parsers ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,size",
    [("0", 0), (0, 0), ("512", 512), ("512k", 512 * 1024), ("50M", 50 * 1024**2), ("1g", 1024**3), (" 2m ", 2 * 1024**2)],
)
def test_sizes(value, size):
    assert model.parse_size(value) == size


@pytest.mark.parametrize("value", ["1t", "1.5m", "-1", "", True, None, ["1m"], "9223372036854775808"])
def test_not_sizes(value):
    assert model.parse_size(value) is None


@pytest.mark.parametrize(
    "value,seconds", [("1000ms", 1), ("2000ms", 2), ("1s", 1), ("60s", 60), ("5m", 300), ("24h", 86400), ("8784h", 366 * 86400)]
)
def test_durations(value, seconds):
    assert model.parse_duration(value) == seconds


# Under a second, or not whole seconds: nginx would read 1s, Caddy 0 as no
# timeout at all (issue 19: WebSockets died after a second).
@pytest.mark.parametrize("value", ["8785h", "60", "1d", "1.5s", 60, None, "0s", "0h", "0m", "0ms", "500ms", "999ms", "1500ms"])
def test_not_durations(value):
    assert model.parse_duration(value) is None


def test_kinds_in_yamls_words():
    assert [model.kind(v) for v in (None, True, False, 3, 1.5, "x", [], {}, (1,))] == [
        "null",
        "the boolean true",
        "the boolean false",
        "the number 3",
        "the number 1.5",
        "'x'",
        "a list",
        "a mapping",
        "a tuple",
    ]


def test_server_addresses():
    assert model.split_server("127.0.0.1:8000") == ("127.0.0.1", 8000)
    assert model.split_server("[::1]:443") == ("[::1]", 443)
    assert model.split_server("app.internal:65535") == ("app.internal", 65535)
    for bad in ("127.0.0.1:65536", "999.1.1.1:80", "1.2.3:80", "app:", None, "[::1]", "a b:80"):
        assert model.split_server(bad) is None, bad


def test_networks_and_host_names():
    assert model.is_network("10.0.0.0/8") and model.is_network("2001:db8::/32") and model.is_network("192.0.2.1")
    assert not model.is_network("fe80::1%eth0") and not model.is_network(5) and not model.is_network("10.0.0.0/33")
    assert model.is_host_name("App-1.internal") and not model.is_host_name("127.0.0.1") and not model.is_host_name("")
    assert not model.is_host_name("a" * 254)
