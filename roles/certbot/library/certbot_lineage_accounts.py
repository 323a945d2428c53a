#!/usr/bin/python
"""Which of certbot's lineages name an ACME account that is gone, in one read."""

from __future__ import annotations

DOCUMENTATION = r"""
module: certbot_lineage_accounts
short_description: Read which certbot lineages name an ACME account that certbot can no longer load.
description:
  - Runs on the host and changes nothing (check mode runs it the same).
  - Reads every renewal file named with I(cert_name_prefix) (C(CONFIG_DIR/renewal/PREFIX*.conf)) and the
    C(account) and C(server) its C([renewalparams]) section names.
  - An account exists when certbot can load it, that is when its directory
    C(CONFIG_DIR/accounts/HOST[:PORT]/PATH/ID/) (the server URL's host, port and path) holds C(regr.json),
    C(private_key.json) and C(meta.json). certbot's fallback from Let's Encrypt's v02 directories to the v01
    ones it used before is followed too.
  - Returns the lineages whose account does not exist, and the accounts that exist for each of their servers and
    for I(servers), so that such a lineage can be pointed at one, or one registered where none is left.
  - Reads no key, only which account files are there.
options:
  cert_name_prefix:
    description: Prefix of the lineage names to read (the certbot role's C(certbot_cert_name_prefix)).
    type: str
    required: true
  servers:
    description: ACME directory URLs whose accounts are listed in C(accounts) even when no lineage names them.
    type: list
    elements: str
    default: []
  config_dir:
    description: certbot's configuration directory.
    type: path
    default: /etc/letsencrypt
"""

RETURN = r"""
lineages:
  description: Every lineage named with the prefix, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The lineage's name (its certificate's name).
      type: str
    renewal_file:
      description: Path of its renewal file.
      type: str
    server:
      description: The ACME directory URL its renewal file names (empty when none).
      type: str
    account:
      description: The account id its renewal file names (empty when none).
      type: str
    account_exists:
      description: Whether certbot can load that account for that server.
      type: bool
missing:
  description: The lineages (as in C(lineages)) whose account does not exist.
  returned: always
  type: list
  elements: dict
accounts:
  description: Each server URL of the lineages and of I(servers), to the ids of the accounts certbot can load for it, sorted.
  returned: always
  type: dict
"""

import glob
import os
import re
from urllib.parse import urlparse

from ansible.module_utils.basic import AnsibleModule

# The files certbot reads to load an account (certbot/_internal/account.py).
ACCOUNT_FILES = ("regr.json", "private_key.json", "meta.json")

# certbot loads an account of Let's Encrypt's v02 directories from the v01
# directory's storage when its own has none (constants.LE_REUSE_SERVERS).
LE_REUSE_SERVERS = {
    "acme-v02.api.letsencrypt.org/directory": "acme-v01.api.letsencrypt.org/directory",
    "acme-staging-v02.api.letsencrypt.org/directory": "acme-staging.api.letsencrypt.org/directory",
}


def renewal_params(text):
    """The options of a renewal file's [renewalparams] section (configobj's
    format), without those of its subsections ([[webroot_map]])."""
    params = {}
    in_params = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            depth = len(line) - len(line.lstrip("["))
            in_params = depth == 1 and line.strip("[] \t").strip("'\"") == "renewalparams"
            continue
        if in_params and "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            else:
                value = re.sub(r"\s+#.*$", "", value)
            params[key.strip("'\"")] = value
    return params


def server_path(url):
    """certbot's storage path of an ACME server: its URL's host[:port] and path."""
    parsed = urlparse(url)
    return os.path.normpath(parsed.netloc + parsed.path)


def accounts_dir(config_dir, path):
    return os.path.join(config_dir, "accounts", path)


def loadable(account_dir):
    """Whether certbot can load the account of this directory (a link to one counts)."""
    return all(os.path.isfile(os.path.join(account_dir, name)) for name in ACCOUNT_FILES)


def account_exists(config_dir, url, account):
    """Whether certbot finds this account for this server, as `certbot renew` loads it."""
    if not account or not url:
        return False
    path = server_path(url)
    for candidate in (path, LE_REUSE_SERVERS.get(path)):
        if candidate and loadable(os.path.join(accounts_dir(config_dir, candidate), account)):
            return True
    return False


def accounts_for(config_dir, url):
    """The ids of the accounts certbot can load for this server, sorted."""
    path = server_path(url)
    for candidate in (path, LE_REUSE_SERVERS.get(path)):
        if not candidate:
            continue
        directory = accounts_dir(config_dir, candidate)
        try:
            names = os.listdir(directory)
        except OSError:
            names = []
        found = sorted(name for name in names if loadable(os.path.join(directory, name)))
        if found:
            return found
    return []


def read_lineages(config_dir, prefix):
    """Every lineage named with the prefix: its renewal file, server, account and whether that exists."""
    lineages = []
    pattern = os.path.join(glob.escape(os.path.join(config_dir, "renewal")), glob.escape(prefix) + "*.conf")
    for renewal_file in sorted(glob.glob(pattern)):
        try:
            with open(renewal_file, encoding="utf-8", errors="replace") as handle:
                params = renewal_params(handle.read())
        except OSError:
            params = {}
        server = params.get("server", "")
        account = params.get("account", "")
        lineages.append(
            {
                "name": os.path.basename(renewal_file)[: -len(".conf")],
                "renewal_file": renewal_file,
                "server": server,
                "account": account,
                "account_exists": account_exists(config_dir, server, account),
            }
        )
    return lineages


def read(config_dir, prefix, servers=()):
    """The module's answer: the lineages, those whose account is gone, and the accounts per server."""
    lineages = read_lineages(config_dir, prefix)
    urls = {lineage["server"] for lineage in lineages if lineage["server"]} | {url for url in servers if url}
    return {
        "lineages": lineages,
        "missing": [lineage for lineage in lineages if not lineage["account_exists"]],
        "accounts": {url: accounts_for(config_dir, url) for url in sorted(urls)},
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            cert_name_prefix=dict(type="str", required=True),
            servers=dict(type="list", elements="str", default=[]),
            config_dir=dict(type="path", default="/etc/letsencrypt"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    module.exit_json(changed=False, **read(p["config_dir"], p["cert_name_prefix"], p["servers"]))


if __name__ == "__main__":
    main()
