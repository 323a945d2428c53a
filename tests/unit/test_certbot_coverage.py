"""The certificate-coverage rule, once (roles/proxy_sites/module_utils/
pipelit_edge_certbot.py): whether certbot's certificate of a site still
covers the site's DNS names, key type and ACME server, or certbot must ask
the CA again; and the certbot role's module that applies it to every acme
site (roles/certbot/library/certbot_coverage.py). The acme_preflight role
applies the same function (test_acme_preflight_state.py)."""

from __future__ import annotations

import certbot_coverage
import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pipelit_edge_certbot import certbot_request_reason
from ansible_module import FakeModule, run_module
from certificates import DIRECTORY, SITE, make_cert, make_letsencrypt, needs_openssl, openssl

pytestmark = needs_openssl

NAME = "pipelit-edge-pipelit"


@pytest.fixture
def letsencrypt(tmp_path):
    return make_letsencrypt(tmp_path / "letsencrypt")


def reason(root, domains=SITE["domains"], key_type="ecdsa", directory_url=DIRECTORY, name=NAME):
    return certbot_request_reason(FakeModule({}, openssl), str(root), name, domains, key_type, directory_url)


def test_a_certificate_that_matches_the_site_is_covered(letsencrypt):
    assert reason(letsencrypt) is None
    # The order of the domains is not the certificate's business.
    assert reason(letsencrypt, domains=list(reversed(SITE["domains"]))) is None


def test_no_certificate_yet(tmp_path):
    assert reason(tmp_path) == "no certificate yet"


def test_a_certificate_for_other_domains(letsencrypt):
    assert reason(letsencrypt, domains=["pipelit.test", "api.pipelit.test"]) == "its certificate covers pipelit.test, www.pipelit.test"
    # A domain fewer is not covered either: certbot asks for the site's exact set.
    assert reason(letsencrypt, domains=["pipelit.test"]) == "its certificate covers pipelit.test, www.pipelit.test"


def test_a_certificate_of_the_other_key_type(letsencrypt):
    assert reason(letsencrypt, key_type="rsa") == "its certificate has another key type"
    make_cert(letsencrypt / "live" / NAME / "cert.pem", SITE["domains"], key="rsa")
    assert reason(letsencrypt, key_type="rsa") is None
    assert reason(letsencrypt) == "its certificate has another key type"


def test_a_certificate_from_another_acme_server(letsencrypt):
    assert reason(letsencrypt, directory_url="https://acme-staging.example/directory") == "its certificate comes from another ACME server"
    # A renewal file naming no server counts as another server.
    (letsencrypt / "renewal" / f"{NAME}.conf").write_text("version = 2.9.0\n[renewalparams]\n")
    assert reason(letsencrypt) == "its certificate comes from another ACME server"
    (letsencrypt / "renewal" / f"{NAME}.conf").unlink()
    assert reason(letsencrypt) == "its certificate comes from another ACME server"


def test_an_unreadable_certificate(letsencrypt):
    (letsencrypt / "live" / NAME / "cert.pem").write_text("not a certificate\n")
    assert reason(letsencrypt) == "its certificate cannot be read"


def test_the_certbot_role_requests_the_sites_the_rule_does_not_cover(monkeypatch, capsys, letsencrypt):
    monkeypatch.setattr(AnsibleModule, "run_command", lambda self, argv, **kw: openssl(argv))
    sites = [
        {"name": "new", "domains": ["new.test"]},
        SITE,
        {"name": "grown", "domains": ["grown.test", "more.grown.test"]},
    ]
    make_cert(letsencrypt / "live" / "pipelit-edge-grown" / "cert.pem", ["grown.test"])
    rc, result = run_module(
        certbot_coverage.main,
        capsys,
        sites=sites,
        directory_url=DIRECTORY,
        cert_name_prefix="pipelit-edge-",
        config_dir=str(letsencrypt),
        _ansible_check_mode=True,
    )
    assert rc == 0 and result["changed"] is False
    # In the sites' order; only a read, so check mode answers the same.
    assert result["requests"] == ["new", "grown"]
    assert result["reasons"] == {"new": "no certificate yet", "grown": "its certificate covers grown.test"}


def test_a_lineage_of_another_challenge_is_requested_again(letsencrypt):
    renewal = letsencrypt / "renewal" / f"{NAME}.conf"
    # No authenticator line counts as webroot (HTTP-01), as the role wrote it.
    assert reason(letsencrypt) is None
    dns01 = "its certificate was obtained with another challenge than dns-01"
    assert certbot_request_reason(FakeModule({}, openssl), str(letsencrypt), NAME, SITE["domains"], "ecdsa", DIRECTORY, "dns-01") == dns01
    renewal.write_text(f"version = 2.9.0\n[renewalparams]\nauthenticator = webroot\nserver = {DIRECTORY}\n")
    assert reason(letsencrypt) is None
    # http-01 -> dns-01 and back: requested again, so certbot records the new authenticator.
    assert certbot_request_reason(FakeModule({}, openssl), str(letsencrypt), NAME, SITE["domains"], "ecdsa", DIRECTORY, "dns-01") == dns01
    renewal.write_text(f"version = 2.9.0\n[renewalparams]\nauthenticator = dns-rfc2136\nserver = {DIRECTORY}\n")
    assert certbot_request_reason(FakeModule({}, openssl), str(letsencrypt), NAME, SITE["domains"], "ecdsa", DIRECTORY, "dns-01") is None
    assert reason(letsencrypt) == "its certificate was obtained with another challenge than http-01"


def test_a_wildcard_compares_as_written(letsencrypt):
    domains = ["*.pipelit.test", "pipelit.test"]
    make_cert(letsencrypt / "live" / NAME / "cert.pem", domains)
    assert reason(letsencrypt, domains=list(reversed(domains))) is None
    assert reason(letsencrypt, domains=["pipelit.test"]) == "its certificate covers *.pipelit.test, pipelit.test"


def test_the_module_passes_each_sites_challenge(monkeypatch, capsys, letsencrypt):
    monkeypatch.setattr(AnsibleModule, "run_command", lambda self, argv, **kw: openssl(argv))
    rc, result = run_module(
        certbot_coverage.main,
        capsys,
        sites=[{**SITE, "tls": {"mode": "acme", "challenge": "dns-01"}}],
        directory_url=DIRECTORY,
        cert_name_prefix="pipelit-edge-",
        config_dir=str(letsencrypt),
    )
    assert rc == 0 and result["reasons"] == {"pipelit": "its certificate was obtained with another challenge than dns-01"}
