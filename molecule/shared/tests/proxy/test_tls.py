"""TLS as Mozilla's intermediate profile has it, HTTP/2, and the security headers."""

import re
import shlex

import pytest
from conftest import FLAVOUR, PIPELIT, VAULT


def handshake(probe, *options, domain=PIPELIT):
    cmd = ["openssl", "s_client", "-connect", f"{domain}:443", "-servername", domain, *options]
    return probe.run(shlex.join(cmd) + " </dev/null 2>&1")


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_old_tls_versions_are_refused_by_the_server(probe, version):
    # SECLEVEL=0 lets this client offer TLS 1.0/1.1, so the refusal is the server's.
    result = handshake(probe, version, "-cipher", "DEFAULT@SECLEVEL=0")
    assert "alert protocol version" in result.stdout
    assert not re.search(r"New, TLSv1(\.1)?, Cipher is", result.stdout)


@pytest.mark.parametrize("version,name", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_tls_12_and_13_are_accepted(probe, version, name):
    result = handshake(probe, version)
    assert f"New, {name}, Cipher is" in result.stdout


def test_ciphers_without_forward_secrecy_are_refused(probe):
    result = handshake(probe, "-tls1_2", "-cipher", "AES128-SHA")
    assert "alert handshake failure" in result.stdout


@pytest.mark.parametrize("domain", [PIPELIT, "www.pipelit.test", VAULT])
def test_certificate_verifies_for_every_domain_over_http2(fetch, domain):
    response = fetch(f"https://{domain}/health")
    assert response.status == 200
    assert response.http_version == "2"


@pytest.mark.parametrize("domain", [PIPELIT, VAULT])
def test_security_headers(fetch, domain):
    headers = fetch(f"https://{domain}/").headers
    assert headers["strict-transport-security"] == "max-age=63072000"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "SAMEORIGIN"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
    # No version number for a scanner to match against.
    assert not re.search(r"\d", headers.get("server", ""))


def test_security_headers_on_errors_too(fetch):
    # A 413 is the edge's own answer; it still carries HSTS.
    response = fetch(f"https://{PIPELIT}/upload", "--http1.1", "-X", "POST", "-H", "Content-Length: 99999999999")
    assert response.status == 413
    assert "strict-transport-security" in response.headers


@pytest.fixture(scope="module")
def sslyze_report(probe, ca_files):
    """sslyze (installed on the probe by prepare.yml) against every site,
    checked against Mozilla's intermediate configuration; its text report."""
    roots = "/tmp/sslyze-roots.pem"
    probe.check_output(f"cat {' '.join(sorted(ca_files.values()))} > {roots}")
    result = probe.run(
        f"PYTHONPATH=/opt/sslyze python3 -m sslyze --mozilla_config=intermediate --certinfo_ca_file {roots} {PIPELIT}:443 {VAULT}:443 2>&1"
    )
    assert "COMPLIANCE AGAINST TLS CONFIGURATION" in result.stdout, result.stdout
    return result.stdout


def sslyze_findings(report, target):
    """{finding name: sslyze's words} of one target's Mozilla check."""
    section = report.split("COMPLIANCE AGAINST TLS CONFIGURATION", 1)[1]
    match = re.search(rf"^\s*{re.escape(target)}: (.*?)(?=^\s*\S+:\d+: |\Z)", section, re.M | re.S)
    assert match, section
    return dict(re.findall(r"^\s*\* (\w+): (.*)$", match.group(1), re.M))


@pytest.mark.parametrize("domain", [PIPELIT, VAULT])
def test_sslyze_finds_mozilla_intermediate(sslyze_report, domain):
    findings = sslyze_findings(sslyze_report, f"{domain}:443")
    # Only what the test certificates cause (conftest.FLAVOURS says why), and
    # nothing about versions, ciphers, curves, key or lifetime.
    assert set(findings) == FLAVOUR["sslyze_tolerated"], findings
