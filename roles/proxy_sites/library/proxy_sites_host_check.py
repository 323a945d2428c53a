#!/usr/bin/python
"""What only the host can tell of the site model, checked on the host before any role changes it."""

from __future__ import annotations

DOCUMENTATION = r"""
module: proxy_sites_host_check
short_description: Check on the host what the site model cannot know, before any change.
description:
  - Runs on the edge host and changes nothing (check mode runs it the same). The proxy_sites role calls it after the
    model is valid and before the firewall and proxy roles run, so that what nginx (C(nginx -t)) or Caddy would only
    find after the firewall and the packages changed is refused first, in the model's words (site, field, value).
  - For each site in tls mode C(files) - C(tls.certificate) and C(tls.certificate_key) exist, are regular files
    the module can read (links followed), the certificate file holds a PEM certificate, the key file a private key
    without a passphrase, and the key is the certificate's (OpenSSL's own check, as nginx and Caddy make it).
  - For each upstream with a C(ca_file) - it exists, can be read and holds a PEM certificate.
  - For each upstream server given by host name (not an IP address) - the name resolves on the host (the system's
    resolver, as nginx's at load); the lookups run at once and are given up after I(resolve_timeout) seconds.
  - I(acme_ca_bundle), when given - it exists, can be read and holds a PEM certificate.
  - Standard library only - Python's C(ssl) module (the host's OpenSSL library, which python3 needs anyway), not the
    C(openssl) command, which minimal Debian hosts lack (priority optional), nor python3-cryptography.
  - Run it as root (become) - a non-root user cannot read a key that only root may read, and is told so.
  - Fails listing every problem, one per line, ending C(Nothing was changed.).
options:
  sites:
    description: The normalised sites (C(proxy_sites_normalized)) - name, tls (mode, certificate, certificate_key),
      upstreams (name, servers, ca_file).
    type: list
    elements: dict
    required: true
  acme_ca_bundle:
    description: C(proxy_sites_acme_ca_bundle), when a site uses tls mode C(acme); empty checks nothing.
    type: str
    default: ""
  resolve_timeout:
    description: Seconds to wait for all the name lookups together; a lookup still unanswered then is a problem.
    type: int
    default: 30
"""

EXAMPLES = r"""
- name: Check on the host what the model cannot know
  proxy_sites_host_check:
    sites: "{{ proxy_sites_normalized }}"
    acme_ca_bundle: "{{ proxy_sites_acme_ca_bundle }}"
"""

RETURN = r"""
problems:
  description: Every problem found; empty when none (the module fails when there is one).
  returned: always
  type: list
  elements: dict
  contains:
    site:
      description: The site's name (null for I(acme_ca_bundle)).
      type: str
    field:
      description: The field, as the model's messages name it (C(tls.certificate), C(upstreams.app.servers[0]), ...).
      type: str
    value:
      description: The field's value.
      type: str
    message:
      description: "The whole message, as C(site 'NAME': FIELD: 'VALUE' PROBLEM)."
      type: str
  sample:
    - site: pipelit
      field: tls.certificate
      value: /etc/ssl/pipelit/fullchain.pem
      message: "site 'pipelit': tls.certificate: '/etc/ssl/pipelit/fullchain.pem' does not exist on the host"
checked:
  description: How many files and host names were checked.
  returned: always
  type: dict
  sample: {files: 2, names: 1}
"""

import ipaddress
import os
import pwd
import re
import socket
import ssl
import stat
import threading
import time

from ansible.module_utils.basic import AnsibleModule

# What OpenSSL says when the key is not the certificate's: 3.x's
# SSL_CTX_use_PrivateKey drops the certificate on a mismatch, so Python's
# check after it finds no certificate; older versions say it plainly.
MISMATCH_REASONS = ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED")
SERVER_RE = re.compile(r"^(\[[^\]]*\]|[^:\s]+):(\d+)$")


def user_name():
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def file_problem(path):
    """Why PATH cannot be read as a file on this host, or None."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"is a link to nothing ('{os.readlink(path)}' does not exist on the host)"
        return "does not exist on the host"
    except PermissionError:
        return f"cannot be reached by user '{user_name()}' (run the play with become)"
    if not stat.S_ISREG(status.st_mode):
        return "is not a regular file on the host"
    if not os.access(path, os.R_OK):
        return f"cannot be read by user '{user_name()}' (run the play with become)"
    return None


def context():
    """A server context that checks only parsing and matching: any key size
    or signature algorithm (the proxies' own policy is not this check's)."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.set_ciphers("DEFAULT:@SECLEVEL=0")
    return tls


def certificate_problem(path):
    """Why PATH is not a readable PEM certificate (or bundle), or None."""
    problem = file_problem(path)
    if problem:
        return problem
    try:
        context().load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError, ValueError):
        return "holds no PEM certificate"
    return None


def openssl_words(error):
    """'[SSL: X] words (_ssl.c:123)' -> 'words'."""
    text = str(error.args[1] if len(error.args) > 1 else error)
    return re.sub(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$", "", text) or text


def key_problem(certificate, key):
    """Why KEY is not the private key of CERTIFICATE (a valid certificate), or None."""
    problem = file_problem(key)
    if problem:
        return problem
    asked = []

    def passphrase():
        asked.append(True)
        return b""

    try:
        context().load_cert_chain(certificate, key, password=passphrase)
    except ssl.SSLError as error:
        if asked:
            return "is encrypted: nginx and Caddy need the key without a passphrase"
        if error.reason in MISMATCH_REASONS:
            return f"is not the key of the certificate '{certificate}' (their public keys differ)"
        if error.reason is None and "PEM" in str(error):
            return "holds no PEM private key"
        return f"cannot be used with the certificate '{certificate}' (OpenSSL: {openssl_words(error)})"
    if asked:
        return "is encrypted: nginx and Caddy need the key without a passphrase"
    return None


def server_host(server):
    """The host name of a 'name:port' server; None for an IP address (or anything else)."""
    match = SERVER_RE.match(server) if isinstance(server, str) else None
    if not match or match.group(1).startswith("["):
        return None
    host = match.group(1)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return None


def resolve_all(names, timeout):
    """{name: None if it resolves, else why not}: every lookup at once, each
    in a daemon thread, so a resolver that never answers costs TIMEOUT
    seconds in all and does not hold the module's exit."""
    answers = {}

    def lookup(name):
        try:
            socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            answers[name] = error.strerror or str(error)
        except (OSError, UnicodeError) as error:
            answers[name] = str(error)
        else:
            answers[name] = None

    threads = [threading.Thread(target=lookup, args=(name,), daemon=True) for name in names]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return {name: answers.get(name, f"no answer within {timeout} s") for name in names}


class Problems:
    def __init__(self):
        self.items = []

    def add(self, site, field, value, problem):
        prefix = f"site '{site}': " if site is not None else ""
        self.items.append({"site": site, "field": field, "value": value, "message": f"{prefix}{field}: '{value}' {problem}"})


def check(sites, acme_ca_bundle="", resolve_timeout=30):
    """(problems, counts) for the normalised SITES on this host."""
    problems = Problems()
    files = 0
    for site in sites:
        name = site.get("name")
        tls = site.get("tls") or {}
        if tls.get("mode") == "files":
            certificate, key = tls.get("certificate"), tls.get("certificate_key")
            files += 2
            problem = certificate_problem(certificate)
            if problem:
                problems.add(name, "tls.certificate", certificate, problem)
                # The key cannot be matched; whether it is there still can.
                problem = file_problem(key)
            else:
                problem = key_problem(certificate, key)
            if problem:
                problems.add(name, "tls.certificate_key", key, problem)
        for upstream in site.get("upstreams") or []:
            if upstream.get("ca_file"):
                files += 1
                problem = certificate_problem(upstream["ca_file"])
                if problem:
                    problems.add(name, f"upstreams.{upstream.get('name')}.ca_file", upstream["ca_file"], problem)
    if acme_ca_bundle:
        files += 1
        problem = certificate_problem(acme_ca_bundle)
        if problem:
            problems.add(None, "proxy_sites_acme_ca_bundle", acme_ca_bundle, problem)
    # Each name once, however many servers name it.
    servers = [
        (site.get("name"), f"upstreams.{upstream.get('name')}.servers[{index}]", server, server_host(server))
        for site in sites
        for upstream in site.get("upstreams") or []
        for index, server in enumerate(upstream.get("servers") or [])
    ]
    names = sorted({host for *_, host in servers if host})
    answers = resolve_all(names, resolve_timeout) if names else {}
    for site, field, server, host in servers:
        if host and answers[host] is not None:
            problems.add(site, field, server, f"names {host}, which does not resolve on the host ({answers[host]})")
    # In the sites' order (each site's files before its names), the CA bundle last.
    order = {site.get("name"): index for index, site in enumerate(sites)}
    items = sorted(problems.items, key=lambda item: order.get(item["site"], len(order)))
    return items, {"files": files, "names": len(names)}


def main():
    module = AnsibleModule(
        argument_spec={
            "sites": {"type": "list", "elements": "dict", "required": True},
            "acme_ca_bundle": {"type": "str", "default": ""},
            "resolve_timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    problems, checked = check(module.params["sites"], module.params["acme_ca_bundle"], module.params["resolve_timeout"])
    if problems:
        module.fail_json(
            msg="proxy_sites cannot be served by this host:\n- "
            + "\n- ".join(item["message"] for item in problems)
            + "\nNothing was changed.",
            problems=problems,
            checked=checked,
        )
    module.exit_json(changed=False, problems=[], checked=checked)


if __name__ == "__main__":
    main()
