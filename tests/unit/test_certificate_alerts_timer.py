"""The certificate_alerts role's reading of its daily check's timer
(roles/certificate_alerts/filter_plugins/certificate_alerts.py): what
`systemctl show` prints in, whether the timer will fire again out. A timer
that is enabled and active but elapsed, with no next run, is not healthy:
tasks/units.yml restarts it."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import ROOT

_spec = importlib.util.spec_from_file_location(
    "certificate_alerts_filters", ROOT / "roles/certificate_alerts/filter_plugins/certificate_alerts.py"
)
certificate_alerts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(certificate_alerts)
health = certificate_alerts.certificate_alerts_timer_health

WAITING = "UnitFileState=enabled\nActiveState=active\nSubState=waiting\nNextElapseUSecRealtime=Sat 2026-12-05 00:23:11 UTC\n"


def show(**properties):
    values = {
        "UnitFileState": "enabled",
        "ActiveState": "active",
        "SubState": "waiting",
        "NextElapseUSecRealtime": "Sat 2026-12-05 00:23:11 UTC",
    }
    values.update(properties)
    return "".join(f"{key}={value}\n" for key, value in values.items() if value is not None)


def test_a_waiting_timer_with_a_next_run_is_healthy():
    assert health(WAITING) == {
        "enabled": True,
        "active": True,
        "sub_state": "waiting",
        "next_elapse": "Sat 2026-12-05 00:23:11 UTC",
        "healthy": True,
        "problem": "",
    }


def test_the_order_of_the_lines_does_not_matter():
    assert health("\n".join(reversed(WAITING.splitlines()))) == health(WAITING)


def test_a_timer_whose_service_runs_now_is_healthy():
    # While the check runs, systemd sets the next elapse only when it ends.
    assert health(show(SubState="running", NextElapseUSecRealtime=""))["healthy"]


@pytest.mark.parametrize("no_next", ["", "n/a", "0", None])
def test_waiting_for_nothing_is_not_healthy(no_next):
    found = health(show(NextElapseUSecRealtime=no_next))
    assert not found["healthy"]
    assert found["next_elapse"] == ""
    assert found["problem"] == "waiting, with no next elapse"


def test_the_dead_timer_of_the_issue_is_not_healthy():
    # Enabled and active, so `systemctl is-active` says active: but elapsed,
    # with no next run, for good.
    found = health(show(SubState="elapsed", NextElapseUSecRealtime=""))
    assert (found["enabled"], found["active"], found["healthy"]) == (True, True, False)
    assert found["problem"] == "elapsed, waiting for nothing"


@pytest.mark.parametrize(
    ("properties", "problem"),
    [
        ({"ActiveState": "inactive", "SubState": "dead", "NextElapseUSecRealtime": ""}, "not active (inactive)"),
        ({"ActiveState": "failed", "SubState": "failed"}, "not active (failed)"),
        ({"UnitFileState": "disabled"}, "not enabled (disabled)"),
        ({"UnitFileState": "masked", "ActiveState": "inactive"}, "not enabled (masked)"),
        # No unit file at all (a first run): systemctl prints empty values.
        ({"UnitFileState": "", "ActiveState": "inactive", "SubState": "dead", "NextElapseUSecRealtime": ""}, "not enabled (no unit file)"),
    ],
)
def test_stopped_disabled_or_missing_timers_are_not_healthy(properties, problem):
    found = health(show(**properties))
    assert not found["healthy"]
    assert found["problem"] == problem


@pytest.mark.parametrize("text", ["", None, "garbage", "Failed to connect to bus: Host is down\n"])
def test_nothing_readable_is_not_healthy(text):
    # systemctl failed or printed nothing: the role restarts, never skips.
    found = health(text)
    assert not found["healthy"]
    assert found["problem"]


def test_values_keep_their_equals_signs_and_lose_surrounding_space():
    found = health(show(NextElapseUSecRealtime=" Sat 2026-12-05 00:23:11 UTC ") + "Description=a=b\n")
    assert found["next_elapse"] == "Sat 2026-12-05 00:23:11 UTC"
    assert found["healthy"]


def test_the_filter_is_registered():
    assert certificate_alerts.FilterModule().filters() == {"certificate_alerts_timer_health": health}
