"""edge_verify's filters (roles/edge_verify/filter_plugins/edge_verify.py): what
`ufw status verbose` shows, and the report's layout."""

from __future__ import annotations

import edge_verify

STATUS = """Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), deny (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
22/tcp                     LIMIT IN    Anywhere                   # pipelit-edge ssh
80/tcp                     ALLOW IN    Anywhere                   # pipelit-edge service
443/tcp                    ALLOW IN    Anywhere
8000/tcp                   DENY IN     Anywhere                   # pipelit-edge denied
6379/tcp                   REJECT IN   Anywhere
22/tcp (v6)                LIMIT IN    Anywhere (v6)              # pipelit-edge ssh
80/tcp (v6)                ALLOW IN    Anywhere (v6)              # pipelit-edge service
8000/tcp (v6)              DENY IN     Anywhere (v6)
6379/tcp (v6)              REJECT IN   Anywhere (v6)
"""


def by_target(rows):
    return {row["target"]: row for row in rows}


def test_a_firewall_as_expected_passes_and_a_missing_family_fails():
    rows = by_target(edge_verify.firewall_rows(STATUS, 0, ["80/tcp", "443/tcp"], ["8000/tcp", "6379/tcp"]))
    assert rows["ufw"]["status"] == "pass" and rows["ufw"]["detail"] == "active"
    assert rows["policy"]["status"] == "pass"
    assert rows["80/tcp"] == {"check": "firewall", "target": "80/tcp", "status": "pass", "detail": "allowed from anywhere"}
    assert rows["443/tcp"]["status"] == "fail" and rows["443/tcp"]["detail"] == "not allowed from anywhere for IPv6"
    assert rows["8000/tcp"]["status"] == "pass" and rows["6379/tcp"]["detail"] == "denied from anywhere"


def test_a_port_allowed_only_from_a_network_is_not_allowed_from_anywhere():
    status = "Status: active\nDefault: deny (incoming)\n80/tcp  ALLOW IN  192.0.2.0/24\n80/tcp (v6)  ALLOW IN  2001:db8::/32\n"
    (row,) = [r for r in edge_verify.firewall_rows(status, 0, ["80/tcp"], []) if r["target"] == "80/tcp"]
    assert row["status"] == "fail" and row["detail"] == "not allowed from anywhere for IPv4 and IPv6"


def test_an_inactive_firewall_and_an_open_policy_fail():
    rows = by_target(edge_verify.firewall_rows("Status: inactive\n", 0, [], []))
    assert rows["ufw"]["status"] == "fail" and rows["ufw"]["detail"] == "not active"
    assert rows["policy"]["status"] == "fail" and rows["policy"]["detail"] == "(no default policy shown)"
    rows = by_target(edge_verify.firewall_rows("Status: active\nDefault: allow (incoming), allow (outgoing)\n", 0, [], []))
    assert rows["policy"]["status"] == "fail" and rows["policy"]["detail"] == "allow (incoming), allow (outgoing)"


def test_ufw_failing_is_one_failed_row():
    assert edge_verify.firewall_rows("  ERROR: not root \n", 1, ["80/tcp"], []) == [
        {"check": "firewall", "target": "ufw", "status": "fail", "detail": "`ufw status verbose` failed (rc 1): ERROR: not root"}
    ]


ROWS = [
    {"site": "pipelit", "check": "certificate", "target": "pipelit.test", "status": "pass", "detail": "valid 89 days"},
    {"site": None, "check": "firewall", "target": "80/tcp", "status": "fail", "detail": "not allowed"},
    {"site": "pipelit", "check": "websocket", "target": "/ws/", "status": "skip", "detail": "none"},
]


def test_the_report_is_aligned_and_counts():
    lines = edge_verify.report_table(ROWS, "edge1")
    assert lines[0].split() == ["RESULT", "site", "check", "target", "detail"]
    assert lines[1] == "PASS   pipelit certificate pipelit.test valid 89 days"
    assert lines[2] == "FAIL   -       firewall    80/tcp       not allowed"
    assert lines[-1] == "edge1: 1 passed, 1 failed, 1 skipped"
    assert len({line.index(line.split()[2]) for line in lines[1:-1]}) == 1  # the check column lines up


def test_failures_name_the_host_and_the_site():
    assert edge_verify.report_failures(ROWS, "edge1") == ["host 'edge1': firewall 80/tcp: not allowed"]
    rows = [{**ROWS[0], "status": "fail"}]
    assert edge_verify.report_failures(rows, "edge1") == ["edge1: site 'pipelit': certificate pipelit.test: valid 89 days"]


def test_the_filters_are_registered():
    assert set(edge_verify.FilterModule().filters()) == {
        "edge_verify_firewall_rows",
        "edge_verify_report_table",
        "edge_verify_report_failures",
    }
