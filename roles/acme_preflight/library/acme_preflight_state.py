#!/usr/bin/python
"""What the ACME pre-flight needs to know from an edge host, in one read."""

from __future__ import annotations

DOCUMENTATION = r"""
module: acme_preflight_state
short_description: Read which acme domains will be sent to the CA, the host's addresses and who holds the HTTP ports.
description:
  - Runs on the edge host and changes nothing (check mode runs it the same).
  - Returns in C(pending_dns) the same for the sites with C(tls.challenge) dns-01, each with its challenge name
    (C(_acme-challenge.) and the domain, a wildcard's base name) and the site's RFC 2136 server, port, key name and
    algorithm; those are not in C(pending) (no HTTP check, as the CA never comes to port 80).
  - Returns in C(pending) each domain whose certificate the proxy's ACME client is about to ask the CA for. With
    I(proxy=nginx), every domain of a site whose certbot certificate (C(/etc/letsencrypt/live/PREFIX+NAME/cert.pem))
    is missing or does not match the site (its domains, the key type, the ACME server of its renewal file), as the
    certbot role decides (the same rule, the proxy_sites role's C(module_utils/pipelit_edge_certbot.py)). With I(proxy=caddy), each domain with no certificate in Caddy's storage, as the caddy role
    waits for it.
  - Returns the host's own global addresses (C(ip -j address)), which of those domains' HTTP ports have a listening
    socket, whether the proxy's live configuration serves the pre-flight path, whether IPv6 is enabled, and a fresh
    random token.
  - Returns in C(older_proxy_ports) the held ports whose listener is the proxy itself (its program name) while its
    live configuration does not serve the pre-flight path (a proxy an older version of these roles configured). On
    those ports only DNS can be checked this run (the module warns, naming the domains); the run's proxy role adds
    the path.
  - Standard library only (plus the C(ip) and C(openssl) commands, which Debian installs).
options:
  sites:
    description: The acme sites, each with C(name), C(domains) and C(http_port).
    type: list
    elements: dict
    required: true
  proxy:
    description: The proxy whose ACME client obtains the certificates.
    type: str
    choices: [nginx, caddy]
    required: true
  directory_url:
    description: The ACME directory the certificates come from (certbot's renewal files record it).
    type: str
    required: true
  key_type:
    description: The key type the certificates must have (certbot re-requests a certificate of another type).
    type: str
    choices: [ecdsa, rsa]
    default: ecdsa
  certbot_cert_name_prefix:
    description: Prefix of certbot's certificate names (the certbot role's C(certbot_cert_name_prefix), wired by the playbook).
    type: str
    default: pipelit-edge-
  certbot_config_dir:
    description: certbot's configuration directory.
    type: path
    default: /etc/letsencrypt
  caddy_storage_dir:
    description: Caddy's data directory (the caddy role's C(caddy_storage_dir), wired by the playbook).
    type: path
    default: /var/lib/caddy/.local/share/caddy
  proxy_config:
    description: The proxy's live configuration file, read for I(marker).
    type: path
    required: true
  marker:
    description: Text that the proxy's configuration holds when it serves the pre-flight path.
    type: str
    required: true
"""

import glob
import ipaddress
import json
import os
import pwd
import secrets

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pipelit_edge_certbot import certbot_request_reason

# /proc/net/tcp{,6}: state 0A is LISTEN.
TCP_LISTEN = "0A"


def site_challenge(site):
    """The site's ACME challenge (http-01 when the model gives none)."""
    return (site.get("tls") or {}).get("challenge") or "http-01"


def dns_check(site, domain, reason):
    """What acme_preflight_dns needs to try a dns-01 domain: its challenge
    name (a wildcard's is its base name's) and the site's RFC 2136 server
    and key (without the secret, which the model never carries)."""
    dns = (site.get("tls") or {}).get("dns") or {}
    base = domain[2:] if domain.startswith("*.") else domain
    return {
        "site": site["name"],
        "domain": domain,
        "name": "_acme-challenge." + base,
        "reason": reason,
        "server": dns.get("server"),
        "port": int(dns.get("port") or 53),
        "key_name": dns.get("key_name"),
        "key_algorithm": dns.get("key_algorithm") or "hmac-sha256",
    }


def certbot_pending(module, site):
    """All of a site's domains when certbot will ask the CA for its certificate,
    else none: the certbot role's rule (module_utils/pipelit_edge_certbot.py
    of the proxy_sites role, which that role's certbot_coverage applies too)."""
    p = module.params
    reason = certbot_request_reason(
        module,
        p["certbot_config_dir"],
        p["certbot_cert_name_prefix"] + site["name"],
        site["domains"],
        p["key_type"],
        p["directory_url"],
        challenge=site_challenge(site),
    )
    return (list(site["domains"]), reason) if reason else ([], "covered")


def caddy_pending(module, site):
    """The domains with no certificate in Caddy's storage (under any issuer), as
    the caddy role's wait for certificates looks for them."""
    storage = os.path.join(module.params["caddy_storage_dir"], "certificates")
    missing = [
        d for d in site["domains"] if not glob.glob(os.path.join(glob.escape(storage), "*", glob.escape(d), glob.escape(d) + ".crt"))
    ]
    return missing, "no certificate in Caddy's storage"


def host_addresses(module):
    """Every global address of the host's interfaces."""
    rc, out, _ = module.run_command(["ip", "-j", "address", "show"])
    if rc != 0:
        return []
    found = []
    for link in json.loads(out or "[]"):
        for info in link.get("addr_info", []):
            try:
                address = ipaddress.ip_address(info.get("local", ""))
            except ValueError:
                continue
            if not (address.is_loopback or address.is_link_local):
                found.append(str(address))
    return found


def listening_ports():
    """TCP ports with a listening socket, IPv4 or IPv6: port to its sockets' (inode, owner's uid)."""
    ports = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as handle:
                next(handle)
                for line in handle:
                    fields = line.split()
                    if fields[3] == TCP_LISTEN:
                        port = int(fields[1].rsplit(":", 1)[1], 16)
                        ports.setdefault(port, set()).add((fields[9], int(fields[7])))
        except OSError:
            continue
    return ports


def socket_programs(sockets):
    """The names (comm) of the processes holding any of these sockets."""
    wanted = {"socket:[%s]" % inode for inode, _uid in sockets}
    names = set()
    for fd_dir in glob.glob("/proc/[0-9]*/fd"):
        try:
            if any(os.readlink(os.path.join(fd_dir, fd)) in wanted for fd in os.listdir(fd_dir)):
                with open(os.path.join(os.path.dirname(fd_dir), "comm"), encoding="utf-8") as handle:
                    names.add(handle.read().strip())
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return names


def proxy_holds(proxy, sockets):
    """Whether the proxy's own processes hold these listening sockets. Caddy's
    capability to bind low ports makes its /proc entries private where root
    lacks CAP_SYS_PTRACE (a container): when no holder can be named, sockets
    owned by the proxy's user are its own, as the caddy role's
    pipelit-edge-caddy-check decides."""
    names = socket_programs(sockets)
    if names:
        return names == {proxy}
    try:
        uid = pwd.getpwnam(proxy).pw_uid
    except KeyError:
        return False
    return all(owner == uid for _inode, owner in sockets)


def ipv6_enabled():
    """Whether a listener can bind [::] (dual stack) rather than 0.0.0.0."""
    try:
        with open("/proc/sys/net/ipv6/conf/all/disable_ipv6", encoding="ascii") as handle:
            return handle.read().strip() == "0"
    except OSError:
        return False


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sites=dict(type="list", elements="dict", required=True),
            proxy=dict(type="str", choices=["nginx", "caddy"], required=True),
            directory_url=dict(type="str", required=True),
            key_type=dict(type="str", choices=["ecdsa", "rsa"], default="ecdsa"),
            certbot_cert_name_prefix=dict(type="str", default="pipelit-edge-"),
            certbot_config_dir=dict(type="path", default="/etc/letsencrypt"),
            caddy_storage_dir=dict(type="path", default="/var/lib/caddy/.local/share/caddy"),
            proxy_config=dict(type="path", required=True),
            marker=dict(type="str", required=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    pending, pending_dns = [], []
    for site in p["sites"]:
        domains, reason = (certbot_pending if p["proxy"] == "nginx" else caddy_pending)(module, site)
        if site_challenge(site) == "dns-01":
            # Checked on this host against the zone's server (acme_preflight_dns), not over HTTP.
            pending_dns += [dns_check(site, d, reason) for d in domains]
            continue
        pending += [{"site": site["name"], "domain": d, "port": int(site.get("http_port", 80)), "reason": reason} for d in domains]
    listening = listening_ports()
    held = set(listening) & {c["port"] for c in pending}
    try:
        with open(p["proxy_config"], encoding="utf-8") as handle:
            proxy_serves = p["marker"] in handle.read()
    except OSError:
        proxy_serves = False
    # A proxy an older version of these roles configured holds the port and
    # does not serve the pre-flight path yet (this run's proxy role adds it):
    # on those ports only the DNS part can be checked this time.
    older_proxy = sorted(port for port in held if not proxy_serves and proxy_holds(p["proxy"], listening[port]))
    if older_proxy:
        module.warn(
            "ACME pre-flight: %s on port %s does not serve %s yet (configured by an older version of these roles, "
            "or by hand); for %s only DNS is checked this run (this run's proxy role adds the path)."
            % (
                p["proxy"],
                ", ".join(map(str, older_proxy)),
                p["marker"],
                ", ".join(c["domain"] for c in pending if c["port"] in older_proxy),
            )
        )
    module.exit_json(
        changed=False,
        pending=pending,
        pending_dns=pending_dns,
        addresses=host_addresses(module),
        held_ports=sorted(held),
        older_proxy_ports=older_proxy,
        proxy_serves_preflight=proxy_serves,
        ipv6=ipv6_enabled(),
        # Random per run: what port 80 answers must be this run's file.
        token=secrets.token_urlsafe(24),
    )


if __name__ == "__main__":
    main()
