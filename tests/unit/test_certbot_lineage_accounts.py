"""Which certbot lineages name an ACME account that is gone (roles/certbot/
library/certbot_lineage_accounts.py, issue 19), on fixture trees in certbot's
layout: renewal/NAME.conf names `account` and `server` in [renewalparams];
the account lives in accounts/HOST[:PORT]/PATH/ID/ with the three files
certbot loads."""

from __future__ import annotations

import certbot_lineage_accounts as accounts
import pytest
from ansible_module import run_module

PEBBLE = "https://acme.test:14000/dir"
LE = "https://acme-v02.api.letsencrypt.org/directory"
PREFIX = "pipelit-edge-"


def renewal_conf(account, server, name="pipelit.test"):
    """A renewal file as certbot 2.x writes it (configobj)."""
    return (
        "# renew_before_expiry = 30 days\n"
        "version = 2.1.0\n"
        f"archive_dir = /etc/letsencrypt/archive/{PREFIX}x\n"
        "\n"
        "# Options used in the renewal process\n"
        "[renewalparams]\n"
        f"account = {account}\n"
        "authenticator = webroot\n"
        "webroot_path = /var/www/pipelit-edge-acme,\n"
        f"server = {server}\n"
        "key_type = ecdsa\n"
        "[[webroot_map]]\n"
        f"{name} = /var/www/pipelit-edge-acme\n"
    )


def add_lineage(root, name, account, server):
    (root / "renewal").mkdir(parents=True, exist_ok=True)
    path = root / "renewal" / f"{name}.conf"
    path.write_text(renewal_conf(account, server))
    return str(path)


def add_account(root, server_path, account, files=accounts.ACCOUNT_FILES):
    directory = root / "accounts" / server_path / account
    directory.mkdir(parents=True)
    for name in files:
        (directory / name).write_text("{}")
    return directory


def test_the_renewal_params_section_only():
    params = accounts.renewal_params(renewal_conf("abc123", PEBBLE))
    assert params["account"] == "abc123"
    assert params["server"] == PEBBLE
    # Neither the top level nor [[webroot_map]] counts.
    assert "version" not in params and "pipelit.test" not in params
    quoted = accounts.renewal_params("[renewalparams]\naccount = 'abc'\nserver = \"https://x/dir\"  \nkey = v # note\n")
    assert quoted == {"account": "abc", "server": "https://x/dir", "key": "v"}
    assert accounts.renewal_params("account = top\n[other]\naccount = other\n") == {}


@pytest.mark.parametrize(
    ("url", "path"),
    [
        (PEBBLE, "acme.test:14000/dir"),
        (LE, "acme-v02.api.letsencrypt.org/directory"),
        ("https://ca.example:8443/acme/v2/directory/", "ca.example:8443/acme/v2/directory"),
    ],
)
def test_a_server_url_maps_to_its_host_port_and_path(url, path):
    assert accounts.server_path(url) == path


def test_a_lineage_whose_account_exists(tmp_path):
    add_account(tmp_path, "acme.test:14000/dir", "aaa")
    add_lineage(tmp_path, "pipelit-edge-pipelit", "aaa", PEBBLE)
    found = accounts.read(str(tmp_path), PREFIX)
    assert found["missing"] == []
    assert found["lineages"] == [
        {
            "name": "pipelit-edge-pipelit",
            "renewal_file": str(tmp_path / "renewal" / "pipelit-edge-pipelit.conf"),
            "server": PEBBLE,
            "account": "aaa",
            "account_exists": True,
        }
    ]
    assert found["accounts"] == {PEBBLE: ["aaa"]}


def test_a_lost_account_with_another_left_for_the_same_server(tmp_path):
    add_account(tmp_path, "acme.test:14000/dir", "bbb")
    # An account of the same id for another server is not this server's.
    add_account(tmp_path, "acme.test:14001/dir", "aaa")
    add_lineage(tmp_path, "pipelit-edge-pipelit", "aaa", PEBBLE)
    found = accounts.read(str(tmp_path), PREFIX)
    assert [(m["name"], m["account"], m["server"]) for m in found["missing"]] == [("pipelit-edge-pipelit", "aaa", PEBBLE)]
    assert found["accounts"] == {PEBBLE: ["bbb"]}


def test_a_lost_account_with_none_left(tmp_path):
    add_lineage(tmp_path, "pipelit-edge-pipelit", "aaa", PEBBLE)
    add_lineage(tmp_path, "pipelit-edge-aliasvault", "aaa", PEBBLE)
    found = accounts.read(str(tmp_path), PREFIX, [PEBBLE, LE])
    assert [m["name"] for m in found["missing"]] == ["pipelit-edge-aliasvault", "pipelit-edge-pipelit"]
    # The servers asked for are listed too, with no account.
    assert found["accounts"] == {PEBBLE: [], LE: []}


def test_an_account_directory_certbot_cannot_load_does_not_count(tmp_path):
    add_account(tmp_path, "acme.test:14000/dir", "aaa", files=("meta.json", "regr.json"))
    add_account(tmp_path, "acme.test:14000/dir", "ccc", files=())
    add_lineage(tmp_path, "pipelit-edge-pipelit", "aaa", PEBBLE)
    found = accounts.read(str(tmp_path), PREFIX)
    assert [m["name"] for m in found["missing"]] == ["pipelit-edge-pipelit"]
    assert found["accounts"] == {PEBBLE: []}


def test_a_lineage_with_another_prefix_is_not_read(tmp_path):
    add_lineage(tmp_path, "example.org", "gone", PEBBLE)
    add_lineage(tmp_path, "other-pipelit", "gone", LE)
    assert accounts.read(str(tmp_path), PREFIX) == {"lineages": [], "missing": [], "accounts": {}}
    # Glob characters of the prefix are taken literally.
    add_lineage(tmp_path, "p[x]-a", "gone", PEBBLE)
    assert [lineage["name"] for lineage in accounts.read(str(tmp_path), "p[x]-")["lineages"]] == ["p[x]-a"]


def test_a_lineage_naming_no_account_or_no_server_is_missing(tmp_path):
    (tmp_path / "renewal").mkdir()
    (tmp_path / "renewal" / "pipelit-edge-a.conf").write_text(f"[renewalparams]\nserver = {PEBBLE}\n")
    (tmp_path / "renewal" / "pipelit-edge-b.conf").write_text("[renewalparams]\naccount = aaa\n")
    add_account(tmp_path, "acme.test:14000/dir", "aaa")
    found = accounts.read(str(tmp_path), PREFIX)
    assert [(m["name"], m["account"], m["server"]) for m in found["missing"]] == [
        ("pipelit-edge-a", "", PEBBLE),
        ("pipelit-edge-b", "aaa", ""),
    ]
    assert found["accounts"] == {PEBBLE: ["aaa"]}


def test_lets_encrypt_v02_reuses_the_v01_accounts_as_certbot_does(tmp_path):
    add_account(tmp_path, "acme-v01.api.letsencrypt.org/directory", "old")
    add_lineage(tmp_path, "pipelit-edge-pipelit", "old", LE)
    found = accounts.read(str(tmp_path), PREFIX)
    assert found["missing"] == []
    assert found["accounts"] == {LE: ["old"]}
    # Its own accounts first, when it has some.
    add_account(tmp_path, "acme-v02.api.letsencrypt.org/directory", "new")
    assert accounts.read(str(tmp_path), PREFIX)["accounts"] == {LE: ["new"]}


def test_a_linked_account_directory_counts(tmp_path):
    target = add_account(tmp_path, "elsewhere", "aaa")
    (tmp_path / "accounts" / "acme.test:14000" / "dir").mkdir(parents=True)
    (tmp_path / "accounts" / "acme.test:14000" / "dir" / "aaa").symlink_to(target)
    add_lineage(tmp_path, "pipelit-edge-pipelit", "aaa", PEBBLE)
    assert accounts.read(str(tmp_path), PREFIX)["missing"] == []


def test_the_module_reads_and_changes_nothing(tmp_path, capsys):
    add_account(tmp_path, "acme.test:14000/dir", "bbb")
    conf = add_lineage(tmp_path, "pipelit-edge-pipelit", "aaa", PEBBLE)
    before = open(conf).read()
    rc, result = run_module(
        accounts.main, capsys, cert_name_prefix=PREFIX, servers=[PEBBLE], config_dir=str(tmp_path), _ansible_check_mode=True
    )
    assert rc == 0
    assert result["changed"] is False
    assert [m["name"] for m in result["missing"]] == ["pipelit-edge-pipelit"]
    assert result["accounts"] == {PEBBLE: ["bbb"]}
    assert open(conf).read() == before
