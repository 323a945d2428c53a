"""Filters of the edge_verify role: read ufw's status, lay out the report."""

import re


def firewall_rows(status, rc, served_ports, closed_ports):
    """Rows for what `ufw status verbose` (its stdout and rc) shows.

    Expected: the firewall active, incoming denied by default, an ALLOW rule
    from anywhere for every served port and a DENY (or REJECT) rule for every
    closed one, for IPv4 and IPv6 alike.
    """

    def row(check, target, ok, detail):
        return {"check": check, "target": target, "status": "pass" if ok else "fail", "detail": detail}

    if rc != 0:
        return [row("firewall", "ufw", False, "`ufw status verbose` failed (rc %s): %s" % (rc, status.strip()[:200]))]
    rows = []
    active = re.search(r"^Status: active$", status, re.M) is not None
    rows.append(row("firewall", "ufw", active, "active" if active else "not active"))
    default = re.search(r"^Default: (.*)$", status, re.M)
    default = default.group(1) if default else "(no default policy shown)"
    rows.append(row("firewall", "policy", default.startswith("deny (incoming)"), default))

    def has_rule(port, actions, v6):
        # "80/tcp   ALLOW IN   Anywhere" / "80/tcp (v6)   ALLOW IN   Anywhere (v6)", comments may follow.
        pattern = r"^%s%s\s+(%s) IN\s+Anywhere%s(\s|$)" % (
            re.escape(port),
            r" \(v6\)" if v6 else "",
            "|".join(actions),
            r" \(v6\)" if v6 else "",
        )
        return re.search(pattern, status, re.M) is not None

    for ports, actions, word in ((served_ports, ["ALLOW"], "allowed"), (closed_ports, ["DENY", "REJECT"], "denied")):
        for port in ports:
            missing = [family for family, v6 in (("IPv4", False), ("IPv6", True)) if not has_rule(port, actions, v6)]
            rows.append(
                row(
                    "firewall",
                    port,
                    not missing,
                    ("not %s from anywhere for %s" % (word, " and ".join(missing))) if missing else "%s from anywhere" % word,
                )
            )
    return rows


def report_table(rows, host):
    """The rows as aligned text lines, one per check, failures marked."""
    widths = [max([len(str(r.get(k, ""))) for r in rows] + [len(k)]) for k in ("site", "check", "target")]
    lines = ["%-6s %-*s %-*s %-*s %s" % ("RESULT", widths[0], "site", widths[1], "check", widths[2], "target", "detail")]
    for r in rows:
        lines.append(
            "%-6s %-*s %-*s %-*s %s"
            % (r["status"].upper(), widths[0], r.get("site") or "-", widths[1], r["check"], widths[2], r["target"], r["detail"])
        )
    counts = {s: len([r for r in rows if r["status"] == s]) for s in ("pass", "fail", "skip")}
    lines.append("%s: %d passed, %d failed, %d skipped" % (host, counts["pass"], counts["fail"], counts["skip"]))
    return lines


def report_failures(rows, host):
    """One line per failed check, naming the host, the site (for the host's
    own checks, the host again) and the check: in a fleet's output, each
    line says where it failed."""
    return [
        "%s: %s %s: %s"
        % ("%s: site '%s'" % (host, r["site"]) if r.get("site") else "host '%s'" % host, r["check"], r["target"], r["detail"])
        for r in rows
        if r["status"] == "fail"
    ]


class FilterModule:
    def filters(self):
        return {
            "edge_verify_firewall_rows": firewall_rows,
            "edge_verify_report_table": report_table,
            "edge_verify_report_failures": report_failures,
        }
