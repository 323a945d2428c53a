"""The site model of pipelit-edge: validated and normalised in one place.

Operators describe each site once (`proxy_sites`); the nginx and Caddy roles
render the normalised form this module returns. Every mistake it finds names
the site and the field, and all of them are reported together, before any
host changes. The fields are documented in roles/proxy_sites/README.md.
"""

from __future__ import annotations

import copy
import ipaddress
import re

TLS_MODES = ("acme", "files", "self_signed")
SCHEMES = ("http", "https")

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
DOMAIN_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# nginx-style sizes: bytes, or a number with k, m or g (either case).
SIZE_RE = re.compile(r"^(\d+)([kmg]?)$", re.IGNORECASE)
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
# Durations both nginx and Caddy (Go) understand.
DURATION_RE = re.compile(r"^(\d+)(ms|s|m|h)$")
DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
RATE_RE = re.compile(r"^[1-9]\d*r/[sm]$")
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9-]+$")
# A location prefix: no whitespace, quotes, braces or semicolons that would
# let a path break out of the rendered config.
PATH_RE = re.compile(r"^/[^\s\"'{};]*$")

SITE_DEFAULTS = {
    "http_port": 80,
    "https_port": 443,
    "max_body_size": "1m",
    "headers": {},
    "trusted_proxies": [],
    "upstreams": {},
    "routes": [],
}
UPSTREAM_DEFAULTS = {"scheme": "http", "verify": True, "sni": None, "ca_file": None, "keepalive": 32}
ROUTE_DEFAULTS = {
    "websocket": False,
    "read_timeout": "60s",
    "send_timeout": "60s",
    "max_body_size": None,
    "allow": [],
    "rate_limit": None,
}


class SiteErrors:
    """Collects messages that name the site and the field."""

    def __init__(self):
        self.messages = []

    def add(self, site, field, problem):
        self.messages.append(f"site '{site}': {field}: {problem}")


def parse_size(value):
    """'50m' -> 52428800; None when the value is not a size."""
    match = SIZE_RE.match(str(value).strip())
    if not match:
        return None
    return int(match.group(1)) * SIZE_UNITS[match.group(2).lower()]


def parse_duration(value):
    """'86400s' -> 86400 (whole seconds, at least 1); None when malformed."""
    match = DURATION_RE.match(str(value).strip())
    if not match:
        return None
    return max(1, int(int(match.group(1)) * DURATION_SECONDS[match.group(2)]))


def is_domain(value):
    if not isinstance(value, str) or len(value) > 253 or value != value.lower():
        return False
    return all(DOMAIN_LABEL_RE.match(label) for label in value.split("."))


def split_server(value):
    """'127.0.0.1:8000' or '[::1]:8000' or 'app.internal:443' -> (host, port) or None."""
    match = re.match(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$", str(value))
    if not match or not 1 <= int(match.group(2)) <= 65535:
        return None
    host = match.group(1)
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return None
    return host, int(match.group(2))


def is_port(value):
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def is_ip(value):
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_network(value):
    try:
        ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return False
    return True


def merged_site(site, profiles, errors):
    """The site's own fields over its profile's over the defaults."""
    name = site.get("name", "?")
    result = copy.deepcopy(SITE_DEFAULTS)
    profile = site.get("profile")
    if profile is not None:
        if profile not in profiles:
            errors.add(name, "profile", f"'{profile}' is not a known profile (known: {', '.join(sorted(profiles)) or 'none'})")
        else:
            result.update(copy.deepcopy(profiles[profile]))
    result.update(copy.deepcopy(site))
    return result


def check_upstream(site, key, upstream, errors):
    field = f"upstreams.{key}"
    if not NAME_RE.match(str(key)):
        errors.add(site, field, "upstream names are lower-case letters, digits, '-' and '_'")
    if not isinstance(upstream, dict):
        errors.add(site, field, "must be a mapping with 'servers'")
        return None
    unknown = set(upstream) - set(UPSTREAM_DEFAULTS) - {"servers"}
    if unknown:
        errors.add(site, field, f"unknown field(s) {', '.join(sorted(unknown))}")
    result = {**UPSTREAM_DEFAULTS, **upstream, "name": key, "id": f"{site}_{key}".replace("-", "_")}
    servers = result.get("servers")
    if not isinstance(servers, list) or not servers:
        errors.add(site, f"{field}.servers", "needs at least one 'host:port'")
        servers = []
    for index, server in enumerate(servers):
        if split_server(server) is None:
            errors.add(site, f"{field}.servers[{index}]", f"'{server}' is not host:port with a port from 1 to 65535")
    if result["scheme"] not in SCHEMES:
        errors.add(site, f"{field}.scheme", f"'{result['scheme']}' is not one of {', '.join(SCHEMES)}")
    if not isinstance(result["verify"], bool):
        errors.add(site, f"{field}.verify", "must be true or false")
    if not isinstance(result["keepalive"], int) or result["keepalive"] < 0:
        errors.add(site, f"{field}.keepalive", "must be a whole number of idle connections, 0 or more")
    if result["scheme"] == "https" and result["sni"] is None and servers and split_server(servers[0]):
        # Without an explicit name, present the first server's host name, as a
        # browser would; an IP address is never sent as SNI (RFC 6066).
        host = split_server(servers[0])[0]
        result["sni"] = None if is_ip(host.strip("[]")) else host
    return result


def check_route(site, index, route, upstream_names, errors):
    field = f"routes[{index}]"
    if not isinstance(route, dict):
        errors.add(site, field, "must be a mapping with 'path' and 'upstream'")
        return None
    unknown = set(route) - set(ROUTE_DEFAULTS) - {"path", "upstream"}
    if unknown:
        errors.add(site, field, f"unknown field(s) {', '.join(sorted(unknown))}")
    result = {**ROUTE_DEFAULTS, **route}
    path = result.get("path")
    if not isinstance(path, str) or not PATH_RE.match(path):
        errors.add(site, f"{field}.path", f"'{path}' must start with '/' and hold no spaces, quotes, braces or ';'")
    upstream = result.get("upstream")
    if upstream not in upstream_names:
        errors.add(site, f"{field}.upstream", f"'{upstream}' is not an upstream of this site (known: {', '.join(sorted(upstream_names)) or 'none'})")
    result["upstream_id"] = f"{site}_{upstream}".replace("-", "_")
    if not isinstance(result["websocket"], bool):
        errors.add(site, f"{field}.websocket", "must be true or false")
    for timeout in ("read_timeout", "send_timeout"):
        seconds = parse_duration(result[timeout])
        if seconds is None:
            errors.add(site, f"{field}.{timeout}", f"'{result[timeout]}' is not a duration such as 60s, 5m or 24h")
        result[f"{timeout}_seconds"] = seconds
    if result["max_body_size"] is not None:
        size = parse_size(result["max_body_size"])
        if size is None:
            errors.add(site, f"{field}.max_body_size", f"'{result['max_body_size']}' is not a size such as 512k, 50m or 1g")
        result["max_body_size"] = size
    if not isinstance(result["allow"], list):
        errors.add(site, f"{field}.allow", "must be a list of addresses or networks")
        result["allow"] = []
    for net in result["allow"]:
        if not is_network(net):
            errors.add(site, f"{field}.allow", f"'{net}' is not an IP address or network")
    limit = result["rate_limit"]
    if limit is not None:
        if not isinstance(limit, dict) or not RATE_RE.match(str(limit.get("rate", ""))):
            errors.add(site, f"{field}.rate_limit.rate", "needs a rate such as 10r/s or 600r/m")
        elif not isinstance(limit.get("burst", 0), int) or limit.get("burst", 0) < 0:
            errors.add(site, f"{field}.rate_limit.burst", "must be a whole number, 0 or more")
        else:
            result["rate_limit"] = {"rate": limit["rate"], "burst": limit.get("burst", 0), "zone": f"{site}_route{index}".replace("-", "_")}
    return result


def check_tls(site, tls, tls_dir, errors):
    if not isinstance(tls, dict):
        errors.add(site, "tls", "must be a mapping with 'mode'")
        tls = {}
    mode = tls.get("mode")
    if mode not in TLS_MODES:
        errors.add(site, "tls.mode", f"'{mode}' is not one of {', '.join(TLS_MODES)}")
    unknown = set(tls) - {"mode", "certificate", "certificate_key"}
    if unknown:
        errors.add(site, "tls", f"unknown field(s) {', '.join(sorted(unknown))}")
    if mode == "files":
        for key in ("certificate", "certificate_key"):
            if not str(tls.get(key) or "").startswith("/"):
                errors.add(site, f"tls.{key}", "mode 'files' needs an absolute path on the host")
        return {"mode": mode, "certificate": tls.get("certificate"), "certificate_key": tls.get("certificate_key")}
    # self_signed and acme: the edge keeps the pair under its own directory.
    return {"mode": mode, "certificate": f"{tls_dir}/{site}/fullchain.pem", "certificate_key": f"{tls_dir}/{site}/privkey.pem"}


def check_headers(site, headers, security_headers, errors):
    """Security headers merged with the site's: a null or empty value removes one."""
    if not isinstance(headers, dict):
        errors.add(site, "headers", "must be a mapping of header name to value")
        headers = {}
    merged = {**security_headers, **headers}
    result = []
    for name, value in merged.items():
        if not HEADER_NAME_RE.match(str(name)):
            errors.add(site, f"headers.{name}", "is not a valid header name")
        elif value in (None, ""):
            continue
        elif any(char in str(value) for char in "\"\r\n"):
            errors.add(site, f"headers.{name}", "a value may not hold double quotes or line breaks")
        else:
            result.append({"name": str(name), "value": str(value)})
    return result


def check_site(raw, profiles, security_headers, tls_dir, errors):
    site = merged_site(raw, profiles, errors)
    name = site.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        errors.add(str(name), "name", "must be lower-case letters, digits, '-' and '_', starting with a letter or digit")
        name = str(name)
    domains = site.get("domains")
    if not isinstance(domains, list) or not domains:
        errors.add(name, "domains", "needs at least one domain; the first is the primary")
        domains = []
    for index, domain in enumerate(domains):
        if not is_domain(domain):
            errors.add(name, f"domains[{index}]", f"'{domain}' is not a valid lower-case domain name")
    for port in ("http_port", "https_port"):
        if not is_port(site[port]):
            errors.add(name, port, f"'{site[port]}' is not a port from 1 to 65535")
    if site["http_port"] == site["https_port"]:
        errors.add(name, "https_port", "must differ from http_port")
    body = parse_size(site["max_body_size"])
    if body is None:
        errors.add(name, "max_body_size", f"'{site['max_body_size']}' is not a size such as 512k, 50m or 1g (0: no limit)")
    for net in site["trusted_proxies"]:
        if not is_network(net):
            errors.add(name, "trusted_proxies", f"'{net}' is not an IP address or network")
    upstreams = site["upstreams"] if isinstance(site["upstreams"], dict) else {}
    if not upstreams:
        errors.add(name, "upstreams", "needs at least one upstream")
    normal_upstreams = [check_upstream(name, key, value, errors) for key, value in sorted(upstreams.items())]
    routes = site["routes"] if isinstance(site["routes"], list) else []
    if not routes:
        errors.add(name, "routes", "needs at least one route")
    normal_routes = [check_route(name, index, route, set(upstreams), errors) for index, route in enumerate(routes)]
    seen = {}
    for index, route in enumerate(normal_routes):
        if route is None:
            continue
        if route.get("path") in seen:
            errors.add(name, f"routes[{index}].path", f"'{route['path']}' is already the path of routes[{seen[route['path']]}]")
        seen.setdefault(route.get("path"), index)
    known = set(SITE_DEFAULTS) | {"name", "profile", "domains", "tls"}
    unknown = set(site) - known
    if unknown:
        errors.add(name, "site", f"unknown field(s) {', '.join(sorted(unknown))}")
    return {
        "name": name,
        "domains": domains,
        "http_port": site["http_port"],
        "https_port": site["https_port"],
        "tls": check_tls(name, site.get("tls"), tls_dir, errors),
        "max_body_size": body,
        "headers": check_headers(name, site["headers"], security_headers, errors),
        "trusted_proxies": list(site["trusted_proxies"]),
        "upstreams": [u for u in normal_upstreams if u],
        "routes": [r for r in normal_routes if r],
    }


def check_sites(sites, profiles, security_headers, tls_dir):
    """Returns (normalised sites, error messages)."""
    errors = SiteErrors()
    if not isinstance(sites, list):
        errors.add("*", "proxy_sites", "must be a list of sites")
        return [], errors.messages
    normal = [check_site(site if isinstance(site, dict) else {"name": str(site)}, profiles or {}, security_headers or {}, tls_dir, errors)
              for site in sites]
    owners = {}
    for site in normal:
        if site["name"] in {other["name"] for other in normal[: normal.index(site)]}:
            errors.add(site["name"], "name", "another site has the same name")
        for domain in site["domains"]:
            if domain in owners and owners[domain] != site["name"]:
                errors.add(site["name"], "domains", f"'{domain}' is already a domain of site '{owners[domain]}'")
            owners.setdefault(domain, site["name"])
    return normal, errors.messages


def proxy_sites_errors(sites, profiles=None, security_headers=None, tls_dir="/etc/ssl/pipelit-edge"):
    """Every mistake in the model, one message each (empty when valid)."""
    return check_sites(sites, profiles, security_headers, tls_dir)[1]


def proxy_sites_normalize(sites, profiles=None, security_headers=None, tls_dir="/etc/ssl/pipelit-edge"):
    """The model with profiles applied, defaults filled, sizes in bytes and timeouts in seconds."""
    return check_sites(sites, profiles, security_headers, tls_dir)[0]


class FilterModule:
    def filters(self):
        return {"proxy_sites_errors": proxy_sites_errors, "proxy_sites_normalize": proxy_sites_normalize}
