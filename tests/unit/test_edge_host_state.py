"""The host-state reader (roles/proxy_sites/library/edge_host_state.py) on a
fixture tree: what it says of files, links, directories and contents, which
the roles compare with what a task would leave to skip the task. dpkg-query
and systemctl are stand-ins."""

from __future__ import annotations

import base64
import grp
import hashlib
import os
import pwd
import types

import edge_host_state as reader
import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible_module import FakeModule, run_module

OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "conf").write_bytes(b"server {}\n")
    os.chmod(tmp_path / "conf", 0o640)
    (tmp_path / "dir").mkdir()
    os.chmod(tmp_path / "dir", 0o755)
    os.symlink("conf", tmp_path / "link")
    os.symlink("missing", tmp_path / "dangling")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "big").write_bytes(b"x" * (reader.READ_LIMIT + 1))
    return tmp_path


def test_file_state_is_what_stat_and_sha1_say(tree):
    digest = hashlib.sha1(b"server {}\n").hexdigest()
    assert reader.file_state(str(tree / "conf")) == f"regular file|640|{OWNER}|{GROUP}|{digest}"
    assert reader.file_state(str(tree / "dir")) == f"directory|755|{OWNER}|{GROUP}|"
    # A link is not followed: its own state, and a dangling one is there too.
    assert reader.file_state(str(tree / "link")).startswith("symbolic link|777|")
    assert reader.file_state(str(tree / "dangling")).startswith("symbolic link|")
    assert reader.file_state(str(tree / "fifo")).startswith("fifo|")
    assert reader.file_state(str(tree / "nothing")) is None


def test_an_id_without_a_name_is_unknown():
    def lookup(number):
        raise KeyError(number)

    assert reader.name_of(lookup, 4242) == "UNKNOWN"
    assert reader.name_of(pwd.getpwuid, 0) == "root"


def test_contents_are_read_whole_from_regular_files_only(tree):
    assert base64.b64decode(reader.content_of(str(tree / "conf"))) == b"server {}\n"
    assert base64.b64decode(reader.content_of(str(tree / "link"))) == b"server {}\n"  # links followed
    for path in ("dir", "dangling", "big", "nothing"):
        assert reader.content_of(str(tree / path)) is None, path


def test_content_of_a_file_that_cannot_be_opened(tree, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise PermissionError("denied")

    monkeypatch.setattr(reader, "open", refuse, raising=False)
    assert reader.content_of(str(tree / "conf")) is None


DPKG = "nginx ii \ncertbot rc \nssl-cert ii \n"


def test_packages_missing_are_those_not_installed_and_configured():
    seen = []

    def dpkg(argv):
        seen.append(argv)
        return 1, DPKG, "dpkg-query: no packages found matching caddy"

    module = FakeModule({}, dpkg)
    assert reader.packages_missing(module, ["nginx", "certbot", "caddy", "ssl-cert"]) == ["certbot", "caddy"]
    assert seen[0][:2] == ["dpkg-query", "-W"] and seen[0][-4:] == ["nginx", "certbot", "caddy", "ssl-cert"]
    assert reader.packages_missing(module, []) == [] and len(seen) == 1


def test_unit_state(monkeypatch):
    answers = {"is-enabled": "enabled\n", "is-active": "inactive\n"}
    fake = types.SimpleNamespace(run=lambda argv, **kw: types.SimpleNamespace(stdout=answers[argv[1]], returncode=0))
    monkeypatch.setattr(reader, "subprocess", fake)
    assert reader.unit_state("nginx.service") == {"enabled": True, "active": False}


def test_the_module_reads_everything_in_one_call(tree, monkeypatch, capsys):
    monkeypatch.setattr(AnsibleModule, "run_command", lambda self, argv, **kw: (0, DPKG, ""))
    monkeypatch.setattr(reader, "unit_state", lambda unit: {"enabled": unit == "nginx.service", "active": False})
    paths = [str(tree / name) for name in ("conf", "dir", "link", "dangling", "nothing")]
    rc, result = run_module(
        reader.main,
        capsys,
        packages=["nginx", "certbot"],
        paths=paths,
        read=[str(tree / "conf"), str(tree / "nothing")],
        globs=[str(tree / "*.none"), str(tree / "d*")],
        units=["nginx.service"],
    )
    assert rc == 0 and result["changed"] is False
    assert result["packages_missing"] == ["certbot"]
    assert set(result["files"]) == set(paths[:4])
    assert result["unresolved"] == [str(tree / "dangling"), str(tree / "nothing")]
    assert result["link_targets"] == {str(tree / "link"): "conf", str(tree / "dangling"): "missing"}
    assert list(result["contents"]) == [str(tree / "conf")]
    assert result["globbed"] == {str(tree / "*.none"): [], str(tree / "d*"): [str(tree / "dangling"), str(tree / "dir")]}
    assert result["units"] == {"nginx.service": {"enabled": True, "active": False}}
