"""The ranges and formats of the edge roles' own variables (issue 19).

The roles' argument specs check types, at each role's start; these check the
values, before any change: each role's tasks/validate.yml asserts that its
function here returns no message, and playbooks/edge.yml runs those checks
before the firewall role. A value may come as extra vars (a string): "30"
is read as 30 and "false" as false, as the argument specs read them, and
anything else is refused. Each message names the variable, its value and
what is allowed.

The functions live with the site model, the dependency of every edge role,
whose filters every role can use.
"""

from __future__ import annotations

import fractions
import ipaddress
import math
import re

# What Ansible's boolean reads (ansible.module_utils.parsing.convert_bool).
BOOLEAN_STRINGS = {"1", "on", "t", "true", "y", "yes", "0", "off", "f", "false", "n", "no"}

# nginx's times in milliseconds (worker_shutdown_timeout): units in falling
# order, no spaces (the template writes the value unquoted), a bare number is
# seconds; nginx refuses more than 2147483647 ms (about 24.8 days).
NGINX_MSEC_TIME = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?(\d+)?")
NGINX_MSEC_UNITS = (604_800_000, 86_400_000, 3_600_000, 60_000, 1000, 1, 1000)
NGINX_MSEC_MAX = 2_147_483_647

# Caddy's durations (caddy.ParseDuration): Go's time.ParseDuration, plus d
# for days; units in any order, fractions allowed; at most 2^63-1 ns.
GO_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)")
GO_UNIT_NS = {"ns": 1, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9, "d": 86400e9}
GO_DURATION_MAX_NS = 2**63 - 1

# systemd's time spans (RandomizedDelaySec=, systemd.time(7)): numbers with
# or without a unit (seconds), spaces allowed, or infinity.
SYSTEMD_TIMESPAN = re.compile(
    r"\s*(?:(?:\d+\.?\d*|\.\d+)\s*"
    r"(?:usec|us|µs|μs|nsec|ns|msec|ms|seconds|second|sec|s|minutes|minute|min|months|month|M|m|hours|hour|hr|h"
    r"|days|day|d|weeks|week|w|years|year|y)?\s*)+"
)

# Names the roles put in file names or match files by (site files, certbot's
# lineages): never empty, which would claim every file.
NAME_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
NAME_PREFIX_ALLOWED = "a non-empty prefix of letters, digits, '.', '_' and '-'"

# certbot's renew_before_expiry as the certbot role lets it be fixed: whole
# hours, days or weeks (certbot's parsedatetime reads more, these alike in
# certbot 2.1 and 4.0).
CERTBOT_INTERVAL = re.compile(r"[1-9]\d* (?:hours?|days?|weeks?)")

# ACME profile names (RFC draft acme-profiles: the directory's meta.profiles keys).
ACME_PROFILE = re.compile(r"[A-Za-z0-9._-]*")

# Where the distribution's certbot cannot ask for an ACME profile
# (--preferred-profile came with certbot 4.0): "DISTRIBUTION MAJOR" to its
# certbot's version. Debian 13 ships certbot 4.0.
CERTBOT_WITHOUT_PROFILES = {"Debian 12": "2.1"}


def _whole(value):
    """value as an int: an int (not a bool), a whole float, or a string of
    digits (extra vars are strings); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value)
    return None


def _number(value):
    """value as a finite float (an int, a float or a string of one); else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _fraction(value):
    """value as a Fraction strictly between 0 and 1 ("1/3", "0.25", 0.25); else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = fractions.Fraction(str(value).strip())
    except (ValueError, ZeroDivisionError):
        return None
    return number if 0 < number < 1 else None


def _span(low, high):
    return f"from {low} up" if high is None else f"from {low} to {high}"


class _Checks:
    """Collects one message per value out of range."""

    def __init__(self, values):
        self.values = values
        self.errors = []

    def refuse(self, name, allowed):
        self.errors.append(f"{name}: {self.values.get(name)!r} is not {allowed}")

    def whole(self, name, low, high=None):
        number = _whole(self.values.get(name))
        if number is None or number < low or (high is not None and number > high):
            self.refuse(name, f"a whole number {_span(low, high)}")
        return number

    def seconds(self, name):
        number = _number(self.values.get(name))
        if number is None or number <= 0:
            self.refuse(name, "a number of seconds above 0 (such as 10 or 2.5)")

    def boolean(self, name):
        value = self.values.get(name)
        if isinstance(value, bool) or (isinstance(value, int | float) and value in (0, 1)):
            return
        if not (isinstance(value, str) and value.strip().lower() in BOOLEAN_STRINGS):
            self.refuse(name, "a boolean (true or false; as a string also yes, no, on, off, 1 or 0)")

    def pattern(self, name, regex, allowed):
        value = self.values.get(name)
        if not (isinstance(value, str) and regex.fullmatch(value)):
            self.refuse(name, allowed)

    def fraction(self, name):
        if _fraction(self.values.get(name)) is None:
            self.refuse(name, "a fraction above 0 and below 1, such as 1/3 or 0.25")

    def text(self, name):
        value = self.values.get(name)
        if not (isinstance(value, str) and value.strip() and value == value.strip()):
            self.refuse(name, "a non-empty string without leading or trailing spaces")

    def ports(self, name, already=()):
        values = self.values.get(name)
        if not isinstance(values, list):
            self.refuse(name, "a list of ports such as 8000/tcp")
            return
        for index, value in enumerate(values):
            if value in already:
                continue
            match = re.fullmatch(r"(\d+)(/(tcp|udp))?", value) if isinstance(value, str) else None
            if not match or not 1 <= int(match.group(1)) <= 65535:
                self.errors.append(
                    f"{name}[{index}]: {value!r} is not PORT or PORT/PROTO (PORT 1-65535, PROTO tcp or udp), such as 8000/tcp"
                )


def _nginx_msec(value):
    """nginx's time in milliseconds, or None where nginx would refuse it."""
    match = NGINX_MSEC_TIME.fullmatch(value) if isinstance(value, str) else None
    if not match or not any(match.groups()):
        return None
    total = sum(int(part) * unit for part, unit in zip(match.groups(), NGINX_MSEC_UNITS, strict=True) if part)
    return total if total <= NGINX_MSEC_MAX else None


def _go_duration_ns(value):
    """A Caddy duration in nanoseconds, or None where Caddy would refuse it."""
    if not isinstance(value, str) or not re.fullmatch(f"\\+?(?:{GO_DURATION_PART.pattern})+", value):
        return None
    total = sum(float(number) * GO_UNIT_NS[unit] for number, unit in GO_DURATION_PART.findall(value))
    return total if total <= GO_DURATION_MAX_NS else None


def nginx_range_errors(values):
    """The nginx role's variables out of range (values: name to value)."""
    checks = _Checks(values)
    processes = values.get("nginx_worker_processes")
    if processes != "auto" and (_whole(processes) or 0) < 1:
        checks.refuse("nginx_worker_processes", "auto or a whole number from 1 up")
    checks.whole("nginx_worker_connections", 1)
    checks.whole("nginx_worker_rlimit_nofile", 1)
    if not (_nginx_msec(values.get("nginx_worker_shutdown_timeout")) or 0) > 0:
        checks.refuse(
            "nginx_worker_shutdown_timeout",
            "an nginx time above 0 and up to 24 days, such as 30s, 5m or 1h30m (units w, d, h, m, s, ms in that order, no spaces)",
        )
    days = checks.whole("nginx_self_signed_days", 1, 366)
    renew_high = days - 1 if days is not None and 1 <= days <= 366 else None
    renew = _whole(values.get("nginx_self_signed_renew_days"))
    if renew is None or renew < 1 or (renew_high is not None and renew >= days):
        checks.refuse(
            "nginx_self_signed_renew_days",
            f"a whole number {_span(1, renew_high)} (fewer than nginx_self_signed_days, or every run would sign again)",
        )
    checks.whole("nginx_reload_timeout", 1)
    checks.pattern("nginx_user", re.compile(r"[^\s;{}'\"#\\]+"), "a user name (no spaces, quotes or ; { } #)")
    checks.pattern("nginx_site_file_prefix", NAME_PREFIX, NAME_PREFIX_ALLOWED)
    checks.boolean("nginx_listen_ipv6")
    return checks.errors


def caddy_range_errors(values):
    """The caddy role's variables out of range."""
    checks = _Checks(values)
    if not (_go_duration_ns(values.get("caddy_read_header_timeout")) or 0) > 0:
        checks.refuse("caddy_read_header_timeout", "a Caddy duration above 0, such as 30s, 1m or 1m30s (units ns, us, ms, s, m, h, d)")
    checks.whole("caddy_certificate_wait_seconds", 1)
    return checks.errors


def certbot_range_errors(values):
    """The certbot role's variables out of range."""
    checks = _Checks(values)
    # DNS-01 (dns-rfc2136): where the credentials files go, how long the CA is kept waiting.
    checks.pattern("certbot_dns_credentials_dir", re.compile(r"/[A-Za-z0-9._+@=,:/-]+"), "an absolute path (no spaces or quotes)")
    checks.whole("certbot_dns_propagation_seconds", 0, 3600)
    checks.whole("certbot_request_timeout", 1)
    checks.pattern("certbot_cert_name_prefix", NAME_PREFIX, NAME_PREFIX_ALLOWED)
    checks.text("certbot_proxy_reload_command")
    checks.fraction("certbot_renew_before_fraction")
    fixed = values.get("certbot_renew_before_expiry")
    if fixed not in ("", None):
        checks.pattern("certbot_renew_before_expiry", CERTBOT_INTERVAL, "empty (a fraction of the lifetime) or N hours, N days or N weeks")
    profile = values.get("certbot_acme_profile")
    checks.pattern("certbot_acme_profile", ACME_PROFILE, "empty (the CA's default) or a profile name (letters, digits, '.', '_', '-')")
    platform = values.get("certbot_platform") or ""
    if isinstance(profile, str) and profile and platform in CERTBOT_WITHOUT_PROFILES:
        checks.errors.append(
            f"certbot_acme_profile: {profile!r} cannot be asked for on {platform}, whose certbot "
            f"({CERTBOT_WITHOUT_PROFILES[platform]}) has no --preferred-profile (certbot 4.0 and later, Debian 13); "
            "leave it empty for the CA's default profile"
        )
    return checks.errors


def acme_preflight_range_errors(values):
    """The acme_preflight role's variables out of range."""
    checks = _Checks(values)
    checks.boolean("acme_preflight_enabled")
    checks.seconds("acme_preflight_timeout")
    checks.whole("acme_preflight_listener_seconds", 1)
    checks.text("acme_preflight_controller")
    checks.pattern("acme_preflight_certbot_cert_name_prefix", NAME_PREFIX, NAME_PREFIX_ALLOWED)
    addresses = values.get("acme_preflight_addresses")
    for index, address in enumerate(addresses if isinstance(addresses, list) else [addresses]):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            checks.errors.append(f"acme_preflight_addresses[{index}]: {address!r} is not an IPv4 or IPv6 address")
    return checks.errors


def certificate_alerts_range_errors(values):
    """The certificate_alerts role's variables out of range."""
    checks = _Checks(values)
    checks.whole("certificate_alerts_command_timeout", 1)
    if values.get("certificate_alerts_min_days") not in ("", None):
        checks.whole("certificate_alerts_min_days", 0)
    checks.fraction("certificate_alerts_min_lifetime_fraction")
    checks.pattern(
        "certificate_alerts_randomized_delay",
        re.compile(f"{SYSTEMD_TIMESPAN.pattern}|\\s*infinity\\s*"),
        "a systemd time span from 0 up, such as 0, 30min or 1h (RandomizedDelaySec=)",
    )
    checks.boolean("certificate_alerts_certbot")
    checks.boolean("certificate_alerts_caddy")
    checks.text("certificate_alerts_host_name")
    checks.pattern("certificate_alerts_certbot_cert_name_prefix", NAME_PREFIX, NAME_PREFIX_ALLOWED)
    return checks.errors


def edge_verify_range_errors(values):
    """The edge_verify role's variables out of range."""
    checks = _Checks(values)
    checks.whole("edge_verify_timeout", 1)
    checks.whole("edge_verify_min_days_valid", 0)
    checks.text("edge_verify_controller")
    checks.text("edge_verify_address")
    checks.pattern("edge_verify_connect_to", re.compile(r"[^\s]*"), "empty or an address or host name (no spaces)")
    checks.pattern("edge_verify_http_path", re.compile(r"/[^\s#]*"), "a path that starts with / (no spaces or #)")
    checks.pattern(
        "edge_verify_token_param", re.compile(r"[A-Za-z0-9._~-]+"), "a query parameter name (letters, digits, '.', '_', '~', '-')"
    )
    checks.ports("edge_verify_denied_ports")
    denied = values.get("edge_verify_denied_ports")
    checks.ports("edge_verify_closed_ports", denied if isinstance(denied, list) else ())
    checks.boolean("edge_verify_firewall")
    return checks.errors


class FilterModule:
    def filters(self):
        return {
            "nginx_range_errors": nginx_range_errors,
            "caddy_range_errors": caddy_range_errors,
            "certbot_range_errors": certbot_range_errors,
            "acme_preflight_range_errors": acme_preflight_range_errors,
            "certificate_alerts_range_errors": certificate_alerts_range_errors,
            "edge_verify_range_errors": edge_verify_range_errors,
        }
