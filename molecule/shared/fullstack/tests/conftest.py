"""Fixtures of the full-stack scenarios: the playbooks as operators run them.

PIPELIT_EDGE_APP names the application (pipelit or aliasvault) and
PIPELIT_EDGE_PROXY the proxy (nginx or caddy) the scenario deployed; the sites
and settings are the embedded default's (inventories/demo).
"""

import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
import edge_testing  # noqa: E402
from edge_testing import CONVERGE, SCENARIO, curl, edge, probe  # noqa: E402,F401  (fixtures, helpers)

APP = os.environ["PIPELIT_EDGE_APP"]
PROXY = os.environ["PIPELIT_EDGE_PROXY"]
PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
VERIFY = PROJECT / "playbooks" / "verify.yml"
EDGE_HOST = f"edge-{SCENARIO}"
# Whether the scenario reaches the edge over SSH as a sudo user
# (aliasvault-nginx: molecule/aliasvault-nginx/host_vars).
OVER_SSH = os.environ.get("PIPELIT_EDGE_OVER_SSH") == "true"


def edge_network_address():
    """The edge container's address on the scenario network."""
    import docker

    container = docker.from_env().containers.get(EDGE_HOST)
    return container.attrs["NetworkSettings"]["Networks"][f"pipelit-edge-{SCENARIO}"]["IPAddress"]


# The address verify.yml probes the closed ports on (edge_verify_address:
# ansible_host, else the inventory name): over SSH, the templated ansible_host.
EDGE_ADDRESS = edge_network_address() if OVER_SSH else EDGE_HOST

# The application's site in inventories/demo: its domains, its WebSocket path.
# backend_ports: the ports verify.yml must find closed and ufw denied, the
# ufw role's default (8000, 6379) and the profile's own (its backend_ports).
APPS = {
    "pipelit": {
        "site": "pipelit",
        "domains": ["pipelit.test", "www.pipelit.test"],
        "websocket": "/ws/",
        "backend_ports": ["8000/tcp", "6379/tcp", "6399/tcp", "8080/tcp", "4000/tcp"],
    },
    "aliasvault": {
        "site": "aliasvault",
        "domains": ["vault.test"],
        "websocket": "/admin/_blazor",
        "backend_ports": ["8000/tcp", "6379/tcp", "8443/tcp"],
    },
}
SITE = APPS[APP]
# Pebble's issuing root on the probe (molecule/shared/acme.yml).
PEBBLE_ROOT = "/usr/local/share/pebble-roots.pem"
# What the proxy's configuration is on disk, for "nothing changed" checks.
CONFIG_PATHS = {"nginx": ["/etc/nginx"], "caddy": ["/etc/caddy"]}[PROXY]


def run_playbook(playbook, *options, extra_vars=None):
    """A playbook run whose report lines and failure messages are never
    wrapped (JSON results), so the tests can match them whole."""
    return edge_testing.run_playbook(playbook, *options, extra_vars=extra_vars, result_format="json")


def rows(output, status):
    """(site, check, target) of the report rows with this status (PASS, FAIL, SKIP);
    site is "-" for the host's own checks (closed ports, firewall)."""
    return set(re.findall(rf'^\s*"{status}\s+(\S+)\s+(closed port|certificate chain|\S+)\s+(\S+)', output, re.M))


@pytest.fixture(scope="module")
def verify_run():
    """playbooks/verify.yml on the converged edge, as the scenario's settings give it."""
    return run_playbook(VERIFY)
