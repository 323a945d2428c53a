"""The unit tier: the roles' Python called directly, without a host.

Each plugin or module folder goes on sys.path, so a test imports the file
under its own name, as Ansible loads it. The scripts without a .py suffix
(installed on the host as commands) are loaded by path; see `load_script`.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

for folder in (
    "roles/proxy_sites/filter_plugins",
    "roles/proxy_sites/library",
    "roles/certbot/library",
    "roles/caddy/filter_plugins",
    "roles/ufw/filter_plugins",
    "roles/edge_verify/filter_plugins",
    "roles/acme_preflight/library",
    "roles/certbot/library",
    "callback_plugins",
):
    path = str(ROOT / folder)
    if path not in sys.path:
        sys.path.insert(0, path)


# The roles' own module_utils, importable as Ansible makes them on the host
# (`from ansible.module_utils.NAME import ...`).
for path in sorted(ROOT.glob("roles/*/module_utils/*.py")):
    name = f"ansible.module_utils.{path.stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])


def load_script(relative, name):
    """A Python script without a .py suffix (roles/*/files/...), as a module."""
    loader = importlib.machinery.SourceFileLoader(name, str(ROOT / relative))
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def proxy_sites_defaults():
    """roles/proxy_sites/defaults/main.yml as Ansible reads it (the Jinja
    expressions stay strings; the model's inputs hold none)."""
    with open(ROOT / "roles/proxy_sites/defaults/main.yml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def ansible_playbook(inventory, playbook, extra_vars, **env):
    """Runs the real ansible-playbook with this repository's ansible.cfg, no
    colour, the extra vars as JSON (strings stay strings, as on a command
    line); returns (rc, stdout + stderr). For plays that stop before any
    task reaches a host, or that run on localhost only."""
    environment = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), **env}
    done = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(playbook), "-e", json.dumps(extra_vars)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
        cwd=ROOT,
    )
    return done.returncode, done.stdout + done.stderr
