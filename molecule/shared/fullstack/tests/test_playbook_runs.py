"""The deploy playbook on a configured host: an honest --check --diff, and its tags."""

from conftest import CONFIG_PATHS, CONVERGE, PROXY, SITE, run_playbook
from edge_testing import config_digest


def recap_changed(output):
    return int(output.rsplit("changed=", 1)[1].split()[0])


def changed_tasks(output):
    """Names of the tasks a run reports as changed (from the JSON result lines)."""
    names, task = set(), None
    for line in output.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif line.startswith("changed: [") and task:
            names.add(task)
    return names


def test_check_mode_previews_a_change_and_only_that_change(edge):
    # One check run on the configured host with one change in the model: it
    # reports the proxy's configuration as changing, shows the new limit in the
    # diff, reports nothing else (firewall, certificates) and touches nothing.
    before = config_digest(edge, CONFIG_PATHS)
    site = {"name": SITE["site"], "profile": SITE["site"], "domains": SITE["domains"], "tls": {"mode": "acme"},
            "max_body_size": "7m"}
    result = run_playbook(CONVERGE, "--check", "--diff", extra_vars={"proxy_sites": [site]})
    assert result.returncode == 0, result.output
    changed = changed_tasks(result.output)
    assert changed, result.output
    assert all(name.startswith(f"{PROXY} : ") for name in changed), changed
    assert recap_changed(result.output) == len(changed)
    # The diff shows the new limit (7 MiB, as each proxy writes it); the host keeps the old one.
    assert str(7 * 1024 * 1024) in result.output or "7m;" in result.output, result.output
    assert config_digest(edge, CONFIG_PATHS) == before


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
