"""The role's module that finds the SSH session's port
(roles/ufw/library/ufw_ssh_session.py), on this machine's own processes:
the parsing, and the walk up the parent chain that become cannot break.
test_ssh_port.py shows it on the edge host, over SSH with sudo."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import time

import pytest
from conftest import SCENARIO_DIR

_spec = importlib.util.spec_from_file_location("ufw_ssh_session", SCENARIO_DIR.parent.parent / "roles/ufw/library/ufw_ssh_session.py")
ufw_ssh_session = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ufw_ssh_session)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("192.0.2.7 50022 198.51.100.1 2222", ("192.0.2.7 50022 198.51.100.1 2222", 2222)),
        ("2001:db8::7 50022 2001:db8::1 22", ("2001:db8::7 50022 2001:db8::1 22", 22)),
        ("", None),
        ("192.0.2.7 50022 198.51.100.1", None),
        ("192.0.2.7 50022 198.51.100.1 ssh", None),
        ("192.0.2.7 50022 198.51.100.1 70000", None),
    ],
)
def test_ssh_connection_is_parsed_strictly(value, expected):
    assert ufw_ssh_session.parse_ssh_connection(value) == expected


def test_an_ancestor_holds_the_session_when_the_process_itself_does_not():
    # A parent with SSH_CONNECTION starts a child with an empty environment,
    # as sudo's env_reset leaves the become process. The child names itself
    # once it runs with that environment: read during `env -i`'s exec, the
    # environment can still be the parent's, or empty for an instant (a test
    # that polled for the change failed 6 times in 1000 that way).
    session = "192.0.2.7 50022 198.51.100.1 2222"
    parent = subprocess.Popen(
        ["sh", "-c", "env -i sh -c 'echo $$; sleep 30; :' & wait"],
        env={**os.environ, "SSH_CONNECTION": session},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        child = int(parent.stdout.readline())
        child_environ = ufw_ssh_session.read_environ(child)
        found = ufw_ssh_session.find_session(child, child_environ)
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
    assert "SSH_CONNECTION" not in child_environ, child_environ
    assert found["found"] is True
    assert found["server_port"] == 2222
    assert found["ssh_connection"] == session
    assert found["pid"] == parent.pid


def test_no_session_anywhere_is_not_found():
    # A process without SSH_CONNECTION whose ancestors have none: none is made up.
    environ = {key: value for key, value in os.environ.items() if key != "SSH_CONNECTION"}
    if ufw_ssh_session.find_session(os.getpid(), environ)["found"]:
        pytest.skip("the tests run inside an SSH session (an ancestor holds SSH_CONNECTION)")
    child = subprocess.Popen(["env", "-i", "sleep", "30"])
    try:
        time.sleep(0.2)
        found = ufw_ssh_session.find_session(child.pid, {})
    finally:
        child.kill()
        child.wait()
    assert (found["found"], found["server_port"], found["pid"], found["ssh_connection"]) == (False, None, None, "")
