"""DNS-01 in the site model (roles/proxy_sites/filter_plugins/proxy_sites.py):
tls.challenge and its dns block, wildcard domains over DNS-01 only, and the
TSIG secret kept out of the normalised sites (and out of every message)."""

from __future__ import annotations

import copy

import pytest
from proxy_sites import proxy_sites_model

SECRET = "c2VjcmV0LW9mLXRoZS10c2lnLWtleS1mb3ItdGVzdHM="
DNS = {"server": "192.0.2.53", "key_name": "pipelit-edge-test", "key_secret": SECRET}


@pytest.fixture(scope="module")
def args(proxy_sites_defaults):
    d = proxy_sites_defaults
    return (d["proxy_sites_profiles"], d["proxy_sites_security_headers"], d["proxy_sites_tls_dir"], d["proxy_sites_extra_profiles"])


def site(tls=None, domains=("*.pipelit.test", "pipelit.test"), **fields):
    result = {
        "name": "wild",
        "domains": list(domains),
        "tls": copy.deepcopy(tls if tls is not None else {"mode": "acme", "challenge": "dns-01", "dns": DNS}),
        "upstreams": {"app": {"servers": ["127.0.0.1:8000"]}},
        "routes": [{"path": "/", "upstream": "app"}],
    }
    result.update(fields)
    return result


def model(sites, args):
    return proxy_sites_model(sites, *args)


def messages(sites, args):
    return [error["message"] for error in model(sites, args)["errors"]]


def test_a_dns01_wildcard_site_is_normalised_without_its_secret(args):
    result = model([site()], args)
    assert result["errors"] == []
    (normal,) = result["sites"]
    assert normal["domains"] == ["*.pipelit.test", "pipelit.test"]
    assert normal["tls"]["challenge"] == "dns-01"
    dns = normal["tls"]["dns"]
    assert {k: v for k, v in dns.items() if k != "key_id"} == {
        "server": "192.0.2.53",
        "port": 53,
        "key_name": "pipelit-edge-test",
        "key_algorithm": "hmac-sha256",
    }
    assert len(dns["key_id"]) == 16
    assert result["dns_secrets"] == {"wild": SECRET}
    assert SECRET not in repr(result["sites"])


def test_a_changed_secret_changes_the_key_id(args):
    first = model([site()], args)["sites"][0]["tls"]["dns"]["key_id"]
    other = {**DNS, "key_secret": "b3RoZXItc2VjcmV0"}
    second = model([site(tls={"mode": "acme", "challenge": "dns-01", "dns": other})], args)["sites"][0]["tls"]["dns"]["key_id"]
    assert first != second


def test_the_default_challenge_is_http01(args):
    (normal,) = model([site(tls={"mode": "acme"}, domains=["a.example.com"])], args)["sites"]
    assert (normal["tls"]["challenge"], normal["tls"]["dns"]) == ("http-01", None)
    (normal,) = model([site(tls={"mode": "self_signed"}, domains=["a.example.com"])], args)["sites"]
    assert (normal["tls"]["challenge"], normal["tls"]["dns"]) == (None, None)


def test_a_dns01_site_may_serve_http_on_any_port(args):
    assert messages([site(http_port=8080)], args) == []
    assert messages([site(tls={"mode": "acme"}, domains=["a.example.com"], http_port=8080)], args) == [
        "site 'wild': http_port: tls mode acme validates over HTTP-01, which the CA always sends to port 80; "
        "the number 8080 cannot answer it (use port 80, or tls mode files or self_signed)"
    ]


@pytest.mark.parametrize(
    ("tls", "expected"),
    [
        ({"mode": "acme"}, "site 'wild': domains[0]: '*.pipelit.test' is a wildcard, which needs tls mode acme with challenge dns-01"),
        ({"mode": "acme", "challenge": "http-01"}, "site 'wild': domains[0]: '*.pipelit.test' is a wildcard"),
        ({"mode": "self_signed"}, "site 'wild': domains[0]: '*.pipelit.test' is a wildcard"),
        (
            {"mode": "files", "certificate": "/etc/ssl/c.pem", "certificate_key": "/etc/ssl/k.pem"},
            "site 'wild': domains[0]: '*.pipelit.test' is a wildcard",
        ),
    ],
)
def test_a_wildcard_needs_dns01(args, tls, expected):
    (message,) = messages([site(tls=tls)], args)
    assert message.startswith(expected)
    assert "(a CA issues wildcard names over DNS-01 only)" in message


@pytest.mark.parametrize("domain", ["*.com", "*.*.example.com", "a.*.example.com", "*example.com", "*.Example.com"])
def test_malformed_wildcards_are_refused(args, domain):
    (message,) = messages([site(domains=[domain])], args)
    assert message.startswith(f"site 'wild': domains[0]: '{domain}' is not a valid lower-case domain name")


@pytest.mark.parametrize(
    ("tls", "expected"),
    [
        ({"mode": "acme", "challenge": "tls-alpn-01"}, "site 'wild': tls.challenge: 'tls-alpn-01' is not one of http-01, dns-01"),
        ({"mode": "self_signed", "challenge": "dns-01"}, "site 'wild': tls.challenge: only mode 'acme' asks a CA"),
        ({"mode": "acme", "challenge": "dns-01"}, "site 'wild': tls.dns: challenge dns-01 needs a mapping with server, port"),
        ({"mode": "acme", "dns": DNS}, "site 'wild': tls.dns: only tls.challenge dns-01 updates a DNS zone"),
        (
            {"mode": "acme", "challenge": "dns-01", "dns": {**DNS, "server": "ns1.example.com"}},
            "site 'wild': tls.dns.server: 'ns1.example.com' is not an IP address (certbot's dns-rfc2136 plugin takes no host name)",
        ),
        ({"mode": "acme", "challenge": "dns-01", "dns": {**DNS, "port": 0}}, "site 'wild': tls.dns.port: the number 0 is not a port"),
        ({"mode": "acme", "challenge": "dns-01", "dns": {**DNS, "port": "53"}}, "site 'wild': tls.dns.port: '53' is not a port"),
        (
            {"mode": "acme", "challenge": "dns-01", "dns": {**DNS, "key_name": "bad name"}},
            "site 'wild': tls.dns.key_name: 'bad name' is not a TSIG key name",
        ),
        (
            {"mode": "acme", "challenge": "dns-01", "dns": {**DNS, "key_algorithm": "hmac-sha3"}},
            "site 'wild': tls.dns.key_algorithm: 'hmac-sha3' is not one of hmac-sha256, hmac-sha512",
        ),
        ({"mode": "acme", "challenge": "dns-01", "dns": {**DNS, "zone": "x"}}, "site 'wild': tls.dns: unknown field(s) zone"),
    ],
)
def test_dns01_refusals(args, tls, expected):
    found = messages([site(tls=tls, domains=["a.example.com"])], args)
    assert any(message.startswith(expected) for message in found), found


def test_the_algorithm_is_read_in_any_case(args):
    tls = {"mode": "acme", "challenge": "dns-01", "dns": {**DNS, "key_algorithm": "HMAC-SHA512"}}
    assert model([site(tls=tls)], args)["sites"][0]["tls"]["dns"]["key_algorithm"] == "hmac-sha512"


@pytest.mark.parametrize(
    ("secret", "what"), [(None, "missing"), (42, "not a text"), ("not base64!" + SECRET, "not base64"), ("", "not base64")]
)
def test_a_bad_secret_is_refused_and_never_echoed(args, secret, what):
    dns = {k: v for k, v in DNS.items() if k != "key_secret"}
    if secret is not None:
        dns["key_secret"] = secret
    result = model([site(tls={"mode": "acme", "challenge": "dns-01", "dns": dns})], args)
    (message,) = [error["message"] for error in result["errors"]]
    assert message == (
        f"site 'wild': tls.dns.key_secret: the TSIG secret is {what}; give the key's base64 secret (as tsig-keygen prints it), from Ansible Vault"
    )
    assert SECRET not in message and "not base64!" not in message
    assert result["dns_secrets"] == {}


def test_no_error_message_holds_the_secret(args):
    # Everything else of the dns block wrong at once: the valid secret is
    # in no message and in no site, only in dns_secrets.
    tls = {"mode": "acme", "challenge": "dns-01", "dns": {**DNS, "server": "x", "port": -1, "key_name": "", "key_algorithm": "md5"}}
    result = model([site(tls=tls)], args)
    assert len(result["errors"]) == 4
    assert SECRET not in repr(result["errors"]) + repr(result["sites"])
    assert result["dns_secrets"] == {"wild": SECRET}
