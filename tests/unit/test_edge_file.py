"""The skip-when-unchanged action (roles/proxy_sites/action_plugins/edge_file.py):
its signature logic called directly, then the action itself through
ansible-playbook on localhost (connection local) against the state that the
real edge_host_state module reads, so that a template the action renders
differently from ansible.builtin.template fails here."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import sys

import pytest
from ansible.errors import AnsibleActionFail
from conftest import ROOT, ansible_playbook

sys.path.insert(0, str(ROOT / "roles/proxy_sites/action_plugins"))
import edge_file  # noqa: E402

SHA = hashlib.sha1(b"x\n").hexdigest()


@pytest.mark.parametrize(
    ("module", "short"),
    [("template", "template"), ("ansible.builtin.copy", "copy"), ("ansible.legacy.file", "file"), ("ansible.builtin.file", "file")],
)
def test_the_wrapped_module_is_named_short_or_by_fqcn(module, short):
    assert edge_file.short_name(module) == short


@pytest.mark.parametrize("module", ["lineinfile", "community.general.copy", None, ""])
def test_only_template_copy_and_file_are_wrapped(module):
    with pytest.raises(AnsibleActionFail, match="edge_file wraps template, copy, file"):
        edge_file.short_name(module)


@pytest.mark.parametrize(
    ("mode", "octal"),
    [
        ("0644", "644"),
        ("644", "644"),
        ("0755", "755"),
        (0o640, "640"),
        (420, "644"),
        ("02750", "2750"),
        ("0o644", "644"),
        ("0", "0"),
        (None, None),
    ],
)
def test_modes_are_read_as_the_file_module_reads_them(mode, octal):
    # An int as it is (YAML's 0644 unquoted is 420), a string as octal.
    assert edge_file.octal_mode(mode) == octal


@pytest.mark.parametrize("mode", ["u=rw,g=r,o=r", "preserve", "9", -1, 0o10000, True, 6.44])
def test_a_mode_that_cannot_be_read_here_means_run_the_module(mode):
    with pytest.raises(edge_file.Unknown):
        edge_file.octal_mode(mode)


@pytest.mark.parametrize("name", ["0", 0, "1000", ""])
def test_numeric_owners_mean_run_the_module(name):
    # edge_host_state reports names, as stat(1) does; a uid cannot be compared with one here.
    with pytest.raises(edge_file.Unknown):
        edge_file.account(name, "owner")


def test_a_file_as_the_task_would_leave_it_is_unchanged():
    wanted = edge_file.wanted_state("regular file", "0644", "root", "root", SHA)
    assert edge_file.signature(wanted) == f"regular file|644|root|root|{SHA}"
    assert edge_file.is_unchanged(f"regular file|644|root|root|{SHA}", wanted)
    directory = edge_file.wanted_state("directory", 0o750, "caddy", "caddy", "")
    assert edge_file.is_unchanged("directory|750|caddy|caddy|", directory)


@pytest.mark.parametrize(
    "entry",
    [
        None,  # not read, or not there
        "",
        f"regular file|600|root|root|{SHA}",  # mode drifted
        f"regular file|644|www-data|root|{SHA}",  # owner drifted
        f"regular file|644|root|adm|{SHA}",  # group drifted
        "regular file|644|root|root|" + "0" * 40,  # content drifted
        "regular file|644|root|root|",  # no checksum where one is needed
        f"symbolic link|777|root|root|{SHA}",  # another type
        "directory|644|root|root|",
        f"regular file|644|root|{SHA}",  # not a signature
    ],
)
def test_any_difference_runs_the_module(entry):
    assert not edge_file.is_unchanged(entry, edge_file.wanted_state("regular file", "0644", "root", "root", SHA))


def test_what_the_task_leaves_out_is_not_compared():
    # The module leaves a mode, owner or group it is not given as it is on a path that exists.
    wanted = edge_file.wanted_state("regular file", None, None, "root", SHA)
    assert edge_file.signature(wanted) == f"regular file|*|*|root|{SHA}"
    assert edge_file.is_unchanged(f"regular file|600|nobody|root|{SHA}", wanted)
    assert not edge_file.is_unchanged(f"regular file|600|nobody|adm|{SHA}", wanted)
    any_content = edge_file.wanted_state("regular file", "0644", "root", "root", None)  # file state=file
    assert edge_file.is_unchanged(f"regular file|644|root|root|{SHA}", any_content)


# The template exercises what the template action sets that a naive rendering
# would not: trim_blocks by default, lstrip_blocks when asked, the trailing
# newline kept, the template_* and ansible_managed variables, the loop's item,
# an include from the templates folder, and non-ASCII text.
TEMPLATE = """\
# {{ ansible_managed }} {{ template_path | basename }} -> {{ template_destpath }}
{% for name in names %}
    {% if name != 'b' %}
server {{ name }}.{{ item }};
    {% endif %}
{% endfor %}
{% include 'part.j2' %}
café  {{ owner }}
"""

PLAY = """\
- name: edge_file against edge_host_state
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    out: "{{ work }}/out"
    names: [a, b, c]
    site: &site
      src: site.conf.j2
      dest: "{{ out }}/site-{{ item }}.conf"
      owner: "{{ owner }}"
      group: "{{ group }}"
      mode: "0640"
      lstrip_blocks: true
      validate: grep -q server %s
    paths: >-
      {{ [out ~ '/site-one.conf', out ~ '/site-two.conf', out ~ '/tool', out ~ '/limits.conf', out ~ '/dir'] }}
  handlers:
    - name: Count a change
      ansible.builtin.set_fact:
        notified: "{{ notified | int + 1 }}"
  tasks:
    - name: Start with nothing read and nothing notified
      ansible.builtin.set_fact:
        notified: 0
        nothing: {}

    - name: First run, nothing there
      edge_file: &template
        module: ansible.builtin.template
        known: "{{ state.files | default(nothing) }}"
        <<: *site
      loop: [one, two]
      register: first
      notify: Count a change

    - name: The other wrapped modules, first run
      ansible.builtin.include_tasks: others.yml

    - name: Read the host's state as the roles do
      edge_host_state:
        paths: "{{ paths }}"
      register: state

    - name: Second run, given the read
      edge_file: *template
      loop: [one, two]
      register: second
      notify: Count a change

    - name: The other wrapped modules, second run
      ansible.builtin.include_tasks: others.yml

    - name: Second run in check mode
      edge_file: *template
      loop: [one]
      check_mode: true
      register: second_check

    - name: Handlers run now
      ansible.builtin.meta: flush_handlers

    - name: The first run wrote, the second ran no module
      ansible.builtin.assert:
        that:
          - first.results | map(attribute='changed') | list == [true, true]
          - notified | int == 1
          - second.results | map(attribute='changed') | list == [false, false]
          - second.results | map(attribute='unchanged', default=false) | list == [true, true]
          # What the copy module returns when it runs; the action returns none of it.
          - second.results | selectattr('checksum', 'defined') | list == []
          - second_check.results[0].unchanged | default(false)
          # The template as the action renders it is the file the template module
          # wrote: same SHA-1 (and type, mode, owner, group) as the host-state read.
          - state.files[out ~ '/site-one.conf'] == second.results[0].wanted
          - state.files[out ~ '/site-two.conf'] == second.results[1].wanted
          - others.first | map(attribute='changed') | list == [true, true, true]
          - others.second | map(attribute='changed') | list == [false, false, false]
          - others.second | map(attribute='unchanged', default=false) | list == [true, true, true]

    - name: Drift the mode of one file and the content of the other
      ansible.builtin.shell: chmod 0600 {{ out }}/site-one.conf && echo edit >> {{ out }}/site-two.conf
      changed_when: true

    - name: Read the drifted state
      edge_host_state:
        paths: "{{ paths }}"
      register: state

    - name: Drifted content, in check mode
      edge_file: *template
      loop: [two]
      check_mode: true
      diff: true
      register: drifted_check

    - name: Read the state after check mode
      edge_host_state:
        paths: "{{ paths }}"
      register: after_check

    - name: Drifted
      edge_file: *template
      loop: [one, two]
      register: drifted

    - name: Check mode changed nothing; the real run repaired both
      ansible.builtin.assert:
        that:
          - drifted_check.results | map(attribute='changed') | list == [true]
          - drifted_check.results | selectattr('unchanged', 'defined') | list == []
          # The template module's diff, through the action: the appended line goes.
          - "'edit' in drifted_check.results[0].diff[0].before"
          - "'edit' not in drifted_check.results[0].diff[0].after"
          - after_check.files == state.files
          - drifted.results | map(attribute='changed') | list == [true, true]
          - drifted.results | selectattr('unchanged', 'defined') | list == []
          - drifted.results | selectattr('warnings', 'defined') | map(attribute='warnings') | flatten == []

    # A read that disagrees with a file already right: the module runs and
    # changes nothing, and the task warns (Ansible prints a result's
    # warnings and keeps them out of what is registered: the test reads
    # the output).
    - name: A read that disagrees with a file already right
      edge_file:
        module: ansible.builtin.template
        known: "{{ {out ~ '/site-one.conf': 'regular file|640|' ~ owner ~ '|' ~ group ~ '|' ~ '0' * 40} }}"
        <<: *site
      loop: [one]
      register: mispredicted

    - name: The module changed nothing
      ansible.builtin.assert:
        that: mispredicted.results[0].changed == false
"""

OTHERS = """\
- name: Copy a local file
  edge_file:
    module: copy
    known: "{{ state.files | default(nothing) }}"
    src: tool
    dest: "{{ out }}/tool"
    mode: 0750
  register: tool

- name: Copy content
  edge_file:
    module: ansible.builtin.copy
    known: "{{ state.files | default(nothing) }}"
    content: |
      [Service]
      LimitNOFILE={{ 4096 * 2 }}
    dest: "{{ out }}/limits.conf"
    owner: "{{ owner }}"
    mode: "644"
  register: limits

- name: Create a directory
  edge_file:
    module: ansible.builtin.file
    known: "{{ state.files | default(nothing) }}"
    path: "{{ out }}/dir"
    state: directory
    group: "{{ group }}"
    mode: "0750"
  register: dir

- name: Record what they did
  ansible.builtin.set_fact:
    others: "{{ others | default({}) | combine({'second' if state is defined else 'first': [tool, limits, dir]}) }}"
"""


def test_the_action_skips_exactly_what_the_module_would_not_change(tmp_path):
    """First run writes (changed, handler notified); the second, given what
    edge_host_state reads, runs no module; a drifted mode or content runs it
    and changes again; check mode changes nothing (diff mode shows the module's
    diff); the action's rendering has
    the SHA-1 of the file the template module wrote."""
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates/site.conf.j2").write_text(TEMPLATE, encoding="utf-8")
    (tmp_path / "templates/part.j2").write_text("included {{ item }}", encoding="utf-8")  # no final newline
    (tmp_path / "files").mkdir()
    (tmp_path / "files/tool").write_bytes(b"#!/bin/sh\nexit 0\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "play.yml").write_text(PLAY, encoding="utf-8")
    (tmp_path / "others.yml").write_text(OTHERS, encoding="utf-8")
    extra = {
        "work": str(tmp_path),
        "owner": pwd.getpwuid(os.getuid()).pw_name,
        "group": grp.getgrgid(os.getgid()).gr_name,
        "ansible_python_interpreter": sys.executable,
    }
    rc, output = ansible_playbook(
        "localhost,",
        tmp_path / "play.yml",
        extra,
        ANSIBLE_ACTION_PLUGINS=str(ROOT / "roles/proxy_sites/action_plugins"),
        ANSIBLE_LIBRARY=str(ROOT / "roles/proxy_sites/library"),
        ANSIBLE_PIPELINING="true",
    )
    assert rc == 0, output[-6000:]
    # Once, from the disagreeing read; never from the runs before it.
    assert output.count("yet template changed nothing: the skip compares something other than what template writes") == 1, output[-6000:]
    assert (tmp_path / "out/site-one.conf").stat().st_mode & 0o7777 == 0o640  # the drifted mode, repaired
    rendered = (tmp_path / "out/site-one.conf").read_text(encoding="utf-8")
    assert rendered.splitlines()[1:] == ["server a.one;", "server c.one;", "included onecafé  " + extra["owner"]]
    assert (tmp_path / "out/limits.conf").read_text() == "[Service]\nLimitNOFILE=8192\n"
