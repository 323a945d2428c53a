"""Renewal points and alerts that follow the certificate's lifetime (issue
22): every lineage's renewal file names renew_before_expiry, a third of its
certificate's own lifetime; `certbot renew` (what certbot.timer runs) leaves
a certificate alone until that third is reached and renews it after; the
daily check is quiet until less than a sixth is left and alerts after.

Pebble issues twelve-day certificates in this scenario (prepare.yml), so the
clock is moved with faketime (installed on the edge by this scenario's
prepare.yml) by about eight days for the renewal (Pebble's own HTTPS
certificate, 30 days, still verifies then; the renewal goes to the real
Pebble, which issues at its real time), and by about ten for the alert. On
certbot's own fixed 30 days before expiry, every timer run would renew
these certificates. Runs after
test_certificates.py and before test_renewal_alerts.py (file order); it
reads the lineages and sites as the role left them.
"""

import datetime
import json
import re

import pytest
from conftest import ACME_TLS_CA

PREFIX = "pipelit-edge-"
LINEAGE = f"{PREFIX}pipelit"
RENEWAL_DIR = "/etc/letsencrypt/renewal"
ALERTS = "/var/log/pipelit-edge-test-alerts.log"
CERTBOT_RENEW = "certbot renew --no-random-sleep-on-renew"  # certbot.service's command, without its random sleep
WINDOW = "/usr/local/sbin/pipelit-edge-certbot-renewal-window"


def dates(edge, path):
    """(notBefore, notAfter, serial) of a certificate file on the edge."""
    out = edge.check_output(f"openssl x509 -noout -startdate -enddate -serial -in {path}")
    found = dict(line.split("=", 1) for line in out.splitlines())
    parse = lambda text: datetime.datetime.strptime(text, "%b %d %H:%M:%S %Y GMT").replace(tzinfo=datetime.UTC)  # noqa: E731
    return parse(found["notBefore"]), parse(found["notAfter"]), found["serial"]


def expected_interval(not_before, not_after):
    """The role's rule: a third of the lifetime, nearest whole hour, one at least; days when whole."""
    hours = max(1, int((not_after - not_before).total_seconds() / 3 / 3600 + 0.5))
    return f"{hours // 24} days" if hours % 24 == 0 else f"{hours} hours"


def interval_hours(text):
    number, unit = text.split()
    return int(number) * (24 if unit.startswith("day") else 1)


def now(edge):
    return datetime.datetime.fromtimestamp(int(edge.check_output("date +%s")), datetime.UTC)


def lineages(edge):
    names = edge.check_output(f"ls {RENEWAL_DIR}").split()
    found = [name[: -len(".conf")] for name in names if name.startswith(PREFIX) and name.endswith(".conf")]
    assert LINEAGE in found, names
    return found


def renewal_points(edge, name):
    """Every uncommented top-level renew_before_expiry value of a renewal file."""
    text = edge.file(f"{RENEWAL_DIR}/{name}.conf").content_string
    top = text.split("\n[", 1)[0]
    return re.findall(r"^renew_before_expiry\s*=\s*(.+?)\s*$", top, re.M)


def certbot_at(edge, hours, arguments):
    """certbot on the edge with its clock HOURS ahead, trusting Pebble's HTTPS as renewals do."""
    return edge.run(f"REQUESTS_CA_BUNDLE={ACME_TLS_CA} faketime -f +{hours}h {arguments} 2>&1")


def test_every_lineage_renews_at_a_third_of_its_certificates_lifetime(edge):
    for name in lineages(edge):
        not_before, not_after, _ = dates(edge, f"/etc/letsencrypt/live/{name}/cert.pem")
        # Exactly one line (configobj refuses a key twice), certbot's commented default gone.
        assert renewal_points(edge, name) == [expected_interval(not_before, not_after)], name
        assert "# renew_before_expiry" not in edge.file(f"{RENEWAL_DIR}/{name}.conf").content_string


def test_the_renewal_points_are_as_a_run_leaves_them(edge):
    # What the role runs on every run, in check mode: nothing to change.
    answer = json.loads(edge.check_output(f"{WINDOW} --prefix {PREFIX} --fraction 1/3 --renew-before '' --profile '' --check"))
    assert answer["changed"] is False and answer["problems"] == [], answer
    assert sorted(lineage["name"] for lineage in answer["lineages"]) == sorted(lineages(edge))


@pytest.fixture(scope="module")
def due(edge):
    """Hours from now until the pipelit lineage's renewal point."""
    _, not_after, _ = dates(edge, f"/etc/letsencrypt/live/{LINEAGE}/cert.pem")
    (interval,) = renewal_points(edge, LINEAGE)
    return int((not_after - datetime.timedelta(hours=interval_hours(interval)) - now(edge)).total_seconds() // 3600)


def test_certbot_renew_leaves_a_certificate_before_its_third(edge, due):
    serial = dates(edge, f"/etc/letsencrypt/live/{LINEAGE}/cert.pem")[2]
    for hours in (0, due - 24):
        run = certbot_at(edge, hours, f"{CERTBOT_RENEW} --cert-name {LINEAGE}")
        assert run.rc == 0, run.stdout
        assert "Certificate not yet due for renewal" in run.stdout, (hours, run.stdout)
    assert dates(edge, f"/etc/letsencrypt/live/{LINEAGE}/cert.pem")[2] == serial


def test_certbot_renew_renews_once_its_third_is_reached(edge, due):
    before = dates(edge, f"/etc/letsencrypt/live/{LINEAGE}/cert.pem")
    run = certbot_at(edge, due + 24, f"{CERTBOT_RENEW} --cert-name {LINEAGE}")
    assert run.rc == 0, run.stdout
    assert "Renewing an existing certificate" in run.stdout and f"{LINEAGE}/fullchain.pem (success)" in run.stdout, run.stdout
    after = dates(edge, f"/etc/letsencrypt/live/{LINEAGE}/cert.pem")
    assert after[2] != before[2]
    # The deploy hook set the new certificate's point (the same lifetime: the same point), once.
    assert renewal_points(edge, LINEAGE) == [expected_interval(after[0], after[1])]
    # And the fresh certificate is not due again.
    run = certbot_at(edge, 0, f"{CERTBOT_RENEW} --cert-name {LINEAGE}")
    assert "Certificate not yet due for renewal" in run.stdout, run.stdout


@pytest.fixture(scope="module")
def sixth(edge):
    """Hours from now until the first and the last served certificate has a sixth of its lifetime left."""
    config = json.loads(edge.file("/etc/pipelit-edge/certificate-alerts.json").content_string)
    assert config["min_days"] is None and config["min_lifetime_fraction"] == "1/6", config
    points = []
    for site in config["sites"]:
        if not site["check"]:
            continue
        for domain in site["domains"]:
            pem = f"/run/lifetimes-{domain}.pem"
            edge.check_output(
                f"openssl s_client -connect 127.0.0.1:{site['https_port']} -servername {domain} </dev/null 2>/dev/null"
                f" | openssl x509 -out {pem}"
            )
            not_before, not_after, _ = dates(edge, pem)
            points.append(not_after - (not_after - not_before) / 6)
    assert points
    start = now(edge)
    return int((min(points) - start).total_seconds() // 3600), int((max(points) - start).total_seconds() // 3600) + 1


def check_at(edge, hours):
    """The daily check with its clock HOURS ahead: (exit code, what the alert command wrote)."""
    edge.run(f"rm -f {ALERTS}")
    run = edge.run(f"faketime -f +{hours}h /usr/local/sbin/pipelit-edge-certificate-alert check 2>&1")
    return run.rc, (edge.file(ALERTS).content_string if edge.file(ALERTS).exists else ""), run.stdout


def test_the_daily_check_alerts_below_a_sixth_of_the_lifetime_and_not_before(edge, sixth):
    first, last = sixth
    # A day before the first certificate reaches a sixth: quiet.
    rc, alerts, output = check_at(edge, first - 24)
    assert (rc, alerts) == (0, ""), output
    assert "every checked certificate has at least 1/6 of its lifetime left" in output
    # A day after the last one: every site alerts, saying how the threshold was derived.
    rc, alerts, output = check_at(edge, last + 24)
    assert rc == 1, output
    assert "event=expiring site=pipelit" in alerts
    assert re.search(r"expires in \d+\.\d days \(.*\), below the threshold of \d+\.\d days \(1/6 of its 1[12]-day lifetime\)", alerts), (
        alerts
    )
