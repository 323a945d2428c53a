"""The firewall model of the ufw role: checked and normalised in one place.

`ufw_input_errors` returns every mistake in the role's variables at once, each
naming the variable, the entry (index) and the field, so validate.yml can stop
the role before any rule changes. It needs nothing beyond the standard library
(no netaddr): addresses are checked with the `ipaddress` module.

The role applies its rules in this order, and ufw lets the first matching rule
decide: SSH, then ufw_service_ports, then ufw_denied_ports, then ufw_rules. So
an entry that covers the same port as an earlier one either never applies or
rewrites the earlier one on every run; both are reported as errors here.
"""

from __future__ import annotations

import ipaddress
import re

PROTOS = ("tcp", "udp", "any")
RULES = ("allow", "deny", "reject", "limit")
STATES = ("present", "absent")
RULE_FIELDS = ("port", "proto", "rule", "from", "comment", "state")
REQUIRED_RULE_FIELDS = ("port", "proto", "rule")
# "80", "80/tcp", "53/udp": ufw's own short syntax (no protocol: both).
PORT_SPEC_RE = re.compile(r"^(\d{1,5})(?:/(tcp|udp))?$")
# community.general.ufw passes the comment inside single quotes on ufw's
# command line, so a quote would break the command.
BAD_COMMENT_RE = re.compile(r"['\x00-\x1f\x7f]")
# ufw file settings (/etc/default/ufw) and the directions they set.
POLICY_SETTINGS = {
    "DEFAULT_INPUT_POLICY": "incoming",
    "DEFAULT_OUTPUT_POLICY": "outgoing",
    "DEFAULT_FORWARD_POLICY": "routed",
}
POLICY_VALUES = {"ACCEPT": "allow", "DROP": "deny", "REJECT": "reject"}
# The comments the role gives its own rules, and the action each one goes
# with (tasks/rules.yml, tasks/ssh.yml). A rule is the role's when, and only
# when, it carries one of these: ufw_stale_rules reconciles the first two.
SERVICE_COMMENT = "pipelit-edge service"
DENIED_COMMENT = "pipelit-edge denied"
SSH_COMMENT = "pipelit-edge ssh"
OWN_COMMENTS = (SERVICE_COMMENT, DENIED_COMMENT, SSH_COMMENT)
# "from anywhere to anywhere" in each family, as ufw writes it in a tuple.
ANY_ADDRESS = {"v4": "0.0.0.0/0", "v6": "::/0"}


def _port_number(value):
    """The port as an int if it is one (1-65535), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        return None
    return number if 1 <= number <= 65535 else None


def _port_spec(value):
    """(port, proto) from 80, "80" or "80/tcp"; proto "any" without one. None if invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = _port_number(value)
        return (number, "any") if number else None
    if not isinstance(value, str):
        return None
    match = PORT_SPEC_RE.match(value.strip().lower())
    if not match:
        return None
    number = _port_number(match.group(1))
    return (number, match.group(2) or "any") if number else None


def _network(value):
    """The source as an ip_network, None for any, False if malformed."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "any"):
        return None
    if not isinstance(value, str) or not value.strip():
        return False
    try:
        return ipaddress.ip_network(value.strip(), strict=True)
    except ValueError:
        return False


def _protos_overlap(one, other):
    return one == other or "any" in (one, other)


def _describe(port, proto):
    return f"{port}" if proto == "any" else f"{port}/{proto}"


def _port_list_errors(name, values, errors):
    """Check a list of "PORT[/PROTO]" entries; return the valid ones as (index, port, proto)."""
    valid = []
    if not isinstance(values, list):
        errors.append(f'{name}: must be a list of PORT or PORT/PROTO entries, such as "443/tcp"')
        return valid
    for index, value in enumerate(values):
        spec = _port_spec(value)
        if spec is None:
            errors.append(f'{name}[{index}]: {value!r} is not PORT or PORT/PROTO (PORT 1-65535, PROTO tcp or udp), such as "443/tcp"')
        else:
            valid.append((index, spec[0], spec[1]))
    return valid


def _rule_errors(index, rule, ipv6, errors):
    """Check one ufw_rules entry; return its normalised form, or None if it has errors."""
    where = f"ufw_rules[{index}]"
    if not isinstance(rule, dict):
        errors.append(f"{where}: must be a mapping with port, proto and rule, not {rule!r}")
        return None
    count = len(errors)
    for field in sorted(set(rule) - set(RULE_FIELDS)):
        errors.append(f"{where}.{field}: unknown field (known: {', '.join(RULE_FIELDS)})")
    for field in REQUIRED_RULE_FIELDS:
        if rule.get(field) is None:
            errors.append(f"{where}.{field}: missing")

    port = _port_number(rule.get("port"))
    if rule.get("port") is not None and port is None:
        errors.append(f"{where}.port: {rule['port']!r} is not a port number (1-65535)")
    proto = rule.get("proto")
    if proto is not None and proto not in PROTOS:
        errors.append(f"{where}.proto: {proto!r} is not one of {', '.join(PROTOS)}")
    action = rule.get("rule")
    if action is not None and action not in RULES:
        errors.append(f"{where}.rule: {action!r} is not one of {', '.join(RULES)}")
    state = rule.get("state", "present")
    if state not in STATES:
        errors.append(f"{where}.state: {state!r} is not one of {', '.join(STATES)}")

    source = _network(rule.get("from"))
    if source is False:
        errors.append(
            f"{where}.from: {rule.get('from')!r} is not an IPv4 or IPv6 address or network "
            "(CIDR without host bits, such as 192.0.2.0/24 or 2001:db8::/32), or any"
        )
    elif source is not None and source.version == 6 and not ipv6:
        errors.append(f"{where}.from: {rule['from']!r} is IPv6, but ufw_ipv6 is false")

    comment = rule.get("comment")
    if comment is not None and (not isinstance(comment, str) or not comment.strip() or BAD_COMMENT_RE.search(comment)):
        errors.append(f"{where}.comment: {comment!r} must be a non-empty text without ' or control characters")
    elif isinstance(comment, str) and comment.strip() in OWN_COMMENTS:
        errors.append(
            f"{where}.comment: {comment!r} is the comment of the role's own rules, which it removes when no "
            "variable asks for them any more; give this rule another comment"
        )

    if len(errors) > count:
        return None
    return {
        "port": port,
        "proto": proto,
        "rule": action,
        "from": rule["from"].strip() if source is not None else "any",
        "comment": comment,
        "state": state,
        "_network": source,
    }


def ufw_input_errors(rules, service_ports, denied_ports, ssh_port, ipv6=True):
    """Every mistake in the role's variables, as messages naming the entry and the field."""
    errors = []

    ssh = _port_number(ssh_port)
    if ssh is None:
        errors.append(f"ufw_ssh_port: {ssh_port!r} is not a port number (1-65535)")

    services = _port_list_errors("ufw_service_ports", service_ports, errors)
    denied = _port_list_errors("ufw_denied_ports", denied_ports, errors)

    # What the role allows or denies before ufw_rules, with the variable that
    # asked for it: (port, proto, who).
    earlier = []
    if ssh is not None:
        earlier.append((ssh, "tcp", "the SSH port (ufw_ssh_port)"))
    for index, port, proto in services:
        if port == ssh and _protos_overlap(proto, "tcp"):
            errors.append(
                f"ufw_service_ports[{index}]: {_describe(port, proto)} is the SSH port (ufw_ssh_port), "
                "which the role already allows; remove it here"
            )
    earlier.extend((port, proto, f"in ufw_service_ports[{index}]") for index, port, proto in services)
    for index, port, proto in denied:
        for other_port, other_proto, who in earlier:
            if port == other_port and _protos_overlap(proto, other_proto):
                errors.append(f"ufw_denied_ports[{index}]: {_describe(port, proto)} is {who}, which is allowed; a port cannot be both")
    earlier.extend((port, proto, f"in ufw_denied_ports[{index}]") for index, port, proto in denied)

    if not isinstance(rules, list):
        errors.append("ufw_rules: must be a list of rules (mappings with port, proto and rule)")
        return errors

    seen = []
    for index, rule in enumerate(rules):
        normalised = _rule_errors(index, rule, ipv6, errors)
        if normalised is None:
            continue
        port, proto = normalised["port"], normalised["proto"]
        # A present rule on a port the role already handles never applies (or
        # rewrites the role's own rule every run); removing one for any source
        # would remove the role's own rule.
        if normalised["state"] == "present" or normalised["_network"] is None:
            for other_port, other_proto, who in earlier:
                if port == other_port and _protos_overlap(proto, other_proto):
                    errors.append(
                        f"ufw_rules[{index}].port: {_describe(port, proto)} is {who}, whose rule the role "
                        "applies first (ufw: first match wins); change that variable instead"
                    )
        for other_index, other in seen:
            if port == other["port"] and proto == other["proto"] and normalised["_network"] == other["_network"]:
                errors.append(f"ufw_rules[{index}]: same port, proto and from as ufw_rules[{other_index}]; keep one of them")
        seen.append((index, normalised))
    return errors


def ufw_ports(values):
    """Validated PORT[/PROTO] entries as [{port, proto}], duplicates dropped, order kept."""
    result = []
    for value in values:
        port, proto = _port_spec(value)
        entry = {"port": port, "proto": proto}
        if entry not in result:
            result.append(entry)
    return result


def ufw_rules_normalize(rules, ipv6=True):
    """Validated ufw_rules with every field filled: from "any", comment None, state present."""
    errors = []
    result = []
    for index, rule in enumerate(rules):
        normalised = _rule_errors(index, rule, ipv6, errors)
        if normalised is None:
            raise ValueError("; ".join(errors))
        del normalised["_network"]
        result.append(normalised)
    return result


def ufw_policies(defaults_text):
    """Default policies from the text of /etc/default/ufw, as {incoming: deny, ...}."""
    policies = {}
    for line in defaults_text.splitlines():
        key, _, value = line.strip().partition("=")
        if key in POLICY_SETTINGS:
            policies[POLICY_SETTINGS[key]] = POLICY_VALUES.get(value.strip().strip("\"'").upper(), value)
    return policies


def ufw_rule_in_place(tuples, rule, port, proto, comment, ipv6=True):
    """Whether a rule from anywhere is already in ufw's user rules, comment and all.

    `tuples` are the "### tuple ###" lines of user.rules and user6.rules (what
    community.general.ufw itself compares before and after a command), each
    prefixed "v4 " or "v6 " by tasks/state.yml. True only when the IPv4 rule
    and, with ipv6, the IPv6 rule are there exactly as the module would add
    them: then the module call would change nothing and the role skips it.
    Any doubt (another comment, a missing family, a format not recognised)
    gives False, and the module decides.
    """
    suffix = f" in comment={comment.encode('utf-8').hex()}" if comment else " in"
    wanted = {f"v4 {rule} {proto} {port} 0.0.0.0/0 any 0.0.0.0/0{suffix}"}
    if ipv6:
        wanted.add(f"v6 {rule} {proto} {port} ::/0 any ::/0{suffix}")
    return wanted <= {line.strip() for line in tuples}


def _parse_tuple(line):
    """One "v4 ..."/"v6 ..." tuple line as a dict, or None when it is not a
    plain rule of the shape the role adds: family, action, proto, one port
    (dport), to anywhere, from any port and anywhere, incoming, with or
    without a comment (decoded from ufw's hex)."""
    fields = line.split()
    comment = None
    if fields and fields[-1].startswith("comment="):
        try:
            comment = bytes.fromhex(fields.pop()[len("comment=") :]).decode("utf-8")
        except ValueError:
            return None
    if len(fields) != 8:
        return None  # an application rule, or a format not recognised
    family, action, proto, dport, dst, sport, src, direction = fields
    if family not in ANY_ADDRESS:
        return None
    return {
        "family": family,
        "rule": action,
        "proto": proto,
        "port": dport,
        "to": dst,
        "from_port": sport,
        "from": src,
        "direction": direction,
        "comment": comment,
    }


def ufw_stale_rules(tuples, service_ports, denied_ports, ipv6=True):
    """The role's own rules that its variables no longer ask for: the plan of
    tasks/rules.yml's deletions.

    `tuples` as for ufw_rule_in_place. A rule is the role's by its comment
    only: "pipelit-edge service" (an allow rule for one of `service_ports`)
    or "pipelit-edge denied" (a deny rule for one of `denied_ports`). Each
    such rule that is not exactly what the role would add now (another port,
    proto or action, a port moved from one list to the other) is returned
    once for both families as {rule, port, proto, comment, families}, in
    the order ufw holds them: `ufw delete RULE from any to any port PORT
    proto PROTO` removes it from IPv4 and IPv6 alike. Rules without those
    comments (the operator's, SSH's, ufw_rules') are never returned, nor are
    rules of a shape the role never adds (a source, an interface, a range,
    outgoing), which a delete by port could not name. Without ipv6, ufw
    ignores user6.rules, and so does this plan.
    """
    wanted = {
        SERVICE_COMMENT: {(entry["port"], entry["proto"]) for entry in ufw_ports(service_ports)},
        DENIED_COMMENT: {(entry["port"], entry["proto"]) for entry in ufw_ports(denied_ports)},
    }
    actions = {SERVICE_COMMENT: "allow", DENIED_COMMENT: "deny"}
    plan = []
    for line in tuples:
        rule = _parse_tuple(line.strip())
        if rule is None or rule["comment"] not in wanted:
            continue
        if rule["family"] == "v6" and not ipv6:
            continue
        any_address = ANY_ADDRESS[rule["family"]]
        if (
            rule["rule"] not in RULES
            or rule["proto"] not in PROTOS
            or _port_number(rule["port"]) is None
            or (rule["to"], rule["from_port"], rule["from"], rule["direction"]) != (any_address, "any", any_address, "in")
        ):
            continue
        port = _port_number(rule["port"])
        if rule["rule"] == actions[rule["comment"]] and (port, rule["proto"]) in wanted[rule["comment"]]:
            continue
        for entry in plan:
            if (entry["rule"], entry["port"], entry["proto"]) == (rule["rule"], port, rule["proto"]):
                if rule["family"] not in entry["families"]:
                    entry["families"].append(rule["family"])
                break
        else:
            plan.append(
                {"rule": rule["rule"], "port": port, "proto": rule["proto"], "comment": rule["comment"], "families": [rule["family"]]}
            )
    return plan


def ufw_own_ports(tuples, comment, ipv6=True):
    """The ports of the role's own rules with `comment` ("pipelit-edge service"
    or "pipelit-edge denied") that ufw holds, as "PORT/PROTO" (or "PORT" for both protocols) in the order ufw
    holds them: what tasks/restore.yml puts back when a later role of the
    play fails. `tuples` as for ufw_rule_in_place; rules of another shape or
    action than the role gives that comment are left out, as ufw_stale_rules
    leaves them alone."""
    action = {SERVICE_COMMENT: "allow", DENIED_COMMENT: "deny"}.get(comment)
    ports = []
    for line in tuples:
        rule = _parse_tuple(line.strip())
        if rule is None or rule["comment"] != comment or rule["rule"] != action:
            continue
        if rule["family"] == "v6" and not ipv6:
            continue
        any_address = ANY_ADDRESS[rule["family"]]
        port = _port_number(rule["port"])
        if (
            port is None
            or rule["proto"] not in PROTOS
            or (rule["to"], rule["from_port"], rule["from"], rule["direction"]) != (any_address, "any", any_address, "in")
        ):
            continue
        spec = _describe(port, rule["proto"])
        if spec not in ports:
            ports.append(spec)
    return ports


class FilterModule:
    def filters(self):
        return {
            "ufw_input_errors": ufw_input_errors,
            "ufw_ports": ufw_ports,
            "ufw_rules_normalize": ufw_rules_normalize,
            "ufw_policies": ufw_policies,
            "ufw_rule_in_place": ufw_rule_in_place,
            "ufw_stale_rules": ufw_stale_rules,
            "ufw_own_ports": ufw_own_ports,
        }
