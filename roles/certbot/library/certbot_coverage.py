#!/usr/bin/python
"""Which acme sites certbot must ask the CA for: the certificate-coverage rule, on the edge host."""

from __future__ import annotations

DOCUMENTATION = r"""
module: certbot_coverage
short_description: Tell which sites' certbot certificates are missing or no longer match the site.
description:
  - Runs on the edge host and changes nothing (check mode runs it the same).
  - For each site, reads certbot's certificate (C(CONFIG_DIR/live/PREFIX+NAME/cert.pem), with the C(openssl) command)
    and renewal file, and applies the certificate-coverage rule of the proxy_sites role's
    C(module_utils/pipelit_edge_certbot.py), which the acme_preflight role's C(acme_preflight_state) applies too.
  - A site needs a request when it has no certificate, or its certificate covers other DNS names than the site's
    domains, has the other key type, or its renewal file names another ACME server (or none), or another
    authenticator than the site's challenge needs (webroot for http-01, dns-rfc2136 for dns-01).
options:
  sites:
    description: The acme sites, each with C(name), C(domains) and C(tls.challenge) (http-01 when absent).
    type: list
    elements: dict
    required: true
  directory_url:
    description: The ACME directory the certificates must come from (certbot's renewal files record it).
    type: str
    required: true
  key_type:
    description: The key type the certificates must have.
    type: str
    choices: [ecdsa, rsa]
    default: ecdsa
  cert_name_prefix:
    description: Prefix of certbot's certificate names (PREFIX + site name).
    type: str
    required: true
  config_dir:
    description: certbot's configuration directory.
    type: path
    default: /etc/letsencrypt
"""

RETURN = r"""
requests:
  description: The names of the sites whose certificate certbot must ask the CA for, in the order given.
  type: list
  elements: str
  returned: always
reasons:
  description: Site name to why its certificate must be requested (only the sites of C(requests)).
  type: dict
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pipelit_edge_certbot import certbot_request_reason


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sites=dict(type="list", elements="dict", required=True),
            directory_url=dict(type="str", required=True),
            key_type=dict(type="str", choices=["ecdsa", "rsa"], default="ecdsa"),
            cert_name_prefix=dict(type="str", required=True),
            config_dir=dict(type="path", default="/etc/letsencrypt"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    reasons = {}
    for site in p["sites"]:
        reason = certbot_request_reason(
            module,
            p["config_dir"],
            p["cert_name_prefix"] + site["name"],
            site["domains"],
            p["key_type"],
            p["directory_url"],
            challenge=(site.get("tls") or {}).get("challenge") or "http-01",
        )
        if reason:
            reasons[site["name"]] = reason
    module.exit_json(changed=False, requests=[site["name"] for site in p["sites"] if site["name"] in reasons], reasons=reasons)


if __name__ == "__main__":
    main()
