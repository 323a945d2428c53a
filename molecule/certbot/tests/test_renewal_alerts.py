"""Renewals that cannot fail silently (the certificate_alerts role): a renewal
run by the real certbot.service failing while Pebble is down alerts, naming
the site and domain; the daily check alerts for a served certificate with
fewer days left than the threshold, and stays quiet above it. The daily
check's timer: a calendar systemd cannot read is refused before any change,
and a run revives a timer that was stopped or left without a next run.

The converge configures a test-only alert command that appends the event,
site and domains (from its environment) and the message (from stdin) to
ALERTS on the edge. This module runs after test_certificates.py (file
order): a Pebble stopped and started again has new roots and has forgotten
the accounts, so the certificates those tests check would no longer verify.
It takes the sites from what the role wrote (those tests change them).
"""

import datetime
import json
import re
import time

import pytest
from edge_testing import CONVERGE, SCENARIO, alerts_journaled_since, journal_mark, run_certificate_check, run_converge, run_playbook

ALERTS = "/var/log/pipelit-edge-test-alerts.log"
RENEWAL_CONF = "/etc/letsencrypt/renewal/pipelit-edge-pipelit.conf"
TIMER = "pipelit-edge-certificate-check.timer"
TIMER_FILE = f"/etc/systemd/system/{TIMER}"
EDGE_NAME = f"edge-{SCENARIO}"


def wait_for_alerts(edge, text, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if edge.file(ALERTS).exists and text in edge.file(ALERTS).content_string:
            return edge.file(ALERTS).content_string
        time.sleep(1)
    content = edge.file(ALERTS).content_string if edge.file(ALERTS).exists else "(no alert file)"
    pytest.fail(f"no alert with {text!r} within {seconds} s; alerts: {content}")


@pytest.fixture(scope="module")
def sites(edge):
    """The sites the notifier knows (the model as last converged): name to domains."""
    config = json.loads(edge.file("/etc/pipelit-edge/certificate-alerts.json").content_string)
    known = {site["name"]: site["domains"] for site in config["sites"] if site["check"]}
    assert "pipelit" in known, config
    return known


def test_the_alerts_are_in_place(edge):
    assert edge.service("pipelit-edge-certificate-check.timer").is_enabled
    assert edge.service("pipelit-edge-certificate-check.timer").is_running
    timer = edge.check_output("systemctl show -p TimersCalendar -p RandomizedDelayUSec -p Persistent pipelit-edge-certificate-check.timer")
    assert "Persistent=yes" in timer and "RandomizedDelayUSec=1h" in timer
    # The certbot role's drop-in and this one, side by side.
    dropins = edge.check_output("systemctl show -p DropInPaths --value certbot.service")
    assert "certbot.service.d/pipelit-edge.conf" in dropins and "certbot.service.d/pipelit-edge-alert.conf" in dropins
    assert edge.check_output("systemctl show -p OnFailure --value certbot.service") == "pipelit-edge-certbot-failed.service"
    command = edge.file("/etc/pipelit-edge/certificate-alert-command")
    assert (command.user, command.group, command.mode) == ("root", "root", 0o700)


def test_a_run_repairs_what_hand_edits_left(edge, sites):
    # Each task of the role is skipped when the one read (tasks/state.yml)
    # finds its file as the task would leave it; anything else is written
    # again, and the timer started again.
    files = [
        "/usr/local/sbin/pipelit-edge-certificate-alert",
        "/etc/pipelit-edge/certificate-alerts.json",
        "/etc/systemd/system/pipelit-edge-certificate-check.service",
        "/etc/systemd/system/certbot.service.d/pipelit-edge-alert.conf",
    ]
    before = {path: (edge.file(path).sha256sum, edge.file(path).mode) for path in files}
    edge.check_output(
        f"chmod 0644 {files[0]} && rm {files[1]} && echo '# by hand' >> {files[2]} && rm {files[3]} "
        "&& systemctl daemon-reload && systemctl disable --now pipelit-edge-certificate-check.timer"
    )
    model = [{"name": name, "profile": name, "domains": domains, "tls": {"mode": "acme"}} for name, domains in sites.items()]
    result = run_converge({"proxy_sites": model})
    assert result.returncode == 0, result.output[-3000:]
    assert {path: (edge.file(path).sha256sum, edge.file(path).mode) for path in files} == before
    assert edge.service("pipelit-edge-certificate-check.timer").is_enabled
    assert edge.service("pipelit-edge-certificate-check.timer").is_running
    assert edge.check_output("systemctl show -p OnFailure --value certbot.service") == "pipelit-edge-certbot-failed.service"
    # No certificate was asked for: the model is the one last converged.
    assert "certbot could not" not in result.output


def model_of(sites):
    """The proxy_sites model as last converged (what the `sites` fixture read)."""
    return [{"name": name, "profile": name, "domains": domains, "tls": {"mode": "acme"}} for name, domains in sites.items()]


def recap(output, host=EDGE_NAME):
    """The PLAY RECAP counters of one host, as {ok: 3, changed: 1, ...}."""
    part = output.split("PLAY RECAP", 1)[1]
    found = re.search(rf"^{re.escape(host)}\s+:\s+(.*)$", part, re.M)
    assert found, f"no PLAY RECAP line for {host} in:\n{output[-3000:]}"
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", found.group(1))}


def timer_state(edge):
    """ActiveState, SubState and NextElapseUSecRealtime of the daily check's timer."""
    show = edge.check_output(f"systemctl show -p ActiveState -p SubState -p NextElapseUSecRealtime {TIMER}")
    return dict(line.split("=", 1) for line in show.splitlines() if "=" in line)


def next_elapse(edge):
    return edge.check_output(f"systemctl show -p NextElapseUSecRealtime --value {TIMER}").strip()


def waiting_timer(edge, seconds=60):
    """The timer's state once it waits for its next run. Persistent=true may
    start the check at once after a restart (the timer is `running` until
    the check ends), so this polls rather than reading once."""
    deadline = time.monotonic() + seconds
    state = timer_state(edge)
    while state.get("SubState") == "running" and time.monotonic() < deadline:
        time.sleep(1)
        state = timer_state(edge)
    return state


def test_a_calendar_systemd_cannot_read_is_refused_before_any_change(edge, sites):
    before = edge.check_output(f"sha256sum {TIMER_FILE}")
    loaded = edge.check_output(f"systemctl show -p TimersCalendar --value {TIMER}")
    # JSON results: the message on one line, its quotes as written.
    result = run_playbook(
        CONVERGE, extra_vars={"proxy_sites": model_of(sites), "certificate_alerts_on_calendar": "dialy"}, result_format="json"
    )
    assert result.returncode != 0, result.output[-3000:]
    assert "certificate_alerts_on_calendar: 'dialy' is not a calendar systemd reads" in result.output, result.output[-3000:]
    # systemd-analyze's own words.
    assert "Failed to parse calendar specification" in result.output, result.output[-3000:]
    counters = recap(result.output)
    assert (counters["failed"], counters["changed"]) == (1, 0), result.output[-3000:]
    # The unit file byte for byte, and the timer as systemd had it: still
    # waiting for its next run.
    assert edge.check_output(f"sha256sum {TIMER_FILE}") == before
    assert edge.check_output(f"systemctl show -p TimersCalendar --value {TIMER}") == loaded
    assert edge.file(TIMER_FILE).contains("^OnCalendar=daily$")
    state = waiting_timer(edge)
    assert (state["ActiveState"], state["SubState"]) == ("active", "waiting"), state
    assert next_elapse(edge), state


def test_a_stopped_timer_is_started_again(edge, sites):
    edge.check_output(f"systemctl stop {TIMER}")
    assert timer_state(edge)["ActiveState"] == "inactive"
    result = run_converge({"proxy_sites": model_of(sites)})
    assert result.returncode == 0, result.output[-3000:]
    state = waiting_timer(edge)
    assert (state["ActiveState"], state["SubState"]) == ("active", "waiting"), state
    assert next_elapse(edge), state


def test_a_timer_left_without_a_next_run_is_revived(edge, sites):
    # The dead timer: systemd reloaded it with a calendar it could
    # not read (what a run with a misspelt value did), then with its
    # correct file again. It stays active but elapsed, with no next run, and
    # enabled: `systemctl is-active` says active.
    edge.check_output(
        f"cp -p {TIMER_FILE} /run/timer.saved && sed -i 's/^OnCalendar=.*/OnCalendar=dialy/' {TIMER_FILE} && systemctl daemon-reload"
    )
    edge.check_output(f"cp -p /run/timer.saved {TIMER_FILE} && rm /run/timer.saved && systemctl daemon-reload")
    dead = timer_state(edge)
    assert dead["ActiveState"] == "active" and (dead["SubState"] == "elapsed" or not next_elapse(edge)), (
        f"the hand-made dead timer is not dead, so this test proves nothing: {dead}"
    )
    result = run_converge({"proxy_sites": model_of(sites)})
    assert result.returncode == 0, result.output[-3000:]
    state = waiting_timer(edge)
    assert (state["ActiveState"], state["SubState"]) == ("active", "waiting"), state
    assert next_elapse(edge), state
    assert edge.service(TIMER).is_enabled


def test_a_healthy_timer_is_left_alone(edge, sites):
    since = edge.check_output(f"systemctl show -p ActiveEnterTimestampMonotonic --value {TIMER}")
    result = run_converge({"proxy_sites": model_of(sites)})
    assert result.returncode == 0, result.output[-3000:]
    assert recap(result.output)["changed"] == 0, result.output[-3000:]
    # Not restarted either.
    assert edge.check_output(f"systemctl show -p ActiveEnterTimestampMonotonic --value {TIMER}") == since
    assert next_elapse(edge)


def test_a_failed_renewal_through_certbot_service_alerts_naming_the_site(edge, probe, sites):
    domains = " ".join(sites["pipelit"])
    message = f"certificate renewal FAILED for site 'pipelit' ({', '.join(sites['pipelit'])}), certbot lineage pipelit-edge-pipelit"
    edge.run(f"rm -f {ALERTS}")
    since = journal_mark(edge)
    # The real certbot.service, unchanged: one certificate made due for
    # renewal (Pebble's last five years), the ACME server down. The role's
    # own renew_before_expiry line is replaced (configobj refuses a key twice).
    edge.check_output(
        f"cp -p {RENEWAL_CONF} /run/renewal-conf.saved"
        f" && sed -i -e '/^renew_before_expiry *=/d' -e '1i renew_before_expiry = 3000 days' {RENEWAL_CONF}"
    )
    probe.check_output("systemctl stop pebble")
    try:
        run = edge.run("systemctl start certbot.service")
        assert run.rc != 0, "certbot renewed with Pebble stopped"
        # The whole alert: the test command writes its event line first.
        alerts = wait_for_alerts(edge, message)
    finally:
        edge.run(f"cp -p /run/renewal-conf.saved {RENEWAL_CONF}")
        edge.run("systemctl reset-failed certbot.service pipelit-edge-certbot-failed.service")
        probe.check_output("systemctl start pebble && timeout 60 bash -c 'until : </dev/tcp/127.0.0.1/14000; do sleep 0.2; done'")
    assert f"event=renewal-failed site=pipelit domains={domains}\n" in alerts
    assert "acme.test" in alerts  # certbot's own reason: the ACME server did not answer
    assert alerts.count("event=") == 1  # only the certificate that failed
    assert message in alerts_journaled_since(edge, since)


def days_left(edge, domain):
    end = edge.check_output(
        f"openssl s_client -connect 127.0.0.1:443 -servername {domain} </dev/null 2>/dev/null | openssl x509 -noout -enddate"
    ).split("=", 1)[1]
    expiry = datetime.datetime.strptime(end, "%b %d %H:%M:%S %Y GMT").replace(tzinfo=datetime.UTC)
    return (expiry - datetime.datetime.now(datetime.UTC)).total_seconds() / 86400


def run_check(edge, min_days=None):
    """The daily check's own unit, with the threshold overridden for this run
    if given: (exit code, what the alert command wrote, the journal's alerts)."""
    edge.run(f"rm -f {ALERTS}")
    rc, journal = run_certificate_check(edge, None if min_days is None else f"{min_days:.2f}")
    alerts = edge.file(ALERTS).content_string if edge.file(ALERTS).exists else ""
    return rc, alerts, journal


def test_the_daily_check_is_quiet_with_the_default_threshold(edge):
    rc, alerts, journal = run_check(edge)
    assert (rc, alerts) == (0, "")
    # The lifetime rule: a sixth of the twelve days Pebble issues for here.
    assert "every checked certificate has at least 1/6 of its lifetime left" in journal


def test_the_daily_check_alerts_for_a_certificate_near_expiry(edge, sites):
    left = min(days_left(edge, domain) for domains in sites.values() for domain in domains)
    assert left > 2, "the certificates must outlive two days for this test"
    # Just above the days left: every site alerts, naming its domains.
    rc, alerts, journal = run_check(edge, left + 1)
    assert rc != 0
    for name, domains in sites.items():
        assert f"event=expiring site={name} domains={' '.join(domains)}\n" in alerts
        assert f"certificate of site '{name}' needs attention" in journal
        for domain in domains:
            assert f"{domain}: expires in" in alerts
    # Just below: quiet again.
    rc, alerts, _ = run_check(edge, left - 1)
    assert (rc, alerts) == (0, "")
