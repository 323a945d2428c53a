"""The site model of pipelit-edge: validated and normalised in one place.

Operators describe each site once (`proxy_sites`); the nginx and Caddy roles
render the normalised form this module returns. Every mistake it finds names
the site and the field, and all of them are reported together, before any
host changes. The fields are documented in roles/proxy_sites/README.md.

Everything the model accepts must render into a configuration that both
`nginx -t` and `caddy validate` accept, and that certbot can request: a
mistake found by one of them comes after the firewall and the proxy's
packages have changed the host, and in their words rather than the site's.
So types are checked exactly (YAML's `yes` is not a port, `true` is not a
number even though Python's bool is an int), and so are the identifiers the
renderers derive from names, across every site.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import ipaddress
import re

TLS_MODES = ("acme", "files", "self_signed")
SCHEMES = ("http", "https")
STATES = ("present", "absent")

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
DOMAIN_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# Host names of upstreams and SNI: any case (DNS is case-insensitive).
HOST_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
# nginx-style sizes: bytes, or a number with k, m or g (either case).
SIZE_RE = re.compile(r"^(\d+)([kmg]?)$", re.IGNORECASE)
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
# nginx keeps sizes in off_t and Caddy in int64: anything larger fails their checks.
SIZE_MAX = 2**63 - 1
# Durations both nginx and Caddy (Go) understand (parse_duration: whole seconds).
DURATION_RE = re.compile(r"^(\d+)(ms|s|m|h)$")
DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
# A year: nginx's timers and Go's durations both hold it; longer ones overflow
# nginx's millisecond timers on some builds and mean "never" anyway.
DURATION_MAX_SECONDS = 366 * 24 * 3600
RATE_RE = re.compile(r"^[1-9]\d{0,8}r/[sm]$")
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9-]+$")
# Response headers that frame the message or the connection: setting them
# breaks every response (and nginx and Caddy manage them themselves).
FRAMING_HEADERS = ("connection", "content-length", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer")
# Characters a header value may not hold: the double quote and line breaks end
# nginx's quoted string; '$' is an nginx variable, braces a Caddy placeholder,
# the backslash an escape to both. So the two proxies send the same bytes.
HEADER_VALUE_FORBIDDEN = '"\\${}'
# A location prefix: printable ASCII without whitespace, quotes, braces,
# semicolons or backslashes (which would let a path break out of the rendered
# config), '#' (a comment to nginx), '*' (a wildcard to Caddy, a plain
# character to nginx), '?' (a query is never part of the path) and '%' (nginx
# matches decoded paths, Caddy the path as sent).
PATH_RE = re.compile(r"^/[!$&()+,\-./0-9:=@A-Z\[\]^_`a-z|~]*$")
# Absolute paths on the host that the renderers write unquoted.
FILE_PATH_RE = re.compile(r"^/[A-Za-z0-9._+@=,:/-]*$")
# A query parameter's name, of URL-safe characters (RFC 3986's unreserved).
SECRET_PARAM_RE = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
# Let's Encrypt (and RFC 8555 CAs generally) issue at most 100 names per certificate.
ACME_MAX_DOMAINS = 100
# What Ansible's boolean reads (ansible.module_utils.parsing.convert_bool), for
# proxy_sites_http3: extra vars (-e proxy_sites_http3=false) come as strings.
BOOLEAN_TRUE = {"1", "on", "t", "true", "y", "yes"}
BOOLEAN_FALSE = {"0", "off", "f", "false", "n", "no"}
# How an acme site proves its domains: HTTP-01 through the proxy's port 80
# (the default), or DNS-01 through an RFC 2136 update of the zone (the only
# challenge a CA issues wildcard names over).
ACME_CHALLENGES = ("http-01", "dns-01")
# TSIG algorithms certbot's dns-rfc2136 plugin knows (its ALGORITHMS table,
# which it reads in upper case), and the pre-flight signs with.
TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha512", "hmac-sha384", "hmac-sha224", "hmac-sha1", "hmac-md5")
DNS_DEFAULTS = {"port": 53, "key_algorithm": "hmac-sha256"}
DNS_FIELDS = ("server", "port", "key_name", "key_algorithm", "key_secret")
# A TSIG key name: a DNS name (BIND's key names often hold '_' or '-').
TSIG_KEY_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*\.?$")

SITE_DEFAULTS = {
    "http_port": 80,
    "https_port": 443,
    "max_body_size": "1m",
    "headers": {},
    "trusted_proxies": [],
    "upstreams": {},
    "routes": [],
    # Where verify.yml opens WebSockets; None: every WebSocket route's path.
    "verify_websocket_paths": None,
    # The application's weak spots, declared by its profile (README: the
    # application's own guards). path_guard: refuse, with 400, a request whose
    # raw path could name another file to a backend that decodes it and does
    # not normalise it (filter_plugins/path_guard.py).
    "path_guard": False,
    # Paths the edge never forwards (404): the path itself and all below it.
    "denied_paths": [],
    # Denied paths (of the profile) this site serves after all.
    "exposed_paths": [],
    # Ports the application listens on besides the upstream the edge uses:
    # the firewall denies them (those a site of the host serves excepted).
    "backend_ports": [],
    # Query parameters that carry secrets: their values never reach a log.
    "secret_query_params": ["token"],
}
# Site fields a profile may not set: they are each site's own.
SITE_ONLY_FIELDS = ("name", "profile", "domains")
# keepalive_timeout: how long an idle upstream connection is kept; it must
# be under the backend's own idle timeout (nginx's default 60s).
UPSTREAM_DEFAULTS = {"scheme": "http", "verify": True, "sni": None, "ca_file": None, "keepalive": 32, "keepalive_timeout": "60s"}
ROUTE_DEFAULTS = {
    "websocket": False,
    "read_timeout": "60s",
    "send_timeout": "60s",
    "max_body_size": None,
    "allow": [],
    "rate_limit": None,
}


class SiteErrors:
    """Collects the model's mistakes, each naming the site (or the profile) and
    the field: as data ({site, profile, field, problem}) and as the message an
    operator reads ("site 'x': field: problem")."""

    def __init__(self):
        self.entries = []

    def add(self, site, field, problem):
        self.entries.append(
            {"site": site, "profile": None, "field": field, "problem": problem, "message": f"site '{site}': {field}: {problem}"}
        )

    def add_profile(self, profile, field, problem):
        self.entries.append(
            {"site": None, "profile": profile, "field": field, "problem": problem, "message": f"profile '{profile}': {field}: {problem}"}
        )

    @property
    def messages(self):
        return [entry["message"] for entry in self.entries]


def kind(value):
    """What a value is, in YAML's words, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def is_int(value):
    """A whole number: Python's bool is an int, YAML's true is not a number."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_text(value):
    return isinstance(value, str)


def parse_size(value):
    """'50m' or 52428800 -> 52428800; None when the value is not a size (or too large)."""
    if not (is_text(value) or is_int(value)):
        return None
    match = SIZE_RE.match(str(value).strip())
    if not match:
        return None
    size = int(match.group(1)) * SIZE_UNITS[match.group(2).lower()]
    return size if size <= SIZE_MAX else None


def parse_duration(value):
    """'86400s' -> 86400; None when malformed, over a year, under a second or
    not a whole number of seconds. The renderers write whole seconds: '0s'
    or '500ms' would become nginx's 1s (and 0 means "no timeout" to Caddy),
    '1500ms' would become 1s; so those are refused rather than misread."""
    if not is_text(value):
        return None
    match = DURATION_RE.match(value.strip())
    if not match:
        return None
    milliseconds = int(match.group(1)) * int(DURATION_SECONDS[match.group(2)] * 1000)
    if milliseconds < 1000 or milliseconds % 1000:
        return None
    seconds = milliseconds // 1000
    return seconds if seconds <= DURATION_MAX_SECONDS else None


def is_domain(value):
    if not is_text(value) or len(value) > 253 or value != value.lower():
        return False
    return all(DOMAIN_LABEL_RE.match(label) for label in value.split("."))


def is_wildcard(value):
    """'*.example.com': one leading '*' label over a name of two labels or
    more (a CA issues no '*.com', and '*' stands for one label only)."""
    return is_text(value) and value.startswith("*.") and "." in value[2:] and is_domain(value[2:])


def wildcard_base(domain):
    """'*.example.com' -> 'example.com'; any other name as it is."""
    return domain[2:] if is_wildcard(domain) else domain


def is_host_name(value):
    """A DNS host name (any case, one label or more) that is not an IP address."""
    if not is_text(value) or not value or len(value) > 253 or is_ip(value):
        return False
    labels = value.split(".")
    # All-numeric names look like IPv4 addresses to nginx and Go alike.
    if all(label.isdigit() for label in labels):
        return False
    return all(HOST_LABEL_RE.match(label) for label in labels)


def split_server(value):
    """'127.0.0.1:8000' or '[::1]:8000' or 'app.internal:443' -> (host, port) or None."""
    if not is_text(value):
        return None
    match = re.match(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$", value)
    if not match or not 1 <= int(match.group(2)) <= 65535:
        return None
    host = match.group(1)
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return None
    elif not (is_ipv4(host) or is_host_name(host)):
        return None
    return host, int(match.group(2))


def is_port(value):
    return is_int(value) and 1 <= value <= 65535


def is_ip(value):
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_ipv4(value):
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def is_network(value):
    """An address or network both nginx (allow, set_real_ip_from) and Caddy
    (remote_ip) parse: no IPv6 zone ('%eth0'), which neither accepts."""
    if not is_text(value) or "%" in value:
        return False
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def hashable_text(value):
    """The value when it is a string, else None (lists and mappings cannot be looked up)."""
    return value if is_text(value) else None


def merge_routes(name, profile_name, profile_routes, site_routes, errors):
    """The site's routes merged over its profile's by path; a list of
    (field label, route). The site's routes keep their own index as label
    (routes[i], what the operator wrote); the profile's other routes follow,
    labelled profile.routes[i]. The order does not matter to the renderers:
    nginx and Caddy both pick the longest matching prefix."""
    by_path = {}
    for index, route in enumerate(profile_routes):
        if isinstance(route, dict) and hashable_text(route.get("path")) is not None:
            by_path.setdefault(route["path"], index)
    taken = set()
    merged = []
    for index, route in enumerate(site_routes):
        label = f"routes[{index}]"
        if not isinstance(route, dict):
            merged.append((label, route))
            continue
        path = hashable_text(route.get("path"))
        state = route.get("state", "present")
        if state not in STATES:
            errors.add(name, f"{label}.state", f"{kind(state)} is not one of {', '.join(STATES)}")
            continue
        from_profile = path is not None and path in by_path and path not in taken
        if state == "absent":
            if profile_name is None:
                errors.add(name, f"{label}.state", "'absent' removes a route of the site's profile, and this site has no profile")
            elif not from_profile:
                known = ", ".join(sorted(by_path)) or "none"
                errors.add(
                    name,
                    f"{label}.state",
                    f"'absent' removes a route of profile '{profile_name}', which has no route with path {kind(route.get('path'))} (its paths: {known})",
                )
            else:
                taken.add(path)
            continue
        own = {key: value for key, value in route.items() if key != "state"}
        if from_profile:
            taken.add(path)
            # Field by field: {path: /ws/, read_timeout: 3600s} keeps websocket and upstream.
            own = {**copy.deepcopy(profile_routes[by_path[path]]), **own}
        merged.append((label, own))
    for index, route in enumerate(profile_routes):
        path = hashable_text(route.get("path")) if isinstance(route, dict) else None
        if path is None or path not in taken:
            merged.append((f"profile.routes[{index}]", copy.deepcopy(route)))
    return merged


def merge_upstreams(name, profile_name, profile_upstreams, site_upstreams, errors):
    """The site's upstreams merged over its profile's by name, field by field;
    `state: absent` removes one of the profile's."""
    merged = copy.deepcopy(profile_upstreams)
    for key, upstream in site_upstreams.items():
        field = f"upstreams.{key}"
        if not isinstance(upstream, dict):
            merged[key] = upstream
            continue
        state = upstream.get("state", "present")
        if state not in STATES:
            errors.add(name, f"{field}.state", f"{kind(state)} is not one of {', '.join(STATES)}")
            continue
        if state == "absent":
            if profile_name is None:
                errors.add(name, f"{field}.state", "'absent' removes an upstream of the site's profile, and this site has no profile")
            elif key not in profile_upstreams:
                errors.add(
                    name,
                    f"{field}.state",
                    f"'absent' removes an upstream of profile '{profile_name}', which has no upstream '{key}' "
                    f"(its upstreams: {', '.join(sorted(map(str, profile_upstreams))) or 'none'})",
                )
            else:
                merged.pop(key, None)
            continue
        own = {field_name: value for field_name, value in upstream.items() if field_name != "state"}
        if isinstance(merged.get(key), dict):
            own = {**merged[key], **own}
        merged[key] = own
    return merged


def merged_site(site, profiles, errors):
    """The site's own fields over its profile's over the defaults. Routes merge
    by path and upstreams by name, field by field; headers by name. Returns
    (site, route labels, header layers)."""
    name = site.get("name") if is_text(site.get("name")) else str(site.get("name", "?"))
    result = copy.deepcopy(SITE_DEFAULTS)
    own = copy.deepcopy(site)
    profile_name = own.get("profile")
    profile = {}
    if profile_name is not None:
        if not is_text(profile_name) or profile_name not in profiles:
            errors.add(name, "profile", f"{kind(profile_name)} is not a known profile (known: {', '.join(sorted(profiles)) or 'none'})")
            profile_name = None
        elif not isinstance(profiles[profile_name], dict):
            errors.add(name, "profile", f"proxy_sites_profiles.{profile_name} must be a mapping of site fields")
            profile_name = None
        else:
            profile = copy.deepcopy(profiles[profile_name])
    result.update(profile)
    header_layers = [("headers", layer) for layer in (profile.get("headers"), own.get("headers")) if layer is not None]
    profile_routes = profile.get("routes") if isinstance(profile.get("routes"), list) else []
    profile_upstreams = profile.get("upstreams") if isinstance(profile.get("upstreams"), dict) else {}
    for key, value in own.items():
        if key == "routes" and isinstance(value, list):
            continue
        if key == "upstreams" and isinstance(value, dict):
            result[key] = merge_upstreams(name, profile_name, profile_upstreams, value, errors)
            continue
        result[key] = value
    if isinstance(own.get("routes"), list):
        labelled = merge_routes(name, profile_name, profile_routes, own["routes"], errors)
    elif "routes" in own or not isinstance(result["routes"], list):
        labelled = None  # not a list: check_site says so
    else:
        labelled = [
            (f"profile.routes[{index}]" if profile_name else f"routes[{index}]", route) for index, route in enumerate(result["routes"])
        ]
    return result, labelled, header_layers


def check_upstream(site, key, upstream, errors):
    field = f"upstreams.{key}"
    if not is_text(key) or not NAME_RE.match(key):
        errors.add(site, field, "upstream names are lower-case letters, digits, '-' and '_'")
    if not isinstance(upstream, dict):
        errors.add(site, field, f"must be a mapping with 'servers', not {kind(upstream)}")
        return None
    unknown = set(map(str, upstream)) - set(UPSTREAM_DEFAULTS) - {"servers"}
    if unknown:
        errors.add(site, field, f"unknown field(s) {', '.join(sorted(unknown))}")
    result = {**UPSTREAM_DEFAULTS, **upstream, "name": key, "id": f"{site}_{key}".replace("-", "_")}
    servers = result.get("servers")
    if not isinstance(servers, list) or not servers:
        errors.add(site, f"{field}.servers", "needs a list of at least one 'host:port'")
        servers = []
    for index, server in enumerate(servers):
        if split_server(server) is None:
            errors.add(
                site,
                f"{field}.servers[{index}]",
                f"{kind(server)} is not host:port (an IPv4 address, [IPv6] or a host name) with a port from 1 to 65535",
            )
    if result["scheme"] not in SCHEMES:
        errors.add(site, f"{field}.scheme", f"{kind(result['scheme'])} is not one of {', '.join(SCHEMES)}")
    if not isinstance(result["verify"], bool):
        errors.add(site, f"{field}.verify", f"must be true or false, not {kind(result['verify'])}")
    if not is_int(result["keepalive"]) or not 0 <= result["keepalive"] <= 65535:
        errors.add(
            site, f"{field}.keepalive", f"must be a whole number of idle connections from 0 to 65535, not {kind(result['keepalive'])}"
        )
    result["keepalive_timeout_seconds"] = parse_duration(result["keepalive_timeout"])
    if result["keepalive_timeout_seconds"] is None:
        errors.add(
            site,
            f"{field}.keepalive_timeout",
            f"{kind(result['keepalive_timeout'])} is not a duration such as 4s or 60s (whole seconds, from 1s to a year)",
        )
    https = result["scheme"] == "https"
    if result["sni"] is not None:
        if not is_host_name(result["sni"]):
            errors.add(site, f"{field}.sni", f"{kind(result['sni'])} is not a host name (an IP address is never sent as SNI)")
        elif not https:
            errors.add(site, f"{field}.sni", "only an upstream with scheme https sends a name")
    if result["ca_file"] is not None:
        if not is_text(result["ca_file"]) or not FILE_PATH_RE.match(result["ca_file"]):
            errors.add(site, f"{field}.ca_file", f"{kind(result['ca_file'])} is not an absolute path on the host (no spaces or quotes)")
        elif not https or result["verify"] is not True:
            errors.add(site, f"{field}.ca_file", "only an upstream with scheme https and verify true checks a certificate")
    if https and result["sni"] is None and servers and split_server(servers[0]):
        # Without an explicit name, present the first server's host name, as a
        # browser would; an IP address is never sent as SNI (RFC 6066).
        host = split_server(servers[0])[0]
        result["sni"] = None if is_ip(host.strip("[]")) else host
    return result


def check_rate_limit(site, field, limit, zone, errors):
    """{rate, burst} -> with the nginx zone name; None (and messages) when wrong."""
    if not isinstance(limit, dict):
        errors.add(site, field, f"must be a mapping with 'rate' and 'burst', not {kind(limit)}")
        return None
    unknown = set(map(str, limit)) - {"rate", "burst"}
    if unknown:
        errors.add(site, field, f"unknown field(s) {', '.join(sorted(unknown))}")
    rate = limit.get("rate")
    burst = limit.get("burst", 0)
    ok = True
    if not is_text(rate) or not RATE_RE.match(rate):
        errors.add(site, f"{field}.rate", f"{kind(rate)} is not a rate such as 10r/s or 600r/m")
        ok = False
    if not is_int(burst) or not 0 <= burst <= 1000000:
        errors.add(site, f"{field}.burst", f"must be a whole number from 0 to 1000000, not {kind(burst)}")
        ok = False
    return {"rate": rate, "burst": burst, "zone": zone} if ok and not unknown else None


def check_route(site, index, label, route, upstream_names, errors):
    field = label
    if not isinstance(route, dict):
        errors.add(site, field, f"must be a mapping with 'path' and 'upstream', not {kind(route)}")
        return None
    unknown = set(map(str, route)) - set(ROUTE_DEFAULTS) - {"path", "upstream", "state"}
    if unknown:
        errors.add(site, field, f"unknown field(s) {', '.join(sorted(unknown))}")
    result = {**ROUTE_DEFAULTS, **route}
    result.pop("state", None)
    path = result.get("path")
    if not is_text(path) or not PATH_RE.match(path):
        errors.add(
            site, f"{field}.path", f"{kind(path)} must start with '/' and hold no spaces, quotes, braces, ';', '#', '*', '?', '%' or '\\'"
        )
    upstream = result.get("upstream")
    if not is_text(upstream) or upstream not in upstream_names:
        errors.add(
            site,
            f"{field}.upstream",
            f"{kind(upstream)} is not an upstream of this site (known: {', '.join(sorted(map(str, upstream_names))) or 'none'})",
        )
    result["upstream_id"] = f"{site}_{upstream}".replace("-", "_")
    if not isinstance(result["websocket"], bool):
        errors.add(site, f"{field}.websocket", f"must be true or false, not {kind(result['websocket'])}")
    for timeout in ("read_timeout", "send_timeout"):
        seconds = parse_duration(result[timeout])
        if seconds is None:
            errors.add(
                site,
                f"{field}.{timeout}",
                f"{kind(result[timeout])} is not a duration such as 60s, 5m or 24h (whole seconds, from 1s to a year)",
            )
        result[f"{timeout}_seconds"] = seconds
    if result["max_body_size"] is not None:
        size = parse_size(result["max_body_size"])
        if size is None:
            errors.add(site, f"{field}.max_body_size", f"{kind(result['max_body_size'])} is not a size such as 512k, 50m or 1g")
        result["max_body_size"] = size
    if not isinstance(result["allow"], list):
        errors.add(site, f"{field}.allow", f"must be a list of addresses or networks, not {kind(result['allow'])}")
        result["allow"] = []
    for net in result["allow"]:
        if not is_network(net):
            errors.add(site, f"{field}.allow", f"{kind(net)} is not an IP address or network")
    if result["rate_limit"] is not None:
        zone = f"{site}_route{index}".replace("-", "_")
        result["rate_limit"] = check_rate_limit(site, f"{field}.rate_limit", result["rate_limit"], zone, errors)
    return result


def check_tls(site, tls, tls_dir, errors):
    if not isinstance(tls, dict):
        errors.add(site, "tls", f"must be a mapping with 'mode', not {kind(tls)}")
        tls = {}
    mode = tls.get("mode")
    if mode not in TLS_MODES:
        errors.add(site, "tls.mode", f"{kind(mode)} is not one of {', '.join(TLS_MODES)}")
    unknown = set(map(str, tls)) - {"mode", "certificate", "certificate_key", "challenge", "dns"}
    if unknown:
        errors.add(site, "tls", f"unknown field(s) {', '.join(sorted(unknown))}")
    challenge, dns = check_challenge(site, mode, tls, errors)
    if mode == "files":
        for key in ("certificate", "certificate_key"):
            value = tls.get(key)
            if not is_text(value) or not FILE_PATH_RE.match(value):
                errors.add(site, f"tls.{key}", f"mode 'files' needs an absolute path on the host (no spaces or quotes), not {kind(value)}")
        return {
            "mode": mode,
            "certificate": tls.get("certificate"),
            "certificate_key": tls.get("certificate_key"),
            "challenge": challenge,
            "dns": dns,
        }
    for key in ("certificate", "certificate_key"):
        if key in tls:
            errors.add(site, f"tls.{key}", f"only mode 'files' takes the operator's own files; mode {kind(mode)} would ignore it")
    # self_signed and acme: the edge keeps the pair under its own directory.
    return {
        "mode": mode,
        "certificate": f"{tls_dir}/{site}/fullchain.pem",
        "certificate_key": f"{tls_dir}/{site}/privkey.pem",
        "challenge": challenge,
        "dns": dns,
    }


def check_challenge(site, mode, tls, errors):
    """The acme challenge (None for the other modes) and the checked dns
    block (None without dns-01). The dns block still holds the TSIG secret
    here; check_model moves it out of the model (split_dns_secrets)."""
    challenge = tls.get("challenge", "http-01" if mode == "acme" else None)
    if "challenge" in tls and mode != "acme":
        errors.add(site, "tls.challenge", f"only mode 'acme' asks a CA; mode {kind(mode)} takes no challenge")
        challenge = None
    elif mode == "acme" and challenge not in ACME_CHALLENGES:
        errors.add(site, "tls.challenge", f"{kind(challenge)} is not one of {', '.join(ACME_CHALLENGES)}")
        challenge = None
    if challenge != "dns-01":
        if "dns" in tls and not (mode == "acme" and challenge is None):
            errors.add(site, "tls.dns", "only tls.challenge dns-01 updates a DNS zone; drop the dns block or set challenge: dns-01")
        return challenge, None
    return challenge, check_dns(site, tls.get("dns"), errors)


def check_dns(site, dns, errors):
    """The RFC 2136 server and TSIG key of a dns-01 site. The secret is
    never repeated in a message (it comes from the operator's vault)."""
    field = "tls.dns"
    if not isinstance(dns, dict):
        errors.add(site, field, f"challenge dns-01 needs a mapping with {', '.join(DNS_FIELDS)}, not {kind(dns)}")
        return None
    unknown = set(map(str, dns)) - set(DNS_FIELDS)
    if unknown:
        errors.add(site, field, f"unknown field(s) {', '.join(sorted(unknown))}")
    result = {**DNS_DEFAULTS, **{key: dns[key] for key in DNS_FIELDS if key in dns}}
    server = result.get("server")
    if not is_text(server) or not is_ip(server) or "%" in server:
        # certbot's dns-rfc2136 plugin refuses a host name ("A hostname is not
        # allowed"): the address is what both it and the pre-flight send to.
        errors.add(site, f"{field}.server", f"{kind(server)} is not an IP address (certbot's dns-rfc2136 plugin takes no host name)")
    if not is_port(result["port"]):
        errors.add(site, f"{field}.port", f"{kind(result['port'])} is not a port from 1 to 65535")
    key_name = result.get("key_name")
    if not is_text(key_name) or len(key_name) > 255 or not TSIG_KEY_NAME_RE.match(key_name):
        errors.add(site, f"{field}.key_name", f"{kind(key_name)} is not a TSIG key name (a DNS name, as in the server's key statement)")
    algorithm = result["key_algorithm"]
    if is_text(algorithm) and algorithm.lower().rstrip(".") in TSIG_ALGORITHMS:
        result["key_algorithm"] = algorithm.lower().rstrip(".")
    else:
        errors.add(site, f"{field}.key_algorithm", f"{kind(algorithm)} is not one of {', '.join(TSIG_ALGORITHMS)}")
    secret = result.get("key_secret")
    if type(secret).__name__ == "EncryptedString":
        secret = str(secret)  # an inline !vault value, decrypted
    try:
        ok = is_text(secret) and len(secret.strip()) > 0 and len(base64.b64decode(secret.strip(), validate=True)) > 0
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        # Never the value itself: it is (or should be) a secret.
        what = "missing" if secret is None else "not a text" if not is_text(secret) else "not base64"
        errors.add(
            site,
            f"{field}.key_secret",
            f"the TSIG secret is {what}; give the key's base64 secret (as tsig-keygen prints it), from Ansible Vault",
        )
        secret = None
    else:
        secret = secret.strip()
    result["key_secret"] = secret
    # Changes when the secret does: the credentials file on the host is
    # rewritten, while the model itself never carries the secret.
    result["key_id"] = hashlib.sha256(secret.encode()).hexdigest()[:16] if secret else None
    return result


def check_headers(site, security_headers, layers, errors):
    """Security headers, then the profile's, then the site's, merged by name
    whatever its case (HTTP header names are case-insensitive): a null or empty
    value removes one."""
    merged = {}
    for field, layer in [("proxy_sites_security_headers", security_headers), *layers]:
        if not isinstance(layer, dict):
            errors.add(site, field, f"must be a mapping of header name to value, not {kind(layer)}")
            continue
        seen = {}
        for name, value in layer.items():
            key = str(name).lower()
            if key in seen:
                errors.add(site, f"{field}.{name}", f"is header '{seen[key]}' again (header names ignore case); keep one")
                continue
            seen[key] = name
            merged[key] = (field, str(name), value)
    result = []
    for key, (field, name, value) in merged.items():
        label = f"{field}.{name}"
        if not HEADER_NAME_RE.match(name):
            errors.add(site, label, "is not a valid header name")
        elif value in (None, ""):
            continue
        elif key in FRAMING_HEADERS:
            errors.add(site, label, "frames the message or the connection; the proxy sets it itself")
        elif not (is_text(value) or is_int(value)):
            errors.add(site, label, f"must be a text value, not {kind(value)}")
        elif any(char in str(value) for char in HEADER_VALUE_FORBIDDEN) or any(ord(char) < 32 or ord(char) == 127 for char in str(value)):
            errors.add(site, label, "a value may not hold double quotes, backslashes, '$', braces or control characters (line breaks)")
        else:
            result.append({"name": name, "value": str(value)})
    return result


def check_http3(name, site, http3_default, errors):
    """(requested, explicit): whether the site asks for HTTP/3, and whether the
    site (or its profile) says so itself rather than inheriting
    proxy_sites_http3. A proxy that cannot serve HTTP/3 refuses an explicit
    wish and drops an inherited one (roles/nginx/tasks/validate.yml)."""
    if "http3" not in site:
        return http3_default, False
    if not isinstance(site["http3"], bool):
        errors.add(name, "http3", f"must be true or false, not {kind(site['http3'])}")
        return False, True
    return site["http3"], True


def check_site(raw, profiles, security_headers, tls_dir, errors, name_missing=False, http3_default=False, http3_available=True):
    site, labelled, header_layers = merged_site(raw, profiles, errors)
    name = site.get("name")
    if not is_text(name) or not NAME_RE.match(name):
        if not name_missing:  # check_model reported it already
            errors.add(str(name), "name", "must be lower-case letters, digits, '-' and '_', starting with a letter or digit")
        name = str(name)
    domains = site.get("domains")
    if not isinstance(domains, list) or not domains:
        errors.add(name, "domains", f"needs a list of at least one domain (the first is the primary), not {kind(domains)}")
        domains = []
    firsts = {}
    for index, domain in enumerate(domains):
        if is_wildcard(domain):
            pass  # allowed with dns-01 only: check_wildcards
        elif not is_domain(domain):
            errors.add(name, f"domains[{index}]", f"{kind(domain)} is not a valid lower-case domain name")
        elif domain in firsts:
            errors.add(name, f"domains[{index}]", f"'{domain}' is already domains[{firsts[domain]}]")
        firsts.setdefault(domain if is_text(domain) else index, index)
    for port in ("http_port", "https_port"):
        if not is_port(site[port]):
            errors.add(name, port, f"{kind(site[port])} is not a port from 1 to 65535")
    if site["http_port"] == site["https_port"]:
        errors.add(name, "https_port", "must differ from http_port")
    body = parse_size(site["max_body_size"])
    if body is None:
        errors.add(name, "max_body_size", f"{kind(site['max_body_size'])} is not a size such as 512k, 50m or 1g (0: no limit)")
    trusted = site["trusted_proxies"]
    if not isinstance(trusted, list):
        errors.add(name, "trusted_proxies", f"must be a list of addresses or networks, not {kind(trusted)}")
        trusted = []
    for net in trusted:
        if not is_network(net):
            errors.add(name, "trusted_proxies", f"{kind(net)} is not an IP address or network")
    upstreams = site["upstreams"]
    if not isinstance(upstreams, dict):
        errors.add(name, "upstreams", f"must be a mapping of upstream name to upstream, not {kind(upstreams)}")
        upstreams = {}
    if not upstreams:
        errors.add(name, "upstreams", "needs at least one upstream")
    normal_upstreams = [check_upstream(name, key, value, errors) for key, value in sorted(upstreams.items(), key=lambda item: str(item[0]))]
    ids = {}
    for upstream in normal_upstreams:
        if upstream is None:
            continue
        if upstream["id"] in ids:
            errors.add(
                name,
                f"upstreams.{upstream['name']}",
                f"becomes the same identifier as upstreams.{ids[upstream['id']]} ('{upstream['id']}': '-' is written '_'); rename one",
            )
        ids.setdefault(upstream["id"], upstream["name"])
    if labelled is None:
        errors.add(name, "routes", f"must be a list of routes, not {kind(site['routes'])}")
        labelled = []
    if not labelled:
        errors.add(name, "routes", "needs at least one route")
    normal_routes = []
    seen = {}
    for index, (label, route) in enumerate(labelled):
        normal = check_route(name, index, label, route, set(upstreams), errors)
        if normal is None:
            continue
        path = hashable_text(normal.get("path"))
        if path in seen:
            errors.add(name, f"{label}.path", f"'{path}' is already the path of {seen[path]}")
        elif path is not None:
            seen[path] = label
        normal_routes.append(normal)
    verify_paths = check_verify_websocket_paths(name, site["verify_websocket_paths"], normal_routes, errors)
    if not isinstance(site["path_guard"], bool):
        errors.add(name, "path_guard", f"must be true or false, not {kind(site['path_guard'])}")
    denied = check_denied_paths(name, site["denied_paths"], site["exposed_paths"], normal_routes, errors)
    backend_ports = check_backend_ports(name, site["backend_ports"], errors)
    secret_params = check_secret_query_params(name, site["secret_query_params"], errors)
    http3_requested, http3_explicit = check_http3(name, site, http3_default, errors)
    known = set(SITE_DEFAULTS) | {"name", "profile", "domains", "tls", "http3"}
    unknown = set(map(str, site)) - known
    if unknown:
        errors.add(name, "site", f"unknown field(s) {', '.join(sorted(unknown))}")
    tls = check_tls(name, site.get("tls"), tls_dir, errors)
    if tls["mode"] == "acme":
        check_acme(name, site, domains, errors, tls["challenge"])
    check_wildcards(name, domains, tls, errors)
    return {
        "name": name,
        "domains": domains,
        "http_port": site["http_port"],
        "https_port": site["https_port"],
        # Served on this host: asked for, and the host's proxy can.
        "http3": http3_requested and http3_available,
        "http3_requested": http3_requested,
        "http3_explicit": http3_explicit,
        "tls": tls,
        "max_body_size": body,
        "headers": check_headers(name, security_headers, header_layers, errors),
        "trusted_proxies": list(trusted),
        "upstreams": [u for u in normal_upstreams if u],
        "routes": normal_routes,
        "verify_websocket_paths": verify_paths,
        "path_guard": site["path_guard"] is True,
        "denied_paths": denied,
        "backend_ports": backend_ports,
        "secret_query_params": secret_params,
    }


def is_path(name, field, path, errors):
    """Whether `path` is a plain absolute request path, as both renderers
    write it into a matcher unquoted; if not, says so for site `name`."""
    if is_text(path) and PATH_RE.match(path):
        return True
    errors.add(
        name, field, f"{kind(path)} must be an absolute path ('/' first) with no spaces, quotes, braces, ';', '#', '*', '?', '%' or '\\'"
    )
    return False


def check_denied_paths(name, denied, exposed, routes, errors):
    """The paths the edge refuses with 404, less those the site exposes; each
    as {path, base}: base is the path without its trailing '/', and a request
    for base itself or anything under base/ is refused (so /docs denies /docs
    and /docs/oauth2-redirect, not /docsearch). Both renderers match the
    decoded, normalised path, as they match routes."""
    if not isinstance(denied, list):
        errors.add(name, "denied_paths", f"must be a list of absolute paths, not {kind(denied)}")
        denied = []
    if not isinstance(exposed, list):
        errors.add(name, "exposed_paths", f"must be a list of paths from denied_paths, not {kind(exposed)}")
        exposed = []
    result, seen = [], {}
    for index, path in enumerate(denied):
        field = f"denied_paths[{index}]"
        if not is_path(name, field, path, errors):
            continue
        base = path.rstrip("/")
        if not base:
            errors.add(name, field, "'/' would deny every path; remove the site instead")
            continue
        if base in seen:
            errors.add(name, field, f"'{path}' denies what denied_paths[{seen[base]}] denies already")
            continue
        seen[base] = index
        # A route at or under a denied path: nginx would serve it (the longest
        # prefix wins), Caddy deny it. A path is served or denied, not both.
        for route in routes:
            route_path = route.get("path")
            if is_text(route_path) and (route_path.rstrip("/") == base or route_path.startswith(base + "/")):
                errors.add(
                    name, field, f"'{path}' would deny route '{route_path}'; a path is either routed or denied (drop one, or expose it)"
                )
                break
        result.append({"path": path, "base": base})
    known = [entry["path"] for entry in result]
    for index, path in enumerate(exposed):
        if not is_text(path) or path not in known:
            errors.add(
                name,
                f"exposed_paths[{index}]",
                f"{kind(path)} is not one of the site's denied_paths (they are: {', '.join(known) or 'none'})",
            )
    return [entry for entry in result if entry["path"] not in exposed]


def check_backend_ports(name, ports, errors):
    """The application's own ports, for the firewall to deny."""
    if not isinstance(ports, list):
        errors.add(name, "backend_ports", f"must be a list of ports, not {kind(ports)}")
        return []
    result = []
    for index, port in enumerate(ports):
        if not is_port(port):
            errors.add(name, f"backend_ports[{index}]", f"{kind(port)} is not a port from 1 to 65535")
        elif port not in result:
            result.append(port)
    return result


def check_secret_query_params(name, params, errors):
    """Names of query parameters whose values are redacted from every log:
    URL-safe characters only (filter_plugins/redaction.py writes them into
    both proxies' patterns)."""
    if not isinstance(params, list):
        errors.add(name, "secret_query_params", f"must be a list of query parameter names, not {kind(params)}")
        return []
    result = []
    for index, param in enumerate(params):
        if not is_text(param) or not SECRET_PARAM_RE.match(param):
            errors.add(
                name,
                f"secret_query_params[{index}]",
                f"{kind(param)} is not a query parameter name (letters, digits, '.', '_', '~' and '-')",
            )
        elif param not in result:
            result.append(param)
    return result


def check_verify_websocket_paths(name, paths, routes, errors):
    """Where verify.yml opens WebSockets: the site's (or its profile's) list,
    each path served by a WebSocket route (the longest matching prefix, as
    nginx and Caddy pick it); None: the path of every WebSocket route."""
    if paths is None:
        return [route["path"] for route in routes if route.get("websocket") is True and is_text(route.get("path"))]
    if not isinstance(paths, list):
        errors.add(name, "verify_websocket_paths", f"must be a list of absolute paths, not {kind(paths)}")
        return []
    for index, path in enumerate(paths):
        field = f"verify_websocket_paths[{index}]"
        if not is_path(name, field, path, errors):
            continue
        if not routes:
            continue  # no routes at all: check_site says so
        serving = [route for route in routes if is_text(route.get("path")) and path.startswith(route["path"])]
        if not serving:
            errors.add(name, field, f"'{path}' is under none of the site's routes")
            continue
        route = max(serving, key=lambda item: len(item["path"]))
        if route.get("websocket") is not True:
            # The list may come from the site's profile (aliasvault declares
            # /admin/_blazor): say how to mend it either way.
            errors.add(
                name,
                field,
                f"'{path}' goes to route '{route['path']}', which does not pass WebSocket upgrades "
                f"(give that route websocket: true, or set the site's own verify_websocket_paths)",
            )
    return [path for path in paths if is_text(path)]


def check_acme(name, site, domains, errors, challenge="http-01"):
    """What an ACME CA (HTTP-01, as certbot and Caddy use it, or DNS-01)
    cannot validate or issue. Over DNS-01 the CA never comes to port 80."""
    if challenge != "dns-01" and is_port(site["http_port"]) and site["http_port"] != 80:
        errors.add(
            name,
            "http_port",
            f"tls mode acme validates over HTTP-01, which the CA always sends to port 80; "
            f"{kind(site['http_port'])} cannot answer it (use port 80, or tls mode files or self_signed)",
        )
    if len(domains) > ACME_MAX_DOMAINS:
        errors.add(name, "domains", f"{len(domains)} names; an ACME certificate holds at most {ACME_MAX_DOMAINS} (split the site)")
    for index, domain in enumerate(domains):
        if not is_domain(domain):
            continue  # a wildcard: its base is checked by check_wildcards
        if is_ip(domain):
            errors.add(name, f"domains[{index}]", f"'{domain}' is an IP address; ACME certificates here are for DNS names only")
        elif "." not in domain or domain.rsplit(".", 1)[1].isdigit():
            errors.add(name, f"domains[{index}]", f"'{domain}' is not a fully qualified name an ACME CA can validate")


def check_wildcards(name, domains, tls, errors):
    """A wildcard domain only where its certificate can be had: a CA issues
    '*.example.com' over DNS-01 only."""
    dns01 = tls["mode"] == "acme" and tls["challenge"] == "dns-01"
    for index, domain in enumerate(domains):
        if is_wildcard(domain) and not dns01:
            errors.add(
                name,
                f"domains[{index}]",
                f"'{domain}' is a wildcard, which needs tls mode acme with challenge dns-01 (a CA issues wildcard names over DNS-01 only)",
            )


def split_dns_secrets(normal):
    """Moves each dns-01 site's TSIG secret out of the normalised model (which
    is passed to modules, printed with -v and set as a fact): site name to
    secret."""
    secrets = {}
    for site in normal:
        dns = site["tls"].get("dns") if isinstance(site.get("tls"), dict) else None
        if isinstance(dns, dict) and "key_secret" in dns:
            secret = dns.pop("key_secret")
            if secret:
                secrets[site["name"]] = secret
    return secrets


def check_across_sites(normal, errors):
    """What no single site shows: names, identifiers, domains and ports that
    two sites (or two parts of one) would both claim in the rendered configuration."""
    names, idents, upstream_ids, zones, owners, ports, http3_ports = {}, {}, {}, {}, {}, {}, {}
    for site in normal:
        name = site["name"]
        if name in names:
            errors.add(name, "name", "another site has the same name")
        else:
            # nginx identifiers (upstreams, rate-limit zones) are written with
            # '_' for '-': a-b and a_b would define the same upstream twice.
            ident = name.replace("-", "_")
            if ident in idents and idents[ident] != name:
                errors.add(
                    name, "name", f"becomes the same identifier as site '{idents[ident]}' ('{ident}': '-' is written '_'); rename one"
                )
            idents.setdefault(ident, name)
        names.setdefault(name, True)
        for upstream in site["upstreams"]:
            owner = upstream_ids.get(upstream["id"])
            if owner and owner[0] != name and idents.get(name.replace("-", "_")) == name:
                errors.add(
                    name,
                    f"upstreams.{upstream['name']}",
                    f"its identifier '{upstream['id']}' is already that of site '{owner[0]}' upstreams.{owner[1]}; rename one",
                )
            upstream_ids.setdefault(upstream["id"], (name, upstream["name"]))
        for route in site["routes"]:
            if route.get("rate_limit"):
                zone = route["rate_limit"]["zone"]
                if zone in zones and zones[zone] != name and idents.get(name.replace("-", "_")) == name:
                    errors.add(name, "routes", f"rate-limit zone '{zone}' is already site '{zones[zone]}''s; rename one")
                zones.setdefault(zone, name)
        for domain in site["domains"]:
            if not is_text(domain):
                continue
            if domain in owners and owners[domain] != name:
                errors.add(name, "domains", f"'{domain}' is already a domain of site '{owners[domain]}'")
            owners.setdefault(domain, name)
        for field, scheme in (("http_port", "HTTP"), ("https_port", "HTTPS")):
            port = site[field]
            if not is_port(port):
                continue
            other = ports.get(port)
            if other and other[1] != scheme:
                errors.add(
                    name, field, f"port {port} is already site '{other[0]}''s {other[2]}; one port cannot serve plain HTTP and HTTPS"
                )
            ports.setdefault(port, (name, scheme, field))
        # HTTP/3 is a property of the HTTPS port (the UDP listener, Caddy's
        # server, the firewall's rule), not of a name on it.
        port = site["https_port"]
        if is_port(port):
            other = http3_ports.get(port)
            if other and other[1] != site["http3_requested"]:
                errors.add(
                    name,
                    "http3",
                    f"is {str(site['http3_requested']).lower()}, but site '{other[0]}' on the same https_port {port} has http3 "
                    f"{str(other[1]).lower()}; HTTP/3 is on or off for a whole HTTPS port (give both sites the same http3, "
                    "or different https_ports)",
                )
            http3_ports.setdefault(port, (name, site["http3_requested"]))


def merge_profiles(profiles, extra_profiles, errors):
    """The built-in profiles with the operator's extra ones over them: an extra
    profile of a built-in's name replaces it whole (nothing of the built-in is
    kept), so a profile always reads as written."""
    for variable, value in (("proxy_sites_profiles", profiles), ("proxy_sites_extra_profiles", extra_profiles)):
        if not isinstance(value or {}, dict):
            errors.add("*", variable, f"must be a mapping of profile name to site fields, not {kind(value)}")
    merged = dict(profiles) if isinstance(profiles, dict) else {}
    if isinstance(extra_profiles, dict):
        merged.update(extra_profiles)
    return merged


def check_profiles(profiles, security_headers, tls_dir, errors):
    """Every profile on its own, used by a site or not, so that a mistake in
    one names the profile and the field before any host changes: its fields
    are checked as a site's would be (a profile may leave upstreams and routes
    to its sites)."""
    for profile_name, profile in profiles.items():
        label = str(profile_name)
        if not is_text(profile_name) or not NAME_RE.match(profile_name):
            errors.add_profile(label, "name", "profile names are lower-case letters, digits, '-' and '_'")
            continue
        if not isinstance(profile, dict):
            errors.add_profile(label, "profile", f"must be a mapping of site fields, not {kind(profile)}")
            continue
        own = sorted(str(key) for key in profile if key in SITE_ONLY_FIELDS)
        if own:
            errors.add_profile(label, ", ".join(own), "belongs to each site, not to a profile")
        # The profile as the only source of a stand-in site's fields: the
        # messages it yields are the profile's.
        local = SiteErrors()
        stand_in = {"name": "profile-check", "domains": ["profile-check.example.com"], "profile": profile_name}
        if "tls" not in profile:
            stand_in["tls"] = {"mode": "self_signed"}
        check_site(
            stand_in, {profile_name: {k: v for k, v in profile.items() if k not in SITE_ONLY_FIELDS}}, security_headers, tls_dir, local
        )
        for entry in local.entries:
            field, problem = entry["field"], entry["problem"]
            # What sites may add, and what every site reports already.
            if problem in ("needs at least one upstream", "needs at least one route") or field.startswith("proxy_sites_security_headers"):
                continue
            errors.add_profile(label, re.sub(r"^profile\.", "", field), problem)


def read_boolean(variable, value, errors):
    """A top-level variable as Ansible reads a boolean (a string from extra vars too)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in BOOLEAN_TRUE | BOOLEAN_FALSE:
        return value.strip().lower() in BOOLEAN_TRUE
    errors.add("*", variable, f"must be true or false (as a string also yes, no, on, off, 1 or 0), not {kind(value)}")
    return False


def check_model(sites, profiles, security_headers, tls_dir, extra_profiles=None, http3=False, http3_available=True):
    """The one validation pass: returns (normalised sites, SiteErrors, the
    dns-01 sites' TSIG secrets by site name, kept out of the sites).
    http3: proxy_sites_http3; http3_available: proxy_sites_http3_available,
    whether the host's proxy can serve HTTP/3 at all."""
    errors = SiteErrors()
    http3_default = read_boolean("proxy_sites_http3", http3, errors)
    available = read_boolean("proxy_sites_http3_available", http3_available, errors)
    if not isinstance(sites, list):
        errors.add("*", "proxy_sites", f"must be a list of sites, not {kind(sites)}")
        return [], errors, {}
    if not is_text(tls_dir) or not FILE_PATH_RE.match(tls_dir):
        # Relative, nginx would look under its prefix and the roles write under their working directory.
        errors.add("*", "proxy_sites_tls_dir", f"{kind(tls_dir)} is not an absolute path on the host (no spaces or quotes)")
    profiles = merge_profiles(profiles or {}, extra_profiles or {}, errors)
    check_profiles(profiles, security_headers or {}, tls_dir, errors)
    normal = []
    for index, site in enumerate(sites):
        if not isinstance(site, dict):
            errors.add(f"#{index}", "site", f"must be a mapping with name, domains, tls, upstreams and routes, not {kind(site)}")
            continue
        if not is_text(site.get("name")) or not site.get("name"):
            # No usable name: the site's messages name its place in the list
            # ('#2'), and its name is reported as missing.
            errors.add(
                f"#{index}", "name", f"every site needs a name (lower-case letters, digits, '-' and '_'), not {kind(site.get('name'))}"
            )
            site = {**site, "name": f"#{index}"}
            normal.append(check_site(site, profiles or {}, security_headers or {}, tls_dir, errors, True, http3_default, available))
            continue
        normal.append(check_site(site, profiles or {}, security_headers or {}, tls_dir, errors, False, http3_default, available))
    check_across_sites(normal, errors)
    return normal, errors, split_dns_secrets(normal)


def check_sites(sites, profiles, security_headers, tls_dir, extra_profiles=None, http3=False, http3_available=True):
    """Returns (normalised sites, error messages)."""
    normal, errors, _secrets = check_model(sites, profiles, security_headers, tls_dir, extra_profiles, http3, http3_available)
    return normal, errors.messages


def proxy_sites_backend_ports(normal):
    """The ports the firewall denies for the sites' applications, as
    'PORT/tcp': every site's backend_ports, less the ports a site of the host
    serves (the proxy holds those; no backend can listen there)."""
    served = {site[field] for site in normal for field in ("http_port", "https_port")}
    ports = {port for site in normal for port in site.get("backend_ports", []) if port not in served}
    return [f"{port}/tcp" for port in sorted(ports)]


def proxy_sites_http3_ports(normal, available=True):
    """The HTTPS ports that serve HTTP/3 on this host, sorted: those of the
    sites whose http3 the model found served (asked for, all sites of a port
    alike, and proxy_sites_http3_available), none when `available` is false.
    Each proxy role calls it once with its own ability (nginx on Debian 12
    has none, also when a play does not wire proxy_sites_http3_available);
    its configuration and its served ports both read the result."""
    if not available:
        return []
    return sorted({site["https_port"] for site in normal if site.get("http3")})


def proxy_sites_served_ports(normal, http3_ports=None):
    """The ports the sites listen on, as "80/tcp" strings (TCP, sorted), then
    "443/udp" for each port of `http3_ports` (QUIC); by default, every port
    whose sites serve HTTP/3 (proxy_sites_http3_ports)."""
    tcp = sorted({site[field] for site in normal for field in ("http_port", "https_port")})
    udp = proxy_sites_http3_ports(normal) if http3_ports is None else sorted(set(http3_ports))
    return [f"{port}/tcp" for port in tcp] + [f"{port}/udp" for port in udp]


def proxy_sites_secret_query_params(normal, fallback=("token",)):
    """Every site's secret query parameters, once each: one redaction pattern
    serves every log of the host. With no site, the fallback (the pattern
    needs a name)."""
    names = sorted({param for site in normal for param in site.get("secret_query_params", [])})
    return names or list(fallback)


def proxy_sites_model(
    sites, profiles=None, security_headers=None, tls_dir="/etc/ssl/pipelit-edge", extra_profiles=None, http3=False, http3_available=True
):
    """The model checked and normalised in one pass, as the role reads it:
    {errors: [{site, profile, field, problem, message}, ...] (empty when
    valid; a site's mistake has profile null, a profile's site null),
    sites: the normalised sites (see proxy_sites_normalize), dns_secrets:
    {site name: TSIG secret} of the dns-01 sites, which the sites do not
    carry (the role keeps it in a fact of its own, set with no_log)}."""
    normal, errors, secrets = check_model(sites, profiles, security_headers, tls_dir, extra_profiles, http3, http3_available)
    return {"errors": errors.entries, "sites": normal, "dns_secrets": secrets}


def proxy_sites_errors(
    sites, profiles=None, security_headers=None, tls_dir="/etc/ssl/pipelit-edge", extra_profiles=None, http3=False, http3_available=True
):
    """Every mistake in the model, one message each (empty when valid)."""
    return [
        error["message"]
        for error in proxy_sites_model(sites, profiles, security_headers, tls_dir, extra_profiles, http3, http3_available)["errors"]
    ]


def proxy_sites_normalize(
    sites, profiles=None, security_headers=None, tls_dir="/etc/ssl/pipelit-edge", extra_profiles=None, http3=False, http3_available=True
):
    """The model with profiles applied, defaults filled, sizes in bytes and timeouts in seconds."""
    return proxy_sites_model(sites, profiles, security_headers, tls_dir, extra_profiles, http3, http3_available)["sites"]


class FilterModule:
    def filters(self):
        return {
            "proxy_sites_model": proxy_sites_model,
            "proxy_sites_errors": proxy_sites_errors,
            "proxy_sites_normalize": proxy_sites_normalize,
            "proxy_sites_backend_ports": proxy_sites_backend_ports,
            "proxy_sites_http3_ports": proxy_sites_http3_ports,
            "proxy_sites_served_ports": proxy_sites_served_ports,
            "proxy_sites_secret_query_params": proxy_sites_secret_query_params,
        }
