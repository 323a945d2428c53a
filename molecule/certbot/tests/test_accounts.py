"""A lineage whose ACME account is gone (issue 19): certbot then fails every
renewal ("Account at ... does not exist") while the certificate still matches
the model. The run repairs it (roles/certbot/tasks/accounts.yml): with no
account left for the server, it registers one and points the lineages at it.

This module runs first (file order), on the state the converge left, while
Pebble still knows the accounts on disk; it ends with the same sites and
certificates, so the tests after it see what they expect.
"""

import re

from conftest import ACME_URL, SITES, certbot
from edge_testing import run_converge

ACCOUNTS = "/etc/letsencrypt/accounts/acme.test:14000/dir"
LINEAGES = ("pipelit-edge-pipelit", "pipelit-edge-aliasvault")


def account_of(edge, lineage):
    """The account id the lineage's renewal file names."""
    conf = edge.file(f"/etc/letsencrypt/renewal/{lineage}.conf").content_string
    return re.search(r"(?m)^account\s*=\s*(\S+)", conf).group(1)


def changed_count(output):
    return sum(int(count) for count in re.findall(r"\bchanged=(\d+)", output.split("PLAY RECAP")[-1]))


def task_output(output, name):
    """What the run printed for the role's task of this name (empty if nothing)."""
    start = output.find(f"TASK [certbot : {name}")
    return "" if start < 0 else output[start:].split("\nTASK [", 1)[0]


def renew(edge, lineage):
    """A real renewal, as certbot.timer would run it once the certificate is
    due. Not --dry-run: certbot's dry run registers an account of its own when
    the lineage's is gone, and so succeeds where the timer's renewals fail."""
    return certbot(edge, f"renew --force-renewal --no-random-sleep-on-renew --cert-name {lineage}")


def test_a_lost_account_is_registered_again_and_renewals_work(edge):
    lost = account_of(edge, "pipelit-edge-pipelit")
    assert {account_of(edge, lineage) for lineage in LINEAGES} == {lost}
    edge.check_output(f"rm -rf '{ACCOUNTS}/{lost}'")
    # What the issue saw: the renewal fails, before any request to the CA.
    broken = renew(edge, "pipelit-edge-pipelit")
    assert broken.rc != 0 and "does not exist" in broken.stdout, broken.stdout

    repair = run_converge({"proxy_sites": list(SITES.values())})
    assert repair.returncode == 0, repair.output[-3000:]
    assert changed_count(repair.output) > 0, "the run did not report the repair"
    assert "changed: [" in task_output(repair.output, f"Register with {ACME_URL}"), repair.output[-3000:]
    assert "changed: [" in task_output(repair.output, "Point each lineage"), repair.output[-3000:]
    registered = account_of(edge, "pipelit-edge-pipelit")
    assert registered != lost
    for lineage in LINEAGES:
        assert account_of(edge, lineage) == registered
    assert edge.file(f"{ACCOUNTS}/{registered}/regr.json").exists

    renewal = renew(edge, "pipelit-edge-pipelit")
    assert renewal.rc == 0, renewal.stdout
    assert "does not exist" not in renewal.stdout, renewal.stdout

    again = run_converge({"proxy_sites": list(SITES.values())})
    assert again.returncode == 0, again.output[-3000:]
    assert changed_count(again.output) == 0, again.output[-3000:]
