"""ufw_ssh_rate_limit, seen from the probe. Runs after every other check from
the probe (file order; only controller-side tests follow): it leaves the probe
refused on the SSH port for about 30 seconds."""

from __future__ import annotations

from conftest import EDGE, SSH_PORT


def test_rapid_new_ssh_connections_are_refused(probe):
    attempts = probe.check_output(
        f"for i in $(seq 10); do nc -z -w 3 {EDGE} {SSH_PORT} 2>/dev/null && echo open || echo refused; done"
    ).split()
    assert attempts[0] == "open", attempts
    assert "refused" in attempts, attempts
    # Once refused, a source stays refused while it keeps trying.
    first_refused = attempts.index("refused")
    assert set(attempts[first_refused:]) == {"refused"}, attempts
