"""The nginx role's transaction (roles/nginx/files/pipelit-edge-nginx) on a
fixture tree: what it plans to write, link, remove and quarantine, that a
second run plans nothing, that a refused candidate or a failure half-way
leaves the tree byte-identical, and how it reads `nginx -T` and `ss`. nginx
and ss are stand-ins (FakeSubprocess); the reload's waiting on the running
master (/proc, systemctl) is left to the Molecule scenarios."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest
from conftest import load_script

tool = load_script("roles/nginx/files/pipelit-edge-nginx", "pipelit_edge_nginx")

PREFIX = "pipelit-edge-"
SITE = "pipelit-edge-pipelit.conf"
CONF = b"# nginx.conf of the role\n"
SITE_CONF = b"server { listen 80; listen [::]:443 ssl; }\n"


class FakeSubprocess:
    """subprocess as the tool sees it: nginx -t, nginx -T and ss answer as told."""

    PIPE = subprocess.PIPE
    STDOUT = subprocess.STDOUT

    def __init__(self, test_rc=0, test_output="", dump="listen 80;\nlisten [::]:443 ssl;\n", ss=""):
        self.test_rc, self.test_output, self.dump, self.ss = test_rc, test_output, dump, ss
        self.calls = []

    def run(self, argv, **kwargs):
        self.calls.append(argv)
        if argv[:2] == ["nginx", "-t"]:
            # nginx names the scratch copy's files, which the tool renames.
            conf = argv[-1]
            return types.SimpleNamespace(returncode=self.test_rc, stdout=self.test_output.replace("TREE", os.path.dirname(conf)), stderr="")
        if argv[:2] == ["nginx", "-T"]:
            return types.SimpleNamespace(returncode=0, stdout=self.dump, stderr="")
        if argv[0] == "ss":
            return types.SimpleNamespace(returncode=0, stdout=self.ss, stderr="")
        raise AssertionError(f"unexpected command {argv}")


@pytest.fixture
def etc(tmp_path, monkeypatch):
    """A Debian-like /etc/nginx under tmp_path, with the package's default site enabled."""
    root = tmp_path / "etc" / "nginx"
    (root / "sites-available").mkdir(parents=True)
    (root / "sites-enabled").mkdir()
    (root / "conf.d").mkdir()
    (root / "mime.types").write_text("types {}\n")
    (root / "nginx.conf").write_bytes(b"# Debian's nginx.conf\n")
    (root / "sites-available" / "default").write_text("server {}\n")
    os.symlink("/etc/nginx/sites-available/default", root / "sites-enabled" / "default")
    monkeypatch.setattr(tool, "ROOT", str(root))
    monkeypatch.setattr(tool, "subprocess", FakeSubprocess())
    return root


@pytest.fixture
def staging(tmp_path):
    stage = tmp_path / "staging"
    (stage / "sites-available").mkdir(parents=True)
    (stage / "nginx.conf").write_bytes(CONF)
    (stage / "sites-available" / SITE).write_bytes(SITE_CONF)
    return stage


def args_for(staging, tmp_path, sites=(SITE,), check=False):
    return types.SimpleNamespace(
        staging=str(staging), quarantine=str(tmp_path / "quarantine"), prefix=PREFIX, check=check, sites=list(sites), replacing=[]
    )


def snapshot(root):
    """Every entry under root: file contents and link targets."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                found[rel] = "-> " + os.readlink(path)
            elif os.path.isfile(path):
                found[rel] = open(path, "rb").read()
            else:
                found[rel] = "dir"
    return found


def test_a_fresh_host_plans_the_whole_managed_set(etc, staging, tmp_path):
    conf, sites, writes, links, removals, quarantines = tool.plan(args_for(staging, tmp_path))
    assert conf == CONF and sites == {SITE: SITE_CONF}
    assert writes == [(str(etc / "nginx.conf"), CONF), (str(etc / "sites-available" / SITE), SITE_CONF)]
    assert links == [(str(etc / "sites-enabled" / SITE), f"../sites-available/{SITE}")]
    assert removals == []
    # Debian's default site is not the role's: set aside, never deleted.
    assert quarantines == [str(etc / "sites-enabled" / "default")]


def test_commit_applies_the_plan_and_a_second_run_changes_nothing(etc, staging, tmp_path):
    messages = tool.commit(args_for(staging, tmp_path))
    assert messages[0].startswith(f"moved {etc}/sites-enabled/default to {tmp_path}/quarantine/")
    assert f"wrote {etc}/nginx.conf" in messages and f"linked {etc}/sites-enabled/{SITE} -> ../sites-available/{SITE}" in messages
    assert (etc / "nginx.conf").read_bytes() == CONF
    assert os.readlink(etc / "sites-enabled" / SITE) == f"../sites-available/{SITE}"
    assert os.listdir(etc / "sites-enabled") == [SITE]
    (moved,) = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path / "quarantine") for f in fs]
    assert os.path.basename(moved) == "default" and os.path.basename(os.path.dirname(moved)) == "sites-enabled"
    # The candidate was checked: nginx -t and nginx -T on the scratch copy, then the ports.
    calls = tool.subprocess.calls
    assert [c[:2] for c in calls] == [["nginx", "-t"], ["nginx", "-T"], ["ss", "-Hltnpe"]]
    assert not calls[0][-1].startswith(str(etc))
    assert tool.commit(args_for(staging, tmp_path)) == []
    # No temporary file or backup left behind.
    assert not [n for n in os.listdir(etc / "sites-available") if n.startswith(tool.TMP_PREFIX)]
    assert not [n for n in os.listdir(tmp_path) if n.startswith("nginx-backup.")]


def test_a_site_that_left_the_model_and_an_interrupted_write_are_removed(etc, staging, tmp_path):
    tool.commit(args_for(staging, tmp_path))
    (etc / "sites-available" / "pipelit-edge-old.conf").write_text("server {}\n")
    os.symlink("../sites-available/pipelit-edge-old.conf", etc / "sites-enabled" / "pipelit-edge-old.conf")
    (etc / "sites-available" / (tool.TMP_PREFIX + "abc")).write_text("half")
    (etc / "sites-available" / "pipelit-edge-notes.txt").write_text("not a site file of the role")
    (staging / "sites-available" / "pipelit-edge-old.conf").write_text("server {}\n")
    _, _, writes, links, removals, quarantines = tool.plan(args_for(staging, tmp_path))
    assert writes == [] and links == [] and quarantines == []
    assert sorted(removals) == sorted(
        [
            str(etc / "sites-available" / "pipelit-edge-old.conf"),
            str(etc / "sites-available" / (tool.TMP_PREFIX + "abc")),
            str(etc / "sites-enabled" / "pipelit-edge-old.conf"),
        ]
    )
    messages = tool.commit(args_for(staging, tmp_path))
    assert len(messages) == 3 and all(m.startswith("removed ") for m in messages)
    assert sorted(os.listdir(etc / "sites-available")) == ["default", "pipelit-edge-notes.txt", SITE]
    # The staging copy keeps only what the model names.
    assert os.listdir(staging / "sites-available") == [SITE]


def test_an_altered_or_foreign_entry_of_sites_enabled_is_quarantined_and_relinked(etc, staging, tmp_path):
    tool.commit(args_for(staging, tmp_path))
    link = etc / "sites-enabled" / SITE
    os.remove(link)
    link.write_bytes(b"server { listen 81; }\n")  # a copy edited by hand in place of the link
    (etc / "sites-enabled" / "dropped.conf").write_text("broken {")
    _, _, writes, links, removals, quarantines = tool.plan(args_for(staging, tmp_path))
    assert writes == [] and removals == []
    assert sorted(quarantines) == [str(etc / "sites-enabled" / "dropped.conf"), str(link)]
    assert links == [(str(link), f"../sites-available/{SITE}")]
    tool.commit(args_for(staging, tmp_path))
    assert os.readlink(link) == f"../sites-available/{SITE}" and os.listdir(etc / "sites-enabled") == [SITE]
    # A link of the right name pointing elsewhere is not the role's either.
    os.remove(link)
    os.symlink("/tmp/elsewhere.conf", link)
    assert tool.plan(args_for(staging, tmp_path))[5] == [str(link)]


def test_check_mode_says_what_it_would_do_and_changes_nothing(etc, staging, tmp_path):
    before = snapshot(etc)
    messages = tool.commit(args_for(staging, tmp_path, check=True))
    assert messages == [
        f"would write {etc}/nginx.conf",
        f"would write {etc}/sites-available/{SITE}",
        f"would move {etc}/sites-enabled/default to the quarantine",
        f"would link {etc}/sites-enabled/{SITE} -> ../sites-available/{SITE}",
    ]
    assert snapshot(etc) == before and tool.subprocess.calls == []


def test_check_mode_before_anything_was_staged(etc, tmp_path):
    empty = tmp_path / "never-staged"
    assert tool.commit(args_for(empty, tmp_path, check=True)) == [f"would write {etc}/nginx.conf"]


def test_a_candidate_nginx_refuses_leaves_the_tree_byte_identical(etc, staging, tmp_path, monkeypatch):
    monkeypatch.setattr(
        tool, "subprocess", FakeSubprocess(test_rc=1, test_output='nginx: [emerg] unknown directive "x" in TREE/sites-enabled/a:1')
    )
    before = snapshot(etc)
    with pytest.raises(tool.Failure) as failure:
        tool.commit(args_for(staging, tmp_path))
    # The message names the real tree, not the scratch copy.
    assert str(failure.value) == f'the new configuration fails nginx -t:\nnginx: [emerg] unknown directive "x" in {etc}/sites-enabled/a:1'
    assert snapshot(etc) == before


def test_a_port_held_by_another_program_refuses_the_candidate(etc, staging, tmp_path, monkeypatch):
    ss = (
        'LISTEN 0 511 0.0.0.0:80 0.0.0.0:* users:(("apache2",pid=41,fd=4),("apache2",pid=42,fd=4))\n'
        'LISTEN 0 511 [::]:443 [::]:* users:(("nginx",pid=7,fd=6))\n'
    )
    monkeypatch.setattr(tool, "subprocess", FakeSubprocess(ss=ss))
    before = snapshot(etc)
    with pytest.raises(tool.Failure, match=r"port 80 is in use by another program: apache2 \(pid 41\), apache2 \(pid 42\)$"):
        tool.commit(args_for(staging, tmp_path))
    assert snapshot(etc) == before


def test_a_failure_half_way_puts_back_what_was_changed(etc, staging, tmp_path, monkeypatch):
    before = snapshot(etc)

    def broken_symlink(*_args):
        raise OSError("disk full")

    real_symlink = os.symlink
    tree = tool.build_candidate  # the scratch copy still needs real links

    def build(*args):
        with monkeypatch.context() as inner:
            inner.setattr(os, "symlink", real_symlink)
            return tree(*args)

    monkeypatch.setattr(tool, "build_candidate", build)
    monkeypatch.setattr(os, "symlink", broken_symlink)
    with pytest.raises(OSError, match="disk full"):
        tool.commit(args_for(staging, tmp_path))
    monkeypatch.setattr(os, "symlink", real_symlink)
    assert snapshot(etc) == before
    assert not [n for n in os.listdir(tmp_path) if n.startswith("nginx-backup.")]


def test_the_candidate_tree_holds_exactly_the_desired_set(etc, tmp_path):
    (etc / "sites-available" / "pipelit-edge-gone.conf").write_text("server {}\n")
    (etc / "sites-available" / SITE).write_text("old")
    tree = tool.build_candidate(str(tmp_path / "scratch"), CONF, {SITE: SITE_CONF}, PREFIX)
    assert open(os.path.join(tree, "nginx.conf"), "rb").read() == CONF
    assert sorted(os.listdir(os.path.join(tree, "sites-available"))) == ["default", SITE]
    assert open(os.path.join(tree, "sites-available", SITE), "rb").read() == SITE_CONF
    assert os.listdir(os.path.join(tree, "sites-enabled")) == [SITE]
    assert os.path.isfile(os.path.join(tree, "mime.types"))


def test_listen_ports_are_read_from_the_dump(monkeypatch):
    dump = (
        "# configuration file /etc/nginx/nginx.conf:\n"
        "server { listen 80 default_server; listen [::]:80; # listen 9999;\n"
        "  listen 127.0.0.1:8443 ssl;listen unix:/run/x.sock; listen localhost; }\n"
        "server {\nlisten 8080;\n}\n"
    )
    monkeypatch.setattr(tool, "subprocess", FakeSubprocess(dump=dump))
    assert tool.listen_ports("/etc/nginx/nginx.conf") == [80, 8080, 8443]


def test_a_dump_that_fails_is_a_failure(monkeypatch):
    fake = FakeSubprocess()
    fake.run = lambda argv, **kw: types.SimpleNamespace(returncode=1, stdout="", stderr="nginx: [emerg] open() failed")
    monkeypatch.setattr(tool, "subprocess", fake)
    with pytest.raises(tool.Failure, match=r"nginx -T -c /x.conf failed: nginx: \[emerg\] open\(\) failed"):
        tool.listen_ports("/x.conf")


def test_listeners_and_serving(monkeypatch, tmp_path):
    ss = (
        'LISTEN 0 511 0.0.0.0:80 0.0.0.0:* users:(("nginx",pid=7,fd=6),("nginx",pid=8,fd=6))\n'
        "LISTEN 0 128 127.0.0.1:6379 0.0.0.0:*\n"
        "short line\n"
    )
    monkeypatch.setattr(tool, "subprocess", FakeSubprocess(ss=ss))
    assert tool.listeners() == {80: [("nginx", "7", None), ("nginx", "8", None)], 6379: [("(unnamed)", "?", None)]}
    assert tool.foreign_holders([80, 443]) == []
    log = tmp_path / "error.log"
    log.write_text("old [emerg] line\n")
    monkeypatch.setattr(tool, "ERROR_LOG", str(log))
    since = tool.error_log_size()
    with open(log, "a") as handle:
        handle.write("2026/12/04 [notice] 1#1: signal process started\n2026/12/04 [emerg] 1#1: bind() to 0.0.0.0:443 failed\n")
    assert tool.serving_failure([80], since) is None
    assert (
        tool.serving_failure([80, 443], since)
        == "port 443: nginx does not listen there\n  2026/12/04 [emerg] 1#1: bind() to 0.0.0.0:443 failed"
    )
    monkeypatch.setattr(tool, "ERROR_LOG", str(tmp_path / "missing.log"))
    assert tool.error_log_size() == 0 and tool.new_errors(0) == []


def test_main_prints_the_changes_or_the_failure(etc, staging, tmp_path, monkeypatch, capsys):
    argv = ["pipelit-edge-nginx", "commit", "--staging", str(staging), "--quarantine", str(tmp_path / "q"), "--check", SITE]
    monkeypatch.setattr(sys, "argv", argv)
    assert tool.main() == 0
    assert capsys.readouterr().out.splitlines()[0] == f"would write {etc}/nginx.conf"
    monkeypatch.setattr(tool, "subprocess", FakeSubprocess(test_rc=1, test_output="nginx: [emerg] bad"))
    monkeypatch.setattr(sys, "argv", [a for a in argv if a != "--check"])
    assert tool.main() == 1
    assert capsys.readouterr().err == "pipelit-edge-nginx commit: the new configuration fails nginx -t:\nnginx: [emerg] bad\n"


def test_the_other_proxys_ports_count_as_free_only_when_it_is_being_replaced(monkeypatch):
    # Caddy's sockets: named where /proc tells, by their owner where it does
    # not (Caddy's capability makes its /proc entries private).
    ss = (
        'LISTEN 0 4096 *:80 *:* users:(("caddy",pid=9,fd=7)) uid:998 ino:1 sk:1\n'
        "LISTEN 0 4096 *:443 *:* uid:998 ino:2 sk:2\n"
        'LISTEN 0 128 0.0.0.0:8443 0.0.0.0:* users:(("python3",pid=5,fd=3)) ino:3 sk:3\n'
    )
    monkeypatch.setattr(tool, "subprocess", FakeSubprocess(ss=ss))
    monkeypatch.setattr(tool, "user_id", lambda name: {"caddy": 998}.get(name))
    monkeypatch.setattr(tool, "user_name", lambda uid: {998: "caddy"}.get(uid))
    assert tool.foreign_holders([80, 443]) == [
        "port 80 is in use by another program: caddy (pid 9)",
        "port 443 is in use by another program: a program of user caddy (uid 998)",
    ]
    assert tool.foreign_holders([80, 443], replacing=["caddy"]) == []
    # Only the replaced program: anyone else still blocks the change.
    assert tool.foreign_holders([443, 8443], replacing=["caddy"]) == ["port 8443 is in use by another program: python3 (pid 5)"]
    with pytest.raises(tool.Failure, match="nginx could not listen where this configuration asks"):
        tool.check_ports([8443], ["caddy"])
    assert tool.user_id("no-such-user-here") is None


def test_an_unnamed_socket_is_named_by_its_owner(monkeypatch):
    assert tool.unnamed_holder(None) == "a program /proc does not name"
    assert tool.unnamed_holder(0) == "a program of user root (uid 0)"
    monkeypatch.setattr(tool, "user_name", lambda uid: None)
    assert tool.unnamed_holder(4242) == "a program of uid 4242"


# --- reload --record: certbot's deploy hook --------------------------------

DIGEST = "/usr/local/sbin/pipelit-edge-nginx-digest"


class FakeDigest(FakeSubprocess):
    """nginx -t -q on the live tree, and the digest command, answering as told."""

    def __init__(self, digest_rc=0, digest="abc123\n", **kwargs):
        super().__init__(**kwargs)
        self.digest_rc, self.digest = digest_rc, digest

    def run(self, argv, **kwargs):
        if argv == [DIGEST]:
            self.calls.append(argv)
            return types.SimpleNamespace(returncode=self.digest_rc, stdout=self.digest, stderr="")
        return super().run(argv, **kwargs)


@pytest.fixture
def hook(tmp_path, monkeypatch):
    """The steps of reload --record as they happen: nginx -t, the reload (a
    stand-in here: its waiting is the Molecule scenarios'), the digest."""
    steps = []
    fake = FakeDigest()
    monkeypatch.setattr(tool, "subprocess", fake)

    def reload(args):
        steps.append(("reload", args.timeout, args.restart))
        return []

    monkeypatch.setattr(tool, "reload", reload)
    record = tmp_path / "state" / "nginx-loaded.sha256"
    record.parent.mkdir()
    args = types.SimpleNamespace(record=str(record), digest=DIGEST, timeout=30.0, restart=False)
    return types.SimpleNamespace(fake=fake, steps=steps, record=record, args=args)


def test_reload_record_checks_reloads_then_records_what_nginx_loaded(hook):
    assert tool.reload_and_record(hook.args) == []
    assert hook.fake.calls == [["nginx", "-t", "-q"], [DIGEST]]
    assert hook.steps == [("reload", 30.0, False)]
    # As the nginx role's handler writes it, which tasks/service.yml compares.
    assert hook.record.read_text() == "abc123\n"
    assert oct(hook.record.stat().st_mode & 0o777) == "0o644"
    # Whole or not at all: no temporary file left beside it.
    assert os.listdir(hook.record.parent) == ["nginx-loaded.sha256"]


def test_reload_record_loads_nothing_when_nginx_t_refuses(hook):
    hook.fake.test_rc, hook.fake.test_output = 1, "nginx: [emerg] unknown directive"
    hook.record.write_text("old\n")
    with pytest.raises(tool.Failure, match=r"fails nginx -t, nothing was reloaded:\nnginx: \[emerg\] unknown directive"):
        tool.reload_and_record(hook.args)
    assert hook.steps == [] and hook.fake.calls == [["nginx", "-t", "-q"]]
    assert hook.record.read_text() == "old\n"


def test_reload_record_records_nothing_when_the_reload_did_not_take(hook, monkeypatch):
    def reload(args):
        raise tool.Failure("nginx did not load the new configuration within 30 s")

    monkeypatch.setattr(tool, "reload", reload)
    hook.record.write_text("old\n")
    with pytest.raises(tool.Failure, match="did not load"):
        tool.reload_and_record(hook.args)
    assert [DIGEST] not in hook.fake.calls
    assert hook.record.read_text() == "old\n"


@pytest.mark.parametrize("rc, output", [(1, "nginx: command not found\n"), (0, "")])
def test_reload_record_fails_when_the_digest_fails(hook, rc, output):
    hook.fake.digest_rc, hook.fake.digest = rc, output
    hook.record.write_text("old\n")
    with pytest.raises(tool.Failure, match="nothing was recorded"):
        tool.reload_and_record(hook.args)
    assert hook.record.read_text() == "old\n"
    assert os.listdir(hook.record.parent) == ["nginx-loaded.sha256"]


def test_plain_reload_neither_checks_nor_records(hook):
    hook.args.record = None
    assert tool.reload_and_record(hook.args) == []
    assert hook.fake.calls == [] and hook.steps == [("reload", 30.0, False)]
    assert not hook.record.exists()


def test_main_reload_record_as_the_deploy_hook_calls_it(hook, monkeypatch, capsys):
    # nginx_reload_command's shape (roles/nginx/defaults/main.yml).
    argv = ["pipelit-edge-nginx", "reload", "--timeout", "12", "--record", str(hook.record), "--digest", DIGEST]
    monkeypatch.setattr(sys, "argv", argv)
    assert tool.main() == 0
    assert hook.steps == [("reload", 12.0, False)] and hook.record.read_text() == "abc123\n"
    # --digest defaults to where the nginx role installs it.
    monkeypatch.setattr(sys, "argv", argv[:-2])
    assert tool.main() == 0
    hook.fake.test_rc, hook.fake.test_output = 1, "nginx: [emerg] bad"
    assert tool.main() == 1
    assert (
        capsys.readouterr().err
        == "pipelit-edge-nginx reload: the configuration fails nginx -t, nothing was reloaded:\nnginx: [emerg] bad\n"
    )
