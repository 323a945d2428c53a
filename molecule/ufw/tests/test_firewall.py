"""What the firewall lets in, seen from the probe across the scenario network."""

from __future__ import annotations

import pytest
from conftest import DENIED_PORTS, EDGE, SERVED_PORTS, SSH_PORT, UNLISTED_PORT, connect


@pytest.mark.parametrize("port", SERVED_PORTS)
def test_served_port_answers_the_probe(probe, port):
    # prepare.yml serves HTTP on both (plain HTTP on 443 too: the firewall
    # only cares about the port).
    result = probe.run(f"curl -sS --fail --max-time 30 http://{EDGE}:{port}/")
    assert result.rc == 0, result.stderr
    assert result.stdout == "pipelit-edge stand-in listener\n"


def test_ssh_answers_the_probe(probe):
    # sshd's banner, read as soon as it comes (sshd then waits for ours).
    result = probe.run(f"python3 -c \"import socket; print(socket.create_connection(('{EDGE}', {SSH_PORT}), 30).recv(64).decode())\"")
    assert result.stdout.startswith("SSH-2.0-"), result.stdout + result.stderr


@pytest.mark.parametrize("port", (*DENIED_PORTS, UNLISTED_PORT))
def test_listener_runs_on_every_address(edge, port):
    # So a closed port below is the firewall's doing, not a missing service.
    assert edge.socket(f"tcp://0.0.0.0:{port}").is_listening
    probe_self = edge.run(f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 3)\"")
    assert probe_self.rc == 0, probe_self.stderr


@pytest.mark.parametrize("port", (*DENIED_PORTS, UNLISTED_PORT))
def test_port_is_dropped_for_the_probe(probe, port):
    succeeded, message = connect(probe, port)
    assert not succeeded, message
    # Dropped (deny), not refused: the packets never reach the listener.
    assert "timed out" in message, message


def test_status_shows_default_deny_incoming(edge):
    status = edge.check_output("LC_ALL=C ufw status verbose")
    assert "Status: active" in status
    assert "Default: deny (incoming), allow (outgoing)" in status


def test_status_lists_the_role_rules_for_ipv4_and_ipv6(edge):
    lines = edge.check_output("LC_ALL=C ufw status").splitlines()

    def action(to, v6=False):
        target = f"{to} (v6)" if v6 else to
        found = [line.split()[len(target.split()) :] for line in lines if line.startswith(target + " ")]
        assert found, f"no rule for {target} in:\n" + "\n".join(lines)
        return found[0][0]

    for v6 in (False, True):
        assert action(f"{SSH_PORT}/tcp", v6) == "LIMIT"
        for port in SERVED_PORTS:
            assert action(f"{port}/tcp", v6) == "ALLOW"
        for port in DENIED_PORTS:
            assert action(f"{port}/tcp", v6) == "DENY"


def test_ipv6_is_filtered(edge):
    assert edge.file("/etc/default/ufw").contains("^IPV6=yes$")
    # And the running IPv6 rules include the SSH rule.
    assert f"--dport {SSH_PORT}" in edge.check_output("ip6tables -S ufw6-user-input")


def test_ufw_starts_at_boot(edge):
    assert edge.service("ufw").is_enabled
    assert edge.file("/etc/ufw/ufw.conf").contains("^ENABLED=yes$")
