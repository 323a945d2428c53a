"""Real certificates from a real ACME server, renewals that reach nginx, and
failures that leave the site serving. The tests run in this order."""

import re
import time

import pytest
from conftest import ACME_URL, SITES, certbot, served_certificate
from edge_testing import curl, run_converge, wait_for_file


def serial_of(probe, domain):
    return re.search(r"serial=(\w+)", served_certificate(probe, domain)).group(1)


@pytest.mark.parametrize("domain", ["pipelit.test", "vault.test"])
def test_first_run_serves_a_certificate_from_pebble(probe, pebble_root, domain):
    assert "Pebble Intermediate" in served_certificate(probe, domain)
    # Verifies against Pebble's root alone, over the network, for this name.
    response = curl(probe, f"https://{domain}/health", ca=pebble_root)
    assert response.status == 200


def test_renewal_runs_on_the_distribution_timer_only(edge):
    assert edge.service("certbot.timer").is_enabled
    assert edge.service("certbot.timer").is_running
    ours = edge.run("grep -rls pipelit-edge /etc/cron.d /etc/crontab /var/spool/cron")
    assert ours.stdout.strip() == ""
    assert edge.run("crontab -l -u root").rc != 0  # no root crontab at all


def loop_codes(probe):
    """The status codes the probe's request loop has written so far."""
    return probe.run("cat /tmp/renewal-loop.codes").stdout.split()


def wait_for_codes(probe, count, what):
    deadline = time.monotonic() + 60
    while len(loop_codes(probe)) < count:
        assert time.monotonic() < deadline, f"the request loop did not run {what}"
        time.sleep(0.2)


def test_forced_renewal_reloads_nginx_without_a_failed_request(edge, probe, pebble_root):
    before = serial_of(probe, "pipelit.test")
    # Requests in a loop from the probe for as long as the renewal takes, and
    # some before and after it (counted, not slept for: a loaded machine may
    # start the loop late).
    probe.run(
        "rm -f /tmp/renewal-loop.* ; (while [ ! -f /tmp/renewal-loop.stop ]; do "
        f"curl -s -o /dev/null -w '%{{http_code}}\\n' --max-time 30 --cacert {pebble_root} "
        "https://pipelit.test/health >> /tmp/renewal-loop.codes; sleep 0.05; done; "
        "touch /tmp/renewal-loop.done) >/dev/null 2>&1 &"
    )
    wait_for_codes(probe, 5, "before the renewal")
    renewal = certbot(edge, "renew --force-renewal --no-random-sleep-on-renew --cert-name pipelit-edge-pipelit")
    wait_for_codes(probe, len(loop_codes(probe)) + 5, "after the renewal")
    probe.run("touch /tmp/renewal-loop.stop")
    wait_for_file(probe, "/tmp/renewal-loop.done", 60, "the request loop did not stop")
    assert renewal.rc == 0, renewal.stdout
    # certbot logs its hooks to its own log (this run's: it rotates per run).
    log = edge.file("/var/log/letsencrypt/letsencrypt.log").content_string
    assert "Running deploy-hook command: /etc/letsencrypt/renewal-hooks/deploy/pipelit-edge-reload" in log
    codes = loop_codes(probe)
    assert set(codes) == {"200"}, f"failed requests during the renewal: {codes}"
    assert serial_of(probe, "pipelit.test") != before, "nginx still serves the old certificate"


def test_dry_run_renewal_succeeds(edge):
    dry_run = certbot(edge, f"renew --dry-run --no-random-sleep-on-renew --server {ACME_URL} --cert-name pipelit-edge-pipelit")
    assert dry_run.rc == 0, dry_run.stdout
    assert "simulated renewals succeeded" in dry_run.stdout


def test_adding_a_domain_expands_the_certificate(probe, pebble_root):
    pipelit = {**SITES["pipelit"], "domains": ["pipelit.test", "www.pipelit.test"]}
    result = run_converge({"proxy_sites": [pipelit, SITES["aliasvault"]]})
    assert result.returncode == 0, result.output[-3000:]
    names = served_certificate(probe, "www.pipelit.test")
    assert "DNS:pipelit.test" in names and "DNS:www.pipelit.test" in names
    assert curl(probe, "https://www.pipelit.test/health", ca=pebble_root).status == 200


def test_a_removed_site_no_longer_renews(edge):
    pipelit = {**SITES["pipelit"], "domains": ["pipelit.test", "www.pipelit.test"]}
    result = run_converge({"proxy_sites": [pipelit]})
    assert result.returncode == 0, result.output[-3000:]
    assert not edge.file("/etc/letsencrypt/renewal/pipelit-edge-aliasvault.conf").exists
    assert edge.file("/etc/letsencrypt/renewal/pipelit-edge-pipelit.conf").exists
    assert "pipelit-edge-aliasvault" not in certbot(edge, "certificates").stdout


def test_unreachable_acme_server_fails_clearly_and_the_site_keeps_serving(edge, probe, pebble_root):
    probe.check_output("systemctl stop pebble")
    try:
        pipelit = {**SITES["pipelit"], "domains": ["pipelit.test", "www.pipelit.test", "down.pipelit.test"]}
        result = run_converge({"proxy_sites": [pipelit]})
        assert result.returncode != 0
        assert "certbot could not get a certificate for site 'pipelit'" in result.output
        assert "down.pipelit.test" in result.output
        assert f"from {ACME_URL}" in result.output
        assert curl(probe, "https://pipelit.test/health", ca=pebble_root).status == 200
    finally:
        probe.check_output("systemctl start pebble && timeout 60 bash -c 'until : </dev/tcp/127.0.0.1/14000; do sleep 0.2; done'")
    # Pebble forgets its accounts when it stops, so the edge's account is
    # gone at the CA: the operator's fix (remove the local one) and a run,
    # which registers again and points the lineages at it, for the tests after.
    edge.check_output("rm -rf /etc/letsencrypt/accounts/acme.test:14000")
    repaired = run_converge({"proxy_sites": [{**SITES["pipelit"], "domains": ["pipelit.test", "www.pipelit.test"]}]})
    assert repaired.returncode == 0, repaired.output[-3000:]
