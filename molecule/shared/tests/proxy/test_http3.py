"""HTTP/3 (issue 21): served where the platform has it, advertised exactly
there, and held to the same rules as TCP.

The scenarios' sites inherit `proxy_sites_http3: true`
(molecule/shared/vars/sites.yml). Caddy serves it on Debian 12 and 13, nginx
on Debian 13 only: on Debian 12 the inherited default is dropped with a
warning, and a site that asks for it itself is refused before any change.

Requests over QUIC come from the probe's curl, which speaks HTTP/3 on Debian
13 (the probe's Debian is the edge's). Where the probe's curl cannot, the
checks that need it are skipped, saying so; the Debian 13 runs make them.
"""

from __future__ import annotations

import re
import shlex
import uuid

import pytest
from conftest import (
    DISTRO,
    FLAVOUR,
    HTTP3_CHECKED,
    HTTP3_CURL,
    PIPELIT,
    PROXY,
    SITE_OF,
    VAULT,
    config_digest,
    run_converge,
    tried_again_over_http3,
    valid_sites,
    ws_check,
)
from conftest import HTTP3_SERVED as SERVED


@pytest.fixture(scope="module")
def h3(probe, ca_files):
    """h3(url, *curl options): one request over HTTP/3 only, from the probe;
    (exit code, "STATUS VERSION", stderr). Skips where the probe's curl has no HTTP/3."""
    if not SERVED:
        pytest.skip(f"{PROXY} on {DISTRO} does not serve HTTP/3 (test_debian12_nginx_* below)")
    if not HTTP3_CHECKED:
        pytest.skip(f"the {DISTRO} probe's curl has no HTTP/3; the Debian 13 runs make this check")
    assert "HTTP3" in probe.check_output("curl -V"), "the Debian 13 probe's curl should speak HTTP/3"

    def _h3(url, *options, ca=None, retry=True):
        host = url.split("/")[2].split(":")[0]
        ca = ca or ca_files.get(SITE_OF.get(host, "pipelit"))
        command = shlex.join(
            ["curl", *HTTP3_CURL, "-sS", "-o", "/dev/null", "-w", "%{http_code} %{http_version}", "--cacert", ca, *options, url]
        )
        # A refusal is expected to fail: once is enough.
        result = probe.run(tried_again_over_http3(command) if retry else command)
        return result.rc, result.stdout.strip(), result.stderr.strip()

    return _h3


# ---- advertised exactly where served --------------------------------------------


@pytest.mark.parametrize(
    ("url", "status"),
    [
        (f"https://{PIPELIT}/", 200),
        (f"https://{VAULT}/", 200),
        # Refused at the edge (path_guard) and misdirected: every HTTPS
        # response advertises it, not only the proxied ones.
        (f"https://{PIPELIT}//etc/passwd", 400),
    ],
)
def test_alt_svc_advertises_http3_exactly_where_it_is_served(fetch, url, status):
    response = fetch(url, "--path-as-is")
    assert response.status == status
    alt_svc = response.headers.get("alt-svc", "")
    if SERVED:
        assert 'h3=":443"' in alt_svc.replace(" ", ""), response.headers
    else:
        assert "h3" not in alt_svc, response.headers


def test_a_misdirected_request_advertises_it_too(fetch):
    response = fetch(f"https://{PIPELIT}/", "-H", f"Host: {VAULT}")
    assert response.status == 421
    assert ('h3=":443"' in response.headers.get("alt-svc", "").replace(" ", "")) == SERVED, response.headers


# ---- served over QUIC, under the same rules ---------------------------------------


@pytest.mark.parametrize("url", [f"https://{PIPELIT}/", f"https://www.{PIPELIT}/api/x", f"https://{VAULT}/"])
def test_a_request_over_http3_is_answered(h3, url):
    rc, answer, error = h3(url)
    assert rc == 0, error
    assert answer == "200 3"


def test_the_path_guard_holds_over_http3(h3):
    assert h3(f"https://{PIPELIT}//etc/passwd", "--path-as-is")[1] == "400 3"
    assert h3(f"https://{PIPELIT}/%2Fetc%2Fpasswd")[1] == "400 3"


@pytest.mark.parametrize("host", [VAULT, "unknown.test"])
def test_a_host_that_is_not_the_tls_names_site_is_misdirected_over_http3(h3, host):
    assert h3(f"https://{PIPELIT}/", "-H", f"Host: {host}")[1] == "421 3"


def test_an_unknown_tls_name_gets_no_certificate_over_http3(h3, edge_address):
    # The name no site has, at the edge's address: the QUIC handshake fails
    # (no certificate is sent), so there is no HTTP status at all.
    rc, answer, error = h3("https://unknown.test/", "--insecure", "--resolve", f"unknown.test:443:{edge_address}", retry=False)
    assert rc != 0 and answer.startswith("000"), (answer, error)
    rc, answer, error = h3(f"https://{edge_address}/", "--insecure", retry=False)
    assert rc != 0 and answer.startswith("000"), (answer, error)


def test_a_token_sent_over_http3_stays_out_of_every_log(h3, edge):
    secret = f"h3secret{uuid.uuid4().hex}"
    since = edge.check_output("date '+%Y-%m-%d %H:%M:%S'")
    marker = f"h3marker{uuid.uuid4().hex[:8]}"
    assert h3(f"https://{PIPELIT}/api/{marker}?token={secret}")[1] == "200 3"
    access = edge.file(FLAVOUR["access_log"]).content_string
    assert f"/api/{marker}?token=REDACTED" in access
    logs = edge.check_output(f"find {' '.join(FLAVOUR['log_dirs'])} -type f -print0 | xargs -0 cat")
    journal = edge.check_output(f"journalctl -u {FLAVOUR['unit']} --since '{since}' --no-pager -o cat")
    assert secret not in logs
    assert secret not in journal


def test_websockets_keep_working_for_a_client_that_learned_alt_svc(h3, probe, ca_files):
    # curl learns Alt-Svc over TCP, then takes HTTP/3 from its cache: the
    # client a browser is after its first page.
    cache = f"/tmp/alt-svc-{uuid.uuid4().hex}.txt"
    ca = ca_files["pipelit"]
    learn = f"curl -sS -o /dev/null -w '%{{http_version}}' --cacert {ca} --alt-svc {cache} https://{PIPELIT}/"
    assert probe.check_output(learn) in ("1.1", "2")
    assert "h3" in probe.file(cache).content_string
    assert probe.check_output(learn) == "3"
    # The WebSocket upgrade stays on HTTP/1.1 over TCP, and works.
    rc, report = ws_check(probe, f"wss://{PIPELIT}/ws/?token=h3-ws", ca)
    assert rc == 0, report


# ---- Debian 12's nginx ------------------------------------------------------------


debian12_nginx = pytest.mark.skipif(SERVED, reason="only nginx on Debian 12 lacks HTTP/3")


@debian12_nginx
def test_debian12_nginx_refuses_a_site_that_asks_for_http3_before_any_change(edge):
    before = config_digest(edge)
    sites = valid_sites()
    sites[0]["http3"] = True
    run = run_converge({"proxy_sites": sites})
    assert run.returncode != 0
    assert "pipelit" in run.output and "http3" in run.output and "Debian 12" in run.output, run.output[-3000:]
    assert config_digest(edge) == before


@debian12_nginx
def test_debian12_nginx_serves_the_inherited_default_without_http3_and_warns(edge):
    run = run_converge({})
    assert run.returncode == 0, run.output[-3000:]
    assert "[WARNING]" in run.output and "HTTP/3" in run.output, run.output[-3000:]
    config = edge.check_output("nginx -T 2>/dev/null")
    assert not re.search(r"^\s*(listen\s[^;]*\squic\b|http3\s+on|add_header\s+Alt-Svc)", config, re.M)
