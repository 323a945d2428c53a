#!/usr/bin/python
"""Finds the sshd port of the SSH session Ansible's task runs in."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ufw_ssh_session
short_description: The addresses and ports of the SSH session this task runs in
description:
  - Reads C(SSH_CONNECTION), which sshd sets for every session, from the environment of this process and of each of its
    ancestors (C(/proc/PID/environ) up the parent chain), so the answer is the same with or without become.
  - sudo's C(env_reset) drops the variable from the become process, but the login user's shell that started sudo still
    holds it. As root every ancestor is readable; without become, the login user's own processes are (the ones in
    between that are not readable are skipped).
  - Changes nothing; check mode runs it the same.
options: {}
author: pipelit-edge
"""

RETURN = r"""
found:
  description: Whether an ancestor process held a well-formed C(SSH_CONNECTION).
  type: bool
  returned: always
server_port:
  description: The port sshd accepted the session on (the 4th field of C(SSH_CONNECTION)); null when not found.
  type: int
  returned: always
ssh_connection:
  description: C(SSH_CONNECTION) as found ("client-address client-port server-address server-port"); empty when not found.
  type: str
  returned: always
pid:
  description: The process it was read from; null when not found.
  type: int
  returned: always
unreadable:
  description: Ancestors whose environment could not be read (processes of other users when not root).
  type: list
  elements: int
  returned: always
"""

import os

from ansible.module_utils.basic import AnsibleModule

# Far more than any real chain (sshd, shell, sudo, shell, python); stops a loop
# on a corrupt /proc.
MAX_ANCESTORS = 64


def parse_ssh_connection(value):
    """(value, server port) if value is a well-formed SSH_CONNECTION, else None."""
    fields = value.split()
    if len(fields) != 4 or not fields[1].isdigit() or not fields[3].isdigit():
        return None
    port = int(fields[3])
    if not 1 <= port <= 65535:
        return None
    return " ".join(fields), port


def read_environ(pid):
    """The environment a process started with, as {name: value}."""
    with open(f"/proc/{pid}/environ", "rb") as handle:
        raw = handle.read()
    environ = {}
    for entry in raw.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep:
            environ[name.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return environ


def parent_of(pid):
    """The parent's pid, from /proc/PID/stat (the command name may hold spaces and parentheses)."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        stat = handle.read().decode("utf-8", "replace")
    return int(stat.rsplit(")", 1)[1].split()[1])


def find_session(start_pid, own_environ):
    """Walks from start_pid up to the first ancestor (itself included) holding SSH_CONNECTION."""
    result = {"found": False, "server_port": None, "ssh_connection": "", "pid": None, "unreadable": []}
    pid, seen = start_pid, set()
    while pid > 0 and pid not in seen and len(seen) < MAX_ANCESTORS:
        seen.add(pid)
        try:
            environ = own_environ if pid == start_pid else read_environ(pid)
        except OSError:
            environ = {}
            result["unreadable"].append(pid)
        parsed = parse_ssh_connection(environ.get("SSH_CONNECTION", ""))
        if parsed:
            result.update(found=True, ssh_connection=parsed[0], server_port=parsed[1], pid=pid)
            return result
        try:
            pid = parent_of(pid)
        except (OSError, ValueError, IndexError):
            break
    return result


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    module.exit_json(changed=False, **find_session(os.getpid(), dict(os.environ)))


if __name__ == "__main__":
    main()
