"""Run an Ansible module's main() in the test process, as Ansible would run it
on the host, and return what it answered."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args


def run_module(main, capsys, **params):
    """main() with these parameters: (exit code, the module's JSON result)."""
    with patch_module_args(params), pytest.raises(SystemExit) as done:
        main()
    return done.value.code, json.loads(capsys.readouterr().out)


class FakeModule:
    """What the modules' helpers use of AnsibleModule: params, run_command, warn."""

    def __init__(self, params, commands=None):
        self.params = params
        self.commands = commands or (lambda argv: (127, "", f"no stand-in for {argv}"))
        self.warnings = []

    def run_command(self, argv, **_kwargs):
        return self.commands(argv)

    def warn(self, message):
        self.warnings.append(message)
