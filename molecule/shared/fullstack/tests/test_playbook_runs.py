"""The deploy playbook on a configured host: an honest --check --diff, and its tags."""

import re

import pytest
from conftest import CONFIG_PATHS, CONVERGE, PROXY, SITE, run_playbook
from edge_testing import config_digest


def recap_changed(output):
    """Changed tasks of every host in the PLAY RECAP (the edge's, and 0 for
    the controller's check that the group names hosts)."""
    recap = output.rsplit("PLAY RECAP", 1)[1]
    return sum(int(count) for count in re.findall(r"\bchanged=(\d+)", recap))


def changed_tasks(output):
    """Names of the tasks a run reports as changed (from the JSON result lines)."""
    names, task = set(), None
    for line in output.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif line.startswith("changed: [") and task:
            names.add(task)
    return names


@pytest.fixture(scope="module")
def check_run(edge):
    """One check run on the configured host with one change in the model
    (a new body limit): its result, and the configuration's digest before it."""
    before = config_digest(edge, CONFIG_PATHS)
    site = {"name": SITE["site"], "profile": SITE["site"], "domains": SITE["domains"], "tls": {"mode": "acme"}, "max_body_size": "7m"}
    result = run_playbook(CONVERGE, "--check", "--diff", extra_vars={"proxy_sites": [site]})
    return result, before


def test_check_mode_previews_a_change_and_only_that_change(edge, check_run):
    # It reports the proxy's configuration as changing, shows the new limit
    # in the diff, reports nothing else (firewall, certificates) and touches
    # nothing.
    result, before = check_run
    assert result.returncode == 0, result.output
    changed = changed_tasks(result.output)
    assert changed, result.output
    assert all(name.startswith(f"{PROXY} : ") for name in changed), changed
    assert recap_changed(result.output) == len(changed)
    # The diff shows the new limit (7 MiB, as each proxy writes it); the host keeps the old one.
    assert str(7 * 1024 * 1024) in result.output or "7m;" in result.output, result.output
    assert config_digest(edge, CONFIG_PATHS) == before


def test_the_site_model_is_checked_once_per_run(check_run):
    # The play lists proxy_sites and every role after it depends on it:
    # Ansible runs it once only when the listings match (meta/main.yml).
    result, _ = check_run
    assert result.returncode == 0, result.output
    for task in ("Check the site model", "Publish the normalised site model"):
        assert result.output.count(f"TASK [proxy_sites : {task}]") == 1, result.output


def test_tags_run_the_parts_they_name():
    listed = {}
    for tag in ("firewall", "proxy", "certificates"):
        result = run_playbook(CONVERGE, "--list-tasks", "--tags", tag)
        assert result.returncode == 0, result.output
        # Argument validation is tagged always (every role checks its input); the rest is the tag's.
        listed[tag] = "\n".join(line for line in result.output.splitlines() if "Validating arguments" not in line)
    assert "ufw :" in listed["firewall"] and f"{PROXY} :" not in listed["firewall"]
    assert f"{PROXY} :" in listed["proxy"] and "ufw :" not in listed["proxy"]
    certificates_role = "certbot" if PROXY == "nginx" else "caddy"
    assert f"{certificates_role} :" in listed["certificates"] and "ufw :" not in listed["certificates"]
