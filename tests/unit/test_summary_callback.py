"""The summary after the recap (callback_plugins/pipelit_edge_summary.py): one
line per targeted host, with stand-ins for the play, results and stats that
Ansible passes it."""

from __future__ import annotations

import types

import pytest
from pipelit_edge_summary import CallbackModule


class Inventory:
    def __init__(self, hosts):
        self.hosts = hosts

    def get_hosts(self, pattern, ignore_restrictions=False):
        assert ignore_restrictions is True  # the batch's restriction is ignored
        return [types.SimpleNamespace(name=name) for name in self.hosts]


def play(hosts):
    manager = types.SimpleNamespace(_inventory=Inventory(hosts))
    return types.SimpleNamespace(hosts="edge_hosts", get_variable_manager=lambda: manager)


def result(host, task, **values):
    return types.SimpleNamespace(
        _host=types.SimpleNamespace(get_name=lambda: host), _task=types.SimpleNamespace(get_name=lambda: task), _result=values
    )


class Stats:
    def __init__(self, summaries):
        self.summaries = summaries
        self.processed = dict.fromkeys(summaries, 1)

    def summarize(self, name):
        base = {"ok": 0, "changed": 0, "unreachable": 0, "failures": 0}
        return {**base, **self.summaries.get(name, {})}


@pytest.fixture
def callback():
    module = CallbackModule()
    module.shown = []
    module._display = types.SimpleNamespace(display=module.shown.append)
    return module


def test_every_targeted_host_is_named_with_what_happened(callback):
    callback.v2_playbook_on_play_start(play(["edge1", "edge2", "edge3"]))
    callback.v2_playbook_on_play_start(play(["edge2", "edge4", "edge5"]))
    callback.v2_runner_on_failed(
        result("edge2", "Commit the nginx configuration", msg="non-zero return code", stderr="a\nport 80 is in use\n")
    )
    callback.v2_runner_on_failed(result("edge1", "Ignored", msg="x"), ignore_errors=True)
    callback.v2_runner_on_unreachable(result("edge4", "Gathering Facts", msg="ssh: connect to host edge4 port 22: No route to host"))
    stats = Stats({"edge1": {"changed": 2}, "edge2": {"failures": 1}, "edge3": {}, "edge4": {"unreachable": 1}})
    callback.v2_playbook_on_stats(stats)
    (text,) = callback.shown
    assert text.splitlines() == [
        "pipelit-edge: what happened to each host",
        "  edge1  CHANGED      2 change(s), no failure",
        "  edge2  FAILED       failed at task 'Commit the nginx configuration': non-zero return code: port 80 is in use",
        "  edge3  OK           no change, no failure",
        "  edge4  UNREACHABLE  unreachable at task 'Gathering Facts': ssh: connect to host edge4 port 22: No route to host",
        "  edge5  NOT RUN      no task ran here (an earlier batch failed, or the run stopped first)",
    ]


def test_a_failure_without_words_and_a_long_message(callback):
    callback.v2_runner_on_failed(result("edge1", "t"))
    assert callback.failures["edge1"] == "failed at task 't': (no message)"
    callback.v2_runner_on_failed(result("edge1", "t", msg="x" * 400))
    assert len(callback.failures["edge1"]) == len("failed at task 't': ") + 300


def test_nothing_is_shown_without_targeted_hosts_or_when_the_inventory_cannot_be_read(callback):
    broken = types.SimpleNamespace(hosts="all", get_variable_manager=lambda: None)
    callback.v2_playbook_on_play_start(broken)  # never breaks the run
    callback.v2_playbook_on_stats(Stats({}))
    assert callback.shown == []
