"""Filters of the certificate_alerts role: read the daily check's timer.

`certificate_alerts_timer_health` reads what `systemctl show` prints for the
timer (tasks/state.yml) and says whether it will fire again. A timer can be
enabled and "active" and still never fire: one that was reloaded without a
calendar it could read (a bad OnCalendar=) is `elapsed` with no next elapse,
and stays so after its unit file is corrected and systemd reloaded, until it
is restarted. tasks/units.yml restarts it whenever this says it is not
healthy, and leaves a healthy one alone (a run that changes nothing).
"""

from __future__ import annotations

# What `systemctl show` prints for a timestamp that is not set (systemd
# prints nothing, older or other tools "n/a" or 0).
NO_TIMESTAMP = ("", "n/a", "0")


def _properties(text):
    """KEY=VALUE lines as a dict (the first = splits; later lines win)."""
    properties = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            properties[key.strip()] = value.strip()
    return properties


def certificate_alerts_timer_health(show_output):
    """The timer's state from `systemctl show -p UnitFileState -p ActiveState
    -p SubState -p NextElapseUSecRealtime TIMER`, as
    {enabled, active, sub_state, next_elapse, healthy, problem}.

    Healthy: enabled, active, and either waiting with a next elapse or
    running (its service runs right now; the next elapse is set when it
    ends). `problem` says what is wrong in words, or is empty.
    """
    properties = _properties(show_output)
    enabled = properties.get("UnitFileState") == "enabled"
    active = properties.get("ActiveState") == "active"
    sub_state = properties.get("SubState", "")
    next_elapse = properties.get("NextElapseUSecRealtime", "")
    if next_elapse in NO_TIMESTAMP:
        next_elapse = ""
    if not enabled:
        problem = f"not enabled ({properties.get('UnitFileState') or 'no unit file'})"
    elif not active:
        problem = f"not active ({properties.get('ActiveState') or 'unknown'})"
    elif sub_state == "running":
        problem = ""
    elif sub_state != "waiting":
        problem = f"{sub_state or 'in an unknown state'}, waiting for nothing"
    elif not next_elapse:
        problem = "waiting, with no next elapse"
    else:
        problem = ""
    return {
        "enabled": enabled,
        "active": active,
        "sub_state": sub_state,
        "next_elapse": next_elapse,
        "healthy": not problem,
        "problem": problem,
    }


class FilterModule:
    def filters(self):
        return {"certificate_alerts_timer_health": certificate_alerts_timer_health}
