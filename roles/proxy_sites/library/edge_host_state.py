#!/usr/bin/python
"""What an edge role compares with what it wants, read from the host in one round trip."""

from __future__ import annotations

DOCUMENTATION = r"""
module: edge_host_state
short_description: Read the state of a role's packages, managed files and units in one call.
description:
  - Runs on the edge host and changes nothing (check mode runs it the same).
  - One call instead of an C(apt) run, a C(stat) per managed file and a C(systemctl) per unit, so a run that changes
    nothing costs one round trip per role. The roles skip a module call only when this read proves that call would
    change nothing (a file already of the type, mode, owner, group and checksum the task would leave); otherwise the
    module runs and decides.
  - Lives in the proxy_sites role, which nginx, caddy, certbot and certificate_alerts depend on, so they share it.
  - Also reads small files whole (certificates, renewal files) and lists the paths matching patterns, for roles
    that compare more than files' checksums (certbot).
  - Standard library only (plus C(dpkg-query) and C(systemctl), which Debian has).
options:
  packages:
    description: Debian packages whose dpkg status to read.
    type: list
    elements: str
    default: []
  paths:
    description: Files, directories and links whose state to read (links are not followed).
    type: list
    elements: path
    default: []
  read:
    description: Files whose content to return (links followed; regular files of at most 1 MiB), such as certificates.
    type: list
    elements: path
    default: []
  globs:
    description: Shell patterns whose matching paths to list, such as C(/etc/letsencrypt/renewal/pipelit-edge-*.conf).
    type: list
    elements: str
    default: []
  units:
    description: systemd units whose enabled and active state to read.
    type: list
    elements: str
    default: []
"""

RETURN = r"""
packages_missing:
  description: The packages of I(packages) that dpkg does not report installed and configured (status C(ii)).
  type: list
  elements: str
files:
  description: >-
    For each path of I(paths) that exists (a dangling link too): C(TYPE|MODE|OWNER|GROUP|SHA1), as
    C(stat -c '%F|%a|%U|%G') gives the first four (C(regular file), C(directory), C(symbolic link), ...; the mode in
    octal without leading zeros), and the SHA-1 of the content for regular files, empty otherwise.
  type: dict
unresolved:
  description: The paths of I(paths) that do not resolve to anything when links are followed (missing or dangling).
  type: list
  elements: path
link_targets:
  description: For each path of I(paths) that is a symbolic link, where it points (as C(readlink) says).
  type: dict
contents:
  description: For each path of I(read) that resolves to a regular file of at most 1 MiB, its content in base64.
  type: dict
globbed:
  description: For each pattern of I(globs), the paths that match it, sorted.
  type: dict
units:
  description: For each unit of I(units), C(enabled) and C(active) (booleans).
  type: dict
"""

import base64
import glob
import grp
import hashlib
import os
import pwd
import stat
import subprocess

from ansible.module_utils.basic import AnsibleModule

# stat(1)'s %F words, for the types an edge role manages or may meet.
FILE_TYPES = (
    (stat.S_ISREG, "regular file"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISLNK, "symbolic link"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISCHR, "character special file"),
    (stat.S_ISBLK, "block special file"),
)


def name_of(lookup, number):
    try:
        return lookup(number)[0]
    except KeyError:
        return "UNKNOWN"  # as stat(1) says for an id with no name


def file_state(path):
    """TYPE|MODE|OWNER|GROUP|SHA1 of PATH itself (a link is not followed), or None if nothing is there."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    kind = next((word for test, word in FILE_TYPES if test(st.st_mode)), "unknown")
    digest = ""
    if kind == "regular file":
        sha1 = hashlib.sha1()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 16), b""):
                sha1.update(block)
        digest = sha1.hexdigest()
    mode = format(stat.S_IMODE(st.st_mode), "o")
    return "|".join((kind, mode, name_of(pwd.getpwuid, st.st_uid), name_of(grp.getgrgid, st.st_gid), digest))


# More than any certificate or configuration file a role reads.
READ_LIMIT = 1 << 20


def content_of(path):
    """The content of PATH in base64 (links followed), or None if it is not a regular file of at most READ_LIMIT."""
    try:
        if not os.path.isfile(path) or os.path.getsize(path) > READ_LIMIT:
            return None
        with open(path, "rb") as handle:
            return base64.b64encode(handle.read()).decode("ascii")
    except OSError:
        return None


def packages_missing(module, packages):
    if not packages:
        return []
    # dpkg-query exits 1 when it knows a package not at all; its output still
    # holds every package it knows.
    _rc, out, _err = module.run_command(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n"] + packages, environ_update={"LC_ALL": "C"}
    )
    installed = {fields[0] for fields in (line.split() for line in out.splitlines()) if len(fields) >= 2 and fields[1] == "ii"}
    return [package for package in packages if package not in installed]


def unit_state(unit):
    def answer(verb):
        done = subprocess.run(["systemctl", verb, unit], capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {"enabled": answer("is-enabled") == "enabled", "active": answer("is-active") == "active"}


def main():
    module = AnsibleModule(
        argument_spec={
            "packages": {"type": "list", "elements": "str", "default": []},
            "paths": {"type": "list", "elements": "path", "default": []},
            "read": {"type": "list", "elements": "path", "default": []},
            "globs": {"type": "list", "elements": "str", "default": []},
            "units": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    paths = module.params["paths"]
    files = {}
    for path in paths:
        state = file_state(path)
        if state is not None:
            files[path] = state
    contents = {}
    for path in module.params["read"]:
        content = content_of(path)
        if content is not None:
            contents[path] = content
    module.exit_json(
        changed=False,
        packages_missing=packages_missing(module, module.params["packages"]),
        files=files,
        unresolved=[path for path in paths if not os.path.exists(path)],
        link_targets={path: os.readlink(path) for path in files if files[path].startswith("symbolic link|")},
        contents=contents,
        globbed={pattern: sorted(glob.glob(pattern)) for pattern in module.params["globs"]},
        units={unit: unit_state(unit) for unit in module.params["units"]},
    )


if __name__ == "__main__":
    main()
