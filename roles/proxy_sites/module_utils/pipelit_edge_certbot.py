"""The certificate-coverage rule, once: whether certbot's certificate of a site
still covers what the site needs, or certbot must ask the CA again.

Used by two modules on the edge host: the certbot role's certbot_coverage
(which sites to request) and the acme_preflight role's acme_preflight_state
(which domains the CA is about to be asked for, checked first). This role's
module_utils/ is on Ansible's module_utils path in every play, as every role
depends on proxy_sites. Standard library only, plus the openssl command
(Debian's ca-certificates depends on it).
"""

from __future__ import annotations

import os
import re


def certbot_paths(config_dir, cert_name):
    """certbot's certificate and renewal file of a lineage."""
    return (
        os.path.join(config_dir, "live", cert_name, "cert.pem"),
        os.path.join(config_dir, "renewal", cert_name + ".conf"),
    )


# certbot's authenticator (the renewal file's `authenticator =`) for each
# challenge of the site model.
CHALLENGE_AUTHENTICATORS = {"http-01": "webroot", "dns-01": "dns-rfc2136"}


def certbot_request_reason(module, config_dir, cert_name, domains, key_type, directory_url, challenge="http-01"):
    """None when certbot's certificate `cert_name` covers the site, else why
    certbot must ask the CA for it: no certificate (or an unreadable one),
    other DNS names than the site's domains (one added or removed), the other
    key type (ecdsa: an EC key; rsa: any other), or another ACME server than
    `directory_url` in its renewal file (a renewal file naming none counts as
    another), or another authenticator in its renewal file than the site's
    `challenge` needs (a switch between http-01 and dns-01 is requested again;
    a renewal file naming none counts as webroot, as this role always wrote
    it). Wildcard names compare as written ('*.example.com' on both sides).
    `module` runs openssl (AnsibleModule.run_command)."""
    cert, renewal = certbot_paths(config_dir, cert_name)
    if not os.path.exists(cert):
        return "no certificate yet"
    rc, out, _ = module.run_command(["openssl", "x509", "-noout", "-text", "-in", cert])
    if rc != 0:
        return "its certificate cannot be read"
    covered = set(re.findall(r"DNS:([^,\s]+)", out))
    ecdsa = "id-ecPublicKey" in out
    try:
        with open(renewal, encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        text = ""
    server = re.search(r"(?m)^server\s*=\s*(\S+)", text)
    authenticator = re.search(r"(?m)^authenticator\s*=\s*(\S+)", text)
    if covered != set(domains):
        return "its certificate covers %s" % ", ".join(sorted(covered))
    if ecdsa != (key_type == "ecdsa"):
        return "its certificate has another key type"
    if not server or server.group(1) != directory_url:
        return "its certificate comes from another ACME server"
    wanted = CHALLENGE_AUTHENTICATORS.get(challenge or "http-01", "webroot")
    if (authenticator.group(1) if authenticator else "webroot") != wanted:
        return "its certificate was obtained with another challenge than %s" % (challenge or "http-01")
    return None
