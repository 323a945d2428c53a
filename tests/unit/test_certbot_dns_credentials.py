"""The certbot role's RFC 2136 credentials file (roles/certbot/templates/
dns-rfc2136.ini.j2), rendered as the role renders it, in the format of
certbot's dns-rfc2136 plugin: dns_rfc2136_* keys, the algorithm in upper case
(the plugin's table; certbot 2.x falls back to HMAC-MD5 on any other case)."""

from __future__ import annotations

import jinja2
from conftest import ROOT

SECRET = "c2VjcmV0LW9mLXRoZS10c2lnLWtleS1mb3ItdGVzdHM="


def render(**dns):
    template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(
        (ROOT / "roles/certbot/templates/dns-rfc2136.ini.j2").read_text(encoding="utf-8")
    )
    site = {
        "name": "wild",
        "tls": {"dns": {"server": "192.0.2.53", "port": 53, "key_name": "pipelit-edge-test", "key_algorithm": "hmac-sha256", **dns}},
    }
    return template.render(site=site, __certbot_dns_secret=SECRET, ansible_managed="Ansible managed")


def settings(text):
    return dict(line.split(" = ", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_the_credentials_are_in_the_plugins_format():
    assert settings(render()) == {
        "dns_rfc2136_server": "192.0.2.53",
        "dns_rfc2136_port": "53",
        "dns_rfc2136_name": "pipelit-edge-test",
        "dns_rfc2136_secret": SECRET,
        "dns_rfc2136_algorithm": "HMAC-SHA256",
    }


def test_the_algorithm_is_written_in_upper_case():
    assert settings(render(key_algorithm="hmac-sha512", port=5353))["dns_rfc2136_algorithm"] == "HMAC-SHA512"
    assert settings(render(key_algorithm="hmac-md5"))["dns_rfc2136_algorithm"] == "HMAC-MD5"
