"""The certificate alert script (roles/certificate_alerts/files/
pipelit-edge-certificate-alert): its reading of what certbot and Caddy wrote,
whom it alerts about, and how it calls the operator's command. The journal
(logger, journalctl) is a stand-in; connecting to the served port
(served_dates) is left to the Molecule scenarios."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import types

import pytest
from certificates import needs_openssl
from conftest import load_script

alert_script = load_script("roles/certificate_alerts/files/pipelit-edge-certificate-alert", "pipelit_edge_certificate_alert")

CONFIG = {
    "host": "edge1",
    "certbot_cert_name_prefix": "pipelit-edge-",
    "sites": [
        {"name": "pipelit", "domains": ["pipelit.test", "www.pipelit.test"], "https_port": 443, "check": True},
        {"name": "vault", "domains": ["vault.test"], "https_port": 8443, "check": True},
        {"name": "quiet", "domains": ["quiet.test"], "https_port": 443, "check": False},
    ],
    "min_days": 14,
    "caddy_journal": False,
    "command_timeout": 5,
}

# What `certbot renew` writes when one renewal fails (certbot 2.x, as the
# certbot.service run of Debian 12 and 13 logs it), and a second lineage
# certbot names only in its closing list.
CERTBOT_RENEW_FAILED = """Saving debug log to /var/log/letsencrypt/letsencrypt.log

- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
Processing /etc/letsencrypt/renewal/pipelit-edge-pipelit.conf
- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
Renewing an existing certificate for pipelit.test and www.pipelit.test

Certbot failed to authenticate some domains (authenticator: webroot). The Certificate Authority reported these problems:
  Domain: www.pipelit.test
  Type:   connection
  Detail: 192.0.2.10: Fetching http://www.pipelit.test/.well-known/acme-challenge/abc: Timeout during connect (likely firewall problem)

Failed to renew certificate pipelit-edge-pipelit with error: Some challenges have failed.

- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
Processing /etc/letsencrypt/renewal/pipelit-edge-vault.conf
- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
Certificate not yet due for renewal

- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
The following certificates are not due for renewal yet:
  /etc/letsencrypt/live/pipelit-edge-vault/fullchain.pem expires on 2027-02-20 (skipped)
All renewals failed. The following certificates could not be renewed:
  /etc/letsencrypt/live/pipelit-edge-pipelit/fullchain.pem (failure)
  /etc/letsencrypt/live/legacy-cert/fullchain.pem (failure)
- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
1 renew failure(s), 0 parse failure(s)
Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile /var/log/letsencrypt/letsencrypt.log or re-run Certbot with -v for more details.
"""

# What `certbot certificates` writes: it lists lineages, names no failure.
CERTBOT_CERTIFICATES = """Saving debug log to /var/log/letsencrypt/letsencrypt.log

- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
Found the following certs:
  Certificate Name: pipelit-edge-pipelit
    Serial Number: 4b1d7e0c2f9a
    Key Type: ECDSA
    Domains: pipelit.test www.pipelit.test
    Expiry Date: 2026-12-10 08:00:00+00:00 (VALID: 5 days)
    Certificate Path: /etc/letsencrypt/live/pipelit-edge-pipelit/fullchain.pem
    Private Key Path: /etc/letsencrypt/live/pipelit-edge-pipelit/privkey.pem
  Certificate Name: pipelit-edge-vault
    Serial Number: 3a9c
    Key Type: ECDSA
    Domains: vault.test
    Expiry Date: 2026-11-30 08:00:00+00:00 (INVALID: EXPIRED)
    Certificate Path: /etc/letsencrypt/live/pipelit-edge-vault/fullchain.pem
    Private Key Path: /etc/letsencrypt/live/pipelit-edge-vault/privkey.pem
- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
"""


@pytest.fixture
def alerts(monkeypatch):
    """Every alert as (event, site, domains, message, extra), none sent."""
    sent = []

    def record(config, event, site, domains, message, **extra):
        sent.append((event, site, domains, message, extra))
        return True

    monkeypatch.setattr(alert_script, "alert", record)
    return sent


def test_a_failed_renewal_alerts_once_per_lineage_naming_site_and_error(monkeypatch, alerts):
    monkeypatch.setattr(alert_script, "certbot_output", lambda invocation: CERTBOT_RENEW_FAILED)
    assert alert_script.certbot_failed(CONFIG) is True
    assert [(a[0], a[1], a[2], a[4]) for a in alerts] == [
        ("renewal-failed", "", [], {"lineage": "legacy-cert"}),
        ("renewal-failed", "pipelit", ["pipelit.test", "www.pipelit.test"], {"lineage": "pipelit-edge-pipelit"}),
    ]
    assert alerts[1][3] == (
        "pipelit-edge on edge1: certificate renewal FAILED for site 'pipelit' (pipelit.test, www.pipelit.test), "
        "certbot lineage pipelit-edge-pipelit: Some challenges have failed."
    )
    assert alerts[0][3] == (
        "pipelit-edge on edge1: certificate renewal FAILED for certificate 'legacy-cert' (no site of this edge), "
        "certbot lineage legacy-cert: see journalctl -u certbot.service"
    )


def test_output_that_names_no_failure_alerts_with_its_last_words(monkeypatch, alerts):
    monkeypatch.setattr(alert_script, "certbot_output", lambda invocation: CERTBOT_CERTIFICATES)
    monkeypatch.setenv("MONITOR_SERVICE_RESULT", "exit-code")
    alert_script.certbot_failed(CONFIG)
    ((event, site, domains, message, _),) = alerts
    assert (event, site, domains) == ("certbot-failed", "", [])
    assert message.startswith("pipelit-edge on edge1: certbot.service failed (exit-code) and no certificate named the failure")
    assert message.endswith(
        "its last words: - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - (journalctl -u certbot.service)"
    )
    # Expired or not, `certbot certificates` lists lineages: no failure is read into it.
    assert alert_script.FAILED_LINEAGE.findall(CERTBOT_CERTIFICATES) == [] and alert_script.FAILED_PATH.findall(CERTBOT_CERTIFICATES) == []


def test_certbot_output_reads_that_runs_journal_and_certbots_log(monkeypatch, tmp_path):
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        return types.SimpleNamespace(stdout="journal line\n" if argv[0] == "journalctl" else "abc123\n", returncode=0)

    monkeypatch.setattr(alert_script, "subprocess", types.SimpleNamespace(run=run))
    assert alert_script.certbot_output("inv-1").startswith("journal line\n")
    assert calls == [["journalctl", "--no-pager", "-o", "cat", "_SYSTEMD_INVOCATION_ID=inv-1"]]
    calls.clear()
    alert_script.certbot_output("")
    assert calls[0][:3] == ["systemctl", "show", "-p"] and calls[1][-1] == "_SYSTEMD_INVOCATION_ID=abc123"


def test_the_daily_check_alerts_for_few_days_left_or_no_certificate(monkeypatch, alerts):
    now = datetime.datetime.now(datetime.UTC)

    def served(domain, port):
        if domain == "www.pipelit.test":
            raise ConnectionRefusedError("refused")
        return now - datetime.timedelta(days=30), now + datetime.timedelta(days=3 if domain == "pipelit.test" else 60)

    monkeypatch.setattr(alert_script, "served_dates", served)
    assert alert_script.check_expiry(CONFIG, alert_script.Threshold(14)) is False
    ((event, site, domains, message, extra),) = alerts
    assert (event, site, domains) == ("expiring", "pipelit", ["pipelit.test", "www.pipelit.test"])
    assert "fewer than 14 days left, or none served" in message
    assert "pipelit.test: expires in 3.0 days" in message and "www.pipelit.test: no certificate read on port 443 (refused)" in message
    assert extra == {"days_left": "3.0"}
    alerts.clear()
    assert alert_script.check_expiry(CONFIG, alert_script.Threshold(2)) is False  # the refused domain still alerts
    assert alerts[0][4] == {}


def caddy_journal(lines, cursor="s=abc;i=1"):
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        return types.SimpleNamespace(stdout="\n".join(lines + [f"-- cursor: {cursor}"]) + "\n", returncode=0)

    return calls, types.SimpleNamespace(run=run)


def test_caddys_failed_obtains_and_renewals_alert_once_per_domain(monkeypatch, tmp_path, alerts):
    lines = [
        'Dec 04 21:00:00 edge1 caddy[812]: {"level":"error","ts":1,"logger":"tls.obtain","msg":"could not get certificate from issuer",'
        '"identifier":"pipelit.test","error":"HTTP 400 urn:ietf:params:acme:error:connection - timeout"}',
        '{"level":"error","logger":"tls.obtain","identifier":"pipelit.test","error":"second try failed"}',
        '{"level":"error","logger":"tls.renew","error":"[vault.test] Renew: HTTP 429 rateLimited"}',
        '{"level":"error","logger":"tls.renew","error":"[other.test] Renew: no such host"}',
        '{"level":"info","logger":"tls.obtain","identifier":"vault.test","msg":"certificate obtained successfully"}',
        '{"level":"error","logger":"http.log.error","msg":"dial tcp 127.0.0.1:8000: connect: connection refused"}',
        "not json at all",
    ]
    calls, fake = caddy_journal(lines)
    monkeypatch.setattr(alert_script, "subprocess", fake)
    config = {**CONFIG, "state_dir": str(tmp_path / "state")}
    assert alert_script.caddy_failures(config) is False
    assert [(a[0], a[1], a[2]) for a in alerts] == [
        ("caddy-renewal-failed", "", ["other.test"]),
        ("caddy-obtain-failed", "pipelit", ["pipelit.test"]),
        ("caddy-renewal-failed", "vault", ["vault.test"]),
    ]
    assert alerts[1][3].endswith("the last error: second try failed")
    assert "domain other.test (no site of this edge)" in alerts[0][3]
    # The first check looks back a day; the next one starts at the saved cursor.
    assert calls[0][-2:] == ["--since", "-25h"]
    assert (tmp_path / "state" / "certificate-alerts-caddy.cursor").read_text() == "s=abc;i=1\n"
    alerts.clear()
    calls, fake = caddy_journal([], cursor="s=abc;i=2")
    monkeypatch.setattr(alert_script, "subprocess", fake)
    assert alert_script.caddy_failures(config) is True and alerts == []
    assert calls[0][-1] == "--after-cursor=s=abc;i=1"


@pytest.fixture
def journal(monkeypatch):
    logged = []
    monkeypatch.setattr(alert_script, "log", lambda priority, message: logged.append((priority, message)))
    return logged


def test_an_alert_goes_to_the_journal_and_the_operators_command(monkeypatch, tmp_path, journal):
    out = tmp_path / "out"
    command = tmp_path / "command"
    command.write_text(f'#!/bin/sh\n{{ cat; env | grep ^PIPELIT_EDGE_ALERT_ | sort; }} >"{out}"\n')
    command.chmod(0o755)
    monkeypatch.setattr(alert_script, "COMMAND", str(command))
    assert alert_script.alert(CONFIG, "expiring", "pipelit", ["a.test", "b.test"], "the message", days_left="3.0") is True
    assert out.read_text().splitlines() == [
        "the message",
        "PIPELIT_EDGE_ALERT_DAYS_LEFT=3.0",
        "PIPELIT_EDGE_ALERT_DOMAINS=a.test b.test",
        "PIPELIT_EDGE_ALERT_EVENT=expiring",
        "PIPELIT_EDGE_ALERT_HOST=edge1",
        "PIPELIT_EDGE_ALERT_MESSAGE=the message",
        "PIPELIT_EDGE_ALERT_SITE=pipelit",
    ]
    assert journal == [("err", "the message"), ("info", "the alert command ran for site 'pipelit' (expiring)")]


def test_a_failing_command_is_journaled_by_its_output_not_its_text(monkeypatch, tmp_path, journal):
    command = tmp_path / "command"
    command.write_text("#!/bin/sh\necho 'curl --token SECRET' >/dev/null\necho 'webhook: 403 forbidden' >&2\nexit 3\n")
    command.chmod(0o755)
    monkeypatch.setattr(alert_script, "COMMAND", str(command))
    assert alert_script.alert(CONFIG, "test", "", [], "m") is False
    assert journal[-1] == ("err", "the alert command failed for site '' (exit 3): webhook: 403 forbidden")
    command.write_text("#!/bin/sh\nexec sleep 5\n")
    assert alert_script.alert({**CONFIG, "command_timeout": 0.2}, "test", "pipelit", [], "m") is False
    assert journal[-1][1].startswith("the alert command failed for site 'pipelit': Command")
    monkeypatch.setattr(alert_script, "COMMAND", str(tmp_path / "none"))
    assert alert_script.alert(CONFIG, "test", "", [], "journal only") is True and journal[-1] == ("err", "journal only")


def test_log_writes_to_the_journal_and_by_hand_to_the_terminal(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(alert_script, "subprocess", types.SimpleNamespace(run=lambda argv, **kw: calls.append(argv)))
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    alert_script.log("err", "bad")
    alert_script.log("info", "fine")
    assert calls == [
        ["logger", "-t", alert_script.TAG, "-p", "user.err", "--", "bad"],
        ["logger", "-t", alert_script.TAG, "-p", "user.info", "--", "fine"],
    ]
    assert capsys.readouterr() == ("fine\n", "bad\n")
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    alert_script.log("err", "under systemd")
    assert capsys.readouterr() == ("", "")


def test_main_dispatches_and_exits_by_the_outcome(monkeypatch, tmp_path, journal, capsys):
    config = tmp_path / "certificate-alerts.json"
    config.write_text(json.dumps({**CONFIG, "caddy_journal": True, "state_dir": str(tmp_path)}))
    monkeypatch.setattr(alert_script, "CONFIG", str(config))
    monkeypatch.setattr(alert_script, "COMMAND", str(tmp_path / "none"))
    now = datetime.datetime.now(datetime.UTC)
    monkeypatch.setattr(
        alert_script, "served_dates", lambda domain, port: (now - datetime.timedelta(days=60), now + datetime.timedelta(days=30))
    )
    monkeypatch.setattr(alert_script, "caddy_failures", lambda config: True)
    for argv, code in ((["check"], 0), (["test"], 0), ([], 2)):
        monkeypatch.setattr(sys, "argv", ["pipelit-edge-certificate-alert", *argv])
        assert alert_script.main() == code, argv
    assert journal[0] == ("info", "pipelit-edge on edge1: every checked certificate has at least 14 days left")
    assert journal[1] == ("err", "pipelit-edge on edge1: test alert (pipelit-edge-certificate-alert test)")
    monkeypatch.setenv("PIPELIT_EDGE_ALERT_MIN_DAYS", "45")
    monkeypatch.setattr(sys, "argv", ["x", "check"])
    assert alert_script.main() == 1
    monkeypatch.setattr(alert_script, "certbot_output", lambda invocation: CERTBOT_RENEW_FAILED)
    monkeypatch.setattr(sys, "argv", ["x", "certbot-failed"])
    assert alert_script.main() == 0  # alerted, and the alerts went out
    assert journal[-1][1].startswith("pipelit-edge on edge1: certificate renewal FAILED for site 'pipelit'")
    monkeypatch.setattr(sys, "argv", ["x", "nonsense"])
    assert alert_script.main() == 2 and "certbot-failed" in capsys.readouterr().err


def test_served_expiry_reads_a_certificate(monkeypatch):
    """served_expiry's reading of the date, with the TLS handshake replaced
    by a certificate made here (the handshake itself needs a served port)."""
    if subprocess.run(["sh", "-c", "command -v openssl"], capture_output=True, check=False).returncode != 0:
        pytest.skip("needs the openssl command")
    pem = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", os.devnull]
        + ["-days", "10", "-subj", "/CN=a.test"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    der = alert_script.ssl.PEM_cert_to_DER_cert(pem)

    class Conn:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def getpeercert(self, binary_form=False):
            return der

    class Context:
        def __init__(self, protocol):
            pass

        def wrap_socket(self, raw, server_hostname):
            assert server_hostname == "a.test"
            return Conn()

    monkeypatch.setattr(alert_script.socket, "create_connection", lambda address, timeout: Conn())
    monkeypatch.setattr(alert_script.ssl, "SSLContext", Context)
    not_before, not_after = alert_script.served_dates("a.test", 443)
    left = not_after - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=9) < left <= datetime.timedelta(days=10)
    assert not_after - not_before == datetime.timedelta(days=10)


def real_certificate_dates(days):
    """notBefore and notAfter of a certificate of DAYS days made here, read as the check reads a served one."""
    pem = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", os.devnull]
        + ["-days", str(days), "-subj", "/CN=a.test"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return alert_script.certificate_dates(pem)


# (lifetime in days, the lifetime rule's threshold in days: a sixth)
LIFETIMES = [(90, 15.0), (45, 7.5), (6, 1.0)]


@needs_openssl
@pytest.mark.parametrize(("days", "sixth"), LIFETIMES)
def test_the_threshold_is_a_sixth_of_the_served_certificates_lifetime(monkeypatch, alerts, days, sixth):
    not_before, not_after = real_certificate_dates(days)
    assert alert_script.Threshold().days_for(not_before, not_after) == (sixth, f"1/6 of its {days}-day lifetime")
    monkeypatch.setattr(alert_script, "served_dates", lambda domain, port: (not_before, not_after))
    config = {**CONFIG, "sites": [CONFIG["sites"][1]]}
    # A healthy certificate renews at a third left: never alerted.
    at_a_third = not_after - datetime.timedelta(days=days / 3)
    assert alert_script.check_expiry(config, alert_script.Threshold(), now=at_a_third) is True and alerts == []
    # Just above a sixth left: quiet; just below: the alert says days left, threshold and how it was derived.
    assert alert_script.check_expiry(config, alert_script.Threshold(), now=not_after - datetime.timedelta(days=sixth + 0.05)) is True
    assert alert_script.check_expiry(config, alert_script.Threshold(), now=not_after - datetime.timedelta(days=sixth - 0.05)) is False
    ((event, site, domains, message, extra),) = alerts
    assert (event, site, domains) == ("expiring", "vault", ["vault.test"])
    assert "needs attention (less than 1/6 of its lifetime left, or none served)" in message
    left = f"{sixth - 0.05:.1f}"
    assert f"vault.test: expires in {left} days" in message
    assert f"below the threshold of {sixth:.1f} days (1/6 of its {days}-day lifetime)" in message
    assert extra == {"days_left": left}


@needs_openssl
@pytest.mark.parametrize(("days", "sixth"), LIFETIMES)
def test_a_fixed_min_days_overrides_the_lifetime_rule(monkeypatch, alerts, days, sixth):
    not_before, not_after = real_certificate_dates(days)
    monkeypatch.setattr(alert_script, "served_dates", lambda domain, port: (not_before, not_after))
    config = {**CONFIG, "sites": [CONFIG["sites"][1]]}
    fixed = alert_script.Threshold(14, "1/6")
    assert fixed.days_for(not_before, not_after) == (14.0, "fixed by certificate_alerts_min_days")
    # 14 days: a fresh 6-day certificate alerts at once (why the lifetime rule is the default).
    fresh = alert_script.check_expiry(config, fixed, now=not_before)
    assert fresh is (days > 14)
    alerts.clear()
    assert alert_script.check_expiry(config, fixed, now=not_after - datetime.timedelta(days=13.9)) is False
    assert "needs attention (fewer than 14 days left, or none served)" in alerts[0][3]
    assert "below the threshold of 14.0 days (fixed by certificate_alerts_min_days)" in alerts[0][3]


def test_main_reads_the_lifetime_rule_and_its_overrides(monkeypatch, tmp_path, journal):
    config = tmp_path / "certificate-alerts.json"
    config.write_text(json.dumps({**CONFIG, "min_days": None, "min_lifetime_fraction": "1/6"}))
    monkeypatch.setattr(alert_script, "CONFIG", str(config))
    monkeypatch.setattr(alert_script, "COMMAND", str(tmp_path / "none"))
    now = datetime.datetime.now(datetime.UTC)
    # 90 days, 20 left: above a sixth (15), below a quarter (22.5).
    monkeypatch.setattr(
        alert_script, "served_dates", lambda domain, port: (now - datetime.timedelta(days=70), now + datetime.timedelta(days=20))
    )
    monkeypatch.setattr(sys, "argv", ["x", "check"])
    monkeypatch.delenv("PIPELIT_EDGE_ALERT_MIN_DAYS", raising=False)
    assert alert_script.main() == 0
    assert journal[-1] == ("info", "pipelit-edge on edge1: every checked certificate has at least 1/6 of its lifetime left")
    monkeypatch.setenv("PIPELIT_EDGE_ALERT_MIN_LIFETIME_FRACTION", "1/4")
    assert alert_script.main() == 1
    monkeypatch.setenv("PIPELIT_EDGE_ALERT_MIN_DAYS", "21")  # a fixed threshold wins over any fraction
    assert alert_script.main() == 1 and "(fewer than 21 days left, or none served)" in journal[-1][1]


def test_a_wildcard_is_asked_for_by_a_name_it_covers(monkeypatch):
    asked = []

    class Stop(Exception):
        pass

    class Context:
        def __init__(self, protocol):
            pass

        def wrap_socket(self, raw, server_hostname):
            asked.append(server_hostname)
            raise Stop

    class Conn:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(alert_script.socket, "create_connection", lambda address, timeout: Conn())
    monkeypatch.setattr(alert_script.ssl, "SSLContext", Context)
    for domain in ("*.pipelit.test", "pipelit.test"):
        with pytest.raises(Stop):
            alert_script.served_dates(domain, 443)
    assert asked == ["pipelit-edge-verify.pipelit.test", "pipelit.test"]
