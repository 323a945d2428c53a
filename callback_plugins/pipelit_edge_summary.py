"""After the recap: one line per targeted host, naming what happened to it.

A fleet run in serial batches stops when a batch fails beyond
edge_max_fail_percentage; Ansible's recap then lists the hosts that ran, but
says nothing of the hosts of later batches it never touched. This callback
names every host the run's plays targeted: ok, changed, FAILED (with the task
and the first line of its message), UNREACHABLE, or not run.
"""

from __future__ import annotations

DOCUMENTATION = """
name: pipelit_edge_summary
type: aggregate
short_description: One line per targeted host after the recap, failures and untouched hosts named
description:
  - Prints, after the play recap, every host the run's plays targeted and what happened to it,
    including the hosts a stopped serial run never reached.
requirements:
  - enabled in ansible.cfg (callbacks_enabled = pipelit_edge_summary)
"""

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "pipelit_edge_summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.targeted = []  # host names in the order the plays target them
        self.failures = {}  # host -> "task: message"

    def v2_playbook_on_play_start(self, play):
        # The play's pattern as --limit restricts it: the hosts it should
        # reach. Called once per serial batch, with the inventory restricted to
        # the batch: the restriction is ignored, the limit is not.
        try:
            inventory = play.get_variable_manager()._inventory
            hosts = [host.name for host in inventory.get_hosts(play.hosts, ignore_restrictions=True)]
        except Exception:  # noqa: BLE001  (a summary must never break a run)
            hosts = []
        for name in hosts:
            if name not in self.targeted:
                self.targeted.append(name)

    def _record(self, result, word):
        # A command's "non-zero return code" says little: its stderr's last
        # line says why (the nginx role's commit names the port and program).
        lines = [line.strip() for line in str(result._result.get("msg") or "").splitlines() if line.strip()][:1]
        lines += [line.strip() for line in str(result._result.get("stderr") or "").splitlines() if line.strip()][-1:]
        message = ": ".join(lines) or "(no message)"
        self.failures[result._host.get_name()] = f"{word} at task '{result._task.get_name()}': {message[:300]}"

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not ignore_errors:
            self._record(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        if not self.targeted:
            return
        width = max(len(name) for name in self.targeted)
        lines = ["pipelit-edge: what happened to each host"]
        for name in self.targeted:
            summary = stats.summarize(name)
            if name not in stats.processed:
                state, detail = "NOT RUN", "no task ran here (an earlier batch failed, or the run stopped first)"
            elif summary["unreachable"]:
                state, detail = "UNREACHABLE", self.failures.get(name, "")
            elif summary["failures"]:
                state, detail = "FAILED", self.failures.get(name, "")
            elif summary["changed"]:
                state, detail = "CHANGED", f"{summary['changed']} change(s), no failure"
            else:
                state, detail = "OK", "no change, no failure"
            lines.append(f"  {name:<{width}}  {state:<11}  {detail}")
        self._display.display("\n".join(lines))
